//! Drives a levee channel (bounded under each overflow policy, or unbounded) with arbitrary
//! sequences of sends and receives (`try_`, blocking where it cannot block, and async
//! futures polled by hand and dropped at any point), handle clones and drops, and closes from
//! either end, against a `VecDeque` model. After every step:
//! - every answer is the model's (which message, full, empty, closed; the value comes back on
//!   a failed send), and the counters, the depth and the events match;
//! - no lost wake-up: while a pending future could make progress (room or a message, or a
//!   closed channel), at least one pending future of that direction has been woken since it
//!   was last polled;
//! - nothing is lost or duplicated: every message is dropped exactly once, and none is alive
//!   once every handle and future is gone.
#![no_main]

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use arbitrary::Arbitrary;
use levee_queue::channel::{
    Builder, ChannelEvent, CloseReason, OverflowPolicy, Receiver, RecvError, SendError, Sender,
    TryRecvError, TrySendError,
};
use libfuzzer_sys::fuzz_target;

thread_local! {
    /// Ids of the messages alive now.
    static ALIVE: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
}

/// A message that knows whether it is alive: created once, dropped once.
#[derive(Debug, PartialEq, Eq)]
struct Msg(u32);

impl Msg {
    fn new(id: u32) -> Self {
        ALIVE.with(|alive| assert!(alive.borrow_mut().insert(id), "message {id} made twice"));
        Self(id)
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        let id = self.0;
        ALIVE.with(|alive| assert!(alive.borrow_mut().remove(&id), "message {id} dropped twice"));
    }
}

#[derive(Debug, Arbitrary)]
enum Flavor {
    Bounded(u8, u8),
    Unbounded,
}

#[derive(Debug, Arbitrary)]
enum Op {
    TrySend(u8),
    /// Blocking send; skipped when the model says it would block.
    Send(u8),
    SendAsync(u8),
    TryRecv(u8),
    /// Blocking receive; skipped when the model says it would block.
    Recv(u8),
    RecvAsync(u8),
    PollSend(u8),
    PollRecv(u8),
    DropSendFuture(u8),
    DropRecvFuture(u8),
    CloneSender(u8),
    CloneReceiver(u8),
    DropSender(u8),
    DropReceiver(u8),
    CloseSender(u8),
    CloseReceiver(u8),
}

/// A waker that records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type Boxed<T> = Pin<Box<dyn Future<Output = T>>>;

/// A future polled by hand, holding its own handle (as a task would), and its waker's flag.
struct Pending<T> {
    future: Boxed<T>,
    flag: Arc<Flag>,
    /// The message a pending send carries.
    id: u32,
}

impl<T> Pending<T> {
    fn new(future: Boxed<T>, id: u32) -> Self {
        Self { future, flag: Arc::new(Flag(AtomicBool::new(false))), id }
    }

    fn poll(&mut self) -> Poll<T> {
        self.flag.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(Arc::clone(&self.flag));
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }
}

/// The obviously correct channel.
#[derive(Debug, Default)]
struct Model {
    queue: VecDeque<u32>,
    capacity: Option<usize>,
    policy: OverflowPolicy,
    closed: Option<CloseReason>,
    sent: u64,
    received: u64,
    dropped: u64,
    rejected: u64,
    discarded: u64,
}

/// What a send does in the model.
#[derive(Debug, PartialEq)]
enum Sent {
    Ok,
    Full,
    Closed,
}

impl Model {
    fn full(&self) -> bool {
        self.capacity.is_some_and(|c| self.queue.len() >= c)
    }

    /// Whether a send would wait (instead of answering at once).
    fn send_waits(&self) -> bool {
        self.closed.is_none() && self.full() && self.policy == OverflowPolicy::Wait
    }

    fn recv_waits(&self) -> bool {
        self.closed.is_none() && self.queue.is_empty()
    }

    /// A send that answers at once; `try_send` counts a full channel as rejected under every
    /// policy, a blocking or async send only under `Reject` (under `Wait` it waits).
    fn send(&mut self, id: u32, waits: bool) -> Sent {
        if self.closed.is_some() {
            return Sent::Closed;
        }
        if self.full() {
            match self.policy {
                OverflowPolicy::DropOldest => {
                    self.queue.pop_front();
                    self.dropped += 1;
                }
                OverflowPolicy::Wait if waits => return Sent::Full,
                _ => {
                    self.rejected += 1;
                    return Sent::Full;
                }
            }
        }
        self.queue.push_back(id);
        self.sent += 1;
        Sent::Ok
    }

    fn recv(&mut self) -> Result<u32, TryRecvError> {
        match self.queue.pop_front() {
            Some(id) => {
                self.received += 1;
                Ok(id)
            }
            None if self.closed.is_some() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Closes for `reason`; true if this closed it. The last receiver drops what is queued.
    fn close(&mut self, reason: CloseReason) -> bool {
        if reason == CloseReason::ReceiversGone {
            self.discarded += self.queue.len() as u64;
            self.queue.clear();
        }
        let first = self.closed.is_none();
        if first {
            self.closed = Some(reason);
        }
        first
    }
}

fn check_send(got: Result<(), SendError<Msg>>, want: Sent, id: u32) {
    match (got, want) {
        (Ok(()), Sent::Ok) => {}
        (Err(SendError::Rejected(m)), Sent::Full) | (Err(SendError::Closed(m)), Sent::Closed) => {
            assert_eq!(m.0, id, "the value comes back")
        }
        (got, want) => panic!("send {id}: channel {got:?}, model {want:?}"),
    }
}

fn check_recv(got: Result<Msg, TryRecvError>, want: Result<u32, TryRecvError>) {
    assert_eq!(got.map(|m| m.0), want);
}

fn pick<T>(items: &[T], i: u8) -> Option<usize> {
    (!items.is_empty()).then(|| usize::from(i) % items.len())
}

#[derive(Debug, Arbitrary)]
struct Case {
    flavor: Flavor,
    ops: Vec<Op>,
}

fuzz_target!(|case: Case| {
    let Case { flavor, ops } = case;
    ALIVE.with(|alive| alive.borrow_mut().clear());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let (builder, capacity, policy) = match flavor {
        Flavor::Bounded(c, p) => {
            let policy = match p % 3 {
                0 => OverflowPolicy::Wait,
                1 => OverflowPolicy::Reject,
                _ => OverflowPolicy::DropOldest,
            };
            let c = usize::from(c % 8) + 1;
            (Builder::bounded(c).overflow(policy), Some(c), policy)
        }
        Flavor::Unbounded => (Builder::unbounded(), None, OverflowPolicy::Wait),
    };
    let (tx, rx) = builder
        .listener(move |e: &ChannelEvent| sink.lock().unwrap().push(*e))
        .build::<Msg>()
        .expect("valid settings");
    let mut m = Model { capacity, policy, ..Model::default() };
    let mut senders: Vec<Sender<Msg>> = vec![tx];
    let mut receivers: Vec<Receiver<Msg>> = vec![rx];
    let mut sends: Vec<Pending<Result<(), SendError<Msg>>>> = Vec::new();
    let mut recvs: Vec<Pending<Result<Msg, RecvError>>> = Vec::new();
    let mut next = 0u32;
    // Handles alive, the futures' own included.
    let live_senders = |senders: &[Sender<Msg>], sends: &[Pending<_>]| senders.len() + sends.len();

    for op in ops.iter().take(1_000) {
        match *op {
            Op::TrySend(i) | Op::Send(i) | Op::SendAsync(i) => {
                let Some(i) = pick(&senders, i) else { continue };
                let blocking = matches!(op, Op::Send(_));
                if blocking && m.send_waits() {
                    continue; // one thread: it would wait forever
                }
                next += 1;
                let msg = Msg::new(next);
                match *op {
                    Op::TrySend(_) => {
                        let got = senders[i].try_send(msg).map_err(|e| match e {
                            TrySendError::Full(v) => SendError::Rejected(v),
                            TrySendError::Closed(v) => SendError::Closed(v),
                        });
                        check_send(got, m.send(next, false), next);
                    }
                    Op::Send(_) => check_send(senders[i].send(msg), m.send(next, true), next),
                    _ => {
                        let tx = senders[i].clone();
                        let mut pending =
                            Pending::new(Box::pin(async move { tx.send_async(msg).await }), next);
                        match pending.poll() {
                            Poll::Ready(got) => check_send(got, m.send(next, true), next),
                            Poll::Pending => {
                                assert!(m.send_waits(), "send {next} waits for no reason");
                                sends.push(pending);
                            }
                        }
                    }
                }
            }
            Op::TryRecv(i) | Op::Recv(i) => {
                let Some(i) = pick(&receivers, i) else { continue };
                if matches!(op, Op::Recv(_)) {
                    if m.recv_waits() {
                        continue;
                    }
                    let got = receivers[i].recv().map_err(|RecvError| TryRecvError::Closed);
                    check_recv(got, m.recv());
                } else {
                    check_recv(receivers[i].try_recv(), m.recv());
                }
            }
            Op::RecvAsync(i) => {
                let Some(i) = pick(&receivers, i) else { continue };
                let rx = receivers[i].clone();
                let mut pending = Pending::new(Box::pin(async move { rx.recv_async().await }), 0);
                match pending.poll() {
                    Poll::Ready(got) => {
                        check_recv(got.map_err(|RecvError| TryRecvError::Closed), m.recv())
                    }
                    Poll::Pending => {
                        assert!(m.recv_waits(), "a receive waits with messages queued");
                        recvs.push(pending);
                    }
                }
            }
            Op::PollSend(j) => {
                let Some(j) = pick(&sends, j) else { continue };
                let id = sends[j].id;
                if let Poll::Ready(got) = sends[j].poll() {
                    drop(sends.swap_remove(j));
                    check_send(got, m.send(id, true), id);
                    if m.closed.is_none() && live_senders(&senders, &sends) == 0 {
                        m.close(CloseReason::SendersGone);
                    }
                } else {
                    assert!(m.send_waits(), "send {id} still waits for no reason");
                }
            }
            Op::PollRecv(j) => {
                let Some(j) = pick(&recvs, j) else { continue };
                if let Poll::Ready(got) = recvs[j].poll() {
                    drop(recvs.swap_remove(j));
                    check_recv(got.map_err(|RecvError| TryRecvError::Closed), m.recv());
                    if receivers.is_empty() && recvs.is_empty() {
                        m.close(CloseReason::ReceiversGone);
                    }
                } else {
                    assert!(m.recv_waits(), "a receive still waits with messages queued");
                }
            }
            Op::DropSendFuture(j) => {
                let Some(j) = pick(&sends, j) else { continue };
                drop(sends.swap_remove(j)); // its message goes with it
                if live_senders(&senders, &sends) == 0 {
                    m.close(CloseReason::SendersGone);
                }
            }
            Op::DropRecvFuture(j) => {
                let Some(j) = pick(&recvs, j) else { continue };
                drop(recvs.swap_remove(j));
                if receivers.is_empty() && recvs.is_empty() {
                    m.close(CloseReason::ReceiversGone);
                }
            }
            Op::CloneSender(i) => {
                let Some(i) = pick(&senders, i) else { continue };
                senders.push(senders[i].clone());
            }
            Op::CloneReceiver(i) => {
                let Some(i) = pick(&receivers, i) else { continue };
                receivers.push(receivers[i].clone());
            }
            Op::DropSender(i) => {
                let Some(i) = pick(&senders, i) else { continue };
                drop(senders.swap_remove(i));
                if live_senders(&senders, &sends) == 0 {
                    m.close(CloseReason::SendersGone);
                }
            }
            Op::DropReceiver(i) => {
                let Some(i) = pick(&receivers, i) else { continue };
                drop(receivers.swap_remove(i));
                if receivers.is_empty() && recvs.is_empty() {
                    m.close(CloseReason::ReceiversGone);
                }
            }
            Op::CloseSender(i) => {
                let Some(i) = pick(&senders, i) else { continue };
                assert_eq!(senders[i].close(), m.close(CloseReason::Explicit));
            }
            Op::CloseReceiver(i) => {
                let Some(i) = pick(&receivers, i) else { continue };
                assert_eq!(receivers[i].close(), m.close(CloseReason::Explicit));
            }
        }

        // No lost wake-up: a direction that could move has a woken future.
        if !sends.is_empty() && !m.send_waits() {
            assert!(sends.iter().any(Pending::woken), "room or closed, no sender woken");
        }
        if !recvs.is_empty() && !m.recv_waits() {
            assert!(recvs.iter().any(Pending::woken), "a message or closed, no receiver woken");
        }
        // Counters, depth and state, through whichever end is still held.
        let stats = match (receivers.first(), senders.first()) {
            (Some(rx), _) => {
                Some((rx.stats(), rx.is_closed(), rx.sender_count(), rx.receiver_count()))
            }
            (None, Some(tx)) => {
                Some((tx.stats(), tx.is_closed(), tx.sender_count(), tx.receiver_count()))
            }
            (None, None) => None,
        };
        if let Some((stats, closed, sender_count, receiver_count)) = stats {
            assert_eq!(
                (stats.sent, stats.received, stats.dropped, stats.rejected, stats.discarded),
                (m.sent, m.received, m.dropped, m.rejected, m.discarded)
            );
            assert_eq!(stats.depth, m.queue.len());
            assert_eq!(
                stats.sent,
                stats.received + stats.dropped + stats.discarded + stats.depth as u64
            );
            assert_eq!(closed, m.closed.is_some());
            assert_eq!(sender_count, live_senders(&senders, &sends));
            assert_eq!(receiver_count, receivers.len() + recvs.len());
        }
        if let Some(tx) = senders.first() {
            assert_eq!((tx.is_full(), tx.len()), (m.full(), m.queue.len()));
        }
        let seen = events.lock().unwrap();
        let count = |f: &dyn Fn(&ChannelEvent) -> bool| seen.iter().filter(|e| f(e)).count() as u64;
        assert_eq!(count(&|e| matches!(e, ChannelEvent::Dropped { .. })), m.dropped);
        assert_eq!(count(&|e| matches!(e, ChannelEvent::Rejected { .. })), m.rejected);
        let closes: Vec<CloseReason> = seen
            .iter()
            .filter_map(|e| match e {
                ChannelEvent::Closed { reason } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(closes, m.closed.into_iter().collect::<Vec<_>>(), "close events");
        let discarded: u64 = seen
            .iter()
            .map(|e| match e {
                ChannelEvent::Discarded { count } => *count,
                _ => 0,
            })
            .sum();
        assert_eq!(discarded, m.discarded);
    }

    // Drain what is left: the model's messages, in order.
    if let Some(handle) = receivers.first() {
        let rest: Vec<u32> = handle.try_iter().map(|msg| msg.0).collect();
        assert_eq!(rest, Vec::from(m.queue.clone()));
    }
    drop((sends, recvs, senders, receivers));
    ALIVE.with(|alive| assert!(alive.borrow().is_empty(), "messages leaked: {:?}", alive.borrow()));
});
