//! Calls answered by every replica of an environment's agent, combined into
//! one answer: `beam health` (each instance, and "2 of 3 healthy") and `beam
//! env check` (verdicts, and the names on which instances disagree).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::replicas::{AgentRequest, Replica};
use crate::state::State;

/// Longest wait for one replica's answer: a replica that hangs is reported,
/// not waited for.
const ANSWER_WAIT: Duration = Duration::from_secs(15);
/// Largest answer read from one replica.
const ANSWER_MAX: usize = 256 * 1024;

/// One replica's JSON answer, or why there is none.
pub(crate) struct Answer {
    /// The replica's instance name.
    pub instance: String,
    /// The node it is connected to (`None`: this one).
    pub node: Option<String>,
    /// Its answer.
    pub result: Result<Value, Failure>,
}

/// Why a replica gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The status the agent answered with (`None`: it did not answer).
    pub status: Option<http::StatusCode>,
    /// What it said, or what went wrong.
    pub message: String,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }
}

/// Sends `req` to every replica at once and reads their JSON answers.
pub(crate) async fn ask_all(
    state: &State,
    env_id: i64,
    all: &[Replica],
    req: &AgentRequest,
) -> Vec<Answer> {
    let asks = all.iter().map(|r| async move {
        let result = match tokio::time::timeout(ANSWER_WAIT, ask(state, env_id, r, req)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", ANSWER_WAIT.as_secs()).into()),
        };
        Answer {
            instance: r.instance.clone(),
            node: r.node().map(str::to_string),
            result,
        }
    });
    futures_util::future::join_all(asks).await
}

async fn ask(
    state: &State,
    env_id: i64,
    r: &Replica,
    req: &AgentRequest,
) -> Result<Value, Failure> {
    let (resp, _) = r
        .call(state, env_id, req)
        .await
        .map_err(|e| Failure::from(e.to_string()))?;
    let status = resp.status();
    let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
        resp.into_body(),
        ANSWER_MAX,
    ))
    .await
    .map_err(|_| Failure::from("its answer broke off".to_string()))?
    .to_bytes();
    if !status.is_success() {
        return Err(Failure {
            status: Some(status),
            message: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    serde_json::from_slice(&body).map_err(|_| Failure::from("its answer is not JSON".to_string()))
}

/// The health report of every replica in one: `status` (`pass` when every
/// instance passes, `warn` when some are unhealthy or warn, `fail` when none is
/// healthy), `healthy`, `total`, `summary` ("2 of 3 healthy"), `instances`
/// (each report with its `instance` and `node`), and, for readers of one
/// agent's report, the fields of the first healthy one.
pub(crate) fn combine_health(answers: Vec<Answer>) -> Value {
    let total = answers.len();
    let mut instances = Vec::new();
    let mut healthy = 0;
    let mut warned = false;
    let mut first: Option<Value> = None;
    let mut first_healthy = false;
    for a in answers {
        let mut report = match a.result {
            Ok(Value::Object(m)) => Value::Object(m),
            Ok(_) => json!({"status": "fail", "error": "its answer is not a report"}),
            Err(e) => json!({"status": "fail", "error": e.message}),
        };
        match report["status"].as_str() {
            Some("pass") => healthy += 1,
            Some("warn") => {
                healthy += 1;
                warned = true;
            }
            _ => {}
        }
        // Readers of one agent's report get the first healthy one, or the
        // first report at all when none is healthy.
        let answered = report.get("error").is_none();
        if answered && (first.is_none() || (report["status"] != "fail" && !first_healthy)) {
            first_healthy = report["status"] != "fail";
            first = Some(report.clone());
        }
        report["instance"] = a.instance.into();
        report["node"] = a.node.map_or(Value::Null, Value::from);
        instances.push(report);
    }
    let status = if healthy == 0 {
        "fail"
    } else if healthy < total || warned {
        "warn"
    } else {
        "pass"
    };
    let mut out = match first {
        Some(Value::Object(m)) => Value::Object(m),
        _ => json!({}),
    };
    out["status"] = status.into();
    out["healthy"] = healthy.into();
    out["total"] = total.into();
    out["summary"] = format!("{healthy} of {total} healthy").into();
    out["instances"] = instances.into();
    out
}

/// Env check verdicts of every replica in one: `results` holds one verdict
/// per name, or `disagree` where instances answered differently;
/// `instances` holds each instance's verdicts (or its error) when there is
/// more than one. Only verdicts cross: the same as asking each instance.
pub(crate) fn combine_env_check(answers: Vec<Answer>) -> Result<Value, Failure> {
    let mut per: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut failed: BTreeMap<String, Failure> = BTreeMap::new();
    let total = answers.len();
    for a in answers {
        let parsed = a.result.and_then(|v| {
            serde_json::from_value::<BTreeMap<String, String>>(v["results"].clone())
                .map_err(|_| Failure::from("its answer has no verdicts".to_string()))
        });
        match parsed {
            Ok(r) => {
                per.insert(a.instance, r);
            }
            Err(e) => {
                failed.insert(a.instance, e);
            }
        }
    }
    let Some(first) = per.values().next().cloned() else {
        // The agent's own refusal (too many names) first: it says why.
        let mut all: Vec<Failure> = failed.into_values().collect();
        all.sort_by_key(|f| f.status.is_none());
        return Err(all
            .into_iter()
            .next()
            .unwrap_or_else(|| Failure::from(String::new())));
    };
    let mut results = BTreeMap::new();
    let mut disagree = Vec::new();
    for (name, verdict) in first {
        if per.values().all(|r| r.get(&name) == Some(&verdict)) {
            results.insert(name, verdict);
        } else {
            results.insert(name.clone(), "disagree".to_string());
            disagree.push(name);
        }
    }
    let mut out = json!({ "results": results });
    if total > 1 {
        let mut instances = serde_json::Map::new();
        for (i, r) in per {
            instances.insert(i, json!({ "results": r }));
        }
        for (i, e) in failed {
            instances.insert(i, json!({ "error": e.message }));
        }
        out["instances"] = instances.into();
        out["disagree"] = disagree.into();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(instance: &str, result: Result<Value, &str>) -> Answer {
        Answer {
            instance: instance.into(),
            node: None,
            result: result.map_err(|e| Failure::from(e.to_string())),
        }
    }

    #[test]
    fn health_counts_healthy_instances_and_keeps_each_report() {
        let v = combine_health(vec![
            answer("a", Ok(json!({"status": "pass", "version": "1"}))),
            answer("b", Ok(json!({"status": "warn"}))),
            answer("c", Err("no answer within 15 s")),
        ]);
        assert_eq!(v["status"], "warn");
        assert_eq!(v["summary"], "2 of 3 healthy");
        assert_eq!(v["version"], "1", "the first healthy report's fields");
        assert_eq!(v["instances"][2]["instance"], "c");
        assert_eq!(v["instances"][2]["status"], "fail");
        assert_eq!(v["instances"][2]["error"], "no answer within 15 s");
        let all = combine_health(vec![answer("a", Ok(json!({"status": "pass"})))]);
        assert_eq!(
            (all["status"].as_str(), all["summary"].as_str()),
            (Some("pass"), Some("1 of 1 healthy"))
        );
        let none = combine_health(vec![answer("a", Ok(json!({"status": "fail"})))]);
        assert_eq!(none["status"], "fail");
    }

    #[test]
    fn env_check_marks_names_where_instances_disagree() {
        let v = combine_env_check(vec![
            answer("a", Ok(json!({"results": {"X": "equal", "Y": "equal"}}))),
            answer(
                "b",
                Ok(json!({"results": {"X": "equal", "Y": "different"}})),
            ),
            answer("c", Err("gone")),
        ])
        .unwrap();
        assert_eq!(v["results"], json!({"X": "equal", "Y": "disagree"}));
        assert_eq!(v["disagree"], json!(["Y"]));
        assert_eq!(v["instances"]["b"]["results"]["Y"], "different");
        assert_eq!(v["instances"]["c"]["error"], "gone");
        let one =
            combine_env_check(vec![answer("a", Ok(json!({"results": {"X": "equal"}})))]).unwrap();
        assert_eq!(one, json!({"results": {"X": "equal"}}));
        assert_eq!(
            combine_env_check(vec![answer("a", Err("refused"))])
                .unwrap_err()
                .message,
            "refused"
        );
    }
}
