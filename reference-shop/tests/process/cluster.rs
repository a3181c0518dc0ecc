//! `reference-shop cluster` as the tests run it (`cluster.rs`, `cluster_faults.rs`): the
//! command on a topology, its output line by line, the table of processes it prints, and a
//! drop that leaves nothing running when a test fails halfway.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rustix::process::Signal;

/// The cluster command with `topology` (written to `dir/topology.toml`), its runs in
/// `dir/runs`; stdout piped (read line by line by [`Cluster`]), stderr piped for the tests
/// that read why it refused to start.
pub fn command(dir: &Path, topology: &str) -> Command {
    let file = dir.join("topology.toml");
    std::fs::write(&file, topology).unwrap();
    let mut cmd = super::binary();
    cmd.arg("cluster")
        .arg("--topology")
        .arg(&file)
        .arg("--dir")
        .arg(dir.join("runs"))
        .env("SHOP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// One process of the cluster's table (`catalog  standby 1  https://127.0.0.1:PORT  4242`).
#[derive(Debug, Clone)]
pub struct Row {
    /// `catalog`.
    pub service: String,
    /// `1`, `standby 1`.
    pub replica: String,
    /// `http://127.0.0.1:PORT` (`https://` over TLS).
    pub url: String,
    pub pid: i32,
}

impl Row {
    /// `catalog standby 1`, as the cluster's other lines name the process.
    pub fn label(&self) -> String {
        format!("{} {}", self.service, self.replica)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url.split_once("://").map_or(&self.url, |(_, addr)| addr)
    }
}

/// `Row` from a line of the table, `None` for any other line.
pub fn row(line: &str) -> Option<Row> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [service, replica @ .., url, pid] = words.as_slice() else { return None };
    if replica.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
        return None;
    }
    Some(Row {
        service: (*service).to_owned(),
        replica: replica.join(" "),
        url: (*url).to_owned(),
        pid: pid.parse().ok()?,
    })
}

/// The running cluster command, its stdout lines on a channel. On drop (a failed test too):
/// every process it reported is continued (a stopped one cannot exit) and the command stopped
/// (SIGTERM, then SIGKILL), then every process and whatever else it started is killed.
pub struct Cluster {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    /// The processes to kill on drop: those of the table ([`up`](Self::up)) and those
    /// restarted since ([`restarted`](Self::restarted)).
    pub pids: Vec<i32>,
}

impl Cluster {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("the shop binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new(), pids: Vec::new() }
    }

    /// The next line for which `want` is true, within `limit`; panics with what the cluster
    /// said so far (and its stderr, when piped) otherwise.
    pub fn line(&mut self, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(line) = self.lines.recv_timeout(left) {
                self.seen.push(line.clone());
                if want(&line) {
                    return line;
                }
                continue;
            }
            // Killed first: reading a piped stderr ends only when the command does.
            let _ = self.child.kill();
            let mut err = String::new();
            if let Some(mut stderr) = self.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            panic!(
                "the cluster did not say what the test waits for in {limit:?}; it said:\n{}\nstderr:\n{err}",
                self.seen.join("\n")
            );
        }
    }

    /// Waits (`limit` at most) for `cluster up: ...` and returns the table printed before
    /// it, whose processes are then killed on drop.
    pub fn up(&mut self, limit: Duration) -> Vec<Row> {
        self.line(limit, |l| l.starts_with("cluster up: "));
        let rows: Vec<Row> = self.seen.iter().filter_map(|l| row(l)).collect();
        self.pids.extend(rows.iter().map(|r| r.pid));
        rows
    }

    /// The first `restarted: LABEL on URL (pid N)` line (said already, while the test waited
    /// for another line, or within `limit`) and its pid, which is then killed on drop.
    pub fn restarted(&mut self, label: &str, limit: Duration) -> (String, i32) {
        let prefix = format!("restarted: {label} on ");
        let line = match self.seen.iter().find(|l| l.starts_with(&prefix)) {
            Some(line) => line.clone(),
            None => self.line(limit, |l| l.starts_with(&prefix)),
        };
        let pid = line
            .rsplit_once("(pid ")
            .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        self.pids.push(pid);
        (line, pid)
    }

    /// Sends `sig` to the cluster command itself.
    pub fn signal(&self, sig: Signal) {
        signal(self.child.id() as i32, sig);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid in &self.pids {
            signal(*pid, Signal::CONT);
        }
        let others = children(self.child.id() as i32);
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for pid in self.pids.iter().chain(&others) {
            if running(*pid) {
                signal(*pid, Signal::KILL);
            }
        }
    }
}

pub use reference_shop::cluster::reaper::{running, signal};

/// The processes whose parent is `parent`.
pub fn children(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
    .collect()
}
