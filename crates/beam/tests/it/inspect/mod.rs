//! The request inspector: its API after real traffic, and its page in a
//! real headless Chromium.

mod api;
mod browser;
