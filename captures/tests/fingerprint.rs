//! Query classes against the reference, pt-fingerprint (percona-toolkit).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use captures::fingerprint::io::{Input, Output, transform, transform_with};
use captures::fingerprint::{Fingerprinter, class_id, class_id_hex, fingerprint};
use proptest::prelude::*;

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fingerprint-cases.sql"
);
const DEVIATIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fingerprint-deviations.json"
);

fn pt_fingerprint(args: &[&str]) -> String {
    let out = Command::new("pt-fingerprint")
        .args(args)
        .output()
        .expect("pt-fingerprint (percona-toolkit) is needed: run scripts/install-deps.sh");
    String::from_utf8(out.stdout).unwrap()
}

fn ours_sql_file(path: &str) -> String {
    let mut out = Vec::new();
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    transform(file, &mut out, Input::Sql, Output::Text).unwrap();
    String::from_utf8(out).unwrap()
}

/// Every case where pt-fingerprint is right: the same text, line for line, which also
/// means the same grouping.
#[test]
fn matches_pt_fingerprint_on_the_case_set() {
    let pt = pt_fingerprint(&[CASES]);
    let ours = ours_sql_file(CASES);
    let pt: Vec<&str> = pt.lines().collect();
    let ours: Vec<&str> = ours.lines().collect();
    assert!(pt.len() > 120, "case set too small: {}", pt.len());
    assert_eq!(pt.len(), ours.len());
    let diffs: Vec<String> = pt
        .iter()
        .zip(&ours)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("case {}:\n  pt:   {a}\n  ours: {b}", i + 1))
        .collect();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Where pt-fingerprint is plainly wrong (see the module docs), each difference is
/// pinned: pt still says what the file records, and we say what we mean to.
#[test]
fn documented_deviations_from_pt_fingerprint() {
    #[derive(serde::Deserialize)]
    struct Case {
        query: String,
        pt: String,
        ours: String,
    }
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(DEVIATIONS).unwrap()).unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        assert_ne!(case.pt, case.ours, "not a deviation: {}", case.query);
        let pt = pt_fingerprint(&["--query", &case.query]);
        assert_eq!(
            pt.trim_end(),
            case.pt,
            "pt-fingerprint changed for {}",
            case.query
        );
        assert_eq!(fingerprint(&case.query), case.ours, "for {}", case.query);
    }
}

#[test]
fn literals_of_every_kind_become_one_class() {
    let a = fingerprint("SELECT * FROM t WHERE a = 1 AND b IN (1,2,3) AND c = 'x' LIMIT 5");
    let b = fingerprint("select *  from t where a=1 and b in (7) and c = \"y\" limit 10, 20");
    assert_eq!(
        a,
        "select * from t where a = ? and b in(?+) and c = ? limit ?"
    );
    assert_eq!(
        b,
        "select * from t where a=? and b in(?+) and c = ? limit ?"
    );
    assert_eq!(
        fingerprint("INSERT INTO t (a) VALUES (1),(2),(3)"),
        fingerprint("insert into t (a) values (9)")
    );
}

#[test]
fn class_ids_are_xxh3_of_the_text_in_hex() {
    let fp = fingerprint("SELECT 1");
    assert_eq!(fp, "select ?");
    let id = class_id(&fp);
    assert_eq!(id, xxhash_rust::xxh3::xxh3_64(b"select ?"));
    assert_eq!(class_id_hex(id).len(), 16);
    assert_eq!(class_id_hex(0xab), "00000000000000ab");
}

#[test]
fn json_lines_in_json_lines_out_in_order() {
    let input = "{\"query\": \"SELECT a FROM t WHERE id = 5\"}\n\n{\"query\": \"select 1\"}\n";
    let mut out = Vec::new();
    let n = transform(input.as_bytes(), &mut out, Input::JsonLines, Output::Json).unwrap();
    assert_eq!(n, 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["fingerprint"], "select a from t where id = ?");
    assert_eq!(
        lines[0]["id"],
        class_id_hex(class_id("select a from t where id = ?"))
    );
    assert_eq!(lines[1]["fingerprint"], "select ?");
}

#[test]
fn bad_json_input_names_the_line() {
    let input = "{\"query\": \"select 1\"}\nnot json\n";
    let err = transform(input.as_bytes(), Vec::new(), Input::JsonLines, Output::Text).unwrap_err();
    assert!(err.to_string().starts_with("input line 2:"), "{err}");
}

/// The SQL reader fingerprints statements in place inside its buffer and copies only
/// those that straddle a refill or span lines: whatever the buffer size, the output is
/// the same as fingerprinting each statement on its own.
#[test]
fn sql_input_is_independent_of_read_buffer_boundaries() {
    let input = "SELECT 1;\nSELECT a\nFROM t WHERE b = 'x\ny';\n\n;\nINSERT INTO t VALUES (1),(2);\r\nselect 2";
    let expected = "select ?\nselect a from t where b = ?\ninsert into t values(?+)\nselect ?\n";
    for capacity in 1..=input.len() + 1 {
        let reader = std::io::BufReader::with_capacity(capacity, input.as_bytes());
        let mut out = Vec::new();
        let n = transform(reader, &mut out, Input::Sql, Output::Text).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected,
            "buffer of {capacity} bytes"
        );
        assert_eq!(n, 4);
    }
}

#[test]
fn invalid_utf8_is_replaced_not_rejected() {
    let mut fp = Fingerprinter::new();
    let text = fp.fingerprint(b"SELECT \xff\xfe FROM t WHERE a = 'x\xff'");
    assert_eq!(text, "select \u{fffd}\u{fffd} from t where a = ?");
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut fp = Fingerprinter::new();
        let _ = fp.fingerprint(&bytes);
    }

    #[test]
    fn fingerprinting_a_fingerprint_changes_nothing(
        words in proptest::collection::vec(
            prop_oneof![
                Just("SELECT"), Just("a"), Just("FROM"), Just("t"), Just("WHERE"), Just("="),
                Just("1"), Just("'x'"), Just("IN"), Just("(1, 2)"), Just("NULL"), Just(","),
                Just("-5"), Just("LIMIT"), Just("ORDER BY"), Just("ASC"), Just("`b`"),
            ],
            1..20,
        )
    ) {
        let q = words.join(" ");
        let once = fingerprint(&q);
        prop_assert_eq!(fingerprint(&once), once.clone(), "query: {}", q);
    }
}

/// The multi-threaded transform cuts the input into blocks; wherever the cuts fall and
/// however many workers there are, the output is the one-thread output, in order.
#[test]
fn worker_threads_change_nothing_in_the_output() {
    let cases = std::fs::read_to_string(CASES).unwrap();
    // Multi-line statements, blank lines and a CRLF among the cases.
    let sql = format!("{cases}\nSELECT a\nFROM t;\r\n\n{cases}select 2");
    let json: String = cases
        .split(";\n")
        .map(|q| serde_json::json!({ "query": q }).to_string() + "\n")
        .collect();
    for (mode, input) in [(Input::Sql, &sql), (Input::JsonLines, &json)] {
        for output in [Output::Text, Output::Json] {
            let mut one = Vec::new();
            let n1 = transform_with(input.as_bytes(), &mut one, mode, output, 1, 1 << 20).unwrap();
            for (threads, block) in [(2, 1), (3, 7), (2, 64), (4, 1000)] {
                let mut many = Vec::new();
                let n = transform_with(input.as_bytes(), &mut many, mode, output, threads, block)
                    .unwrap();
                assert_eq!(n, n1, "{mode:?} {threads} threads, {block}-byte blocks");
                assert!(
                    many == one,
                    "{mode:?} {output:?}: {threads} threads, {block}-byte blocks differ"
                );
            }
        }
    }
}

#[test]
fn worker_threads_still_name_the_bad_json_line() {
    let mut input = "{\"query\": \"select 1\"}\n".repeat(1000);
    input.push_str("not json\n");
    input.push_str(&"{\"query\": \"select 2\"}\n".repeat(1000));
    let err = transform_with(
        input.as_bytes(),
        Vec::new(),
        Input::JsonLines,
        Output::Text,
        2,
        100,
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("input line 1001:"), "{err}");
}

#[test]
fn class_ids_cross_seams_as_16_hex_digits() {
    use captures::fingerprint::ClassId;
    let id = ClassId(0x00ab_cdef_0123_4567);
    assert_eq!(id.to_string(), "00abcdef01234567");
    assert_eq!("00abcdef01234567".parse::<ClassId>(), Ok(id));
    assert_eq!(serde_json::to_string(&id).unwrap(), "\"00abcdef01234567\"");
    assert_eq!(
        serde_json::from_str::<ClassId>("\"00abcdef01234567\"").unwrap(),
        id
    );
    for bad in ["", "xyz", "00abcdef012345678", "-1"] {
        assert!(bad.parse::<ClassId>().is_err(), "{bad:?}");
    }
}
