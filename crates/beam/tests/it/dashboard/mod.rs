//! The dashboard: sign-in, cookies, CSRF, roles and hosts over plain HTTP
//! (`pages`), the time series behind its charts (`series`), and the pages
//! in a real headless Chromium after real traffic (`browser`).

mod browser;
mod pages;
mod series;
