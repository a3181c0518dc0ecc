//! The storefront and the operator page in a real browser: Debian's headless chromium driven
//! through WebDriver (chromedriver), against the real shop binary on 127.0.0.1.
//!
//! - A full purchase: sign in, search, open a product, add it to the cart, check out with the
//!   test card, and watch the order page until it says paid.
//! - An outage seen from the operator page: the provider switched off from the page, orders
//!   placed in the storefront, the payment breaker shown open with their events in the
//!   dead-letter queue; then the faults healed and the replay button pressed until every
//!   order is paid, no dead letter is left and the breaker is closed again.
//!
//! Screenshots of each page go to `target/browser-screenshots/` (the README's copies are in
//! `reference-shop/docs/`). Without chromium and chromedriver the tests say they are skipped,
//! unless `CI=true` (`.ci/chromium.sh` installs them there). Every wait is a WebDriver wait
//! with a limit; nothing sleeps.

mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use process::Scratch;
use serde_json::json;

const TOKEN: &str = "browser-test-token";
/// How long a page may take to show what the test waits for (a debug build on a busy
/// machine; the payment goes through the event bus).
const PAGE: Duration = Duration::from_secs(30);
/// How long the outage test may take to see every order paid after the faults heal.
const RECOVERY: Duration = Duration::from_secs(90);
/// How long a round of the outage test waits for an order's payment after a replay.
const ROUND: Duration = Duration::from_secs(10);

/// `name` on the `PATH`, if there.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or `None` (the test is skipped; under `CI=true` it fails).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    match (chromium, on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ if levee::core::testing::in_ci() => {
            panic!(
                "CI is set but chromium or chromedriver is missing (.ci/chromium.sh installs them)"
            )
        }
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the browser tests need chromium and chromedriver (Debian: apt-get \
                 install chromium chromium-driver)"
            );
            None
        }
    }
}

/// The port of the chromedriver `child`, from the line it prints when it is ready (30 s at
/// most).
fn driver_port(child: &mut Child) -> u16 {
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let port = lines.by_ref().find_map(|line| {
            let rest = line.strip_prefix("ChromeDriver was started successfully on port ")?;
            rest.trim_end_matches('.').parse::<u16>().ok()
        });
        let _ = tx.send(port);
        // Keep reading, so that chromedriver never writes to a closed pipe.
        lines.for_each(drop);
    });
    match rx.recv_timeout(PAGE) {
        Ok(Some(port)) => port,
        other => panic!("chromedriver did not say it started: {other:?}"),
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shop, chromedriver and a browser session, all stopped when dropped.
struct Session {
    browser: Client,
    shop: String,
    _shop: Killed,
    _driver: Killed,
    _dir: Scratch,
}

impl Session {
    /// Starts the shop (200 products; a payment event dead-lettered after two deliveries 100
    /// ms apart; the breaker open for 2 s), chromedriver on a free port, and headless
    /// chromium.
    async fn start(name: &str, chromium: &Path, driver: &Path) -> Self {
        let dir = Scratch::new(&format!("browser-{name}"));
        let config = dir.0.join("shop.toml");
        std::fs::write(&config, "[queue.subscription]\nbackoff = [\"100ms\"]\n").unwrap();
        let mut shop = process::binary()
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("SHOP_SERVER__ADDR", "127.0.0.1:0")
            .env("SHOP_SERVER__ADMIN_TOKEN", TOKEN)
            .env("SHOP_STORAGE__DATA_DIR", dir.0.join("data"))
            .env("SHOP_STORAGE__SEED_PRODUCTS", "200")
            .env("SHOP_QUEUE__SUBSCRIPTION__MAX_DELIVERIES", "2")
            .env("SHOP_PAYMENT__BREAKER__OPEN_WAIT__WAIT", "2s")
            .env("SHOP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let url = process::announced_url(&mut shop, Duration::from_secs(60));
        let shop = Killed(shop);
        let url = url.unwrap_or_else(|line| panic!("the shop did not start: {line:?}"));

        // chromedriver on a port the OS picks, named in the line that says it is ready.
        let mut driver = Killed(
            Command::new(driver)
                .args(["--port=0", "--allowed-ips=127.0.0.1"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let port = driver_port(&mut driver.0);
        let profile = dir.0.join("chromium");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1200,900", format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let webdriver = format!("http://127.0.0.1:{port}");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        Self { browser, shop: url, _shop: shop, _driver: driver, _dir: dir }
    }

    /// Opens `path` on the shop.
    async fn open(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.shop)).await.unwrap();
    }

    /// The element `css` matches, waiting for it [`PAGE`] at most.
    async fn wait_for(&self, css: &str) -> Element {
        match self.browser.wait().at_most(PAGE).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                let url = self.browser.current_url().await.map(|u| u.to_string());
                let source = self.browser.source().await.unwrap_or_default();
                panic!("{css} not shown within {PAGE:?} ({e}) on {url:?}:\n{source}");
            }
        }
    }

    /// Types `text` into the field `css` (emptied first).
    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.unwrap()
    }

    /// The page now, as `target/browser-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in to the storefront as a new customer called `name`.
    async fn sign_in(&self, name: &str) {
        self.open("/shop/account").await;
        self.fill("#name", name).await;
        self.click("#sign-in").await;
        self.wait_for("#search").await;
        self.open("/shop/account").await;
        assert!(self.text("#signed-in").await.contains(name));
    }

    /// Puts `quantity` units of product `id` in the cart, from its page; the cart page shows.
    async fn add_to_cart(&self, id: &str, quantity: u32) {
        self.open(&format!("/shop/products/{id}")).await;
        self.fill("#quantity", &quantity.to_string()).await;
        self.click("#add-to-cart").await;
        self.wait_for("#cart").await;
    }

    /// Checks out with the test card the form offers; the order's id.
    async fn check_out(&self) -> String {
        self.click("#checkout").await;
        self.wait_for(".order-status").await;
        let url = self.browser.current_url().await.unwrap();
        url.path().strip_prefix("/shop/orders/").expect("the order page").to_owned()
    }

    async fn close(self) {
        self.browser.clone().close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_buys_in_the_browser_and_sees_the_order_paid() {
    let Some((chromium, driver)) = browser() else { return };
    let s = Session::start("purchase", &chromium, &driver).await;

    // Pages that need a customer send a visitor to sign in first.
    s.open("/shop/cart").await;
    s.wait_for("#name").await;
    s.sign_in("Ada <b>Lovelace</b>").await;
    // The name is shown as text, never as markup.
    assert_eq!(s.text("#signed-in").await, "Signed in as Ada <b>Lovelace</b>.");

    // Browse, then search: every product listed matches the words.
    s.open("/shop").await;
    assert_eq!(s.browser.find_all(Locator::Css("tr.product")).await.unwrap().len(), 20);
    s.fill("#search", "tote").await;
    s.click(".search button").await;
    let searched = format!("{}/shop?q=tote", s.shop).parse().unwrap();
    s.browser.wait().at_most(PAGE).for_url(&searched).await.unwrap();
    let found = s.browser.find_all(Locator::Css("tr.product a")).await.unwrap();
    assert!(!found.is_empty(), "no tote among 200 products");
    for link in &found {
        let name = link.text().await.unwrap();
        assert!(name.to_lowercase().contains("tote"), "{name} does not match `tote`");
    }
    s.screenshot("shop-search").await;

    // The product page, then the cart with two units of it.
    let name = found[0].text().await.unwrap();
    found[0].click().await.unwrap();
    assert_eq!(s.text("#product-name").await, name);
    s.screenshot("shop-product").await;
    let id = s.browser.current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
    s.add_to_cart(&id, 1).await;
    s.add_to_cart(&id, 1).await; // adds to the line, not replaces it
    let lines = s.browser.find_all(Locator::Css("#cart tr.line")).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].text().await.unwrap().contains(&name));
    let units = lines[0].find(Locator::Css("td.num")).await.unwrap().text().await.unwrap();
    assert_eq!(units, "2");
    let total = s.text("#cart-total").await;
    s.screenshot("shop-cart").await;

    // Checkout with the test card: the order page reloads itself until the payment is in.
    let order = s.check_out().await;
    s.wait_for(".order-status[data-status='paid']").await;
    assert_eq!(s.text("#order-total").await, total);
    s.screenshot("shop-order-paid").await;

    // The cart became the order; the order list shows it paid.
    s.open("/shop/cart").await;
    s.wait_for("#empty-cart").await;
    s.open("/shop/orders").await;
    let row = s.text("#orders tbody tr").await;
    assert!(row.contains(&format!("#{order}")) && row.contains("paid"), "{row}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_shows_the_breaker_open_in_an_outage_and_replays_dead_letters() {
    let Some((chromium, driver)) = browser() else { return };
    let s = Session::start("outage", &chromium, &driver).await;

    // Tall enough for the whole operator page in its screenshots.
    s.browser.set_window_size(1200, 1400).await.unwrap();
    // The operator page asks for the admin token, and refuses a wrong one.
    s.open("/ops").await;
    s.fill("#token", "not-the-token").await;
    s.click("#sign-in").await;
    s.wait_for("#refused").await;
    s.fill("#token", TOKEN).await;
    s.click("#sign-in").await;
    assert_eq!(s.text("#breaker-state").await, "closed");
    assert_eq!(s.text("#provider-state").await, "up");

    // The provider goes down, switched from the page.
    s.click("#provider-down").await;
    s.wait_for("#faults-changed").await;
    assert_eq!(s.text("#provider-state").await, "down");

    // Two orders in the storefront: their payments fail, retried, until the breaker opens
    // and their events are dead letters.
    s.sign_in("Grace").await;
    let mut orders = Vec::new();
    for product in ["1", "2"] {
        s.add_to_cart(product, 1).await;
        orders.push(s.check_out().await);
    }
    s.wait_for("#payment-error").await;
    s.open("/ops?watch=true").await;
    s.wait_for("#breaker-state[data-state='open']").await;
    s.wait_for("#dlq-depth[data-depth='2']").await;
    let opened: u64 = s.text("#breaker-opened").await.parse().unwrap();
    assert!(opened >= 1);
    assert_eq!(s.browser.find_all(Locator::Css("#dead-letters tbody tr")).await.unwrap().len(), 2);
    s.screenshot("ops-breaker-open").await;

    // Healed. The breaker still refuses until its 2 s are over, so a replay may come back
    // as dead letters: replay until every order is paid (each round waits for the payment
    // on the order page, at most ROUND).
    s.open("/ops").await;
    s.click("#heal").await;
    s.wait_for("#faults-changed").await;
    assert_eq!(s.text("#provider-state").await, "up");
    let started = Instant::now();
    let mut replays = 0;
    for order in &orders {
        loop {
            assert!(started.elapsed() < RECOVERY, "order {order} not paid in {RECOVERY:?}");
            s.open("/ops").await;
            let depth = s.wait_for("#dlq-depth").await.attr("data-depth").await.unwrap();
            if depth.as_deref() != Some("0") {
                s.click("#replay").await;
                let said = s.text("#replayed").await;
                assert!(said.starts_with("Replayed ") && !said.starts_with("Replayed 0"), "{said}");
                replays += 1;
            }
            s.open(&format!("/shop/orders/{order}")).await;
            let paid = s
                .browser
                .wait()
                .at_most(ROUND)
                .for_element(Locator::Css(".order-status:not([data-status='awaiting_payment'])"))
                .await;
            if paid.is_ok() {
                assert_eq!(s.text(".order-status").await, "paid", "order {order}");
                break;
            }
        }
    }
    assert!(replays >= 1, "the orders were paid without the replay button");

    // Nothing left in the dead-letter queue, and the breaker closed after its probe.
    s.open("/ops?watch=true").await;
    s.wait_for("#breaker-state[data-state='closed']").await;
    s.wait_for("#no-dead-letters").await;
    assert_eq!(s.text("#dlq-depth").await, "0");
    s.screenshot("ops-recovered").await;
    s.close().await;
}
