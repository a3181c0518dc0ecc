//! First-start data: a catalog of products with stock, and two demo customers.

use sqlx::{AssertSqlSafe, Row, Transaction};

use super::{Backend, Store, StoreError, insert_customer};

/// API keys of the demo customers created on first start (the README uses them).
pub const DEMO_CUSTOMERS: [(&str, &str); 2] = [("alice", "demo-alice"), ("bob", "demo-bob")];

const ADJECTIVES: [&str; 15] = [
    "Classic",
    "Compact",
    "Deluxe",
    "Everyday",
    "Foldable",
    "Handmade",
    "Heavy-duty",
    "Light",
    "Modern",
    "Portable",
    "Rustic",
    "Smart",
    "Sturdy",
    "Vintage",
    "Waterproof",
];
const MATERIALS: [&str; 10] =
    ["Bamboo", "Canvas", "Ceramic", "Copper", "Cotton", "Glass", "Leather", "Oak", "Steel", "Wool"];
const ITEMS: [(&str, &str); 20] = [
    ("Backpack", "bags"),
    ("Tote", "bags"),
    ("Wallet", "bags"),
    ("Mug", "kitchen"),
    ("Teapot", "kitchen"),
    ("Cutting Board", "kitchen"),
    ("Bowl", "kitchen"),
    ("Lamp", "home"),
    ("Chair", "home"),
    ("Shelf", "home"),
    ("Blanket", "home"),
    ("Vase", "home"),
    ("Notebook", "office"),
    ("Pen", "office"),
    ("Desk Organizer", "office"),
    ("Watch", "accessories"),
    ("Scarf", "accessories"),
    ("Sunglasses", "accessories"),
    ("Water Bottle", "outdoor"),
    ("Tent", "outdoor"),
];

/// Rows per INSERT statement (7 parameters each, well under both databases' limits).
const BATCH: u32 = 200;

/// The advisory lock that makes one of several shops starting at once on one PostgreSQL
/// database seed it (the others wait, then find it seeded). Distinct from sqlx's migration
/// lock, which serialises the migrations before this.
const SEED_LOCK: i64 = 0x6c65_7665_6553_6565; // "leveeSee"

impl Store {
    /// Seeds the demo customers and `products` products into an empty database, in one
    /// transaction. Shops started together on one PostgreSQL database seed it once: the
    /// transaction takes an advisory lock first, so the second shop reads the counts after
    /// the first committed (SQLite's write transaction is exclusive already).
    pub(super) async fn seed_if_empty(&self, products: u32) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SEED_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM customers")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if existing == 0 {
            for (name, key) in DEMO_CUSTOMERS {
                insert_customer(&mut *tx, name, key, 0).await?;
            }
        }
        let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM products")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if existing == 0 && products > 0 {
            tracing::info!(products, "seeding the catalog");
            insert_products(&mut tx, products).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_products(
    tx: &mut Transaction<'static, sqlx::Any>,
    products: u32,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < products {
        let end = (start + BATCH).min(products);
        let mut sql = String::from(
            "INSERT INTO products (sku, name, category, price_cents, stock, reserved, updated_at_ms) VALUES ",
        );
        for n in 0..(end - start) as usize {
            let p = n * 5;
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, 0, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                (end - start) as usize * 5 + 1
            ));
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for i in start..end {
            let p = product(i);
            query = query.bind(p.0).bind(p.1).bind(p.2).bind(p.3).bind(p.4);
        }
        query.bind(0_i64).execute(&mut **tx).await?;
        start = end;
    }
    Ok(())
}

/// The `i`-th seeded product: (sku, name, category, price in cents, stock). Deterministic, so
/// every fresh shop has the same catalog.
fn product(i: u32) -> (String, String, String, i64, i64) {
    let combos = (ADJECTIVES.len() * MATERIALS.len() * ITEMS.len()) as u32;
    let k = i % combos;
    let adjective = ADJECTIVES[(k % 15) as usize];
    let material = MATERIALS[(k / 15 % 10) as usize];
    let (item, category) = ITEMS[(k / 150 % 20) as usize];
    let edition = i / combos;
    let name = if edition == 0 {
        format!("{adjective} {material} {item}")
    } else {
        format!("{adjective} {material} {item} {}", edition + 1)
    };
    // A fixed mixing function (splitmix64) for prices and stock.
    let mut z = u64::from(i).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let price = 299 + (z % 19_700) as i64 * 5;
    let stock = 20 + ((z >> 20) % 481) as i64;
    (format!("SKU-{:05}", i + 1), name, category.to_owned(), price, stock)
}

#[cfg(test)]
mod tests {
    #[test]
    fn products_are_distinct_and_priced() {
        let mut names = std::collections::HashSet::new();
        for i in 0..3000 {
            let p = super::product(i);
            assert!(names.insert(p.1.clone()), "duplicate {}", p.1);
            assert!(p.3 > 0 && p.4 >= 20);
        }
    }
}
