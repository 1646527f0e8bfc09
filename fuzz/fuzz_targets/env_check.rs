//! The env-check request a developer's CLI sends to the agent (JSON), checked
//! against a policy and a production environment.
#![no_main]

use beam_agent::envcheck::{CheckRequest, EnvPolicy, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = serde_json::from_slice::<CheckRequest>(data) else {
        return;
    };
    let policy = EnvPolicy {
        allow: vec!["*".into()],
        deny: vec!["SECRET_*".into()],
    };
    let env = |name: &str| (name.len() % 2 == 0).then(|| format!("value-of-{name}"));
    if let Ok(verdicts) = check(&req, &policy, env) {
        assert!(verdicts.len() <= req.vars.len());
    }
});
