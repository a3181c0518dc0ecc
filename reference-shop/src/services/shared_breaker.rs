//! The payment breaker shared with the shop's other replicas (`[payment.shared_breaker]`,
//! issue 22 item 3): levee's [`SharedBreaker`] on NATS JetStream.
//!
//! The payment guard's breaker is built by [`SharedPaymentBreaker::join`] from the guard's own
//! builder, so every call still goes through the guard's pipeline and its local, lock-free
//! breaker; a task publishes the breaker's transitions and applies the peers' (the rule is
//! levee's: a quorum of peers reporting the provider down moves a closed breaker to probing,
//! a peer's passing trial lets an open one probe at once).
//!
//! Why a NATS connection of its own rather than the event bus's broker: the bus's broker is
//! per shop (the default durable broker lives in the shop's data directory, the in-process
//! one in its memory), so only NATS reaches the other replicas; and even on NATS the bus's
//! streams carry one shop's order events under `queue.nats_prefix`, which replicas with
//! separate databases must not share. The breaker's reports go under their own prefix, in
//! memory on the server.
//!
//! NATS down at start: the shop starts with a plain local breaker and says so (a warning, and
//! `joined: false` in `/admin/status`), since sharing is an optimisation and never a
//! dependency of taking payments. NATS lost later: the task retries every `poll`; meanwhile
//! the breaker is a plain local one.

use std::sync::Arc;

use levee::breaker::{CircuitBreaker, CircuitBreakerBuilder};
use levee::core::Clock;
use levee::nats::NatsBroker;
use levee::queue::broker::{Broker, BrokerError};
use levee::shared_breaker::SharedBreaker;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::app::StartError;
use crate::clock::ShopClock;
use crate::config::SharedBreakerConfig;
use crate::guard::BreakerState;

/// The dependency the replicas' reports are about.
const DEPENDENCY: &str = "payment-provider";

/// The broker the replicas talk through: NATS, reports as text.
type Nats = NatsBroker<String>;

/// One peer as this replica last heard it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PeerStatus {
    /// The peer's replica id.
    pub replica: String,
    /// The state it last reported entering.
    pub state: BreakerState,
    /// How long ago that report arrived (by this shop's clock), in milliseconds.
    pub age_ms: u64,
}

/// The shared breaker, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SharedBreakerStatus {
    /// This replica's id.
    pub replica: String,
    /// Whether it joined its peers; `false`: NATS did not answer at start, the breaker is a
    /// plain local one.
    pub joined: bool,
    /// Peers whose last report is still trusted (within `ttl`).
    pub peers: usize,
    /// Of those, peers whose last report was *open*.
    pub peers_open: usize,
    /// Transitions of this breaker published.
    pub sent: u64,
    /// Transitions not published (outbox full, or NATS refused or did not answer).
    pub send_lost: u64,
    /// Peers' reports received and kept.
    pub received: u64,
    /// Messages received and dropped: unreadable, or older than what the peer said since.
    pub dropped: u64,
    /// Times the closed breaker probed because a quorum of peers reported the provider down.
    pub quorum_probes: u64,
    /// Times the open breaker probed early because a peer's trial call passed.
    pub early_trials: u64,
    /// The trusted peers, heard from longest ago first.
    pub peer_states: Vec<PeerStatus>,
}

/// The payment breaker joined to its peers on NATS, and the task that keeps it talking.
pub struct SharedPaymentBreaker {
    replica: String,
    /// `None` when NATS did not answer at start.
    joined: Option<Joined>,
}

struct Joined {
    shared: Arc<SharedBreaker<Nats, ShopClock>>,
    broker: Arc<Nats>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SharedPaymentBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPaymentBreaker")
            .field("replica", &self.replica)
            .field("joined", &self.joined.is_some())
            .finish_non_exhaustive()
    }
}

impl SharedPaymentBreaker {
    /// Connects to NATS and builds the payment breaker from `builder` as a replica of the
    /// shared breaker, then starts publishing and listening. Without NATS (it did not answer
    /// within its connect timeout) builds a plain local breaker and warns.
    ///
    /// # Errors
    /// [`StartError::SharedBreaker`]: NATS answered but refused the subscription (a replica id
    /// already subscribed with other settings), or the breaker's settings are invalid.
    pub async fn join(
        config: &SharedBreakerConfig,
        builder: CircuitBreakerBuilder<ShopClock>,
    ) -> Result<(Arc<CircuitBreaker<ShopClock>>, Self), StartError> {
        Self::connect(config, builder).await.map_err(StartError::SharedBreaker)
    }

    async fn connect(
        config: &SharedBreakerConfig,
        builder: CircuitBreakerBuilder<ShopClock>,
    ) -> Result<(Arc<CircuitBreaker<ShopClock>>, Self), BrokerError> {
        let replica = config.replica_id();
        let broker = match Nats::builder(config.nats_url.clone())
            .config(config.nats())
            .connect()
            .await
        {
            Ok(broker) => Arc::new(broker),
            Err(error) => {
                tracing::warn!(
                    %error, url = %config.nats_url,
                    "payment.shared_breaker: NATS did not answer; the payment breaker is a plain local one"
                );
                let breaker = Arc::new(builder.name(DEPENDENCY).build()?);
                return Ok((breaker, Self { replica, joined: None }));
            }
        };
        let shared = SharedBreaker::join(
            Arc::clone(&broker),
            DEPENDENCY,
            &replica,
            builder,
            config.settings(),
        )
        .await?;
        let shared = Arc::new(shared);
        let task = tokio::spawn(talk(Arc::clone(&shared), config.poll));
        tracing::info!(%replica, url = %config.nats_url, "payment breaker shared with peers");
        let breaker = Arc::clone(shared.breaker());
        Ok((breaker, Self { replica, joined: Some(Joined { shared, broker, task }) }))
    }

    /// What it sent and heard, now.
    #[must_use]
    pub fn status(&self) -> SharedBreakerStatus {
        let mut status = SharedBreakerStatus {
            replica: self.replica.clone(),
            joined: self.joined.is_some(),
            peers: 0,
            peers_open: 0,
            sent: 0,
            send_lost: 0,
            received: 0,
            dropped: 0,
            quorum_probes: 0,
            early_trials: 0,
            peer_states: Vec::new(),
        };
        let Some(joined) = &self.joined else { return status };
        let s = joined.shared.stats();
        let now = joined.shared.breaker().clock().now();
        status.peer_states = joined
            .shared
            .peers()
            .into_iter()
            .map(|p| PeerStatus {
                replica: p.replica,
                state: BreakerState::of(p.state),
                age_ms: now.saturating_sub(p.received_at) / 1_000_000,
            })
            .collect();
        status.peers = status.peer_states.len();
        status.peers_open =
            status.peer_states.iter().filter(|p| p.state == BreakerState::Open).count();
        status.sent = s.published;
        status.send_lost = s.publish_lost;
        status.received = s.received;
        status.dropped = s.malformed + s.stale;
        status.quorum_probes = s.probes;
        status.early_trials = s.early_trials;
        status
    }

    /// Stops talking to the peers and closes the NATS connection (the breaker stays, local).
    pub async fn stop(&self) {
        if let Some(joined) = &self.joined {
            joined.task.abort();
            Broker::close(&*joined.broker).await;
        }
    }
}

impl Drop for SharedPaymentBreaker {
    fn drop(&mut self) {
        if let Some(joined) = &self.joined {
            joined.task.abort();
        }
    }
}

/// Publishes the breaker's transitions and applies the peers' until the broker closes; after
/// any other failure (NATS lost) waits `poll` and goes on.
async fn talk(shared: Arc<SharedBreaker<Nats, ShopClock>>, poll: std::time::Duration) {
    loop {
        match shared.run(poll).await {
            Ok(()) | Err(BrokerError::Closed) => return,
            Err(error) => {
                tracing::warn!(%error, "payment.shared_breaker: receiving from NATS failed; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PaymentConfig, ProtectionsConfig};
    use crate::guard::PaymentGuard;
    use levee::core::ManualClock;

    /// Sharing on, towards a port where no NATS listens.
    fn unreachable() -> SharedBreakerConfig {
        SharedBreakerConfig {
            nats_url: "nats://127.0.0.1:1".into(),
            replica: Some("lonely".into()),
            ..SharedBreakerConfig::default()
        }
    }

    /// The default payment guard with `protections`, its breaker joined to `unreachable()`.
    async fn guard(
        protections: &ProtectionsConfig,
    ) -> (PaymentGuard, Option<SharedPaymentBreaker>) {
        let shared = unreachable();
        PaymentGuard::with_breaker(
            &PaymentConfig::default(),
            protections,
            ShopClock::manual(ManualClock::new()),
            |builder| SharedPaymentBreaker::join(&shared, builder),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn without_nats_the_guard_starts_with_a_plain_local_breaker() {
        let (guard, joined) = guard(&ProtectionsConfig::default()).await;
        let joined = joined.expect("protections on: the guard's breaker went through join");
        let s = joined.status();
        assert_eq!((s.replica.as_str(), s.joined, s.peers, s.sent), ("lonely", false, 0, 0));
        // The breaker is the guard's own, with its settings: 5 failures open it.
        let fail = || async { Err::<(), _>("down") };
        for _ in 0..5 {
            let _ = guard.call(fail, |_| true).await;
        }
        assert_eq!(guard.breaker_status().state, BreakerState::Open);
        assert_eq!(guard.breaker_status().opened, 1, "the guard's counters listen to it");
        joined.stop().await;
    }

    #[tokio::test]
    async fn with_protections_off_nothing_joins() {
        let (guard, joined) = guard(&ProtectionsConfig::off()).await;
        assert!(joined.is_none());
        assert!(guard.stages().is_empty());
    }
}
