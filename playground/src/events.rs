//! Events for the dashboard's markers, written to InfluxDB's `events` measurement by
//! whoever causes them. The line-protocol format (one line per event):
//!
//! ```text
//! events,source=<who>,kind=<what>[,run=<run label>] label="<text>" <unix ns>
//! ```
//!
//! `source`: playground, reshard, ramp, …; `kind`: stage, replay-start, replay-end,
//! ramp-step, reshard, …; `run` (optional): the replay's `--label`. `label` is the text
//! drawn beside the marker. Tag values escape `,`, `=` and space with `\`; the label
//! escapes `"` and `\`. From a shell (what vitess/reshard.sh does):
//!
//! ```text
//! curl -s -XPOST "$SQLREPLAY_INFLUX_URL/write?db=sqlreplay&precision=ns" \
//!   --data-binary "events,source=reshard,kind=reshard label=\"copy starts\" $(date +%s%N)"
//! ```
//!
//! or `playground event --influx URL --kind ramp-step --label "ramp 4x"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;

use crate::dashboard::{Influx, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub source: String,
    pub kind: String,
    pub run: Option<String>,
    pub label: String,
    pub unix_ns: i64,
}

impl Event {
    /// An event happening now.
    pub fn now(source: &str, kind: &str, run: Option<&str>, label: &str) -> Self {
        Event {
            source: source.into(),
            kind: kind.into(),
            run: run.map(str::to_string),
            label: label.into(),
            unix_ns: now_ms().saturating_mul(1_000_000),
        }
    }

    /// The event as one line of InfluxDB line protocol.
    pub fn line(&self) -> String {
        let tag = |s: &str| {
            let s = if s.is_empty() { "-" } else { s };
            s.replace('\\', "\\\\")
                .replace(',', "\\,")
                .replace('=', "\\=")
                .replace([' ', '\n'], "\\ ")
        };
        let mut line = format!(
            "events,source={},kind={}",
            tag(&self.source),
            tag(&self.kind)
        );
        if let Some(run) = self.run.as_deref().filter(|r| !r.is_empty()) {
            line.push_str(&format!(",run={}", tag(run)));
        }
        let label = self
            .label
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', " ");
        format!("{line} label=\"{label}\" {}", self.unix_ns)
    }
}

/// Writes events from blocking code (the demo's stages), best effort: the story goes
/// on if InfluxDB is gone, with one warning.
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    influx: Influx,
    rt: tokio::runtime::Runtime,
    warned: AtomicBool,
}

impl EventLog {
    pub fn new(influx_url: &str, database: &str) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the event writer's runtime")?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                influx: Influx::new(influx_url, database)?,
                rt,
                warned: AtomicBool::new(false),
            }),
        })
    }

    pub fn write(&self, event: &Event) {
        let inner = &self.inner;
        if let Err(e) = inner.rt.block_on(inner.influx.write(&event.line()))
            && !inner.warned.swap(true, Ordering::Relaxed)
        {
            eprintln!("playground: could not write an event to InfluxDB ({e}); carrying on");
        }
    }

    /// Writes an event from the playground happening now.
    pub fn note(&self, kind: &str, run: Option<&str>, label: &str) {
        self.write(&Event::now("playground", kind, run, label));
    }
}

/// Runs `replay` between a replay-start and a replay-end event for run `run`.
pub fn around_replay<T>(
    events: Option<&EventLog>,
    run: &str,
    replay: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if let Some(events) = events {
        events.note("replay-start", Some(run), &format!("replay {run} starts"));
    }
    let result = replay();
    if let Some(events) = events {
        let how = if result.is_ok() { "ends" } else { "failed" };
        events.note("replay-end", Some(run), &format!("replay {run} {how}"));
    }
    result
}

#[derive(Debug, Args)]
pub struct EventArgs {
    /// InfluxDB's HTTP API, e.g. http://localhost:8086.
    #[arg(long, env = "SQLREPLAY_INFLUX_URL")]
    pub influx: String,
    #[arg(long, default_value = "sqlreplay")]
    pub database: String,
    /// Who causes it: playground, reshard, ramp, …
    #[arg(long, default_value = "cli")]
    pub source: String,
    /// What it is: replay-start, replay-end, ramp-step, reshard, stage, …
    #[arg(long)]
    pub kind: String,
    /// The replay run it belongs to, if any (its --label).
    #[arg(long)]
    pub run: Option<String>,
    /// The text drawn beside the marker.
    #[arg(long)]
    pub label: String,
}

/// `playground event`: writes one event now, and fails if InfluxDB does not take it.
pub fn run(args: EventArgs) -> Result<()> {
    let influx = Influx::new(&args.influx, &args.database)?;
    let event = Event::now(&args.source, &args.kind, args.run.as_deref(), &args.label);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(influx.write(&event.line()))
        .context("writing the event")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_protocol_escapes_tags_and_label() {
        let e = Event {
            source: "playground".into(),
            kind: "replay start".into(),
            run: Some("a,b=c".into()),
            label: r#"say "hi" \o/"#.into(),
            unix_ns: 42,
        };
        assert_eq!(
            e.line(),
            r#"events,source=playground,kind=replay\ start,run=a\,b\=c label="say \"hi\" \\o/" 42"#
        );
        let e = Event { run: None, ..e };
        assert!(
            e.line()
                .starts_with(r"events,source=playground,kind=replay\ start label=")
        );
    }
}
