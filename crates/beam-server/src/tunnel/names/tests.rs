//! Name tests: word lists, validation and generator properties (proptest).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

#[test]
fn seed_words_are_kept() {
    for w in ["quick", "bright", "swift", "clever", "smart", "fast"] {
        assert!(ADJECTIVES.contains(&w), "{w}");
    }
    for w in ["beam", "tunnel", "link", "bridge", "gate", "portal"] {
        assert!(NOUNS.contains(&w), "{w}");
    }
}

#[test]
fn word_lists_have_no_duplicates_and_give_millions_of_names() {
    let adj: HashSet<_> = ADJECTIVES.iter().collect();
    let noun: HashSet<_> = NOUNS.iter().collect();
    assert_eq!(adj.len(), ADJECTIVES.len());
    assert_eq!(noun.len(), NOUNS.len());
    let space = adj.len() as u64 * noun.len() as u64 * 36u64.pow(3);
    assert!(space > 1_000_000_000, "space = {space}");
}

#[test]
fn reserved_and_invalid_names_are_refused() {
    for r in ["api", "www", "admin", "app", "mail", "API", "Www"] {
        assert!(
            matches!(validate(r, &[]), Err(NameError::Reserved(_))),
            "{r}"
        );
    }
    assert!(matches!(
        validate("edge", &["edge".to_string()]),
        Err(NameError::Reserved(_))
    ));
    for bad in [
        "",
        "-a",
        "a-",
        "a.b",
        "a_b",
        "é",
        "xn--80ak6aa92e",
        "a b",
        &"a".repeat(64),
    ] {
        assert!(
            matches!(validate(bad, &[]), Err(NameError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert_eq!(validate("My-App", &[]).unwrap(), "my-app");
    assert_eq!(validate(&"a".repeat(63), &[]).unwrap().len(), 63);
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

proptest! {
    #[test]
    fn generated_names_are_valid_unreserved_labels(_i in 0u8..255) {
        let n = random_name();
        prop_assert!(is_dns_label(&n), "{n}");
        prop_assert_eq!(validate(&n, &[]).unwrap(), n.clone());
        let parts: Vec<_> = n.split('-').collect();
        prop_assert_eq!(parts.len(), 3);
        prop_assert_eq!(parts[2].len(), 3);
        let f = fallback_name();
        prop_assert!(is_dns_label(&f) && f.starts_with("tunnel-") && f.len() == 17, "{f}");
    }

    #[test]
    fn validate_only_accepts_dns_labels(s in "\\PC{0,70}") {
        if let Ok(n) = validate(&s, &[]) {
            prop_assert!(is_dns_label(&n), "{n}");
        }
    }
}
