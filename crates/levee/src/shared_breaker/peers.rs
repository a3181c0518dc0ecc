//! What a replica knows of its peers: each peer's last reported state, when it arrived, and
//! nothing older than the TTL. A plain data structure that takes `now` as an argument, so the
//! rule is tested without a broker or a clock.

use levee_breaker::{State, generation_is_newer};

use super::wire::Transition;

/// One peer's last word.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use levee::breaker::{CircuitBreaker, State};
/// # use levee::core::ManualClock;
/// # use levee::queue::broker::InProcessBroker;
/// # use levee::shared_breaker::{SharedBreaker, SharedSettings};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let clock = ManualClock::new();
/// # let broker = Arc::new(InProcessBroker::<String, _>::builder().clock(clock.clone()).build());
/// # let settings = SharedSettings::new().quorum(1);
/// # let replica = |id: &'static str| {
/// #     let builder = CircuitBreaker::builder().minimum_calls(4).clock(clock.clone());
/// #     SharedBreaker::join(broker.clone(), "payments", id, builder, settings.clone())
/// # };
/// let (a, b) = (replica("a").await?, replica("b").await?);
/// for _ in 0..4 {
///     let _ = a.breaker().call(|| Err::<(), _>("503"));
/// }
/// a.publish_pending().await; // a opened, and tells its peers
/// b.receive(Duration::ZERO).await?;
///
/// let peers = b.peers(); // what b knows of its peers
/// assert_eq!(peers.len(), 1);
/// assert_eq!((peers[0].replica.as_str(), peers[0].state), ("a", State::Open));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReport {
    /// The peer's replica id.
    pub replica: String,
    /// The state it reported entering.
    pub state: State,
    /// The generation of that state.
    pub generation: u32,
    /// When it arrived, by this replica's clock.
    pub received_at: u64,
}

/// What [`PeerView::observe`] did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observed {
    /// Kept as the peer's last word; `evicted` when the view was full and the stalest peer
    /// made room.
    Kept { evicted: bool },
    /// Older than what the view holds of that peer (delivered out of order): dropped.
    Stale,
}

/// The last report of at most `max` peers, each trusted for `ttl` nanoseconds after it
/// arrived.
#[derive(Debug)]
pub(crate) struct PeerView {
    ttl: u64,
    max: usize,
    peers: Vec<PeerReport>,
}

impl PeerView {
    pub(crate) fn new(ttl: u64, max: usize) -> Self {
        Self { ttl, max, peers: Vec::new() }
    }

    fn fresh(&self, report: &PeerReport, now: u64) -> bool {
        now.saturating_sub(report.received_at) < self.ttl
    }

    /// Takes `t` as its replica's last word, unless the view holds a later generation of that
    /// replica that is still fresh. (A replica that restarted counts its generations from 0
    /// again: its word counts once its old one has expired.)
    pub(crate) fn observe(&mut self, t: &Transition, now: u64) -> Observed {
        let report = PeerReport {
            replica: t.replica.clone(),
            state: t.to,
            generation: t.generation,
            received_at: now,
        };
        if let Some(i) = self.peers.iter().position(|p| p.replica == t.replica) {
            let known = &self.peers[i];
            if self.fresh(known, now) && !generation_is_newer(t.generation, known.generation) {
                return Observed::Stale;
            }
            self.peers[i] = report;
            return Observed::Kept { evicted: false };
        }
        self.peers.retain(|p| now.saturating_sub(p.received_at) < self.ttl);
        let evicted = self.peers.len() >= self.max;
        if evicted {
            // Full of fresh peers: the one heard from longest ago makes room.
            let stalest = (0..self.peers.len()).min_by_key(|&i| self.peers[i].received_at);
            if let Some(i) = stalest {
                self.peers.swap_remove(i);
            }
        }
        self.peers.push(report);
        Observed::Kept { evicted }
    }

    /// Peers whose fresh last word is "open", heard at or after `since`.
    pub(crate) fn open_since(&self, now: u64, since: u64) -> usize {
        self.peers
            .iter()
            .filter(|p| p.state == State::Open && p.received_at >= since && self.fresh(p, now))
            .count()
    }

    /// The fresh reports, oldest first.
    pub(crate) fn snapshot(&self, now: u64) -> Vec<PeerReport> {
        let mut all: Vec<_> = self.peers.iter().filter(|p| self.fresh(p, now)).cloned().collect();
        all.sort_by_key(|p| p.received_at);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(replica: &str, generation: u32, to: State) -> Transition {
        Transition {
            dependency: "db".into(),
            replica: replica.into(),
            generation,
            from: State::Closed,
            to,
            at_ms: 0,
        }
    }

    #[test]
    fn reports_expire_and_out_of_order_ones_are_stale() {
        let mut v = PeerView::new(100, 8);
        assert_eq!(v.observe(&t("a", 2, State::Open), 0), Observed::Kept { evicted: false });
        assert_eq!(v.observe(&t("a", 1, State::Closed), 10), Observed::Stale);
        assert_eq!(v.open_since(10, 0), 1);
        assert_eq!(v.open_since(10, 5), 0, "heard before `since`");
        assert_eq!(v.open_since(100, 0), 0, "expired");
        // Once expired, a restarted replica's low generation counts.
        assert_eq!(v.observe(&t("a", 0, State::Open), 100), Observed::Kept { evicted: false });
        assert_eq!(v.open_since(150, 0), 1);
        // A generation past the wrap is newer.
        assert_eq!(v.observe(&t("a", (1 << 25) - 1, State::Open), 150), Observed::Stale);
    }

    #[test]
    fn the_view_is_bounded_and_the_stalest_peer_leaves() {
        let mut v = PeerView::new(1_000, 2);
        v.observe(&t("a", 1, State::Open), 0);
        v.observe(&t("b", 1, State::Open), 1);
        assert_eq!(v.observe(&t("c", 1, State::Open), 2), Observed::Kept { evicted: true });
        let names: Vec<_> = v.snapshot(2).into_iter().map(|p| p.replica).collect();
        assert_eq!(names, ["b", "c"]);
        // An expired peer makes room without evicting a fresh one.
        assert_eq!(v.observe(&t("d", 1, State::Open), 1_001), Observed::Kept { evicted: false });
    }
}
