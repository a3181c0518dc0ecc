//! One shop process of the cluster: `reference-shop serve --service <name>` of this same
//! binary, with its settings in its environment, its output in a log file, announced by its
//! first line on stdout (`reference shop on http://ADDR ...`), stopped with SIGTERM and,
//! after a grace, SIGKILL. Its stdin is a pipe the cluster holds: when the cluster dies, even
//! by SIGKILL, the pipe closes and the process stops (`serve --stop-with-stdin`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to start one process: the same every time the supervisor starts it.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The binary (this one).
    pub(crate) exe: PathBuf,
    /// The settings file every process reads (`--config`), if the cluster was given one.
    pub(crate) config: Option<PathBuf>,
    /// `serve --service <service>`.
    pub(crate) service: String,
    /// Its environment, over the cluster's own.
    pub(crate) env: Vec<(String, String)>,
    /// Its log file (stdout after the announcement, and stderr).
    pub(crate) log: PathBuf,
}

/// A process that announced itself.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) child: Child,
    /// The write end of its stdin, held while it runs: its end tells the process to stop
    /// (`serve --stop-with-stdin`). Apart from `child`, whose `wait` would close it.
    _stdin: Option<tokio::process::ChildStdin>,
    pub(crate) pid: u32,
    /// Where it said it listens (`http://127.0.0.1:PORT`).
    pub(crate) url: String,
}

impl Launch {
    /// Starts the process and waits (`limit` at most) for its announcement.
    ///
    /// # Errors
    /// It did not start, exited, or said something else or nothing in time (killed then):
    /// what happened, for the report.
    pub(crate) async fn start(&self, limit: Duration) -> Result<Running, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open its log {}: {e}", self.log.display()))?;
        let mut cmd = Command::new(&self.exe);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        // `--stop-with-stdin`: the process ends when its stdin, held by this one, closes, so
        // the cluster's processes do not outlive it even when it is SIGKILLed (its fds close
        // with it). Portable, and the shop needs no `unsafe` for a `prctl(PR_SET_PDEATHSIG)`
        // in `pre_exec` (whose signal would also follow the forking thread, not the process).
        cmd.args(["serve", "--service", &self.service, "--stop-with-stdin"])
            // The cluster names the database: an inherited DATABASE_URL would compete.
            .env_remove("DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // Held in `Running` until the process is dropped.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(|e| e.to_string())?)
            // Its own process group: a Ctrl-C in the terminal reaches the cluster only, which
            // stops every process in order (instead of restarting the ones that exit first).
            .process_group(0)
            .kill_on_drop(true);
        let mut child =
            cmd.spawn().map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
        let pid = child.id().unwrap_or_default();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("its stdout is not piped")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(limit, stdout.read_line(&mut line)).await;
        let url = match read {
            Ok(Ok(_)) => announced(&line),
            Ok(Err(_)) | Err(_) => None,
        };
        let Some(url) = url else {
            // Dropping the child kills it (`kill_on_drop`).
            let why = if read.is_err() {
                format!("did not announce itself within {} s", limit.as_secs())
            } else if line.is_empty() {
                // Its stdout closed: it is exiting; say how, if it does so soon.
                match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                    Ok(Ok(status)) => format!("exited ({})", describe(status)),
                    _ => "closed its stdout without announcing itself".to_owned(),
                }
            } else {
                format!("said {:?} instead of its address", line.trim_end())
            };
            return Err(why);
        };
        // The rest of its stdout goes to its log, behind what it wrote to stderr so far.
        let mut log = tokio::fs::File::from_std(log);
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut log).await;
        });
        Ok(Running { child, _stdin: stdin, pid, url })
    }
}

/// `http://ADDR` from a shop's announcement (`reference shop on http://ADDR (try: ...)`, or
/// another service's `reference shop <service> on https://ADDR`).
#[must_use]
pub(crate) fn announced(line: &str) -> Option<String> {
    if !line.starts_with("reference shop") {
        return None;
    }
    let (_, rest) = line.split_once(" on ")?;
    let url = rest.split_whitespace().next()?;
    let addr = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"))?;
    addr.parse::<std::net::SocketAddr>().ok()?;
    Some(url.to_owned())
}

/// How a process ended: `exit code 3`, `killed by signal 9`.
#[must_use]
pub(crate) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Stops `child`: SIGTERM, then SIGKILL if it has not exited after `grace`; waits for it.
/// Says what happened when it was not a clean stop.
pub(crate) async fn stop_child(child: &mut Child, grace: Duration) -> Option<String> {
    if let Ok(Some(_)) = child.try_wait() {
        return None;
    }
    let pid = child.id().and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("cannot wait for it: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Some(format!("still running {} s after SIGTERM: killed", grace.as_secs()))
        }
    }
}

/// The last `lines` lines of the file at `path` (for a report of a process that failed).
#[must_use]
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements() {
        let shop = "reference shop on http://127.0.0.1:8080 (try: curl http://127.0.0.1:8080/products?limit=3)\n";
        assert_eq!(announced(shop).as_deref(), Some("http://127.0.0.1:8080"));
        let provider = "reference shop provider on https://127.0.0.1:9001\n";
        assert_eq!(announced(provider).as_deref(), Some("https://127.0.0.1:9001"));
        for other in [
            "",
            "\n",
            "error: invalid value 'catalog'",
            "reference shop on ftp://x",
            "reference shop on http://nowhere",
        ] {
            assert_eq!(announced(other), None, "{other:?}");
        }
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&path, 9), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("none"), 2), "");
    }
}
