//! The example documents in `examples/` (three stories told in valid messages) and `examples/invalid/`
//! (one broken document per error code).
//!
//! - Every `examples/*.json` is valid, survives JSON → message → JSON and JSON → XML → JSON unchanged, and
//!   is laid out exactly as [`json::encode`] writes it (a snapshot: a change of the JSON layout shows here).
//! - Every message type (and both receipt results, and the notice types disruption and maintenance) has an
//!   example.
//! - The stories are consistent: sequence numbers per case and direction count 1, 2, 3 …, revisions of a
//!   case increase, times increase with the file number, receipts answer a message that exists.
//! - Every `examples/invalid/*` yields the error code that starts its file name (the part before the first
//!   `-` or `.`). "Yields" means: the code is **among** the findings, not necessarily the first one, so that
//!   a decoder may report more than one finding and may order them as it likes.
//! - `examples/invalid/README.md` lists every invalid file with its code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sdx_codec::{json, xml};
use sdx_model::{Body, Coded, ErrorCode, Message, MessageType, NoticeType, ReceiptResult};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");

/// Every error code a document yields: the whole-document validation of the codec (format detection,
/// decoding, the model's rules and the attachment digests). Empty means valid.
fn validate(bytes: &[u8]) -> Vec<ErrorCode> {
    match sdx_codec::validate(bytes) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics.into_iter().map(|d| d.code).collect(),
    }
}

/// Invalid examples whose error the codec cannot find yet, with what is missing. They are reported, not
/// asserted; once the code is found, the test fails until the entry is removed here.
const PENDING: &[(&str, &str)] = &[];

fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| extensions.contains(&x)))
        .collect();
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).expect("UTF-8 file name").to_string()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// The valid examples, decoded, in file order.
fn examples() -> Vec<(String, Vec<u8>, Message)> {
    let list = files(Path::new(EXAMPLES), &["json"]);
    assert!(list.len() >= 14, "expected at least 14 examples, found {}", list.len());
    list.iter()
        .map(|p| {
            let bytes = read(p);
            let m = json::decode(&bytes).unwrap_or_else(|d| panic!("{} does not decode: {d:#?}", name(p)));
            (name(p), bytes, m)
        })
        .collect()
}

/// The error code a file name promises: the part before the first `-` or `.`.
fn expected_code(file: &str) -> ErrorCode {
    let code = file.split(['-', '.']).next().unwrap_or_default();
    ErrorCode::parse(code).unwrap_or_else(|e| panic!("{file}: file name does not start with an error code: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn valid_examples_pass_every_check_and_round_trip() {
    for (file, bytes, m) in examples() {
        let issues = sdx_model::rules::check_message(&m);
        assert!(issues.is_empty(), "{file}: rule issues {issues:#?}");
        let found = validate(&bytes);
        assert!(found.is_empty(), "{file}: sdx_codec::validate finds {found:?}");

        // JSON → message → JSON → message.
        let again = json::encode(&m);
        let back =
            json::decode(again.as_bytes()).unwrap_or_else(|d| panic!("{file}: re-encoding does not decode: {d:#?}"));
        assert_eq!(back, m, "{file}: re-encoding decodes to a different message");
        assert_eq!(json::canonical(&back), json::canonical(&m), "{file}: canonical form changed");
        // Nothing in the file is lost or defaulted by decoding: the file's own canonical form is the message's.
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let original = serde_json_canonicalizer::to_string(&value).expect("canonical form of the file");
        assert_eq!(original, json::canonical(&m), "{file}: the file differs from what the model keeps");

        // JSON → XML → message: the XML binding carries the same message.
        let x = xml::encode(&m);
        let from_xml =
            xml::decode(x.as_bytes()).unwrap_or_else(|d| panic!("{file}: XML form does not decode: {d:#?}\n{x}"));
        assert_eq!(from_xml, m, "{file}: XML round trip changed the message");
    }
}

#[test]
fn valid_examples_are_in_encoder_layout() {
    // A snapshot of the JSON layout (two-space indent, model member order, final newline). If this fails after
    // a deliberate change of `json::encode`, rewrite the examples with the encoder (and update the receipt
    // digests, see `stories_are_consistent`).
    for (file, bytes, m) in examples() {
        let text = std::str::from_utf8(&bytes).expect("examples are UTF-8");
        assert_eq!(text, json::encode(&m), "{file}: not laid out as json::encode writes it");
    }
}

#[test]
fn every_message_type_has_an_example() {
    let mut seen = BTreeSet::new();
    let mut receipts = BTreeSet::new();
    let mut notices = BTreeSet::new();
    for (_, _, m) in examples() {
        seen.insert(m.header.message_type);
        match &m.body {
            Body::Receipt(r) => {
                receipts.insert(r.result);
            }
            Body::ServiceNotice(n) => {
                notices.insert(n.notice_type);
            }
            _ => {}
        }
    }
    let missing: Vec<&str> = MessageType::VALUES.iter().filter(|t| !seen.contains(t)).map(|t| t.code()).collect();
    assert!(missing.is_empty(), "message types without an example: {missing:?}");
    let missing: Vec<&str> = ReceiptResult::VALUES.iter().filter(|t| !receipts.contains(t)).map(|t| t.code()).collect();
    assert!(missing.is_empty(), "receipt results without an example: {missing:?}");
    let missing: Vec<&str> = [NoticeType::Disruption, NoticeType::Maintenance]
        .iter()
        .filter(|t| !notices.contains(t))
        .map(|t| t.code())
        .collect();
    assert!(missing.is_empty(), "notice types without an example: {missing:?}");
}

#[test]
fn stories_are_consistent() {
    let all = examples();
    // Messages a receipt may answer: the examples and the invalid JSON documents that still decode (a
    // negative receipt answers a message that was refused).
    let mut known: BTreeMap<String, (Message, Vec<u8>)> = BTreeMap::new();
    for (_, bytes, m) in &all {
        known.insert(m.header.message_id.to_string(), (m.clone(), bytes.clone()));
    }
    for p in files(&Path::new(EXAMPLES).join("invalid"), &["json"]) {
        let bytes = read(&p);
        if let Ok(m) = json::decode(&bytes) {
            known.entry(m.header.message_id.to_string()).or_insert((m, bytes));
        }
    }

    let mut ids = BTreeSet::new();
    let mut sequence: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut revision: BTreeMap<String, u32> = BTreeMap::new();
    let mut previous_time = None;
    for (file, _, m) in &all {
        let h = &m.header;
        assert!(ids.insert(h.message_id), "{file}: message id used twice");
        if let Some(t) = previous_time {
            assert!(h.created_at >= t, "{file}: created before the previous example (files are in time order)");
        }
        previous_time = Some(h.created_at);

        let rev = match &m.body {
            Body::Forward(f) => Some(f.case.revision),
            Body::Update(u) => Some(u.revision),
            Body::Resolve(r) => Some(r.revision),
            Body::HandBack(b) => Some(b.revision),
            Body::Close(c) => Some(c.revision),
            Body::Reopen(r) => Some(r.revision),
            Body::Reject(r) => Some(r.revision),
            Body::Receipt(_) | Body::ServiceNotice(_) => None,
        };
        if let (Some(case), Some(rev)) = (h.case_id, rev) {
            let last = revision.insert(case.to_string(), rev);
            match last {
                None => assert_eq!(rev, 1, "{file}: the first message about a case carries revision 1"),
                Some(last) => assert!(rev > last, "{file}: revision {rev} does not follow {last}"),
            }
        }
        if let (Some(case), Some(seq)) = (h.case_id, h.sequence) {
            let key = (case.to_string(), h.author.key.to_string(), h.reader.key.to_string());
            let next = sequence.get(&key).map_or(1, |s| s + 1);
            assert_eq!(seq, next, "{file}: sequence {seq} from {} to {}, expected {next}", h.author.key, h.reader.key);
            sequence.insert(key, seq);
        }

        if let Body::Receipt(r) = &m.body {
            assert_eq!(h.in_reply_to, Some(r.received_message_id), "{file}: inReplyTo must be the received message");
            let (received, received_bytes) = known
                .get(&r.received_message_id.to_string())
                .unwrap_or_else(|| panic!("{file}: receipt for a message that is not among the examples"));
            let rh = &received.header;
            assert_eq!(h.author.key, rh.reader.key, "{file}: the receipt comes from the reader of the message");
            assert_eq!(h.reader.key, rh.author.key, "{file}: the receipt goes to the author of the message");
            assert_eq!(h.case_id, rh.case_id, "{file}: receipt and message concern different cases");
            assert!(
                r.received_at >= rh.created_at && h.created_at >= r.received_at,
                "{file}: receipt times out of order"
            );
            // In these examples the digest is the SHA-256 of the received example file.
            if let Some(d) = &r.digest {
                assert_eq!(
                    d.as_str(),
                    sha256_hex(received_bytes),
                    "{file}: digest is not that of the received document"
                );
            }
            let codes: Vec<ErrorCode> = r.errors.iter().map(|e| e.code).collect();
            if r.result == ReceiptResult::Rejected {
                // A negative receipt names what is wrong with the message: the codec must agree.
                let found = validate(received_bytes);
                for c in &codes {
                    assert!(found.contains(c), "{file}: refuses with {c}, but the message yields {found:?}");
                }
            }
        }
        if let Body::ServiceNotice(n) = &m.body {
            for c in &n.related_cases {
                assert!(revision.contains_key(&c.to_string()), "{file}: related case {c} has no earlier example");
            }
        }
    }
}

#[test]
fn invalid_examples_yield_the_code_in_their_name() {
    let dir = Path::new(EXAMPLES).join("invalid");
    let list = files(&dir, &["json", "xml"]);
    assert!(list.len() >= 12, "expected at least 12 invalid examples, found {}", list.len());
    let mut failures = Vec::new();
    for p in &list {
        let file = name(p);
        let expected = expected_code(&file);
        let found = validate(&read(p));
        let pending = PENDING.iter().find(|(f, _)| *f == file);
        match (found.contains(&expected), pending) {
            (true, None) => {}
            (false, Some((_, why))) => eprintln!("pending: {file} should yield {expected}, yields {found:?} ({why})"),
            (true, Some(_)) => failures.push(format!("{file}: now yields {expected}; remove it from PENDING")),
            (false, None) => {
                let detail = sdx_codec::validate(&read(p)).err().unwrap_or_default();
                let detail: Vec<String> = detail.iter().map(|d| d.to_string()).collect();
                failures.push(format!("{file}: expected {expected}, found {found:?}: {detail:#?}"))
            }
        }
    }
    for (f, _) in PENDING {
        assert!(dir.join(f).is_file(), "PENDING names {f}, which does not exist");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_readme_lists_every_file_with_its_code() {
    let dir = Path::new(EXAMPLES).join("invalid");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("examples/invalid/README.md");
    // Table rows: | `file` | `code` | what is wrong |
    let mut listed = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(|c| c.trim().trim_matches('`')).collect();
        listed.insert(cells[1].to_string(), cells[2].to_string());
    }
    let present: BTreeSet<String> = files(&dir, &["json", "xml"]).iter().map(|p| name(p)).collect();
    for file in &present {
        let code = listed.get(file).unwrap_or_else(|| panic!("README.md does not list {file}"));
        assert_eq!(code, expected_code(file).code(), "README.md gives {file} the wrong code");
    }
    for file in listed.keys() {
        assert!(present.contains(file), "README.md lists {file}, which does not exist");
    }
}

/// Every JSON example has an XML twin that is exactly its XML encoding, and the twin decodes to the same
/// message: the two bindings of each example say the same thing.
#[test]
fn every_json_example_has_an_identical_xml_twin() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let jsons = files(dir, &["json"]);
    assert!(jsons.len() >= 12, "at least 12 examples");
    for j in jsons {
        let x = j.with_extension("xml");
        let name = j.file_name().unwrap().to_string_lossy().into_owned();
        let from_json = sdx_codec::json::decode(&std::fs::read(&j).unwrap()).unwrap();
        let xml_text = std::fs::read_to_string(&x).unwrap_or_else(|_| panic!("{name} has no XML twin"));
        assert_eq!(xml_text, sdx_codec::xml::encode(&from_json), "{name}: XML twin differs from the encoding");
        let (format, from_xml) = sdx_codec::validate(xml_text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(format, sdx_codec::Format::Xml);
        assert_eq!(sdx_codec::json::canonical(&from_xml), sdx_codec::json::canonical(&from_json), "{name}");
    }
}
