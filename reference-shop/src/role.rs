//! Which part of the shop a process runs (`reference-shop serve --service <name>`).
//!
//! The shop is one binary and one code base. By default a process runs all of it; in split
//! mode each service runs as its own process, with the same code, and the processes share
//! the store and the event bus.

/// A part of the shop that a process can run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Service {
    /// Everything in one process (the default).
    #[default]
    All,
    /// The edge (limits, sign-up, API keys) routing to the other services
    /// ([`crate::gateway`]).
    Gateway,
    /// Product reads.
    Catalog,
    /// Carts and orders, their timers, the `orders` consumer of payment events and the
    /// outbox relay.
    Orders,
    /// The `payment` consumer of order events (calls the payment provider).
    Payment,
    /// The `notification-*` consumers and the notification read routes.
    Notification,
    /// The simulated payment provider alone, over HTTP (`crate::provider::server`).
    Provider,
}

impl Service {
    /// The name used on the command line and in logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Gateway => "gateway",
            Self::Catalog => "catalog",
            Self::Orders => "orders",
            Self::Payment => "payment",
            Self::Notification => "notification",
            Self::Provider => "provider",
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
