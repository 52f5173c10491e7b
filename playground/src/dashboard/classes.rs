//! Query-class fingerprints by class id, so the slowest-classes legend says what a
//! class is, not only its id. InfluxDB only has the id (a tag); the fingerprints come
//! from `replayer inspect --json` of the capture being replayed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// Fingerprints kept at most. `inspect` lists classes most frequent first, so a capture
/// with more classes keeps names for its most frequent ones.
const MAX_NAMES: usize = 10_000;

/// Shared between the server and whoever learns a capture's classes (the demo).
#[derive(Debug, Clone, Default)]
pub struct ClassNames(Arc<Mutex<HashMap<String, String>>>);

#[derive(Debug, Deserialize)]
struct Inspection {
    #[serde(default)]
    top_by_count: Vec<Class>,
}

#[derive(Debug, Deserialize)]
struct Class {
    id: String,
    fingerprint: String,
}

impl ClassNames {
    /// Learns the classes of a `replayer inspect --json` answer; returns how many it
    /// holds now.
    pub fn learn(&self, inspect_json: &str) -> Result<usize, serde_json::Error> {
        let inspection: Inspection = serde_json::from_str(inspect_json)?;
        let Ok(mut names) = self.0.lock() else {
            return Ok(0);
        };
        for class in inspection.top_by_count {
            if names.len() >= MAX_NAMES && !names.contains_key(&class.id) {
                break;
            }
            names.insert(class.id, class.fingerprint);
        }
        Ok(names.len())
    }

    /// The fingerprint of a class id, if known.
    pub fn get(&self, id: &str) -> Option<String> {
        self.0.lock().ok()?.get(id).cloned()
    }
}

/// A fingerprint cut to `max` characters for a legend.
pub fn shorten(fingerprint: &str, max: usize) -> String {
    if fingerprint.chars().count() <= max {
        return fingerprint.to_string();
    }
    let cut: String = fingerprint.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_from_inspect_json() {
        let names = ClassNames::default();
        let json = r#"{"commands": 3, "top_by_count": [
            {"id": "00000000000000aa", "fingerprint": "select ?", "count": 2, "total_ms": 1.0, "errors": 0}
        ]}"#;
        assert_eq!(names.learn(json).unwrap(), 1);
        assert_eq!(names.get("00000000000000aa").as_deref(), Some("select ?"));
        assert_eq!(names.get("bb"), None);
        assert!(names.learn("not json").is_err());
        assert_eq!(shorten("select a, b from t", 8), "select …");
    }
}
