//! The first diverging execution of each class, per kind of divergence: what a report
//! shows so a reader can see what was sent and both answers.

use std::collections::HashSet;
use std::sync::Mutex;

use captures::{Cmd, Divergence};

/// Distinct (class, kind) pairs a run keeps an example of. A capture has hundreds of
/// classes at most and a class diverges in a few ways; the bound only stops a
/// pathological capture (a new class per statement) from growing the set and the
/// results file without limit.
const MAX_EXAMPLES: usize = 4096;

/// Longest statement text kept in an example (a bulk INSERT can be megabytes).
const MAX_STATEMENT: usize = 2048;

/// Which (class, kind) pairs already have their example. Touched only by diverging
/// commands, so the lock is rare.
#[derive(Debug, Default)]
pub struct Examples {
    seen: Mutex<HashSet<(u64, Divergence)>>,
}

impl Examples {
    /// Whether this is the first divergence of `kind` in `class` (and room is left).
    pub fn first(&self, class: u64, kind: Divergence) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        seen.len() < MAX_EXAMPLES && seen.insert((class, kind))
    }
}

/// The statement as a report shows it: its SQL, and for an EXECUTE the SQL it was
/// prepared from with its parameters; cut at [`MAX_STATEMENT`] bytes.
pub fn statement(cmd: &Cmd, prepared: Option<&[u8]>) -> String {
    let mut text = match cmd {
        Cmd::Execute { params, .. } => {
            let sql = prepared.map_or_else(
                || "(statement prepared before the capture)".into(),
                String::from_utf8_lossy,
            );
            let values: Vec<String> = params
                .iter()
                .map(|p| p.value.sql_literal().unwrap_or_else(|| "?".into()))
                .collect();
            format!("{sql} -- parameters: ({})", values.join(", "))
        }
        _ => cmd
            .sql_lossy()
            .map_or_else(|| cmd.kind().to_string(), |s| s.into_owned()),
    };
    if text.len() > MAX_STATEMENT {
        let mut cut = MAX_STATEMENT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use captures::Value;

    #[test]
    fn one_example_per_class_and_kind() {
        let e = Examples::default();
        assert!(e.first(1, Divergence::RowsDiffer));
        assert!(!e.first(1, Divergence::RowsDiffer));
        assert!(e.first(1, Divergence::RowCount));
        assert!(e.first(2, Divergence::RowsDiffer));
    }

    #[test]
    fn statements_show_parameters_and_stay_bounded() {
        let cmd = Cmd::Execute {
            stmt_id: 1,
            flags: 0,
            params: vec![
                captures::Param {
                    column_type: 8,
                    unsigned: false,
                    value: Value::Int(7),
                },
                captures::Param {
                    column_type: 253,
                    unsigned: false,
                    value: Value::Bytes(b"o'k".to_vec()),
                },
            ],
        };
        assert_eq!(
            statement(&cmd, Some(b"SELECT ? + ?")),
            "SELECT ? + ? -- parameters: (7, 'o''k')"
        );
        let long = Cmd::Query {
            sql: "é".repeat(MAX_STATEMENT).into_bytes(),
        };
        let text = statement(&long, None);
        assert!(text.len() <= MAX_STATEMENT + '…'.len_utf8() && text.ends_with('…'));
    }
}
