//! Model test of `ManualClock`'s sleepers: random sleeps, drops, polls and moves of the
//! clock, checked after every step against plain arithmetic: a sleep is woken exactly when
//! the clock reaches its deadline (never before, never missed), a dropped sleep is never
//! woken, and the registry holds exactly the live sleeps that are not yet due.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use levee_core::{Clock, ManualClock, Sleep};
use proptest::prelude::*;

#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Sleep(u16),
    Drop(usize),
    Poll(usize),
    Advance(u16),
    Set(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..500).prop_map(Op::Sleep),
        1 => (0usize..16).prop_map(Op::Drop),
        2 => (0usize..16).prop_map(Op::Poll),
        2 => (0u16..200).prop_map(Op::Advance),
        1 => (0u16..2000).prop_map(Op::Set),
    ]
}

struct Live {
    sleep: Pin<Box<Sleep>>,
    deadline: u64,
    wakes: Arc<Wakes>,
    /// Polled while not due at least once: it waited, so a move of the clock must wake it.
    registered: bool,
    done: bool,
}

impl Live {
    fn poll(&mut self) -> Poll<()> {
        let waker = Waker::from(self.wakes.clone());
        self.sleep.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

proptest! {
    #[test]
    fn sleepers_wake_exactly_when_due(ops in proptest::collection::vec(op(), 1..80)) {
        let clock = ManualClock::new();
        let mut live: Vec<Live> = Vec::new();
        for op in ops {
            match op {
                Op::Sleep(offset) => {
                    let deadline = clock.now() + u64::from(offset);
                    let mut s = Live {
                        sleep: Box::pin(clock.sleep_until(deadline)),
                        deadline,
                        wakes: Arc::default(),
                        registered: false,
                        done: false,
                    };
                    let ready = s.poll().is_ready();
                    prop_assert_eq!(ready, deadline <= clock.now());
                    s.registered = !ready;
                    s.done = ready;
                    live.push(s);
                }
                Op::Drop(i) if i < live.len() => {
                    let gone = live.remove(i);
                    let wakes = gone.wakes.clone();
                    let before = wakes.0.load(Ordering::SeqCst);
                    drop(gone);
                    clock.advance_nanos(1_000);
                    prop_assert_eq!(wakes.0.load(Ordering::SeqCst), before, "woken after drop");
                }
                Op::Poll(i) if i < live.len() => {
                    let now = clock.now();
                    let s = &mut live[i];
                    let ready = s.poll().is_ready();
                    prop_assert_eq!(ready, s.done || s.deadline <= now);
                    s.done |= ready;
                }
                Op::Drop(_) | Op::Poll(_) => {}
                Op::Advance(by) => {
                    clock.advance_nanos(u64::from(by));
                }
                Op::Set(to) => {
                    clock.set(u64::from(to));
                }
            }
            let now = clock.now();
            let mut waiting = 0;
            for s in &live {
                let woken = s.wakes.0.load(Ordering::SeqCst) > 0;
                if s.registered {
                    // Woken once the clock reached the deadline, and not before.
                    prop_assert_eq!(woken, s.deadline <= now, "deadline {} at {}", s.deadline, now);
                    waiting += usize::from(!s.done && s.deadline > now);
                } else {
                    prop_assert!(!woken, "a sleep that never waited was woken");
                }
            }
            prop_assert_eq!(clock.pending_sleeps(), waiting);
        }
    }
}
