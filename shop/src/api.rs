//! The HTTP API: JSON over HTTP/1.1 on hyper, one route table, one error shape
//! (`{"error": "..."}` with 400 / 404 / 405 / 409 / 413 / 503; a 405 names the path's
//! methods in `Allow`).
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
//!
//! Limits, so that no client can make the server hold more than a bounded amount: a
//! body of at most 64 KiB (a larger declared `Content-Length` is refused before reading),
//! [`Limits::max_connections`] connections at once, each closed if it sends no whole
//! request head within [`Limits::header_read_timeout`], and error messages that repeat
//! at most 64 characters of the input.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::error::{ECHO_CHARS, Error, clip, clip_to};
use crate::store::{
    Counts, CustomerPatch, NewAddress, NewCustomer, NewProduct, ProductPatch, Search, Sort, Store,
};

/// Request bodies above this are refused (413): nothing the API takes is near it, and a
/// client must not be able to make the server buffer without limit.
const MAX_BODY: usize = 64 * 1024;

/// Default of [`Limits::max_connections`]: far above what `shop drive` opens (one per
/// virtual user), far below the default file-descriptor limits of a service.
pub const MAX_CONNECTIONS: usize = 4096;

/// Default of [`Limits::header_read_timeout`]: generous for any real client on any
/// network, short enough that idle sockets give their slots back soon.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What one server holds open and how long it waits for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many connections are served at once; further ones wait in the
    /// kernel's accept queue. Bounds memory, file descriptors and tasks whatever clients
    /// do. It cannot by itself keep idle clients from taking every slot: that is what
    /// `header_read_timeout` is for.
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its previous response (keep-alive), is closed. So an idle or trickling
    /// client holds its slot for this long at most, and requests queued behind a flood of
    /// them wait about (flood / max_connections) × this, not for ever.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

#[derive(Debug)]
pub struct App {
    pub store: Store,
    /// Row counts read at start-up, for the driver (seeded ids are 1..=N).
    pub counts: Counts,
}

type Reply = Response<Full<Bytes>>;

/// Serves the API on `listener` with the default [`Limits`] until `shutdown` resolves,
/// then lets in-flight requests finish.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(app, listener, shutdown, Limits::default()).await
}

/// [`serve`] with the given limits.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) -> std::io::Result<()> {
    let routes = Arc::new(Routes::new().map_err(std::io::Error::other)?);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // A slot first, then the connection: at the limit, new clients wait in the
        // kernel's queue rather than in our memory.
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
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (app, routes, http) = (app.clone(), routes.clone(), http.clone());
        tasks.spawn(async move {
            let _permit = permit;
            connection(app, routes, &http, stream, peer).await;
        });
        // Reap finished connections so the set does not grow with the total served.
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // In-flight requests get a moment; keep-alive connections are cut after it.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Serves one connection until the client closes it, it errs or it times out.
async fn connection(
    app: Arc<App>,
    routes: Arc<Routes>,
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let (app, routes) = (app.clone(), routes.clone());
        async move { Ok::<_, Infallible>(handle(&app, &routes, req).await) }
    });
    if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
        // Header-read timeouts land here too: routine, so not a warning.
        tracing::debug!(%peer, "connection: {e}");
    }
}

async fn handle(app: &App, routes: &Routes, req: Request<Incoming>) -> Reply {
    let start = Instant::now();
    let (route, result) = dispatch(app, routes, req).await;
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => error_reply(&e),
    };
    crate::metrics::request(route, reply.status().as_u16(), start.elapsed());
    reply
}

/// What a handler returns: boxed, so that handlers of different routes share one type
/// and fit in one table.
type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, Error>> + Send + 'a>>;
type Handler = for<'a> fn(&'a App, Request<Incoming>, Ids) -> HandlerFuture<'a>;

/// The ids of a request's path, in path order: `/customers/{customer}/cart/{product}`
/// gives `[customer, product]`. No route has more than two.
#[derive(Debug, Clone, Copy, Default)]
struct Ids([u64; 2]);

#[derive(Debug)]
struct Route {
    method: Method,
    /// A matchit pattern; each parameter is an id, named for what it identifies (the
    /// name is used in the error for a bad id).
    path: &'static str,
    /// For metrics: the route, never the ids themselves.
    name: &'static str,
    handler: Handler,
}

/// Turns `async fn f(&App, Request<Incoming>, Ids) -> Result<Reply, Error>` into a
/// [`Handler`].
macro_rules! h {
    ($f:ident) => {{
        fn boxed(app: &App, req: Request<Incoming>, ids: Ids) -> HandlerFuture<'_> {
            Box::pin($f(app, req, ids))
        }
        boxed as Handler
    }};
}

macro_rules! route {
    ($method:ident $path:literal $name:literal => $f:ident) => {
        Route {
            method: Method::$method,
            path: $path,
            name: $name,
            handler: h!($f),
        }
    };
}

/// Every route of the API.
static ROUTES: &[Route] = &[
    route!(GET "/health" "GET /health" => health),
    route!(GET "/products" "GET /products" => search_products),
    route!(POST "/products" "POST /products" => create_product),
    route!(GET "/products/{product}" "GET /products/:id" => get_product),
    route!(PUT "/products/{product}" "PUT /products/:id" => update_product),
    route!(DELETE "/products/{product}" "DELETE /products/:id" => delete_product),
    route!(POST "/customers" "POST /customers" => create_customer),
    route!(GET "/customers/{customer}" "GET /customers/:id" => get_customer),
    route!(PUT "/customers/{customer}" "PUT /customers/:id" => update_customer),
    route!(DELETE "/customers/{customer}" "DELETE /customers/:id" => delete_customer),
    route!(POST "/customers/{customer}/addresses" "POST /customers/:id/addresses" => add_address),
    route!(GET "/customers/{customer}/addresses" "GET /customers/:id/addresses" => addresses),
    route!(DELETE "/customers/{customer}/addresses/{address}" "DELETE /customers/:id/addresses/:id" => delete_address),
    route!(GET "/customers/{customer}/cart" "GET /customers/:id/cart" => cart),
    route!(POST "/customers/{customer}/cart" "POST /customers/:id/cart" => add_to_cart),
    route!(PUT "/customers/{customer}/cart/{product}" "PUT /customers/:id/cart/:id" => set_cart_qty),
    route!(DELETE "/customers/{customer}/cart/{product}" "DELETE /customers/:id/cart/:id" => remove_from_cart),
    route!(POST "/customers/{customer}/checkout" "POST /customers/:id/checkout" => checkout),
    route!(GET "/customers/{customer}/orders" "GET /customers/:id/orders" => orders),
    route!(GET "/customers/{customer}/orders/{order}" "GET /customers/:id/orders/:id" => order),
];

/// [`ROUTES`] by path: each path with the routes (methods) it has, so that a known path
/// asked with another method is told which ones it takes (405 + `Allow`).
#[derive(Debug)]
struct Routes(matchit::Router<Vec<&'static Route>>);

impl Routes {
    fn new() -> Result<Self, matchit::InsertError> {
        let mut by_path: Vec<(&str, Vec<&'static Route>)> = Vec::new();
        for r in ROUTES {
            match by_path.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, rs)) => rs.push(r),
                None => by_path.push((r.path, vec![r])),
            }
        }
        let mut router = matchit::Router::new();
        for (path, rs) in by_path {
            router.insert(path, rs)?;
        }
        Ok(Routes(router))
    }
}

/// Routes one request. Returns the route's name (for metrics) and the reply.
async fn dispatch(
    app: &App,
    routes: &Routes,
    req: Request<Incoming>,
) -> (&'static str, Result<Reply, Error>) {
    // Leading and trailing slashes never mattered: `/products/` is `/products`.
    let path = format!("/{}", req.uri().path().trim_matches('/'));
    let Ok(found) = routes.0.at(&path) else {
        let (method, path) = (req.method().as_str(), req.uri().path());
        let e = Error::not_found(format!("no route {} {}", clip(method), clip(path)));
        return ("unknown", Err(e));
    };
    let Some(route) = found.value.iter().find(|r| r.method == req.method()) else {
        let allow: Vec<&str> = found.value.iter().map(|r| r.method.as_str()).collect();
        let e = Error::MethodNotAllowed {
            method: clip(req.method().as_str()).into_owned(),
            path: clip(req.uri().path()).into_owned(),
            allow: allow.join(", "),
        };
        return ("method not allowed", Err(e));
    };
    let mut ids = Ids::default();
    for ((what, seg), id) in found.params.iter().zip(&mut ids.0) {
        match parse_id(seg, what) {
            Ok(v) => *id = v,
            Err(e) => return ("invalid id", Err(e)),
        }
    }
    (route.name, (route.handler)(app, req, ids).await)
}

// ---- handlers: one per route ----------------------------------------------------------

async fn health(app: &App, _: Request<Incoming>, _: Ids) -> Result<Reply, Error> {
    app.store.ping().await?;
    json(
        StatusCode::OK,
        &serde_json::json!({ "status": "ok", "products": app.counts.products, "customers": app.counts.customers }),
    )
}

async fn search_products(app: &App, req: Request<Incoming>, _: Ids) -> Result<Reply, Error> {
    let search = parse_search(req.uri().query().unwrap_or(""))?;
    json(StatusCode::OK, &app.store.search(&search).await?)
}

async fn create_product(app: &App, req: Request<Incoming>, _: Ids) -> Result<Reply, Error> {
    let p: NewProduct = body(req).await?;
    json(StatusCode::CREATED, &app.store.create_product(p).await?)
}

async fn get_product(app: &App, _: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.product(id).await?)
}

async fn update_product(
    app: &App,
    req: Request<Incoming>,
    Ids([id, _]): Ids,
) -> Result<Reply, Error> {
    let patch: ProductPatch = body(req).await?;
    json(StatusCode::OK, &app.store.update_product(id, patch).await?)
}

async fn delete_product(
    app: &App,
    _: Request<Incoming>,
    Ids([id, _]): Ids,
) -> Result<Reply, Error> {
    app.store.delete_product(id).await?;
    Ok(no_content())
}

async fn create_customer(app: &App, req: Request<Incoming>, _: Ids) -> Result<Reply, Error> {
    let c: NewCustomer = body(req).await?;
    json(StatusCode::CREATED, &app.store.create_customer(c).await?)
}

async fn get_customer(app: &App, _: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.customer(id).await?)
}

async fn update_customer(
    app: &App,
    req: Request<Incoming>,
    Ids([id, _]): Ids,
) -> Result<Reply, Error> {
    let patch: CustomerPatch = body(req).await?;
    json(StatusCode::OK, &app.store.update_customer(id, patch).await?)
}

async fn delete_customer(
    app: &App,
    _: Request<Incoming>,
    Ids([id, _]): Ids,
) -> Result<Reply, Error> {
    app.store.delete_customer(id).await?;
    Ok(no_content())
}

async fn add_address(app: &App, req: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    let a: NewAddress = body(req).await?;
    json(StatusCode::CREATED, &app.store.add_address(id, a).await?)
}

async fn addresses(app: &App, _: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.addresses(id).await?)
}

async fn delete_address(
    app: &App,
    _: Request<Incoming>,
    Ids([id, aid]): Ids,
) -> Result<Reply, Error> {
    app.store.delete_address(id, aid).await?;
    Ok(no_content())
}

async fn cart(app: &App, _: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.cart(id).await?)
}

async fn add_to_cart(app: &App, req: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    let item: CartAdd = body(req).await?;
    let cart = app.store.add_to_cart(id, item.product_id, item.qty).await?;
    json(StatusCode::OK, &cart)
}

async fn set_cart_qty(
    app: &App,
    req: Request<Incoming>,
    Ids([id, pid]): Ids,
) -> Result<Reply, Error> {
    let q: CartQty = body(req).await?;
    json(
        StatusCode::OK,
        &app.store.set_cart_qty(id, pid, q.qty).await?,
    )
}

async fn remove_from_cart(
    app: &App,
    _: Request<Incoming>,
    Ids([id, pid]): Ids,
) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.remove_from_cart(id, pid).await?)
}

async fn checkout(app: &App, _: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    json(StatusCode::CREATED, &app.store.checkout(id).await?)
}

async fn orders(app: &App, req: Request<Incoming>, Ids([id, _]): Ids) -> Result<Reply, Error> {
    let query = req.uri().query().unwrap_or("");
    let limit = match query_pairs(query).find(|(k, _)| k == "limit") {
        Some((_, v)) => parse_num::<u32>("limit", &v)?,
        None => 20,
    };
    json(StatusCode::OK, &app.store.orders(id, limit).await?)
}

async fn order(app: &App, _: Request<Incoming>, Ids([id, oid]): Ids) -> Result<Reply, Error> {
    json(StatusCode::OK, &app.store.order(id, oid).await?)
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
                        "sort must be relevance, price, -price, newest or name, not {:?}",
                        clip(&v)
                    ))
                })?;
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown parameter {:?}",
                    clip(other)
                )));
            }
        }
    }
    Ok(s)
}

/// `a=1&b=x%20y` → ("a","1"), ("b","x y"), as HTML forms encode them: `+` is a space
/// (replaced before decoding, so `%2B` stays a plus), a `%` not followed by two hex
/// digits is kept as it is, and bytes that are not UTF-8 become U+FFFD.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(k), form_decode(v))
    })
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_num<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, Error> {
    v.parse().map_err(|_| {
        Error::invalid(format!(
            "{what} must be a non-negative integer, not {:?}",
            clip(v)
        ))
    })
}

fn parse_id(seg: &str, what: &str) -> Result<u64, Error> {
    match seg.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(Error::invalid(format!(
            "{what} id must be a positive integer, not {:?}",
            clip(seg)
        ))),
    }
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Error> {
    // A declared Content-Length over the limit is refused before reading a byte: the
    // client may be waiting for `100 Continue`, or send slowly, and should hear at once.
    if req.body().size_hint().lower() > MAX_BODY as u64 {
        return Err(Error::TooLarge { limit: MAX_BODY });
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Error::TooLarge { limit: MAX_BODY }
            } else {
                Error::Invalid(format!("reading the body: {e}"))
            }
        })?
        .to_bytes();
    // serde's message quotes the offending field or value, with context worth keeping
    // (what was expected, where): clipped, but less tightly than a bare echo.
    serde_json::from_slice(&bytes).map_err(|e| {
        let e = e.to_string();
        Error::invalid(format!("bad JSON body: {}", clip_to(&e, 3 * ECHO_CHARS)))
    })
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<Reply, Error> {
    let body = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
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
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!("{status}: {e}");
    }
    let body = serde_json::json!({ "error": e.to_string() }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Error::MethodNotAllowed { allow, .. } = e {
        // The methods come from the route table: always a valid header value.
        if let Ok(v) = HeaderValue::from_str(allow) {
            r.headers_mut().insert(ALLOW, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_router() {
        let routes = Routes::new().unwrap();
        for r in ROUTES {
            let path = r.path.replace(['{', '}'], "");
            let found = routes.0.at(&path).unwrap();
            assert!(found.value.iter().any(|x| x.name == r.name), "{}", r.name);
        }
        // An empty segment is no id: no route (404), not a bad id.
        assert!(routes.0.at("/customers//cart").is_err());
    }

    #[test]
    fn queries_decode() {
        let pairs: Vec<_> = query_pairs("q=red+shoe&category=a%2Fb&x=%zz&y=%4").collect();
        assert_eq!(pairs[0], ("q".into(), "red shoe".into()));
        assert_eq!(pairs[1], ("category".into(), "a/b".into()));
        assert_eq!(pairs[2], ("x".into(), "%zz".into()));
        assert_eq!(pairs[3], ("y".into(), "%4".into()));
        // A sign is not a hex digit, and %2B is a plus, not a space.
        let pairs: Vec<_> = query_pairs("s=%+1&t=%2B1&u=caf%C3%A9&v=%FF").collect();
        assert_eq!(pairs[0].1, "% 1");
        assert_eq!(pairs[1].1, "+1");
        assert_eq!(pairs[2].1, "café");
        assert_eq!(pairs[3].1, "\u{FFFD}");
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
