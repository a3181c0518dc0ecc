//! Loom: the shared building blocks of `levee_core::sync`. Loom tracks every access to the
//! cells inside them and reports any access that is not ordered after a conflicting one as
//! a data race, so these models check the protocols, not just the final values. Under loom a
//! `ShardLocks` and a `StripedCounter` have three rows or stripes of their own (for threads
//! 0 to 2; the model's main thread is 0), so a model's third spawned thread takes a shared
//! one.
//!
//! Every actor is a spawned thread and the model's main thread only joins them: loom 0.7
//! does not run a freshly spawned thread before the spawning thread's next access to the
//! same object, so a main thread that acts itself hides half the interleavings (a reader in
//! the main thread would never see a publication made by a thread it just spawned). Each
//! model here fails when its protocol is weakened (a fence or a release dropped).

use std::num::NonZeroU64;

use levee_core::StripedCounter;
use levee_core::sync::{
    Arc, Entry, OnceSlots, Ordering, Retained, ShardLocks, UnsafeCell, model, thread, thread_index,
};

/// A writer and two readers (the second on the shared overflow row) of one shard: every
/// reader sees the value before or after the write, never during it.
#[test]
fn shard_readers_never_overlap_a_writer() {
    model(|| {
        let locks = Arc::new(ShardLocks::new(2, |i| (i as u64, 0u64)));
        let writer = {
            let locks = locks.clone();
            thread::spawn(move || locks.write(0, |v| v.1 += 1))
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let locks = locks.clone();
                thread::spawn(move || locks.read(0, |v| v.1))
            })
            .collect();
        let seen: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        writer.join().unwrap();
        assert!(seen.iter().all(|&s| s <= 1));
        assert_eq!(locks.read(0, |v| *v), (0, 1));
        assert_eq!(locks.read(1, |v| *v), (1, 0), "the other shard is untouched");
    });
}

/// Two writers of one shard and a reader: writes never overlap and none is lost.
#[test]
fn shard_writers_exclude_each_other() {
    model(|| {
        let locks = Arc::new(ShardLocks::new(1, |_| 0u64));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let locks = locks.clone();
                thread::spawn(move || locks.write(0, |v| *v += 1))
            })
            .collect();
        let reader = {
            let locks = locks.clone();
            thread::spawn(move || locks.read(0, |v| *v))
        };
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert!(reader.join().unwrap() <= 2);
        assert_eq!(locks.read(0, |v| *v), 2);
    });
}

/// A publisher fills a slot while a reader looks at it: the reader sees it empty, or sees
/// the whole key with its state.
#[test]
fn a_published_key_is_seen_whole_or_not_at_all() {
    model(|| {
        let slots = Arc::new(OnceSlots::<String>::new(2));
        let publisher = {
            let slots = slots.clone();
            thread::spawn(move || {
                let state = NonZeroU64::new(7).unwrap();
                slots.publisher().publish(1, "seven".to_owned(), state).unwrap();
            })
        };
        let reader = {
            let slots = slots.clone();
            thread::spawn(move || {
                if let Entry::Full(key, state) = slots.get(1) {
                    assert_eq!(key, "seven");
                    assert_eq!(state.load(Ordering::Relaxed), 7);
                }
            })
        };
        publisher.join().unwrap();
        reader.join().unwrap();
        assert_eq!(slots.len(), 1);
        assert!(matches!(slots.get(0), Entry::Empty));
    });
}

/// Two publishers race for one slot: exactly one wins, the other gets its key back.
#[test]
fn publishers_of_one_slot_never_both_win() {
    model(|| {
        let slots = Arc::new(OnceSlots::<u32>::new(1));
        let racers: Vec<_> = (1..=2)
            .map(|key| {
                let slots = slots.clone();
                thread::spawn(move || slots.publisher().publish(0, key, NonZeroU64::MIN).is_ok())
            })
            .collect();
        let won: Vec<bool> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        assert!(won[0] ^ won[1], "one publisher wins");
        let Entry::Full(key, _) = slots.get(0) else { panic!("published") };
        assert_eq!(*key, if won[0] { 1 } else { 2 });
    });
}

/// Three threads count, two on stripes of their own and one on the shared stripe.
#[test]
fn striped_counts_are_not_lost() {
    model(|| {
        let counter = Arc::new(StripedCounter::new());
        let handles: Vec<_> = (1..=3)
            .map(|n| {
                let counter = counter.clone();
                thread::spawn(move || {
                    counter.add(n);
                    thread_index()
                })
            })
            .collect();
        let mut indices: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        indices.sort_unstable();
        indices.dedup();
        // Modelled threads are numbered by loom; real ones may reuse an exited thread's.
        assert!(!cfg!(loom) || indices.len() == 3, "modelled threads have distinct numbers");
        assert_eq!(counter.get(), 6);
    });
}

/// A publisher and a reader of a `Retained`: the reader sees the first or the second version,
/// each fully written (the values sit in loom cells, so a read not ordered after the write
/// that made it is reported), and the second links back to the first.
#[test]
fn retained_readers_see_whole_versions() {
    /// A value loom tracks: written when made, only read once published.
    struct Tracked(UnsafeCell<u64>);
    // SAFETY: the cell is written only by `new`, before the value is published; after that
    // every access is a read.
    unsafe impl Sync for Tracked {}
    impl Tracked {
        fn read(&self) -> u64 {
            // SAFETY: as above, no write after publication.
            self.0.with(|p| unsafe { *p })
        }
    }

    model(|| {
        let retained = Arc::new(Retained::new(Tracked(UnsafeCell::new(1))));
        let publisher = {
            let retained = retained.clone();
            thread::spawn(move || {
                retained.publish(Tracked(UnsafeCell::new(2)));
            })
        };
        let reader = {
            let retained = retained.clone();
            thread::spawn(move || {
                let version = retained.load();
                (version.read(), version.previous().map(|v| v.read()))
            })
        };
        let seen = reader.join().unwrap();
        publisher.join().unwrap();
        assert!(seen == (1, None) || seen == (2, Some(1)), "{seen:?}");
        assert_eq!(retained.versions(), 2);
    });
}
