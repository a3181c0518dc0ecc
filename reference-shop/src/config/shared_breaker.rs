//! `[payment.shared_breaker]`: the payment breaker shared with the other replicas of the shop
//! on NATS (levee's `shared_breaker`, issue 22 item 3). Off unless the table is present.
//!
//! Each shop keeps its own payment breaker; its transitions go to a JetStream topic of their
//! own (`<prefix>` streams on the server at `nats_url`, never the order events' streams), and
//! each shop reads its peers' there. A shop whose breaker is still closed probes (half-open)
//! once `quorum` peers report the provider down; a shop whose breaker is open probes at once
//! when a peer's trial call passes.

use std::time::Duration;

use levee::core::ConfigError;
use levee::queue::broker::Overflow;
use levee::shared_breaker::SharedSettings;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// The section's path, as errors name it.
const SECTION: &str = "payment.shared_breaker";

/// `[payment.shared_breaker]`: where the replicas' breakers talk and how much one trusts the
/// others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedBreakerConfig {
    /// The NATS server (with JetStream) the replicas share, `nats://host:port`.
    pub nats_url: String,
    /// Prefix of this sharing's JetStream streams and consumers (`A-Z a-z 0-9 _`, at most
    /// 32): shops that share a NATS server but guard different providers use different
    /// ones. Distinct from the event bus's `queue.nats_prefix`, so breaker reports never mix
    /// with order events and two shops with separate databases can share a breaker.
    pub prefix: String,
    /// The topic the transitions go on (`A-Z a-z 0-9 _ -`).
    pub topic: String,
    /// This replica's id (`A-Z a-z 0-9 _ -`, at most 64), also its NATS consumer's name.
    /// Unset: `shop-<random>` at each start. Set it to something stable per replica
    /// (`shop-1`): a replica that restarts under the same id takes its subscription back,
    /// where a generated id leaves the old one on the server (see the README's limits).
    pub replica: Option<String>,
    /// How many peers must report the provider down before a closed breaker probes.
    pub quorum: usize,
    /// How long a peer's report counts after it arrived. Keep it above
    /// `payment.breaker.open_wait`, so a peer cycling open / half-open stays counted.
    #[serde(with = "levee::core::serde_duration")]
    pub ttl: Duration,
    /// Longest one receive waits on NATS before it asks again.
    #[serde(with = "levee::core::serde_duration")]
    pub poll: Duration,
    /// Reports this replica's subscription holds unread; past it a peer's publish is
    /// refused and counted as lost (JetStream never drops a held message for a new one).
    pub backlog: usize,
    /// A replica's subscription that nobody has received from for this long is deleted on
    /// the server, with the reports it held: a replica gone for good (a crash, a scale-down,
    /// a generated id at each restart) then stops holding the topic, whose backlog would
    /// otherwise fill and refuse every peer's reports. A live replica receives every
    /// `poll`, so it must be well above `poll`; a replica silent for longer (a long pause)
    /// gets a new, empty subscription when it receives again.
    #[serde(with = "levee::core::serde_duration")]
    pub forget_after: Duration,
}

impl Default for SharedBreakerConfig {
    /// A NATS server on this machine, one peer's word, reports trusted for 2 minutes.
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            prefix: "shop_breakers".to_owned(),
            topic: "payment".to_owned(),
            replica: None,
            // The shop runs a few replicas: one peer that found the provider down is enough
            // to move the others to probing (a probe is one trial call, not an outage).
            quorum: 1,
            ttl: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            backlog: 1024,
            forget_after: Duration::from_secs(60),
        }
    }
}

/// 1 to 64 of `A-Z a-z 0-9 _ -`: what a JetStream consumer name and a subject token hold.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SharedBreakerConfig {
    /// levee's settings of the shared breaker (JetStream refuses to drop a held report, so
    /// a full backlog rejects: [`Overflow::Reject`]).
    #[must_use]
    pub fn settings(&self) -> SharedSettings {
        SharedSettings::new()
            .topic(self.topic.clone())
            .quorum(self.quorum)
            .ttl(self.ttl)
            .backlog(self.backlog)
            .overflow(Overflow::Reject)
    }

    /// The NATS connection's settings.
    #[must_use]
    pub fn nats(&self) -> levee::nats::NatsConfig {
        let mut nats = levee::nats::NatsConfig::new(self.nats_url.clone());
        nats.prefix.clone_from(&self.prefix);
        // Transitions matter while they are fresh: kept in memory on the server.
        nats.storage = levee::nats::Storage::Memory;
        // Each subscription is one replica's own: it goes when its replica does.
        nats.idle_subscription_expiry = Some(self.forget_after);
        nats
    }

    /// Checks every setting that can be checked without a connection.
    ///
    /// # Errors
    /// The first setting out of range, as `payment.shared_breaker.<setting>`.
    pub fn validate(&self) -> Result<(), SettingError> {
        let named = section(SECTION);
        ConfigError::require_positive("poll", self.poll).map_err(&named)?;
        if self.forget_after < (self.poll * 5).max(Duration::from_secs(1)) {
            return Err(named(ConfigError::new(
                "forget_after",
                "must be at least 5 times `poll` and at least 1 s (a live replica's subscription must never expire)",
            )));
        }
        self.nats().validate().map_err(|e| {
            let setting = match e.setting {
                "prefix" => "prefix",
                "idle_subscription_expiry" => "forget_after",
                _ => "nats_url",
            };
            named(ConfigError { setting, ..e })
        })?;
        if !is_name(&self.topic) {
            return Err(named(ConfigError::new("topic", "must be 1 to 64 of A-Z a-z 0-9 _ -")));
        }
        if self.replica.as_deref().is_some_and(|r| !is_name(r)) {
            return Err(named(ConfigError::new("replica", "must be 1 to 64 of A-Z a-z 0-9 _ -")));
        }
        self.settings().validate().map_err(named)
    }

    /// The configured replica id, or a new `shop-<random>` one.
    #[must_use]
    pub fn replica_id(&self) -> String {
        self.replica
            .clone()
            .unwrap_or_else(|| format!("shop-{:016x}", levee::core::random::next_u64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named_by_path() {
        assert_eq!(SharedBreakerConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut SharedBreakerConfig)| {
            let mut c = SharedBreakerConfig::default();
            f(&mut c);
            c.validate().unwrap_err().path()
        };
        assert_eq!(bad(|c| c.nats_url = " ".into()), "payment.shared_breaker.nats_url");
        assert_eq!(bad(|c| c.prefix = "a.b".into()), "payment.shared_breaker.prefix");
        assert_eq!(bad(|c| c.topic = "a.b".into()), "payment.shared_breaker.topic");
        assert_eq!(bad(|c| c.topic = String::new()), "payment.shared_breaker.topic");
        assert_eq!(bad(|c| c.replica = Some("a b".into())), "payment.shared_breaker.replica");
        assert_eq!(bad(|c| c.replica = Some("x".repeat(65))), "payment.shared_breaker.replica");
        assert_eq!(bad(|c| c.quorum = 0), "payment.shared_breaker.quorum");
        assert_eq!(bad(|c| c.ttl = Duration::ZERO), "payment.shared_breaker.ttl");
        assert_eq!(bad(|c| c.poll = Duration::ZERO), "payment.shared_breaker.poll");
        assert_eq!(bad(|c| c.backlog = 0), "payment.shared_breaker.backlog");
        let expiry = "payment.shared_breaker.forget_after";
        assert_eq!(bad(|c| c.forget_after = Duration::from_millis(900)), expiry);
        assert_eq!(bad(|c| c.forget_after = c.poll * 4), expiry, "a live replica could expire");
        let c = SharedBreakerConfig::default();
        assert_eq!(c.nats().idle_subscription_expiry, Some(c.forget_after));
    }

    #[test]
    fn off_unless_present_and_set_from_the_environment_by_path() {
        use crate::config::{Config, ConfigError as Refused};
        let env = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>()
        };
        assert_eq!(Config::load(None, env(&[])).unwrap().payment.shared_breaker, None);
        let c = Config::load(
            None,
            env(&[
                ("SHOP_PAYMENT__SHARED_BREAKER__NATS_URL", "nats://10.0.0.7:4222"),
                ("SHOP_PAYMENT__SHARED_BREAKER__TTL", "30s"),
            ]),
        )
        .unwrap();
        let shared = c.payment.shared_breaker.unwrap();
        assert_eq!(
            (shared.nats_url.as_str(), shared.ttl),
            ("nats://10.0.0.7:4222", Duration::from_secs(30))
        );
        assert_eq!(shared.quorum, SharedBreakerConfig::default().quorum, "the rest defaults");
        let err = Config::load(None, env(&[("SHOP_PAYMENT__SHARED_BREAKER__QUORUM", "0")]));
        assert!(
            matches!(&err, Err(Refused::Setting(e)) if e.path() == "payment.shared_breaker.quorum"),
            "{err:?}"
        );
        let err = Config::load(None, env(&[("SHOP_PAYMENT__SHARED_BREAKER__NOPE", "1")]));
        assert!(err.unwrap_err().to_string().contains("payment.shared_breaker"));
    }

    #[test]
    fn a_replica_id_is_the_configured_one_or_a_fresh_valid_one() {
        let named = SharedBreakerConfig { replica: Some("shop-1".into()), ..Default::default() };
        assert_eq!(named.replica_id(), "shop-1");
        let generated = SharedBreakerConfig::default();
        let (a, b) = (generated.replica_id(), generated.replica_id());
        assert!(is_name(&a) && a.starts_with("shop-"), "{a}");
        assert_ne!(a, b);
    }
}
