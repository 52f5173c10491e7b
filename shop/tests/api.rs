//! The shop's API against a real MariaDB (testkit), or against any server named by
//! `SHOP_TEST_DB_URL` (e.g. a vtgate: `mysql://root@127.0.0.1:15306/shop`), whose shop
//! tables must exist and be empty or seeded by these tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mysql_async::prelude::*;
use serde_json::{Value, json};
use shop::api::{self, App};
use shop::drive::{DriveConfig, Mix};
use shop::seed::{SeedConfig, seed};
use shop::store::Store;
use testkit::MariaDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

struct Shop {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    db_url: String,
    _stop: oneshot::Sender<()>,
}

/// A database for one test: a fresh one on the private MariaDB, or the external one.
fn database(name: &str) -> String {
    if let Ok(url) = std::env::var("SHOP_TEST_DB_URL") {
        return url;
    }
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database(name).unwrap();
    server.url_for(&db)
}

async fn shop(db_url: &str, customers: u64, products: u64) -> Shop {
    seed(
        db_url,
        &SeedConfig {
            customers,
            products,
            seed: 7,
            reset: true,
            progress: false,
        },
    )
    .await
    .unwrap();
    start(db_url).await
}

async fn start(db_url: &str) -> Shop {
    start_with(db_url, api::Limits::default()).await
}

async fn start_with(db_url: &str, limits: api::Limits) -> Shop {
    let store = Store::new(db_url, 8).unwrap();
    let counts = store.counts().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(api::serve_with(
        Arc::new(App { store, counts }),
        listener,
        async {
            let _ = rx.await;
        },
        limits,
    ));
    Shop {
        base: format!("http://{addr}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
        db_url: db_url.to_string(),
        _stop: tx,
    }
}

impl Shop {
    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    async fn raw(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let resp = self.client.request(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status} not JSON ({e}): {bytes:?}"))
        };
        (status, value)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.raw(
            method,
            path,
            &body.map(|b| b.to_string()).unwrap_or_default(),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    /// Asserts the status and that an error reply says something.
    async fn expect(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, v) = self.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
        if status >= 400 {
            assert!(v["error"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
        v
    }
}

#[tokio::test]
async fn products_crud_search_and_their_errors() {
    let shop = shop(&database("products"), 5, 40).await;
    let (s, health) = shop.get("/health").await;
    assert_eq!(
        (s, health["products"].as_u64(), health["customers"].as_u64()),
        (200, Some(40), Some(5))
    );

    let p = shop
        .expect(Method::POST, "/products", Some(json!({"sku": "T-1", "name": "test lamp", "category": "tools", "price_cents": 1234, "stock": 3})), 201)
        .await;
    let id = p["product_id"].as_u64().unwrap();
    assert!(id > 1 << 40, "generated ids are far above seeded ones");
    let got = shop
        .expect(Method::GET, &format!("/products/{id}"), None, 200)
        .await;
    assert_eq!(got["name"], "test lamp");
    assert_eq!(got["created_at"], p["created_at"]);
    let up = shop
        .expect(
            Method::PUT,
            &format!("/products/{id}"),
            Some(json!({"price_cents": 999, "stock": 5})),
            200,
        )
        .await;
    assert_eq!(
        (
            up["price_cents"].as_u64(),
            up["stock"].as_u64(),
            up["name"].as_str()
        ),
        (Some(999), Some(5), Some("test lamp"))
    );

    // Search: name match, category, price range, sort, paging.
    let found = shop
        .expect(Method::GET, "/products?q=test+lamp&limit=5", None, 200)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let cheap = shop
        .expect(
            Method::GET,
            "/products?category=tools&max_price=999&sort=price",
            None,
            200,
        )
        .await;
    assert!(
        cheap
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["product_id"].as_u64() == Some(id))
    );
    let page = shop
        .expect(
            Method::GET,
            "/products?sort=-price&limit=10&offset=5",
            None,
            200,
        )
        .await;
    let prices: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price_cents"].as_u64().unwrap())
        .collect();
    assert_eq!(prices.len(), 10);
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    let none = shop.expect(Method::GET, "/products?q=%25", None, 200).await;
    assert!(none.as_array().unwrap().is_empty(), "% matches literally");

    // Errors.
    shop.expect(
        Method::POST,
        "/products",
        Some(json!({"sku": "T-1", "name": "dup", "category": "tools", "price_cents": 1})),
        409,
    )
    .await;
    let (s, v) = shop.raw(Method::POST, "/products", "{not json").await;
    assert_eq!(s, 400, "{v}");
    shop.expect(
        Method::POST,
        "/products",
        Some(json!({"sku": "", "name": "x", "category": "c", "price_cents": 1})),
        400,
    )
    .await;
    shop.expect(
        Method::POST,
        "/products",
        Some(
            json!({"sku": "T-2", "name": "x", "category": "c", "price_cents": 1, "colour": "red"}),
        ),
        400,
    )
    .await;
    shop.expect(
        Method::PUT,
        &format!("/products/{id}"),
        Some(json!({"stock": -1})),
        400,
    )
    .await;
    shop.expect(Method::GET, "/products/abc", None, 400).await;
    shop.expect(Method::GET, "/products/0", None, 400).await;
    shop.expect(Method::GET, "/products?limit=1000", None, 400)
        .await;
    shop.expect(Method::GET, "/products?min_price=9&max_price=1", None, 400)
        .await;
    shop.expect(Method::GET, "/products?sort=sideways", None, 400)
        .await;
    shop.expect(Method::GET, "/nowhere", None, 404).await;
    let (s, _) = shop
        .raw(Method::POST, "/products", &"x".repeat(100_000))
        .await;
    assert_eq!(s, 413);

    shop.expect(Method::DELETE, &format!("/products/{id}"), None, 204)
        .await;
    shop.expect(Method::GET, &format!("/products/{id}"), None, 404)
        .await;
    shop.expect(Method::DELETE, &format!("/products/{id}"), None, 404)
        .await;
}

/// A known path asked with a method it does not take is a 405 naming the ones it does;
/// an unknown path is a 404; leading and trailing slashes do not matter.
#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_unknown_paths_404() {
    let shop = shop(&database("routes"), 2, 3).await;
    for (method, path, allow) in [
        (Method::PATCH, "/products/1", "GET, PUT, DELETE"),
        (Method::DELETE, "/products", "GET, POST"),
        (Method::POST, "/health", "GET"),
        (Method::GET, "/customers/1/checkout", "POST"),
        (Method::POST, "/customers/1/cart/2", "PUT, DELETE"),
        (Method::PUT, "/customers/1/orders/abc", "GET"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", shop.base))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = shop.client.request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().contains(allow), "{v}");
    }
    for path in ["/nowhere", "/products/1/2", "/customers/1/wishlist", "/"] {
        shop.expect(Method::GET, path, None, 404).await;
        shop.expect(Method::DELETE, path, None, 404).await;
    }
    let (s, v) = shop.get("/products/").await;
    assert_eq!((s, v.as_array().map(Vec::len)), (200, Some(3)));
    shop.expect(Method::GET, "/customers/2/cart/", None, 200)
        .await;
}

/// Query strings decode as forms do: `+` is a space, `%2B` a plus, and a `%` without two
/// hex digits after it stays a `%` (a sign is not a hex digit: `%+1` is not byte 1).
#[tokio::test]
async fn query_strings_decode_as_forms_do() {
    let shop = shop(&database("query"), 2, 3).await;
    for (query, seen) in [
        ("sort=%+1", r#"not "% 1""#),
        ("sort=%2Bprice", r#"not "+price""#),
        ("sort=a+b%20c", r#"not "a b c""#),
        ("sort=caf%C3%A9", r#"not "café""#),
    ] {
        let v = shop
            .expect(Method::GET, &format!("/products?{query}"), None, 400)
            .await;
        assert!(v["error"].as_str().unwrap().contains(seen), "{query}: {v}");
    }
    let v = shop
        .expect(Method::GET, "/products?%6Cimit=2&sort=-price", None, 200)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 2, "encoded keys decode too");
}

/// The kind of a failure, not its wording, decides the status: a row the shop cannot
/// read (here a stock that no longer fits its i32) is the server's fault, 500, not the
/// client's 400. Always on a private database: this test alters the schema.
#[tokio::test]
async fn a_row_the_shop_cannot_read_is_a_500() {
    let server = MariaDb::shared().unwrap();
    let db_url = server.url_for(&server.fresh_database("unreadable").unwrap());
    let shop = shop(&db_url, 2, 3).await;
    let mut conn = mysql_async::Conn::new(shop::store::opts(&db_url, 1).unwrap())
        .await
        .unwrap();
    conn.query_drop("ALTER TABLE product MODIFY stock BIGINT NOT NULL")
        .await
        .unwrap();
    conn.query_drop("UPDATE product SET stock = 1 << 40 WHERE product_id = 1")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let v = shop.expect(Method::GET, "/products/1", None, 500).await;
    assert!(v["error"].as_str().unwrap().contains("column 6"), "{v}");
    shop.expect(Method::GET, "/products/2", None, 200).await;
    let (s, v) = shop
        .raw(Method::POST, "/products", &"x".repeat(100_000))
        .await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(v["error"], "body too large (limit 65536 bytes)");
}

/// Opens `n` TCP connections that send nothing.
async fn idle_connections(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    idle
}

/// `GET /health` on a fresh connection, and how long the answer took.
async fn timed_health(shop: &Shop) -> (u16, Duration) {
    let t = Instant::now();
    let (s, _) = tokio::time::timeout(Duration::from_secs(20), shop.get("/health"))
        .await
        .expect("/health did not answer in 20 s");
    (s, t.elapsed())
}

/// Idle sockets cannot starve real requests: hundreds of them leave `/health` prompt, a
/// connection that sends nothing is closed after the header-read timeout, and even a
/// flood larger than the connection limit only delays `/health` by a few timeouts
/// (before the timeout existed, it waited for ever).
#[tokio::test]
async fn idle_connections_are_closed_and_cannot_starve_requests() {
    let db = database("idle");
    let timeout = Duration::from_millis(400);
    let roomy = api::Limits {
        max_connections: 1024,
        header_read_timeout: timeout,
    };
    let shop = shop(&db, 2, 3).await;
    drop(shop); // seeded; the servers below share the rows
    let roomy_shop = start_with(&db, roomy).await;
    let idle = idle_connections(roomy_shop.addr(), 300).await;
    let (s, took) = timed_health(&roomy_shop).await;
    assert!(
        s == 200 && took < Duration::from_secs(2),
        "{s} after {took:?}"
    );

    // The first idle connection is closed by the server (EOF or reset), after the
    // timeout and not long after it.
    let mut first = idle.into_iter().next().unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf)).await;
    let n = read
        .expect("an idle connection was never closed")
        .unwrap_or(0);
    assert!(
        n == 0 || buf.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        &buf[..n]
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Four times more idle sockets than slots: /health waits its turn, a few timeouts.
    let tight = start_with(
        &db,
        api::Limits {
            max_connections: 8,
            header_read_timeout: timeout,
        },
    )
    .await;
    let _flood = idle_connections(tight.addr(), 32).await;
    let (s, took) = timed_health(&tight).await;
    assert!(
        s == 200 && took < Duration::from_secs(6),
        "{s} after {took:?}"
    );
}

/// Sends `head` on a fresh connection and returns what comes back within 3 s.
async fn raw_exchange(addr: &str, head: &str) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer in 3 s to {head:?}"))
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A declared Content-Length over the limit is a 413 at once, without waiting for (or
/// asking for, with `Expect: 100-continue`) a body that would be refused anyway.
#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_at_once() {
    let shop = shop(&database("declared"), 2, 3).await;
    for extra in ["", "Expect: 100-continue\r\n"] {
        let head = format!(
            "POST /products HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
             Content-Length: 99999999999\r\n{extra}\r\n{{\"sku\":"
        );
        let reply = raw_exchange(shop.addr(), &head).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{extra:?}: {reply}");
        assert!(reply.contains("body too large"), "{reply}");
    }
    // At the limit exactly, the body is read (and judged on its JSON).
    let (s, v) = shop
        .raw(Method::POST, "/products", &" ".repeat(65_536))
        .await;
    assert_eq!(s, 400, "{v}");
}

/// A cart line stays within 1..=1000 however many times its product is added: the add
/// that would pass it is a 409 that says so and leaves the line as it was, also when
/// adds race.
#[tokio::test]
async fn cart_quantities_stay_within_the_limit_when_added_up() {
    let shop = Arc::new(shop(&database("qty"), 3, 4).await);
    let cart = "/customers/1/cart";
    let add = |product: u64, qty: u32| Some(json!({"product_id": product, "qty": qty}));
    shop.expect(Method::POST, cart, add(1, 600), 200).await;
    let v = shop.expect(Method::POST, cart, add(1, 400), 200).await;
    assert_eq!(v["items"][0]["qty"], 1000);
    let v = shop.expect(Method::POST, cart, add(1, 1), 409).await;
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("holds 1000") && msg.contains("1000"), "{msg}");
    let v = shop.expect(Method::GET, cart, None, 200).await;
    assert_eq!(v["items"][0]["qty"], 1000, "a refused add changes nothing");
    shop.expect(
        Method::PUT,
        &format!("{cart}/1"),
        Some(json!({"qty": 1001})),
        400,
    )
    .await;

    // Eight racing adds of 200 to a new line: exactly five fit.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let shop = shop.clone();
            tokio::spawn(async move {
                let body = json!({"product_id": 2, "qty": 200}).to_string();
                shop.raw(Method::POST, "/customers/2/cart", &body).await.0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 409, 409, 409]);
    let v = shop
        .expect(Method::GET, "/customers/2/cart", None, 200)
        .await;
    assert_eq!(v["items"][0]["qty"], 1000);
}

/// Error messages repeat at most the first 64 characters of what the client sent, and
/// say they cut it ("…"), wherever the input went: path, query, or JSON body.
#[tokio::test]
async fn error_messages_clip_what_they_echo() {
    let shop = shop(&database("echo"), 2, 3).await;
    let long = "a".repeat(5000);
    let email = format!("{}x", "b".repeat(250));
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, format!("/products/{long}"), None, 400),
        (Method::GET, format!("/products?sort={long}"), None, 400),
        (Method::GET, format!("/products?limit={long}"), None, 400),
        (Method::GET, format!("/products?{long}=1"), None, 400),
        (
            Method::GET,
            format!("/customers/1/orders?limit={long}"),
            None,
            400,
        ),
        (Method::GET, format!("/{long}"), None, 404),
        (Method::PATCH, format!("/products/{long}"), None, 405),
        (
            Method::POST,
            "/customers".into(),
            Some(json!({"email": email, "name": "x"})),
            400,
        ),
        (
            Method::POST,
            "/products".into(),
            Some(json!({long.clone(): 1})),
            400,
        ),
        (
            Method::POST,
            "/products".into(),
            Some(json!({"price_cents": long})),
            400,
        ),
        (
            Method::POST,
            "/customers/1/cart".into(),
            Some(json!({"product_id": long})),
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        let v = shop.expect(method.clone(), &path, body, status).await;
        let msg = v["error"].as_str().unwrap();
        let what = format!("{method} {}", &path[..path.len().min(40)]);
        assert!(msg.chars().count() < 300, "{what}: {msg}");
        assert!(
            msg.contains("aaa…") || msg.contains("bbb…"),
            "{what}: {msg}"
        );
    }
}

#[tokio::test]
async fn a_customer_signs_up_fills_a_cart_checks_out_and_sees_the_order() {
    let shop = shop(&database("journey"), 3, 10).await;
    let c = shop
        .expect(
            Method::POST,
            "/customers",
            Some(json!({"email": "ada@example.org", "name": "Ada"})),
            201,
        )
        .await;
    let cid = c["customer_id"].as_u64().unwrap();
    shop.expect(
        Method::POST,
        "/customers",
        Some(json!({"email": "ada@example.org", "name": "Other"})),
        409,
    )
    .await;
    shop.expect(
        Method::POST,
        "/customers",
        Some(json!({"email": "nope", "name": "X"})),
        400,
    )
    .await;
    let c2 = shop
        .expect(
            Method::PUT,
            &format!("/customers/{cid}"),
            Some(json!({"name": "Ada L."})),
            200,
        )
        .await;
    assert_eq!(c2["name"], "Ada L.");
    shop.expect(Method::GET, "/customers/999999", None, 404)
        .await;

    let a = shop
        .expect(Method::POST, &format!("/customers/{cid}/addresses"), Some(json!({"line1": "1 Main St", "city": "Lisbon", "postcode": "1000", "country": "PT"})), 201)
        .await;
    shop.expect(
        Method::POST,
        &format!("/customers/{cid}/addresses"),
        Some(json!({"line1": "x", "city": "y", "postcode": "z", "country": "Portugal"})),
        400,
    )
    .await;
    shop.expect(
        Method::POST,
        "/customers/999999/addresses",
        Some(json!({"line1": "x", "city": "y", "postcode": "z", "country": "PT"})),
        404,
    )
    .await;
    let list = shop
        .expect(
            Method::GET,
            &format!("/customers/{cid}/addresses"),
            None,
            200,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let aid = a["address_id"].as_u64().unwrap();
    shop.expect(
        Method::DELETE,
        &format!("/customers/{cid}/addresses/{aid}"),
        None,
        204,
    )
    .await;
    shop.expect(
        Method::DELETE,
        &format!("/customers/{cid}/addresses/{aid}"),
        None,
        404,
    )
    .await;

    // Cart.
    let cart = format!("/customers/{cid}/cart");
    shop.expect(
        Method::POST,
        &format!("/customers/{cid}/checkout"),
        None,
        409,
    )
    .await; // empty cart
    shop.expect(
        Method::POST,
        &cart,
        Some(json!({"product_id": 1, "qty": 2})),
        200,
    )
    .await;
    shop.expect(Method::POST, &cart, Some(json!({"product_id": 1})), 200)
        .await;
    let v = shop
        .expect(
            Method::POST,
            &cart,
            Some(json!({"product_id": 2, "qty": 1})),
            200,
        )
        .await;
    assert_eq!(v["items"][0]["qty"], 3);
    shop.expect(
        Method::POST,
        &cart,
        Some(json!({"product_id": 999999})),
        404,
    )
    .await;
    shop.expect(
        Method::POST,
        &cart,
        Some(json!({"product_id": 1, "qty": 0})),
        400,
    )
    .await;
    shop.expect(
        Method::PUT,
        &format!("{cart}/1"),
        Some(json!({"qty": 1})),
        200,
    )
    .await;
    shop.expect(
        Method::PUT,
        &format!("{cart}/3"),
        Some(json!({"qty": 1})),
        404,
    )
    .await;
    shop.expect(Method::DELETE, &format!("{cart}/3"), None, 404)
        .await;
    let v = shop.expect(Method::GET, &cart, None, 200).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let total = v["total_cents"].as_u64().unwrap();

    // Checkout.
    let (_, p1) = shop.get("/products/1").await;
    let order = shop
        .expect(
            Method::POST,
            &format!("/customers/{cid}/checkout"),
            None,
            201,
        )
        .await;
    assert_eq!(order["total_cents"].as_u64(), Some(total));
    assert_eq!(order["items"].as_array().unwrap().len(), 2);
    let (_, p1_after) = shop.get("/products/1").await;
    assert_eq!(
        p1_after["stock"].as_i64().unwrap(),
        p1["stock"].as_i64().unwrap() - 1
    );
    let v = shop.expect(Method::GET, &cart, None, 200).await;
    assert!(
        v["items"].as_array().unwrap().is_empty(),
        "checkout empties the cart"
    );

    let orders = shop
        .expect(Method::GET, &format!("/customers/{cid}/orders"), None, 200)
        .await;
    assert_eq!(orders.as_array().unwrap().len(), 1);
    let oid = order["order_id"].as_u64().unwrap();
    let got = shop
        .expect(
            Method::GET,
            &format!("/customers/{cid}/orders/{oid}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["items"], order["items"]);
    shop.expect(
        Method::GET,
        &format!("/customers/1/orders/{oid}"),
        None,
        404,
    )
    .await; // someone else's

    shop.expect(Method::DELETE, &format!("/customers/{cid}"), None, 204)
        .await;
    shop.expect(Method::GET, &format!("/customers/{cid}/orders"), None, 404)
        .await;
    shop.expect(Method::DELETE, &format!("/customers/{cid}"), None, 404)
        .await;
}

#[tokio::test]
async fn concurrent_checkouts_of_the_last_item_have_exactly_one_winner() {
    let shop = shop(&database("atomic"), 8, 5).await;
    shop.expect(Method::PUT, "/products/3", Some(json!({"stock": 1})), 200)
        .await;
    // Eight customers each want the last one, plus another product that is plentiful:
    // the losers must leave no order, no order items and no stock change behind.
    for c in 1..=8 {
        shop.expect(
            Method::POST,
            &format!("/customers/{c}/cart"),
            Some(json!({"product_id": 2, "qty": 1})),
            200,
        )
        .await;
        shop.expect(
            Method::POST,
            &format!("/customers/{c}/cart"),
            Some(json!({"product_id": 3, "qty": 1})),
            200,
        )
        .await;
    }
    let (_, before) = shop.get("/products/2").await;
    let orders_before = count(&shop.db_url, "SELECT COUNT(*) FROM corder").await;
    let shop = Arc::new(shop);
    let tasks: Vec<_> = (1..=8)
        .map(|c| {
            let shop = shop.clone();
            tokio::spawn(async move {
                shop.call(Method::POST, &format!("/customers/{c}/checkout"), None)
                    .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == 201 || s == 409, "{s} {v}");
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    let (_, last) = shop.get("/products/3").await;
    assert_eq!(last["stock"], 0);
    let (_, after) = shop.get("/products/2").await;
    assert_eq!(
        after["stock"].as_i64().unwrap(),
        before["stock"].as_i64().unwrap() - 1,
        "losers roll back"
    );
    assert_eq!(
        count(&shop.db_url, "SELECT COUNT(*) FROM corder").await,
        orders_before + 1
    );
    // The losers still have their carts.
    let carts = count(&shop.db_url, "SELECT COUNT(*) FROM cart_item").await;
    assert_eq!(carts, 14);
}

async fn count(url: &str, sql: &str) -> u64 {
    let mut conn = mysql_async::Conn::new(shop::store::opts(url, 1).unwrap())
        .await
        .unwrap();
    let n: Option<u64> = conn.query_first(sql).await.unwrap();
    conn.disconnect().await.unwrap();
    n.unwrap()
}

async fn checksums(url: &str) -> Vec<(String, String)> {
    let mut conn = mysql_async::Conn::new(shop::store::opts(url, 1).unwrap())
        .await
        .unwrap();
    let mut out = Vec::new();
    for table in shop::schema::TABLES {
        // Every column, every row, in key order: equal text means byte-identical data.
        let rows: Vec<mysql_async::Row> = conn
            .query(format!("SELECT * FROM {table} ORDER BY 1, 2, 3"))
            .await
            .unwrap();
        let text: String = rows
            .iter()
            .map(|r| format!("{:?}\n", r.clone().unwrap()))
            .collect();
        out.push((
            table.to_string(),
            format!("{} rows, xxh {:x}", rows.len(), fxhash(&text)),
        ));
    }
    conn.disconnect().await.unwrap();
    out
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[tokio::test]
async fn the_same_seed_gives_the_same_data() {
    let cfg = SeedConfig {
        customers: 700,
        products: 300,
        seed: 42,
        reset: false,
        progress: false,
    };
    let server = MariaDb::shared().unwrap();
    let fresh = |name: &str| server.url_for(&server.fresh_database(name).unwrap());
    let (a, b, c) = (fresh("seed_a"), fresh("seed_b"), fresh("seed_c"));
    let report = seed(&a, &cfg).await.unwrap();
    assert_eq!(
        (report.products, report.customers, report.addresses),
        (300, 700, 700)
    );
    assert!(
        report.orders > 500 && report.order_items > report.orders,
        "{report:?}"
    );
    seed(&b, &cfg).await.unwrap();
    seed(
        &c,
        &SeedConfig {
            seed: 43,
            ..cfg.clone()
        },
    )
    .await
    .unwrap();
    let (ca, cb, cc) = (
        checksums(&a).await,
        checksums(&b).await,
        checksums(&c).await,
    );
    assert_eq!(ca, cb);
    assert_ne!(ca, cc);
    // Seeding a seeded database is refused unless asked to reset.
    let err = seed(&a, &cfg).await.unwrap_err();
    assert!(err.to_string().contains("--reset"), "{err}");
    seed(
        &a,
        &SeedConfig {
            reset: true,
            ..cfg.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(checksums(&a).await, cb);
    // Through another server (a vtgate, sharded or not): the very same rows.
    if let Ok(external) = std::env::var("SHOP_TEST_DB_URL") {
        seed(&external, &SeedConfig { reset: true, ..cfg })
            .await
            .unwrap();
        assert_eq!(checksums(&external).await, cb, "seeded through {external}");
    }
}

#[tokio::test]
async fn a_short_drive_runs_every_scenario_without_errors() {
    let shop = shop(&database("drive"), 200, 100).await;
    let mix: Mix = "browse=5,search=3,signup=2,cart=3,checkout=3,history=2"
        .parse()
        .unwrap();
    let report = shop::drive::drive(&DriveConfig {
        url: shop.base.clone(),
        users: 6,
        duration: Duration::from_secs(3),
        rate: None,
        mix,
        seed: 3,
        progress: false,
    })
    .await
    .unwrap();
    assert_eq!(report.errors, 0, "{}", shop::drive::render(&report));
    assert_eq!(
        report.scenarios.len(),
        6,
        "{}",
        shop::drive::render(&report)
    );
    assert!(report.requests > 100, "{}", shop::drive::render(&report));
    // Open loop at a modest rate keeps to it.
    let open = shop::drive::drive(&DriveConfig {
        url: shop.base.clone(),
        users: 4,
        duration: Duration::from_secs(2),
        rate: Some(50.0),
        mix: Mix::default(),
        seed: 4,
        progress: false,
    })
    .await
    .unwrap();
    let started: u64 = open.scenarios.iter().map(|l| l.count).sum();
    assert!(
        (80..=101).contains(&started),
        "{started} scenarios in 2 s at 50/s"
    );
    assert_eq!(open.errors, 0, "{}", shop::drive::render(&open));
}

#[tokio::test]
async fn an_unreachable_database_is_a_503_with_a_reason() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = Store::new(&format!("mysql://root@127.0.0.1:{port}/shop"), 2).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = oneshot::channel::<()>();
    tokio::spawn(api::serve(
        Arc::new(App {
            store,
            counts: Default::default(),
        }),
        listener,
        async {
            let _ = rx.await;
        },
    ));
    let shop = Shop {
        base: format!("http://{addr}"),
        client: Client::builder(TokioExecutor::new()).build_http(),
        db_url: String::new(),
        _stop: _tx,
    };
    for path in ["/health", "/products/1", "/products?q=x"] {
        let v = shop.expect(Method::GET, path, None, 503).await;
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("database unavailable"),
            "{v}"
        );
    }
}
