//! The dashboard's HTTP server (hyper 1): the page, its assets, and the fragments the
//! page refreshes. Only this server talks to InfluxDB.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

use super::classes::ClassNames;
use super::influx::Influx;
use super::queries::{Range, Window};
use super::{page, views};
use views::View;

/// Connections served at once; more wait in the listener's backlog. A page makes eight
/// requests per refresh, so this leaves room for a few open tabs and no more.
const MAX_CONNECTIONS: usize = 32;

#[derive(Debug)]
struct State {
    influx: Influx,
    names: ClassNames,
    /// Where "whole demo" starts, once known (data only accumulates, so it stays).
    earliest: Mutex<Option<i64>>,
}

/// Serves until the listener fails.
pub async fn serve(
    listener: std::net::TcpListener,
    influx: Influx,
    names: ClassNames,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let state = Arc::new(State {
        influx,
        names,
        earliest: Mutex::new(None),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only".into(),
        );
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| param(&query, name);
    let html = "text/html; charset=utf-8";
    let influx = &state.influx;
    match path.as_str() {
        "/" => reply(
            StatusCode::OK,
            html,
            page::index(influx.url(), influx.database()),
        ),
        "/app.js" => reply(StatusCode::OK, "text/javascript", page::SCRIPT.into()),
        "/style.css" => reply(StatusCode::OK, "text/css", page::STYLE.into()),
        "/status" => {
            let w = window(state, param("range")).await;
            let runs = views::runs(influx, &w).await;
            reply(StatusCode::OK, html, page::status(influx.url(), &runs))
        }
        _ => match path.strip_prefix("/view/").and_then(View::parse) {
            Some(view) => {
                let w = window(state, param("range")).await;
                let run = param("run");
                let data = views::fetch(influx, &state.names, view, w, run.as_deref()).await;
                reply(StatusCode::OK, html, page::view(view, &data))
            }
            None => reply(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
        },
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    // The page refreshes itself; a cached fragment would show stale data.
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The window a range means now. "Whole demo" starts at the first data point; until
/// there is one (or while InfluxDB is unreachable) it shows the last 15 minutes.
async fn window(state: &State, range: Option<String>) -> Window {
    let now = now_ms();
    let range = range
        .as_deref()
        .and_then(Range::parse)
        .unwrap_or(Range::Last15m);
    if let Some(span) = range.span_ms() {
        return Window::new(now - span, now);
    }
    let known = state.earliest.lock().ok().and_then(|e| *e);
    let earliest = match known {
        Some(t) => Some(t),
        None => views::earliest(&state.influx, now).await.ok().flatten(),
    };
    if let (Some(t), Ok(mut cache)) = (earliest, state.earliest.lock()) {
        *cache = Some(t);
    }
    // A little room before the first point, so it is not on the axis.
    Window::new(earliest.map_or(now - 15 * 60_000, |t| t - 5_000), now)
}

/// A query-string parameter, percent-decoded.
fn param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_parameters() {
        assert_eq!(
            param("range=5m&run=a%20b%27c", "run").as_deref(),
            Some("a b'c")
        );
        assert_eq!(param("range=5m", "run"), None);
        assert_eq!(decode("%zz+%41"), "%zz A");
    }
}
