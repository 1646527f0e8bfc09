//! The flags file the agent loads, as TOML and as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = beam_agent::flags::parse_file("fuzz".into(), text, sel & 1 == 1);
    }
});
