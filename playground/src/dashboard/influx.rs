//! InfluxDB 1.x over its HTTP API: InfluxQL queries (`GET /query`) and line-protocol
//! writes (`POST /write`), with a timeout and a size limit on every answer.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// An InfluxDB that does not answer within this is treated as unreachable: the page
/// refreshes every 2 s and must say so rather than hang.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Largest answer read. Every query the dashboard sends is bounded to a few hundred
/// points per series and a handful of series (well under 1 MiB); this only stops a
/// misbehaving server from filling our memory.
const MAX_BODY: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("bad InfluxDB URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("InfluxDB unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("InfluxDB at {url} did not answer within {TIMEOUT:?}")]
    Timeout { url: String },
    #[error("database {0:?} does not exist (yet)")]
    NoDatabase(String),
    #[error("InfluxDB answered HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("InfluxDB rejected the query: {0}")]
    Query(String),
    #[error("unreadable InfluxDB answer: {0}")]
    Parse(String),
}

impl InfluxError {
    /// True when the server is not there at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }
}

/// One series of an InfluxQL answer.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

impl Series {
    /// The value of `column` in each row, as (epoch ms, number); rows without a number
    /// are skipped.
    pub fn points(&self, column: &str) -> Vec<(i64, f64)> {
        let Some(i) = self.columns.iter().position(|c| c == column) else {
            return Vec::new();
        };
        self.values
            .iter()
            .filter_map(|row| Some((row.first()?.as_i64()?, row.get(i)?.as_f64()?)))
            .collect()
    }

    pub fn tag(&self, key: &str) -> &str {
        self.tags.get(key).map_or("", String::as_str)
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<StatementAnswer>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StatementAnswer {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

/// A client for one InfluxDB database.
#[derive(Debug, Clone)]
pub struct Influx {
    base: String,
    db: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Influx {
    /// `url` is `http://HOST:PORT` (InfluxDB's HTTP API; no TLS).
    pub fn new(url: &str, db: &str) -> Result<Self, InfluxError> {
        let base = url.trim_end_matches('/').to_string();
        let bad = |reason: &str| InfluxError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = base.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(bad("expected http://HOST:PORT"));
        }
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            // At most a few connections kept for the page's parallel view requests.
            .pool_max_idle_per_host(8)
            .build_http();
        Ok(Influx {
            base,
            db: db.to_string(),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    /// Runs one or more `;`-separated statements; one result per statement, in order.
    pub async fn query(&self, influxql: &str) -> Result<Vec<Vec<Series>>, InfluxError> {
        let uri = format!(
            "{}/query?db={}&epoch=ms&q={}",
            self.base,
            encode(&self.db),
            encode(influxql)
        );
        let body = self.send(Method::GET, &uri, Bytes::new()).await?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| InfluxError::Parse(e.to_string()))?;
        if let Some(error) = answer.error {
            return Err(self.classify(error));
        }
        answer
            .results
            .into_iter()
            .map(|r| match r.error {
                Some(error) => Err(self.classify(error)),
                None => Ok(r.series),
            })
            .collect()
    }

    /// Writes line protocol (timestamps in nanoseconds).
    pub async fn write(&self, lines: &str) -> Result<(), InfluxError> {
        let uri = format!("{}/write?db={}&precision=ns", self.base, encode(&self.db));
        self.send(Method::POST, &uri, Bytes::from(lines.to_string()))
            .await
            .map(drop)
    }

    fn classify(&self, error: String) -> InfluxError {
        if error.starts_with("database not found") {
            InfluxError::NoDatabase(self.db.clone())
        } else {
            InfluxError::Query(error)
        }
    }

    async fn send(&self, method: Method, uri: &str, body: Bytes) -> Result<Bytes, InfluxError> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| InfluxError::Url {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| InfluxError::Unreachable {
                        url: self.base.clone(),
                        reason: root_cause(&e),
                    })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| InfluxError::Parse(e.to_string()))?
                .to_bytes();
            Ok::<_, InfluxError>((status, body))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| InfluxError::Timeout {
                url: self.base.clone(),
            })??;
        if status.is_success() {
            return Ok(body);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if text.contains("database not found") {
            return Err(InfluxError::NoDatabase(self.db.clone()));
        }
        Err(InfluxError::Status { status, body: text })
    }
}

/// The innermost error's message ("Connection refused (os error 111)"), which says
/// more than hyper's "client error (Connect)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// Percent-encodes a query-string component (RFC 3986 unreserved characters pass).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_influxql() {
        assert_eq!(
            encode(r#"SELECT "a" FROM x WHERE r = 'b c'"#),
            "SELECT%20%22a%22%20FROM%20x%20WHERE%20r%20%3D%20%27b%20c%27"
        );
    }

    #[test]
    fn rejects_urls_it_cannot_use() {
        assert!(Influx::new("https://h:8086", "db").is_err());
        assert!(Influx::new("localhost:8086", "db").is_err());
        assert!(Influx::new("http://127.0.0.1:8086/", "db").is_ok());
    }

    #[test]
    fn reads_points_of_a_column() {
        let s: Series = serde_json::from_str(
            r#"{"name":"m","tags":{"run":"a"},"columns":["time","sum"],"values":[[1000,2.5],[2000,null]]}"#,
        )
        .unwrap();
        assert_eq!(s.points("sum"), vec![(1000, 2.5)]);
        assert_eq!(s.tag("run"), "a");
    }
}
