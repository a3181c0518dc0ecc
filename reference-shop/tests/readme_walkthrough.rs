//! The README is a test (issue 14 item 8): the shell blocks of "Place an order with curl" are
//! run as written, with `sh` and `curl`, against the real `reference-shop` binary started as
//! the README's start blocks say (on 127.0.0.1 and a free port, in a scratch data directory):
//! the ordering walk-through, then, after a restart with the README's settings, the payment
//! outage and the dead-letter replay.
//!
//! What is checked, so that the README and the shop cannot drift apart:
//! - every answer is JSON and no error, and has the `"key": value` pairs its comment quotes
//!   (a step that only reads is repeated until it does, 10 s at most: "a moment later");
//! - the outage: orders are still taken, fast (the six in less than one payment deadline);
//!   the breaker opened once, after at least the failed calls the text names; retries were
//!   abandoned; every order has a dead letter, no earlier than the README says and soon after;
//!   the replay after the README's `sleep` pays every order, each charged once;
//! - the numbers in the text (attempts and pauses, the retry budget, the breaker's thresholds
//!   and open wait, the payment deadline, the redelivery schedule) are those of the settings
//!   the shop prints with `print-config` under the README's start command, and the `sleep` is
//!   the breaker's open wait.
//!
//! It takes real time (the shop runs for real: the README's `sleep 10` is most of it) and is
//! bounded: each step has its deadline, the whole test must end within 60 s.

mod process;
mod walkthrough;

use std::time::{Duration, Instant};

use process::Scratch;
use serde_json::Value;
use walkthrough::script::{self, Step};
use walkthrough::{Ran, Shell, Shop, print_config, start_settings};

/// How long a step that only reads may be repeated until it answers as its comment says.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a step may take otherwise (a `sleep` gets its own length on top).
const STEP_LIMIT: Duration = Duration::from_secs(15);
/// How much later than the README says the dead letters may come (a loaded machine).
const SLACK: Duration = Duration::from_secs(3);

#[test]
fn the_readme_walkthroughs_run_as_written_and_say_what_the_shop_does() {
    if !walkthrough::curl_available() {
        return;
    }
    let begun = Instant::now();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let text = section(&readme, "### Place an order with curl");
    let scratch = Scratch::new("readme");
    let data = scratch.0.join("data");
    let mut sh = Shell::new(&scratch.0);

    // Start the shop as the README does, and place an order.
    let defaults = start_settings(&script::block(&readme, "start"));
    assert!(defaults.is_empty(), "the first start is with the defaults");
    let config = print_config(&defaults, &data);
    says_the_default_redelivery_schedule(text, &config);
    let readme_url = format!("http://{}", str_at(&config, "server.addr"));
    let shop = Shop::start(&defaults, &data, scratch.0.join("first.log"));
    let ordering = script::steps(&script::block(&readme, "ordering"));
    run(&mut sh, &ordering, &shop, &readme_url, ordering_answers);
    shop.stop();

    // Restart it with the README's settings, then the outage and the replay.
    let settings = start_settings(&script::block(&readme, "restart"));
    let config = print_config(&settings, &data);
    let numbers = Numbers::of(&config);
    says_what_the_payment_pipeline_does(text, &numbers);
    let shop = Shop::start(&settings, &data, scratch.0.join("second.log"));
    sh.set("S", &shop.url);
    let outage = script::steps(&script::block(&readme, "outage"));
    let mut orders = 0;
    let ran = run(&mut sh, &outage, &shop, &readme_url, |step, docs| {
        outage_answers(step, docs, &numbers, &mut orders)
    });
    outage_timings(&outage, &ran, &numbers);
    charged_once(&sh, orders);
    shop.stop();
    assert!(begun.elapsed() < Duration::from_secs(60), "took {:?}", begun.elapsed());
}

/// Runs `steps` in order and returns what each answered (`None` for an assignment). An
/// assignment sets its variable (`S` to the test's shop, after checking that the README's
/// `S` is the default address); `sleep` runs as written; every other step must answer JSON
/// that is no error, has the pairs its comment quotes and passes `check`. A step that only
/// reads is repeated (every 100 ms, [`PATIENCE`] at most) until it does.
fn run(
    sh: &mut Shell,
    steps: &[Step],
    shop: &Shop,
    readme_url: &str,
    mut check: impl FnMut(&Step, &[Value]) -> Result<(), String>,
) -> Vec<Option<Ran>> {
    let mut ran = Vec::new();
    for step in steps {
        if let Some((name, value)) = step.assignment() {
            if name == "S" {
                assert_eq!(value, readme_url, "the README's S is where the shop listens");
                sh.set(name, &shop.url);
            } else {
                sh.set(name, value);
            }
            ran.push(None);
            continue;
        }
        if let Some(secs) = step.command.strip_prefix("sleep ") {
            let secs: u64 = secs.trim().parse().expect("sleep N");
            ran.push(Some(sh.run(step, STEP_LIMIT + Duration::from_secs(secs))));
            continue;
        }
        let (first, mut tries) = (Instant::now(), 0);
        let outcome = loop {
            tries += 1;
            let mut once = sh.run(step, STEP_LIMIT);
            (once.started, once.tries) = (first, tries);
            let verdict = script::documents(&once.output).and_then(|docs| {
                if let Some(error) = docs.iter().find(|d| d.get("error").is_some()) {
                    return Err(format!("an error answer: {error}"));
                }
                let (expected, every) = (step.expected(), step.every());
                if let Some(doc) = docs.iter().find(|d| !script::satisfies(d, &expected, every)) {
                    return Err(format!("the comment says {expected:?} (every: {every}): {doc}"));
                }
                check(step, &docs)
            });
            match verdict {
                Ok(()) => break Ok(once),
                Err(_) if step.reads() && first.elapsed() < PATIENCE => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(why) => break Err(why),
            }
        };
        match outcome {
            Ok(once) => ran.push(Some(once)),
            Err(why) => panic!(
                "README step `{}` (# {}): {why}\nthe shop's log ends:\n{}",
                step.command,
                step.comment,
                shop.log_tail()
            ),
        }
    }
    ran
}

/// The ordering walk-through's answers beyond its comments' pairs.
fn ordering_answers(step: &Step, docs: &[Value]) -> Result<(), String> {
    let doc = &docs[0];
    let c = step.command.as_str();
    if c.contains("/products?q=lamp&limit=3") {
        let products = doc["products"].as_array().ok_or("no products")?;
        let lamps = products
            .iter()
            .all(|p| p["name"].as_str().is_some_and(|n| n.to_ascii_lowercase().contains("lamp")));
        if products.is_empty() || products.len() > 3 || !lamps {
            return Err(format!("not 1 to 3 lamps: {doc}"));
        }
    } else if c.contains("-X POST \"$S/customers\"") {
        doc["api_key"].as_str().ok_or("no api_key")?;
    } else if c.starts_with("curl -s \"$S/cart\"") {
        doc["reserved_until_ms"].as_u64().ok_or("no reserved_until_ms")?;
        if !step.comment.contains("reserved_until_ms") {
            return Err("the comment no longer names reserved_until_ms".to_owned());
        }
    }
    Ok(())
}

/// The outage walk-through's answers beyond its comments' pairs. `orders` counts the orders
/// placed during the outage.
fn outage_answers(
    step: &Step,
    docs: &[Value],
    n: &Numbers,
    orders: &mut usize,
) -> Result<(), String> {
    let c = step.command.as_str();
    if c.starts_with("for ") {
        *orders = docs.len();
        if *orders < 2 {
            return Err(format!("{orders} orders placed"));
        }
    } else if c.starts_with("curl -s \"$S/admin/status\"") {
        let (breaker, payment) = (&docs[0]["breaker"], &docs[0]["payment"]);
        let failures = payment["failures"].as_u64().unwrap_or(0);
        // Payments under way when it opened may fail too: at least, not exactly, the number.
        if breaker["opened"] != 1 || failures < u64::from(n.opens_fresh) {
            return Err(format!(
                "the breaker opened {} times after {failures} failed calls (the README: the {} call)",
                breaker["opened"],
                ordinal(n.opens_fresh)
            ));
        }
        if payment["retries_abandoned"].as_u64().unwrap_or(0) == 0 {
            return Err(format!("no retry abandoned: {payment}"));
        }
    } else if c.starts_with("curl -s \"$S/admin/dlq\"") {
        let letters = docs[0]["dead_letters"].as_array().ok_or("no dead_letters")?;
        let all = letters.len() == *orders
            && letters
                .iter()
                .all(|l| l["subscription"] == "payment" && l["deliveries"] == n.max_deliveries);
        if !all {
            return Err(format!("not one dead letter per order ({orders}): {}", docs[0]));
        }
    } else if c.contains("/admin/dlq/replay") {
        if docs[0]["replayed"] != *orders {
            return Err(format!("replayed {} of {orders}", docs[0]["replayed"]));
        }
    } else if c.starts_with("curl -s \"$S/orders\"") {
        // Every order paid (the comment's `every`), the one before the outage too.
        let listed = docs[0]["orders"].as_array().ok_or("no orders")?;
        if listed.len() != *orders + 1 {
            return Err(format!("{} orders listed, {} placed", listed.len(), *orders + 1));
        }
        let mut charges: Vec<&str> =
            listed.iter().filter_map(|o| o["charge_id"].as_str()).collect();
        charges.sort_unstable();
        charges.dedup();
        if charges.len() != listed.len() {
            return Err(format!("not one charge per order: {}", docs[0]));
        }
    }
    Ok(())
}

/// The provider (fresh since the restart) made one charge per outage order, however often
/// their payments were tried: the test's own look at `/admin/status`, after the README's.
fn charged_once(sh: &Shell, orders: usize) {
    let look =
        Step { command: r#"curl -s "$S/admin/status" -H "$A""#.to_owned(), comment: String::new() };
    let status = script::documents(&sh.run(&look, STEP_LIMIT).output).unwrap();
    let provider = &status[0]["provider"];
    assert_eq!(provider["charges"], orders, "one charge per order: {provider}");
    assert!(provider["repeats"].as_u64().is_some(), "{provider}");
}

/// The outage's timings: the orders were taken fast; the dead letters came no earlier than
/// the README says and not much later; the replay came after the breaker's open wait.
fn outage_timings(steps: &[Step], ran: &[Option<Ran>], n: &Numbers) {
    let find = |prefix: &str| {
        let i = steps.iter().position(|s| s.command.starts_with(prefix)).unwrap();
        (&steps[i], ran[i].as_ref().unwrap())
    };
    let (_, placed) = find("for ");
    let taking = placed.ended - placed.started;
    assert!(taking < n.payment_timeout, "the orders took {taking:?}: not fast");

    let (dlq, letters) = find("curl -s \"$S/admin/dlq\"");
    let stated = n.dead_letter_after();
    let says = format!(
        "after {} s ({} deliveries, {} apart)",
        secs(stated),
        n.max_deliveries,
        n.redeliveries()
            .iter()
            .map(|d| format!("{} s", secs(*d)))
            .collect::<Vec<_>>()
            .join(" then ")
    );
    assert!(dlq.comment.contains(&says), "the dead-letter step should say {says:?}: {dlq:?}");
    // A letter cannot come before its order was placed plus the redelivery pauses: looked
    // for earlier than that, the list must not have been complete yet (looked for again).
    let first_look = letters.started - placed.started;
    assert!(
        first_look >= stated || letters.tries > 1,
        "dead letters already {first_look:?} after the first order, before the README's {stated:?}"
    );
    let late = letters.ended.saturating_duration_since(placed.ended);
    assert!(
        late <= stated + SLACK,
        "dead letters {late:?} after the last order, the README says {stated:?}"
    );

    let (sleep, _) = find("sleep ");
    let slept = Duration::from_secs(sleep.command["sleep ".len()..].trim().parse().unwrap());
    assert_eq!(slept, n.open_wait, "the README sleeps for the breaker's open wait");
    assert!(sleep.comment.contains("open wait"), "{sleep:?}");
}

/// The README's text from `heading` to the next heading of its level or above.
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme.find(heading).unwrap_or_else(|| panic!("README has no {heading:?}"));
    let rest = &readme[start + heading.len()..];
    let end = rest.find("\n## ").into_iter().chain(rest.find("\n### ")).min();
    &rest[..end.unwrap_or(rest.len())]
}

/// The text must contain `fragment` (built from the shop's settings).
fn says(text: &str, fragment: &str) {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(fragment), "the README should say {fragment:?} (the shop's settings)");
}

/// The default redelivery schedule, as the text before the restart tells it.
fn says_the_default_redelivery_schedule(text: &str, config: &toml::Table) {
    let n = Numbers::of(config);
    let pauses: Vec<String> = n.redeliveries().iter().map(|d| secs(*d)).collect();
    let (last, rest) = pauses.split_last().unwrap();
    says(
        text,
        &format!("delivered {} times, {} and {last} s apart", n.max_deliveries, rest.join(", ")),
    );
    says(text, &format!("{} s at the very least", secs(n.dead_letter_after())));
}

/// What the text after the outage block says of the payment pipeline.
fn says_what_the_payment_pipeline_does(text: &str, n: &Numbers) {
    let pauses: Vec<String> =
        n.retry_pauses.iter().map(|d| format!("{} ms", d.as_millis())).collect();
    says(
        text,
        &format!("up to {} attempts, {} apart", word(n.max_attempts), pauses.join(" then ")),
    );
    says(
        text,
        &format!(
            "retries for {} of payments plus {} a second",
            fraction(n.budget_ratio),
            word(n.budget_floor)
        ),
    );
    says(
        text,
        &format!(
            "opens once {} of its last {} calls failed, or half of at least {}",
            n.failure_count, n.window, n.minimum_calls
        ),
    );
    assert_eq!(n.failure_rate, 50.0, "the README says half");
    says(
        text,
        &format!(
            "after a success, {} failures of {} calls open it",
            n.opens_after_success,
            n.opens_after_success + 1
        ),
    );
    says(text, &format!("at the {} failed call", ordinal(n.opens_fresh)));
    says(text, &format!("past the payment's {} s deadline", secs(n.payment_timeout)));
    says(
        text,
        &format!("after its {} failed delivery it is a dead letter", ordinal(n.max_deliveries)),
    );
    says(text, &format!("stays open for {} s", secs(n.open_wait)));
    // The README's abandoned retries need an open wait past the payment's deadline.
    assert!(n.open_wait > n.payment_timeout);
}

/// The settings the README's numbers come from.
#[derive(Debug)]
struct Numbers {
    max_attempts: u32,
    retry_pauses: Vec<Duration>,
    budget_ratio: f64,
    budget_floor: u32,
    failure_count: u32,
    failure_rate: f64,
    minimum_calls: u32,
    window: u32,
    /// Failed calls that open a breaker whose window holds one success before them.
    opens_after_success: u32,
    /// Failed calls that open a breaker with an empty window.
    opens_fresh: u32,
    open_wait: Duration,
    payment_timeout: Duration,
    max_deliveries: u32,
    backoff: Vec<Duration>,
}

impl Numbers {
    fn of(config: &toml::Table) -> Self {
        let int = |path: &str| u32::try_from(at(config, path).as_integer().unwrap()).unwrap();
        let float = |path: &str| at(config, path).as_float().unwrap();
        assert_eq!(str_at(config, "payment.retry.backoff.type"), "exponential");
        assert_eq!(str_at(config, "payment.breaker.window.type"), "count");
        assert_eq!(str_at(config, "payment.breaker.open_wait.type"), "fixed");
        let max_attempts = int("payment.retry.max_attempts");
        let (base, factor) = (
            duration(at(config, "payment.retry.backoff.base")),
            float("payment.retry.backoff.factor"),
        );
        let retry_pauses = (0..max_attempts - 1)
            .map(|i| base.mul_f64(factor.powi(i32::try_from(i).unwrap())))
            .collect();
        let (failure_count, failure_rate, minimum_calls) = (
            int("payment.breaker.failure_count_threshold"),
            float("payment.breaker.failure_rate_threshold"),
            int("payment.breaker.minimum_calls"),
        );
        // The first failure that trips a threshold, with `successes` calls before.
        let opens = |successes: u32| {
            (1..=failure_count)
                .find(|&f| {
                    let calls = f + successes;
                    calls >= minimum_calls
                        && f64::from(f) * 100.0 >= failure_rate * f64::from(calls)
                })
                .unwrap_or(failure_count)
        };
        Self {
            max_attempts,
            retry_pauses,
            budget_ratio: float("payment.retry.budget.ratio"),
            budget_floor: int("payment.retry.budget.min_per_sec"),
            failure_count,
            failure_rate,
            minimum_calls,
            window: int("payment.breaker.window.size"),
            opens_after_success: opens(1),
            opens_fresh: opens(0),
            open_wait: duration(at(config, "payment.breaker.open_wait.wait")),
            payment_timeout: duration(at(config, "payment.timeout")),
            max_deliveries: int("queue.subscription.max_deliveries"),
            backoff: at(config, "queue.subscription.backoff")
                .as_array()
                .unwrap()
                .iter()
                .map(duration)
                .collect(),
        }
    }

    /// The pauses between an event's deliveries, up to its dead letter.
    fn redeliveries(&self) -> Vec<Duration> {
        (0..self.max_deliveries as usize - 1)
            .map(|i| self.backoff.get(i).or(self.backoff.last()).copied().unwrap_or_default())
            .collect()
    }

    /// The least time from an event's first delivery to its dead letter.
    fn dead_letter_after(&self) -> Duration {
        self.redeliveries().iter().sum()
    }
}

fn at<'a>(config: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut keys = path.split('.');
    let first = config.get(keys.next().unwrap());
    keys.fold(first, |v, k| v.and_then(|v| v.get(k))).unwrap_or_else(|| panic!("no setting {path}"))
}

fn str_at<'a>(config: &'a toml::Table, path: &str) -> &'a str {
    at(config, path).as_str().unwrap_or_else(|| panic!("{path} is not a string"))
}

/// A duration as `print-config` writes it: `"250ms"`, `"10s"`, `"2m"`, or milliseconds.
fn duration(value: &toml::Value) -> Duration {
    if let Some(ms) = value.as_integer() {
        return Duration::from_millis(u64::try_from(ms).unwrap());
    }
    let text = value.as_str().unwrap();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap();
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap();
    let unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => panic!("unit {other:?} in {text:?}"),
    };
    Duration::from_secs_f64(number * unit)
}

/// Seconds as the README writes them: `0.5`, `1`, `15.5`.
fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn word(n: u32) -> String {
    const WORDS: [&str; 11] =
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"];
    WORDS.get(n as usize).map_or_else(|| n.to_string(), |w| (*w).to_owned())
}

fn ordinal(n: u32) -> String {
    const WORDS: [&str; 11] = [
        "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
        "ninth", "tenth",
    ];
    WORDS.get(n as usize).map_or_else(|| format!("{n}th"), |w| (*w).to_owned())
}

fn fraction(ratio: f64) -> String {
    let words = [(0.5, "half"), (0.25, "a quarter"), (0.2, "a fifth"), (0.1, "a tenth")];
    words
        .iter()
        .find(|(r, _)| (r - ratio).abs() < 1e-9)
        .map_or_else(|| format!("{}%", ratio * 100.0), |(_, w)| (*w).to_owned())
}
