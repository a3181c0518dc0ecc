//! Every check of levee's broker conformance suite against a real nats-server.
//!
//! Time on a real server is real: the harness's ack wait is 1 s and its quiet wait 50 ms,
//! so the whole suite takes about 15 s. (The ack wait is a lease: on a loaded 2-core CI
//! machine a check that holds a delivery across several round trips needs the margin.)

mod support;

use std::time::Duration;

use levee_nats::NatsBroker;
use levee_queue::broker::conformance::{self, CHECKS, Harness};

struct Nats {
    url: String,
    run: String,
}

impl Harness for Nats {
    type Broker = NatsBroker<u64>;

    async fn broker(&self) -> Self::Broker {
        support::broker(&self.url, &self.run).await
    }

    fn payload(&self, n: u64) -> u64 {
        n
    }

    fn number(&self, payload: &u64) -> u64 {
        *payload
    }

    async fn advance(&self, _broker: &Self::Broker, by: Duration) {
        tokio::time::sleep(by).await;
    }

    fn quiet(&self) -> Duration {
        Duration::from_millis(50)
    }

    fn ack_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_check_passes_on_jetstream() {
    let Some(url) = support::url() else { return };
    let run = format!("c{}", std::process::id());
    let harness = Nats { url: url.clone(), run: run.clone() };
    let report = tokio::time::timeout(Duration::from_secs(120), conformance::run(&harness))
        .await
        .expect("the suite finishes within two minutes");
    support::remove_streams(&url, "lt").await;
    eprintln!("{report}");
    assert_eq!(report.passed.len() + report.failed.len(), CHECKS.len());
    report.assert_passed();
}
