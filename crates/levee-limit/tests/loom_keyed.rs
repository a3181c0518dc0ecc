//! Loom: the keyed limiter's shards. Loom tracks every access to the tables' cells (the
//! shard values behind `ShardLocks`, each key behind `OnceSlots`) and reports any access not
//! ordered after a conflicting one, so these models check that a check never reads a table
//! being rebuilt or a key being written; and they check that reclamation never changes a
//! decision, whatever the order of a check and a sweep (issue 12.3).
//!
//! Every actor is a spawned thread; the model's main thread only sets up and joins (loom
//! 0.7 explores a spawned thread's accesses against a parent that keeps acting poorly; see
//! levee-core's `tests/loom_sync.rs`).

use std::time::Duration;

use levee_core::ManualClock;
use levee_core::sync::{Arc, model, thread};
use levee_limit::{KeyedRateLimiter, Quota};

type Limiter = KeyedRateLimiter<u32, ManualClock, foldhash::fast::FixedState>;

fn limiter(clock: &ManualClock, burst: u32) -> Limiter {
    KeyedRateLimiter::<u32>::builder(Quota::per_second(1).with_burst(burst))
        .shards(1)
        .hasher(foldhash::fast::FixedState::with_seed(1)) // loom replays must be deterministic
        .clock(clock.clone())
        .build()
        .unwrap()
}

const SECOND: u64 = 1_000_000_000;

/// Key 1 used up at 0 (state: 1 s). Runs `check` on one thread while another moves the clock
/// to 3 s and reclaims every refilled key; returns what `check` returned, what `reclaim`
/// returned, and the limiter.
fn race_with_reclaim<R: Send + 'static>(
    check: impl FnOnce(&Limiter) -> R + Send + 'static,
) -> (R, usize, Arc<Limiter>) {
    let clock = ManualClock::new();
    let keyed = Arc::new(limiter(&clock, 1));
    keyed.check(&1).unwrap();
    let checker = {
        let keyed = keyed.clone();
        thread::spawn(move || check(&keyed))
    };
    let sweeper = {
        let keyed = keyed.clone();
        thread::spawn(move || {
            clock.advance(Duration::from_secs(3));
            keyed.reclaim()
        })
    };
    (checker.join().unwrap(), sweeper.join().unwrap(), keyed)
}

/// Two threads check a new key at once (one adds it with shared access, the other finds it
/// being added or added) while a third checks a present key: no access overlaps (a reader
/// that sees the new key sees all of it), and every cell is counted once.
#[test]
fn checks_and_concurrent_inserts_never_overlap() {
    model(|| {
        let clock = ManualClock::new();
        let keyed = Arc::new(limiter(&clock, 2));
        keyed.check(&1).unwrap();
        let handles: Vec<_> = [2, 2, 1]
            .into_iter()
            .map(|key| {
                let keyed = keyed.clone();
                thread::spawn(move || keyed.check(&key).is_ok())
            })
            .collect();
        assert!(handles.into_iter().all(|h| h.join().unwrap()));
        assert_eq!(keyed.len(), 2);
        assert!(keyed.check(&1).is_err(), "two cells of key 1 used");
        assert!(keyed.check(&2).is_err(), "two cells of key 2 used");
    });
}

/// A new key arrives at a shard that must be rebuilt to make room (exclusive access) while
/// another thread checks a present key.
#[test]
fn a_rebuild_never_overlaps_a_check() {
    model(|| {
        let clock = ManualClock::new();
        let keyed = Arc::new(limiter(&clock, 2));
        for key in 0..14 {
            keyed.check(&key).unwrap(); // 14 of 16 slots: the next key needs a rebuild
        }
        let reader = {
            let keyed = keyed.clone();
            thread::spawn(move || keyed.check(&3).is_ok())
        };
        let grower = {
            let keyed = keyed.clone();
            thread::spawn(move || keyed.check(&100).is_ok())
        };
        assert!(reader.join().unwrap() && grower.join().unwrap());
        assert_eq!(keyed.len(), 15);
        assert!(keyed.check(&3).is_err(), "key 3's second cell was taken once");
    });
}

/// Key 1 is used up at 0 (its state: 1 s). One thread checks it while another moves the
/// clock to 3 s and reclaims every refilled key. Whatever the order, the check is judged as
/// a plain limiter would judge it at the reading it took: refused (retry at 1 s) if it read
/// 0, admitted (state 3 s + 1 s) if it read 3 s. Before the fix, a check that read 0 and then
/// missed the reclaimed key was admitted as a new key.
#[test]
fn a_check_racing_a_sweep_is_judged_as_if_nothing_was_reclaimed() {
    model(|| {
        let (checked, reclaimed, keyed) = race_with_reclaim(|keyed| keyed.check(&1));
        match checked {
            Err(refusal) => assert_eq!((refusal.earliest(), reclaimed), (SECOND, 1)),
            Ok(()) => {
                // Admitted at 3 s: the state is 4 s, so nothing is left at 3 s.
                assert_eq!(keyed.available(&1), 0, "admitted on a reading before the advance");
                assert!(reclaimed <= 1);
            }
        }
    });
}

/// A key never seen, checked while another thread reclaims key 1 (which raises the shard's
/// horizon to key 1's state, 1 s): a miss whose reading is older than the horizon reads the
/// clock again with the shard held, so the check either read 0 before the reclamation (the
/// horizon still 0) or reads 3 s after it: admitted as a plain limiter admits a fresh key,
/// in every order. (Judged on the reading taken before the lock, it could meet the raised
/// horizon and be refused.)
#[test]
fn a_new_key_racing_a_sweep_is_admitted() {
    model(|| {
        let (checked, _, _) = race_with_reclaim(|keyed| keyed.check(&2));
        assert_eq!(checked, Ok(()));
    });
}

/// The same race with a reading the caller took before the clock moved (`check_at(0.5 s)`):
/// refused whatever the order, as a plain limiter refuses it.
#[test]
fn a_stale_reading_racing_a_sweep_is_refused() {
    model(|| {
        let (checked, _, _) = race_with_reclaim(|keyed| keyed.check_at(&1, SECOND / 2));
        assert_eq!(checked.unwrap_err().earliest(), SECOND);
    });
}

/// A check of a present key and a check of a new key race a quota change (issue 22.1): no
/// access overlaps (the change rewrites the states with the shard held exclusively), each
/// check ran wholly under one quota, and the debt is kept: the present key's cell owed at
/// 1 s a cell is owed at 500 ms a cell afterwards, whichever came first.
#[test]
fn checks_racing_a_quota_change_keep_the_debt() {
    model(|| {
        let clock = ManualClock::new();
        let keyed = Arc::new(limiter(&clock, 2));
        keyed.check(&1).unwrap(); // key 1 owes one cell (state: 1 s)
        let checkers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|key| {
                let keyed = keyed.clone();
                thread::spawn(move || keyed.check(&key).is_ok())
            })
            .collect();
        let changer = {
            let keyed = keyed.clone();
            thread::spawn(move || keyed.reconfigure(Quota::per_second(2).with_burst(2)))
        };
        for checker in checkers {
            assert!(checker.join().unwrap(), "one more cell fits a burst of two either way");
        }
        assert_eq!(changer.join().unwrap().unwrap(), Quota::per_second(1).with_burst(2));
        // Key 1 owes two cells (its first and the raced one), now at 500 ms each; key 2 one.
        assert_eq!(keyed.state(&1).remaining, 0);
        assert_eq!(keyed.state(&1).reset, Duration::from_secs(1));
        assert_eq!(keyed.state(&2).remaining, 1);
        assert_eq!(keyed.state(&2).reset, Duration::from_millis(500));
    });
}
