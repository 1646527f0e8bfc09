//! The default detectors behind `beam sync policy suggest`: a proposed action
//! for a column from the whole words of its name and its type.

use super::policy::{Action, FakeKind};

/// Words of a column name: `stripeCustomerId` → stripe, customer, id.
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if ch == '_' || ch == '-' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_ascii_lowercase() || ch.is_ascii_digit();
        cur.push(ch.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The default detectors: a proposed action for a column from its name and
/// type (`beam sync policy suggest`). Whole words only, so `author` is not
/// `auth`; booleans and timestamps are kept (`emailVerified`); external
/// customer ids are hashed (`stripeCustomerId`).
pub fn suggest(column: &str, data_type: &str) -> Action {
    let w = words(column);
    let has = |x: &str| w.iter().any(|v| v == x);
    let non_text = matches!(
        data_type,
        "boolean"
            | "smallint"
            | "integer"
            | "bigint"
            | "real"
            | "double precision"
            | "numeric"
            | "date"
    ) || data_type.starts_with("timestamp");
    if has("password")
        || has("passwd")
        || has("secret")
        || has("token")
        || has("auth") && !non_text
        || (has("api") && has("key"))
        || has("apikey")
        || has("salt")
        || has("otp")
        || has("totp")
        || has("mfa")
        || has("recovery")
        || has("credential")
        || has("private")
    {
        return Action::Drop;
    }
    if non_text {
        return Action::Keep;
    }
    if has("email") || has("mail") {
        return Action::Fake(FakeKind::Email);
    }
    if has("phone") || has("mobile") || has("tel") {
        return Action::Fake(FakeKind::Phone);
    }
    if has("ssn") || (has("national") && has("id")) || has("passport") || has("tax") {
        return Action::Mask;
    }
    if has("card") || has("cc") || has("pan") || has("iban") {
        return Action::Fake(FakeKind::Card);
    }
    if has("address") || has("street") || has("zip") || has("postcode") {
        return Action::Fake(FakeKind::Address);
    }
    if has("ip") {
        return Action::Fake(FakeKind::Ip);
    }
    if has("name") && !has("user") && !has("file") && !has("product") && !has("company") {
        return Action::Fake(FakeKind::Name);
    }
    if has("customer")
        || has("stripe")
        || has("external")
        || has("username")
        || (has("user") && has("name"))
    {
        return Action::Hash;
    }
    Action::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detectors_fix_the_seeds_misses_and_false_positives() {
        assert_eq!(
            suggest("author", "text"),
            Action::Keep,
            "author is not auth"
        );
        assert_eq!(suggest("emailVerified", "boolean"), Action::Keep);
        assert_eq!(suggest("stripeCustomerId", "text"), Action::Hash);
        assert_eq!(suggest("email", "text"), Action::Fake(FakeKind::Email));
        assert_eq!(suggest("password_hash", "text"), Action::Drop);
        assert_eq!(suggest("api_key", "text"), Action::Drop);
        assert_eq!(suggest("authToken", "text"), Action::Drop);
        assert_eq!(
            suggest("phone_number", "text"),
            Action::Fake(FakeKind::Phone)
        );
        assert_eq!(suggest("ssn", "text"), Action::Mask);
        assert_eq!(suggest("first_name", "text"), Action::Fake(FakeKind::Name));
        assert_eq!(suggest("username", "text"), Action::Hash);
        assert_eq!(
            suggest("created_at", "timestamp with time zone"),
            Action::Keep
        );
        assert_eq!(suggest("plan", "text"), Action::Keep);
        assert_eq!(suggest("recovery_codes", "text"), Action::Drop);
    }
}
