//! What the README walk-through test runs on: the real shop binary as a process (started
//! the way a README block says, stopped with Ctrl-C's signal), its settings as
//! `print-config` prints them, and a shell that runs a block's steps with `sh` and `curl`.
#![allow(dead_code, unreachable_pub)]

pub mod script;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use script::Step;

/// The one command the README starts the shop with (after any `SHOP_*=value` settings).
pub const START: &str = "cargo run --release -p reference-shop";

/// The settings a README start block gives: `NAME=value` words before [`START`].
///
/// # Panics
/// The block is not one line `[SHOP_X=v ...] cargo run --release -p reference-shop`.
pub fn start_settings(block: &str) -> Vec<(String, String)> {
    let line = block.trim();
    let settings = line
        .strip_suffix(START)
        .unwrap_or_else(|| panic!("a start block is `[SHOP_..=..] {START}`, not {line:?}"));
    settings
        .split_whitespace()
        .map(|word| {
            let (name, value) = word.split_once('=').expect("NAME=value");
            assert!(name.starts_with("SHOP_"), "{name} is not a shop setting");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The shop binary with `settings`, on `data_dir`, and nothing from this environment's
/// `SHOP_*` or `DATABASE_URL`.
fn shop(settings: &[(String, String)], data_dir: &Path) -> Command {
    let mut cmd = crate::process::binary();
    cmd.envs(settings.iter().map(|(k, v)| (k, v))).env("SHOP_STORAGE__DATA_DIR", data_dir);
    cmd
}

/// The settings the shop runs with under `settings`, as `reference-shop print-config` prints
/// them.
pub fn print_config(settings: &[(String, String)], data_dir: &Path) -> toml::Table {
    let out = shop(settings, data_dir).arg("print-config").output().unwrap();
    assert!(out.status.success(), "print-config: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

/// A running shop process, stopped (killed if it must be) on drop.
pub struct Shop {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
}

impl Shop {
    /// Starts the shop with `settings` on `data_dir`, on 127.0.0.1 and a free port; waits
    /// (60 s at most) for the line that says where it listens.
    pub fn start(settings: &[(String, String)], data_dir: &Path, log: PathBuf) -> Self {
        let mut child = shop(settings, data_dir)
            .env("SHOP_SERVER__ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line
            .strip_prefix("reference shop on http://")
            .and_then(|r| r.split_whitespace().next());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shop did not start (stdout {line:?}): {}", tail(&log));
        };
        let url = format!("http://{addr}");
        Self { child, url, log }
    }

    /// Stops the shop as Ctrl-C does (SIGINT) and waits for it to exit (15 s at most).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success(), "kill -INT {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "the shop exited with {status}: {}", tail(&self.log));
                return;
            }
            assert!(Instant::now() < deadline, "the shop did not stop within 15 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end of the shop's log, for a failure message.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// What a step answered.
#[derive(Debug)]
pub struct Ran {
    /// Its standard output.
    pub output: String,
    /// When it started (the first time, for a repeated step).
    pub started: Instant,
    /// When it last ended.
    pub ended: Instant,
    /// How many times it ran (a step that only reads is repeated until it answers as its
    /// comment says).
    pub tries: u32,
}

/// A shell session in the README's sense: the variables set so far, `S` pointing at the
/// test's shop, and `curl` bounded (10 s a request, no proxy) by a `.curlrc` of its own.
pub struct Shell {
    vars: Vec<(String, String)>,
    curl_home: PathBuf,
}

impl Shell {
    /// A session whose `curl` reads its settings from `curl_home`.
    pub fn new(curl_home: &Path) -> Self {
        std::fs::write(curl_home.join(".curlrc"), "max-time = 10\nnoproxy = \"*\"\n").unwrap();
        Self { vars: Vec::new(), curl_home: curl_home.to_owned() }
    }

    /// Sets a shell variable, as an assignment step does.
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    /// Runs `step` with `sh` and the variables set so far; fails the test if it takes more
    /// than `limit` or exits with an error.
    pub fn run(&self, step: &Step, limit: Duration) -> Ran {
        let mut script = String::from("set -e\n");
        for (name, value) in &self.vars {
            script.push_str(&format!("{name}={value}\n"));
        }
        script.push_str(&step.command);
        let started = Instant::now();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("CURL_HOME", &self.curl_home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            out
        });
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("step took more than {limit:?}: {}", step.command);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let output = reader.join().unwrap();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        assert!(status.success(), "step failed ({status}): {}\n{stderr}", step.command);
        Ran { output, started, ended: Instant::now(), tries: 1 }
    }
}

/// Whether `curl` is here: `false` (saying the test is skipped) when it is not, except under
/// `CI=true`, where a missing curl fails the test.
pub fn curl_available() -> bool {
    let found = Command::new("curl").arg("--version").stdout(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        return true;
    }
    assert!(
        !levee::core::testing::in_ci(),
        "CI is set but curl is missing: the README test needs it"
    );
    eprintln!("skipped: the README walk-through test needs curl");
    false
}
