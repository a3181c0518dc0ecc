//! The answers of a soak, by class: a shop under faults may refuse (429 from the rate limit,
//! 503 when it sheds load or its database is busy, both with `Retry-After`) and may say no
//! (409 out of stock, 422 over a reservation cap), but never fails: any other 5xx, or no
//! answer at all, is a violation.

use std::collections::BTreeMap;

use serde::Serialize;

/// Answers by class, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusVerdict {
    /// Whether every answer was one a healthy shop gives.
    pub passed: bool,
    /// What was wrong, one line per kind.
    pub violations: Vec<String>,
    /// Every answer by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// 2xx and 3xx.
    pub served: u64,
    /// 4xx other than 429: the shop said no (out of stock, a cap, not found).
    pub declined: u64,
    /// 429 and 503: deliberate refusals (rate limit, load shedding, a busy database).
    pub refused: u64,
    /// Other 5xx: failures.
    pub failed_5xx: u64,
    /// No answer within the request timeout.
    pub timed_out: u64,
    /// Connection refused or reset, or an unreadable answer.
    pub connection_failures: u64,
    /// Never sent: the load generator's in-flight bound was reached (reported, not a
    /// violation: it is the generator's limit, and the latency report shows the queueing).
    pub dropped: u64,
}

/// What the load generator counted that the check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// No answer within the request timeout.
    pub timed_out: u64,
    /// Connection failures.
    pub failed: u64,
    /// Not sent.
    pub dropped: u64,
}

/// Whether `status` is a refusal the shop makes on purpose, with `Retry-After`.
#[must_use]
pub fn is_deliberate_refusal(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// Classifies `answers` and finds the violations.
#[must_use]
pub fn check(answers: Answers) -> StatusVerdict {
    let mut v = StatusVerdict {
        passed: false,
        violations: Vec::new(),
        statuses: BTreeMap::new(),
        served: 0,
        declined: 0,
        refused: 0,
        failed_5xx: 0,
        timed_out: answers.timed_out,
        connection_failures: answers.failed,
        dropped: answers.dropped,
    };
    let mut failures = Vec::new();
    for (&status, &n) in &answers.statuses {
        match status {
            s if is_deliberate_refusal(s) => v.refused += n,
            200..=399 => v.served += n,
            400..=499 => v.declined += n,
            _ => {
                v.failed_5xx += n;
                failures.push(format!("{n} x {status}"));
            }
        }
    }
    v.statuses = answers.statuses;
    if !failures.is_empty() {
        v.violations
            .push(format!("server errors other than 503 shedding: {}", failures.join(", ")));
    }
    if v.timed_out > 0 {
        v.violations.push(format!("{} requests had no answer within the timeout", v.timed_out));
    }
    if v.connection_failures > 0 {
        v.violations.push(format!(
            "{} requests failed at the connection (refused, reset, or an unreadable answer)",
            v.connection_failures
        ));
    }
    if v.served == 0 {
        v.violations.push("no request was served".to_owned());
    }
    v.passed = v.violations.is_empty();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(statuses: &[(u16, u64)]) -> Answers {
        Answers { statuses: statuses.iter().copied().collect(), ..Answers::default() }
    }

    #[test]
    fn refusals_and_declines_pass_and_are_counted_by_class() {
        let v = check(Answers {
            dropped: 4,
            ..answers(&[(200, 900), (201, 80), (409, 12), (422, 3), (429, 7), (503, 40)])
        });
        assert!(v.passed, "{v:?}");
        assert_eq!((v.served, v.declined, v.refused, v.failed_5xx), (980, 15, 47, 0));
        assert_eq!(v.dropped, 4);
        assert_eq!(v.statuses[&503], 40);
    }

    #[test]
    fn any_other_5xx_fails_and_is_named() {
        let v = check(answers(&[(200, 10), (500, 2), (502, 1), (503, 9), (504, 1)]));
        assert!(!v.passed);
        assert_eq!((v.failed_5xx, v.refused), (4, 9));
        assert_eq!(
            v.violations,
            ["server errors other than 503 shedding: 2 x 500, 1 x 502, 1 x 504"]
        );
    }

    #[test]
    fn no_answer_fails_and_so_does_a_run_that_served_nothing() {
        let v = check(Answers { timed_out: 3, failed: 1, ..answers(&[(200, 5)]) });
        assert!(!v.passed);
        assert_eq!(v.violations.len(), 2, "{v:?}");
        assert!(v.violations[0].starts_with("3 requests had no answer"));
        assert!(v.violations[1].starts_with("1 requests failed at the connection"));
        let v = check(answers(&[(503, 100)]));
        assert_eq!(v.violations, ["no request was served"]);
    }
}
