//! [`TimerService`]: a [`ShardedWheel`] on an injected clock, driven by one tokio task.
//!
//! Any thread schedules and cancels through a cloneable handle; each call locks one shard
//! (the calling thread's, or the one a [`TimerHandle`] names), so there is no global lock on
//! the schedule/cancel path. A driver task polls the shards, delivers what is due (items to
//! an [`Expirations`] stream or a callback, wake-ups to [`Sleep`] futures) and then sleeps on
//! the service's clock ([`Clock::sleep_until`]) until the earliest next deadline, or until a
//! schedule that is due earlier than anything it saw notifies it (see [`ShardedWheel`] for
//! why no wake-up is lost). It never ticks while idle. Deadlines are readings of the clock:
//! a [`ManualClock`](levee_core::ManualClock) drives the service in tests, moved by hand (the
//! driver wakes at once) or following paused tokio time.

mod handoff;
mod sleep;
mod stream;

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use levee_core::sync::{AtomicUsize, Mutex, Ordering};
use levee_core::{
    Clock, ConfigError, Counter, EventHook, FastClock, LatencyRecorder, LatencySnapshot, Listener,
    nanos,
};
use tokio::sync::Notify;

use crate::error::TimerError;
use crate::sharded::{ShardedWheel, TimerHandle};
use crate::wheel::{Expired, Precision, TimingWheelBuilder};

pub use sleep::{Elapsed, Sleep, Timeout};
pub use stream::Expirations;

/// Due timers handed out per shard per driver pass, so one huge batch does not starve the
/// runtime (the driver yields between passes).
const BATCH: usize = 1024;

/// What the wheel holds for each timer: a scheduled item or a sleeping task's waker.
enum Payload<T> {
    Item(T),
    Wake(Option<Waker>),
}

/// Something a [`TimerService`] reports to its [`Listener`]s.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::{TimerEvent, TimerService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let sink = events.clone();
/// let timers: TimerService<u32, _> = TimerService::builder()
///     .clock(ManualClock::new())
///     .listener(move |e: &TimerEvent| sink.lock().unwrap().push(e.clone()))
///     .build()
///     .unwrap();
/// let handle = timers.schedule_after(Duration::from_secs(1), 7).unwrap();
/// timers.cancel(handle);
/// assert!(matches!(events.lock().unwrap()[..], [TimerEvent::Cancelled { .. }]));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimerEvent {
    /// A timer (item or sleep) fired `lateness` after its deadline.
    Fired {
        /// The timer.
        handle: TimerHandle,
        /// How long after its deadline the driver handed it out.
        lateness: Duration,
    },
    /// A timer was cancelled before it fired (including a [`Sleep`] dropped early).
    Cancelled {
        /// The timer.
        handle: TimerHandle,
    },
    /// A schedule was refused because `max_pending` timers are pending.
    Rejected {
        /// The bound.
        max_pending: usize,
    },
}

/// Counters and the lateness histogram of a [`TimerService`].
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::TimerService;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let timers: TimerService<u32, _> = TimerService::builder().clock(ManualClock::new()).build().unwrap();
/// timers.schedule_after(Duration::from_secs(1), 1).unwrap();
/// let handle = timers.schedule_after(Duration::from_secs(2), 2).unwrap();
/// timers.cancel(handle);
/// let stats = timers.stats();
/// assert_eq!((stats.pending, stats.cancelled, stats.fired), (1, 1, 0));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TimerStats {
    /// Timers scheduled and not yet fired or cancelled (items and sleeps).
    pub pending: usize,
    /// Timers fired so far.
    pub fired: u64,
    /// Timers cancelled so far (including dropped sleeps).
    pub cancelled: u64,
    /// Schedules refused because the service was full.
    pub rejected: u64,
    /// Fired items waiting in the [`Expirations`] stream for its consumer.
    pub backlog: usize,
    /// How late timers fired: driver hand-out time minus deadline.
    pub lateness: LatencySnapshot,
}

enum Delivery<T> {
    Stream { tx: handoff::Sender<T>, rx: Mutex<Option<Expirations<T>>> },
    Callback(Box<dyn Fn(TimerHandle, T) + Send + Sync>),
}

struct Shared<T, C> {
    wheel: ShardedWheel<Payload<T>>,
    clock: C,
    notify: Arc<Notify>,
    delivery: Delivery<T>,
    hook: EventHook<TimerEvent>,
    fired: Counter,
    rejected: Counter,
    backlog: Arc<AtomicUsize>,
    lateness: LatencyRecorder,
}

impl<T, C> Drop for Shared<T, C> {
    fn drop(&mut self) {
        // Lets the driver see that the last handle is gone and stop.
        self.notify.notify_one();
    }
}

/// A thread-safe, cloneable timer service: schedule items from any thread, get them back
/// when due, plus [`sleep`](Self::sleep) and [`timeout`](Self::timeout) on the same wheels.
///
/// Time is the service's clock `C` ([`FastClock`] unless the builder's
/// [`clock`](TimerServiceBuilder::clock) says otherwise): deadlines are its readings, and the
/// driver sleeps on it. Built with [`TimerService::builder`] inside a tokio runtime (it
/// spawns its driver task there, which ends when the last clone of the service and its
/// sleeps are dropped).
///
/// ```
/// use std::time::Duration;
/// use levee_core::{Clock, ManualClock};
/// use levee_timer::TimerService;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let clock = ManualClock::new();
/// let timers: TimerService<&str, _> =
///     TimerService::builder().clock(clock.clone()).build().unwrap();
/// let mut due = timers.expirations().unwrap();
///
/// let order = timers.schedule_after(Duration::from_secs(30 * 60), "cancel order 7").unwrap();
/// timers.schedule_after(Duration::from_secs(60), "release cart 3").unwrap();
/// assert_eq!(timers.cancel(order), Some("cancel order 7")); // paid in time
///
/// clock.advance(Duration::from_secs(61)); // the driver wakes at once
/// let (_, what) = due.recv().await.unwrap();
/// assert_eq!(what, "release cart 3");
///
/// let slow = timers.timeout(Duration::from_millis(5), std::future::pending::<()>());
/// clock.advance(Duration::from_millis(5));
/// assert!(slow.await.is_err());
/// # }
/// ```
pub struct TimerService<T = (), C = FastClock> {
    shared: Arc<Shared<T, C>>,
}

impl<T, C> Clone for TimerService<T, C> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone() }
    }
}

impl<T, C> fmt::Debug for TimerService<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService").field("wheel", &self.shared.wheel).finish_non_exhaustive()
    }
}

/// Settings of a [`TimerService`].
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_timer::{Precision, TimerService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let timers: TimerService<String, _> = TimerService::builder()
///     .clock(ManualClock::new())
///     .tick(Duration::from_millis(10))
///     .mode(Precision::Slack)
///     .max_pending(1_000_000)
///     .shards(4)
///     .on_expired(|_handle, order: String| println!("cancel unpaid {order}"))
///     .build()
///     .unwrap();
/// assert_eq!(timers.pending(), 0);
/// # }
/// ```
#[must_use]
pub struct TimerServiceBuilder<T, C = FastClock> {
    wheel: TimingWheelBuilder,
    shards: Option<usize>,
    callback: Option<Box<dyn Fn(TimerHandle, T) + Send + Sync>>,
    hook: EventHook<TimerEvent>,
    runtime: Option<tokio::runtime::Handle>,
    clock: C,
}

/// The former name of [`TimerServiceBuilder`].
///
/// ```
/// #[allow(deprecated)]
/// use levee_timer::{ServiceBuilder, TimerService};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// #[allow(deprecated)]
/// let builder: ServiceBuilder<u32> = TimerService::builder(); // prefer `TimerServiceBuilder`
/// assert_eq!(builder.build().unwrap().pending(), 0);
/// # }
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed to `TimerServiceBuilder` (levee's `XBuilder` convention)"
)]
pub type ServiceBuilder<T, C = FastClock> = TimerServiceBuilder<T, C>;

impl<T, C> fmt::Debug for TimerServiceBuilder<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerServiceBuilder")
            .field("wheel", &self.wheel)
            .field("shards", &self.shards)
            .field("callback", &self.callback.is_some())
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static, C: Clock> TimerServiceBuilder<T, C> {
    /// Reads time from, and sleeps on, `clock` instead of [`FastClock`].
    pub fn clock<C2: Clock>(self, clock: C2) -> TimerServiceBuilder<T, C2> {
        TimerServiceBuilder {
            wheel: self.wheel,
            shards: self.shards,
            callback: self.callback,
            hook: self.hook,
            runtime: self.runtime,
            clock,
        }
    }

    /// Wheel tick (default 1 ms): timers fire at most about one tick late in exact mode.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.wheel = self.wheel.tick(tick);
        self
    }

    /// Exact (default) or slack firing; see [`Precision`].
    pub fn mode(mut self, mode: Precision) -> Self {
        self.wheel = self.wheel.mode(mode);
        self
    }

    /// Bound on pending timers (items and sleeps together); beyond it `schedule` fails with
    /// [`TimerError::Full`], and sleeps/timeouts complete at once (see [`Sleep`]).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.wheel = self.wheel.max_pending(max);
        self
    }

    /// Number of wheels (default: twice the available parallelism, a power of two).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Delivers due items to `callback` on the driver task instead of the
    /// [`Expirations`] stream. It must be quick (hand off to a channel or spawn) and must
    /// not panic (a panic ends the driver task, and with it every timer of the service).
    /// A callback that owns a clone of the service keeps the service, and its driver,
    /// alive for good: capture a channel sender instead.
    pub fn on_expired(mut self, callback: impl Fn(TimerHandle, T) + Send + Sync + 'static) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// Adds a listener for [`TimerEvent`]s.
    pub fn listener(mut self, listener: impl Listener<TimerEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// The runtime to spawn the driver on (default: the current one).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Builds the service and spawns its driver task.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the bad setting (`tick`, `max_pending`, `shards`), or
    /// `runtime` when called outside a tokio runtime without [`runtime`](Self::runtime).
    pub fn build(self) -> Result<TimerService<T, C>, ConfigError> {
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => tokio::runtime::Handle::try_current().map_err(|_| {
                ConfigError::new(
                    "runtime",
                    "build() needs a tokio runtime: call it inside one or pass .runtime(handle)",
                )
            })?,
        };
        let shards = self.shards.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
            (cpus * 2).next_power_of_two().min(64)
        });
        let wheel = ShardedWheel::new(shards, self.wheel.start(self.clock.now()))?;
        let backlog = Arc::new(AtomicUsize::new(0));
        let delivery = match self.callback {
            Some(callback) => Delivery::Callback(callback),
            None => {
                let (tx, rx) = handoff::handoff(backlog.clone());
                let stream = Expirations::new(rx);
                Delivery::Stream { tx, rx: Mutex::new(Some(stream)) }
            }
        };
        let notify = Arc::new(Notify::new());
        let shared = Arc::new(Shared {
            wheel,
            clock: self.clock,
            notify: notify.clone(),
            delivery,
            hook: self.hook,
            fired: Counter::new(),
            rejected: Counter::new(),
            backlog,
            lateness: LatencyRecorder::new(),
        });
        runtime.spawn(drive(Arc::downgrade(&shared), notify));
        Ok(TimerService { shared })
    }
}

impl<T: Send + 'static> TimerService<T> {
    /// Settings for a service on [`FastClock`]; `build()` spawns it on the current tokio
    /// runtime.
    pub fn builder() -> TimerServiceBuilder<T> {
        TimerServiceBuilder {
            wheel: TimingWheelBuilder::default(),
            shards: None,
            callback: None,
            hook: EventHook::none(),
            runtime: None,
            clock: FastClock,
        }
    }
}

impl<T: Send + 'static, C: Clock> TimerService<T, C> {
    /// Schedules `item` for clock reading `at`. Due items go to the [`Expirations`] stream
    /// (or the `on_expired` callback). An `at` in the past fires on the driver's next pass.
    ///
    /// # Errors
    /// [`TimerError::Full`] with the item when `max_pending` timers are pending.
    pub fn schedule(&self, at: u64, item: T) -> Result<TimerHandle, TimerError<T>> {
        match self.shared.insert(at, Payload::Item(item)) {
            Ok(handle) => Ok(handle),
            Err(TimerError::Full { value: Payload::Item(item), max_pending }) => {
                Err(TimerError::Full { value: item, max_pending })
            }
            Err(_) => unreachable!("insert fails only with Full, handing the item back"),
        }
    }

    /// [`schedule`](Self::schedule) for `delay` from now.
    ///
    /// # Errors
    /// As [`schedule`](Self::schedule).
    pub fn schedule_after(&self, delay: Duration, item: T) -> Result<TimerHandle, TimerError<T>> {
        self.schedule(self.now().saturating_add(nanos(delay)), item)
    }

    /// Cancels a scheduled item and returns it; `None` once it fired (it is then in the
    /// stream or was given to the callback) or was cancelled: never both.
    pub fn cancel(&self, handle: TimerHandle) -> Option<T> {
        match self.shared.cancel(handle)? {
            Payload::Item(item) => Some(item),
            Payload::Wake(_) => None,
        }
    }

    /// Moves a scheduled item to clock reading `at`.
    ///
    /// # Errors
    /// [`TimerError::StaleKey`] once it fired or was cancelled; [`TimerError::ForeignKey`]
    /// for a handle of another service.
    pub fn reset(&self, handle: TimerHandle, at: u64) -> Result<(), TimerError> {
        self.shared.reset(handle, at)
    }

    /// The stream of due items. `Some` once (the first call takes it); `None` afterwards or
    /// when the service delivers to a callback.
    #[must_use]
    pub fn expirations(&self) -> Option<Expirations<T>> {
        match &self.shared.delivery {
            Delivery::Stream { rx, .. } => rx.lock().take(),
            Delivery::Callback(_) => None,
        }
    }
}

impl<T, C: Clock> TimerService<T, C> {
    /// The service's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }

    /// A reading of the service's clock: what deadlines are measured in.
    #[must_use]
    pub fn now(&self) -> u64 {
        self.shared.clock.now()
    }

    /// A future that completes when the service's clock reads `deadline`. Cancelled (its
    /// timer removed) when dropped.
    pub fn sleep_until(&self, deadline: u64) -> Sleep
    where
        T: Send + 'static,
    {
        let future = deadline > self.now();
        Sleep::new(self.shared.clone(), deadline, future)
    }

    /// A future that completes after `duration` on the service's clock.
    pub fn sleep(&self, duration: Duration) -> Sleep
    where
        T: Send + 'static,
    {
        // One clock read: a positive duration from now is always in the future.
        let deadline = self.now().saturating_add(nanos(duration));
        Sleep::new(self.shared.clone(), deadline, !duration.is_zero())
    }

    /// Runs `future` until it completes or `duration` passes, whichever comes first; the
    /// timer is cancelled when the future wins or the `Timeout` is dropped.
    pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F>
    where
        T: Send + 'static,
    {
        Timeout::new(future, self.sleep(duration))
    }

    /// [`timeout`](Self::timeout) with a deadline on the service's clock.
    pub fn timeout_at<F: Future>(&self, deadline: u64, future: F) -> Timeout<F>
    where
        T: Send + 'static,
    {
        Timeout::new(future, self.sleep_until(deadline))
    }

    /// Counters, pending count and lateness percentiles.
    #[must_use]
    pub fn stats(&self) -> TimerStats {
        let s = &self.shared;
        TimerStats {
            pending: s.wheel.len(),
            fired: s.fired.get(),
            cancelled: s.wheel.cancelled(),
            rejected: s.rejected.get(),
            backlog: s.backlog.load(Ordering::Relaxed),
            lateness: s.lateness.snapshot(),
        }
    }

    /// Timers pending (items and sleeps).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.shared.wheel.len()
    }

    /// Hands unused wheel memory back to the allocator ([`TimingWheel::compact`] on each
    /// shard).
    ///
    /// [`TimingWheel::compact`]: crate::TimingWheel::compact
    pub fn compact(&self) {
        self.shared.wheel.compact();
    }
}

impl<T, C> Shared<T, C> {
    fn insert(
        &self,
        deadline: u64,
        payload: Payload<T>,
    ) -> Result<TimerHandle, TimerError<Payload<T>>> {
        match self.wheel.insert(deadline, payload) {
            Ok((handle, wake)) => {
                if wake {
                    self.notify.notify_one();
                }
                Ok(handle)
            }
            Err(err) => {
                self.rejected.incr();
                let max_pending = self.wheel.max_pending();
                self.hook.emit(|| TimerEvent::Rejected { max_pending });
                Err(err)
            }
        }
    }

    fn cancel(&self, handle: TimerHandle) -> Option<Payload<T>> {
        let payload = self.wheel.cancel(handle)?;
        self.hook.emit(|| TimerEvent::Cancelled { handle });
        Some(payload)
    }

    fn reset(&self, handle: TimerHandle, deadline: u64) -> Result<(), TimerError> {
        if self.wheel.reset(handle, deadline)? {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Hands a driver pass's due timers out: wake-ups to sleeping tasks, items to the
    /// callback, or to the stream in one batch (`items` is the driver's scratch space).
    fn deliver(
        &self,
        batch: &mut Vec<Expired<Payload<T>, TimerHandle>>,
        items: &mut Vec<(TimerHandle, T)>,
        now: u64,
    ) {
        if batch.is_empty() {
            return;
        }
        self.fired.add(batch.len() as u64);
        // One lock for the pass's lateness samples, not one a timer.
        self.lateness.record_all_nanos(batch.iter().map(|e| now.saturating_sub(e.deadline)));
        for Expired { key: handle, deadline, value } in batch.drain(..) {
            let late = now.saturating_sub(deadline);
            self.hook.emit(|| TimerEvent::Fired { handle, lateness: Duration::from_nanos(late) });
            match value {
                Payload::Wake(Some(waker)) => waker.wake(),
                Payload::Wake(None) => {} // never polled: its first poll finds it fired
                Payload::Item(item) => match &self.delivery {
                    Delivery::Callback(callback) => callback(handle, item),
                    Delivery::Stream { .. } => items.push((handle, item)),
                },
            }
        }
        if let (Delivery::Stream { tx, .. }, false) = (&self.delivery, items.is_empty()) {
            tx.send(items);
        }
    }
}

/// The part of the service a [`Sleep`] needs, without the item type.
trait SleepBackend: Send + Sync {
    fn now(&self) -> u64;
    fn arm(&self, deadline: u64) -> Option<TimerHandle>;
    fn poll_fired(&self, handle: TimerHandle, cx: &mut Context<'_>) -> Poll<()>;
    fn disarm(&self, handle: TimerHandle);
    fn rearm(&self, handle: TimerHandle, deadline: u64) -> bool;
}

impl<T: Send + 'static, C: Clock> SleepBackend for Shared<T, C> {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn arm(&self, deadline: u64) -> Option<TimerHandle> {
        self.insert(deadline, Payload::Wake(None)).ok()
    }

    fn poll_fired(&self, handle: TimerHandle, cx: &mut Context<'_>) -> Poll<()> {
        // Registering under the shard lock: either the driver has not taken the timer yet
        // and will wake this waker, or it has and the timer is gone (fired).
        let registered = self.wheel.with_value(handle, |payload| {
            if let Payload::Wake(slot) = payload {
                match slot {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
            }
        });
        if registered.is_some() { Poll::Pending } else { Poll::Ready(()) }
    }

    fn disarm(&self, handle: TimerHandle) {
        self.cancel(handle);
    }

    fn rearm(&self, handle: TimerHandle, deadline: u64) -> bool {
        self.reset(handle, deadline).is_ok()
    }
}

/// The driver task: poll every shard, deliver, sleep on the clock until the next deadline or
/// a notify. Holds the service only weakly (and not at all while it sleeps: a clock's sleep
/// borrows nothing), so it ends once every handle and sleep is gone.
async fn drive<T: Send + 'static, C: Clock>(shared: Weak<Shared<T, C>>, notify: Arc<Notify>) {
    let (mut batch, mut items) = (Vec::new(), Vec::new());
    // One registration with `notify` serves every pass until it fires: registering and
    // deregistering each take the notify's lock, and a pass per tick would pay both.
    let mut notified = pin!(notify.notified());
    loop {
        let (sleep, more) = {
            let Some(shared) = shared.upgrade() else { return };
            let now = shared.clock.now();
            let polled = shared.wheel.poll_expired(now, &mut batch, BATCH);
            shared.deliver(&mut batch, &mut items, now);
            (polled.next.map(|next| shared.clock.sleep_until(next)), polled.more)
        };
        if more {
            tokio::task::yield_now().await;
            continue;
        }
        let mut sleep = pin!(sleep);
        let notice = poll_fn(|cx| {
            if sleep.as_mut().as_pin_mut().is_some_and(|s| s.poll(cx).is_ready()) {
                Poll::Ready(false)
            } else if notified.as_mut().poll(cx).is_ready() {
                Poll::Ready(true)
            } else {
                Poll::Pending
            }
        })
        .await;
        if notice {
            // A completed `Notified` stays ready: take a fresh one for the next wait.
            notified.set(notify.notified());
        }
    }
}
