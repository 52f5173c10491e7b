//! `shop seed`: the schema if missing, then a catalogue, customers with an address each
//! and a short order history, all drawn from one seed: the same seed gives byte-identical
//! rows on any server (MariaDB, MySQL, vtgate), which is what makes a recorded session
//! replayable elsewhere.
//!
//! Seeded ids are 1..=N (products, customers; addresses share their customer's id,
//! orders are `4 * (customer - 1) + k`), far below the shop's generated ids, so a replay
//! of a session that created rows cannot collide with seeded ones.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use mysql_async::Conn;
use mysql_async::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::Error;
use crate::schema;
use crate::store::datetime;

/// Rows per multi-row INSERT: large enough that round trips do not dominate, small
/// enough to stay far below any max_allowed_packet (about 200 KB per statement).
const BATCH: usize = 500;
/// Seeded rows are dated from here (2025-01-01T00:00:00Z), a few minutes apart.
const BASE_SECS: u64 = 1_735_689_600;

pub const CATEGORIES: [&str; 12] = [
    "books", "garden", "kitchen", "toys", "sports", "music", "tools", "office", "outdoor",
    "health", "games", "travel",
];
const ADJECTIVES: [&str; 16] = [
    "red", "blue", "quiet", "rapid", "golden", "tiny", "giant", "smart", "classic", "modern",
    "vintage", "solid", "light", "dark", "bright", "soft",
];
const NOUNS: [&str; 16] = [
    "lamp", "chair", "kettle", "guitar", "ball", "drill", "notebook", "tent", "bottle", "puzzle",
    "backpack", "pan", "clock", "brush", "speaker", "blanket",
];
const FIRST: [&str; 12] = [
    "ada", "alan", "grace", "linus", "ken", "barbara", "edsger", "frances", "john", "margaret",
    "donald", "radia",
];
const LAST: [&str; 12] = [
    "lovelace", "turing", "hopper", "torvalds", "thompson", "liskov", "dijkstra", "allen",
    "backus", "hamilton", "knuth", "perlman",
];
const CITIES: [(&str, &str); 8] = [
    ("Lisbon", "PT"),
    ("Berlin", "DE"),
    ("Lyon", "FR"),
    ("Leeds", "GB"),
    ("Turin", "IT"),
    ("Ghent", "BE"),
    ("Porto", "PT"),
    ("Graz", "AT"),
];

#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub customers: u64,
    pub products: u64,
    pub seed: u64,
    /// Empty the tables first (otherwise seeding a non-empty database is refused).
    pub reset: bool,
    pub progress: bool,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            customers: 1000,
            products: 500,
            seed: 1,
            reset: false,
            progress: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedReport {
    pub products: u64,
    pub customers: u64,
    pub addresses: u64,
    pub orders: u64,
    pub order_items: u64,
    pub seconds: f64,
}

impl SeedReport {
    pub fn rows(&self) -> u64 {
        self.products + self.customers + self.addresses + self.orders + self.order_items
    }
}

/// Seeds the database at `url` (its default database, or vtgate's routing by table name
/// when the URL names none).
pub async fn seed(url: &str, cfg: &SeedConfig) -> Result<SeedReport, Error> {
    if cfg.products == 0 {
        return Err(Error::invalid("--products must be at least 1"));
    }
    let start = Instant::now();
    let mut conn = Conn::new(crate::store::opts(url, 1)?)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    ensure_schema(&mut conn).await?;
    prepare_tables(&mut conn, cfg.reset).await?;
    let bar = progress_bar(cfg);
    // One generator for everything, drawn in a fixed order: the same seed gives the
    // same rows.
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let prices = seed_products(&mut conn, cfg, &mut rng, &bar).await?;
    let (orders, order_items) = seed_customers(&mut conn, cfg, &mut rng, &prices, &bar).await?;
    bar.finish_and_clear();
    let _ = conn.disconnect().await;
    Ok(SeedReport {
        products: cfg.products,
        customers: cfg.customers,
        addresses: cfg.customers,
        orders,
        order_items,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Empties the shop's tables with `reset`; without it, refuses to seed over rows.
async fn prepare_tables(conn: &mut Conn, reset: bool) -> Result<(), Error> {
    if reset {
        for table in schema::TABLES.iter().rev() {
            conn.query_drop(format!("TRUNCATE TABLE {table}")).await?;
        }
        return Ok(());
    }
    for table in ["product", "customer"] {
        let any: Option<u8> = conn
            .query_first(format!("SELECT 1 FROM {table} LIMIT 1"))
            .await?;
        if any.is_some() {
            return Err(Error::Conflict(format!(
                "table {table} already has rows: pass --reset to empty the shop's tables first"
            )));
        }
    }
    Ok(())
}

fn progress_bar(cfg: &SeedConfig) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cfg.products + cfg.customers);
    bar.set_style(
        ProgressStyle::with_template("seeding {bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Inserts the products; returns their prices (index = id - 1) for the order history.
async fn seed_products(
    conn: &mut Conn,
    cfg: &SeedConfig,
    rng: &mut ChaCha8Rng,
    bar: &ProgressBar,
) -> Result<Vec<u32>, Error> {
    let mut prices = Vec::with_capacity(usize::try_from(cfg.products).unwrap_or(0));
    let mut rows = Vec::with_capacity(BATCH);
    for id in 1..=cfg.products {
        let category = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
        let name = format!(
            "{} {} {}",
            ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
            NOUNS[rng.random_range(0..NOUNS.len())],
            rng.random_range(100..1000)
        );
        let price: u32 = rng.random_range(199..=99_999);
        let stock: u32 = rng.random_range(500..=5000);
        prices.push(price);
        rows.push(format!(
            "({id},{},{},{},{},{price},{stock},{})",
            quote(&format!("SKU-{id:08}")),
            quote(&name),
            quote(&format!(
                "A {name} for {category}, seeded with {}.",
                cfg.seed
            )),
            quote(category),
            quote(&datetime(BASE_SECS + id * 60, 0))
        ));
        // A full batch, or the last product.
        if rows.len() == BATCH || id == cfg.products {
            let n = rows.len() as u64;
            insert(
                conn,
                "product (product_id, sku, name, description, category, price_cents, stock, created_at)",
                &mut rows,
            )
            .await?;
            bar.inc(n);
        }
    }
    Ok(prices)
}

/// Rows of customers and what they own, inserted a batch of customers at a time.
#[derive(Default)]
struct CustomerBatch {
    customers: Vec<String>,
    addresses: Vec<String>,
    orders: Vec<String>,
    items: Vec<String>,
}

/// Inserts the customers, one address each, 0-3 past orders of 1-3 items; returns the
/// numbers of orders and order items.
async fn seed_customers(
    conn: &mut Conn,
    cfg: &SeedConfig,
    rng: &mut ChaCha8Rng,
    prices: &[u32],
    bar: &ProgressBar,
) -> Result<(u64, u64), Error> {
    let mut batch = CustomerBatch::default();
    let (mut orders, mut items) = (0, 0);
    for id in 1..=cfg.customers {
        customer_rows(&mut batch, rng, id, prices);
        // A full batch, or the last customer.
        if batch.customers.len() == BATCH || id == cfg.customers {
            orders += batch.orders.len() as u64;
            items += batch.items.len() as u64;
            let n = batch.customers.len() as u64;
            flush_customers(conn, &mut batch).await?;
            bar.inc(n);
        }
    }
    Ok((orders, items))
}

/// Customer `id`'s rows, added to `batch`.
fn customer_rows(batch: &mut CustomerBatch, rng: &mut ChaCha8Rng, id: u64, prices: &[u32]) {
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let created = BASE_SECS + id * 300;
    batch.customers.push(format!(
        "({id},{},{},{})",
        quote(&format!("{first}.{last}.{id}@example.com")),
        quote(&format!("{} {}", capitalise(first), capitalise(last))),
        quote(&datetime(created, 0))
    ));
    let (city, country) = CITIES[rng.random_range(0..CITIES.len())];
    batch.addresses.push(format!(
        "({id},{id},{},'',{},{},{},{})",
        quote(&format!(
            "{} {} Street",
            rng.random_range(1..200),
            capitalise(last)
        )),
        quote(city),
        quote(&format!("{:05}", rng.random_range(1000..99_999))),
        quote(country),
        quote(&datetime(created, 0))
    ));
    for k in 0..rng.random_range(0..=3u64) {
        let order_id = 4 * (id - 1) + k + 1;
        let mut total: u64 = 0;
        let mut picked: Vec<u64> = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let product = popular(rng, prices.len() as u64);
            if picked.contains(&product) {
                continue;
            }
            picked.push(product);
            let qty: u32 = rng.random_range(1..=3);
            let price = prices[usize::try_from(product - 1).unwrap_or(0)];
            total += u64::from(qty) * u64::from(price);
            batch
                .items
                .push(format!("({order_id},{id},{product},{qty},{price})"));
        }
        batch.orders.push(format!(
            "({order_id},{id},'delivered',{total},{})",
            quote(&datetime(created + 86_400 * (k + 1), 0))
        ));
    }
}

/// Creates the shop's tables where they are missing. (On a Vitess cluster the cluster
/// script has created them per keyspace already, so nothing happens.)
async fn ensure_schema(conn: &mut Conn) -> Result<(), Error> {
    for (table, create) in schema::TABLES.iter().zip(schema::statements()) {
        if conn
            .query_drop(format!("SELECT 1 FROM {table} LIMIT 0"))
            .await
            .is_err()
        {
            conn.query_drop(create).await?;
        }
    }
    Ok(())
}

async fn flush_customers(conn: &mut Conn, batch: &mut CustomerBatch) -> Result<(), Error> {
    let CustomerBatch {
        customers,
        addresses,
        orders,
        items,
    } = batch;
    insert(
        conn,
        "customer (customer_id, email, name, created_at)",
        customers,
    )
    .await?;
    insert(
        conn,
        "address (address_id, customer_id, line1, line2, city, postcode, country, created_at)",
        addresses,
    )
    .await?;
    for chunk in orders.chunks(BATCH) {
        let mut v = chunk.to_vec();
        insert(
            conn,
            "corder (order_id, customer_id, status, total_cents, created_at)",
            &mut v,
        )
        .await?;
    }
    orders.clear();
    for chunk in items.chunks(BATCH) {
        let mut v = chunk.to_vec();
        insert(
            conn,
            "order_item (order_id, customer_id, product_id, qty, price_cents)",
            &mut v,
        )
        .await?;
    }
    items.clear();
    Ok(())
}

async fn insert(conn: &mut Conn, into: &str, rows: &mut Vec<String>) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!("INSERT INTO {into} VALUES {}", rows.join(","));
    rows.clear();
    conn.query_drop(sql).await?;
    Ok(())
}

/// A product id skewed towards the first ones (popular products sell more): the
/// square of a uniform draw puts half the picks in the first quarter of the catalogue.
pub fn popular(rng: &mut impl Rng, products: u64) -> u64 {
    let u: f64 = rng.random();
    let id = (u * u * products as f64) as u64 + 1;
    id.min(products)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A SQL string literal (the generator only makes plain text, but quote it properly).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
