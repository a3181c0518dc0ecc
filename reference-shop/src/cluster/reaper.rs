//! The cluster's reaper: stops the servers a cluster started when the cluster dies without
//! stopping them (SIGKILL, the OOM killer, a crash).
//!
//! The shop's own processes end by themselves then (their stdin, a pipe the cluster holds,
//! closes), but Redis, NATS and PostgreSQL do not watch the cluster. So once its servers are
//! up, the cluster starts `reference-shop cluster-reaper --watch PID:SIGNAL ...` (a hidden
//! subcommand of this same binary) in its own process group, holding its stdin too. When that
//! stdin closes, the reaper sends each server the signal that stops it cleanly (SIGTERM; SIGINT
//! for PostgreSQL, its "fast" shutdown), newest first, waits for them (bounded), SIGKILLs what
//! is left and exits. A cluster that stops normally stops its servers itself and then kills
//! the reaper, which has done nothing.
//!
//! Not covered: a cluster killed while it is still starting its servers (before the reaper
//! runs) leaves the ones started so far.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, ChildStdin, Command};

use super::servers::OutputTo;

/// How long the reaper waits for the servers to exit after their stop signal.
const GRACE: Duration = Duration::from_secs(10);

/// A server for the reaper to stop: `PID:TERM` or `PID:INT` on its command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// The server's process.
    pub pid: i32,
    /// The signal that stops it cleanly.
    pub stop: StopSignal,
}

/// The signal that stops a server cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (Redis, NATS).
    Term,
    /// SIGINT (PostgreSQL's fast shutdown: SIGTERM would wait for its clients to leave).
    Int,
}

impl StopSignal {
    fn signal(self) -> Signal {
        match self {
            StopSignal::Term => Signal::TERM,
            StopSignal::Int => Signal::INT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "TERM",
            StopSignal::Int => "INT",
        }
    }
}

impl std::str::FromStr for Watched {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}`: expected PID:TERM or PID:INT");
        let (pid, signal) = text.split_once(':').ok_or_else(bad)?;
        let pid: i32 = pid.parse().ok().filter(|p| *p > 1).ok_or_else(bad)?;
        let stop = match signal {
            "TERM" => StopSignal::Term,
            "INT" => StopSignal::Int,
            _ => return Err(bad()),
        };
        Ok(Self { pid, stop })
    }
}

impl std::fmt::Display for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.pid, self.stop.name())
    }
}

/// `reference-shop cluster-reaper`'s options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A server to stop when stdin closes (`PID:TERM` or `PID:INT`), in the order they
    /// started; stopped newest first.
    #[arg(long = "watch", value_name = "PID:SIGNAL")]
    pub watched: Vec<Watched>,
}

/// The reaper's side: waits until stdin closes, then stops every watched server that still
/// runs. Exits 0. Blocking: the process does nothing else.
#[must_use]
pub fn run(args: &Args) -> ExitCode {
    wait_for_stdin_to_close();
    reap(&args.watched, GRACE);
    ExitCode::SUCCESS
}

/// Blocks until this process's stdin ends: the cluster holds the other end of the pipe, and
/// writes nothing to it, so its end means the cluster is gone (or let go of this process).
/// `serve --stop-with-stdin` and the reaper both wait with it.
pub fn wait_for_stdin_to_close() {
    use std::io::Read as _;
    let mut stdin = std::io::stdin().lock();
    let mut sink = [0u8; 256];
    loop {
        match stdin.read(&mut sink) {
            Ok(0) => break,
            Err(e) if e.kind() != std::io::ErrorKind::Interrupted => break,
            _ => {}
        }
    }
}

/// Signals each of `watched` that still runs (newest first), waits up to `grace` for all to
/// exit, then SIGKILLs the rest.
fn reap(watched: &[Watched], grace: Duration) {
    for w in watched.iter().rev() {
        if running(w.pid) {
            eprintln!("cluster-reaper: the cluster is gone; stopping {w}");
            signal(w.pid, w.stop.signal());
        }
    }
    let deadline = Instant::now() + grace;
    while watched.iter().any(|w| running(w.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in watched.iter().filter(|w| running(w.pid)) {
        eprintln!(
            "cluster-reaper: {} still runs {} s after its signal: SIGKILL",
            w.pid,
            grace.as_secs()
        );
        signal(w.pid, Signal::KILL);
    }
}

/// Sends `signal` to process `pid` (nothing if it is gone).
pub fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, signal);
    }
}

/// Whether process `pid` runs: it exists and is not a zombie (one that has exited and waits
/// for its parent, which may be gone, to reap it).
#[must_use]
pub fn running(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) STATE ...`; comm may hold spaces and parentheses: the state follows the last.
    stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
}

/// The cluster's handle on its reaper: holds the reaper's stdin (its end wakes the reaper).
#[derive(Debug)]
pub(crate) struct Reaper {
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl Reaper {
    /// Starts `exe cluster-reaper` watching `watched`, logging to `log`.
    ///
    /// # Errors
    /// It could not be started: why.
    pub(crate) fn spawn(exe: &Path, watched: &[Watched], log: &Path) -> Result<Self, String> {
        let mut cmd = Command::new(exe);
        cmd.arg("cluster-reaper");
        for w in watched {
            cmd.arg("--watch").arg(w.to_string());
        }
        // Its own process group, as the servers: a Ctrl-C in the terminal is the cluster's.
        let mut child = cmd
            .output_to(log)?
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let stdin = child.stdin.take();
        Ok(Self { child, _stdin: stdin })
    }

    /// Dismisses the reaper (the cluster stopped its servers itself): kills it before its
    /// stdin closes, so it does nothing.
    pub(crate) async fn dismiss(mut self) {
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watched_servers_parse_and_print_back() {
        let w: Watched = "4242:TERM".parse().unwrap();
        assert_eq!(w, Watched { pid: 4242, stop: StopSignal::Term });
        assert_eq!(w.to_string(), "4242:TERM");
        assert_eq!("77:INT".parse::<Watched>().unwrap().stop, StopSignal::Int);
        for bad in
            ["", "4242", "4242:", ":TERM", "x:TERM", "4242:KILL", "1:TERM", "0:INT", "-5:TERM"]
        {
            let err = bad.parse::<Watched>().unwrap_err();
            assert!(err.contains("PID:TERM or PID:INT"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_reaper_stops_what_runs_and_kills_what_ignores_its_signal() {
        use std::io::BufRead as _;
        let mut polite = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        // Ignores SIGTERM: only the SIGKILL after the grace ends it. It says when its trap
        // is set: a SIGTERM before that would end it (a loaded CI machine did).
        let mut stubborn = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(stubborn.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready, "ready\n");
        let pid = |c: &std::process::Child| i32::try_from(c.id()).unwrap();
        let watched = [
            Watched { pid: pid(&polite), stop: StopSignal::Term },
            Watched { pid: pid(&stubborn), stop: StopSignal::Term },
        ];
        let started = Instant::now();
        reap(&watched, Duration::from_millis(500));
        let polite = polite.wait().unwrap();
        let stubborn = stubborn.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&polite), Some(15));
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&stubborn), Some(9));
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }
}
