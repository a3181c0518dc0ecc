//! The file operations the log needs, behind a trait: the real file system in production,
//! and (in tests and the fuzzer) an in-memory one that separates what was written from what
//! was synced and injects faults (short writes, failing fsyncs, a full disk), so tests can
//! crash it at any point and check what survives.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Files of one directory, as the log uses them.
pub(crate) trait Storage: Send + Sync + 'static {
    /// Creates the directory (and parents) if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// A file opened for reading from its start, with its length.
    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)>;
    /// Creates (or empties) a file for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens an existing file for writing from offset `at` on (a preallocated file is longer
    /// than what was written to it).
    fn open_write(&self, path: &Path, at: u64) -> io::Result<Box<dyn StorageFile>>;
    /// Creates (or empties) a file and writes `len` zero bytes to it, then syncs it, so that
    /// later writes inside it neither allocate blocks nor change the file's size. Checks
    /// `stop` between chunks and returns `false` (the file half made) when it says so.
    fn preallocate(&self, path: &Path, len: u64, stop: &dyn Fn() -> bool) -> io::Result<bool>;
    /// Renames a file (durable after [`sync_dir`](Self::sync_dir)).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Cuts a file to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Deletes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (files created, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the directory for this process; held while the value lives.
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>>;
}

/// A file open for appending.
pub(crate) trait StorageFile: Send {
    /// Writes some of `buf` at the end; returns how much (a short write is allowed).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Makes everything written durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// Writes all of `buf`, going on after short writes.
pub(crate) fn write_all(file: &mut dyn StorageFile, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write(buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote zero bytes")),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Disk;

struct DiskFile(File);

impl StorageFile for DiskFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for Disk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok((Box::new(file), len))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        Ok(Box::new(DiskFile(file)))
    }

    fn open_write(&self, path: &Path, at: u64) -> io::Result<Box<dyn StorageFile>> {
        use std::io::{Seek, SeekFrom};
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::Start(at))?;
        Ok(Box::new(DiskFile(file)))
    }

    fn preallocate(&self, path: &Path, len: u64, stop: &dyn Fn() -> bool) -> io::Result<bool> {
        // Zeros written, not `fallocate`d: ext4 and XFS mark fallocated blocks unwritten, and
        // the first write to them changes the extent tree, which fdatasync must then flush.
        //
        // Written gently, a chunk at a time, each synced before a pause: 64 MiB of zeros
        // written at once and then synced queue ahead of the commit thread's next fdatasync,
        // which then waited 24-26 ms here, where it takes under 2 ms (a 5 KB append +
        // fdatasync every 0.5 ms beside a spare being made, on this machine's disk). With
        // 256 KiB chunks and a 2 ms pause none waited longer than 1.9 ms. It caps a spare's
        // writing at 128 MiB/s: a 64 MiB spare takes about half a second.
        const CHUNK: u64 = 256 << 10;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
        let zeros = vec![0u8; CHUNK as usize];
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        let mut left = len;
        while left > 0 {
            if stop() {
                return Ok(false);
            }
            let n = left.min(CHUNK);
            file.write_all(&zeros[..n as usize])?;
            left -= n;
            if left > 0 {
                file.sync_data()?;
                std::thread::sleep(PAUSE);
            }
        }
        file.sync_all()?;
        Ok(true)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK"))?;
        #[cfg(unix)]
        {
            use rustix::fs::{FlockOperation, flock};
            flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
                if e == rustix::io::Errno::WOULDBLOCK {
                    io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{} is in use by another broker", dir.display()),
                    )
                } else {
                    io::Error::from(e)
                }
            })?;
        }
        Ok(Box::new(file))
    }
}

#[cfg(test)]
pub(crate) use mem::Faults;
#[cfg(any(test, fuzzing))]
pub(crate) use mem::MemStorage;

// The fuzzer uses only part of it.
#[cfg(any(test, fuzzing))]
#[cfg_attr(not(test), allow(dead_code))]
mod mem {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex, MutexGuard};

    use super::*;

    /// Faults a [`MemStorage`] injects.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Faults {
        /// Every write takes at most this many bytes (a short write).
        pub(crate) max_write: Option<usize>,
        /// Writes fail with "no space left on device" once files hold this many bytes.
        pub(crate) space: Option<u64>,
        /// The next fsyncs of files fail (counted down).
        pub(crate) failing_syncs: u32,
    }

    #[derive(Debug, Default, Clone)]
    struct MemFile {
        /// What a reader sees now (the page cache), up to the preallocated zeros.
        data: Vec<u8>,
        /// Preallocated zero bytes after `data` (kept as a count, not as memory).
        tail: usize,
        /// What survives a crash: the content as of the last fsync.
        synced: Vec<u8>,
        /// `tail` as of the last fsync.
        synced_tail: usize,
    }

    impl MemFile {
        fn len(&self) -> usize {
            self.data.len() + self.tail
        }
    }

    #[derive(Debug, Default)]
    struct Fs {
        files: BTreeMap<PathBuf, MemFile>,
        /// Names whose creation or removal was made durable by a directory sync.
        durable_names: Vec<PathBuf>,
        faults: Faults,
        locked: bool,
        /// While true, writes wait (a disk that stalls); see [`MemStorage::hold_writes`].
        held: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    /// An in-memory file system that remembers what was synced, so a test can crash it.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct MemStorage(Arc<Mutex<Fs>>);

    fn fs(s: &MemStorage) -> MutexGuard<'_, Fs> {
        s.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(path: &Path) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
    }

    impl MemStorage {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn set_faults(&self, faults: Faults) {
            fs(self).faults = faults;
        }

        /// Simulates power loss: every file goes back to its synced content plus the first
        /// `keep` bytes written after it (a torn write keeps part of what was in flight),
        /// the last `garbage` of those bytes replaced by junk; files whose creation was not
        /// made durable by a directory sync vanish; removed files whose removal was not
        /// synced come back only if they were still listed.
        pub(crate) fn crash(&self, keep: usize, garbage: usize) {
            let mut fs = fs(self);
            let durable = fs.durable_names.clone();
            fs.files.retain(|p, _| durable.contains(p));
            for file in fs.files.values_mut() {
                // The size as of the last fsync; writes inside preallocated space keep it.
                let synced_len = file.synced.len() + file.synced_tail;
                let extra = file.data.len().saturating_sub(file.synced.len());
                let mut data = file.synced.clone();
                if file.data.starts_with(&file.synced) {
                    let kept = keep.min(extra);
                    let start = file.synced.len();
                    data.extend_from_slice(&file.data[start..start + kept]);
                    let junk = garbage.min(kept);
                    let len = data.len();
                    for (i, b) in data[len - junk..].iter_mut().enumerate() {
                        *b = 0xA5 ^ (i as u8);
                    }
                }
                file.tail = synced_len.saturating_sub(data.len());
                file.synced_tail = file.tail;
                file.data = data.clone();
                file.synced = data;
            }
            fs.locked = false;
        }

        /// Makes every write wait until [`release_writes`](Self::release_writes), as a
        /// stalled disk would: the commit thread stops in the middle of its work.
        pub(crate) fn hold_writes(&self) {
            let held = Arc::clone(&fs(self).held);
            *held.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }

        /// Lets held writes go on.
        pub(crate) fn release_writes(&self) {
            let held = Arc::clone(&fs(self).held);
            *held.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
            held.1.notify_all();
        }

        /// Simulates a process crash: nothing written is lost, only the lock.
        pub(crate) fn kill(&self) {
            fs(self).locked = false;
        }

        /// Changes one byte of a file (bit rot).
        pub(crate) fn corrupt(&self, path: &Path, offset: usize) {
            let mut fs = fs(self);
            if let Some(f) = fs.files.get_mut(path)
                && offset < f.data.len()
            {
                f.data[offset] ^= 0x40;
                f.synced = f.data.clone();
            }
        }

        /// Puts raw bytes into a file, as if synced (fuzzing).
        #[cfg_attr(not(fuzzing), allow(dead_code))]
        pub(crate) fn put(&self, path: &Path, bytes: Vec<u8>) {
            let mut fs = fs(self);
            let file = MemFile { data: bytes.clone(), synced: bytes, ..MemFile::default() };
            fs.files.insert(path.to_path_buf(), file);
            fs.durable_names.push(path.to_path_buf());
        }

        /// Sizes of the files in `dir`, by name.
        pub(crate) fn sizes(&self, dir: &Path) -> Vec<(String, usize)> {
            fs(self)
                .files
                .iter()
                .filter(|(p, _)| p.parent() == Some(dir))
                .map(|(p, f)| (p.file_name().unwrap().to_string_lossy().into_owned(), f.len()))
                .collect()
        }
    }

    struct MemLock(MemStorage);

    impl Drop for MemLock {
        fn drop(&mut self) {
            fs(&self.0).locked = false;
        }
    }

    struct MemHandle {
        fs: MemStorage,
        path: PathBuf,
        /// Where the next write goes.
        pos: usize,
    }

    impl StorageFile for MemHandle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let held = Arc::clone(&fs(&self.fs).held);
            drop(
                held.1
                    .wait_while(held.0.lock().unwrap_or_else(|e| e.into_inner()), |h| *h)
                    .unwrap_or_else(|e| e.into_inner()),
            );
            let mut fs = fs(&self.fs);
            let used: u64 = fs.files.values().map(|f| f.len() as u64).sum();
            let mut n = buf.len();
            if let Some(max) = fs.faults.max_write {
                n = n.min(max.max(1));
            }
            let file = fs.files.get(&self.path).ok_or_else(|| not_found(&self.path))?;
            // Bytes the write adds to the file (none inside preallocated space).
            let grows = (self.pos + n).saturating_sub(file.len());
            if let Some(space) = fs.faults.space
                && grows > 0
            {
                let room = space.saturating_sub(used) as usize;
                if room == 0 {
                    return Err(io::Error::from_raw_os_error(28)); // ENOSPC
                }
                n = n.min(file.len().saturating_sub(self.pos) + room);
            }
            let file = fs.files.get_mut(&self.path).ok_or_else(|| not_found(&self.path))?;
            let end = self.pos + n;
            if file.data.len() < end {
                file.tail = file.tail.saturating_sub(end - file.data.len());
                file.data.resize(end, 0);
            }
            file.data[self.pos..end].copy_from_slice(&buf[..n]);
            self.pos = end;
            Ok(n)
        }

        fn sync_data(&mut self) -> io::Result<()> {
            let mut fs = fs(&self.fs);
            if fs.faults.failing_syncs > 0 {
                fs.faults.failing_syncs -= 1;
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            let file = fs.files.get_mut(&self.path).ok_or_else(|| not_found(&self.path))?;
            file.synced = file.data.clone();
            file.synced_tail = file.tail;
            Ok(())
        }
    }

    impl Storage for MemStorage {
        fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }

        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            Ok(self.sizes(dir).into_iter().map(|(n, _)| n).collect())
        }

        fn open_read(&self, path: &Path) -> io::Result<(Box<dyn io::Read + Send>, u64)> {
            let (data, tail) = fs(self)
                .files
                .get(path)
                .map(|f| (f.data.clone(), f.tail as u64))
                .ok_or_else(|| not_found(path))?;
            let len = data.len() as u64 + tail;
            let zeros = io::Read::take(io::repeat(0), tail);
            Ok((Box::new(io::Read::chain(io::Cursor::new(data), zeros)), len))
        }

        fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
            fs(self).files.insert(path.to_path_buf(), MemFile::default());
            Ok(Box::new(MemHandle { fs: self.clone(), path: path.to_path_buf(), pos: 0 }))
        }

        fn open_write(&self, path: &Path, at: u64) -> io::Result<Box<dyn StorageFile>> {
            if !fs(self).files.contains_key(path) {
                return Err(not_found(path));
            }
            let pos = at as usize;
            Ok(Box::new(MemHandle { fs: self.clone(), path: path.to_path_buf(), pos }))
        }

        fn preallocate(&self, path: &Path, len: u64, _stop: &dyn Fn() -> bool) -> io::Result<bool> {
            let mut fs = fs(self);
            if let Some(space) = fs.faults.space {
                let used: u64 = fs.files.values().map(|f| f.len() as u64).sum();
                if used + len > space {
                    return Err(io::Error::from_raw_os_error(28)); // ENOSPC
                }
            }
            let tail = len as usize;
            let file = MemFile { tail, synced_tail: tail, ..MemFile::default() };
            fs.files.insert(path.to_path_buf(), file);
            Ok(true)
        }

        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut fs = fs(self);
            let file = fs.files.remove(from).ok_or_else(|| not_found(from))?;
            fs.files.insert(to.to_path_buf(), file);
            Ok(())
        }

        fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
            let mut fs = fs(self);
            let file = fs.files.get_mut(path).ok_or_else(|| not_found(path))?;
            let len = len as usize;
            file.tail = len.saturating_sub(file.data.len());
            file.data.truncate(len);
            file.synced = file.data.clone();
            file.synced_tail = file.tail;
            Ok(())
        }

        fn remove(&self, path: &Path) -> io::Result<()> {
            fs(self).files.remove(path).map(drop).ok_or_else(|| not_found(path))
        }

        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            let mut fs = fs(self);
            let names: Vec<PathBuf> =
                fs.files.keys().filter(|p| p.parent() == Some(dir)).cloned().collect();
            fs.durable_names.retain(|p| p.parent() != Some(dir));
            fs.durable_names.extend(names);
            Ok(())
        }

        fn lock(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
            let mut fs = fs(self);
            if fs.locked {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!("{} is in use by another broker", dir.display()),
                ));
            }
            fs.locked = true;
            Ok(Box::new(MemLock(self.clone())))
        }
    }
}
