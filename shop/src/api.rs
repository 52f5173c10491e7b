//! The HTTP API: JSON over HTTP/1.1 on hyper, one route table, one error shape
//! (`{"error": "..."}` with 400 / 404 / 409 / 413 / 503).
//!
//! ```text
//! GET    /health                                   status and seeded row counts
//! POST   /products            GET /products?q=&category=&min_price=&max_price=&sort=&limit=&offset=
//! GET|PUT|DELETE /products/{id}
//! POST   /customers           GET|PUT|DELETE /customers/{id}
//! POST|GET /customers/{id}/addresses              DELETE /customers/{id}/addresses/{aid}
//! GET|POST /customers/{id}/cart                   PUT|DELETE /customers/{id}/cart/{pid}
//! POST   /customers/{id}/checkout
//! GET    /customers/{id}/orders                   GET /customers/{id}/orders/{oid}
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::Error;
use crate::store::{
    Counts, CustomerPatch, NewAddress, NewCustomer, NewProduct, ProductPatch, Search, Sort, Store,
};

/// Request bodies above this are refused (413): nothing the API takes is near it, and a
/// client must not be able to make the server buffer without limit.
const MAX_BODY: usize = 64 * 1024;

/// At most this many connections are served at once; further ones wait in the kernel's
/// accept queue. Bounds memory and tasks whatever the driver does.
pub const MAX_CONNECTIONS: usize = 4096;

#[derive(Debug)]
pub struct App {
    pub store: Store,
    /// Row counts read at start-up, for the driver (seeded ids are 1..=N).
    pub counts: Counts,
}

type Reply = Response<Full<Bytes>>;

/// Serves the API on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
        // Reap finished connections so the set does not grow with the total served.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // In-flight requests get a moment; keep-alive connections are cut after it.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

async fn handle(app: &App, req: Request<Incoming>) -> Reply {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (route, result) = dispatch(app, req, &method, &path).await;
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => error_reply(&e),
    };
    crate::metrics::request(route, reply.status().as_u16(), start.elapsed());
    reply
}

/// Routes one request. Returns the route's name (for metrics: `GET /products/:id`,
/// never the ids themselves) and the reply.
async fn dispatch(
    app: &App,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> (&'static str, Result<Reply, Error>) {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query = req.uri().query().unwrap_or("").to_owned();
    let s = &app.store;
    macro_rules! id {
        ($seg:expr, $what:expr) => {
            match parse_id($seg, $what) {
                Ok(id) => id,
                Err(e) => return ("invalid id", Err(e)),
            }
        };
    }
    match (method, segs.as_slice()) {
        (&Method::GET, ["health"]) => ("GET /health", health(app).await),
        (&Method::GET, ["products"]) => (
            "GET /products",
            async {
                let search = parse_search(&query)?;
                json(StatusCode::OK, &s.search(&search).await?)
            }
            .await,
        ),
        (&Method::POST, ["products"]) => (
            "POST /products",
            async {
                let p: NewProduct = body(req).await?;
                json(StatusCode::CREATED, &s.create_product(p).await?)
            }
            .await,
        ),
        (&Method::GET, ["products", id]) => {
            let id = id!(id, "product");
            (
                "GET /products/:id",
                async { json(StatusCode::OK, &s.product(id).await?) }.await,
            )
        }
        (&Method::PUT, ["products", id]) => {
            let id = id!(id, "product");
            (
                "PUT /products/:id",
                async {
                    let patch: ProductPatch = body(req).await?;
                    json(StatusCode::OK, &s.update_product(id, patch).await?)
                }
                .await,
            )
        }
        (&Method::DELETE, ["products", id]) => {
            let id = id!(id, "product");
            (
                "DELETE /products/:id",
                async {
                    s.delete_product(id).await?;
                    Ok(no_content())
                }
                .await,
            )
        }
        (&Method::POST, ["customers"]) => (
            "POST /customers",
            async {
                let c: NewCustomer = body(req).await?;
                json(StatusCode::CREATED, &s.create_customer(c).await?)
            }
            .await,
        ),
        (&Method::GET, ["customers", id]) => {
            let id = id!(id, "customer");
            (
                "GET /customers/:id",
                async { json(StatusCode::OK, &s.customer(id).await?) }.await,
            )
        }
        (&Method::PUT, ["customers", id]) => {
            let id = id!(id, "customer");
            (
                "PUT /customers/:id",
                async {
                    let patch: CustomerPatch = body(req).await?;
                    json(StatusCode::OK, &s.update_customer(id, patch).await?)
                }
                .await,
            )
        }
        (&Method::DELETE, ["customers", id]) => {
            let id = id!(id, "customer");
            (
                "DELETE /customers/:id",
                async {
                    s.delete_customer(id).await?;
                    Ok(no_content())
                }
                .await,
            )
        }
        (&Method::POST, ["customers", id, "addresses"]) => {
            let id = id!(id, "customer");
            (
                "POST /customers/:id/addresses",
                async {
                    let a: NewAddress = body(req).await?;
                    json(StatusCode::CREATED, &s.add_address(id, a).await?)
                }
                .await,
            )
        }
        (&Method::GET, ["customers", id, "addresses"]) => {
            let id = id!(id, "customer");
            (
                "GET /customers/:id/addresses",
                async { json(StatusCode::OK, &s.addresses(id).await?) }.await,
            )
        }
        (&Method::DELETE, ["customers", id, "addresses", aid]) => {
            let id = id!(id, "customer");
            let aid = id!(aid, "address");
            (
                "DELETE /customers/:id/addresses/:id",
                async {
                    s.delete_address(id, aid).await?;
                    Ok(no_content())
                }
                .await,
            )
        }
        (&Method::GET, ["customers", id, "cart"]) => {
            let id = id!(id, "customer");
            (
                "GET /customers/:id/cart",
                async { json(StatusCode::OK, &s.cart(id).await?) }.await,
            )
        }
        (&Method::POST, ["customers", id, "cart"]) => {
            let id = id!(id, "customer");
            (
                "POST /customers/:id/cart",
                async {
                    let item: CartAdd = body(req).await?;
                    json(
                        StatusCode::OK,
                        &s.add_to_cart(id, item.product_id, item.qty).await?,
                    )
                }
                .await,
            )
        }
        (&Method::PUT, ["customers", id, "cart", pid]) => {
            let id = id!(id, "customer");
            let pid = id!(pid, "product");
            (
                "PUT /customers/:id/cart/:id",
                async {
                    let q: CartQty = body(req).await?;
                    json(StatusCode::OK, &s.set_cart_qty(id, pid, q.qty).await?)
                }
                .await,
            )
        }
        (&Method::DELETE, ["customers", id, "cart", pid]) => {
            let id = id!(id, "customer");
            let pid = id!(pid, "product");
            (
                "DELETE /customers/:id/cart/:id",
                async { json(StatusCode::OK, &s.remove_from_cart(id, pid).await?) }.await,
            )
        }
        (&Method::POST, ["customers", id, "checkout"]) => {
            let id = id!(id, "customer");
            (
                "POST /customers/:id/checkout",
                async { json(StatusCode::CREATED, &s.checkout(id).await?) }.await,
            )
        }
        (&Method::GET, ["customers", id, "orders"]) => {
            let id = id!(id, "customer");
            (
                "GET /customers/:id/orders",
                async {
                    let limit = match query_pairs(&query).find(|(k, _)| k == "limit") {
                        Some((_, v)) => parse_num::<u32>("limit", &v)?,
                        None => 20,
                    };
                    json(StatusCode::OK, &s.orders(id, limit).await?)
                }
                .await,
            )
        }
        (&Method::GET, ["customers", id, "orders", oid]) => {
            let id = id!(id, "customer");
            let oid = id!(oid, "order");
            (
                "GET /customers/:id/orders/:id",
                async { json(StatusCode::OK, &s.order(id, oid).await?) }.await,
            )
        }
        _ => (
            "unknown",
            Err(Error::not_found(format!("no route {method} {path}"))),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CartAdd {
    product_id: u64,
    #[serde(default = "one")]
    qty: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CartQty {
    qty: u32,
}

async fn health(app: &App) -> Result<Reply, Error> {
    app.store.ping().await?;
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "ok", "products": app.counts.products, "customers": app.counts.customers }),
    )
}

fn parse_search(query: &str) -> Result<Search, Error> {
    let mut s = Search {
        limit: 20,
        ..Default::default()
    };
    for (k, v) in query_pairs(query) {
        match k.as_str() {
            "q" if !v.is_empty() => s.q = Some(v),
            "q" => {}
            "category" => s.category = Some(v),
            "min_price" => s.min_price = Some(parse_num("min_price", &v)?),
            "max_price" => s.max_price = Some(parse_num("max_price", &v)?),
            "limit" => s.limit = parse_num("limit", &v)?,
            "offset" => s.offset = parse_num("offset", &v)?,
            "sort" => {
                s.sort = Sort::parse(&v).ok_or_else(|| {
                    Error::invalid(format!(
                        "sort must be relevance, price, -price, newest or name, not {v:?}"
                    ))
                })?;
            }
            other => return Err(Error::invalid(format!("unknown parameter {other:?}"))),
        }
    }
    Ok(s)
}

/// `a=1&b=x%20y` → ("a","1"), ("b","x y"); `+` is a space.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_num<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::invalid(format!("{what} must be a non-negative integer, not {v:?}")))
}

fn parse_id(seg: &str, what: &str) -> Result<u64, Error> {
    match seg.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Error::invalid(format!(
            "{what} id must be a positive integer, not {seg:?}"
        ))),
    }
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Error> {
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Error::Invalid(format!("body too large (limit {MAX_BODY} bytes)"))
            } else {
                Error::Invalid(format!("reading the body: {e}"))
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("bad JSON body: {e}")))
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Reply, Error> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Invalid(e.to_string()))?;
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(r)
}

fn no_content() -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

fn error_reply(e: &Error) -> Reply {
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        match e {
            Error::Invalid(m) if m.starts_with("body too large") => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    };
    if status.is_server_error() {
        tracing::warn!("{status}: {e}");
    }
    let body = serde_json::json!({ "error": e.to_string() }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let pairs: Vec<_> = query_pairs("q=red+shoe&category=a%2Fb&x=%zz&y=%4").collect();
        assert_eq!(pairs[0], ("q".into(), "red shoe".into()));
        assert_eq!(pairs[1], ("category".into(), "a/b".into()));
        assert_eq!(pairs[2], ("x".into(), "%zz".into()));
        assert_eq!(pairs[3], ("y".into(), "%4".into()));
    }

    #[test]
    fn search_parameters_are_checked() {
        assert!(parse_search("limit=abc").is_err());
        assert!(parse_search("sort=sideways").is_err());
        assert!(parse_search("colour=red").is_err());
        let s = parse_search("q=x&min_price=5&sort=-price&limit=7").unwrap();
        assert_eq!(
            (s.min_price, s.sort, s.limit),
            (Some(5), Sort::PriceDesc, 7)
        );
    }
}
