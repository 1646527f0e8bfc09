//! Production logs on the agent: capture (`capture`), line splitting (`lines`), parsing (`parse`), secret
//! masking (`mask`), the bounded buffer with filtered readers (`buffer`), and
//! file following (`tail`).
//! Everything that decides what leaves production runs here, not on the laptop.

pub mod buffer;
pub mod capture;
pub mod lines;
pub mod mask;
pub mod parse;
pub mod tail;

pub use buffer::{Filter, Limits, LogBuffer, LogReader};
pub use mask::Masker;
pub use parse::{Parsed, parse_line};
