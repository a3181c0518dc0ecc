//! The data directory: created and checked for writing before the database opens, and locked
//! for as long as the store is open, so that one shop at a time uses it.
//!
//! The lock is the operating system's advisory lock on `<data_dir>/shop.lock` (`flock` on
//! Unix, `LockFileEx` on Windows, through std's [`File::try_lock`]), not the file's
//! existence: the OS releases it when the process ends however it ends, so a crashed shop
//! leaves the file behind but never a stale lock. The file says who holds the lock (`pid`,
//! and once the shop listens, `addr`), so that a second shop can name the first when it
//! refuses. The file is never deleted: deleting a lock file lets a third process lock a new
//! file while the second still holds the old one.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "shop.lock";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory does not exist and cannot be created.
    #[error("cannot create data directory {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The directory (or the database file in it) cannot be written.
    #[error("data directory {} is not writable: cannot write {}: {source}", dir.display(), file.display())]
    NotWritable {
        /// The directory.
        dir: PathBuf,
        /// The file that could not be opened for writing.
        file: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error(
        "data directory {} is in use by another shop ({holder}); stop it, or give this one another `storage.data_dir`",
        path.display()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// Who holds it, as its lock file says.
        holder: Holder,
    },
    /// The lock could not be taken for another reason than another holder.
    #[error("cannot lock data directory {}: {source}", path.display())]
    Lock {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// The process that holds a data directory, as its lock file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: Option<u32>,
    /// Where it listens, once it does.
    pub addr: Option<String>,
}

impl Holder {
    fn parse(text: &str) -> Self {
        let mut holder = Self::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", pid)) => holder.pid = pid.trim().parse().ok(),
                Some(("addr", addr)) => holder.addr = Some(addr.trim().to_owned()),
                _ => {}
            }
        }
        holder
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}")?,
            None => f.write_str("pid unknown")?,
        }
        if let Some(addr) = &self.addr {
            write!(f, ", listening on {addr}")?;
        }
        Ok(())
    }
}

/// The held lock of a data directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    dir: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed, checks that it and `database` in it (when that exists) can be
    /// written, and takes its lock without waiting, writing this process's id into the lock
    /// file.
    ///
    /// # Errors
    /// [`DataDirError`]: the directory cannot be created or written (path and OS error), or
    /// another process holds it (its pid and address, from its lock file).
    pub fn acquire(dir: &Path, database: &str) -> Result<Self, DataDirError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| DataDirError::Create { path: dir.to_owned(), source })?;
        let not_writable = |file: PathBuf| {
            let dir = dir.to_owned();
            move |source| DataDirError::NotWritable { dir, file, source }
        };
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(not_writable(path.clone()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(DataDirError::InUse {
                    path: dir.to_owned(),
                    holder: Holder::parse(&text),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(DataDirError::Lock { path: dir.to_owned(), source });
            }
        }
        // A database file the directory already has must be writable too (a read-only
        // `shop.db` in a writable directory): SQLite would open it read-only and fail later.
        let db = dir.join(database);
        if db.exists() {
            OpenOptions::new().read(true).write(true).open(&db).map_err(not_writable(db))?;
        }
        let lock = Self { file, dir: dir.to_owned() };
        lock.record(None).map_err(not_writable(path))?;
        Ok(lock)
    }

    /// Records in the lock file that this process listens on `addr`, so that a second shop
    /// on the directory names it.
    ///
    /// # Errors
    /// The lock file cannot be written.
    pub fn record_addr(&self, addr: SocketAddr) -> io::Result<()> {
        self.record(Some(addr))
    }

    fn record(&self, addr: Option<SocketAddr>) -> io::Result<()> {
        let mut text = format!("pid={}\n", std::process::id());
        if let Some(addr) = addr {
            text.push_str(&format!("addr={addr}\n"));
        }
        let mut file = &self.file;
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(text.as_bytes())?;
        file.flush()
    }

    /// The locked directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "levee-data-dir-{name}-{}-{:x}",
            std::process::id(),
            levee::core::random::next_u64()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn one_holder_at_a_time_and_the_second_learns_who() {
        let dir = scratch("lock");
        let first = DataDirLock::acquire(&dir, "shop.db").unwrap();
        first.record_addr(SocketAddr::from(([127, 0, 0, 1], 8080))).unwrap();
        // A second open file description of the same file conflicts even in one process.
        let err = DataDirLock::acquire(&dir, "shop.db").unwrap_err();
        match &err {
            DataDirError::InUse { path, holder } => {
                assert_eq!(path, &dir);
                assert_eq!(holder.pid, Some(std::process::id()));
                assert_eq!(holder.addr.as_deref(), Some("127.0.0.1:8080"));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&dir.display().to_string()), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(first);
        // Released on drop; the file stays and is taken over.
        let again = DataDirLock::acquire(&dir, "shop.db").unwrap();
        assert_eq!(again.dir(), dir);
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_where_the_directory_should_be_names_the_path() {
        let parent = scratch("file");
        std::fs::create_dir_all(&parent).unwrap();
        let file = parent.join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = DataDirLock::acquire(&file.join("data"), "shop.db").unwrap_err();
        assert!(matches!(err, DataDirError::Create { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("plain-file/data") && text.contains("os error"), "{text}");
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn holders_parse_what_they_wrote_and_survive_garbage() {
        assert_eq!(
            Holder::parse("pid=42\naddr=127.0.0.1:1\n"),
            Holder { pid: Some(42), addr: Some("127.0.0.1:1".into()) }
        );
        assert_eq!(Holder::parse("\u{0}garbage"), Holder::default());
        assert_eq!(Holder::default().to_string(), "pid unknown");
    }
}
