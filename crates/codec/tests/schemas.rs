//! The generated schemas: the JSON Schema is valid draft 2020-12 and accepts exactly the SDX messages; the XSD
//! compiles in `xmllint` and accepts what `xml::encode` writes; the Genericode files list their codes.
//!
//! Needs `xmllint` (Debian package `libxml2-utils`); the XSD and Genericode tests fail, not skip, without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use sdx_codec::desc::{self, Kind};
use sdx_codec::schema;
use sdx_model::codelist;
use sdx_model::{Message, sample};

// ---- helpers ---------------------------------------------------------------------------------------------------

fn validator() -> jsonschema::Validator {
    let s = schema::json_schema();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&s)
        .unwrap_or_else(|e| panic!("the JSON Schema does not compile: {e}"))
}

/// The validation errors of `v`, one line each.
fn errors(val: &jsonschema::Validator, v: &Value) -> Vec<String> {
    val.iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn sample_json() -> Value {
    serde_json::to_value(sample::typical_forward()).expect("the sample serializes")
}

/// One message of every type, as JSON, with (nearly) every optional field filled: typed through the model
/// so that only messages the model accepts are used.
fn one_of_each() -> Vec<Value> {
    let forward = sample_json();
    let header = forward["header"].clone();
    let h = |t: &str| {
        let mut h = header.clone();
        h["messageType"] = t.into();
        h
    };
    let org = sample::BELA;
    let ts = "2026-11-28T10:00:00Z";
    let solution =
        json!({ "code": "fixed", "text": "Upload-Grenze auf 20 MB angehoben.", "resolvedAt": ts, "resolvedBy": org });
    let journal = json!([{ "id": "0b9c6e1a-4d2f-4a7b-8c3e-5f6a7b8c9d10", "visibility": "public",
        "author": { "organisation": org, "name": "2nd-Level" }, "createdAt": ts, "text": "Zeile 1\nZeile 2" }]);
    let attachment = json!({ "id": "0b9c6e1a-4d2f-4a7b-8c3e-5f6a7b8c9d11", "fileName": "log.txt",
        "mediaType": "text/plain; charset=utf-8", "size": 5, "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "content": "aGVsbG8=", "addedBy": org, "addedAt": ts });
    let mut full_forward = forward.clone();
    {
        let c = &mut full_forward["body"]["forward"]["case"];
        c["attachments"] = json!([attachment]);
        c["relatedCases"] = json!([{ "caseId": "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607182", "relation": "relatedTo" }]);
        c["requester"]["phone"] = "+49 431 0000".into();
        c["pendingReason"] = "waitingForRequester".into();
        full_forward["header"]["inReplyTo"] = "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607183".into();
        full_forward["header"]["test"] = true.into();
    }
    let bodies = [
        (
            "update",
            json!({ "revision": 2, "status": "pending", "pendingReason": "waitingForVendor", "statusReason": "Hersteller",
            "impact": "high", "urgency": "high", "priority": "critical", "subject": "Neu", "description": "Neu\nmehrzeilig",
            "category": { "symptom": "upload" }, "region": "01", "supportLevel": "thirdLevel",
            "serviceLevel": { "agreement": "SLA", "responseDue": ts, "resolutionDue": "2026-11-29T10:00:00.5+01:00" },
            "references": [{ "owner": org, "system": "OTRS", "id": "HZD-1" }],
            "relatedCases": [{ "caseId": "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607182", "relation": "causedBy" }],
            "journal": journal, "attachments": [attachment] }),
        ),
        ("resolve", json!({ "revision": 3, "solution": solution, "journal": journal })),
        ("handBack", json!({ "revision": 4, "solution": solution, "note": "Bitte informieren." })),
        ("close", json!({ "revision": 5, "closureCode": "workaround", "note": "Danke." })),
        ("reopen", json!({ "revision": 6, "reason": "Tritt wieder auf." })),
        (
            "reject",
            json!({ "revision": 2, "reason": "notResponsible", "text": "Zuständig ist …", "suggestedAssignee": "psw:09000001" }),
        ),
        (
            "receipt",
            json!({ "result": "rejected", "receivedMessageId": "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607184", "receivedAt": ts,
            "digest": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "errors": [{ "code": "unknownCode", "location": "/body/update/status", "text": "open" }] }),
        ),
        (
            "serviceNotice",
            json!({ "noticeId": "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607185", "noticeType": "maintenance",
            "services": [{ "leikaKey": "99107004017000", "ozgId": "OZG-1104", "name": "Wohngeld" }, { "ozgId": "X" }],
            "regions": ["01", "06412"], "startsAt": ts, "endsAt": "2026-11-28T12:00:00+01:00", "title": "Wartung",
            "text": "Wartungsfenster.", "relatedCases": ["6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607182"] }),
        ),
    ];
    let mut out = vec![forward, full_forward];
    for (code, body) in bodies {
        out.push(json!({ "header": h(code), "body": { code: body } }));
    }
    for v in &out {
        let _: Message = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("test message is not a model message: {e}\n{v:#}"));
    }
    let types: BTreeSet<&str> =
        out.iter().filter_map(|v| v["body"].as_object()?.keys().next().map(String::as_str)).collect();
    assert_eq!(types.len(), desc::MESSAGES.len(), "one test message per message type");
    out
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The files `examples/*.<ext>` (not in subfolders), sorted.
fn examples(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == ext));
    v.sort();
    v
}

/// Write every schema file into a fresh temporary directory.
fn schema_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, content) in schema::files() {
        let p = dir.path().join(&rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write schema file");
    }
    dir
}

/// Run xmllint; panics with a clear message when it is not installed.
fn xmllint(args: &[&str], files: &[PathBuf]) -> std::process::Output {
    Command::new("xmllint").args(args).args(files).output().unwrap_or_else(|e| {
        panic!("xmllint is needed for the schema tests (Debian/Ubuntu: apt-get install -y libxml2-utils): {e}")
    })
}

/// Validate many files in one xmllint call; the verdict per file (true = validates).
fn xsd_verdicts(xsd: &Path, files: &[PathBuf]) -> (BTreeMap<PathBuf, bool>, String) {
    let out = xmllint(&["--noout", "--schema", xsd.to_str().expect("utf-8 path")], files);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("failed to compile") && !stderr.contains("schemas parser error"),
        "the XSD does not compile:\n{stderr}"
    );
    let mut verdicts = BTreeMap::new();
    for f in files {
        let name = f.to_str().expect("utf-8 path");
        let ok = stderr.lines().any(|l| l == format!("{name} validates"));
        let bad = stderr.lines().any(|l| l == format!("{name} fails to validate"));
        assert!(ok != bad, "no verdict from xmllint for {name}:\n{stderr}");
        verdicts.insert(f.clone(), ok);
    }
    (verdicts, stderr)
}

// ---- format description -----------------------------------------------------------------------------------------

#[test]
fn format_description_is_closed_and_names_are_unique() {
    let names: BTreeSet<&str> = desc::ALL_TYPES.iter().map(|t| t.json_name).collect();
    assert_eq!(names.len(), desc::ALL_TYPES.len(), "json_name unique");
    let xml: BTreeSet<&str> = desc::ALL_TYPES.iter().map(|t| t.xml_name).collect();
    assert_eq!(xml.len(), desc::ALL_TYPES.len(), "xml_name unique");
    for t in desc::ALL_TYPES {
        let js: BTreeSet<&str> = t.fields.iter().map(|f| f.json).collect();
        let xs: BTreeSet<&str> = t.fields.iter().map(|f| f.xml).collect();
        assert_eq!(js.len(), t.fields.len(), "JSON names unique in {}", t.json_name);
        assert_eq!(xs.len(), t.fields.len(), "XML names unique in {}", t.json_name);
        for f in t.fields {
            if let Kind::Object(o) = f.kind {
                assert!(desc::ALL_TYPES.iter().any(|a| std::ptr::eq(*a, o)), "{} not in ALL_TYPES", o.json_name);
            }
        }
    }
    for m in desc::MESSAGES {
        assert!(desc::ALL_TYPES.iter().any(|a| std::ptr::eq(*a, m.body)), "{} not in ALL_TYPES", m.body.json_name);
        assert!(codelist::MESSAGE_TYPE.contains(m.code), "{} is not a message type code", m.code);
    }
}

#[test]
fn files_cover_every_codelist() {
    let files = schema::files();
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let mut expected = vec!["sdx.schema.json".to_owned(), "sdx.xsd".to_owned()];
    expected.extend(codelist::ALL.iter().map(|l| format!("codelists/{}.xml", l.id)));
    assert_eq!(paths, expected);
    let json: Value = serde_json::from_str(&files[0].1).expect("sdx.schema.json is JSON");
    assert_eq!(json, schema::json_schema());
    assert_eq!(files[1].1, schema::xsd());
}

// ---- JSON Schema ------------------------------------------------------------------------------------------------

#[test]
fn json_schema_is_valid_2020_12_and_accepts_every_message_type() {
    let s = schema::json_schema();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["$id"], "urn:xoev-de:sdx:schema:1.0:json");
    if let Err(e) = jsonschema::draft202012::meta::validate(&s) {
        panic!("not a valid 2020-12 schema: {e} at {}", e.instance_path());
    }
    let defs = s["$defs"].as_object().expect("$defs");
    for t in desc::ALL_TYPES {
        assert!(defs.contains_key(t.json_name), "$defs/{}", t.json_name);
    }
    for l in codelist::ALL {
        let d = &defs[&format!("Code.{}{}", l.id[..1].to_uppercase(), &l.id[1..])];
        let codes: Vec<&str> = d["enum"].as_array().expect("enum").iter().filter_map(Value::as_str).collect();
        let want: Vec<&str> = l.entries.iter().map(|e| e.code).collect();
        assert_eq!(codes, want, "codes of {}", l.id);
    }
    assert_eq!(defs["Requester"]["properties"]["email"]["x-personalData"], true);
    assert_eq!(defs["Case"]["properties"]["requester"]["x-personalData"], true);

    let val = validator();
    for m in one_of_each() {
        let errs = errors(&val, &m);
        assert!(errs.is_empty(), "valid message rejected: {errs:#?}\n{m:#}");
    }
}

#[test]
fn json_schema_rejects_invalid_messages() {
    let val = validator();
    let base = sample_json();
    type Mutation = (&'static str, fn(&mut Value));
    let mutations: &[Mutation] = &[
        ("unknown member in header", |v| v["header"]["priority"] = "high".into()),
        ("unknown member in case", |v| v["body"]["forward"]["case"]["owner"] = "x".into()),
        ("unknown top-level member", |v| v["signature"] = "x".into()),
        ("missing messageId", |v| {
            v["header"].as_object_mut().unwrap().remove("messageId");
        }),
        ("missing subject", |v| {
            v["body"]["forward"]["case"].as_object_mut().unwrap().remove("subject");
        }),
        ("missing body", |v| {
            v.as_object_mut().unwrap().remove("body");
        }),
        ("empty status history", |v| v["body"]["forward"]["case"]["statusHistory"] = json!([])),
        ("bad status code", |v| v["body"]["forward"]["case"]["status"] = "open".into()),
        ("bad directory code", |v| v["header"]["reader"]["directory"] = "dvdv".into()),
        ("bad LeiKa key", |v| {
            v["body"]["forward"]["case"]["category"]["service"]["leikaKey"] = "98107004017000".into()
        }),
        ("LeiKa key too long", |v| {
            v["body"]["forward"]["case"]["category"]["service"]["leikaKey"] = "991070040170001".into()
        }),
        ("bad ARS", |v| v["body"]["forward"]["case"]["region"] = "0100".into()),
        ("bad org key", |v| v["body"]["forward"]["case"]["assignee"] = "PSW:1".into()),
        ("uppercase UUID", |v| v["header"]["messageId"] = "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C01".into()),
        ("timestamp without offset", |v| v["header"]["createdAt"] = "2026-11-27T09:41:00".into()),
        ("date only", |v| v["header"]["createdAt"] = "2026-11-27".into()),
        ("line with newline", |v| v["header"]["reader"]["name"] = "a\nb".into()),
        ("subject too long", |v| v["body"]["forward"]["case"]["subject"] = "x".repeat(256).into()),
        ("negative revision", |v| v["body"]["forward"]["case"]["revision"] = (-1).into()),
        ("revision too large", |v| v["body"]["forward"]["case"]["revision"] = (u64::from(u32::MAX) + 1).into()),
        ("sequence as string", |v| v["header"]["sequence"] = "1".into()),
        ("test as string", |v| v["header"]["test"] = "false".into()),
        ("other schema version", |v| v["header"]["schemaVersion"] = "0.9".into()),
        ("other codelist version", |v| v["header"]["codelistVersion"] = "2".into()),
        ("two members in body", |v| v["body"]["update"] = json!({ "revision": 2 })),
        ("empty body", |v| v["body"] = json!({})),
        ("unknown body member", |v| {
            let f = v["body"]["forward"].take();
            v["body"] = json!({ "forwarded": f });
        }),
        ("body does not match messageType", |v| v["header"]["messageType"] = "update".into()),
    ];
    assert!(errors(&val, &base).is_empty(), "the sample must be valid: {:#?}", errors(&val, &base));
    for (what, mutate) in mutations {
        let mut v = base.clone();
        mutate(&mut v);
        assert!(!val.is_valid(&v), "accepted although invalid: {what}");
    }
}

#[test]
fn json_examples_validate() {
    let val = validator();
    let files = examples("json");
    assert!(!files.is_empty(), "no examples/*.json found in {}", examples_dir().display());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read example");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", f.display()));
        let errs = errors(&val, &v);
        assert!(errs.is_empty(), "{} does not validate: {errs:#?}", f.display());
    }
}

// ---- XSD --------------------------------------------------------------------------------------------------------

#[test]
fn xsd_accepts_encoded_messages_and_examples_and_rejects_broken_xml() {
    let dir = schema_dir();
    let xsd = dir.path().join("sdx.xsd");
    let inst = dir.path().join("instances");
    std::fs::create_dir(&inst).expect("mkdir");
    let write = |name: &str, content: &str| {
        let p = inst.join(name);
        std::fs::write(&p, content).expect("write instance");
        p
    };

    let mut good = Vec::new();
    // The lead's encoder is the reference for what SDX writes.
    for (i, m) in one_of_each().into_iter().enumerate() {
        let msg: Message = serde_json::from_value(m).expect("model message");
        good.push(write(&format!("msg-{i}.xml"), &sdx_codec::xml::encode(&msg)));
    }
    good.push(write("handmade.xml", HANDMADE));
    for f in examples("json") {
        let msg = sdx_codec::json::decode(&std::fs::read(&f).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e:?}", f.display()));
        let name = format!("example-{}.xml", f.file_stem().expect("stem").to_string_lossy());
        good.push(write(&name, &sdx_codec::xml::encode(&msg)));
    }
    good.extend(examples("xml"));

    let sample = sdx_codec::xml::encode(&sample::typical_forward());
    let swap = |xml: &str, a: &str, b: &str| -> String {
        // Move the element <a>…</a> (first occurrence, one line) behind the element <b>…</b>.
        let start = xml.find(&format!("<{a}>")).expect("element a");
        let end = xml[start..].find(&format!("</{a}>")).expect("end of a") + start + a.len() + 3;
        let elem = &xml[start..end];
        let mut rest = format!("{}{}", &xml[..start], &xml[end..]);
        let bend = rest.find(&format!("</{b}>")).expect("end of b") + b.len() + 3;
        rest.insert_str(bend, elem);
        rest
    };
    let bad = vec![
        ("wrong-order.xml", swap(&sample, "nachrichtenUUID", "erstellungszeitpunkt")),
        ("bad-code.xml", sample.replacen("<code>new</code>", "<code>open</code>", 1)),
        ("bad-list-uri.xml", sample.replacen("codeliste:status\"", "codeliste:stat\"", 1)),
        ("no-standard.xml", sample.replacen("standard=\"urn:xoev-de:sdx:standard:sdx\"", "", 1)),
        ("wrong-version.xml", sample.replacen(":sdx\" version=\"1.0\"", ":sdx\" version=\"0.9\"", 1)),
        ("wrong-codelist-version.xml", sample.replacen("<codelistenversion>1<", "<codelistenversion>2<", 1)),
        ("bad-leika.xml", sample.replacen("<leistungsschluessel>99", "<leistungsschluessel>98", 1)),
        ("no-offset.xml", sample.replacen("2026-11-27T09:41:00+01:00", "2026-11-27T09:41:00", 1)),
        ("unknown-element.xml", sample.replacen("<nachrichtenkopf>", "<nachrichtenkopf><x/>", 1)),
        (
            "qualified-local.xml",
            sample.replacen("<nachrichtenkopf>", "<sdx:nachrichtenkopf>", 1).replacen(
                "</nachrichtenkopf>",
                "</sdx:nachrichtenkopf>",
                1,
            ),
        ),
        ("unknown-root.xml", sample.replace("support.weiterleitung.0101", "support.weiterleitung.0199")),
    ];
    for (name, xml) in &bad {
        assert_ne!(xml, &sample, "mutation {name} changed nothing");
    }
    let bad: Vec<PathBuf> = bad.iter().map(|(n, x)| write(n, x)).collect();

    let all: Vec<PathBuf> = good.iter().chain(bad.iter()).cloned().collect();
    let (verdicts, stderr) = xsd_verdicts(&xsd, &all);
    for f in &good {
        assert!(verdicts[f], "{} should validate:\n{stderr}", f.display());
    }
    for f in &bad {
        assert!(!verdicts[f], "{} should not validate:\n{stderr}", f.display());
    }
}

/// Written by hand after the example in the task (a minimal forward): proves the XSD against an XML document
/// that no code of ours produced.
const HANDMADE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<sdx:support.weiterleitung.0101 xmlns:sdx="urn:xoev-de:sdx:schema:1.0" standard="urn:xoev-de:sdx:standard:sdx" version="1.0" produkt="SDX" produkthersteller="SDX project" produktversion="0.1.0" test="false">
  <nachrichtenkopf>
    <nachrichtenUUID>a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c01</nachrichtenUUID>
    <nachrichtentyp listURI="urn:xoev-de:sdx:codeliste:messageType" listVersionID="1"><code>forward</code></nachrichtentyp>
    <erstellungszeitpunkt>2026-11-27T09:41:00+01:00</erstellungszeitpunkt>
    <leser><verzeichnisdienst listURI="urn:xoev-de:sdx:codeliste:directoryService" listVersionID="1"><code>DVDV</code></verzeichnisdienst><kennung>psw:06000042</kennung></leser>
    <autor><verzeichnisdienst listURI="urn:xoev-de:sdx:codeliste:directoryService" listVersionID="1"><code>DVDV</code><name>Deutsches Verwaltungsdiensteverzeichnis</name></verzeichnisdienst><kennung>psw:01000115</kennung><name>115 SH</name></autor>
    <vorgangsID>3f2b8c1e-7a4d-4e9b-b1c2-d3e4f5a6b7c8</vorgangsID>
    <sequenznummer>1</sequenznummer>
    <codelistenversion>1</codelistenversion>
  </nachrichtenkopf>
  <vorgang>
    <vorgangsID>3f2b8c1e-7a4d-4e9b-b1c2-d3e4f5a6b7c8</vorgangsID>
    <revision>1</revision>
    <art listURI="urn:xoev-de:sdx:codeliste:ticketType" listVersionID="1"><code>incident</code></art>
    <status listURI="urn:xoev-de:sdx:codeliste:status" listVersionID="1"><code>new</code></status>
    <statuswechsel>
      <status listURI="urn:xoev-de:sdx:codeliste:status" listVersionID="1"><code>new</code></status>
      <zeitpunkt>2026-11-27T09:12:00Z</zeitpunkt>
      <geaendertVon>psw:01000115</geaendertVon>
    </statuswechsel>
    <auswirkung listURI="urn:xoev-de:sdx:codeliste:impact" listVersionID="1"><code>medium</code></auswirkung>
    <dringlichkeit listURI="urn:xoev-de:sdx:codeliste:urgency" listVersionID="1"><code>high</code></dringlichkeit>
    <prioritaet listURI="urn:xoev-de:sdx:codeliste:priority" listVersionID="1"><code>high</code></prioritaet>
    <kategorisierung><symptom listURI="urn:xoev-de:sdx:codeliste:symptomCategory" listVersionID="1"><code>upload</code></symptom></kategorisierung>
    <supportebene listURI="urn:xoev-de:sdx:codeliste:supportLevel" listVersionID="1"><code>secondLevel</code></supportebene>
    <beteiligter>
      <rolle listURI="urn:xoev-de:sdx:codeliste:partyRole" listVersionID="1"><code>mila</code></rolle>
      <organisation>psw:01000115</organisation>
      <name>115-Servicecenter Schleswig-Holstein</name>
    </beteiligter>
    <urheber>psw:01000115</urheber>
    <zustaendig>psw:06000042</zustaendig>
    <betreff>Wohngeld: Hochladen schlägt fehl &amp; mehr</betreff>
    <beschreibung>Zeile 1
Zeile 2</beschreibung>
    <erstelltAm>2026-11-27T09:12:00+01:00</erstelltAm>
    <geaendertAm>2026-11-27T09:40:00-02:30</geaendertAm>
  </vorgang>
  <hinweis>Bitte um Prüfung.</hinweis>
</sdx:support.weiterleitung.0101>
"#;

// ---- Genericode -------------------------------------------------------------------------------------------------

#[test]
fn genericode_files_are_well_formed_and_list_exactly_their_codes() {
    let dir = schema_dir();
    let files: Vec<PathBuf> =
        codelist::ALL.iter().map(|l| dir.path().join(format!("codelists/{}.xml", l.id))).collect();
    let out = xmllint(&["--noout"], &files);
    assert!(out.status.success(), "Genericode not well-formed:\n{}", String::from_utf8_lossy(&out.stderr));

    for list in codelist::ALL {
        let xml = schema::genericode(list);
        assert!(xml.contains(r#"<gc:CodeList xmlns:gc="http://docs.oasis-open.org/codelist/ns/genericode/1.0/">"#));
        assert!(xml.contains(&format!("<ShortName>{}</ShortName>", list.id)));
        assert!(xml.contains(&format!("<CanonicalUri>{}</CanonicalUri>", list.urn)));
        assert!(xml.contains(&format!("<CanonicalVersionUri>{}_{}</CanonicalVersionUri>", list.urn, list.version)));
        assert!(xml.contains(&format!("<Version>{}</Version>", list.version)));
        assert_eq!(
            genericode_codes(&xml),
            list.entries.iter().map(|e| e.code.to_owned()).collect::<Vec<_>>(),
            "{}",
            list.id
        );
    }
}

/// The `code` column of a Genericode document, in row order, read with a real XML parser.
fn genericode_codes(xml: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let (mut in_code, mut in_simple, mut codes) = (false, false, Vec::new());
    loop {
        match r.read_event().expect("well-formed") {
            Event::Start(e) if e.local_name().as_ref() == "Value" => {
                in_code =
                    e.try_get_attribute("ColumnRef").expect("attribute").is_some_and(|a| a.value.as_ref() == "code");
            }
            Event::End(e) if e.local_name().as_ref() == "Value" => in_code = false,
            Event::Start(e) if e.local_name().as_ref() == "SimpleValue" => in_simple = true,
            Event::End(e) if e.local_name().as_ref() == "SimpleValue" => in_simple = false,
            Event::Text(t) if in_code && in_simple => codes.push(t.xml10_content().into_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    codes
}

// ---- docs -------------------------------------------------------------------------------------------------------

#[test]
fn docs_schemas_md_matches_the_description() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for m in desc::MESSAGES {
        let row = format!("| `{}` | `sdx:{}` | `{}` |", m.code, m.root, m.body.xml_name);
        assert!(doc.contains(&row), "docs/schemas.md lacks the row {row}");
    }
    assert_eq!(
        doc.matches("| `sdx:support.").count(),
        desc::MESSAGES.len(),
        "docs/schemas.md lists other root elements"
    );
    let wrote = format!("wrote {} files to", schema::files().len());
    assert!(doc.contains(&wrote), "docs/schemas.md should say `{wrote}`");
}
