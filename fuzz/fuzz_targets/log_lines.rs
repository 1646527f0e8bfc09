//! The agent's log line parser (JSON, logfmt, plain text) and masking, on
//! any line an app (or an attacker writing into its logs) can produce.
#![no_main]

use std::sync::OnceLock;

use beam_agent::logs::mask::Masker;
use beam_agent::logs::parse::parse_line;
use libfuzzer_sys::fuzz_target;

fn masker() -> &'static Masker {
    static M: OnceLock<Masker> = OnceLock::new();
    M.get_or_init(|| Masker::new(true))
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let _ = parse_line(&line);
    let masked = masker().mask(&line);
    // Masking is a fixed point: masking the masked text changes nothing more.
    assert_eq!(masker().mask(&masked), masked, "masking twice differs");
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line) {
        masker().mask_value(&mut v);
    }
});
