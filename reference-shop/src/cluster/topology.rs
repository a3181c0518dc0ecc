//! The cluster's topology: which services run, how many processes of each, their extra
//! settings, and what the supervisor does when one exits. A TOML file (`--topology`), or
//! [`DEFAULT_TOPOLOGY`] (`reference-shop/cluster.toml`, which documents the format).
//!
//! [`Topology::parse`] refuses a topology it cannot run, naming what is wrong by its path in
//! the file (`services.catalog.replicas`): a TOML or type error, an unknown service or field,
//! no replicas, an upstream list naming a service the topology does not run, a variable the
//! cluster sets itself.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use levee::policy::Backoff;
use serde::Deserialize;

/// The default topology (`reference-shop/cluster.toml`): 1 provider, 2 catalog + 1 standby,
/// 2 orders, 2 payment, 1 notification, 1 gateway.
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../cluster.toml");

/// The services a topology may name (`reference-shop serve --service <name>`), in the order
/// the cluster starts them: the provider before the payment service that calls it, the
/// services before the gateway in front of them.
pub const SERVICES: [&str; 7] =
    ["provider", "all", "catalog", "orders", "payment", "notification", "gateway"];

/// Most processes one service may have (replicas and standbys together).
pub const MAX_PROCESSES: u32 = 32;

/// The variables the cluster sets for every process; a topology may not set them.
pub const RESERVED_ENV: [&str; 6] = [
    "SHOP_SERVER__ADDR",
    "SHOP_STORAGE__DATA_DIR",
    "SHOP_STORAGE__DATABASE_URL",
    "SHOP_QUEUE__BACKEND",
    "SHOP_QUEUE__NATS_URL",
    "SHOP_QUEUE__NATS_PREFIX",
];

/// The `[server.tls]` files' variables: the cluster sets them for every process when
/// `[tls]` is on; a topology may not.
pub const TLS_FILES_ENV: [&str; 3] =
    ["SHOP_SERVER__TLS__CA", "SHOP_SERVER__TLS__CERT", "SHOP_SERVER__TLS__KEY"];

/// A topology the cluster can run.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The services, in the order they start ([`SERVICES`]).
    pub services: Vec<ServiceSpec>,
    /// What the supervisor does when a process exits.
    pub restart: RestartSettings,
    /// Mutual TLS between every process (`[tls]`).
    pub tls: TlsTopology,
}

/// `[tls]`: whether every process serves and calls over mutual TLS, and where the
/// certificates are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsTopology {
    /// On: each process gets `[server.tls]` with its service's certificate (which it also
    /// presents on its calls), and the upstream lists are `https://` URLs.
    pub enabled: bool,
    /// Where the certificates are: made there (`reference-shop certs`'s set) when it holds no
    /// `ca.pem`, used as they are when it does. Default: `certs/` in the run directory.
    pub dir: Option<std::path::PathBuf>,
}

/// One service of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The name passed to `serve --service`.
    pub name: String,
    /// Processes that take traffic (at least 1).
    pub replicas: u32,
    /// Processes held in reserve.
    pub standby: u32,
    /// Extra environment for each process (`SHOP_SECTION__KEY` settings).
    pub env: BTreeMap<String, String>,
    /// Variables whose value is the URL list of another service's processes.
    pub upstreams: BTreeMap<String, Upstream>,
}

/// Whose URLs an upstream variable lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The service.
    pub service: String,
    /// Its standbys (`"<service>.standby"`) rather than its replicas.
    pub standby: bool,
}

/// What the supervisor does when a process exits (`[restart]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartSettings {
    /// The wait before each restart, by the number of restarts within `window`.
    pub backoff: Backoff,
    /// Exits within `window` after which the process is left down (0: never restarted).
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    #[serde(with = "levee::core::serde_duration")]
    pub window: Duration,
    /// How long a process may take to announce its address.
    #[serde(with = "levee::core::serde_duration")]
    pub start_timeout: Duration,
    /// How long a process may take to exit after SIGTERM before it gets SIGKILL.
    #[serde(with = "levee::core::serde_duration")]
    pub stop_grace: Duration,
}

impl Default for RestartSettings {
    fn default() -> Self {
        Self {
            backoff: Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10)),
            max_restarts: 5,
            window: Duration::from_secs(60),
            start_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(15),
        }
    }
}

/// Why a topology was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("cannot read topology {file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        message: String,
    },
    /// A value or table is wrong, named by its path in the file.
    #[error("invalid topology {file}: `{path}`: {message}")]
    Invalid {
        /// The file (`the default topology` for [`DEFAULT_TOPOLOGY`]).
        file: String,
        /// The path of what is wrong (`services.catalog.replicas`); empty for the whole file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTopology {
    services: BTreeMap<String, FileService>,
    #[serde(default)]
    restart: RestartSettings,
    #[serde(default)]
    tls: TlsTopology,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    #[serde(default = "one")]
    replicas: u32,
    #[serde(default)]
    standby: u32,
    #[serde(default)]
    env: BTreeMap<String, toml::Value>,
    #[serde(default)]
    upstreams: BTreeMap<String, String>,
}

const fn one() -> u32 {
    1
}

impl Topology {
    /// The topology in the file at `path`, or the default one.
    ///
    /// # Errors
    /// The file cannot be read, or [`Topology::parse`] refuses it.
    pub fn load(path: Option<&Path>) -> Result<Self, TopologyError> {
        match path {
            None => Self::parse(DEFAULT_TOPOLOGY, "the default topology"),
            Some(path) => {
                let file = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| TopologyError::Read {
                    file: file.clone(),
                    message: e.to_string(),
                })?;
                Self::parse(&text, &file)
            }
        }
    }

    /// Reads and checks the topology `text`; `file` names it in errors.
    ///
    /// # Errors
    /// [`TopologyError::Invalid`] naming the first thing wrong by its path.
    pub fn parse(text: &str, file: &str) -> Result<Self, TopologyError> {
        let invalid = |path: String, message: String| TopologyError::Invalid {
            file: file.to_owned(),
            path,
            message,
        };
        let table = toml::from_str::<toml::Table>(text)
            .map_err(|e| invalid(String::new(), e.message().to_owned()))?;
        let parsed: FileTopology = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                invalid(if path == "." { String::new() } else { path }, e.into_inner().to_string())
            })?;
        if parsed.services.is_empty() {
            return Err(invalid("services".into(), "names no service".into()));
        }
        let mut services = Vec::with_capacity(parsed.services.len());
        for (name, spec) in &parsed.services {
            services.push(service(name, spec, &parsed.services).map_err(|(p, m)| invalid(p, m))?);
        }
        services.sort_by_key(|s| SERVICES.iter().position(|known| *known == s.name));
        check_restart(&parsed.restart).map_err(|(p, m)| invalid(p, m))?;
        if parsed.tls.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(invalid(
                "tls.dir".into(),
                "must not be empty (leave it out for the default)".into(),
            ));
        }
        // A process's own certificate would leave the others calling it over http://.
        if let Some((s, var)) = services.iter().find_map(|s| {
            s.env.keys().find(|v| TLS_FILES_ENV.contains(&v.as_str())).map(|v| (s, v))
        }) {
            return Err(invalid(
                format!("services.{}.env.{var}", s.name),
                "is set by the cluster: use `[tls] enabled = true` (and `dir` for your own certificates)"
                    .into(),
            ));
        }
        Ok(Self { services, restart: parsed.restart, tls: parsed.tls })
    }

    /// How many processes the topology runs.
    #[must_use]
    pub fn processes(&self) -> usize {
        self.services.iter().map(|s| (s.replicas + s.standby) as usize).sum()
    }
}

type Refusal = (String, String);

/// Checks one service of the file.
fn service(
    name: &str,
    spec: &FileService,
    all: &BTreeMap<String, FileService>,
) -> Result<ServiceSpec, Refusal> {
    let at =
        |field: &str| format!("services.{name}{}{field}", if field.is_empty() { "" } else { "." });
    if !SERVICES.contains(&name) {
        return Err((at(""), format!("unknown service `{name}`; one of: {}", SERVICES.join(", "))));
    }
    if spec.replicas == 0 {
        return Err((at("replicas"), "must be at least 1".into()));
    }
    if spec.replicas.saturating_add(spec.standby) > MAX_PROCESSES {
        return Err((at("replicas"), format!("replicas and standbys: at most {MAX_PROCESSES}")));
    }
    let mut env = BTreeMap::new();
    for (var, value) in &spec.env {
        let path = at(&format!("env.{var}"));
        check_var(var).map_err(|m| (path.clone(), m))?;
        env.insert(var.clone(), env_value(value).map_err(|m| (path, m))?);
    }
    let mut upstreams = BTreeMap::new();
    for (var, source) in &spec.upstreams {
        let path = at(&format!("upstreams.{var}"));
        check_var(var).map_err(|m| (path.clone(), m))?;
        if env.contains_key(var) {
            return Err((path, "is set in `env` too".into()));
        }
        let (service, standby) = match source.strip_suffix(".standby") {
            Some(service) => (service, true),
            None => (source.as_str(), false),
        };
        let Some(target) = all.get(service) else {
            return Err((path, format!("`{service}` is not a service of this topology")));
        };
        if standby && target.standby == 0 {
            return Err((path, format!("`{service}` has no standby")));
        }
        upstreams.insert(var.clone(), Upstream { service: service.to_owned(), standby });
    }
    Ok(ServiceSpec {
        name: name.to_owned(),
        replicas: spec.replicas,
        standby: spec.standby,
        env,
        upstreams,
    })
}

/// A variable the topology may set: a name the environment can hold, not one the cluster sets.
fn check_var(var: &str) -> Result<(), String> {
    let valid = !var.is_empty()
        && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !var.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err("not an environment variable name (letters, digits and `_`)".into());
    }
    if RESERVED_ENV.contains(&var) {
        return Err("is set by the cluster".into());
    }
    Ok(())
}

/// An `env` value as the environment holds it: a string as written, a number or boolean as
/// TOML writes it, a list as JSON (as the shop reads lists from the environment).
fn env_value(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) if s.contains('\0') => Err("holds a NUL character".into()),
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(_) => serde_json::to_string(value).map_err(|e| e.to_string()),
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            Err("expected a string, number, boolean or list".into())
        }
    }
}

fn check_restart(restart: &RestartSettings) -> Result<(), Refusal> {
    use levee::core::ConfigError;
    let field = |e: ConfigError| (format!("restart.{}", e.setting), e.reason.to_string());
    restart.backoff.validate().map_err(field)?;
    ConfigError::require_positive("window", restart.window).map_err(field)?;
    ConfigError::require_positive("start_timeout", restart.start_timeout).map_err(field)?;
    ConfigError::require_positive("stop_grace", restart.stop_grace).map_err(field)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> (String, String) {
        match Topology::parse(text, "t.toml") {
            Err(TopologyError::Invalid { path, message, .. }) => (path, message),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_default_topology_is_the_issues() {
        let t = Topology::load(None).unwrap();
        let counts: Vec<_> =
            t.services.iter().map(|s| (s.name.as_str(), s.replicas, s.standby)).collect();
        assert_eq!(
            counts,
            [
                ("provider", 1, 0),
                ("catalog", 2, 1),
                ("orders", 2, 0),
                ("payment", 2, 0),
                ("notification", 1, 0),
                ("gateway", 1, 0),
            ]
        );
        assert_eq!(t.processes(), 10);
        assert_eq!(t.restart, RestartSettings::default());
        assert_eq!(t.tls, TlsTopology::default(), "plain HTTP by default");
        let gateway = &t.services[5];
        assert_eq!(
            gateway.upstreams["SHOP_GATEWAY__CATALOG_STANDBY"],
            Upstream { service: "catalog".into(), standby: true }
        );
    }

    #[test]
    fn a_small_file_takes_the_defaults() {
        let t = Topology::parse(
            "[services.all]\nreplicas = 2\nenv = { SHOP_LOG = \"warn\", SHOP_X__N = 3, \
             SHOP_X__L = [\"1s\", \"2s\"], SHOP_X__B = true }\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(t.services.len(), 1);
        let all = &t.services[0];
        assert_eq!((all.replicas, all.standby), (2, 0));
        assert_eq!(all.env["SHOP_LOG"], "warn");
        assert_eq!(all.env["SHOP_X__N"], "3");
        assert_eq!(all.env["SHOP_X__L"], r#"["1s","2s"]"#);
        assert_eq!(all.env["SHOP_X__B"], "true");
        assert_eq!(Topology::parse("[services.all]", "t").unwrap().services[0].replicas, 1);
        let tls = Topology::parse("[services.all]\n[tls]\nenabled = true\ndir = \"c\"", "t");
        let tls = tls.unwrap().tls;
        assert!(tls.enabled);
        assert_eq!(tls.dir.as_deref(), Some(Path::new("c")));
    }

    #[test]
    fn refusals_name_the_path() {
        let cases = [
            ("[services.cataloge]", "services.cataloge", "unknown service"),
            ("[services.all]\nreplicas = 0", "services.all.replicas", "at least 1"),
            ("[services.all]\nreplicas = -1", "services.all.replicas", "invalid value"),
            ("[services.all]\nreplicas = 40", "services.all.replicas", "at most 32"),
            ("[services.all]\nreplica = 2", "services.all.replica", "unknown field"),
            ("services = {}", "services", "names no service"),
            ("[restart]\nwindow = \"1m\"", "", "missing field `services`"),
            ("[services.all]\n[restart]\nwindow = \"0s\"", "restart.window", "longer than zero"),
            ("[services.all]\n[restart]\nwindow = \"soon\"", "restart.window", ""),
            (
                "[services.all]\n[restart]\nbackoff = { type = \"exponential\", base = \"0s\", max = \"1s\" }",
                "restart.backoff.base",
                "",
            ),
            (
                "[services.all]\nupstreams = { SHOP_G__X = \"catalog\" }",
                "services.all.upstreams.SHOP_G__X",
                "not a service of this topology",
            ),
            (
                "[services.all]\n[services.catalog]\n[services.gateway]\nupstreams = { SHOP_G__X = \"catalog.standby\" }",
                "services.gateway.upstreams.SHOP_G__X",
                "has no standby",
            ),
            (
                "[services.all]\nenv = { SHOP_SERVER__ADDR = \"0.0.0.0:80\" }",
                "services.all.env.SHOP_SERVER__ADDR",
                "set by the cluster",
            ),
            ("[services.all]\nenv = { \"A=B\" = \"1\" }", "services.all.env.A=B", "variable name"),
            ("[services.all]\nenv = { X = { y = 1 } }", "services.all.env.X", "expected a string"),
            ("[services.all]\nenv = { X = \"a\\u0000b\" }", "services.all.env.X", "NUL"),
            ("[services.all]\n[tls]\nenabled = 1", "tls.enabled", "invalid type"),
            ("[services.all]\n[tls]\nca = \"x\"", "tls.ca", "unknown field"),
            ("[services.all]\n[tls]\ndir = \"\"", "tls.dir", "must not be empty"),
            (
                "[services.all]\nenv = { SHOP_SERVER__TLS__CA = \"x\" }\n[tls]\nenabled = true",
                "services.all.env.SHOP_SERVER__TLS__CA",
                "set by the cluster",
            ),
            (
                "[services.all]\nenv = { SHOP_SERVER__TLS__KEY = \"x\" }",
                "services.all.env.SHOP_SERVER__TLS__KEY",
                "[tls] enabled = true",
            ),
            ("[services.all", "", ""),
        ];
        for (text, path, message) in cases {
            let (p, m) = refusal(text);
            assert_eq!(p, path, "{text}: {m}");
            assert!(m.contains(message), "{text}: {m:?} should say {message:?}");
        }
    }

    #[test]
    fn an_unreadable_file_is_an_error() {
        let e = Topology::load(Some(Path::new("/nonexistent/cluster.toml"))).unwrap_err();
        assert!(matches!(e, TopologyError::Read { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/cluster.toml"), "{e}");
    }

    proptest::proptest! {
        /// Any text, and any mutation of the default topology: a topology or a refusal,
        /// never a panic; a topology it accepts runs between 1 and 7 x 32 processes.
        #[test]
        fn bad_input_never_panics(text in ".{0,200}") {
            if let Ok(t) = Topology::parse(&text, "t") {
                proptest::prop_assert!((1..=7 * 32).contains(&t.processes()));
            }
        }

        #[test]
        fn mutated_default_never_panics(
            cut in 0..DEFAULT_TOPOLOGY.len(),
            len in 0usize..40,
            insert in "[\\[\\]a-z0-9_.=\" \n{}-]{0,20}",
        ) {
            let mut text = DEFAULT_TOPOLOGY.as_bytes().to_vec();
            let end = (cut + len).min(text.len());
            text.splice(cut..end, insert.bytes());
            let text = String::from_utf8_lossy(&text);
            if let Ok(t) = Topology::parse(&text, "t") {
                proptest::prop_assert!((1..=7 * 32).contains(&t.processes()));
                for s in &t.services {
                    proptest::prop_assert!(s.replicas >= 1);
                    for u in s.upstreams.values() {
                        proptest::prop_assert!(t.services.iter().any(|o| o.name == u.service));
                    }
                }
            }
        }
    }
}
