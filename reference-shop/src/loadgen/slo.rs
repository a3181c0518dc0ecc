//! The gate: each objective checked against what the run recorded, and the exit code that
//! says whether all of them held.

use std::process::ExitCode;

use serde::Serialize;

use super::scenario::{Bound, Objective, Phase};
use super::stats::{Stats, Tally};

/// One objective as the run met it or missed it.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The objective.
    pub objective: Objective,
    /// It in words (`place_order p99 <= 500ms`).
    pub text: String,
    /// What the run measured: latency in ms, or the error rate; `None` when the objective's
    /// requests never happened (which misses it: an objective nothing exercised proves
    /// nothing).
    pub observed: Option<f64>,
    /// Requests the objective covers (attempts for an error rate, latency samples otherwise).
    pub samples: u64,
    /// Whether it held.
    pub passed: bool,
}

/// Every objective's check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// All held (true when there are none).
    pub passed: bool,
    /// One per objective.
    pub checks: Vec<Check>,
}

/// Checks `objectives` against `stats`.
pub(crate) fn evaluate(objectives: &[Objective], phases: &[Phase], stats: &Stats) -> Verdict {
    let checks: Vec<Check> = objectives
        .iter()
        .map(|o| {
            let phase =
                o.phase.as_ref().and_then(|name| phases.iter().position(|p| &p.name == name));
            let (tally, latency) = Tally::of(stats.select(phase, o.operation));
            let (observed, samples, passed) = match o.bound {
                Bound::Latency { percentile, max } => {
                    let samples = latency.len();
                    let value = (samples > 0).then(|| {
                        std::time::Duration::from_nanos(
                            latency.value_at_quantile(percentile / 100.0),
                        )
                    });
                    (value.map(|v| v.as_secs_f64() * 1e3), samples, value.is_some_and(|v| v <= max))
                }
                Bound::ErrorRate { max } => {
                    let rate = (tally.attempts > 0).then(|| tally.error_rate());
                    (rate, tally.attempts, rate.is_some_and(|r| r <= max))
                }
            };
            Check { objective: o.clone(), text: o.to_string(), observed, samples, passed }
        })
        .collect();
    Verdict { passed: checks.iter().all(|c| c.passed), checks }
}

/// How `reference-shop loadgen` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the run went as planned and every objective held.
    Passed,
    /// 1: an objective was missed.
    SloMissed,
    /// 2: bad arguments, scenario or target; nothing was sent.
    Invalid,
    /// 3: the run could not go as planned (the shop unreachable, customers not created, a
    /// fault switch refused).
    RunFailed,
}

impl Exit {
    /// The process exit code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Passed => 0,
            Self::SloMissed => 1,
            Self::Invalid => 2,
            Self::RunFailed => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::loadgen::operation::Operation;
    use crate::loadgen::scenario::Scenario;
    use crate::loadgen::stats::Outcome;

    #[test]
    fn objectives_hold_or_miss_on_what_was_recorded() {
        let scenario = Scenario::from_toml(
            "[[phase]]\nname = \"calm\"\nduration = \"1s\"\nrate = 1\n\
             [[phase]]\nname = \"storm\"\nduration = \"1s\"\nrate = 1\n",
        )
        .unwrap();
        let stats = Stats::new(2);
        let ms = Duration::from_millis;
        // calm: 99 orders at 10 ms and one at 400 ms; storm: 10 orders at 2 s, 5 of them 503s.
        for i in 0..100 {
            stats.sending(ms(0));
            let latency = if i == 99 { ms(400) } else { ms(10) };
            stats.record(0, Operation::PlaceOrder, Outcome::Answered(201), latency, latency);
        }
        for i in 0..10 {
            stats.sending(ms(0));
            let status = if i % 2 == 0 { 503 } else { 201 };
            stats.record(1, Operation::PlaceOrder, Outcome::Answered(status), ms(2000), ms(5));
        }
        let check = |specs: &[&str]| {
            let objectives: Vec<Objective> = specs.iter().map(|s| s.parse().unwrap()).collect();
            evaluate(&objectives, scenario.phases(), &stats)
        };
        let v = check(&["place_order@calm:p99=20ms", "place_order@calm:p100=500ms"]);
        assert!(v.passed, "{v:?}");
        assert!((v.checks[0].observed.unwrap() - 10.0).abs() < 0.1);
        assert_eq!(v.checks[0].samples, 100);

        let v = check(&["place_order@calm:p99.5=20ms"]);
        assert!(!v.passed, "the 400 ms order is above p99.5");

        let v =
            check(&["place_order:errors=5%", "place_order@storm:errors=50%", "all@calm:errors=0"]);
        let got: Vec<bool> = v.checks.iter().map(|c| c.passed).collect();
        // 5 errors in 110 attempts is 4.5 %; half the storm; none in the calm phase.
        assert_eq!(got, [true, true, true]);
        assert!(check(&["place_order@storm:errors=49%"]).checks[0].passed.eq(&false));
        // Latency runs from the intended send: the storm's 2 s count, not its 5 ms service.
        assert!(!check(&["place_order@storm:p50=1s"]).passed);

        // Nothing recorded for searches: the objective is missed, not vacuously met.
        let v = check(&["search:p99=1s", "search:errors=100%"]);
        assert!(v.checks.iter().all(|c| !c.passed && c.observed.is_none() && c.samples == 0));
        assert!(evaluate(&[], scenario.phases(), &stats).passed);
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let codes: Vec<u8> =
            [Exit::Passed, Exit::SloMissed, Exit::Invalid, Exit::RunFailed].map(Exit::code).into();
        assert_eq!(codes, [0, 1, 2, 3]);
    }
}
