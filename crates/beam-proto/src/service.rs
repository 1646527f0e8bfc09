//! The production agent's service contract: the paths the server relays
//! parity requests to on the agent's connection, and the headers both sides
//! read. One list, so the server, the agent and the agent's own answers
//! about what it serves cannot drift apart.

/// `GET`: the log buffer as NDJSON, filtered by the query.
pub const LOGS: &str = "/logs";
/// `GET`: every feature flag.
pub const FLAGS: &str = "/flags";
/// `GET ?key=K&user=U`: one flag evaluated.
pub const FLAGS_EVAL: &str = "/flags/eval";
/// `POST`: env check verdicts.
pub const ENV_CHECK: &str = "/env/check";
/// `GET`: the health report.
pub const HEALTH: &str = "/health";
/// `GET ?table=…`: sanitized rows as NDJSON.
pub const SYNC: &str = "/sync";
/// `GET ?table=…`: a proposed sanitization policy.
pub const SYNC_SUGGEST: &str = "/sync/suggest";
/// `GET ?table=…`: a table's foreign keys.
pub const SYNC_RELATIONS: &str = "/sync/relations";

/// Every route the agent serves, with its method.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", LOGS),
    ("GET", FLAGS),
    ("GET", FLAGS_EVAL),
    ("POST", ENV_CHECK),
    ("GET", HEALTH),
    ("GET", SYNC),
    ("GET", SYNC_SUGGEST),
    ("GET", SYNC_RELATIONS),
];

/// Response header of a sync: the number of rows it will send (for
/// progress and the ETA).
pub const SYNC_TOTAL_HEADER: &str = "beam-sync-total";

/// `GET /logs, GET /flags, …`: what the agent serves, for its 404 and 405
/// answers.
pub fn routes_text() -> String {
    ROUTES
        .iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `path` is one of the agent's routes (whatever the method).
pub fn is_route(path: &str) -> bool {
    ROUTES.iter().any(|(_, p)| *p == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_list_names_every_path_once() {
        let text = routes_text();
        for p in [
            LOGS,
            FLAGS,
            FLAGS_EVAL,
            ENV_CHECK,
            HEALTH,
            SYNC,
            SYNC_SUGGEST,
            SYNC_RELATIONS,
        ] {
            assert!(is_route(p), "{p}");
            assert_eq!(
                text.matches(&format!(" {p},")).count()
                    + usize::from(text.ends_with(&format!(" {p}"))),
                1,
                "{p} in {text}"
            );
        }
    }
}
