//! A payment provider goes down and comes back; the breaker in front of it fails fast while it
//! is down, backs off while it stays down, and closes again once trial calls succeed.
//!
//! Time is a `ManualClock`, so the example runs in an instant and prints the same every time.
//!
//! `cargo run --example circuit_breaker`

use std::time::Duration;

use levee_breaker::{
    BreakerEvent, BreakerOverrides, BreakerRegistry, BreakerSettings, CallError, OpenWait, Outcome,
    SlidingWindow, classify_errors,
};
use levee_core::{Clock, ManualClock};

/// What the provider answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ProviderError {
    /// The card was declined: the provider works fine, so this is not a backend failure.
    Declined,
    /// The provider is down.
    Unavailable,
}

fn main() {
    let clock = ManualClock::new();

    // One breaker per downstream, sharing defaults; the payment provider gets a stricter
    // failure threshold and exponential backoff.
    let defaults = BreakerSettings {
        window: SlidingWindow::count(20),
        minimum_calls: 10,
        half_open_calls: 3,
        ..BreakerSettings::default()
    };
    let registry = BreakerRegistry::new(defaults)
        .expect("valid defaults")
        .with_clock(clock.clone())
        .with_overrides(
            "payment-provider",
            BreakerOverrides {
                failure_rate_threshold: Some(30.0),
                open_wait: Some(
                    OpenWait::exponential(Duration::from_secs(2), Duration::from_secs(30))
                        .jitter(0.0),
                ),
                ..BreakerOverrides::default()
            },
        )
        .expect("valid overrides")
        .listener({
            let clock = clock.clone();
            move |e: &BreakerEvent| {
                let until = e
                    .open_until
                    .map(|u| format!(" until t={:.1}s", u as f64 / 1e9))
                    .unwrap_or_default();
                println!(
                    "  t={:>5.1}s  {}: {} -> {} ({:?}){until}",
                    clock.now() as f64 / 1e9,
                    e.name,
                    e.from,
                    e.to,
                    e.reason
                );
            }
        });
    let payments = registry.get("payment-provider");
    let inventory = registry.get("inventory");

    // A declined card is the customer's problem, not the provider's.
    let classify = classify_errors(|e: &ProviderError| {
        if *e == ProviderError::Declined { Outcome::Ignored } else { Outcome::Failure }
    });

    let mut provider_up = true;
    let mut refused = 0;
    let mut made = 0;
    println!("transitions:");
    for second in 0..120u32 {
        // The provider is down from t=20s to t=50s.
        provider_up = match second {
            20 => false,
            50 => true,
            _ => provider_up,
        };
        for call in 0..5u32 {
            let declined = (second + call) % 13 == 0;
            let result = payments.call_with(&classify, || {
                made += 1;
                match (provider_up, declined) {
                    (false, _) => Err(ProviderError::Unavailable),
                    (true, true) => Err(ProviderError::Declined),
                    (true, false) => Ok(()),
                }
            });
            if let Err(CallError::Open(_)) = result {
                refused += 1;
            }
            clock.advance(Duration::from_millis(200));
        }
        // The inventory service answers every other second.
        let _ = inventory.call(|| if second % 2 == 0 { Ok(()) } else { Err("timeout") });
    }

    let m = payments.metrics();
    println!("\n{made} calls reached the provider, {refused} were refused without waiting on it");
    println!(
        "now: {} with {} calls in the window, {} failed; {} refusals in all",
        m.state, m.calls, m.failed_calls, m.not_permitted
    );
    assert_eq!(m.not_permitted, refused);

    println!("\nall breakers:");
    for m in registry.metrics() {
        let rate =
            m.failure_rate.map_or_else(|| "not judged yet".to_owned(), |r| format!("{r:.0} %"));
        println!("  {:<18} {:<6} failure rate {rate}", m.name, m.state.as_str());
    }

    // Operators can hold a breaker open during maintenance.
    payments.force_open();
    let refusal = payments.try_acquire().unwrap_err();
    println!("maintenance: {refusal}");
    payments.reset();
}
