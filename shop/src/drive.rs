//! `shop drive`: virtual users (one tokio task each) running shopping scenarios against
//! `shop serve`, closed loop (each user starts its next scenario when the last ends) or
//! open loop at a fixed scenario rate, with latencies measured from the *scheduled*
//! start so a slow server cannot hide its queueing (no coordinated omission).
//!
//! At the end: one line per scenario and per route with count, errors and p50/p95/p99.
//! `--ramp` repeats the run with more users per step until throughput stops rising: the
//! point where the database has become the bottleneck.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{Value, json};

use crate::seed::{CATEGORIES, popular};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Browse,
    Search,
    Signup,
    Cart,
    Checkout,
    History,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Browse,
        Scenario::Search,
        Scenario::Signup,
        Scenario::Cart,
        Scenario::Checkout,
        Scenario::History,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Browse => "browse",
            Scenario::Search => "search",
            Scenario::Signup => "signup",
            Scenario::Cart => "cart",
            Scenario::Checkout => "checkout",
            Scenario::History => "history",
        }
    }
}

/// Scenario weights, e.g. `browse=50,search=20,signup=5,cart=15,checkout=10`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(Vec<(Scenario, u32)>);

impl Default for Mix {
    fn default() -> Self {
        Mix(vec![
            (Scenario::Browse, 50),
            (Scenario::Search, 20),
            (Scenario::Signup, 5),
            (Scenario::Cart, 15),
            (Scenario::Checkout, 10),
        ])
    }
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected scenario=weight"))?;
            let scenario = Scenario::ALL
                .into_iter()
                .find(|sc| sc.name() == name.trim())
                .ok_or_else(|| {
                    format!("unknown scenario {name:?} (browse, search, signup, cart, checkout, history)")
                })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
            mix.push((scenario, weight));
        }
        if mix.iter().map(|(_, w)| w).sum::<u32>() == 0 {
            return Err("the mix needs at least one scenario with a weight above 0".into());
        }
        Ok(Mix(mix))
    }
}

impl Mix {
    fn pick(&self, rng: &mut impl Rng) -> Scenario {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut r = rng.random_range(0..total);
        for (sc, w) in &self.0 {
            if r < *w {
                return *sc;
            }
            r -= w;
        }
        self.0[0].0
    }
}

#[derive(Debug, Clone)]
pub struct DriveConfig {
    /// Base URL of `shop serve`, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub users: usize,
    pub duration: Duration,
    /// Scenarios started per second across all users (open loop); closed loop if None.
    pub rate: Option<f64>,
    pub mix: Mix,
    pub seed: u64,
    pub progress: bool,
}

/// Latency summary of one scenario or route, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub name: String,
    pub count: u64,
    pub errors: u64,
    /// 409s the scenario expects now and then (stock ran out, cart emptied elsewhere).
    pub conflicts: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DriveReport {
    pub users: usize,
    pub rate: Option<f64>,
    pub seconds: f64,
    pub scenarios: Vec<Line>,
    pub routes: Vec<Line>,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    /// Open loop only: scheduled starts dropped because every user was busy and the
    /// backlog was full (the server could not keep up with the rate asked for).
    pub missed_starts: u64,
    /// A few error messages, to say *what* failed.
    pub sample_errors: Vec<String>,
}

struct Stat {
    hist: Histogram<u64>,
    errors: u64,
    conflicts: u64,
}

impl Stat {
    fn new() -> Self {
        Stat {
            hist: histogram(),
            errors: 0,
            conflicts: 0,
        }
    }

    fn line(&self, name: &str) -> Line {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1e3;
        Line {
            name: name.to_string(),
            count: self.hist.len(),
            errors: self.errors,
            conflicts: self.conflicts,
            p50_ms: q(0.50),
            p95_ms: q(0.95),
            p99_ms: q(0.99),
        }
    }
}

/// 1 µs .. 1 h at 3 significant digits (about 100 KB): the bounds are constants that
/// hdrhistogram accepts, so this cannot fail.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// At most this many messages are kept for the report.
const SAMPLE_ERRORS: usize = 10;

#[derive(Default)]
struct Stats {
    scenarios: BTreeMap<&'static str, Stat>,
    routes: BTreeMap<&'static str, Stat>,
    sample_errors: Vec<String>,
}

impl Stats {
    fn route(&mut self, route: &'static str, elapsed: Duration, outcome: Outcome) {
        let s = self.routes.entry(route).or_insert_with(Stat::new);
        s.hist.saturating_record(micros(elapsed));
        match outcome {
            Outcome::Ok => {}
            Outcome::Conflict => s.conflicts += 1,
            Outcome::Error => s.errors += 1,
        }
    }

    fn error(&mut self, message: String) {
        if self.sample_errors.len() < SAMPLE_ERRORS {
            self.sample_errors.push(message);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Conflict,
    Error,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What one virtual user needs.
struct User {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    stats: Arc<Mutex<Stats>>,
    rng: ChaCha8Rng,
    products: u64,
    customers: u64,
    id: usize,
    iteration: u64,
}

/// A scenario step failed: the scenario counts as an error.
struct Failed(String);

impl User {
    /// One HTTP request; `ok` lists the statuses this step expects, `conflict` the
    /// ones that are a normal, counted outcome (409 at checkout).
    async fn call(
        &mut self,
        method: Method,
        route: &'static str,
        path: &str,
        body: Option<Value>,
        ok: &[u16],
    ) -> Result<(u16, Value), Failed> {
        let start = Instant::now();
        let result = self.send(method.clone(), path, body).await;
        let elapsed = start.elapsed();
        let (outcome, ret) = match result {
            Ok((status, value)) if ok.contains(&status) => (Outcome::Ok, Ok((status, value))),
            Ok((409, value)) if ok.contains(&409) => (Outcome::Conflict, Ok((409, value))),
            Ok((status, value)) => (
                Outcome::Error,
                Err(Failed(format!("{method} {path}: {status} {value}"))),
            ),
            Err(e) => (Outcome::Error, Err(Failed(format!("{method} {path}: {e}")))),
        };
        let status = ret.as_ref().map_or(0, |(s, _)| *s);
        crate::metrics::client_request(route, status, elapsed);
        if let Ok(mut stats) = self.stats.lock() {
            stats.route(route, elapsed, outcome);
            if let Err(Failed(m)) = &ret {
                stats.error(m.clone());
            }
        }
        ret
    }

    async fn get(
        &mut self,
        route: &'static str,
        path: &str,
        ok: &[u16],
    ) -> Result<(u16, Value), Failed> {
        self.call(Method::GET, route, path, None, ok).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, value))
    }

    fn product(&mut self) -> u64 {
        popular(&mut self.rng, self.products)
    }

    fn customer(&mut self) -> Option<u64> {
        (self.customers > 0).then(|| self.rng.random_range(1..=self.customers))
    }

    /// Runs scenarios until `deadline`: back to back (closed loop), or at the start
    /// times handed out by the open loop's ticker.
    async fn drive(mut self, mix: Mix, starts: Option<Starts>, deadline: Instant) {
        loop {
            let scheduled = match &starts {
                Some(rx) => {
                    let next = tokio::time::timeout_at(deadline.into(), async {
                        rx.lock().await.recv().await
                    })
                    .await;
                    match next {
                        Ok(Some(at)) => at,
                        _ => break,
                    }
                }
                None => Instant::now(),
            };
            if scheduled >= deadline {
                break;
            }
            let scenario = mix.pick(&mut self.rng);
            let result = self.run(scenario).await;
            let elapsed = scheduled.elapsed();
            crate::metrics::scenario(scenario.name(), result.is_ok(), elapsed);
            if let Ok(mut s) = self.stats.lock() {
                let st = s.scenarios.entry(scenario.name()).or_insert_with(Stat::new);
                st.hist.saturating_record(micros(elapsed));
                if result.is_err() {
                    st.errors += 1;
                }
            }
        }
    }

    async fn run(&mut self, scenario: Scenario) -> Result<(), Failed> {
        self.iteration += 1;
        match scenario {
            Scenario::Browse => self.browse().await,
            Scenario::Search => self.search().await,
            Scenario::Signup => self.signup().await,
            Scenario::Cart => self.cart().await,
            Scenario::Checkout => self.checkout().await,
            Scenario::History => self.history().await,
        }
    }

    async fn browse(&mut self) -> Result<(), Failed> {
        let category = CATEGORIES[self.rng.random_range(0..CATEGORIES.len())];
        let sort = ["price", "-price", "newest", "name"][self.rng.random_range(0..4)];
        self.get(
            "GET /products",
            &format!("/products?category={category}&sort={sort}&limit=20"),
            &[200],
        )
        .await?;
        for _ in 0..3 {
            let id = self.product();
            self.get("GET /products/:id", &format!("/products/{id}"), &[200, 404])
                .await?;
        }
        Ok(())
    }

    async fn search(&mut self) -> Result<(), Failed> {
        let word = [
            "lamp", "chair", "red", "giant", "speaker", "tent", "clock", "soft",
        ][self.rng.random_range(0..8)];
        let max = self.rng.random_range(5..100) * 1000;
        let list = format!("/products?q={word}&max_price={max}&sort=price&limit=20");
        self.list_then_first(("GET /products", &list), "product_id", |id| {
            ("GET /products/:id", format!("/products/{id}"), &[200, 404])
        })
        .await
    }

    async fn signup(&mut self) -> Result<(), Failed> {
        let email = format!(
            "driver.{}.{}.{}@example.net",
            self.id,
            self.iteration,
            self.rng.random::<u32>()
        );
        let (_, c) = self
            .call(
                Method::POST,
                "POST /customers",
                "/customers",
                Some(json!({"email": email, "name": "Virtual User"})),
                &[201],
            )
            .await?;
        let id = c
            .get("customer_id")
            .and_then(Value::as_u64)
            .ok_or_else(|| Failed("no customer_id".into()))?;
        self.call(
            Method::POST,
            "POST /customers/:id/addresses",
            &format!("/customers/{id}/addresses"),
            Some(json!({"line1": "1 Load Street", "city": "Lisbon", "postcode": "1000-001", "country": "PT"})),
            &[201],
        )
        .await?;
        self.get("GET /customers/:id", &format!("/customers/{id}"), &[200])
            .await?;
        Ok(())
    }

    async fn cart(&mut self) -> Result<(), Failed> {
        let Some(c) = self.customer() else {
            return Ok(());
        };
        let (a, b) = (self.product(), self.product());
        let path = format!("/customers/{c}/cart");
        self.call(
            Method::POST,
            "POST /customers/:id/cart",
            &path,
            Some(json!({"product_id": a, "qty": 1})),
            &[200, 404],
        )
        .await?;
        self.call(
            Method::POST,
            "POST /customers/:id/cart",
            &path,
            Some(json!({"product_id": b, "qty": 2})),
            &[200, 404],
        )
        .await?;
        self.get("GET /customers/:id/cart", &path, &[200]).await?;
        // Another user may have checked this customer out meanwhile: 404 is fine.
        self.call(
            Method::PUT,
            "PUT /customers/:id/cart/:id",
            &format!("{path}/{a}"),
            Some(json!({"qty": 3})),
            &[200, 404],
        )
        .await?;
        if a != b {
            self.call(
                Method::DELETE,
                "DELETE /customers/:id/cart/:id",
                &format!("{path}/{b}"),
                None,
                &[200, 404],
            )
            .await?;
        }
        Ok(())
    }

    async fn checkout(&mut self) -> Result<(), Failed> {
        let Some(c) = self.customer() else {
            return Ok(());
        };
        let path = format!("/customers/{c}/cart");
        for _ in 0..self.rng.random_range(1..=2) {
            let p = self.product();
            self.call(
                Method::POST,
                "POST /customers/:id/cart",
                &path,
                Some(json!({"product_id": p, "qty": 1})),
                &[200, 404],
            )
            .await?;
        }
        let (status, order) = self
            .call(
                Method::POST,
                "POST /customers/:id/checkout",
                &format!("/customers/{c}/checkout"),
                None,
                &[201, 409],
            )
            .await?;
        self.get(
            "GET /customers/:id/orders",
            &format!("/customers/{c}/orders"),
            &[200],
        )
        .await?;
        if status == 201
            && let Some(o) = order.get("order_id").and_then(Value::as_u64)
        {
            self.get(
                "GET /customers/:id/orders/:id",
                &format!("/customers/{c}/orders/{o}"),
                &[200],
            )
            .await?;
        }
        Ok(())
    }

    async fn history(&mut self) -> Result<(), Failed> {
        let Some(c) = self.customer() else {
            return Ok(());
        };
        let list = format!("/customers/{c}/orders");
        self.list_then_first(("GET /customers/:id/orders", &list), "order_id", |o| {
            (
                "GET /customers/:id/orders/:id",
                format!("/customers/{c}/orders/{o}"),
                &[200],
            )
        })
        .await
    }

    /// GETs a list, then the first item it names (`field` of its first element), as a
    /// user opens the first result. `detail` gives that request's route, path and the
    /// statuses it may answer.
    async fn list_then_first(
        &mut self,
        (route, path): (&'static str, &str),
        field: &str,
        detail: impl FnOnce(u64) -> (&'static str, String, &'static [u16]),
    ) -> Result<(), Failed> {
        let (_, list) = self.get(route, path, &[200]).await?;
        if let Some(id) = first_id(&list, field) {
            let (route, path, ok) = detail(id);
            self.get(route, &path, ok).await?;
        }
        Ok(())
    }
}

/// The `field` of the first element of a JSON list reply.
fn first_id(list: &Value, field: &str) -> Option<u64> {
    list.get(0)?.get(field)?.as_u64()
}

/// Why a drive could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("--users must be at least 1")]
    NoUsers,
    #[error("--rate must be above 0")]
    BadRate,
    #[error("the shop is not healthy: {0}")]
    Unhealthy(String),
    #[error("the shop has no products: run `shop seed` first")]
    NotSeeded,
    #[error("a virtual user panicked while holding the statistics")]
    StatsPoisoned,
}

/// Runs the scenarios for `cfg.duration` and returns the report.
pub async fn drive(cfg: &DriveConfig) -> Result<DriveReport, DriveError> {
    if cfg.users == 0 {
        return Err(DriveError::NoUsers);
    }
    let base = cfg.url.trim_end_matches('/').to_string();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        // One idle connection per user is all a user can use.
        .pool_max_idle_per_host(cfg.users)
        .build(connector);
    let (products, customers) = seeded_counts(&client, &base, cfg.seed).await?;

    let stats = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let bar = progress_bar(cfg);
    let missed = Arc::new(AtomicU64::new(0));
    let (ticker, rx) = match cfg.rate {
        Some(rate) => {
            let (ticker, rx) = open_loop(rate, start, deadline, missed.clone())?;
            (Some(ticker), Some(rx))
        }
        None => (None, None),
    };
    let mut users = tokio::task::JoinSet::new();
    for id in 0..cfg.users {
        let user = User {
            client: client.clone(),
            base: base.clone(),
            stats: stats.clone(),
            rng: ChaCha8Rng::seed_from_u64(
                cfg.seed.wrapping_mul(1_000_003).wrapping_add(id as u64),
            ),
            products,
            customers,
            id,
            iteration: 0,
        };
        users.spawn(user.drive(cfg.mix.clone(), rx.clone(), deadline));
    }
    tokio::select! {
        () = async { while users.join_next().await.is_some() {} } => {}
        () = show_progress(&bar, &stats, start, cfg.duration) => {}
    }
    if let Some(t) = ticker {
        t.abort();
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let stats = stats.lock().map_err(|_| DriveError::StatsPoisoned)?;
    Ok(report(cfg, &stats, seconds, missed.load(Ordering::Relaxed)))
}

/// Seeded row counts from `/health`: users pick existing customers and products among
/// them.
async fn seeded_counts(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    seed: u64,
) -> Result<(u64, u64), DriveError> {
    let mut probe = User {
        client: client.clone(),
        base: base.to_string(),
        stats: Arc::new(Mutex::new(Stats::default())),
        rng: ChaCha8Rng::seed_from_u64(seed),
        products: 1,
        customers: 0,
        id: 0,
        iteration: 0,
    };
    let (_, health) = probe
        .call(Method::GET, "GET /health", "/health", None, &[200])
        .await
        .map_err(|Failed(m)| DriveError::Unhealthy(m))?;
    let products = health.get("products").and_then(Value::as_u64).unwrap_or(0);
    let customers = health.get("customers").and_then(Value::as_u64).unwrap_or(0);
    if products == 0 {
        return Err(DriveError::NotSeeded);
    }
    Ok((products, customers))
}

fn progress_bar(cfg: &DriveConfig) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cfg.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("driving {bar:40} {pos}/{len} s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Scheduled start times, shared by the users.
type Starts = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>;

/// Open loop: a ticker hands out scheduled start times. The backlog holds one second of
/// arrivals; beyond that a start is dropped and counted in `missed`, never queued
/// without bound.
fn open_loop(
    rate: f64,
    start: Instant,
    deadline: Instant,
    missed: Arc<AtomicU64>,
) -> Result<(tokio::task::JoinHandle<()>, Starts), DriveError> {
    if rate <= 0.0 || !rate.is_finite() {
        return Err(DriveError::BadRate);
    }
    let cap = (rate.ceil() as usize).clamp(1, 100_000);
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(cap);
    let ticker = tokio::spawn(async move {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let mut n: u32 = 0;
        loop {
            let at = start + interval * n;
            if at >= deadline {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            if tx.try_send(at).is_err() {
                missed.fetch_add(1, Ordering::Relaxed);
            }
            n = n.saturating_add(1);
        }
    });
    Ok((ticker, Arc::new(tokio::sync::Mutex::new(rx))))
}

/// Updates the progress bar once a second, until dropped.
async fn show_progress(bar: &ProgressBar, stats: &Mutex<Stats>, start: Instant, len: Duration) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        bar.set_position(start.elapsed().as_secs().min(len.as_secs()));
        if let Ok(s) = stats.lock() {
            let n: u64 = s.routes.values().map(|r| r.hist.len()).sum();
            let e: u64 = s.routes.values().map(|r| r.errors).sum();
            bar.set_message(format!(
                "{:.0} req/s, {e} errors",
                n as f64 / start.elapsed().as_secs_f64()
            ));
        }
    }
}

fn report(cfg: &DriveConfig, stats: &Stats, seconds: f64, missed_starts: u64) -> DriveReport {
    let routes: Vec<Line> = stats.routes.iter().map(|(n, s)| s.line(n)).collect();
    let requests = routes.iter().map(|l| l.count).sum();
    let errors = routes.iter().map(|l| l.errors).sum();
    DriveReport {
        users: cfg.users,
        rate: cfg.rate,
        seconds,
        scenarios: stats.scenarios.iter().map(|(n, s)| s.line(n)).collect(),
        routes,
        requests,
        errors,
        requests_per_s: requests as f64 / seconds,
        missed_starts,
        sample_errors: stats.sample_errors.clone(),
    }
}

/// The end-of-run table.
pub fn render(r: &DriveReport) -> String {
    let mut out = String::new();
    let mode = match r.rate {
        Some(rate) => format!("open loop at {rate} scenarios/s"),
        None => "closed loop".into(),
    };
    let _ = writeln!(
        out,
        "{} users, {mode}, {:.1} s: {} requests ({:.0}/s), {} errors",
        r.users, r.seconds, r.requests, r.requests_per_s, r.errors
    );
    if r.missed_starts > 0 {
        let _ = writeln!(
            out,
            "{} scheduled scenario starts dropped: every user was busy (the shop could not keep up)",
            r.missed_starts
        );
    }
    for (title, lines) in [("scenario", &r.scenarios), ("route", &r.routes)] {
        let _ = writeln!(
            out,
            "\n{title:<34} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "count", "errors", "409s", "p50 ms", "p95 ms", "p99 ms"
        );
        for l in lines {
            let _ = writeln!(
                out,
                "{:<34} {:>8} {:>7} {:>9} {:>9.2} {:>9.2} {:>9.2}",
                l.name, l.count, l.errors, l.conflicts, l.p50_ms, l.p95_ms, l.p99_ms
            );
        }
    }
    if !r.sample_errors.is_empty() {
        let _ = writeln!(out, "\nfirst errors:");
        for e in &r.sample_errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// One step of `--ramp`.
#[derive(Debug, Clone, Serialize)]
pub struct RampStep {
    pub users: usize,
    pub requests_per_s: f64,
    pub p95_ms: f64,
    pub errors: u64,
}

/// Doubles the users each step until throughput rises by less than 10% (twice in a row)
/// or `max_users` is reached; returns every step and the knee (the last step that still
/// paid off).
pub async fn ramp(
    cfg: &DriveConfig,
    max_users: usize,
) -> Result<(Vec<RampStep>, usize), DriveError> {
    let mut steps: Vec<RampStep> = Vec::new();
    let mut users = cfg.users.max(1);
    let mut flat = 0;
    let mut knee = users;
    loop {
        let report = drive(&DriveConfig {
            users,
            progress: false,
            ..cfg.clone()
        })
        .await?;
        let p95 = report
            .scenarios
            .iter()
            .map(|l| l.p95_ms)
            .fold(0.0, f64::max);
        let step = RampStep {
            users,
            requests_per_s: report.requests_per_s,
            p95_ms: p95,
            errors: report.errors,
        };
        eprintln!(
            "ramp: {:>5} users  {:>8.0} req/s  p95 {:>8.2} ms  {} errors",
            step.users, step.requests_per_s, step.p95_ms, step.errors
        );
        let best = steps.iter().map(|s| s.requests_per_s).fold(0.0, f64::max);
        if step.requests_per_s > best * 1.10 {
            knee = users;
            flat = 0;
        } else {
            flat += 1;
        }
        steps.push(step);
        if flat >= 2 || users >= max_users {
            break;
        }
        users = (users * 2).min(max_users);
    }
    Ok((steps, knee))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_reject_nonsense() {
        let m: Mix = "browse=1,checkout=3".parse().unwrap();
        assert_eq!(m.0, vec![(Scenario::Browse, 1), (Scenario::Checkout, 3)]);
        assert!("browse".parse::<Mix>().is_err());
        assert!("shopping=1".parse::<Mix>().is_err());
        assert!("browse=0".parse::<Mix>().is_err());
        assert!("browse=x".parse::<Mix>().is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let m: Mix = "browse=3,search=1".parse().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let browse = (0..4000)
            .filter(|_| m.pick(&mut rng) == Scenario::Browse)
            .count();
        assert!((2800..3200).contains(&browse), "{browse}");
    }
}
