//! Who may hold a connection: at most `server.clients.max_connections` open connections in
//! total (levee-limit's [`Bulkhead`], one permit per connection) and at most
//! `max_connections_per_address` from one client address (a count per address, dropped with
//! the address's last connection, so the map holds at most `max_connections` addresses). A
//! connection over either limit is refused at once: the listener never queues one.
//!
//! The same place holds the request deadline (levee-policy's timeout on the shop clock, see
//! `request.rs`) and counts what the shop did to slow clients (header and body read
//! timeouts, request deadlines), for `/admin/status` and `/metrics`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use levee::core::Counter;
use levee::limit::{Bulkhead, OwnedPermit};
use levee::policy::{Layered, Leaf, Pipeline, Timeout};
use parking_lot::Mutex;
use serde::Serialize;

use crate::clock::ShopClock;
use crate::config::{ClientLimits, SettingError, section};

/// Counters of the listener and of the request reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: u64,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections refused because the shop had `max_connections` open.
    pub refused_total: u64,
    /// Connections refused because their address had `max_connections_per_address` open.
    pub refused_per_address: u64,
    /// Connections closed because their request headers did not arrive in time (idle
    /// keep-alive connections included: the timeout also bounds the wait for the next
    /// request).
    pub header_timeouts: u64,
    /// Requests answered 408 because their body did not arrive in time.
    pub body_timeouts: u64,
    /// Requests answered 504 because they were not served within `request_timeout`.
    pub deadlines_exceeded: u64,
    /// Connections closed because their TLS handshake failed (`[server.tls]` on): a
    /// plaintext client, no client certificate, one the CA did not sign.
    pub tls_handshakes_failed: u64,
    /// Connections closed because their TLS handshake did not complete within
    /// `server.tls.handshake_timeout`.
    pub tls_handshake_timeouts: u64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The shop has `max_connections` open.
    #[error("{limit} connections open")]
    Total {
        /// `max_connections`.
        limit: usize,
    },
    /// The client's address has `max_connections_per_address` open.
    #[error("{limit} connections open from this address")]
    PerAddress {
        /// `max_connections_per_address`.
        limit: usize,
    },
}

/// The request deadline: a levee-policy pipeline with a timeout only, on the shop clock.
pub type DeadlinePipeline = Pipeline<Layered<Timeout, Leaf>, ShopClock>;

/// The connection limits, the request deadline and the slow-client counters, shared by the
/// listener and the router.
#[derive(Debug)]
pub struct Connections {
    deadline: DeadlinePipeline,
    total: Arc<Bulkhead>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
    accepted: Counter,
    refused_total: Counter,
    refused_per_address: Counter,
    header_timeouts: Counter,
    body_timeouts: Counter,
    deadlines_exceeded: Counter,
    tls_handshakes_failed: Counter,
    tls_handshake_timeouts: Counter,
}

/// An admitted connection's hold on the limits; released when dropped (the connection
/// closed).
#[derive(Debug)]
pub struct ConnectionPermit {
    connections: Arc<Connections>,
    addr: IpAddr,
    _total: OwnedPermit,
}

impl Connections {
    /// The limits of `limits`, the request deadline timed by `clock`.
    ///
    /// # Errors
    /// A limit out of range, named by its path (`server.clients.max_connections`).
    pub fn new(limits: &ClientLimits, clock: ShopClock) -> Result<Self, SettingError> {
        limits.validate()?;
        let total = Bulkhead::new(limits.max_connections).map_err(section("server.clients"))?;
        let deadline = Pipeline::builder()
            .timeout(limits.request_timeout)
            .clock(clock)
            .build()
            .map_err(section("server.clients"))?;
        Ok(Self {
            deadline,
            total: Arc::new(total),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: limits.max_connections_per_address,
            accepted: Counter::default(),
            refused_total: Counter::default(),
            refused_per_address: Counter::default(),
            header_timeouts: Counter::default(),
            body_timeouts: Counter::default(),
            deadlines_exceeded: Counter::default(),
            tls_handshakes_failed: Counter::default(),
            tls_handshake_timeouts: Counter::default(),
        })
    }

    /// Admits a connection from `addr`, or says which limit refuses it (and counts it).
    ///
    /// # Errors
    /// [`Refused`] when the shop, or `addr`, has as many connections open as allowed.
    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<ConnectionPermit, Refused> {
        let total = self.total.try_acquire_owned().map_err(|_| {
            self.refused_total.incr();
            Refused::Total { limit: self.total.limit() }
        })?;
        {
            let mut per_address = self.per_address.lock();
            let open = per_address.entry(addr).or_insert(0);
            if *open >= self.max_per_address {
                drop(per_address);
                self.refused_per_address.incr();
                return Err(Refused::PerAddress { limit: self.max_per_address });
            }
            *open += 1;
        }
        self.accepted.incr();
        Ok(ConnectionPermit { connections: Arc::clone(self), addr, _total: total })
    }

    /// The request deadline.
    #[must_use]
    pub fn deadline(&self) -> &DeadlinePipeline {
        &self.deadline
    }

    /// Counts a connection closed by the header read timeout.
    pub fn header_timed_out(&self) {
        self.header_timeouts.incr();
    }

    /// Counts a request answered 408 by the body read timeout.
    pub fn body_timed_out(&self) {
        self.body_timeouts.incr();
    }

    /// Counts a request answered 504 by the request deadline.
    pub fn deadline_exceeded(&self) {
        self.deadlines_exceeded.incr();
    }

    /// Counts a connection closed because its TLS handshake failed.
    pub fn tls_handshake_failed(&self) {
        self.tls_handshakes_failed.incr();
    }

    /// Counts a connection closed because its TLS handshake took too long.
    pub fn tls_handshake_timed_out(&self) {
        self.tls_handshake_timeouts.incr();
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            open: self.total.in_flight() as u64,
            accepted: self.accepted.get(),
            refused_total: self.refused_total.get(),
            refused_per_address: self.refused_per_address.get(),
            header_timeouts: self.header_timeouts.get(),
            body_timeouts: self.body_timeouts.get(),
            deadlines_exceeded: self.deadlines_exceeded.get(),
            tls_handshakes_failed: self.tls_handshakes_failed.get(),
            tls_handshake_timeouts: self.tls_handshake_timeouts.get(),
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut per_address = self.connections.per_address.lock();
        if let Some(open) = per_address.get_mut(&self.addr) {
            *open -= 1;
            if *open == 0 {
                per_address.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> ClientLimits {
        ClientLimits {
            max_connections: total,
            max_connections_per_address: per_address,
            ..ClientLimits::default()
        }
    }

    #[test]
    fn per_address_then_total_limits_refuse_and_release() {
        let c = Arc::new(Connections::new(&limits(3, 2), ShopClock::system()).unwrap());
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let a1 = c.admit(a).unwrap();
        let _a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).unwrap_err(), Refused::PerAddress { limit: 2 });
        // The refusal by address gave back the total permit it took: b gets the third.
        let _b1 = c.admit(b).unwrap();
        assert_eq!(c.admit(b).unwrap_err(), Refused::Total { limit: 3 });
        assert_eq!(c.stats().open, 3);
        // A closed connection gives both places back.
        drop(a1);
        let _a3 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).unwrap_err(), Refused::Total { limit: 3 });
        let s = c.stats();
        assert_eq!((s.open, s.accepted, s.refused_per_address, s.refused_total), (3, 4, 1, 2));
    }

    #[test]
    fn an_address_with_no_connection_left_is_forgotten() {
        let c = Arc::new(Connections::new(&limits(8, 1), ShopClock::system()).unwrap());
        for last in 0..100u8 {
            drop(c.admit(IpAddr::from([10, 0, 1, last])).unwrap());
        }
        assert!(c.per_address.lock().is_empty());
        assert_eq!(c.stats().open, 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A connection from address `.0`.
        Connect(u8),
        /// The open connection at `.0` (modulo how many are open) closes.
        Close(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![(0u8..4).prop_map(Op::Connect), any::<usize>().prop_map(Op::Close)]
    }

    proptest::proptest! {
        /// Against a model of plain counts: the same admissions and refusals (and the
        /// reason), the same counters, after every step.
        #[test]
        fn admissions_match_a_model_of_counts(
            total in 1usize..6,
            per_address in 1usize..6,
            ops in proptest::collection::vec(op(), 0..64),
        ) {
            let per_address = per_address.min(total);
            let c = Arc::new(Connections::new(&limits(total, per_address), ShopClock::system()).unwrap());
            let mut open: Vec<(u8, ConnectionPermit)> = Vec::new();
            let mut model = ConnectionStats::default();
            for op in ops {
                match op {
                    Op::Connect(a) => {
                        let from_a = open.iter().filter(|(b, _)| *b == a).count();
                        let expected = if open.len() >= total {
                            model.refused_total += 1;
                            Err(Refused::Total { limit: total })
                        } else if from_a >= per_address {
                            model.refused_per_address += 1;
                            Err(Refused::PerAddress { limit: per_address })
                        } else {
                            model.accepted += 1;
                            Ok(())
                        };
                        let got = c.admit(IpAddr::from([10, 0, 0, a]));
                        proptest::prop_assert_eq!(got.as_ref().map(|_| ()).map_err(|e| *e), expected);
                        if let Ok(permit) = got {
                            open.push((a, permit));
                        }
                    }
                    Op::Close(i) if !open.is_empty() => drop(open.swap_remove(i % open.len())),
                    Op::Close(_) => {}
                }
                model.open = open.len() as u64;
                proptest::prop_assert_eq!(c.stats(), model);
                proptest::prop_assert!(c.per_address.lock().len() <= total);
            }
        }
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let err = Connections::new(&limits(0, 1), ShopClock::system()).unwrap_err();
        assert_eq!(err.path(), "server.clients.max_connections");
        let err = Connections::new(&limits(4, 0), ShopClock::system()).unwrap_err();
        assert_eq!(err.path(), "server.clients.max_connections_per_address");
        let err = Connections::new(&limits(4, 5), ShopClock::system()).unwrap_err();
        assert_eq!(err.path(), "server.clients.max_connections_per_address");
    }
}
