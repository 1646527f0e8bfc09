//! Who may do what, and proving it: tokens and their check (`auth`), the
//! failure throttle per address (`throttle`), the server's clock (`clock`), human
//! passwords (`password`), scopes and roles (`scope`), the mail that proves
//! an address (`mail`), and revocation reaching every live connection
//! (`revocation`). The HTTP side of accounts is in `api`.

pub mod auth;
pub mod clock;
pub mod mail;
pub mod password;
pub mod revocation;
pub mod scope;
pub mod throttle;
