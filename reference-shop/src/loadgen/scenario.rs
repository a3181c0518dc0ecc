//! Scenario files: what to send, at which rates, for how long, which faults to switch on
//! when, and the service-level objectives the run must meet.
//!
//! A scenario is TOML. Every key is optional except the phases; unknown keys are errors, so a
//! typo never silently runs a different test:
//!
//! ```toml
//! description = "steady load; the payment provider down from 20 s to 40 s"
//! customers = 32            # customers created before the load (1..=1000)
//! products = 500            # product ids drawn from 1..=products
//! hot_percent = 30          # share of product reads that go to product 1 (a flash sale)
//! declined_percent = 10     # share of orders paid with a card that is always declined
//! max_in_flight = 1024      # requests outstanding at most; a send beyond it is dropped
//! request_timeout = "10s"   # per request, from its actual send
//!
//! [mix]                     # relative weights (operations left out are not sent)
//! get_product = 60
//! search = 12
//! add_to_cart = 12
//! place_order = 10
//! list_orders = 6
//!
//! [[phase]]                 # phases run one after another
//! name = "steady"
//! duration = "20s"
//! rate = 100                # requests per second (0..=20000)
//!
//! [[phase]]
//! name = "ramp"
//! duration = "20s"
//! rate = 100
//! rate_to = 400             # a linear ramp from `rate` to `rate_to`
//!
//! [[fault]]                 # through the shop's admin API (PUT /admin/faults)
//! at = "20s"
//! until = "40s"             # optional: put back what the shop had before the run
//! set = { provider_failure_rate = 1.0 }
//!
//! [[slo]]                   # the gate: a missed objective makes the exit code 1
//! operation = "place_order" # an operation, or "all"
//! percentile = 99
//! max_latency = "500ms"
//! max_error_rate = 0.01     # errors / attempts
//! phase = "steady"          # optional: only this phase's requests
//! ```
//!
//! Durations are strings with a unit (`"250ms"`, `"20s"`, `"1m"`) or milliseconds. Bad input
//! is a [`ScenarioError`] naming the key (and, for syntax and types, the line).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::operation::{Mix, Operation};
use crate::faults::{FaultPatch, FaultSettings, Faults};

/// Longest run a scenario may describe: one hour.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Highest rate of a phase, in requests per second.
pub const MAX_RATE: f64 = 20_000.0;
/// Most phases in one scenario.
pub const MAX_PHASES: usize = 64;
/// Most requests outstanding at once.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Most customers created before the load.
pub const MAX_CUSTOMERS: u32 = 1000;
/// Longest per-request timeout.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A scenario file could not be read or describes an invalid run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, or a key of the wrong type or unknown (the message names the line).
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// Well-formed, but a value is out of range or inconsistent with another.
    #[error("`{field}` {reason}")]
    Invalid {
        /// Which key, as a path (`phase[1].rate`, `slo[0].phase`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { field: field.into(), reason: reason.into() }
}

/// The file as written (validated into a [`Scenario`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: Option<String>,
    customers: Option<u32>,
    products: Option<u64>,
    hot_percent: Option<u64>,
    declined_percent: Option<u64>,
    max_in_flight: Option<usize>,
    #[serde(default, with = "levee::core::serde_duration::option")]
    request_timeout: Option<Duration>,
    mix: Option<BTreeMap<Operation, u32>>,
    #[serde(default, rename = "phase")]
    phases: Vec<PhaseFile>,
    #[serde(default, rename = "fault")]
    faults: Vec<FaultFile>,
    #[serde(default)]
    slo: Vec<SloFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseFile {
    name: String,
    #[serde(with = "levee::core::serde_duration")]
    duration: Duration,
    rate: f64,
    rate_to: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    #[serde(with = "levee::core::serde_duration")]
    at: Duration,
    #[serde(default, with = "levee::core::serde_duration::option")]
    until: Option<Duration>,
    set: FaultPatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SloFile {
    operation: String,
    phase: Option<String>,
    percentile: Option<f64>,
    #[serde(default, with = "levee::core::serde_duration::option")]
    max_latency: Option<Duration>,
    max_error_rate: Option<f64>,
}

/// A stretch of the run at one rate, or ramping linearly from one rate to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// Its name in reports and objectives.
    pub name: String,
    /// When it starts, from the start of the run.
    #[serde(with = "levee::core::serde_duration")]
    pub start: Duration,
    /// How long it lasts.
    #[serde(with = "levee::core::serde_duration")]
    pub duration: Duration,
    /// Requests per second at its start.
    pub rate: f64,
    /// Requests per second at its end (equal to `rate` for a constant rate).
    pub rate_to: f64,
}

impl Phase {
    /// When it ends, from the start of the run.
    #[must_use]
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }

    /// Requests it schedules (the integral of its rate; fractions carry into the next phase).
    #[must_use]
    pub fn planned(&self) -> f64 {
        (self.rate + self.rate_to) / 2.0 * self.duration.as_secs_f64()
    }
}

/// Fault settings switched through the admin API at a time of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSwitch {
    /// When to switch them on.
    #[serde(with = "levee::core::serde_duration")]
    pub at: Duration,
    /// When to put back what the shop had before the run (otherwise they stay until the next
    /// switch of the same setting, or until the run ends).
    #[serde(with = "levee::core::serde_duration::option")]
    pub until: Option<Duration>,
    /// The settings, as `PUT /admin/faults` takes them.
    pub set: serde_json::Map<String, serde_json::Value>,
}

/// What an objective bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Bound {
    /// The `percentile`-th percentile of latency (from intended send time) at most `max`.
    Latency {
        /// In `(0, 100]`.
        percentile: f64,
        /// The bound.
        #[serde(with = "levee::core::serde_duration")]
        max: Duration,
    },
    /// Errors (see [`Outcome::is_error`](super::Outcome::is_error)) over attempts at most
    /// `max`.
    ErrorRate {
        /// In `[0, 1]`.
        max: f64,
    },
}

/// A service-level objective the run must meet for its exit code to be 0.
///
/// Written in a scenario's `[[slo]]` tables or on the command line as
/// `OPERATION[@PHASE]:pNN=DURATION` or `OPERATION[@PHASE]:errors=RATE`:
///
/// ```
/// use std::time::Duration;
/// use reference_shop::loadgen::{Bound, Objective, Operation};
///
/// let o: Objective = "place_order@steady:p99.9=750ms".parse().unwrap();
/// assert_eq!(o.operation, Some(Operation::PlaceOrder));
/// assert_eq!(o.phase.as_deref(), Some("steady"));
/// assert_eq!(o.bound, Bound::Latency { percentile: 99.9, max: Duration::from_millis(750) });
/// assert_eq!(o.to_string(), "place_order p99.9 <= 750ms in phase steady");
///
/// let o: Objective = "all:errors=0.5%".parse().unwrap();
/// assert_eq!((o.operation, o.bound), (None, Bound::ErrorRate { max: 0.005 }));
/// assert!("all:p101=1s".parse::<Objective>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Objective {
    /// The operation (`None`: every operation together).
    pub operation: Option<Operation>,
    /// The phase whose requests count (`None`: the whole run).
    pub phase: Option<String>,
    /// The bound.
    #[serde(flatten)]
    pub bound: Bound,
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation.map_or("all", Operation::name))?;
        match self.bound {
            Bound::Latency { percentile, max } => {
                write!(f, " p{percentile} <= {}", levee::core::format_duration(max))?;
            }
            Bound::ErrorRate { max } => write!(f, " error rate <= {}%", max * 100.0)?,
        }
        if let Some(phase) = &self.phase {
            write!(f, " in phase {phase}")?;
        }
        Ok(())
    }
}

fn check_percentile(field: &str, p: f64) -> Result<f64, ScenarioError> {
    if p > 0.0 && p <= 100.0 {
        Ok(p)
    } else {
        Err(invalid(field, "must lie in (0, 100]: 99 is the 99th percentile"))
    }
}

fn check_error_rate(field: &str, rate: f64) -> Result<f64, ScenarioError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(invalid(field, "must lie in 0.0..=1.0 (0.01 is 1 %)"))
    }
}

fn operation_or_all(field: &str, name: &str) -> Result<Option<Operation>, ScenarioError> {
    if name == "all" {
        return Ok(None);
    }
    Operation::from_name(name).map(Some).ok_or_else(|| {
        let names: Vec<&str> = Operation::ALL.iter().map(|op| op.name()).collect();
        invalid(field, format!("is `{name}`: expected `all` or one of {}", names.join(", ")))
    })
}

impl FromStr for Objective {
    type Err = ScenarioError;

    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        const FORM: &str = "is not OPERATION[@PHASE]:pNN=DURATION or OPERATION[@PHASE]:errors=RATE";
        let field = "--slo";
        let (scope, bound) = s.split_once(':').ok_or_else(|| invalid(field, FORM))?;
        let (operation, phase) = match scope.split_once('@') {
            Some((op, phase)) if !phase.is_empty() => (op, Some(phase.to_owned())),
            Some(_) => return Err(invalid(field, FORM)),
            None => (scope, None),
        };
        let operation = operation_or_all(field, operation)?;
        let (what, value) = bound.split_once('=').ok_or_else(|| invalid(field, FORM))?;
        let bound = if what == "errors" {
            let rate = match value.strip_suffix('%') {
                Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
                None => value.trim().parse::<f64>(),
            }
            .map_err(|_| invalid(field, format!("error rate `{value}` is not a number")))?;
            Bound::ErrorRate { max: check_error_rate(field, rate)? }
        } else if let Some(p) = what.strip_prefix('p') {
            let percentile = p
                .parse::<f64>()
                .map_err(|_| invalid(field, format!("`{what}` is not a percentile like p99")))?;
            let max = levee::core::parse_duration(value).map_err(|e| invalid(field, e))?;
            Bound::Latency { percentile: check_percentile(field, percentile)?, max }
        } else {
            return Err(invalid(field, FORM));
        };
        Ok(Self { operation, phase, bound })
    }
}

/// A validated scenario: phases, mix, faults and objectives, every value within its bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    description: String,
    customers: u32,
    products: u64,
    hot_percent: u64,
    declined_percent: u64,
    max_in_flight: usize,
    request_timeout: Duration,
    mix: Mix,
    phases: Vec<Phase>,
    faults: Vec<FaultSwitch>,
    objectives: Vec<Objective>,
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    ///
    /// # Errors
    /// [`ScenarioError::Syntax`] for malformed TOML, unknown keys and values of the wrong
    /// type; [`ScenarioError::Invalid`] for values out of range or inconsistent.
    pub fn from_toml(text: &str) -> Result<Self, ScenarioError> {
        Self::validate(toml::from_str(text)?)
    }

    /// Reads and validates the scenario file at `path`.
    ///
    /// # Errors
    /// [`ScenarioError::Read`] when the file cannot be read, else as [`Scenario::from_toml`].
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text)
    }

    /// One phase at a constant `rate` for `duration`, with the default mix and settings.
    ///
    /// # Errors
    /// A rate or duration out of range.
    pub fn constant(rate: f64, duration: Duration) -> Result<Self, ScenarioError> {
        Self::validate(File {
            description: Some(format!("{rate}/s for {}", levee::core::format_duration(duration))),
            phases: vec![PhaseFile { name: "load".to_owned(), duration, rate, rate_to: None }],
            ..File::default()
        })
    }

    fn validate(file: File) -> Result<Self, ScenarioError> {
        let customers = file.customers.unwrap_or(32);
        if !(1..=MAX_CUSTOMERS).contains(&customers) {
            return Err(invalid("customers", format!("must lie in 1..={MAX_CUSTOMERS}")));
        }
        let products = file.products.unwrap_or(500);
        if !(1..=1_000_000).contains(&products) {
            return Err(invalid("products", "must lie in 1..=1000000"));
        }
        let hot_percent = file.hot_percent.unwrap_or(30);
        let declined_percent = file.declined_percent.unwrap_or(10);
        for (field, value) in [("hot_percent", hot_percent), ("declined_percent", declined_percent)]
        {
            if value > 100 {
                return Err(invalid(field, "must lie in 0..=100"));
            }
        }
        let max_in_flight = file.max_in_flight.unwrap_or(1024);
        if !(1..=MAX_IN_FLIGHT).contains(&max_in_flight) {
            return Err(invalid("max_in_flight", format!("must lie in 1..={MAX_IN_FLIGHT}")));
        }
        let request_timeout = file.request_timeout.unwrap_or(Duration::from_secs(10));
        if request_timeout < Duration::from_millis(1) || request_timeout > MAX_REQUEST_TIMEOUT {
            return Err(invalid("request_timeout", "must lie in 1ms..=120s"));
        }
        let mix = match file.mix {
            None => Mix::default(),
            Some(weights) => {
                Mix::new(weights).ok_or_else(|| invalid("mix", "needs a weight above zero"))?
            }
        };
        let phases = validate_phases(file.phases)?;
        let end = phases.last().map_or(Duration::ZERO, Phase::end);
        let faults = validate_faults(file.faults, end)?;
        let mut scenario = Self {
            description: file.description.unwrap_or_default(),
            customers,
            products,
            hot_percent,
            declined_percent,
            max_in_flight,
            request_timeout,
            mix,
            phases,
            faults,
            objectives: Vec::new(),
        };
        for (i, slo) in file.slo.into_iter().enumerate() {
            let at = |key: &str| format!("slo[{i}].{key}");
            let operation = operation_or_all(&at("operation"), &slo.operation)?;
            let mut bounds = Vec::new();
            match (slo.percentile, slo.max_latency) {
                (Some(p), Some(max)) => bounds.push(Bound::Latency {
                    percentile: check_percentile(&at("percentile"), p)?,
                    max,
                }),
                (None, None) => {}
                (Some(_), None) => return Err(invalid(at("percentile"), "needs max_latency")),
                (None, Some(_)) => return Err(invalid(at("max_latency"), "needs percentile")),
            }
            if let Some(rate) = slo.max_error_rate {
                bounds
                    .push(Bound::ErrorRate { max: check_error_rate(&at("max_error_rate"), rate)? });
            }
            if bounds.is_empty() {
                return Err(invalid(
                    format!("slo[{i}]"),
                    "bounds nothing: give percentile and max_latency, or max_error_rate",
                ));
            }
            for bound in bounds {
                scenario.add_objective_at(
                    &at("phase"),
                    Objective { operation, phase: slo.phase.clone(), bound },
                )?;
            }
        }
        Ok(scenario)
    }

    /// Adds an objective (from the command line).
    ///
    /// # Errors
    /// The objective names a phase the scenario does not have.
    pub fn add_objective(&mut self, objective: Objective) -> Result<(), ScenarioError> {
        self.add_objective_at("--slo", objective)
    }

    fn add_objective_at(&mut self, field: &str, objective: Objective) -> Result<(), ScenarioError> {
        if let Some(phase) = &objective.phase
            && !self.phases.iter().any(|p| &p.name == phase)
        {
            let names: Vec<&str> = self.phases.iter().map(|p| p.name.as_str()).collect();
            return Err(invalid(
                field,
                format!("names phase `{phase}`; the phases are {}", names.join(", ")),
            ));
        }
        self.objectives.push(objective);
        Ok(())
    }

    /// Replaces the bound on outstanding requests.
    ///
    /// # Errors
    /// `n` outside `1..=MAX_IN_FLIGHT`.
    pub fn set_max_in_flight(&mut self, n: usize) -> Result<(), ScenarioError> {
        if !(1..=MAX_IN_FLIGHT).contains(&n) {
            return Err(invalid("--max-in-flight", format!("must lie in 1..={MAX_IN_FLIGHT}")));
        }
        self.max_in_flight = n;
        Ok(())
    }

    /// The free-text description.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Customers created before the load.
    #[must_use]
    pub fn customers(&self) -> u32 {
        self.customers
    }

    /// Product ids are drawn from `1..=products()`.
    #[must_use]
    pub fn products(&self) -> u64 {
        self.products
    }

    /// Percent of product reads and cart lines that go to product 1.
    #[must_use]
    pub fn hot_percent(&self) -> u64 {
        self.hot_percent
    }

    /// Percent of orders paid with a card that is always declined.
    #[must_use]
    pub fn declined_percent(&self) -> u64 {
        self.declined_percent
    }

    /// Requests outstanding at most.
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// Per-request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The operation mix.
    #[must_use]
    pub fn mix(&self) -> &Mix {
        &self.mix
    }

    /// The phases, in order, back to back from zero.
    #[must_use]
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// The fault switches, in the order of the file.
    #[must_use]
    pub fn faults(&self) -> &[FaultSwitch] {
        &self.faults
    }

    /// The objectives.
    #[must_use]
    pub fn objectives(&self) -> &[Objective] {
        &self.objectives
    }

    /// The whole run: the end of the last phase.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.phases.last().map_or(Duration::ZERO, Phase::end)
    }

    /// Requests the phases schedule in all (the last fraction rounded up).
    #[must_use]
    pub fn planned(&self) -> u64 {
        self.phases.iter().map(Phase::planned).sum::<f64>().ceil() as u64
    }
}

fn validate_rate(field: String, rate: f64) -> Result<f64, ScenarioError> {
    if rate.is_finite() && (0.0..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(invalid(field, format!("must lie in 0..={MAX_RATE} requests per second")))
    }
}

fn validate_phases(phases: Vec<PhaseFile>) -> Result<Vec<Phase>, ScenarioError> {
    if phases.is_empty() {
        return Err(invalid(
            "phase",
            "is missing: add at least one [[phase]] with duration and rate",
        ));
    }
    if phases.len() > MAX_PHASES {
        return Err(invalid(
            "phase",
            format!("has {} entries; at most {MAX_PHASES}", phases.len()),
        ));
    }
    let mut start = Duration::ZERO;
    let mut out: Vec<Phase> = Vec::with_capacity(phases.len());
    for (i, p) in phases.into_iter().enumerate() {
        let at = |key: &str| format!("phase[{i}].{key}");
        let name = p.name.trim().to_owned();
        if name.is_empty() || name.len() > 40 || name.contains(['@', ':', '=']) {
            return Err(invalid(at("name"), "must be 1 to 40 characters, without @ : ="));
        }
        if out.iter().any(|q| q.name == name) {
            return Err(invalid(at("name"), format!("`{name}` names an earlier phase too")));
        }
        if p.duration.is_zero() {
            return Err(invalid(at("duration"), "must be above zero"));
        }
        let rate = validate_rate(at("rate"), p.rate)?;
        let rate_to = validate_rate(at("rate_to"), p.rate_to.unwrap_or(rate))?;
        let phase = Phase { name, start, duration: p.duration, rate, rate_to };
        start = phase.end();
        if start > MAX_DURATION {
            return Err(invalid(at("duration"), "brings the run past its bound of one hour"));
        }
        out.push(phase);
    }
    if out.iter().all(|p| p.planned() < 1.0) {
        return Err(invalid("phase", "schedule no request: every phase's rate is (nearly) zero"));
    }
    Ok(out)
}

/// The fields a patch sets, by name.
fn patch_fields(patch: &FaultPatch) -> serde_json::Map<String, serde_json::Value> {
    let mut set = serde_json::Map::new();
    if let Some(ms) = patch.provider_latency_ms {
        set.insert("provider_latency_ms".to_owned(), ms.into());
    }
    if let Some(rate) = patch.provider_failure_rate {
        set.insert("provider_failure_rate".to_owned(), rate.into());
    }
    if let Some(ms) = patch.store_latency_ms {
        set.insert("store_latency_ms".to_owned(), ms.into());
    }
    set
}

fn validate_faults(
    faults: Vec<FaultFile>,
    end: Duration,
) -> Result<Vec<FaultSwitch>, ScenarioError> {
    let mut out: Vec<FaultSwitch> = Vec::with_capacity(faults.len());
    for (i, f) in faults.into_iter().enumerate() {
        let at = |key: &str| format!("fault[{i}].{key}");
        // The shop's own check, so the file is refused before the run rather than mid-way.
        Faults::new(FaultSettings::default())
            .apply(f.set)
            .map_err(|e| invalid(at("set"), e.to_string()))?;
        let set = patch_fields(&f.set);
        if set.is_empty() {
            return Err(invalid(at("set"), "sets nothing"));
        }
        if f.at >= end {
            return Err(invalid(at("at"), "must fall inside the run (before the last phase ends)"));
        }
        if let Some(until) = f.until
            && (until <= f.at || until > end)
        {
            return Err(invalid(at("until"), "must lie after `at`, at most at the end of the run"));
        }
        // A switch may not land inside another's explicit window on the same setting: one of
        // the two would be undone early by the other's restore.
        for (j, other) in out.iter().enumerate() {
            let Some(key) = other.set.keys().find(|k| set.contains_key(*k)) else {
                continue;
            };
            let within = |t: Duration, s: &FaultSwitch| s.until.is_some_and(|u| s.at <= t && t < u);
            let theirs = FaultSwitch { at: f.at, until: f.until, set: set.clone() };
            if within(f.at, other) || within(other.at, &theirs) {
                return Err(invalid(
                    at("at"),
                    format!(
                        "switches `{key}` inside the window of fault[{j}], which switches it too"
                    ),
                ));
            }
        }
        out.push(FaultSwitch { at: f.at, until: f.until, set });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
description = "everything"
customers = 8
products = 100
hot_percent = 50
declined_percent = 0
max_in_flight = 64
request_timeout = "2s"

[mix]
get_product = 3
place_order = 1

[[phase]]
name = "steady"
duration = "10s"
rate = 100

[[phase]]
name = "ramp"
duration = 5000
rate = 100
rate_to = 300

[[fault]]
at = "5s"
until = "8s"
set = { provider_failure_rate = 1.0, provider_latency_ms = 200 }

[[fault]]
at = "12s"
set = { store_latency_ms = 5 }

[[slo]]
operation = "place_order"
percentile = 99.9
max_latency = "750ms"
max_error_rate = 0.02
phase = "ramp"

[[slo]]
operation = "all"
max_error_rate = 0.05
"#;

    #[test]
    fn a_full_scenario_parses_into_what_it_says() {
        let s = Scenario::from_toml(FULL).unwrap();
        assert_eq!(s.description(), "everything");
        assert_eq!((s.customers(), s.products(), s.hot_percent()), (8, 100, 50));
        assert_eq!((s.max_in_flight(), s.request_timeout()), (64, Duration::from_secs(2)));
        assert_eq!(
            s.mix().weights().collect::<Vec<_>>(),
            [(Operation::GetProduct, 3), (Operation::PlaceOrder, 1)]
        );
        assert_eq!(s.phases().len(), 2);
        assert_eq!(s.phases()[1].start, Duration::from_secs(10));
        assert_eq!((s.phases()[1].rate, s.phases()[1].rate_to), (100.0, 300.0));
        assert_eq!(s.duration(), Duration::from_secs(15));
        // 100/s for 10 s, then an average of 200/s for 5 s.
        assert_eq!(s.planned(), 2000);
        assert_eq!(s.faults()[0].until, Some(Duration::from_secs(8)));
        assert_eq!(s.faults()[0].set["provider_failure_rate"], 1.0);
        assert_eq!(s.faults()[0].set["provider_latency_ms"], 200);
        assert_eq!(s.faults()[1].until, None);
        let objectives: Vec<String> = s.objectives().iter().map(ToString::to_string).collect();
        assert_eq!(
            objectives,
            [
                "place_order p99.9 <= 750ms in phase ramp",
                "place_order error rate <= 2% in phase ramp",
                "all error rate <= 5%",
            ]
        );
    }

    #[test]
    fn defaults_fill_what_the_file_leaves_out() {
        let s =
            Scenario::from_toml("[[phase]]\nname = \"a\"\nduration = \"1s\"\nrate = 10\n").unwrap();
        assert_eq!(s.mix(), &Mix::default());
        assert_eq!((s.customers(), s.max_in_flight()), (32, 1024));
        assert!(s.faults().is_empty() && s.objectives().is_empty());
        assert_eq!(
            s,
            Scenario::constant(10.0, Duration::from_secs(1))
                .map(|c| Scenario {
                    description: String::new(),
                    phases: vec![Phase { name: "a".into(), ..c.phases[0].clone() }],
                    ..c
                })
                .unwrap()
        );
    }

    /// Each bad file yields an error that names the key (and the line, for syntax).
    #[test]
    fn bad_files_get_errors_that_say_where() {
        let phase = "[[phase]]\nname = \"p\"\nduration = \"10s\"\nrate = 10\n";
        let cases: &[(String, &str)] = &[
            ("rate = 5\n".to_owned(), "unknown field `rate`"),
            (format!("{phase}rat = 3\n"), "line 5"),
            (format!("{phase}rat = 3\n"), "unknown field `rat`"),
            ("[[phase]]\nname = \"p\"\nduration = \"soon\"\nrate = 1\n".to_owned(), "line 3"),
            ("[[phase]]\nname = \"p\"\nrate = 1\n".to_owned(), "missing field `duration`"),
            ("".to_owned(), "`phase` is missing"),
            (
                "[[phase]]\nname = \"p\"\nduration = \"1s\"\nrate = 30000\n".to_owned(),
                "`phase[0].rate`",
            ),
            (
                "[[phase]]\nname = \"p\"\nduration = \"1s\"\nrate = -1\n".to_owned(),
                "`phase[0].rate`",
            ),
            (
                "[[phase]]\nname = \"p\"\nduration = \"1s\"\nrate = nan\n".to_owned(),
                "`phase[0].rate`",
            ),
            (
                "[[phase]]\nname = \"p\"\nduration = \"0s\"\nrate = 1\n".to_owned(),
                "`phase[0].duration`",
            ),
            ("[[phase]]\nname = \"p\"\nduration = \"2h\"\nrate = 1\n".to_owned(), "one hour"),
            (
                "[[phase]]\nname = \"p\"\nduration = \"1s\"\nrate = 0\n".to_owned(),
                "schedule no request",
            ),
            (format!("{phase}{phase}"), "`phase[1].name`"),
            (format!("[mix]\nbuy = 1\n{phase}"), "unknown variant `buy`"),
            (format!("[mix]\nsearch = 0\n{phase}"), "`mix` needs a weight"),
            (format!("customers = 0\n{phase}"), "`customers`"),
            (format!("max_in_flight = 100000\n{phase}"), "`max_in_flight`"),
            (format!("request_timeout = \"5m\"\n{phase}"), "`request_timeout`"),
            (format!("hot_percent = 101\n{phase}"), "`hot_percent`"),
            (
                format!("{phase}[[fault]]\nat = \"1s\"\nset = {{ provider_failure_rate = 2.0 }}\n"),
                "`fault[0].set` `provider_failure_rate` must lie in 0.0..=1.0",
            ),
            (
                format!("{phase}[[fault]]\nat = \"1s\"\nset = {{ provider_fail = 1.0 }}\n"),
                "unknown field `provider_fail`",
            ),
            (format!("{phase}[[fault]]\nat = \"1s\"\nset = {{}}\n"), "`fault[0].set` sets nothing"),
            (
                format!("{phase}[[fault]]\nat = \"10s\"\nset = {{ store_latency_ms = 1 }}\n"),
                "`fault[0].at`",
            ),
            (
                format!(
                    "{phase}[[fault]]\nat = \"2s\"\nuntil = \"1s\"\nset = {{ store_latency_ms = 1 }}\n"
                ),
                "`fault[0].until`",
            ),
            (
                format!(
                    "{phase}[[fault]]\nat = \"2s\"\nuntil = \"6s\"\nset = {{ store_latency_ms = 1 }}\n[[fault]]\nat = \"5s\"\nset = {{ store_latency_ms = 9 }}\n"
                ),
                "`fault[1].at` switches `store_latency_ms` inside the window of fault[0]",
            ),
            (
                format!("{phase}[[slo]]\noperation = \"buy\"\nmax_error_rate = 0.1\n"),
                "`slo[0].operation` is `buy`",
            ),
            (format!("{phase}[[slo]]\noperation = \"all\"\n"), "`slo[0]` bounds nothing"),
            (
                format!("{phase}[[slo]]\noperation = \"all\"\npercentile = 99\n"),
                "`slo[0].percentile` needs max_latency",
            ),
            (
                format!(
                    "{phase}[[slo]]\noperation = \"all\"\npercentile = 0\nmax_latency = \"1s\"\n"
                ),
                "`slo[0].percentile`",
            ),
            (
                format!("{phase}[[slo]]\noperation = \"all\"\nmax_error_rate = 1.5\n"),
                "`slo[0].max_error_rate`",
            ),
            (
                format!(
                    "{phase}[[slo]]\noperation = \"all\"\nmax_error_rate = 0.1\nphase = \"q\"\n"
                ),
                "`slo[0].phase` names phase `q`; the phases are p",
            ),
        ];
        for (text, expected) in cases {
            let err = Scenario::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(expected), "for\n{text}\nexpected `{expected}` in: {err}");
        }
    }

    #[test]
    fn a_later_switch_of_the_same_setting_without_windows_is_a_step() {
        let text = "[[phase]]\nname = \"p\"\nduration = \"10s\"\nrate = 10\n\
            [[fault]]\nat = \"1s\"\nset = { provider_latency_ms = 100 }\n\
            [[fault]]\nat = \"2s\"\nset = { provider_latency_ms = 500 }\n\
            [[fault]]\nat = \"3s\"\nuntil = \"4s\"\nset = { provider_failure_rate = 0.5 }\n";
        assert_eq!(Scenario::from_toml(text).unwrap().faults().len(), 3);
    }

    #[test]
    fn command_line_objectives_parse_or_say_why_not() {
        let o: Objective = "search:p50=20ms".parse().unwrap();
        assert_eq!(o.bound, Bound::Latency { percentile: 50.0, max: Duration::from_millis(20) });
        let o: Objective = "get_product@ramp:errors=0.01".parse().unwrap();
        assert_eq!((o.phase.as_deref(), o.bound), (Some("ramp"), Bound::ErrorRate { max: 0.01 }));
        for (bad, expected) in [
            ("place_order", "is not OPERATION"),
            ("place_order:p99", "is not OPERATION"),
            ("place_order@:p99=1s", "is not OPERATION"),
            ("buy:p99=1s", "is `buy`"),
            ("all:q99=1s", "is not OPERATION"),
            ("all:pxx=1s", "`pxx` is not a percentile"),
            ("all:p99=fast", "not a duration"),
            ("all:p0=1s", "(0, 100]"),
            ("all:errors=lots", "not a number"),
            ("all:errors=150%", "0.0..=1.0"),
        ] {
            let err = bad.parse::<Objective>().expect_err(bad).to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
        let mut s = Scenario::constant(10.0, Duration::from_secs(1)).unwrap();
        let err = s.add_objective("all@nope:errors=1%".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("names phase `nope`"), "{err}");
        s.add_objective("all@load:errors=1%".parse().unwrap()).unwrap();
        assert_eq!(s.objectives().len(), 1);
    }

    #[test]
    fn the_scenarios_shipped_with_the_shop_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!s.description().is_empty(), "{}: no description", path.display());
                seen += 1;
            }
        }
        assert!(seen >= 3, "scenarios/ has {seen} files");
        let err = Scenario::load(&dir.join("missing.toml")).unwrap_err();
        assert!(matches!(err, ScenarioError::Read { .. }), "{err}");
    }
}
