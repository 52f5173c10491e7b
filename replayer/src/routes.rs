//! How vtgate routes each query class: after a replay against Vitess, one representative
//! statement per class goes through `VEXPLAIN PLAN`, and the plan's routes are reduced to
//! an opcode (EqualUnique, Scatter, Unsharded, ...), the keyspaces and the shards
//! touched. Written beside the results as `<results>.routes.json`, which
//! `replayer compare` shows next to the latency columns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use captures::fingerprint::{ClassId, class_id_hex};
use captures::{CaptureReader, Cmd, Record, Value};
use mysql_async::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::classify::Classifier;
use crate::error::Error;
use crate::target::Target;

/// How vtgate routes a class (from a `<results>.routes.json` sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    /// Route opcode, e.g. `EqualUnique`, `Scatter`, `Unsharded`.
    pub opcode: String,
    pub keyspace: Option<String>,
    /// Shards touched, if known.
    pub shards: Option<Shards>,
}

/// How many shards a route touches (`"1"`, `"some"`, `"all"` in the sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shards {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "some")]
    Some,
    #[serde(rename = "all")]
    All,
}

impl Routing {
    /// Whether vtgate sends the class to every shard: the question users ask first
    /// after sharding.
    pub fn is_scatter(&self) -> bool {
        self.shards == Some(Shards::All) || self.opcode.contains("Scatter")
    }
}

/// At most this many classes are explained: each is one round trip, and a capture with
/// more distinct classes than this has bigger problems than routing.
const MAX_CLASSES: usize = 2000;

/// Whether the target is a vtgate (its version string says so).
pub async fn is_vtgate(target: &Target) -> Result<bool, Error> {
    let mut conn = connect(target, None).await?;
    let version: Option<String> = conn
        .query_first("SELECT @@version")
        .await
        .map_err(unreachable)?;
    let _ = conn.disconnect().await;
    Ok(version.is_some_and(|v| v.contains("Vitess")))
}

/// Explains one representative statement per class of `capture` on the vtgate behind
/// `target`. Classes whose statements vtgate cannot explain (session commands, DDL) are
/// left out.
pub async fn explain(capture: &Path, target: &Target) -> Result<BTreeMap<ClassId, Routing>, Error> {
    let (db, examples) = representatives(capture)?;
    let mut conn = connect(target, target.map_db(db.as_deref())).await?;
    let mut out = BTreeMap::new();
    for (class, sql) in examples {
        let plan: Result<Option<String>, _> =
            conn.query_first(format!("VEXPLAIN PLAN {sql}")).await;
        match plan {
            Ok(Some(plan)) => match serde_json::from_str::<Json>(&plan) {
                Ok(plan) => {
                    out.insert(ClassId(class), summarise(&plan));
                }
                Err(e) => tracing::debug!("class {}: unreadable plan: {e}", class_id_hex(class)),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!("class {}: VEXPLAIN failed: {e}", class_id_hex(class)),
        }
    }
    let _ = conn.disconnect().await;
    Ok(out)
}

/// Writes the sidecar file `replayer compare` reads.
pub fn write_sidecar(results: &Path, routes: &BTreeMap<ClassId, Routing>) -> Result<(), Error> {
    let path = format!("{}.routes.json", results.display());
    let text = serde_json::to_string_pretty(routes).unwrap_or_else(|_| "{}".into());
    std::fs::write(&path, text).map_err(|source| Error::Io {
        what: format!("writing {path}"),
        source,
    })
}

async fn connect(target: &Target, db: Option<String>) -> Result<mysql_async::Conn, Error> {
    mysql_async::Conn::new(target.opts_for(db))
        .await
        .map_err(unreachable)
}

fn unreachable(e: mysql_async::Error) -> Error {
    Error::Target {
        url: "vtgate".into(),
        reason: e.to_string(),
    }
}

/// The capture's first default database, and per class the first statement seen, with
/// a prepared statement's placeholders filled from its first execution.
/// The capture's default database and, per class, one statement to explain.
type Representatives = (Option<String>, Vec<(u64, String)>);

fn representatives(capture: &Path) -> Result<Representatives, Error> {
    let reader = CaptureReader::open(capture)?;
    let mut classifier = Classifier::new();
    let mut db = None;
    let mut prepared: HashMap<(u64, u32), (u64, String)> = HashMap::new();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for record in reader {
        // A damaged tail still leaves every class before it explained.
        let Ok(record) = record else { break };
        match record {
            Record::ConnOpen(open) if db.is_none() => db = open.db,
            Record::Command(c) => match &c.cmd {
                Cmd::Query { sql } => {
                    let class = classifier.class_id(sql);
                    if explainable(sql) && seen.insert(class) {
                        out.push((class, String::from_utf8_lossy(sql).into_owned()));
                    }
                }
                Cmd::Prepare { sql, stmt_id, .. } => {
                    let class = classifier.class_id(sql);
                    prepared.insert(
                        (c.conn, *stmt_id),
                        (class, String::from_utf8_lossy(sql).into_owned()),
                    );
                }
                Cmd::Execute {
                    stmt_id, params, ..
                } => {
                    if let Some((class, sql)) = prepared.get(&(c.conn, *stmt_id))
                        && explainable(sql.as_bytes())
                        && !seen.contains(class)
                        && let Some(text) = fill(sql, params.iter().map(|p| &p.value))
                    {
                        seen.insert(*class);
                        out.push((*class, text));
                    }
                }
                _ => {}
            },
            _ => {}
        }
        if out.len() >= MAX_CLASSES {
            break;
        }
    }
    Ok((db, out))
}

fn explainable(sql: &[u8]) -> bool {
    let head: String = String::from_utf8_lossy(&sql[..sql.len().min(16)])
        .trim_start()
        .to_ascii_lowercase();
    ["select", "insert", "update", "delete", "replace"]
        .iter()
        .any(|k| head.starts_with(k))
}

/// Replaces each `?` outside quotes with a literal; None if values are missing or
/// redacted.
pub fn fill<'a>(sql: &str, mut values: impl Iterator<Item = &'a Value>) -> Option<String> {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), '\\') => {
                out.push(c);
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"' | '`') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => out.push_str(&values.next()?.sql_literal()?),
            (None, c) => out.push(c),
        }
    }
    Some(out)
}

/// Reduces a plan to what the report shows: every Route (or DML) operator's variant,
/// the keyspaces, and the shards touched (`1`, `some`, `all`).
pub fn summarise(plan: &Json) -> Routing {
    let mut variants = Vec::new();
    let mut keyspaces = BTreeSet::new();
    walk(plan, &mut variants, &mut keyspaces);
    let shards = if variants
        .iter()
        .any(|v| v == "Scatter" || v == "ByDestination")
    {
        Shards::All
    } else if variants
        .iter()
        .any(|v| v == "IN" || v == "MultiEqual" || v == "Sharded")
    {
        Shards::Some
    } else {
        Shards::One
    };
    let top = plan
        .get("OperatorType")
        .and_then(Json::as_str)
        .unwrap_or("?");
    let opcode = if variants.len() == 1 {
        variants[0].clone()
    } else {
        format!("{top}({})", variants.join("+"))
    };
    Routing {
        opcode,
        keyspace: (!keyspaces.is_empty())
            .then(|| keyspaces.into_iter().collect::<Vec<_>>().join(",")),
        shards: Some(shards),
    }
}

fn walk(node: &Json, variants: &mut Vec<String>, keyspaces: &mut BTreeSet<String>) {
    let op = node
        .get("OperatorType")
        .and_then(Json::as_str)
        .unwrap_or("");
    if matches!(op, "Route" | "Insert" | "Update" | "Delete" | "Upsert")
        && let Some(variant) = node.get("Variant").and_then(Json::as_str)
    {
        variants.push(variant.to_string());
        if let Some(ks) = node.pointer("/Keyspace/Name").and_then(Json::as_str) {
            keyspaces.insert(ks.to_string());
        }
    }
    if let Some(inputs) = node.get("Inputs").and_then(Json::as_array) {
        for input in inputs {
            walk(input, variants, keyspaces);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_outside_quotes() {
        let v = [Value::Int(7), Value::Bytes(b"it's".to_vec())];
        assert_eq!(
            fill("SELECT '?' FROM t WHERE a = ? AND b = ?", v.iter()).as_deref(),
            Some("SELECT '?' FROM t WHERE a = 7 AND b = 'it''s'")
        );
        assert_eq!(fill("SELECT ?", [Value::Redacted].iter()), None);
        assert_eq!(fill("SELECT ?, ?", [Value::Int(1)].iter()), None);
    }

    #[test]
    fn plans_reduce_to_opcode_keyspace_and_shards() {
        let scatter: Json = serde_json::json!({"OperatorType": "Route", "Variant": "Scatter", "Keyspace": {"Name": "customer", "Sharded": true}});
        assert_eq!(
            summarise(&scatter),
            Routing {
                opcode: "Scatter".into(),
                keyspace: Some("customer".into()),
                shards: Some(Shards::All)
            }
        );
        let join = serde_json::json!({"OperatorType": "Join", "Variant": "Join", "Inputs": [
            {"OperatorType": "Route", "Variant": "EqualUnique", "Keyspace": {"Name": "customer"}},
            {"OperatorType": "Route", "Variant": "Unsharded", "Keyspace": {"Name": "commerce"}}]});
        let r = summarise(&join);
        assert_eq!(r.opcode, "Join(EqualUnique+Unsharded)");
        assert_eq!(r.keyspace.as_deref(), Some("commerce,customer"));
        assert_eq!(r.shards, Some(Shards::One));
        // The sidecar spells them as before.
        assert_eq!(serde_json::to_string(&Shards::One).unwrap(), "\"1\"");
    }
}
