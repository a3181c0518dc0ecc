//! The broker conformance suite run against the in-process broker, on a manual clock with
//! tokio's clock paused (waits are virtual, so the run is deterministic and instant).

use std::time::Duration;

use levee_core::ManualClock;
use levee_queue::broker::InProcessBroker;
use levee_queue::broker::conformance::{self, CHECKS, Harness};

struct InProcess;

impl Harness for InProcess {
    type Broker = InProcessBroker<u64, ManualClock>;

    async fn broker(&self) -> Self::Broker {
        InProcessBroker::builder().clock(ManualClock::new()).build()
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

#[tokio::test(start_paused = true)]
async fn in_process_broker_passes_the_conformance_suite() {
    let report = conformance::run(&InProcess).await;
    println!("{report}");
    report.assert_passed();
    assert_eq!(report.passed.len(), CHECKS.len());
}

/// The suite also runs on a multi-threaded runtime with real (unpaused) tokio time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_multi_threaded_runtime() {
    conformance::run(&InProcess).await.assert_passed();
}
