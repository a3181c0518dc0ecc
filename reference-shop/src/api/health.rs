//! Liveness and readiness: `GET /health/live` (the process answers) and `GET /health/ready`
//! (the shop can serve customers now; `/health` is the same check).

use serde::{Deserialize, Serialize};

/// `GET /health/live` answer: always `ok` with 200 while the process serves HTTP at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: ReadyStatus,
}

/// `GET /health/ready` (and `GET /health`) answer: 200 when every check passes, 503 with
/// the reasons otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ok` (200) or `unavailable` (503).
    pub status: ReadyStatus,
    /// `ok`, or what the store check said (kept from the first `/health` body).
    pub database: String,
    /// Each check and what it found.
    pub checks: ReadyChecks,
    /// Why the shop is not ready, one line per failed check; empty when it is.
    pub reasons: Vec<String>,
}

/// The readiness checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReadyChecks {
    /// The store answers a query within `health.store_timeout`.
    pub store: Check,
    /// Every event subscription's consumers run.
    pub bus: Check,
    /// The edge is not shedding: the bulkhead has free slots and shed nothing within
    /// `health.shed_window`.
    pub edge: Check,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// What it found (`ok`, or why not).
    pub detail: String,
}

impl Check {
    /// A passed check.
    #[must_use]
    pub fn pass() -> Self {
        Self { ok: true, detail: "ok".to_owned() }
    }

    /// A failed check, and why.
    #[must_use]
    pub fn fail(detail: impl Into<String>) -> Self {
        Self { ok: false, detail: detail.into() }
    }
}

/// Whether the shop can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Every check passed.
    Ok,
    /// A check failed (answered with 503).
    Unavailable,
}

impl Readiness {
    /// The answer for these checks: `ok` when all passed, otherwise `unavailable` with one
    /// reason per failed check.
    #[must_use]
    pub fn of(checks: ReadyChecks) -> Self {
        let reasons: Vec<String> =
            [("store", &checks.store), ("bus", &checks.bus), ("edge", &checks.edge)]
                .into_iter()
                .filter(|(_, c)| !c.ok)
                .map(|(name, c)| format!("{name}: {}", c.detail))
                .collect();
        let status = if reasons.is_empty() { ReadyStatus::Ok } else { ReadyStatus::Unavailable };
        Self { status, database: checks.store.detail.clone(), checks, reasons }
    }
}
