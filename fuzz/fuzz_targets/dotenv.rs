//! The dotenv parser of `beam env check` (the `beam` crate's own module,
//! compiled in here so the fuzz build need not build the whole CLI).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/beam/src/dotenv.rs"]
mod dotenv;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let outer = |name: &str| (name == "HOME").then(|| "/home/dev".to_string());
        let _ = dotenv::parse(text, outer);
    }
});
