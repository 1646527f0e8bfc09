//! The sync policy file the agent loads (TOML), whatever an operator writes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = beam_agent::sync::Policy::parse(text);
    }
});
