//! The log: segment files of checksummed frames, appended through a buffer that one commit
//! thread writes and flushes (group commit), recovered on open by reading every segment.
//!
//! How it works. Appenders encode frames into an in-memory buffer under a short lock and
//! get back the position just past their record. The commit thread takes the whole buffer,
//! writes it, and (under [`FsyncPolicy::Always`]) fsyncs once, then raises the *confirmed*
//! mark: every appender whose position is at or below it is confirmed by that one fsync.
//! While it writes and syncs, the next group fills the buffer. A write or fsync error is
//! fatal for the log: after a failed fsync the kernel may have dropped the dirty pages
//! (PostgreSQL's "fsyncgate"), so nothing written since the last good fsync can be trusted,
//! and the log stops confirming anything until it is reopened and recovered from disk.
//!
//! Segments: a new file is started when the current one would pass `segment_bytes`; the old
//! one is fsynced first (whatever the policy), so only the newest segment can have a torn
//! tail. Retention removes whole segments, oldest first, once the broker has copied forward
//! what was still alive in them.
//!
//! Preallocation (`LogOptions::preallocate`). Appending to the end of a file grows it, and an
//! `fdatasync` after a growth must also commit the new size through the file system's
//! journal, a wait shared with every other writer of the disk: the slow tail of confirm
//! latency. So a spare thread writes the next segment ahead of time as `segment_bytes` of
//! zeros, synced, under a temporary name (`spare-<n>.tmp`), once the log has taken a
//! quarter of a segment (at most 1 MiB) since it was opened. A roll takes the spare: the
//! commit thread writes the segment header into it, renames it and syncs the directory, and
//! the spare thread starts the next one. Appends then only overwrite zeros inside the file,
//! so the commit path neither creates nor grows a file; a segment that is not preallocated
//! (the first one of a new log, or the last one after a torn tail was cut off) is left for
//! the spare as soon as one is ready. A reader takes the zeros after the last intact frame
//! for the end of the segment (`frame::End::Zeros`). Without a spare (not ready yet, or the
//! disk refused it) a roll creates the file on the commit path, as without preallocation.
//! Disk use: each preallocated segment is `segment_bytes` on disk from the start, plus the
//! spare.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::file::{Storage, StorageFile, write_all};
use super::frame::{self, Damage, End, FRAME_HEADER, SEGMENT_HEADER};
use super::settings::{FsyncPolicy, OnCorruption};

/// A fatal storage failure: the log confirms nothing more until it is reopened.
#[derive(Debug, Clone)]
pub(crate) struct Failure(pub(crate) Arc<io::Error>);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why an append was refused.
#[derive(Debug, Clone)]
pub(crate) enum AppendError {
    /// The log failed earlier (or is read-only / closed).
    Failed(Failure),
    /// The log is read-only.
    ReadOnly,
    /// The log was closed.
    Closed,
    /// The record would take the log past its budget.
    Full {
        /// Bytes in use.
        used: u64,
    },
}

/// How opening went.
#[derive(Debug, Clone, Default)]
pub(crate) struct Opened {
    /// Records read.
    pub(crate) records: u64,
    /// Bytes of intact frames read.
    pub(crate) bytes: u64,
    /// Bytes of torn tail cut off (or, read-only, ignored).
    pub(crate) torn: u64,
    /// Damaged ranges skipped: segment base, file offsets.
    pub(crate) damage: Vec<(u64, Damage)>,
}

/// Opening failed.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    Io(io::Error),
    Corrupt { segment: PathBuf, damage: Damage },
}

impl From<io::Error> for OpenFailure {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct LogOptions {
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_bytes: u64,
    pub(crate) on_corruption: OnCorruption,
    /// Write each segment as zeros ahead of time (see the module doc).
    pub(crate) preallocate: bool,
}

/// Size and live bytes of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    /// File size, header included (what is appended, written or not).
    pub(crate) bytes: u64,
    /// Bytes of records the broker still needs (as it reported with `track`).
    pub(crate) live: u64,
}

struct Chunk {
    /// The segment this chunk belongs to; `true` when the commit thread must start it.
    segment: u64,
    starts_segment: bool,
    /// The preallocated spare the new segment is made from (else it is created).
    spare: Option<u64>,
    bytes: Vec<u8>,
    /// The lsn just past the chunk's last frame.
    end: u64,
}

struct Appender {
    chunks: Vec<Chunk>,
    /// The next record's lsn.
    end: u64,
    /// Base and length (header included) of the segment being appended to.
    active: u64,
    active_len: u64,
    segments: BTreeMap<u64, SegmentInfo>,
    /// Positions up to which an fsync was asked for whatever the policy.
    sync_wanted: u64,
    closing: bool,
    spare: Vec<Vec<u8>>,
    /// Whether the active segment's file was preallocated (appends do not grow it).
    active_preallocated: bool,
    /// The number of the preallocated spare file ready to roll into.
    spare_file: Option<u64>,
    /// `end` when the log was opened: no spare is made before [`spare_after`] bytes more.
    opened_end: u64,
}

/// Bytes appended since open before the first spare is made: a log that is opened and
/// closed with little written (a test, a tool) never writes a segment of zeros.
fn spare_after(options: &LogOptions) -> u64 {
    (options.segment_bytes / 4).min(1 << 20)
}

struct Shared {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    options: LogOptions,
    appender: Mutex<Appender>,
    /// Wakes the commit thread.
    work: Condvar,
    /// Wakes the spare thread (a spare was taken, or the log closes).
    spare_wanted: Condvar,
    /// Tells the spare thread to stop, between chunks of zeros.
    stopping: AtomicBool,
    written: AtomicU64,
    synced: AtomicU64,
    /// What the listener has been told is confirmed: raised after it returns, so a waiter
    /// released by this mark sees what the listener did.
    confirmed: AtomicU64,
    failed: OnceLock<Failure>,
    /// Wakes blocking waiters after every commit.
    done_lock: Mutex<()>,
    done: Condvar,
    /// Wakes async waiters after every commit.
    notify: Notify,
    /// Called on the commit thread with the new confirmed mark after every commit.
    listener: OnceLock<Box<dyn Fn(u64) + Send + Sync>>,
    dir_lock: Mutex<Option<Box<dyn Send + Sync>>>,
}

/// An open log.
pub(crate) struct Log {
    shared: Arc<Shared>,
    committer: Mutex<Option<JoinHandle<()>>>,
    spare_maker: Mutex<Option<JoinHandle<()>>>,
    read_only: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

const SPARE_PREFIX: &str = "spare-";
const SPARE_SUFFIX: &str = ".tmp";

/// The preallocated spare file number `n`.
fn spare_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{SPARE_PREFIX}{n}{SPARE_SUFFIX}"))
}

fn io_failure(e: io::Error) -> Failure {
    Failure(Arc::new(e))
}

impl Log {
    /// Opens (or creates) the log in `dir`, handing every intact record to `visit` in order.
    /// A torn tail is cut off (left alone when `read_only`); damage elsewhere is handled as
    /// `options.on_corruption` says.
    pub(crate) fn open(
        dir: &Path,
        storage: Arc<dyn Storage>,
        options: LogOptions,
        read_only: bool,
        mut visit: impl FnMut(u64, &[u8]),
    ) -> Result<(Self, Opened), OpenFailure> {
        storage.create_dir_all(dir)?;
        let dir_lock = storage.lock(dir)?;
        let mut bases: Vec<u64> = storage
            .list(dir)?
            .iter()
            .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
            .collect();
        bases.sort_unstable();
        if !read_only {
            // Spares a crash left behind: not part of the log.
            for name in storage.list(dir)? {
                if name.starts_with(SPARE_PREFIX) && name.ends_with(SPARE_SUFFIX) {
                    storage.remove(&dir.join(name))?;
                }
            }
        }
        let mut opened = Opened::default();
        let mut last_preallocated = false;
        let mut segments = BTreeMap::new();
        let mut end = 0;
        let mut remove_last = false;
        let mut read_only = read_only;
        let mut buf = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let path = segment_path(dir, base);
            let last = i + 1 == bases.len();
            let (mut file, file_len) = storage.open_read(&path)?;
            let mut damaged = Vec::new();
            let (mut records, mut bytes) = (0, 0);
            let streamed = frame::read_stream(
                file.as_mut(),
                file_len,
                &mut buf,
                base,
                last,
                |lsn, body| {
                    records += 1;
                    bytes += (FRAME_HEADER + body.len()) as u64;
                    visit(lsn, body);
                },
                |d| {
                    damaged.push(d);
                    options.on_corruption != OnCorruption::Fail
                },
            )?;
            drop(file);
            if !streamed.header_ok {
                if last && streamed.len <= SEGMENT_HEADER {
                    // Created, header not yet durable: the crash came as the log rolled over.
                    remove_last = true;
                    continue;
                }
                let damage = Damage { from: 0, to: streamed.len };
                match options.on_corruption {
                    OnCorruption::Fail => {
                        return Err(OpenFailure::Corrupt { segment: path, damage });
                    }
                    OnCorruption::ReadOnly => read_only = true,
                    OnCorruption::Skip => {}
                }
                opened.damage.push((base, damage));
                continue;
            }
            if base != end && i > 0 {
                let damage = Damage { from: 0, to: 0 };
                if options.on_corruption == OnCorruption::Fail {
                    // A segment is missing between two others.
                    return Err(OpenFailure::Corrupt { segment: path, damage });
                }
                opened.damage.push((base, damage));
            }
            opened.records += records;
            opened.bytes += bytes;
            let result = streamed.end;
            let end_kind = match result {
                Err(damage) => return Err(OpenFailure::Corrupt { segment: path, damage }),
                Ok(end_kind) => end_kind,
            };
            if !damaged.is_empty() && options.on_corruption == OnCorruption::ReadOnly {
                read_only = true;
            }
            let mut len = streamed.len;
            last_preallocated = false;
            match end_kind {
                End::Torn { at } => {
                    opened.torn += (streamed.len - at) as u64;
                    if !read_only {
                        storage.truncate(&path, at as u64)?;
                    }
                    len = at;
                }
                End::Zeros { at } => {
                    last_preallocated = true;
                    len = at;
                }
                End::Clean => {}
            }
            opened.damage.extend(damaged.into_iter().map(|d| (base, d)));
            end = base + (len - SEGMENT_HEADER) as u64;
            segments.insert(base, SegmentInfo { bytes: len as u64, live: 0 });
        }
        if remove_last && !read_only {
            if let Some(&base) = bases.last() {
                storage.remove(&segment_path(dir, base))?;
            }
        }
        let (active, active_len) = match segments.last_key_value() {
            Some((&base, info)) => (base, info.bytes),
            None => {
                last_preallocated = false;
                if !read_only {
                    let mut file = storage.create(&segment_path(dir, end))?;
                    write_all(file.as_mut(), &frame::segment_header(end))?;
                    file.sync_data()?;
                    storage.sync_dir(dir)?;
                }
                segments.insert(end, SegmentInfo { bytes: SEGMENT_HEADER as u64, live: 0 });
                (end, SEGMENT_HEADER as u64)
            }
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            storage,
            options,
            appender: Mutex::new(Appender {
                chunks: Vec::new(),
                end,
                active,
                active_len,
                segments,
                sync_wanted: 0,
                closing: false,
                spare: Vec::new(),
                active_preallocated: last_preallocated,
                spare_file: None,
                opened_end: end,
            }),
            work: Condvar::new(),
            spare_wanted: Condvar::new(),
            stopping: AtomicBool::new(false),
            written: AtomicU64::new(end),
            synced: AtomicU64::new(end),
            confirmed: AtomicU64::new(end),
            failed: OnceLock::new(),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            notify: Notify::new(),
            listener: OnceLock::new(),
            dir_lock: Mutex::new(Some(dir_lock)),
        });
        let committer = if read_only {
            None
        } else {
            let s = Arc::clone(&shared);
            let file = shared.storage.open_write(&segment_path(dir, active), active_len)?;
            Some(
                std::thread::Builder::new()
                    .name("levee-durable-commit".into())
                    .spawn(move || commit_loop(&s, file, active))?,
            )
        };
        let spare_maker = if read_only || !options.preallocate {
            None
        } else {
            let s = Arc::clone(&shared);
            Some(
                std::thread::Builder::new()
                    .name("levee-durable-spare".into())
                    .spawn(move || spare_loop(&s))?,
            )
        };
        let log = Self {
            shared,
            committer: Mutex::new(committer),
            spare_maker: Mutex::new(spare_maker),
            read_only,
        };
        Ok((log, opened))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Sets the function the commit thread calls with the confirmed mark after each commit.
    pub(crate) fn set_listener(&self, f: Box<dyn Fn(u64) + Send + Sync>) {
        let _ = self.shared.listener.set(f);
    }

    /// The failure that stopped the log, if any.
    pub(crate) fn failure(&self) -> Option<Failure> {
        self.shared.failed.get().cloned()
    }

    /// The position just past the last appended record.
    pub(crate) fn end(&self) -> u64 {
        lock(&self.shared.appender).end
    }

    /// Appends `body`; returns its lsn and the position to wait for. `limit` bounds the
    /// bytes the log may then hold.
    pub(crate) fn append(
        &self,
        body: &[u8],
        limit: Option<u64>,
    ) -> Result<(u64, u64), AppendError> {
        let mut a = lock(&self.shared.appender);
        self.append_locked(&mut a, body, limit)
    }

    fn append_locked(
        &self,
        a: &mut Appender,
        body: &[u8],
        limit: Option<u64>,
    ) -> Result<(u64, u64), AppendError> {
        if let Some(f) = self.shared.failed.get() {
            return Err(AppendError::Failed(f.clone()));
        }
        if self.read_only {
            return Err(AppendError::ReadOnly);
        }
        if a.closing {
            return Err(AppendError::Closed);
        }
        let frame_len = (FRAME_HEADER + body.len()) as u64;
        if body.len() > frame::MAX_BODY {
            return Err(AppendError::Failed(io_failure(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record larger than 1 GiB",
            ))));
        }
        if let Some(limit) = limit {
            let used: u64 = a.segments.values().map(|s| s.bytes).sum();
            if used + frame_len > limit {
                return Err(AppendError::Full { used });
            }
        }
        let full = a.active_len + frame_len > self.shared.options.segment_bytes;
        // A segment that grows as it is appended to is left for a spare as soon as one is
        // ready (an empty one is kept: two segments cannot start at one position).
        let leave = !a.active_preallocated && a.spare_file.is_some();
        let rolls = a.active_len > SEGMENT_HEADER as u64 && (full || leave);
        let mut from_spare = None;
        if rolls {
            from_spare = a.spare_file.take();
            a.active_preallocated = from_spare.is_some();
            if from_spare.is_some() {
                self.shared.spare_wanted.notify_all();
            }
            a.active = a.end;
            a.active_len = SEGMENT_HEADER as u64;
            let base = a.active;
            a.segments.insert(base, SegmentInfo { bytes: SEGMENT_HEADER as u64, live: 0 });
        }
        let active = a.active;
        let needs_chunk = rolls || a.chunks.last().is_none_or(|c| c.segment != active);
        if needs_chunk {
            let bytes = a.spare.pop().unwrap_or_default();
            a.chunks.push(Chunk {
                segment: active,
                starts_segment: rolls,
                spare: from_spare,
                bytes,
                end: a.end,
            });
        }
        let lsn = a.end;
        let durable = self.shared.synced.load(Ordering::Acquire);
        let chunk = a.chunks.last_mut().expect("pushed above");
        let was_empty = chunk.bytes.is_empty();
        frame::encode(&mut chunk.bytes, lsn, durable, body);
        chunk.end = lsn + frame_len;
        a.end = lsn + frame_len;
        a.active_len += frame_len;
        if let Some(s) = a.segments.get_mut(&active) {
            s.bytes += frame_len;
        }
        if was_empty {
            self.shared.work.notify_one();
        }
        let after = spare_after(&self.shared.options);
        if lsn - a.opened_end < after && a.end - a.opened_end >= after {
            self.shared.spare_wanted.notify_all();
        }
        Ok((lsn, a.end))
    }

    /// Adds (or with a negative `delta`, removes) live bytes to the segment holding `lsn`.
    pub(crate) fn track(&self, lsn: u64, delta: i64) {
        let mut a = lock(&self.shared.appender);
        if let Some((_, s)) = a.segments.range_mut(..=lsn).next_back() {
            s.live = s.live.saturating_add_signed(delta);
        }
    }

    /// Every segment: base, size, live bytes; oldest first.
    pub(crate) fn segments(&self) -> Vec<(u64, SegmentInfo)> {
        lock(&self.shared.appender).segments.iter().map(|(b, s)| (*b, *s)).collect()
    }

    /// Bytes the log takes on disk (appended, written or not).
    pub(crate) fn disk_bytes(&self) -> u64 {
        lock(&self.shared.appender).segments.values().map(|s| s.bytes).sum()
    }

    /// The position up to which the commit thread has written appended records to the files
    /// (readers of a file see them from then on).
    pub(crate) fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    /// The base of the segment being appended to.
    pub(crate) fn active_segment(&self) -> u64 {
        lock(&self.shared.appender).active
    }

    /// Reads a sealed segment back: each intact record's lsn and body.
    pub(crate) fn read_segment(
        &self,
        base: u64,
        mut visit: impl FnMut(u64, &[u8]),
    ) -> io::Result<()> {
        let (mut file, len) =
            self.shared.storage.open_read(&segment_path(&self.shared.dir, base))?;
        let mut buf = Vec::new();
        frame::read_stream(file.as_mut(), len, &mut buf, base, false, &mut visit, |_| true)?;
        Ok(())
    }

    /// Deletes the oldest segment (which must not be the active one) and makes the deletion
    /// durable.
    pub(crate) fn remove_segment(&self, base: u64) -> io::Result<()> {
        {
            let a = lock(&self.shared.appender);
            if base == a.active || a.segments.keys().next() != Some(&base) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not the oldest sealed segment",
                ));
            }
        }
        self.shared.storage.remove(&segment_path(&self.shared.dir, base))?;
        self.shared.storage.sync_dir(&self.shared.dir)?;
        lock(&self.shared.appender).segments.remove(&base);
        Ok(())
    }

    /// The mark up to which records are confirmed under the log's policy.
    pub(crate) fn confirmed(&self) -> u64 {
        self.shared.confirmed.load(Ordering::Acquire)
    }

    fn reached(&self, end: u64, synced: bool) -> Option<Result<(), Failure>> {
        let mark =
            if synced { self.shared.synced.load(Ordering::Acquire) } else { self.confirmed() };
        if mark >= end {
            return Some(Ok(()));
        }
        self.shared.failed.get().map(|f| Err(f.clone()))
    }

    fn wait_blocking_for(&self, end: u64, synced: bool) -> Result<(), Failure> {
        let mut guard = lock(&self.shared.done_lock);
        loop {
            if let Some(r) = self.reached(end, synced) {
                return r;
            }
            guard = self.shared.done.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until everything before `end` is confirmed.
    pub(crate) async fn wait(&self, end: u64) -> Result<(), Failure> {
        loop {
            let mut notified = pin!(self.shared.notify.notified());
            notified.as_mut().enable();
            if let Some(r) = self.reached(end, false) {
                return r;
            }
            notified.await;
        }
    }

    /// Fsyncs everything before `end` whatever the policy, and waits for it (blocking).
    pub(crate) fn sync_blocking(&self, end: u64) -> Result<(), Failure> {
        {
            let mut a = lock(&self.shared.appender);
            a.sync_wanted = a.sync_wanted.max(end);
            self.shared.work.notify_one();
        }
        self.wait_blocking_for(end, true)
    }

    /// Waits (up to 10 s) until a preallocated spare is ready; whether one is.
    #[cfg(test)]
    pub(crate) fn wait_for_spare(&self) -> bool {
        self.wait_for_spare_within(Duration::from_secs(10))
    }

    /// Whether a spare is ready or the spare thread has stopped trying (it ends on a refusal).
    #[cfg(test)]
    pub(crate) fn spare_once_settled(&self) -> bool {
        if let Some(h) = lock(&self.spare_maker).as_ref() {
            // The thread ends when its spare is refused; bounded, as every test wait.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        lock(&self.shared.appender).spare_file.is_some()
    }

    #[cfg(test)]
    fn wait_for_spare_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut a = lock(&self.shared.appender);
        while a.spare_file.is_none() && !a.closing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            a = self.shared.spare_wanted.wait_timeout(a, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        a.spare_file.is_some()
    }

    /// Stops the log as a crash would: nothing appended from now on, or still buffered, is
    /// written.
    #[cfg(test)]
    pub(crate) fn halt(&self) {
        let _ = self.shared.failed.set(io_failure(io::Error::other("halted")));
        self.close();
    }

    /// Flushes and fsyncs what was appended, stops the commit thread and fails every later
    /// append. Idempotent.
    pub(crate) fn close(&self) {
        {
            let mut a = lock(&self.shared.appender);
            a.closing = true;
            self.shared.stopping.store(true, Ordering::Release);
            self.shared.work.notify_one();
            self.shared.spare_wanted.notify_all();
        }
        if let Some(handle) = lock(&self.spare_maker).take() {
            // Never the current thread: the spare thread holds no handle of the log.
            let _ = handle.join();
        }
        if let Some(handle) = lock(&self.committer).take() {
            // The last handle may be dropped on the commit thread itself (its listener holds
            // one for a moment): it then exits on its own.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        // Whoever opens the directory next may do so now.
        lock(&self.shared.dir_lock).take();
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

/// The commit thread: write each group, fsync per policy, raise the marks, wake waiters.
fn commit_loop(s: &Shared, mut file: Box<dyn StorageFile>, mut segment: u64) {
    let every = match s.options.fsync {
        FsyncPolicy::EveryMillis(ms) => Some(Duration::from_millis(u64::from(ms))),
        _ => None,
    };
    let mut last_sync = Instant::now();
    let mut written = s.written.load(Ordering::Relaxed);
    let mut synced = written;
    loop {
        let (chunks, sync_wanted, closing) = {
            let mut a = lock(&s.appender);
            loop {
                let sync_due = every.is_some_and(|e| synced < written && last_sync.elapsed() >= e);
                if !a.chunks.is_empty() || a.closing || a.sync_wanted > synced || sync_due {
                    break;
                }
                a = match every {
                    Some(e) if synced < written => {
                        let left = e.saturating_sub(last_sync.elapsed());
                        s.work.wait_timeout(a, left).unwrap_or_else(|e| e.into_inner()).0
                    }
                    _ => s.work.wait(a).unwrap_or_else(|e| e.into_inner()),
                };
            }
            (std::mem::take(&mut a.chunks), a.sync_wanted, a.closing)
        };
        let mut spare = Vec::new();
        if s.failed.get().is_some() {
            return;
        }
        let result = (|| -> io::Result<()> {
            for mut chunk in chunks {
                if chunk.starts_segment && chunk.segment != segment {
                    // Seal the old segment durably before the new one exists, so a torn
                    // tail can only ever be in the newest segment.
                    file.sync_data()?;
                    synced = written;
                    let path = segment_path(&s.dir, chunk.segment);
                    let header = frame::segment_header(chunk.segment);
                    if let Some(n) = chunk.spare {
                        // Its zeros are on disk: the header is the only data to sync, and
                        // the name becomes durable with the directory.
                        let spare = spare_path(&s.dir, n);
                        file = s.storage.open_write(&spare, 0)?;
                        write_all(file.as_mut(), &header)?;
                        file.sync_data()?;
                        s.storage.rename(&spare, &path)?;
                        // The same file under its new name (a handle of the in-memory file
                        // system in tests follows the name, not the file).
                        file = s.storage.open_write(&path, SEGMENT_HEADER as u64)?;
                    } else {
                        file = s.storage.create(&path)?;
                        write_all(file.as_mut(), &header)?;
                        file.sync_data()?;
                    }
                    s.storage.sync_dir(&s.dir)?;
                    segment = chunk.segment;
                }
                write_all(file.as_mut(), &chunk.bytes)?;
                written = chunk.end;
                chunk.bytes.clear();
                spare.push(chunk.bytes);
            }
            s.written.store(written, Ordering::Release);
            let sync = match s.options.fsync {
                FsyncPolicy::Always => true,
                FsyncPolicy::EveryMillis(_) => last_sync.elapsed() >= every.unwrap_or_default(),
                FsyncPolicy::Never => false,
            } || sync_wanted > synced
                || closing;
            if sync && synced < written {
                file.sync_data()?;
                last_sync = Instant::now();
                synced = written;
            }
            s.synced.store(synced, Ordering::Release);
            Ok(())
        })();
        if let Err(e) = result {
            let _ = s.failed.set(io_failure(e));
        }
        {
            let mut a = lock(&s.appender);
            a.spare.extend(spare.into_iter().take(4));
        }
        let confirmed = match s.options.fsync {
            FsyncPolicy::Always => s.synced.load(Ordering::Acquire),
            _ => s.written.load(Ordering::Acquire),
        };
        if let Some(listener) = s.listener.get() {
            listener(confirmed);
        }
        s.confirmed.store(confirmed, Ordering::Release);
        drop(lock(&s.done_lock));
        s.done.notify_all();
        s.notify.notify_waiters();
        let failed = s.failed.get().is_some();
        if failed || (closing && lock(&s.appender).chunks.is_empty()) {
            if failed {
                // Nothing more will be written: fail what is queued too.
                lock(&s.appender).chunks.clear();
            }
            return;
        }
    }
}

/// The spare thread: keeps one preallocated segment file ready to roll into. A failure (a
/// full disk) ends it quietly: rolls then create their file on the commit path.
fn spare_loop(s: &Shared) {
    let stop = || s.stopping.load(Ordering::Acquire);
    for n in 1.. {
        {
            let mut a = lock(&s.appender);
            while !a.closing
                && (a.spare_file.is_some() || a.end - a.opened_end < spare_after(&s.options))
            {
                a = s.spare_wanted.wait(a).unwrap_or_else(|e| e.into_inner());
            }
            if a.closing {
                return;
            }
        }
        let path = spare_path(&s.dir, n);
        if let Ok(true) = s.storage.preallocate(&path, s.options.segment_bytes, &stop) {
            let mut a = lock(&s.appender);
            if !a.closing {
                a.spare_file = Some(n);
                s.spare_wanted.notify_all();
                continue;
            }
        }
        // Stopped, closed or refused: the half-made or unused spare goes.
        let _ = s.storage.remove(&path);
        return;
    }
}
