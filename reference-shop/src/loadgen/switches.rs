//! Fault switches during a run, through the shop's admin API: each switch's settings at its
//! `at`, what the shop had before the run put back at its `until`, and every switched setting
//! put back when the run ends (also when it is interrupted), so a run never leaves the shop
//! broken.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::scenario::FaultSwitch;

/// The admin API refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No answer.
    #[error("admin API {path}: {source}")]
    Http {
        /// The endpoint.
        path: &'static str,
        /// Why.
        source: reqwest::Error,
    },
    /// An answer other than success (a wrong admin token is a 401).
    #[error("admin API {path} answered {status}: {body}")]
    Refused {
        /// The endpoint.
        path: &'static str,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// The admin endpoints the load generator uses.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    pub(crate) fn new(client: reqwest::Client, base: &str, token: String) -> Self {
        Self { client, base: base.to_owned(), token }
    }

    async fn call(
        &self,
        path: &'static str,
        body: Option<&Map<String, Value>>,
    ) -> Result<Value, AdminError> {
        let url = format!("{}{path}", self.base);
        let request = match body {
            Some(body) => self.client.put(url).json(body),
            None => self.client.get(url),
        };
        let http = |source| AdminError::Http { path, source };
        let response = request.header("x-admin-token", &self.token).send().await.map_err(http)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(http)?;
        if !(200..300).contains(&status) {
            return Err(AdminError::Refused {
                path,
                status,
                body: text.chars().take(200).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The fault settings now (`GET /admin/faults`).
    pub(crate) async fn faults(&self) -> Result<Map<String, Value>, AdminError> {
        match self.call("/admin/faults", None).await? {
            Value::Object(map) => Ok(map),
            other => Err(AdminError::Refused {
                path: "/admin/faults",
                status: 200,
                body: format!("not an object: {other}"),
            }),
        }
    }

    /// Changes fault settings (`PUT /admin/faults`).
    pub(crate) async fn set_faults(&self, set: &Map<String, Value>) -> Result<(), AdminError> {
        self.call("/admin/faults", Some(set)).await.map(drop)
    }

    /// What the resilience mechanisms did (`GET /admin/status`).
    pub(crate) async fn status(&self) -> Result<Value, AdminError> {
        self.get("/admin/status").await
    }

    /// Any admin read (`GET path`), as JSON (`null` for a body that is not JSON).
    pub(crate) async fn get(&self, path: &'static str) -> Result<Value, AdminError> {
        self.call(path, None).await
    }
}

/// One change of fault settings, planned at `at` from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchEvent {
    /// When, from the start of the run.
    #[serde(with = "levee::core::serde_duration")]
    pub at: Duration,
    /// The settings sent.
    pub set: Map<String, Value>,
    /// Whether it puts back what the shop had before the run.
    pub restore: bool,
}

/// A switch as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedSwitch {
    /// The plan.
    #[serde(flatten)]
    pub event: SwitchEvent,
    /// When it was sent, in seconds from the start of the run.
    pub sent_s: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The settings of `baseline` for the keys of `keys`.
fn restore_of<'a>(
    keys: impl Iterator<Item = &'a String>,
    baseline: &Map<String, Value>,
) -> Map<String, Value> {
    keys.filter_map(|k| baseline.get(k).map(|v| (k.clone(), v.clone()))).collect()
}

/// Every change in time order (at one instant, restores before sets, so a window that ends
/// where the next begins hands over cleanly).
pub(crate) fn plan(switches: &[FaultSwitch], baseline: &Map<String, Value>) -> Vec<SwitchEvent> {
    let mut events = Vec::new();
    for s in switches {
        events.push(SwitchEvent { at: s.at, set: s.set.clone(), restore: false });
        if let Some(until) = s.until {
            events.push(SwitchEvent {
                at: until,
                set: restore_of(s.set.keys(), baseline),
                restore: true,
            });
        }
    }
    events.sort_by_key(|e| (e.at, !e.restore));
    events
}

/// What puts every setting `switches` touch back to `baseline` (empty when none).
pub(crate) fn final_restore(
    switches: &[FaultSwitch],
    baseline: &Map<String, Value>,
) -> Map<String, Value> {
    restore_of(switches.iter().flat_map(|s| s.set.keys()), baseline)
}

/// Sends `events` at their times from `start` (each at most once); returns what happened.
/// Cancelled by dropping it; [`final_restore`] then puts things back.
pub(crate) async fn run(
    admin: &Admin,
    start: Instant,
    events: Vec<SwitchEvent>,
    applied: &parking_lot::Mutex<Vec<AppliedSwitch>>,
) {
    for event in events {
        tokio::time::sleep_until(start + event.at).await;
        let sent_s = start.elapsed().as_secs_f64();
        let error = admin.set_faults(&event.set).await.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::warn!(error = %e, "fault switch failed");
        }
        applied.lock().push(AppliedSwitch { event, sent_s, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn windows_restore_the_baseline_and_hand_over_in_order() {
        let s = |at, until: Option<u64>, set| FaultSwitch {
            at: Duration::from_secs(at),
            until: until.map(Duration::from_secs),
            set: map(set),
        };
        let switches = [
            s(20, Some(40), json!({ "provider_failure_rate": 1.0 })),
            s(40, None, json!({ "provider_latency_ms": 500, "provider_failure_rate": 0.5 })),
        ];
        let baseline = map(
            json!({ "provider_failure_rate": 0.0, "provider_latency_ms": 20, "store_latency_ms": 0 }),
        );
        let events = plan(&switches, &baseline);
        let got: Vec<(u64, Value, bool)> = events
            .iter()
            .map(|e| (e.at.as_secs(), Value::Object(e.set.clone()), e.restore))
            .collect();
        assert_eq!(
            got,
            [
                (20, json!({ "provider_failure_rate": 1.0 }), false),
                (40, json!({ "provider_failure_rate": 0.0 }), true),
                (40, json!({ "provider_latency_ms": 500, "provider_failure_rate": 0.5 }), false),
            ]
        );
        assert_eq!(
            Value::Object(final_restore(&switches, &baseline)),
            json!({ "provider_failure_rate": 0.0, "provider_latency_ms": 20 })
        );
        assert!(final_restore(&[], &baseline).is_empty());
    }
}
