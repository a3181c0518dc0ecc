//! Supervision of one process: when it exits it is reported and started again (same port,
//! same settings) after levee's backoff, at most `max_restarts` times within `window`, then
//! left down and reported; on the cluster's stop it gets SIGTERM, then SIGKILL after the grace.
//!
//! Every event is one line on stdout, for the operator and the tests:
//! `exited: catalog 2 (pid 4242), killed by signal 9; restarting in 500 ms`,
//! `restarted: catalog 2 on http://127.0.0.1:40113 (pid 4250)`,
//! `restart failed: catalog 2: exited (exit code 1)`,
//! `gave up: catalog 2 exited 6 times within 60 s; left down`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::process::{Launch, Running, describe, stop_child};
use super::topology::RestartSettings;

/// One process of the cluster and how to start it again.
#[derive(Debug)]
pub(crate) struct Slot {
    /// `catalog 2`, `catalog standby 1`.
    pub(crate) label: String,
    pub(crate) launch: Launch,
    pub(crate) running: Running,
}

/// Waits until the cluster stops (or whoever could stop it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Keeps `slot`'s process running until `stop` turns true, then stops it.
pub(crate) async fn supervise(
    mut slot: Slot,
    settings: RestartSettings,
    mut stop: watch::Receiver<bool>,
) {
    // When the process exited lately (within the window), oldest first.
    let mut exits: VecDeque<Instant> = VecDeque::new();
    let mut previous = Duration::ZERO;
    loop {
        let status = tokio::select! {
            status = slot.running.child.wait() => status,
            () = stopped(&mut stop) => {
                if let Some(note) = stop_child(&mut slot.running.child, settings.stop_grace).await {
                    println!("stopped: {} (pid {}): {note}", slot.label, slot.running.pid);
                }
                return;
            }
        };
        let mut how = match status {
            Ok(status) => describe(status),
            Err(e) => format!("lost ({e})"),
        };
        let mut pid = format!(" (pid {})", slot.running.pid);
        // Down: start it again until it runs, the restarts are spent, or the cluster stops.
        loop {
            let now = Instant::now();
            while exits.front().is_some_and(|t| now.duration_since(*t) >= settings.window) {
                exits.pop_front();
            }
            if exits.is_empty() {
                previous = Duration::ZERO;
            }
            exits.push_back(now);
            let count = u32::try_from(exits.len()).unwrap_or(u32::MAX);
            if count > settings.max_restarts {
                println!(
                    "gave up: {}{pid} {how}; it exited {count} times within {} s; left down",
                    slot.label,
                    settings.window.as_secs()
                );
                stopped(&mut stop).await;
                return;
            }
            let delay = settings.backoff.delay(count, previous);
            previous = delay;
            println!("exited: {}{pid}, {how}; restarting in {} ms", slot.label, delay.as_millis());
            let started = tokio::select! {
                started = async {
                    tokio::time::sleep(delay).await;
                    slot.launch.start(settings.start_timeout).await
                } => started,
                () = stopped(&mut stop) => return,
            };
            match started {
                Ok(running) => {
                    println!("restarted: {} on {} (pid {})", slot.label, running.url, running.pid);
                    slot.running = running;
                    break;
                }
                Err(why) => {
                    println!("restart failed: {}: {why}", slot.label);
                    how = why;
                    pid = String::new();
                }
            }
        }
    }
}
