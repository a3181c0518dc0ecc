//! Turns an [`Operation`] into an HTTP request against the shop, as one of the customers the
//! run created first, and reports its [`Outcome`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use levee::core::random::below;
use serde_json::{Value, json};

use super::operation::Operation;
use super::progress::Bar;
use super::scenario::Scenario;
use super::stats::Outcome;

/// Customers could not be created before the load.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A request failed outright (the shop is down or unreachable).
    #[error("creating customers: {0}")]
    Http(#[from] reqwest::Error),
    /// The shop answered something else than a new customer.
    #[error("creating customers: the shop answered {status}: {body}")]
    Refused {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// Sends operations as the run's customers.
#[derive(Debug)]
pub(crate) struct Driver {
    client: reqwest::Client,
    base: String,
    keys: Vec<String>,
    products: u64,
    hot_percent: u64,
    declined_percent: u64,
    /// A per-run prefix for idempotency keys and names, so runs never collide.
    run: u64,
    next: AtomicU64,
    /// Ids of the orders the shop acknowledged (201), to check afterwards that none is lost.
    placed: parking_lot::Mutex<Vec<i64>>,
}

const SEARCH_WORDS: [&str; 6] = ["lamp", "oak", "mug", "wool", "steel", "tent"];
/// Customers created at once while seeding.
const SEED_CONCURRENCY: usize = 8;
/// Tries per customer when the edge answers 429 (it says when to come back).
const SEED_TRIES: u32 = 20;

impl Driver {
    /// Creates the scenario's customers (with a progress bar), then is ready to send.
    pub(crate) async fn seed(
        client: reqwest::Client,
        base: &str,
        scenario: &Scenario,
        bar: &Bar,
    ) -> Result<Self, SeedError> {
        let run = levee::core::random::next_u64() & 0xffff_ffff;
        let keys: Vec<Result<String, SeedError>> = futures::stream::iter(0..scenario.customers())
            .map(|i| {
                let (client, name) = (&client, format!("loadgen-{run:x}-{i}"));
                async move {
                    let key = create_customer(client, base, &name).await;
                    bar.inc(1);
                    key
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .collect()
            .await;
        let keys = keys.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            client,
            base: base.to_owned(),
            keys,
            products: scenario.products(),
            hot_percent: scenario.hot_percent(),
            declined_percent: scenario.declined_percent(),
            run,
            next: AtomicU64::new(0),
            placed: parking_lot::Mutex::new(Vec::new()),
        })
    }

    fn product(&self) -> u64 {
        if below(100) < self.hot_percent { 1 } else { 1 + below(self.products) }
    }

    fn card(&self) -> &'static str {
        if below(100) < self.declined_percent { "tok_declined" } else { "tok_visa" }
    }

    /// The first (for [`Operation::Checkout`], the placement) request of `op`, as the
    /// customer of API key `key`.
    fn request(&self, op: Operation, key: &str) -> reqwest::RequestBuilder {
        let base = &self.base;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match op {
            Operation::CreateCustomer => self
                .client
                .post(format!("{base}/customers"))
                .json(&json!({ "name": format!("loadgen-{:x}-c{n}", self.run) })),
            Operation::GetProduct => self
                .client
                .get(format!("{base}/products/{}", self.product()))
                .header("x-api-key", key),
            Operation::Search => {
                let q = SEARCH_WORDS[below(SEARCH_WORDS.len() as u64) as usize];
                self.client.get(format!("{base}/products?q={q}&limit=10")).header("x-api-key", key)
            }
            Operation::AddToCart => self
                .client
                .post(format!("{base}/cart/items"))
                .header("x-api-key", key)
                .json(&json!({ "product_id": self.product(), "quantity": 1 + below(3) })),
            Operation::PlaceOrder | Operation::Checkout => {
                let items = json!([{ "product_id": self.product(), "quantity": 1 }]);
                let body = if op == Operation::PlaceOrder {
                    json!({ "items": items, "card": self.card() })
                } else {
                    json!({ "items": items })
                };
                self.client
                    .post(format!("{base}/orders"))
                    .header("x-api-key", key)
                    .header("idempotency-key", format!("loadgen-{:x}-{n}", self.run))
                    .json(&body)
            }
            Operation::ListOrders => {
                self.client.get(format!("{base}/orders?limit=5")).header("x-api-key", key)
            }
        }
    }

    /// Sends one operation and reads its whole answer; a checkout is its placement and, once
    /// placed, the checkout itself, whose status is the operation's.
    pub(crate) async fn send(&self, op: Operation) -> Outcome {
        let key = &self.keys[below(self.keys.len() as u64) as usize];
        let outcome = async {
            let response = self.request(op, key).send().await?;
            let status = response.status().as_u16();
            let body = response.bytes().await?;
            let placed = matches!(op, Operation::PlaceOrder | Operation::Checkout) && status == 201;
            let id = if placed { self.record_placed(&body) } else { None };
            match id {
                Some(id) if op == Operation::Checkout => {
                    let response = self
                        .client
                        .post(format!("{}/orders/{id}/checkout", self.base))
                        .header("x-api-key", key)
                        .json(&json!({ "card": self.card() }))
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    response.bytes().await?;
                    Ok(status)
                }
                _ => Ok::<_, reqwest::Error>(status),
            }
        }
        .await;
        match outcome {
            Ok(status) => Outcome::Answered(status),
            Err(e) if e.is_timeout() => Outcome::TimedOut,
            Err(_) => Outcome::Failed,
        }
    }
}

impl Driver {
    /// Remembers the id of a new order from its 201 answer and returns it (an answer without
    /// one is left out: the loss check then misses it, it never invents one).
    fn record_placed(&self, body: &[u8]) -> Option<i64> {
        let id = serde_json::from_slice::<Value>(body).ok().and_then(|v| v["id"].as_i64());
        if let Some(id) = id {
            self.placed.lock().push(id);
        }
        id
    }

    /// Ids of the orders placed so far (201 answers), in the order the answers came.
    pub(crate) fn placed(&self) -> Vec<i64> {
        self.placed.lock().clone()
    }
}

async fn create_customer(
    client: &reqwest::Client,
    base: &str,
    name: &str,
) -> Result<String, SeedError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let response =
            client.post(format!("{base}/customers")).json(&json!({ "name": name })).send().await?;
        let status = response.status().as_u16();
        if status == 429 && tries < SEED_TRIES {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        let text = response.text().await?;
        let key = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["api_key"].as_str().map(str::to_owned));
        return match key {
            Some(key) if status == 201 => Ok(key),
            _ => Err(SeedError::Refused { status, body: text.chars().take(200).collect() }),
        };
    }
}
