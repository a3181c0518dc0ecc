//! The shop as a process, for the tests that run the real binary (`startup.rs`,
//! `readme_walkthrough.rs`, `soak.rs`): a scratch directory and the binary's command,
//! untouched by this environment's shop settings; `reference-shop cluster` in [`cluster`].
#![allow(dead_code, unreachable_pub)]

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty directory for the test `name`.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "levee-shop-{name}-{}-{:x}",
            std::process::id(),
            levee::core::random::next_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `reference-shop` binary cargo built, with nothing from this environment's `SHOP_*` or
/// `DATABASE_URL` (the test says every setting it means).
pub fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-shop"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SHOP_") || name == "DATABASE_URL" {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Waits (`limit` at most) for `child`'s first line on stdout, the shop's announcement
/// `reference shop on http://ADDR ...` (`https://` with `[server.tls]`), and returns
/// `http://ADDR` (`https://ADDR`); `Err` with the line (for a message) when the shop said
/// something else, exited, or said nothing in time.
pub fn announced_url(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<String, String> {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().ok_or("stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(limit).unwrap_or_default();
    line.strip_prefix("reference shop on ")
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|url| url.starts_with("http://") || url.starts_with("https://"))
        .map(str::to_owned)
        .ok_or(line)
}

/// `binary()` serving on a free loopback port with the admin `token`, its data in `data`,
/// logging warnings to the test's stderr, stdout piped for [`spawn_announced`]; the settings
/// file `config` if any. Add more `SHOP_*` settings to it as needed.
pub fn serve(config: Option<&Path>, token: &str, data: &Path) -> Command {
    let mut cmd = binary();
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.arg("serve")
        .env("SHOP_SERVER__ADDR", "127.0.0.1:0")
        .env("SHOP_SERVER__ADMIN_TOKEN", token)
        .env("SHOP_STORAGE__DATA_DIR", data)
        .env("SHOP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Spawns the shop `cmd` starts and returns it with its announced `http://ADDR`; kills it and
/// panics with what it said when it does not announce itself within 60 s.
pub fn spawn_announced(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.spawn().expect("the shop binary runs");
    match announced_url(&mut child, Duration::from_secs(60)) {
        Ok(base) => (child, base),
        Err(line) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shop did not start: {line:?}");
        }
    }
}
