//! Every provider's signature check on attacker-chosen headers, body, URL and
//! clock, the event description, the generic scheme's spec parser, and one
//! property: what `resign_with` signs, `verify_with` accepts.
#![no_main]

use beam_proto::webhook::{self, Context, HmacScheme, Provider};
use libfuzzer_sys::fuzz_target;

/// Splits `data` at the first `0xff` bytes into up to `N` parts.
fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&[][..]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.iter().position(|b| *b == 0xff) {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &[];
            }
        }
    }
    out[N - 1] = rest;
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, data)) = data.split_first() else {
        return;
    };
    let provider = Provider::ALL[sel as usize % Provider::ALL.len()];
    let [secret, url, head, scheme, body] = parts::<5>(data);
    let secret = String::from_utf8_lossy(secret);
    let url = String::from_utf8_lossy(url).into_owned();
    let headers: Vec<(String, String)> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let scheme = HmacScheme::parse(&String::from_utf8_lossy(scheme)).ok();
    let now = 1_700_000_000 + i64::from(sel);
    let urls = [url];
    let ctx = Context {
        urls: &urls,
        hmac: scheme.as_ref(),
    };
    let _ = webhook::verify_with(provider, &secret, &headers, body, now, &ctx);
    let _ = webhook::describe(provider, &headers, body);
    let _ = webhook::resign_warning(provider, body, now);

    // Re-signing then verifying with the same secret and clock must pass
    // (Linear's timestamp is inside the body, so only its own clock counts).
    let mut signed = headers.clone();
    if provider.resignable()
        && provider != Provider::Linear
        && webhook::resign_with(provider, &secret, &mut signed, body, now, &ctx).is_ok()
    {
        assert_eq!(
            webhook::verify_with(provider, &secret, &signed, body, now, &ctx),
            Ok(()),
            "{provider}: a fresh signature was refused"
        );
    }
});
