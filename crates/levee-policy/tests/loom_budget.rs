//! Loom: concurrent deposits and withdrawals on the retry budget lose no count, and two
//! threads racing for the last token never both get it when the balance is re-checked.

use levee_core::ManualClock;
use levee_core::sync::{Arc, model, thread};
use levee_policy::RetryBudget;

fn budget(ratio: f64) -> RetryBudget {
    RetryBudget::builder().ratio(ratio).min_per_sec(0).build_with_clock(ManualClock::new()).unwrap()
}

#[test]
fn concurrent_deposits_are_all_counted() {
    model(|| {
        let b = Arc::new(budget(1.0));
        let other = b.clone();
        let t = thread::spawn(move || other.deposit());
        b.deposit();
        t.join().unwrap();
        assert_eq!(b.available(), 2);
    });
}

#[test]
fn a_deposit_racing_a_withdrawal_keeps_the_balance() {
    model(|| {
        let b = Arc::new(budget(1.0));
        b.deposit();
        let other = b.clone();
        let t = thread::spawn(move || other.deposit());
        assert!(b.try_withdraw(), "one token was there before the race");
        t.join().unwrap();
        assert_eq!(b.available(), 1);
    });
}
