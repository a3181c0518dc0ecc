//! The broker conformance suite run against the durable broker, each check on a fresh
//! directory, on a manual clock with tokio's clock paused: the same contract as the
//! in-process broker, with every operation going through the log.

use std::time::Duration;

use levee_core::ManualClock;
use levee_queue::broker::conformance::{self, CHECKS, Harness};
use levee_queue::durable::{DurableBroker, DurableSettings, FsyncPolicy};

struct Durable {
    fsync: FsyncPolicy,
    dirs: std::sync::Mutex<Vec<tempfile::TempDir>>,
}

impl Harness for Durable {
    type Broker = DurableBroker<u64, ManualClock>;

    async fn broker(&self) -> Self::Broker {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let broker = DurableBroker::builder(dir.path())
            .settings(DurableSettings::new().fsync(self.fsync))
            .clock(clock.clone())
            .wall_clock(clock)
            .open()
            .unwrap();
        self.dirs.lock().unwrap().push(dir);
        broker
    }

    fn payload(&self, n: u64) -> u64 {
        n
    }

    fn number(&self, payload: &u64) -> u64 {
        *payload
    }

    async fn advance(&self, broker: &Self::Broker, by: Duration) {
        broker.clock().advance(by);
        broker.tick();
    }
}

fn harness(fsync: FsyncPolicy) -> Durable {
    Durable { fsync, dirs: std::sync::Mutex::new(Vec::new()) }
}

#[tokio::test(start_paused = true)]
async fn durable_broker_passes_the_conformance_suite() {
    let report = conformance::run(&harness(FsyncPolicy::Always)).await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.passed.len(), CHECKS.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_without_fsync_on_a_multi_threaded_runtime() {
    conformance::run(&harness(FsyncPolicy::Never)).await.assert_passed();
}
