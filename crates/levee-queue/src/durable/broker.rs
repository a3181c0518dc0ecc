//! The durable broker: the subscription engine ([`Core`]) of the in-process broker for the
//! delivery rules, the log underneath for everything that must survive a crash.
//!
//! One lock guards the whole in-memory state (topics, subscriptions, their engines). Each
//! operation changes the engine, drains what the engine journaled into one log record
//! appended under the same lock (so the log's order is the state's order), releases the
//! lock, then waits until the log confirms the record. A publish becomes deliverable only
//! once confirmed: the commit thread hands confirmed publishes to their subscriptions in log
//! order.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use levee_core::sync::Mutex;
use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener, nanos};
use tokio::sync::Notify;

use super::codec::Codec;
use super::error::{DamagedRange, OpenError, Recovery};
use super::file::{Disk, Storage};
use super::frame::FRAME_HEADER;
use super::log::{AppendError, Failure, Log, LogOptions, OpenFailure};
use super::record::{self, Record, SUB_COUNTERS, SubMsg};
use super::recover::{Built, Recovering};
use super::seqmap::SeqMap;
use super::settings::{DurableSettings, WhenFull};
use crate::broker::core::Core;
use crate::broker::dedup::Dedup;
use crate::broker::journal::Change;
use crate::broker::message::StoredMessage;
use crate::broker::subject::{SubjectFilter, validate_subject};
use crate::broker::{
    BrokerError, BrokerEvent, Message, Overflow, Publish, Schedule, SubscriptionConfig, TopicConfig,
};

/// Maps keyed by small ids and names: foldhash, the workspace's fast hasher (SipHash's DoS
/// resistance buys nothing here). Maps keyed by sequence number are [`SeqMap`]s.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub(crate) struct SubWake {
    pub(crate) ready: Notify,
    pub(crate) room: Notify,
}

pub(crate) struct SubState<T> {
    pub(crate) topic_id: u32,
    pub(crate) topic: Arc<str>,
    pub(crate) name: Arc<str>,
    pub(crate) filter: Option<SubjectFilter>,
    pub(crate) config: SubscriptionConfig,
    pub(crate) core: Core<T>,
    /// Every message the subscription holds, as the log knows it (for compaction).
    pub(crate) shadow: SeqMap<SubMsg>,
    /// Published, not yet confirmed and handed to the core.
    pub(crate) unreleased: usize,
    pub(crate) wake: Arc<SubWake>,
    pub(crate) rejected: u64,
    /// The statistics counters as the log last recorded them.
    pub(crate) counted: [u64; SUB_COUNTERS],
}

impl<T> SubState<T> {
    fn held(&self) -> usize {
        self.core.held() + self.unreleased
    }

    /// The statistics counters (the engine's, then `rejected`), as a `Counters` record
    /// keeps them.
    fn counters(&self) -> [u64; SUB_COUNTERS] {
        let mut all = [0; SUB_COUNTERS];
        let (engine, rejected) = all.split_at_mut(SUB_COUNTERS - 1);
        engine.copy_from_slice(&self.core.counters());
        rejected[0] = self.rejected;
        all
    }
}

/// How often at most the background thread records counters that changed.
const COUNTERS_EVERY: u64 = 1_000_000_000;

/// A message some subscription still holds: where its payload is on disk.
pub(crate) struct Live {
    /// The record holding the message's payload (its publish, or the copy compaction made).
    pub(crate) lsn: u64,
    pub(crate) bytes: u32,
    /// Subscriptions still holding it.
    pub(crate) holders: u32,
}

pub(crate) struct TopicState {
    id: u32,
    name: Arc<str>,
    config: TopicConfig,
    next_seq: u64,
    dedup: Dedup,
    pub(crate) subs: Vec<u32>,
    pub(crate) live: SeqMap<Live>,
    duplicates: u64,
}

impl TopicState {
    pub(crate) fn new(
        id: u32,
        name: Arc<str>,
        config: TopicConfig,
        next_seq: u64,
        dedup: Dedup,
    ) -> Self {
        Self {
            id,
            name,
            config,
            next_seq,
            dedup,
            subs: Vec::new(),
            live: SeqMap::default(),
            duplicates: 0,
        }
    }
}

struct Unreleased<T> {
    end: u64,
    msg: Arc<StoredMessage<T>>,
    targets: Vec<u32>,
}

pub(crate) struct State<T> {
    pub(crate) topics: HashMap<Arc<str>, TopicState>,
    pub(crate) topic_names: HashMap<u32, Arc<str>>,
    pub(crate) subs: HashMap<u32, SubState<T>>,
    next_topic: u32,
    next_sub: u32,
    unreleased: VecDeque<Unreleased<T>>,
    buf: Vec<u8>,
    changes: Vec<Change>,
    /// When counters were last recorded.
    counters_at: u64,
}

impl<T> State<T> {
    /// No topic and no subscription yet; ids to be given from `next_topic` and `next_sub`.
    pub(crate) fn new(next_topic: u32, next_sub: u32) -> Self {
        Self {
            topics: HashMap::default(),
            topic_names: HashMap::default(),
            subs: HashMap::default(),
            next_topic,
            next_sub,
            unreleased: VecDeque::new(),
            buf: Vec::new(),
            changes: Vec::new(),
            counters_at: 0,
        }
    }

    /// Appends a `Counters` record for each subscription whose counters changed since the
    /// log last recorded them (statistics survive a restart: exactly after a clean
    /// shutdown, as of the last record after a crash).
    pub(crate) fn record_counters(&mut self, log: &Log, now: u64) {
        self.counters_at = now;
        for (id, sub) in &mut self.subs {
            let counters = sub.counters();
            if counters != sub.counted {
                self.buf.clear();
                record::counters(&mut self.buf, *id, &counters);
                if log.append(&self.buf, None).is_ok() {
                    sub.counted = counters;
                }
            }
        }
    }
}

pub(crate) struct Inner<T, C> {
    pub(crate) log: Log,
    pub(crate) clock: C,
    anchor: u64,
    pub(crate) settings: DurableSettings,
    pub(crate) state: Mutex<State<T>>,
    pub(crate) closed: AtomicBool,
    pub(crate) hook: EventHook<BrokerEvent>,
    recovery: Recovery,
    space: Notify,
    /// One compaction at a time.
    compacting: Mutex<()>,
    maint: Arc<Maint>,
}

/// What the background thread waits on: a stop, a kick, or its next tick.
#[derive(Default)]
struct Maint {
    /// (stopped, kicked)
    state: std::sync::Mutex<(bool, bool)>,
    cond: Condvar,
}

impl Maint {
    fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = true;
        self.cond.notify_all();
    }

    fn kick(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.cond.notify_all();
    }

    /// Waits `period`, or less if kicked; false once stopped. A spurious wakeup does not
    /// end the wait early (a test that keeps the background thread out with a long tick
    /// relies on it).
    fn wait(&self, period: Duration) -> bool {
        let guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, period, |(stopped, kicked)| !*stopped && !*kicked)
            .unwrap_or_else(|e| e.into_inner());
        guard.1 = false;
        !guard.0
    }
}

impl<T, C> Drop for Inner<T, C> {
    fn drop(&mut self) {
        if !self.log.is_read_only() && self.log.failure().is_none() {
            let mut state = self.state.lock();
            let at = state.counters_at;
            state.record_counters(&self.log, at);
        }
        self.maint.stop();
        self.log.close();
    }
}

/// A broker whose topics, subscriptions and messages live in a directory on disk and survive
/// a crash: the in-process broker's delivery rules (it runs the same engine) over a
/// segmented, checksummed log with group commit.
///
/// Cheap to clone (clones share everything). Payloads are stored through their [`Codec`].
/// See the [module docs](super) for what each [`FsyncPolicy`](super::FsyncPolicy) promises.
///
/// ```
/// use levee_queue::broker::{Message, SubscriptionConfig};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).await.unwrap();
/// broker.publish("orders", Message::new("order 1".to_string())).await.unwrap(); // fsynced
/// assert_eq!(sub.stats().depth, 1);
/// assert_eq!(broker.topics(), ["orders"]);
/// broker.shutdown();
/// # });
/// ```
pub struct DurableBroker<T, C: Clock = FastClock> {
    pub(crate) inner: Arc<Inner<T, C>>,
}

impl<T, C: Clock> Clone for DurableBroker<T, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<T, C: Clock> std::fmt::Debug for DurableBroker<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableBroker")
            .field("dir", &self.inner.log.dir())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The system's wall clock, nanoseconds since the Unix epoch: where a reopened broker's
/// timeline resumes, so delays and backoffs count the time the process was down.
struct UnixClock;

impl Clock for UnixClock {
    fn now(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, nanos)
    }
}

/// Builds (opens) a [`DurableBroker`].
///
/// ```
/// use levee_core::ManualClock;
/// use levee_queue::broker::BrokerEvent;
/// use levee_queue::durable::{DurableBroker, DurableSettings, FsyncPolicy};
///
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<Vec<u8>>::builder(dir.path())
///     .settings(DurableSettings::new().fsync(FsyncPolicy::EveryMillis(100)))
///     .clock(ManualClock::new()) // leases and backoffs on a test clock
///     .listener(|e: &BrokerEvent| eprintln!("{e:?}"))
///     .open()
///     .unwrap();
/// assert_eq!(broker.dir(), dir.path());
/// assert_eq!(broker.recovery().records, 0); // a fresh directory
/// broker.shutdown();
/// ```
pub struct DurableBuilder<T, C> {
    dir: std::path::PathBuf,
    settings: DurableSettings,
    clock: C,
    wall: Box<dyn Clock>,
    hook: EventHook<BrokerEvent>,
    storage: Arc<dyn Storage>,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T, C> std::fmt::Debug for DurableBuilder<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableBuilder")
            .field("dir", &self.dir)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<T: Codec> DurableBroker<T, FastClock> {
    /// Opens (creating if needed) the broker stored in `dir`, recovering everything it held.
    ///
    /// # Errors
    /// See [`DurableBuilder::open`].
    pub fn open(dir: impl AsRef<Path>, settings: DurableSettings) -> Result<Self, OpenError> {
        Self::builder(dir).settings(settings).open()
    }

    /// A builder, to choose the clock and listeners.
    pub fn builder(dir: impl AsRef<Path>) -> DurableBuilder<T, FastClock> {
        DurableBuilder {
            dir: dir.as_ref().to_path_buf(),
            settings: DurableSettings::default(),
            clock: FastClock,
            wall: Box::new(UnixClock),
            hook: EventHook::none(),
            storage: Arc::new(Disk),
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Codec, C: Clock + Clone> DurableBuilder<T, C> {
    /// Sets the settings.
    #[must_use]
    pub fn settings(mut self, settings: DurableSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Takes time from `clock` (a [`ManualClock`](levee_core::ManualClock) in tests).
    #[must_use]
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> DurableBuilder<T, C2> {
        DurableBuilder {
            dir: self.dir,
            settings: self.settings,
            clock,
            wall: self.wall,
            hook: self.hook,
            storage: self.storage,
            _t: std::marker::PhantomData,
        }
    }

    /// Where the broker's timeline resumes on open: the later of this clock's reading and
    /// the last time the log recorded. Default: the system's wall clock, so time spent down
    /// counts toward delays, backoffs and leases. Tests pass the same manual clock they give
    /// [`clock`](Self::clock), to move time across a restart by hand.
    #[must_use]
    pub fn wall_clock(mut self, clock: impl Clock) -> Self {
        self.wall = Box::new(clock);
        self
    }

    /// Adds a listener for [`BrokerEvent`]s.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<BrokerEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    #[cfg(any(test, fuzzing))]
    pub(crate) fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Opens the broker: reads the whole log, cuts a torn tail, rebuilds every topic and
    /// subscription, and redelivers what was in flight (as lease expiries).
    ///
    /// # Errors
    /// [`OpenError::Config`] for invalid settings, [`OpenError::Io`] when the directory
    /// cannot be used (or another broker has it open), [`OpenError::Corrupt`] for a damaged
    /// record in the middle of the log under [`OnCorruption::Fail`](super::OnCorruption::Fail), and
    /// [`OpenError::Undecodable`] for a record that does not decode.
    pub fn open(self) -> Result<DurableBroker<T, C>, OpenError> {
        let started = Instant::now();
        self.settings.validate()?;
        let mut rec = Recovering::<T>::default();
        let options = LogOptions {
            fsync: self.settings.fsync,
            segment_bytes: self.settings.segment_bytes,
            on_corruption: self.settings.on_corruption,
            preallocate: self.settings.preallocate,
        };
        let read_only = false;
        let (log, opened) = Log::open(&self.dir, self.storage, options, read_only, |lsn, body| {
            rec.visit(lsn, body)
        })
        .map_err(|e| match e {
            OpenFailure::Io(e) => OpenError::Io(e),
            OpenFailure::Corrupt { segment, damage } => {
                OpenError::Corrupt { segment, from: damage.from as u64, to: damage.to as u64 }
            }
        })?;
        if let Some(e) = rec.error.take() {
            return Err(e);
        }
        let anchor = self.wall.now().max(rec.max_at).saturating_sub(self.clock.now());
        let now = anchor.saturating_add(self.clock.now());
        let listening = !self.hook.is_empty();
        let Built { state, held: messages, redelivered } = rec.build(now, listening);
        let recovery = Recovery {
            records: opened.records,
            bytes: opened.bytes,
            torn_bytes: opened.torn,
            damaged: opened
                .damage
                .iter()
                .map(|(base, d)| DamagedRange {
                    segment: self.dir.join(format!("{base:020}.seg")),
                    from: d.from as u64,
                    to: d.to as u64,
                })
                .collect(),
            read_only: log.is_read_only(),
            messages,
            redelivered,
            took: started.elapsed(),
        };
        let inner = Arc::new(Inner {
            log,
            clock: self.clock,
            anchor,
            settings: self.settings,
            state: Mutex::new(state),
            closed: AtomicBool::new(false),
            hook: self.hook,
            recovery,
            space: Notify::new(),
            compacting: Mutex::new(()),
            maint: Arc::default(),
        });
        let broker = DurableBroker { inner };
        if !broker.inner.log.is_read_only() {
            {
                let mut state = broker.inner.state.lock();
                // Live bytes per segment, summed here and handed over once per segment.
                let bases: Vec<u64> = broker.inner.log.segments().iter().map(|s| s.0).collect();
                let mut per_segment = vec![0i64; bases.len()];
                for (_, l) in state.topics.values().flat_map(|t| t.live.iter()) {
                    let i = bases.partition_point(|&b| b <= l.lsn).saturating_sub(1);
                    if let Some(sum) = per_segment.get_mut(i) {
                        *sum += i64::from(l.bytes);
                    }
                }
                for (base, bytes) in bases.iter().zip(per_segment) {
                    broker.inner.log.track(*base, bytes);
                }
                // The sweep in `build` expired what was in flight: record it.
                let ids: Vec<u32> = state.subs.keys().copied().collect();
                for id in ids {
                    let _ = state.flush(&broker.inner.log, id);
                }
            }
            let weak = Arc::downgrade(&broker.inner);
            broker.inner.log.set_listener(Box::new(move |confirmed| {
                if let Some(inner) = weak.upgrade() {
                    release(&inner, confirmed);
                }
            }));
            spawn_maintenance(&broker.inner)?;
        }
        Ok(broker)
    }
}

// ----- the state under the lock -----

fn append_error(e: AppendError) -> BrokerError {
    match e {
        AppendError::Failed(f) => storage_error(&f),
        AppendError::Full { used } => BrokerError::DiskFull { used, budget: used },
        AppendError::ReadOnly => BrokerError::ReadOnly,
        AppendError::Closed => BrokerError::Closed,
    }
}

pub(crate) fn storage_error(f: &Failure) -> BrokerError {
    BrokerError::Storage { reason: f.to_string() }
}

impl<T> State<T> {
    /// Appends what subscription `id`'s engine journaled as one record, and folds it into
    /// the subscription's shadow; returns the position to wait for (0 when nothing changed).
    pub(crate) fn flush(&mut self, log: &Log, id: u32) -> Result<u64, BrokerError> {
        let Some(sub) = self.subs.get_mut(&id) else { return Ok(0) };
        sub.core.take_journal(&mut self.changes);
        if self.changes.is_empty() {
            return Ok(0);
        }
        self.buf.clear();
        record::changes(&mut self.buf, id, &self.changes);
        let appended = log.append(&self.buf, None);
        let lsn = appended.as_ref().map_or(0, |a| a.0);
        let topic = self.topics.get_mut(&sub.topic);
        let mut topic = topic;
        for c in self.changes.drain(..) {
            let seq = c.seq();
            if let Some(m) = sub.shadow.get_mut(seq)
                && !m.apply(lsn, &c)
            {
                sub.shadow.remove(seq);
                if let Some(t) = topic.as_deref_mut() {
                    release_holder(t, log, seq);
                }
            }
        }
        appended.map(|a| a.1).map_err(append_error)
    }
}

fn release_holder(t: &mut TopicState, log: &Log, seq: u64) {
    if let Some(live) = t.live.get_mut(seq) {
        live.holders -= 1;
        if live.holders == 0 {
            log.track(live.lsn, -i64::from(live.bytes));
            t.live.remove(seq);
        }
    }
}

/// Hands publishes the log has confirmed (up to `confirmed`) to their subscriptions, in log
/// order. Runs on the commit thread.
fn release<T, C: Clock>(inner: &Inner<T, C>, confirmed: u64) {
    let now = inner.now();
    let mut woken = Vec::new();
    {
        let mut state = inner.state.lock();
        while state.unreleased.front().is_some_and(|u| u.end <= confirmed) {
            let u = state.unreleased.pop_front().expect("checked");
            for id in u.targets {
                if let Some(sub) = state.subs.get_mut(&id) {
                    sub.unreleased -= 1;
                    sub.core.accept(Arc::clone(&u.msg), now);
                    woken.push(Arc::clone(&sub.wake));
                }
            }
        }
    }
    woken.dedup_by(|a, b| Arc::ptr_eq(a, b));
    for w in woken {
        w.ready.notify_waiters();
    }
}

fn spawn_maintenance<T: Codec, C: Clock + Clone>(inner: &Arc<Inner<T, C>>) -> std::io::Result<()> {
    let weak: Weak<Inner<T, C>> = Arc::downgrade(inner);
    let maint = Arc::clone(&inner.maint);
    let period = inner.settings.tick;
    std::thread::Builder::new().name("levee-durable-maint".into()).spawn(move || {
        while maint.wait(period) {
            let Some(inner) = weak.upgrade() else { return };
            let broker = DurableBroker { inner };
            broker.tick();
            while broker.compact_once() {}
        }
    })?;
    Ok(())
}

// ----- the broker's operations -----

impl<T, C: Clock> Inner<T, C> {
    /// Wakes the background thread to tick and compact now.
    fn kick(&self) {
        self.maint.kick();
    }

    pub(crate) fn now(&self) -> u64 {
        self.anchor.saturating_add(self.clock.now())
    }

    pub(crate) fn emit(&self, events: Vec<BrokerEvent>) {
        for e in events {
            self.hook.emit(|| e);
        }
    }

    pub(crate) fn writable(&self) -> Result<(), BrokerError> {
        if self.log.is_read_only() {
            return Err(BrokerError::ReadOnly);
        }
        if let Some(f) = self.log.failure() {
            return Err(storage_error(&f));
        }
        Ok(())
    }

    pub(crate) async fn confirm(&self, end: u64) -> Result<(), BrokerError> {
        if end == 0 {
            return Ok(());
        }
        self.log.wait(end).await.map_err(|f| storage_error(&f))
    }
}

/// A publish that failed: why, and the message if it was not appended.
///
/// ```
/// use levee_queue::broker::{BrokerError, Message};
/// use levee_queue::durable::{DurableBroker, DurableSettings};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let broker = DurableBroker::<String>::open(dir.path(), DurableSettings::new()).unwrap();
/// // No topic "orders" yet: refused before the log, so the message comes back.
/// let refused = broker
///     .publish_or_return("orders", Message::new("order 1".to_string()))
///     .await
///     .unwrap_err();
/// assert!(matches!(refused.error, BrokerError::NoSuchTopic { .. }));
/// assert_eq!(refused.message.unwrap().payload(), "order 1");
/// broker.shutdown();
/// # });
/// ```
#[derive(Debug)]
pub struct Refused<T> {
    /// Why.
    pub error: BrokerError,
    /// The message, when it was refused before reaching the log.
    pub message: Option<Message<T>>,
}

impl<T> std::fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: std::fmt::Debug> std::error::Error for Refused<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A refused publish attempt.
enum Refusal<T> {
    /// Wait for room in this subscription, then try again.
    Room(Arc<SubWake>, Message<T>),
    /// Wait for disk space, then try again.
    Space(Message<T>, BrokerError),
    /// Give up.
    Fail(BrokerError, Message<T>),
}

impl<T: Codec, C: Clock> DurableBroker<T, C> {
    /// The broker's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    /// The broker's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.inner.log.dir()
    }

    /// What opening found and did.
    #[must_use]
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// Bytes the log takes on disk.
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        self.inner.log.disk_bytes()
    }

    /// Number of segment files.
    #[must_use]
    pub fn segments(&self) -> usize {
        self.inner.log.segments().len()
    }

    /// Names of every topic.
    #[must_use]
    pub fn topics(&self) -> Vec<String> {
        self.inner.state.lock().topics.keys().map(|k| k.to_string()).collect()
    }

    /// Creates topic `name` with `config` (durably), or does nothing if it exists with the
    /// same settings.
    ///
    /// # Errors
    /// [`BrokerError::Closed`], [`BrokerError::ReadOnly`], [`BrokerError::Storage`];
    /// [`BrokerError::Config`] for invalid settings, an empty name, or a topic that exists
    /// with other settings.
    pub async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<(), BrokerError> {
        let end = {
            let mut state = self.inner.state.lock();
            self.create_topic_locked(&mut state, name, config)?.1
        };
        self.inner.confirm(end).await
    }

    fn create_topic_locked(
        &self,
        state: &mut State<T>,
        name: &str,
        config: TopicConfig,
    ) -> Result<(Arc<str>, u64), BrokerError> {
        self.check_open()?;
        if name.is_empty() {
            return Err(ConfigError::new("topic", "must not be empty").into());
        }
        config.validate()?;
        if let Some(t) = state.topics.get(name) {
            if t.config != config {
                return Err(ConfigError::new(
                    "topic",
                    format!("`{name}` exists with other settings"),
                )
                .into());
            }
            return Ok((Arc::clone(&t.name), 0));
        }
        let id = state.next_topic;
        state.buf.clear();
        record::topic(&mut state.buf, id, name, &config, 1);
        let (_, end) = self.inner.log.append(&state.buf, None).map_err(append_error)?;
        state.next_topic += 1;
        let name: Arc<str> = name.into();
        let dedup = Dedup::new(nanos(config.dedup_window), config.dedup_capacity);
        state.topic_names.insert(id, Arc::clone(&name));
        state
            .topics
            .insert(Arc::clone(&name), TopicState::new(id, Arc::clone(&name), config, 1, dedup));
        Ok((name, end))
    }

    fn check_open(&self) -> Result<(), BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        self.inner.writable()
    }

    /// Subscribes to `topic` (created with the default settings if missing), durably.
    /// Subscribing again with the same name and settings returns the same subscription, with
    /// everything it held, also after a restart.
    ///
    /// # Errors
    /// As [`InProcessBroker::subscribe`](crate::broker::InProcessBroker::subscribe), plus
    /// [`BrokerError::ReadOnly`] and [`BrokerError::Storage`].
    pub async fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<super::DurableSubscription<T, C>, BrokerError> {
        let (sub, end) = self.subscribe_locked(topic, config)?;
        self.inner.confirm(end).await?;
        Ok(sub)
    }

    fn subscribe_locked(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<(super::DurableSubscription<T, C>, u64), BrokerError> {
        self.check_open()?;
        config.validate()?;
        let filter = config.filter.as_deref().map(SubjectFilter::new).transpose()?;
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let (topic_name, mut end) = match state.topics.get(topic) {
            Some(t) => (Arc::clone(&t.name), 0),
            None => {
                let defaults = self.inner.settings.topic_defaults.clone();
                self.create_topic_locked(state, topic, defaults)?
            }
        };
        let t = state.topics.get(&topic_name).expect("just found or created");
        let topic_id = t.id;
        if let Some(&id) =
            t.subs.iter().find(|id| state.subs.get(id).is_some_and(|s| *s.name == *config.name))
        {
            let s = &state.subs[&id];
            if s.config != config {
                return Err(BrokerError::SubscriptionMismatch { subscription: config.name });
            }
            return Ok((self.handle(id, s), end));
        }
        let id = state.next_sub;
        state.buf.clear();
        record::subscribe(&mut state.buf, id, topic_id, &config);
        end = self.inner.log.append(&state.buf, None).map_err(append_error)?.1;
        state.next_sub += 1;
        let mut core =
            Core::new(Arc::clone(&topic_name), config.clone(), !self.inner.hook.is_empty());
        core.enable_journal();
        let sub = SubState {
            topic_id,
            topic: Arc::clone(&topic_name),
            name: config.name.as_str().into(),
            filter,
            config,
            core,
            shadow: SeqMap::default(),
            unreleased: 0,
            wake: Arc::new(SubWake { ready: Notify::new(), room: Notify::new() }),
            rejected: 0,
            counted: [0; SUB_COUNTERS],
        };
        let handle = self.handle(id, &sub);
        state.subs.insert(id, sub);
        state.topics.get_mut(&topic_name).expect("exists").subs.push(id);
        Ok((handle, end))
    }

    fn handle(&self, id: u32, s: &SubState<T>) -> super::DurableSubscription<T, C> {
        super::DurableSubscription {
            broker: self.clone(),
            id,
            topic: Arc::clone(&s.topic),
            name: Arc::clone(&s.name),
            wake: Arc::clone(&s.wake),
        }
    }

    /// The subscription `name` of `topic`, if it exists.
    #[must_use]
    pub fn subscription(
        &self,
        topic: &str,
        name: &str,
    ) -> Option<super::DurableSubscription<T, C>> {
        let state = self.inner.state.lock();
        let t = state.topics.get(topic)?;
        t.subs.iter().find_map(|id| {
            let s = state.subs.get(id)?;
            (*s.name == *name).then(|| self.handle(*id, s))
        })
    }

    /// Every subscription of every topic.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<super::DurableSubscription<T, C>> {
        let state = self.inner.state.lock();
        let mut ids: Vec<u32> = state.subs.keys().copied().collect();
        ids.sort_unstable();
        ids.iter().map(|id| self.handle(*id, &state.subs[id])).collect()
    }

    /// Removes subscription `name` of `topic` with every message it held (durably); returns
    /// whether it existed.
    ///
    /// # Errors
    /// [`BrokerError::ReadOnly`], [`BrokerError::Storage`].
    pub async fn unsubscribe(&self, topic: &str, name: &str) -> Result<bool, BrokerError> {
        let end = {
            self.inner.writable()?;
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            let Some(t) = state.topics.get_mut(topic) else { return Ok(false) };
            let Some(pos) =
                t.subs.iter().position(|id| state.subs.get(id).is_some_and(|s| &*s.name == name))
            else {
                return Ok(false);
            };
            let id = t.subs[pos];
            state.buf.clear();
            record::unsubscribe(&mut state.buf, id);
            let end = self.inner.log.append(&state.buf, None).map_err(append_error)?.1;
            t.subs.remove(pos);
            if let Some(sub) = state.subs.remove(&id) {
                for seq in sub.shadow.keys() {
                    release_holder(t, &self.inner.log, seq);
                }
                state.unreleased.iter_mut().for_each(|u| u.targets.retain(|s| *s != id));
                sub.wake.ready.notify_waiters();
                sub.wake.room.notify_waiters();
            }
            end
        };
        self.inner.confirm(end).await?;
        Ok(true)
    }

    /// Publishes to `topic` and returns once the log has confirmed it (under
    /// [`FsyncPolicy::Always`](super::FsyncPolicy::Always): after the fsync that covers it).
    /// Waits for backlog room where the subscription's policy says so, and for disk space
    /// under [`WhenFull::Backpressure`].
    ///
    /// Cancelling the future after the message was appended does not take it back: it may
    /// still be published (as with any broker whose confirmation was lost).
    ///
    /// # Errors
    /// [`BrokerError::NoSuchTopic`], [`BrokerError::Closed`], [`BrokerError::InvalidSubject`],
    /// [`BrokerError::Full`], [`BrokerError::DiskFull`], [`BrokerError::ReadOnly`],
    /// [`BrokerError::Storage`] (the message may or may not survive a restart).
    pub async fn publish(&self, topic: &str, message: Message<T>) -> Result<Publish, BrokerError> {
        self.publish_or_return(topic, message).await.map_err(|e| e.error)
    }

    /// Like [`publish`](Self::publish), handing the message back in the error when it was
    /// refused before being appended (after that, a failed confirmation returns
    /// [`BrokerError::Storage`] and the message is `None`).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub async fn publish_or_return(
        &self,
        topic: &str,
        mut message: Message<T>,
    ) -> Result<Publish, Refused<T>> {
        loop {
            match self.try_publish_inner(topic, message) {
                Ok((publish, end)) => {
                    return match self.inner.confirm(end).await {
                        Ok(()) => Ok(publish),
                        Err(error) => Err(Refused { error, message: None }),
                    };
                }
                Err(Refusal::Room(wake, m)) => {
                    let mut notified = std::pin::pin!(wake.room.notified());
                    notified.as_mut().enable();
                    if self.room_in(topic, &m) {
                        message = m;
                        continue;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                    message = m;
                }
                Err(Refusal::Space(m, error)) => {
                    if self.inner.settings.when_full == WhenFull::Reject {
                        return Err(Refused { error, message: Some(m) });
                    }
                    let notified = self.inner.space.notified();
                    // Space comes back when retention deletes a segment: ask the background
                    // thread to look now, and look again now and then in case acks made a
                    // segment deletable later.
                    self.inner.kick();
                    let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
                    message = m;
                }
                Err(Refusal::Fail(error, m)) => return Err(Refused { error, message: Some(m) }),
            }
        }
    }

    fn room_in(&self, topic: &str, message: &Message<T>) -> bool {
        let state = self.inner.state.lock();
        let Some(t) = state.topics.get(topic) else { return true };
        let subject: &str = message.subject_ref().unwrap_or(&t.name);
        t.subs.iter().filter_map(|id| state.subs.get(id)).all(|s| {
            !s.filter.as_ref().is_none_or(|f| f.matches(subject)) || s.held() < s.config.max_backlog
        })
    }

    fn try_publish_inner(
        &self,
        topic: &str,
        message: Message<T>,
    ) -> Result<(Publish, u64), Refusal<T>> {
        if let Err(e) = self.check_open() {
            return Err(Refusal::Fail(e, message));
        }
        if let Some(subject) = message.subject_ref()
            && let Err(e) = validate_subject(subject)
        {
            return Err(Refusal::Fail(e, message));
        }
        let now = self.inner.now();
        let log = &self.inner.log;
        let mut events = Vec::new();
        let mut guard = self.inner.state.lock();
        let state = &mut *guard;
        let Some(t) = state.topics.get_mut(topic) else {
            return Err(Refusal::Fail(BrokerError::NoSuchTopic { topic: topic.into() }, message));
        };
        if let Some(id) = message.message_id()
            && t.dedup.enabled()
            && let Some(seq) = t.dedup.check(id, now)
        {
            t.duplicates += 1;
            let event = BrokerEvent::Duplicate {
                topic: Arc::clone(&t.name),
                message_id: id.to_owned(),
                original_seq: seq,
            };
            drop(guard);
            self.inner.hook.emit(|| event);
            // The original may not be confirmed yet: wait for everything appended so far.
            return Ok((Publish::Duplicate { seq }, log.end()));
        }
        let subject: &str = message.subject_ref().unwrap_or(&t.name);
        let mut targets = Vec::new();
        for &id in &t.subs {
            let Some(sub) = state.subs.get_mut(&id) else { continue };
            if !sub.filter.as_ref().is_none_or(|f| f.matches(subject)) {
                continue;
            }
            if sub.held() >= sub.config.max_backlog {
                let mut made = false;
                if sub.config.overflow == Overflow::DeadLetterOldest {
                    sub.core.sweep(now);
                    made = sub.held() < sub.config.max_backlog || sub.core.dead_letter_oldest(now);
                }
                if made {
                    events.extend(sub.core.take_events());
                } else {
                    sub.rejected += 1;
                    let error = BrokerError::Full {
                        subscription: sub.name.to_string(),
                        capacity: sub.config.max_backlog,
                    };
                    let wait = sub.config.overflow == Overflow::Wait;
                    let wake = Arc::clone(&sub.wake);
                    drop(guard);
                    return Err(if wait {
                        Refusal::Room(wake, message)
                    } else {
                        Refusal::Fail(error, message)
                    });
                }
            }
            targets.push(id);
        }
        // Journaled dead-letterings made room: record them first.
        for &id in &targets {
            if let Err(e) = state.flush(log, id) {
                return Err(Refusal::Fail(e, message));
            }
        }
        let t = state.topics.get_mut(topic).expect("found above");
        let seq = t.next_seq;
        let ready_at = match message.schedule() {
            Schedule::Now => now,
            Schedule::Delay(d) => now.saturating_add(nanos(d)),
            Schedule::NotBefore(at) => at.max(now),
        };
        let Message { payload, meta } = message;
        let stored = StoredMessage { seq, published_at: now, ready_at, meta, payload };
        state.buf.clear();
        record::publish(&mut state.buf, t.id, &stored, &targets);
        let limit = self.inner.settings.publish_budget();
        let (lsn, end) = match log.append(&state.buf, limit) {
            Ok(a) => a,
            Err(e) => {
                let error = match e {
                    AppendError::Full { used } => {
                        BrokerError::DiskFull { used, budget: limit.unwrap_or(used) }
                    }
                    e => append_error(e),
                };
                let message = Message { payload: stored.payload, meta: stored.meta };
                drop(guard);
                return Err(if matches!(error, BrokerError::DiskFull { .. }) {
                    Refusal::Space(message, error)
                } else {
                    Refusal::Fail(error, message)
                });
            }
        };
        t.next_seq += 1;
        if let Some(id) = stored.message_id()
            && t.dedup.enabled()
        {
            t.dedup.record(id, seq, now);
        }
        let bytes = (FRAME_HEADER + state.buf.len()) as u32;
        if !targets.is_empty() {
            t.live.insert(seq, Live { lsn, bytes, holders: targets.len() as u32 });
            log.track(lsn, i64::from(bytes));
        }
        for &id in &targets {
            if let Some(sub) = state.subs.get_mut(&id) {
                sub.unreleased += 1;
                sub.shadow.insert(seq, SubMsg::new(lsn, ready_at));
            }
        }
        let routed = targets.len();
        state.unreleased.push_back(Unreleased { end, msg: Arc::new(stored), targets });
        drop(guard);
        self.inner.emit(events);
        Ok((Publish::Published { seq, subscriptions: routed }, end))
    }

    /// Applies due timers and expired leases in every subscription now (the background
    /// thread does this every `tick`), and wakes whoever waits.
    pub fn tick(&self) {
        if self.inner.writable().is_err() {
            return;
        }
        let now = self.inner.now();
        let mut woken = Vec::new();
        let mut events = Vec::new();
        {
            let mut state = self.inner.state.lock();
            let ids: Vec<u32> = state.subs.keys().copied().collect();
            for id in ids {
                let Some(sub) = state.subs.get_mut(&id) else { continue };
                if sub.core.next_deadline().is_none_or(|d| d > now) {
                    continue;
                }
                sub.core.sweep(now);
                events.extend(sub.core.take_events());
                if sub.core.has_ready() {
                    woken.push(Arc::clone(&sub.wake));
                }
                let _ = state.flush(&self.inner.log, id);
            }
            if now.saturating_sub(state.counters_at) >= COUNTERS_EVERY {
                state.record_counters(&self.inner.log, now);
            }
        }
        self.inner.emit(events);
        for w in woken {
            w.ready.notify_waiters();
            w.room.notify_waiters();
        }
    }

    /// Stops accepting publishes and receives (deliveries already out can still be
    /// settled). The log is flushed and closed when the last handle is dropped.
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.inner.hook.emit(|| BrokerEvent::Closed);
        }
        let state = self.inner.state.lock();
        for s in state.subs.values() {
            s.wake.ready.notify_waiters();
            s.wake.room.notify_waiters();
        }
    }

    /// Closes the broker and its log now, whatever handles remain: flushes and fsyncs what
    /// was appended, stops the background threads and releases the directory, so it can be
    /// opened again at once. Remaining handles fail from then on.
    pub fn shutdown(&self) {
        self.close();
        if self.inner.writable().is_ok() {
            self.inner.state.lock().record_counters(&self.inner.log, self.inner.now());
        }
        self.inner.maint.stop();
        self.inner.log.close();
    }

    /// Stops as a crash would (tests): nothing more reaches the storage.
    #[cfg(test)]
    pub(crate) fn halt(&self) {
        self.close();
        self.inner.maint.stop();
        self.inner.log.halt();
    }

    /// True once [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Flushes and fsyncs everything appended so far, whatever the fsync policy, and waits
    /// (blocking the thread) until it is durable.
    ///
    /// # Errors
    /// [`BrokerError::Storage`] when the log failed.
    pub fn sync(&self) -> Result<(), BrokerError> {
        let end = self.inner.log.end();
        self.inner.log.sync_blocking(end).map_err(|f| storage_error(&f))
    }

    // ----- retention -----

    /// Deletes the oldest segment if it is sealed and at least half dead (a quarter when the
    /// log is near its budget), first copying forward what in it is still alive: messages some
    /// subscription holds, with their state; topic and subscription definitions; message ids
    /// still in a dedup window. Returns whether a segment was deleted.
    pub(crate) fn compact_once(&self) -> bool {
        let log = &self.inner.log;
        if self.inner.writable().is_err() {
            return false;
        }
        let _one = self.inner.compacting.lock();
        let segments = log.segments();
        let (Some(&(base, info)), Some(&(next, _))) = (segments.first(), segments.get(1)) else {
            return false;
        };
        // A roll seals the segment at once, but its last records reach the file only when
        // the commit thread writes them: reading it before then would miss them, and they
        // would go with the segment.
        if base == log.active_segment() || log.written() < next {
            return false;
        }
        // Pressed: within a segment of where publishes stop.
        let pressed =
            self.inner.settings.publish_budget().is_some_and(|budget| {
                log.disk_bytes() + self.inner.settings.segment_bytes > budget
            });
        // Copying forward costs the live bytes again: worth it once half the segment is
        // dead, or a quarter when the disk budget is near.
        let dead = info.bytes.saturating_sub(info.live);
        if dead * 2 < info.bytes && !(pressed && dead * 4 >= info.bytes) {
            return false;
        }
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        if log
            .read_segment(base, |lsn, body| {
                if matches!(body.first(), Some(4 | 5 | 8)) {
                    records.push((lsn, body.to_vec()));
                }
            })
            .is_err()
        {
            return false;
        }
        let now = self.inner.now();
        let end = {
            let mut guard = self.inner.state.lock();
            let state = &mut *guard;
            let mut out = Vec::new();
            let mut failed = false;
            let mut append = |out: &Vec<u8>| -> Option<u64> {
                match log.append(out, None) {
                    Ok((lsn, _)) => Some(lsn),
                    Err(_) => {
                        failed = true;
                        None
                    }
                }
            };
            // Definitions first, so every copy below has its topic and subscription.
            for t in state.topics.values() {
                out.clear();
                record::topic(&mut out, t.id, &t.name, &t.config, t.next_seq);
                append(&out);
            }
            let mut ids: Vec<u32> = state.subs.keys().copied().collect();
            ids.sort_unstable();
            for id in &ids {
                let s = state.subs.get_mut(id).expect("listed above");
                out.clear();
                record::subscribe(&mut out, *id, s.topic_id, &s.config);
                append(&out);
                // The segment going may hold the latest counters: record them again.
                let counters = s.counters();
                out.clear();
                record::counters(&mut out, *id, &counters);
                if append(&out).is_some() {
                    s.counted = counters;
                }
            }
            for (lsn, body) in &records {
                let Ok(rec) = record::decode(body) else { continue };
                let (Record::Publish { msg, .. } | Record::Carry { msg }) = &rec else {
                    if let Record::Dedup { topic, id, seq, at } = rec
                        && let Some(name) = state.topic_names.get(&topic)
                        && let Some(t) = state.topics.get_mut(name)
                        && t.dedup.enabled()
                        && t.dedup.check(id, now) == Some(seq)
                    {
                        out.clear();
                        record::dedup(&mut out, topic, id, seq, at);
                        append(&out);
                    }
                    continue;
                };
                let Some(name) = state.topic_names.get(&msg.topic).cloned() else { continue };
                let Some(t) = state.topics.get_mut(&name) else { continue };
                if let Some(id) = msg.id
                    && t.dedup.enabled()
                    && t.dedup.check(id, now) == Some(msg.seq)
                {
                    out.clear();
                    record::dedup(&mut out, t.id, id, msg.seq, msg.published_at);
                    append(&out);
                }
                let Some(live) = t.live.get_mut(msg.seq) else { continue };
                if live.lsn != *lsn {
                    continue;
                }
                out.clear();
                record::carry(&mut out, body, msg);
                let Some(new_lsn) = append(&out) else { continue };
                log.track(live.lsn, -i64::from(live.bytes));
                live.lsn = new_lsn;
                live.bytes = (FRAME_HEADER + out.len()) as u32;
                log.track(new_lsn, i64::from(live.bytes));
                for id in &t.subs {
                    if let Some(s) = state.subs.get(id)
                        && let Some(m) = s.shadow.get(msg.seq)
                    {
                        out.clear();
                        record::carry_sub(&mut out, *id, msg.seq, m);
                        append(&out);
                    }
                }
            }
            if failed {
                return false;
            }
            log.end()
        };
        // The copies must be durable before the originals go, whatever the fsync policy.
        if log.sync_blocking(end).is_err() || log.remove_segment(base).is_err() {
            return false;
        }
        self.inner.space.notify_waiters();
        true
    }
}
