//! Unit tests of the wheel: behaviour through the public API, plus white-box checks of
//! level choice, level counts and invariants.

use super::*;

const MS: u64 = 1_000_000;

fn drain<T>(w: &mut TimingWheel<T>, now: u64) -> Vec<T> {
    w.advance(now).map(|(_, v)| v).collect()
}

#[test]
fn fires_at_the_first_tick_boundary_after_the_deadline() {
    let mut w = TimingWheel::new();
    w.insert(5 * MS, "five").unwrap();
    w.insert(5 * MS + 1, "five+1ns").unwrap();
    assert!(drain(&mut w, 5 * MS - 1).is_empty());
    assert_eq!(drain(&mut w, 5 * MS), vec!["five"]);
    assert!(drain(&mut w, 6 * MS - 1).is_empty());
    assert_eq!(drain(&mut w, 6 * MS), vec!["five+1ns"]);
    assert!(w.is_empty());
}

#[test]
fn past_deadlines_fire_on_the_next_poll() {
    let mut w = TimingWheel::builder().start(100 * MS).build().unwrap();
    w.insert(0, 'a').unwrap();
    w.insert(100 * MS, 'b').unwrap();
    assert_eq!(w.next_deadline(), Some(100 * MS));
    assert_eq!(w.poll_expired(100 * MS).map(|(_, v)| v), Some('a'));
    assert_eq!(w.poll_expired(100 * MS).map(|(_, v)| v), Some('b'));
    assert_eq!(w.poll_expired(100 * MS), None);
    w.insert(50 * MS, 'c').unwrap();
    assert_eq!(w.poll_expired(0).map(|(_, v)| v), Some('c'), "a stale now is the latest");
}

#[test]
fn a_now_before_start_hands_out_nothing_early() {
    // Regression: a `now` before `start` used to hand out every timer due at or before
    // `start`, including ones whose deadline was still ahead of that `now`.
    let mut w = TimingWheel::builder().start(100 * MS).build().unwrap();
    w.insert(50 * MS, "before start").unwrap();
    w.insert(100 * MS, "at start").unwrap();
    w.insert(30 * MS, "long past").unwrap();
    assert_eq!(w.poll_expired(40 * MS), None, "50 ms is still ahead of 40 ms");
    assert!(drain(&mut w, 99 * MS).is_empty(), "the wheel's first tick boundary is start");
    assert_eq!(w.next_deadline(), Some(100 * MS));
    let mut due = drain(&mut w, 100 * MS);
    due.sort_unstable();
    assert_eq!(due, ["at start", "before start", "long past"]);
}

#[test]
fn an_earlier_now_is_treated_as_the_latest() {
    // Regression: `poll_expired` advances lazily, so a `now` earlier than the previous
    // one used to hide timers the previous `now` had made due.
    let mut w = TimingWheel::new();
    w.insert(10 * MS, 1).unwrap();
    w.insert(20 * MS, 2).unwrap();
    w.insert(40 * MS, 3).unwrap();
    assert_eq!(w.poll_expired(30 * MS).map(|(_, v)| v), Some(1));
    assert_eq!(w.poll_expired(5 * MS).map(|(_, v)| v), Some(2), "due by 30 ms");
    assert_eq!(w.poll_expired(5 * MS), None, "40 ms is still ahead");
    assert!(drain(&mut w, 0).is_empty());
    assert_eq!(drain(&mut w, 40 * MS), vec![3]);
}

#[test]
fn next_deadline_is_exact_within_64_ticks() {
    // Regression: a timer two ticks away but across a 64-tick boundary was reported at
    // that boundary (its level-1 slot) instead of its own tick.
    let mut w = TimingWheel::new();
    assert!(drain(&mut w, 63 * MS).is_empty());
    w.insert(65 * MS, "a").unwrap();
    assert_eq!(w.next_deadline(), Some(65 * MS));
    // Far timers are placed before time moves close to them; their slot is cascaded in
    // time for the report to be exact once they are within 64 ticks.
    let mut w = TimingWheel::new();
    for d in [4_097 * MS, 4_100 * MS, 300_000 * MS + 5] {
        w.insert(d, d).unwrap();
    }
    assert!(drain(&mut w, 4_000 * MS).is_empty());
    assert!(w.next_deadline().unwrap() <= 4_097 * MS, "97 ticks away: a bound");
    for now in [4_033 * MS, 4_050 * MS, 4_096 * MS] {
        assert!(drain(&mut w, now).is_empty());
        assert_eq!(w.next_deadline(), Some(4_097 * MS), "at {now}");
    }
    assert_eq!(drain(&mut w, 4_097 * MS), vec![4_097 * MS]);
    assert_eq!(w.next_deadline(), Some(4_100 * MS));
    assert_eq!(drain(&mut w, 4_100 * MS), vec![4_100 * MS]);
    let fire = 300_001 * MS;
    assert!(drain(&mut w, fire - 64 * MS).is_empty());
    assert_eq!(w.next_deadline(), Some(fire));
    assert_eq!(drain(&mut w, fire), vec![300_000 * MS + 5]);
}

#[test]
fn far_deadlines_cascade_and_fire_exactly() {
    let mut w = TimingWheel::new();
    let far = [64 * MS, 4096 * MS + 3 * MS, 3_600_000 * MS + 7, u64::MAX / 2, u64::MAX];
    for &d in &far {
        w.insert(d, d).unwrap();
    }
    for &d in &far {
        assert!(drain(&mut w, d - 1).is_empty(), "nothing before {d}");
        let fire = d.div_ceil(MS).saturating_mul(MS);
        let got = drain(&mut w, fire);
        assert_eq!(got, vec![d], "{d} fires at {fire}");
    }
}

#[test]
fn next_deadline_tracks_the_earliest_slot() {
    let mut w = TimingWheel::new();
    assert_eq!(w.next_deadline(), None);
    let a = w.insert(10 * MS, 1).unwrap();
    let b = w.insert(3 * MS + 1, 2).unwrap();
    assert_eq!(w.next_deadline(), Some(4 * MS));
    w.cancel(b);
    assert_eq!(w.next_deadline(), Some(10 * MS));
    w.cancel(a);
    assert_eq!(w.next_deadline(), None);
    // A far exact timer: the first wake-up is a cascade, then closer, never late.
    w.insert(100_000 * MS, 3).unwrap();
    let mut wakeups = 0;
    let mut got = None;
    while got.is_none() {
        let at = w.next_deadline().unwrap();
        assert!(at <= 100_000 * MS);
        wakeups += 1;
        got = w.poll_expired(at);
    }
    assert_eq!(got.map(|(_, v)| v), Some(3));
    assert!(wakeups <= 4, "{wakeups} wake-ups");
}

#[test]
fn cancel_reset_and_stale_keys() {
    let mut w = TimingWheel::new();
    let a = w.insert(10 * MS, "a").unwrap();
    let b = w.insert(20 * MS, "b").unwrap();
    assert_eq!(w.get(a), Some(&"a"));
    assert_eq!(w.deadline(b), Some(20 * MS));
    assert_eq!(w.cancel(a), Some("a"));
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.reset(a, 5), Err(TimerError::StaleKey));
    // A new timer reuses a's storage; a's key still does not reach it.
    let c = w.insert(30 * MS, "c").unwrap();
    assert_eq!(c.index, a.index);
    assert_eq!(w.get(a), None);
    w.reset(b, MS).unwrap();
    assert_eq!(drain(&mut w, MS), vec!["b"]);
    assert_eq!(w.reset(b, MS), Err(TimerError::StaleKey), "fired keys are stale");
    let mut other: TimingWheel<&str> = TimingWheel::new();
    assert_eq!(other.cancel(c), None);
    assert_eq!(other.reset(c, 0), Err(TimerError::ForeignKey));
    assert_eq!(w.len(), 1);
}

#[test]
fn cancel_of_spliced_due_entries_keeps_lists_whole() {
    // Three timers in one slot are spliced onto the due list; cancel the middle, the
    // last and the first, interleaved with polls and new inserts into the same slot index.
    for victim in 0..3 {
        let mut w = TimingWheel::new();
        let keys: Vec<_> = (0..3).map(|i| w.insert(2 * MS, i).unwrap()).collect();
        w.insert(MS, 100).unwrap(); // due earlier, stays in front on the due list
        let _ = w.advance(2 * MS); // dropped unread: all four are due
        assert_eq!(w.cancel(keys[victim]), Some(victim));
        w.insert(66 * MS, 200).unwrap(); // same level-0 slot index as 2 ms
        let mut rest: Vec<_> = w.advance(2 * MS).map(|(_, v)| v).collect();
        rest.sort_unstable();
        let mut want: Vec<_> = (0..3).filter(|&i| i != victim).collect();
        want.push(100);
        assert_eq!(rest, want);
        assert_eq!(drain(&mut w, 66 * MS), vec![200]);
    }
}

#[test]
fn slack_is_never_early_and_within_its_bound() {
    let mut w = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
    let deadlines: Vec<u64> = (0..2000).map(|i| (i * i * 7919 + 1) % (3_600_000 * MS)).collect();
    for &d in &deadlines {
        w.insert(d, d).unwrap();
    }
    let mut now = 0;
    let mut fired = 0;
    while let Some(at) = w.next_deadline() {
        now = at.max(now);
        for (_, d) in w.advance(now) {
            assert!(d <= now, "{d} fired early at {now}");
            let bound = MS + (d + MS) * 8 / 63;
            assert!(now - d <= bound, "{d} fired at {now}, {} late > {bound}", now - d);
            fired += 1;
        }
    }
    assert_eq!(fired, deadlines.len());
}

#[test]
fn slack_groups_timers_into_few_events() {
    let mut w = TimingWheel::builder().mode(Precision::Slack).build().unwrap();
    for i in 0..10_000u64 {
        w.insert(1_800_000 * MS + i * 10 * MS, i).unwrap(); // 30 min + up to 100 s
    }
    let mut wakeups = 0;
    while let Some(at) = w.next_deadline() {
        wakeups += 1;
        assert!(w.advance(at).count() > 0, "every slack wake-up fires something");
    }
    assert!(wakeups < 50, "{wakeups} wake-ups for 100 s of timers");
}

#[test]
fn slack_level_is_the_finest_that_reaches() {
    for tick_len in [MIN_TICK, Duration::from_millis(1), Duration::from_secs(1)] {
        let mut w: TimingWheel<()> =
            TimingWheel::builder().mode(Precision::Slack).tick(tick_len).build().unwrap();
        let top = w.levels.len() - 1;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every tick the wheel can be asked for: up to that of `u64::MAX`.
            let max_tick = w.deadline_tick(u64::MAX);
            w.elapsed = if i % 2 == 0 { x >> 40 } else { x >> (x % 64) } % max_tick;
            let delta = 1 + ((x >> 3) >> (x % 61)) % (max_tick - w.elapsed);
            let tick = w.elapsed + delta;
            let reach = |level: usize| {
                let shift = level as u32 * SLACK_SHIFT;
                tick.div_ceil(1 << shift) - (w.elapsed >> shift) <= SLOTS as u64
            };
            let want = (0..=top).find(|&l| reach(l)).unwrap_or(top);
            let (level, k) = w.slack_level(tick);
            assert_eq!(level, want, "tick {tick} elapsed {}", w.elapsed);
            assert_eq!(k, tick.div_ceil(1 << (level as u32 * SLACK_SHIFT)));
        }
    }
}

#[test]
fn bad_settings_are_config_errors() {
    let e = TimingWheel::builder().tick(Duration::from_nanos(999)).build::<()>().unwrap_err();
    assert_eq!(e.setting, "tick");
    let e = TimingWheel::builder().max_pending(0).build::<()>().unwrap_err();
    assert_eq!(e.setting, "max_pending");
    let e = TimingWheel::builder().max_pending(usize::MAX).build::<()>().unwrap_err();
    assert_eq!(e.setting, "max_pending");
}

#[test]
fn full_hands_the_value_back() {
    let mut w = TimingWheel::builder().max_pending(2).build().unwrap();
    let a = w.insert(1, String::from("a")).unwrap();
    w.insert(2, String::from("b")).unwrap();
    let err = w.insert(3, String::from("c")).unwrap_err();
    assert_eq!(err.to_string(), "timer wheel is full: 2 timers pending (max_pending)");
    assert_eq!(err.into_value().as_deref(), Some("c"));
    w.cancel(a);
    assert!(w.insert(3, String::from("c")).is_ok());
}

#[test]
fn level_counts_cover_the_whole_u64_range() {
    let exact: TimingWheel<()> = TimingWheel::new();
    // The near ring's two halves and levels 1..=7: distances below 2^45 ms-ticks.
    assert_eq!(exact.levels.len(), 9);
    let mut slack: TimingWheel<()> =
        TimingWheel::builder().mode(Precision::Slack).tick(MIN_TICK).build().unwrap();
    slack.insert(u64::MAX, ()).unwrap();
    slack.insert(u64::MAX - 1, ()).unwrap();
    assert_eq!(slack.advance(u64::MAX - 2).count(), 0);
    assert_eq!(slack.advance(u64::MAX).count(), 2);
}

#[test]
fn invariants_hold_through_random_operations() {
    for mode in [Precision::Exact, Precision::Slack] {
        let mut w = TimingWheel::builder().mode(mode).build().unwrap();
        let mut x = 88_172_645_463_325_252u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut now, mut keys) = (0u64, Vec::new());
        for _ in 0..4_000 {
            match rand() % 8 {
                0..=2 => {
                    let d = now + rand() % [100 * MS, 10_000 * MS, 1 << 50][rand() as usize % 3];
                    keys.push(w.insert(d, ()).unwrap());
                }
                3 if !keys.is_empty() => {
                    let k = keys[rand() as usize % keys.len()];
                    w.cancel(k);
                }
                4 if !keys.is_empty() => {
                    let k = keys[rand() as usize % keys.len()];
                    let _ = w.reset(k, now + rand() % (1000 * MS));
                }
                5 => {
                    now += rand() % (50 * MS);
                    let take = rand() as usize % 4;
                    let _ = w.advance(now).take(take).count();
                }
                6 => {
                    now += rand() % (5 * MS);
                    w.poll_expired(now);
                }
                _ => {
                    if rand() % 64 == 0 {
                        w.compact();
                    }
                }
            }
            w.check_invariants();
        }
    }
}

#[test]
fn compact_returns_memory_and_keeps_keys() {
    let mut w = TimingWheel::new();
    let keys: Vec<_> = (0..10_000u64).map(|i| w.insert(i * MS, i).unwrap()).collect();
    let full = w.allocated_bytes();
    for k in &keys[..9_000] {
        w.cancel(*k);
    }
    w.compact();
    assert!(w.allocated_bytes() <= full / 4, "{} of {full} bytes kept", w.allocated_bytes());
    for (i, k) in keys.iter().enumerate().skip(9_000) {
        assert_eq!(w.get(*k), Some(&(i as u64)));
    }
    assert_eq!(w.advance(u64::MAX).count(), 1_000);
    w.compact();
    assert_eq!(w.allocated_bytes(), 0);
}
