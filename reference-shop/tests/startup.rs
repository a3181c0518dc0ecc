//! Start-up, with the real binary: one shop per data directory (a second one refuses at once,
//! naming the directory and the first one's pid and address; a killed shop leaves no stale
//! lock), and start-up errors that say what failed and where within about a second: an
//! unusable data directory, an unreachable PostgreSQL, an address in use, and settings the
//! shop cannot run with. Logs go to stderr; stdout carries only the "listening" line.

mod process;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::Scratch;

/// How long a refusal may take. The old failures took 10 s (sqlx's pool timeout); this
/// leaves room for a loaded machine and a debug build.
const AT_ONCE: Duration = Duration::from_secs(2);

/// The shop binary on `data_dir`, on a free port, with nothing from this environment's
/// `SHOP_*` or `DATABASE_URL`.
fn shop(data_dir: &Path) -> Command {
    let mut cmd = process::binary();
    cmd.env("SHOP_SERVER__ADDR", "127.0.0.1:0")
        .env("SHOP_SERVER__ADMIN_TOKEN", "startup-test-token")
        .env("SHOP_STORAGE__DATA_DIR", data_dir)
        .env("SHOP_STORAGE__SEED_PRODUCTS", "20")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A shop that started: the process and the address its stdout announced.
struct Started {
    child: Child,
    addr: String,
}

impl Started {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the shop did not say it listens within 60 s");
            }
        };
        // The first line on stdout is the announcement, not a log line: logs go to stderr.
        let Some(rest) = line.strip_prefix("reference shop on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("unexpected first line on stdout: {line:?}; stderr: {err}");
        };
        let addr = rest.split_whitespace().next().unwrap().to_owned();
        Self { child, addr }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a refused start ended.
#[derive(Debug)]
struct Refused {
    code: Option<i32>,
    stderr: String,
    stdout: String,
    took: Duration,
}

/// Runs `cmd`, which must exit on its own within 30 s (it is killed and the test fails
/// otherwise).
fn refused(mut cmd: Command) -> Refused {
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shop did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    Refused { code: status.code(), stderr, stdout, took }
}

impl Refused {
    /// Exited with `code` within [`AT_ONCE`], saying every one of `words` on stderr.
    fn says(&self, code: i32, words: &[&str]) {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert!(self.took < AT_ONCE, "took {:?}: {self:#?}", self.took);
        for word in words {
            assert!(self.stderr.contains(word), "stderr lacks {word:?}: {self:#?}");
        }
        assert!(self.stdout.is_empty(), "{self:#?}");
    }
}

#[test]
fn a_second_shop_on_the_same_data_directory_refuses_at_once_naming_the_first() {
    let dir = Scratch::new("startup-lock");
    let first = Started::spawn(shop(&dir.0));
    let pid = first.child.id();

    let second = refused(shop(&dir.0));
    let holder = format!("pid {pid}, listening on {}", first.addr);
    second.says(1, &["cannot start", "data directory", &dir.0.display().to_string(), &holder]);
    assert!(second.stderr.contains("is in use by another shop"), "{second:#?}");

    // The lock is the OS's: a killed shop leaves the file but not the lock.
    first.kill();
    assert!(dir.0.join("shop.lock").exists());
    let third = Started::spawn(shop(&dir.0));
    let lock = std::fs::read_to_string(dir.0.join("shop.lock")).unwrap();
    assert_eq!(lock, format!("pid={}\naddr={}\n", third.child.id(), third.addr));
    third.kill();
}

#[test]
fn an_unusable_data_directory_is_named_with_the_os_error() {
    let scratch = Scratch::new("startup-dir");
    // A file where a directory on the path should be.
    let file = scratch.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let dir = file.join("data");
    let r = refused(shop(&dir));
    r.says(1, &["cannot create data directory", &dir.display().to_string(), "os error"]);

    // A directory this process may not write (not testable where permissions do not bind,
    // as for root).
    let read_only = scratch.0.join("read-only");
    std::fs::create_dir_all(&read_only).unwrap();
    set_mode(&read_only, 0o555);
    if std::fs::write(read_only.join("probe"), b"").is_ok() {
        eprintln!("skipped the read-only directory case: this user writes anyway (root?)");
    } else {
        let r = refused(shop(&read_only));
        r.says(
            1,
            &["data directory", &read_only.display().to_string(), "is not writable", "os error"],
        );
    }
    set_mode(&read_only, 0o755);
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(path: &Path, mode: u32) {
    let mut p = std::fs::metadata(path).unwrap().permissions();
    p.set_readonly(mode & 0o200 == 0);
    std::fs::set_permissions(path, p).unwrap();
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn an_unreachable_postgresql_is_named_with_the_os_error_at_once() {
    let dir = Scratch::new("startup-pg");
    let port = closed_port();
    let mut cmd = shop(&dir.0);
    cmd.env("DATABASE_URL", format!("postgres://shop:secret-password@127.0.0.1:{port}/shop"));
    let r = refused(cmd);
    r.says(1, &[&format!("cannot reach PostgreSQL at 127.0.0.1:{port}"), "os error"]);
    assert!(!r.stderr.contains("secret-password"), "the password stays out: {r:#?}");
}

#[test]
fn an_address_in_use_is_named() {
    let dir = Scratch::new("startup-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = shop(&dir.0);
    cmd.env("SHOP_SERVER__ADDR", &addr);
    refused(cmd).says(1, &[&format!("cannot listen on {addr}"), "os error"]);
}

#[test]
fn settings_the_shop_cannot_run_with_are_refused_by_name() {
    let dir = Scratch::new("startup-settings");
    let cases: [(&str, &str, &[&str]); 8] = [
        ("SHOP_SERVER__ADMIN_TOKEN", " secret ", &["`server.admin_token`", "spaces"]),
        ("SHOP_SERVER__ADMIN_TOKEN", "", &["`server.admin_token`", "empty"]),
        ("SHOP_SERVER__MAX_BODY_BYTES", "0", &["`server.max_body_bytes`"]),
        (
            "SHOP_SERVER__ADDR",
            "127.0.0.1:99999",
            &["`server.addr` (from SHOP_SERVER__ADDR)", "the port `99999`", "0 to 65535"],
        ),
        ("SHOP_SERVER__ADDR", "localhost:8080", &["`server.addr`", "the host `localhost`"]),
        ("SHOP_SERVER__ADDR", "127.0.0.1", &["`server.addr`", "has no port"]),
        ("SHOP_STORAGE__CONNECT_TIMEOUT", "0s", &["`storage.connect_timeout`"]),
        (
            "SHOP_STORAGE__MAX_CONNECTIONS",
            "eight",
            &[
                "`storage.max_connections` (from SHOP_STORAGE__MAX_CONNECTIONS)",
                "expected a number",
            ],
        ),
    ];
    for (var, value, words) in cases {
        let mut cmd = shop(&dir.0);
        cmd.env(var, value);
        let r = refused(cmd);
        r.says(2, words);
        assert!(r.stderr.starts_with("reference-shop: "), "{var}={value:?}: {r:#?}");
    }
    // A string setting stays a string: a numeric token is a token.
    let mut cmd = shop(&dir.0);
    cmd.env("SHOP_SERVER__ADMIN_TOKEN", "123456").arg("print-config");
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin_token = \"123456\""), "{out:?}");
}
