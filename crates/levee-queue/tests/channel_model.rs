//! proptest: the channel against a `VecDeque` model, single-threaded, every policy.
#![cfg(not(loom))]

use std::collections::VecDeque;

use levee_queue::channel::{
    Builder, OverflowPolicy, Receiver, SendError, Sender, TryRecvError, TrySendError,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    TrySend(u32),
    /// Blocking send; skipped when the model says it would block.
    Send(u32),
    TryRecv,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::TrySend),
        3 => any::<u32>().prop_map(Op::Send),
        4 => Just(Op::TryRecv),
        1 => Just(Op::Close),
    ]
}

fn setup() -> impl Strategy<Value = (Option<usize>, OverflowPolicy)> {
    prop_oneof![
        (
            1usize..6,
            prop_oneof![
                Just(OverflowPolicy::Wait),
                Just(OverflowPolicy::Reject),
                Just(OverflowPolicy::DropOldest)
            ]
        )
            .prop_map(|(c, p)| (Some(c), p)),
        Just((None, OverflowPolicy::Wait)),
    ]
}

/// The obviously-correct channel.
#[derive(Debug, Default)]
struct Model {
    queue: VecDeque<u32>,
    capacity: Option<usize>,
    policy: OverflowPolicy,
    closed: bool,
    sent: u64,
    received: u64,
    dropped: u64,
    rejected: u64,
}

/// What a send does in the model.
enum Outcome {
    Sent,
    Full,
    Closed,
}

impl Model {
    fn full(&self) -> bool {
        self.capacity.is_some_and(|c| self.queue.len() >= c)
    }

    fn send(&mut self, v: u32) -> Outcome {
        if self.closed {
            return Outcome::Closed;
        }
        if self.full() {
            if self.policy != OverflowPolicy::DropOldest {
                self.rejected += 1;
                return Outcome::Full;
            }
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(v);
        self.sent += 1;
        Outcome::Sent
    }
}

fn check(model: &Model, tx: &Sender<u32>, rx: &Receiver<u32>) {
    let stats = rx.stats();
    assert_eq!(stats.depth, model.queue.len());
    assert_eq!(rx.len(), model.queue.len());
    assert_eq!(tx.is_full(), model.full());
    assert_eq!(tx.is_closed(), model.closed);
    assert_eq!(
        (stats.sent, stats.received, stats.dropped, stats.rejected),
        (model.sent, model.received, model.dropped, model.rejected)
    );
    assert_eq!(stats.sent, stats.received + stats.dropped + stats.depth as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn channel_matches_vecdeque((capacity, policy) in setup(), ops in prop::collection::vec(op(), 0..120)) {
        let builder = match capacity {
            Some(c) => Builder::bounded(c).overflow(policy),
            None => Builder::unbounded(),
        };
        let (tx, rx) = builder.build::<u32>().unwrap();
        let mut model = Model { capacity, policy, ..Model::default() };
        for op in ops {
            match op {
                Op::TrySend(v) => {
                    let got = tx.try_send(v);
                    match model.send(v) {
                        Outcome::Sent => prop_assert_eq!(got, Ok(())),
                        Outcome::Full => prop_assert_eq!(got, Err(TrySendError::Full(v))),
                        Outcome::Closed => prop_assert_eq!(got, Err(TrySendError::Closed(v))),
                    }
                }
                Op::Send(v) => {
                    if model.full() && !model.closed && policy == OverflowPolicy::Wait {
                        continue; // would block forever on one thread
                    }
                    let got = tx.send(v);
                    match model.send(v) {
                        Outcome::Sent => prop_assert_eq!(got, Ok(())),
                        Outcome::Full => prop_assert_eq!(got, Err(SendError::Rejected(v))),
                        Outcome::Closed => prop_assert_eq!(got, Err(SendError::Closed(v))),
                    }
                }
                Op::TryRecv => {
                    let got = rx.try_recv();
                    match model.queue.pop_front() {
                        Some(v) => {
                            model.received += 1;
                            prop_assert_eq!(got, Ok(v));
                        }
                        None if model.closed => prop_assert_eq!(got, Err(TryRecvError::Closed)),
                        None => prop_assert_eq!(got, Err(TryRecvError::Empty)),
                    }
                }
                Op::Close => {
                    prop_assert_eq!(tx.close(), !model.closed);
                    model.closed = true;
                }
            }
            check(&model, &tx, &rx);
        }
        // Drain: whatever the model holds comes out in order.
        let rest: Vec<u32> = rx.try_iter().collect();
        prop_assert_eq!(rest, Vec::from(model.queue.clone()));
    }
}
