//! The directory end to end: the example document, resolution and its explanation, the signed envelope and every
//! refusal, the holder's reloads (also under concurrent readers), the diff, the JSON Schema, and hostile input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey, jws};
use sdx_directory::synthetic::{self, Shape};
use sdx_directory::{
    Diff, Directory, DirectoryHolder, Error, LoadedDirectory, Region, RegionLevel, Reload, ServiceId, Verifier, schema,
    sign,
};
use sdx_model::{Ars, OrgKey, Status, SupportLevel, Timestamp};

// ---- helpers ---------------------------------------------------------------------------------------------------

const WOHNGELD: &str = "99107004017000";
const ELTERNGELD: &str = "99036004000000";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_bytes() -> Vec<u8> {
    std::fs::read(root().join("docs/examples/directory.json")).expect("the example exists")
}

fn example_value() -> Value {
    serde_json::from_slice(&example_bytes()).expect("the example is JSON")
}

fn example() -> Directory {
    Directory::from_json(&example_bytes()).expect("the example is a valid directory")
}

fn from_value(v: &Value) -> sdx_directory::Result<Directory> {
    Directory::from_json(v.to_string().as_bytes())
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// A time inside the example's validity.
fn now() -> Timestamp {
    ts("2026-12-01T12:00:00Z")
}

fn svc(s: &str) -> ServiceId {
    ServiceId::parse(s).unwrap()
}

fn ars(s: &str) -> Ars {
    Ars::parse(s).unwrap()
}

fn org(s: &str) -> OrgKey {
    OrgKey::parse(s).unwrap()
}

fn loaded() -> LoadedDirectory {
    LoadedDirectory::unverified(&example_bytes()).unwrap()
}

fn authority() -> PrivateKey {
    PrivateKey::generate(Alg::Es256).unwrap()
}

fn verifier(key: &PrivateKey) -> Verifier {
    Verifier::new().trust(key.public_key(key.signing_alg()).unwrap())
}

fn with_version(v: u64) -> Directory {
    let mut d = example();
    d.version = v;
    d
}

// ---- the document ----------------------------------------------------------------------------------------------

#[test]
fn the_example_round_trips_and_is_canonical_after_signing() {
    let d = example();
    assert_eq!(d.organisations.len(), 7);
    assert_eq!(d.responsibilities.len(), 8);
    let again = Directory::from_json(d.to_json_pretty().as_bytes()).unwrap();
    assert_eq!(again, d);
    assert_eq!(again.canonical(), d.canonical());
    // The HZD's certificate gives its fingerprint; its signing key is found by kid.
    let hzd = d.organisation(&org("psw:06000042")).unwrap();
    assert_eq!(hzd.tls_fingerprints().len(), 1);
    let kid = hzd.signing_keys[0].kid().to_owned();
    assert!(hzd.signing_key(&kid).is_some());
    assert!(hzd.signing_key("nope").is_none());
    // Capabilities: Lübeck's workflow has no onHold and takes only its listed transitions.
    let hl = d.organisation(&org("psw:01003110")).unwrap().capabilities();
    assert!(!hl.supports_status(Status::OnHold));
    assert!(hl.supports_transition(Status::New, Status::Acknowledged));
    assert!(!hl.supports_transition(Status::New, Status::InProgress));
    assert_eq!(hl.max_attachment_bytes, Some(5_242_880));
    // Without capabilities: the SDX lifecycle.
    let hub = d.organisation(&org("hub:dataport")).unwrap().capabilities();
    assert!(hub.supports_transition(Status::New, Status::InProgress));
    assert!(!hub.supports_transition(Status::Closed, Status::InProgress));
}

fn expect_malformed(v: &Value, pointer: &str, needle: &str) {
    match from_value(v) {
        Err(Error::Malformed { pointer: p, reason }) => {
            assert_eq!(p, pointer, "{reason}");
            assert!(reason.contains(needle), "{reason} should mention {needle}");
        }
        other => panic!("expected malformed at {pointer}, got {other:?}"),
    }
}

#[test]
fn malformed_documents_are_refused_with_a_pointer() {
    let mut v = example_value();
    v["responsibilities"][2]["services"][0]["leikaKey"] = json!("12345");
    expect_malformed(&v, "/responsibilities/2/services/0/leikaKey", "LeiKa");

    let mut v = example_value();
    v["responsibilities"][0]["regions"] = json!(["0100"]);
    expect_malformed(&v, "/responsibilities/0/regions/0", "ARS");

    let mut v = example_value();
    v["organisations"][1]["endpoint"] = json!("http://plain.example/");
    expect_malformed(&v, "/organisations/1/endpoint", "https://");

    let mut v = example_value();
    v["organisations"][1]["colour"] = json!("blue");
    expect_malformed(&v, "/organisations/1/colour", "unknown field");

    let mut v = example_value();
    v["organisations"][3]["capabilities"]["transitions"][0] = json!({"from": "closed", "to": "inProgress"});
    expect_malformed(&v, "/organisations/3/capabilities/transitions/0", "lifecycle");

    let mut v = example_value();
    v["organisations"][3]["capabilities"]["transitions"][0] = json!({"from": "new", "to": "onHold"});
    expect_malformed(&v, "/organisations/3/capabilities/transitions/0", "not in statuses");

    let mut v = example_value();
    v["organisations"][5]["signingKeys"][0]["kid"] = json!("my-own-kid");
    expect_malformed(&v, "/organisations/5/signingKeys/0", "thumbprint");

    let mut v = example_value();
    v["organisations"][5]["signingKeys"][0]["d"] = json!("AAAA");
    expect_malformed(&v, "/organisations/5/signingKeys/0", "private");

    let mut v = example_value();
    v["expiresAt"] = v["issuedAt"].clone();
    expect_malformed(&v, "/expiresAt", "later");

    let mut v = example_value();
    v["schemaVersion"] = json!("2.0");
    expect_malformed(&v, "/schemaVersion", "not supported");

    let mut v = example_value();
    v["version"] = json!(1u64 << 60);
    expect_malformed(&v, "/version", "1 to");

    let mut v = example_value();
    v["responsibilities"][0]["services"] = json!([{"leikaKey": WOHNGELD, "ozgId": "X"}]);
    assert!(matches!(from_value(&v), Err(Error::Malformed { .. })));

    assert!(matches!(Directory::from_json(b"{\"version\": 1"), Err(Error::Malformed { .. })));
    assert!(matches!(Directory::from_json(b"[]"), Err(Error::Malformed { .. })));
}

#[test]
fn references_between_entries_are_checked() {
    let mut v = example_value();
    v["organisations"][2]["key"] = json!("psw:01000115");
    match from_value(&v) {
        Err(Error::DuplicateOrganisation { key, pointer }) => {
            assert_eq!(key.as_str(), "psw:01000115");
            assert_eq!(pointer, "/organisations/2/key");
        }
        other => panic!("{other:?}"),
    }

    let mut v = example_value();
    v["responsibilities"][4]["organisation"] = json!("psw:99999999");
    match from_value(&v) {
        Err(e @ Error::UnknownOrganisation { .. }) => {
            assert!(e.to_string().contains("/responsibilities/4/organisation"), "{e}");
            assert_eq!(e.code(), "unknownOrganisation");
        }
        other => panic!("{other:?}"),
    }

    let mut v = example_value();
    v["organisations"][3]["endpoint"] = json!({"viaHub": "psw:01000002"});
    assert!(matches!(from_value(&v), Err(Error::InvalidHub { reason, .. }) if reason.contains("role hub")));

    let mut v = example_value();
    v["organisations"][3]["endpoint"] = json!({"viaHub": "psw:00000000"});
    assert!(matches!(from_value(&v), Err(Error::UnknownOrganisation { .. })));

    // The same assignment twice (here through two entries) cannot be indexed.
    let mut v = example_value();
    let dup = v["responsibilities"][3].clone();
    v["responsibilities"].as_array_mut().unwrap().push(dup);
    let d = from_value(&v).unwrap();
    match sdx_directory::Index::build(&d) {
        Err(Error::DuplicateResponsibility { pointer, organisation, .. }) => {
            assert_eq!(pointer, "/responsibilities/8");
            assert_eq!(organisation.as_str(), "psw:01003110");
        }
        other => panic!("{other:?}"),
    }
    let key = authority();
    assert!(matches!(sign(&d, &key), Err(Error::DuplicateResponsibility { .. })), "nothing invalid gets signed");
}

// ---- resolution ------------------------------------------------------------------------------------------------

#[test]
fn the_most_specific_region_wins_and_the_explanation_says_why() {
    let l = loaded();
    let r = l.resolve(&svc(WOHNGELD), &ars("010030000000"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01003110");
    assert_eq!(r.responsible.region_level(), RegionLevel::Kreis);
    assert!(r.alternatives.is_empty());
    let considered: Vec<(&str, RegionLevel)> =
        r.considered.iter().map(|c| (c.organisation.key.as_str(), c.region_level())).collect();
    assert_eq!(considered, [("psw:01000002", RegionLevel::Land), ("psw:06000042", RegionLevel::Nationwide)]);
    let text = r.to_string();
    assert!(text.contains("matched prefix 01003 (Kreis) → psw:01003110"), "{text}");
    assert!(text.contains("also considered: 01 (Land) → psw:01000002"), "{text}");
    assert!(text.contains("also considered: nationwide → psw:06000042"), "{text}");

    // Another Kreis of the same Land: its own organisation.
    let r = l.resolve(&svc(WOHNGELD), &ars("010600045045"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01060002");
    // A Kreis without an entry: the Land.
    let r = l.resolve(&svc(WOHNGELD), &ars("010510000000"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01000002");
    assert_eq!(r.responsible.region, &Region::Prefix(ars("01")));
    // Another Land: nationwide.
    let r = l.resolve(&svc(WOHNGELD), &ars("064120000000"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:06000042");
    assert!(r.to_string().contains("the nationwide entry"), "{r}");
    // A query less specific than an entry does not match that entry.
    let r = l.resolve(&svc(WOHNGELD), &ars("01"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01000002");
    // Levels are separate.
    let r = l.resolve(&svc(WOHNGELD), &ars("010030000000"), SupportLevel::FirstLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01000115");
    let r = l.resolve(&svc(WOHNGELD), &ars("010030000000"), SupportLevel::ThirdLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "vnd:wohngeld01");
    // By OZG id.
    let r = l.resolve(&svc("ozg:OZG-1104"), &ars("010030000000"), SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:06000042");
}

#[test]
fn several_candidates_come_in_rank_order() {
    let l = loaded();
    let r = l.resolve(&svc(ELTERNGELD), &ars("010600045045"), SupportLevel::SecondLevel).unwrap();
    let keys: Vec<&str> = r.candidates().map(|c| c.organisation.key.as_str()).collect();
    assert_eq!(keys, ["psw:01000002", "psw:06000042"]);
    assert_eq!(r.alternatives[0].rank, 1);
    assert!(r.to_string().contains("next candidate: psw:06000042"), "{r}");
}

#[test]
fn nobody_responsible_is_a_clear_error() {
    let l = loaded();
    match l.resolve(&svc("99999999999999"), &ars("010030000000"), SupportLevel::SecondLevel) {
        Err(e @ Error::UnknownService { .. }) => {
            assert_eq!(e.code(), "unknownService");
            assert!(e.to_string().contains("LeiKa 99999999999999"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match l.resolve(&svc(ELTERNGELD), &ars("010030000000"), SupportLevel::ThirdLevel) {
        Err(e @ Error::NoResponsibility { .. }) => {
            let t = e.to_string();
            assert!(t.contains("(there is at firstLevel and secondLevel)"), "{t}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        l.resolve(&svc(ELTERNGELD), &ars("064120000000"), SupportLevel::SecondLevel),
        Err(Error::NoResponsibility { hint, .. }) if hint.is_empty()
    ));
}

#[test]
fn peers_are_reached_directly_or_through_their_hub() {
    let l = loaded();
    let p = l.peer(&org("psw:01060002")).unwrap();
    assert_eq!(p.url.as_str(), "https://sdx.kreis-segeberg.example/sdx/v1");
    assert!(p.via_hub.is_none());
    let p = l.peer(&org("psw:01003110")).unwrap();
    assert_eq!(p.url.as_str(), "https://hub.sdx.dataport.example/sdx/v1");
    assert_eq!(p.via_hub.unwrap().key.as_str(), "hub:dataport");
    assert!(l.peer(&org("psw:12345678")).is_none());
}

#[test]
fn service_ids_parse_explicitly_or_by_form() {
    assert!(matches!(ServiceId::parse(WOHNGELD), Ok(ServiceId::LeikaKey(_))));
    assert!(matches!(ServiceId::parse("leika:99107004017000"), Ok(ServiceId::LeikaKey(_))));
    assert!(matches!(ServiceId::parse("OZG-1104"), Ok(ServiceId::OzgId(_))));
    assert!(matches!(ServiceId::parse("ozg:99107004017000"), Ok(ServiceId::OzgId(_))));
    assert!(ServiceId::parse("leika:123").is_err());
    assert!(ServiceId::parse("has space").is_err());
}

#[test]
fn the_synthetic_federation_indexes_and_resolves() {
    let shape = Shape { lands: 3, kreise_per_land: 120, services: 7 };
    let d = synthetic::synthetic(shape);
    let l = LoadedDirectory::unverified(&d.canonical()).unwrap();
    assert_eq!(l.index().assignments(), (3 * 120 * 7) + (3 * 2 * 7) + 7);
    assert_eq!(l.index().services(), 7);
    let g = synthetic::gemeinde(2, 117, 4711);
    let r = l.resolve(&synthetic::service(6), &g, SupportLevel::SecondLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), format!("kom:{}", synthetic::kreis_prefix(2, 117)));
    assert_eq!(r.considered.len(), 1);
    let r = l.resolve(&synthetic::service(0), &g, SupportLevel::FirstLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "psw:03000115");
    let r = l.resolve(&synthetic::service(3), &g, SupportLevel::ThirdLevel).unwrap();
    assert_eq!(r.responsible.organisation.key.as_str(), "vnd:000001");
    // Kreis 0 of each Land is reached through the hub.
    let p = l.peer(&org(&format!("kom:{}", synthetic::kreis_prefix(0, 0)))).unwrap();
    assert_eq!(p.via_hub.unwrap().key.as_str(), "hub:bund");
    // The full federation fits into a signed directory.
    let full = synthetic::synthetic(Shape::FEDERATION);
    assert!(full.canonical().len() / 3 * 4 < sdx_directory::MAX_DIRECTORY_BYTES, "{}", full.canonical().len());
}

// ---- the signed envelope and the holder ------------------------------------------------------------------------

#[test]
fn signed_directories_verify_and_every_refusal_is_typed() {
    let key = authority();
    let v = verifier(&key);
    let signed = sign(&example(), &key).unwrap();
    let l = v.verify(signed.as_bytes(), now()).unwrap();
    assert_eq!(l.version(), 1);
    assert_eq!(l.signer().unwrap().kid, key.kid());
    assert_eq!(l.digest().len(), 64);
    // With surrounding whitespace (a file with a final newline).
    assert!(v.verify(format!("\n{signed}\n").as_bytes(), now()).is_ok());
    // PS512 authorities work the same way.
    let rsa = PrivateKey::generate(Alg::Ps512).unwrap();
    let ps = sign(&example(), &rsa).unwrap();
    assert_eq!(verifier(&rsa).verify(ps.as_bytes(), now()).unwrap().signer().unwrap().alg, Alg::Ps512);

    // Unsigned.
    assert!(matches!(v.verify(&example_bytes(), now()), Err(Error::Unsigned)));
    // Tampered payload: one character of the base64 changed.
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].as_bytes()[10] == b'A' { "B" } else { "A" };
    parts[1].replace_range(10..11, flipped);
    let e = v.verify(parts.join(".").as_bytes(), now()).unwrap_err();
    assert!(matches!(e, Error::BadSignature(_)), "{e:?}");
    assert_eq!(e.code(), "signatureInvalid");
    // Garbage.
    assert!(matches!(v.verify(b"not a jws", now()), Err(Error::BadSignature(_))));
    // Unknown authority.
    let other = authority();
    match verifier(&other).verify(signed.as_bytes(), now()) {
        Err(Error::UnknownAuthority { kid }) => assert_eq!(kid.as_deref(), Some(key.kid())),
        r => panic!("{r:?}"),
    }
    // Nobody trusted at all.
    assert!(matches!(Verifier::new().verify(signed.as_bytes(), now()), Err(Error::UnknownAuthority { .. })));
    // Expired and not yet valid.
    match v.verify(signed.as_bytes(), ts("2028-01-01T00:00:00Z")) {
        Err(Error::Expired { at }) => assert_eq!(at, ts("2027-12-31T23:59:59Z")),
        r => panic!("{r:?}"),
    }
    assert!(matches!(v.verify(signed.as_bytes(), ts("2027-12-31T23:59:59Z")), Err(Error::Expired { .. })));
    assert!(matches!(v.verify(signed.as_bytes(), ts("2026-10-31T23:00:00Z")), Err(Error::NotYetValid { .. })));
    // Within the clock skew: accepted.
    assert!(v.verify(signed.as_bytes(), ts("2026-10-31T23:57:00Z")).is_ok());
    // Minimum version.
    let strict = verifier(&key).with_minimum_version(2);
    assert!(matches!(strict.verify(signed.as_bytes(), now()), Err(Error::Older { have: 2, got: 1 })));
    // Issuer bound to the key.
    let bound = Verifier::new().trust_for(key.public_key(Alg::Es256).unwrap(), org("dir:other"));
    assert!(matches!(bound.verify(signed.as_bytes(), now()), Err(Error::IssuerMismatch { .. })));
    let bound = Verifier::new().trust_for(key.public_key(Alg::Es256).unwrap(), org("dir:fitko"));
    assert!(bound.verify(signed.as_bytes(), now()).is_ok());
    // Signed by the authority, but not canonical (pretty-printed payload).
    let pretty =
        jws::sign_typed(example().to_json_pretty().as_bytes(), &key, Alg::Es256, sdx_directory::signed::JWS_TYP, None)
            .unwrap();
    assert!(matches!(v.verify(pretty.as_bytes(), now()), Err(Error::NotCanonical)));
    // Signed by the authority, but something else than a directory (another typ).
    let other_typ = jws::sign(&example().canonical(), &key, Alg::Es256, None).unwrap();
    assert!(matches!(v.verify(other_typ.as_bytes(), now()), Err(Error::Malformed { .. })));
    // Too large.
    let huge = vec![b'a'; sdx_directory::MAX_DIRECTORY_BYTES + 1];
    assert!(matches!(v.verify(&huge, now()), Err(Error::TooLarge { .. })));
}

#[test]
fn the_holder_keeps_the_last_good_directory() {
    let key = authority();
    let holder = DirectoryHolder::new(verifier(&key));
    assert!(holder.current().is_none());
    // A refused first directory leaves the holder empty.
    assert!(matches!(holder.load_bytes(&example_bytes(), now()), Err(Error::Unsigned)));
    assert!(holder.current().is_none());

    let v1 = sign(&with_version(1), &key).unwrap();
    assert_eq!(holder.load_bytes(v1.as_bytes(), now()).unwrap(), Reload::Installed { previous: None, version: 1 });
    let snapshot = holder.current().unwrap();
    // The same directory again: a no-op.
    assert_eq!(holder.load_bytes(v1.as_bytes(), now()).unwrap(), Reload::Unchanged { version: 1 });
    // A newer one replaces it; the old snapshot stays usable.
    let v2 = sign(&with_version(2), &key).unwrap();
    assert_eq!(holder.load_bytes(v2.as_bytes(), now()).unwrap(), Reload::Installed { previous: Some(1), version: 2 });
    assert_eq!(snapshot.version(), 1);
    assert_eq!(holder.current().unwrap().version(), 2);
    // Older, reused version, tampered, expired, unsigned: refused, version 2 kept.
    assert!(matches!(holder.load_bytes(v1.as_bytes(), now()), Err(Error::Older { have: 2, got: 1 })));
    let mut changed = with_version(2);
    changed.organisations[0].name = "Umbenannt".into();
    let reused = sign(&changed, &key).unwrap();
    assert!(matches!(holder.load_bytes(reused.as_bytes(), now()), Err(Error::VersionReused { version: 2 })));
    let v3 = sign(&with_version(3), &key).unwrap();
    let tampered = v3.replacen('.', ".e", 1);
    assert!(holder.load_bytes(tampered.as_bytes(), now()).is_err());
    assert!(matches!(holder.load_bytes(v3.as_bytes(), ts("2030-01-01T00:00:00Z")), Err(Error::Expired { .. })));
    assert!(matches!(holder.load_bytes(&example_bytes(), now()), Err(Error::Unsigned)));
    assert_eq!(holder.current().unwrap().version(), 2);
    assert!(!holder.current().unwrap().is_expired(now()));
    assert!(holder.current().unwrap().is_expired(ts("2030-01-01T00:00:00Z")));

    // From files; a missing file is an I/O error and changes nothing.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("directory.jws");
    std::fs::write(&f, format!("{v3}\n")).unwrap();
    assert_eq!(holder.load_file_at(&f, now()).unwrap(), Reload::Installed { previous: Some(2), version: 3 });
    let e = holder.load_file_at(&dir.path().join("missing.jws"), now()).unwrap_err();
    assert!(e.is_io(), "{e:?}");
    assert_eq!(holder.current().unwrap().version(), 3);
}

#[test]
fn readers_never_block_or_see_a_partial_directory_during_reloads() {
    let key = authority();
    let holder = Arc::new(DirectoryHolder::new(verifier(&key)));
    holder.load_bytes(sign(&with_version(1), &key).unwrap().as_bytes(), now()).unwrap();
    let signed: Vec<String> = (2..=12).map(|v| sign(&with_version(v), &key).unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (holder, stop) = (holder.clone(), stop.clone());
            std::thread::spawn(move || {
                let (mut last, mut lookups) = (0, 0u64);
                while !stop.load(Ordering::Relaxed) || lookups == 0 {
                    let d = holder.current().expect("always a directory");
                    assert!(d.version() >= last, "went back from {last} to {}", d.version());
                    last = d.version();
                    let r = d.resolve(&svc(WOHNGELD), &ars("010030000000"), SupportLevel::SecondLevel).unwrap();
                    assert_eq!(r.responsible.organisation.key.as_str(), "psw:01003110");
                    lookups += 1;
                }
                (last, lookups)
            })
        })
        .collect();
    for s in &signed {
        holder.load_bytes(s.as_bytes(), now()).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        let (_, lookups) = r.join().unwrap();
        assert!(lookups > 0);
    }
    assert_eq!(holder.current().unwrap().version(), 12);
}

// ---- diff ------------------------------------------------------------------------------------------------------

#[test]
fn the_diff_names_what_changed() {
    let old = example();
    assert!(Diff::between(&old, &old).is_empty());
    let mut v = example_value();
    v["version"] = json!(2);
    v["organisations"][3]["capabilities"]["maxAttachmentBytes"] = json!(1_048_576);
    v["organisations"][3]["capabilities"]["transitions"].as_array_mut().unwrap().pop();
    v["organisations"][4]["endpoint"] = json!("https://neu.kreis-segeberg.example/sdx/v1");
    v["organisations"].as_array_mut().unwrap().remove(6); // the vendor
    v["responsibilities"].as_array_mut().unwrap().remove(7); // its responsibility
    v["organisations"].as_array_mut().unwrap().push(json!({
        "key": "psw:01062000", "name": "Kreis Stormarn", "roles": ["member"], "endpoint": {"viaHub": "hub:dataport"}
    }));
    v["responsibilities"].as_array_mut().unwrap().push(json!({
        "services": [{"leikaKey": WOHNGELD}], "regions": ["01062"], "level": "secondLevel", "organisation": "psw:01062000"
    }));
    let new = from_value(&v).unwrap();
    let d = Diff::between(&old, &new);
    assert_eq!((d.from_version, d.to_version), (1, 2));
    assert_eq!(d.organisations_added, [org("psw:01062000")]);
    assert_eq!(d.organisations_removed, [org("vnd:wohngeld01")]);
    assert_eq!(d.responsibilities_added.len(), 1);
    assert_eq!(d.responsibilities_removed.len(), 2, "Wohngeld and OZG-1104 at thirdLevel");
    let changed: Vec<(&str, Vec<&str>)> = d
        .organisations_changed
        .iter()
        .map(|c| (c.key.as_str(), c.changes.iter().map(|f| f.field.as_str()).collect()))
        .collect();
    assert_eq!(
        changed,
        [
            ("psw:01003110", vec!["capabilities.transitions", "capabilities.maxAttachmentBytes"]),
            ("psw:01060002", vec!["endpoint"]),
        ]
    );
    let text = d.to_string();
    assert!(text.contains("capabilities.maxAttachmentBytes: 5242880 → 1048576"), "{text}");
    assert!(text.contains("capabilities.transitions: -inProgress→cancelled"), "{text}");
    assert!(text.contains("+ LeiKa 99107004017000 in 01062 (Kreis) at secondLevel → psw:01062000"), "{text}");
    assert!(text.contains("- organisation vnd:wohngeld01"), "{text}");
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["responsibilitiesAdded"][0]["region"], "01062");
    assert_eq!(j["responsibilitiesAdded"][0]["service"]["leikaKey"], WOHNGELD);
    assert_eq!(j["organisationsChanged"][0]["changes"][1]["new"], 1_048_576);
}

// ---- the JSON Schema -------------------------------------------------------------------------------------------

fn validator() -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema::json_schema())
        .expect("the schema compiles")
}

#[test]
fn the_committed_schema_is_the_generated_one() {
    let path = root().join(schema::SCHEMA_PATH);
    if std::env::var_os("SDX_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, schema::json_schema_text()).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == schema::json_schema_text(),
        "{} is out of date: regenerate it with `SDX_UPDATE_SNAPSHOTS=1 cargo test -p sdx-directory` or \
         `sdx directory schema > {}`",
        schema::SCHEMA_PATH,
        schema::SCHEMA_PATH
    );
}

#[test]
fn the_schema_accepts_the_example_and_rejects_broken_ones() {
    let val = validator();
    let errors = |v: &Value| val.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path())).collect::<Vec<_>>();
    assert_eq!(errors(&example_value()), Vec::<String>::new());
    assert!(val.is_valid(
        &serde_json::to_value(synthetic::synthetic(Shape { lands: 2, kreise_per_land: 3, services: 2 })).unwrap()
    ));
    type Breakage = (&'static str, fn(&mut Value));
    let broken: Vec<Breakage> = vec![
        ("region", |v| v["responsibilities"][0]["regions"][0] = json!("0100")),
        ("missing key", |v| drop(v["organisations"][0].as_object_mut().unwrap().remove("key"))),
        ("unknown member", |v| v["organisations"][0]["colour"] = json!("blue")),
        ("level", |v| v["responsibilities"][0]["level"] = json!("fourthLevel")),
        ("http", |v| v["organisations"][0]["endpoint"] = json!("http://x.example/")),
        ("two services in one", |v| v["responsibilities"][0]["services"][0]["ozgId"] = json!("X")),
        ("private key", |v| v["organisations"][5]["signingKeys"][0]["d"] = json!("AAAA")),
        ("timestamp", |v| v["expiresAt"] = json!("2027-12-31T23:59:59")),
        ("version 0", |v| v["version"] = json!(0)),
        ("no services", |v| v["responsibilities"][0]["services"] = json!([])),
    ];
    for (what, f) in broken {
        let mut v = example_value();
        f(&mut v);
        assert!(!val.is_valid(&v), "the schema accepts a broken directory ({what})");
        assert!(from_value(&v).is_err(), "the decoder accepts a broken directory ({what})");
    }
}

// ---- hostile input ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Directory::from_json(&bytes);
        let _ = LoadedDirectory::unverified(&bytes);
        let _ = Verifier::new().verify(&bytes, now());
    }

    #[test]
    fn damaged_examples_fail_cleanly(at in 0usize..4000, byte in any::<u8>()) {
        let mut b = example_bytes();
        let i = at % b.len();
        b[i] = byte;
        if let Ok(d) = Directory::from_json(&b) {
            // Whatever still decodes is a directory that indexes and resolves without panicking.
            if let Ok(l) = LoadedDirectory::unverified(&d.canonical()) {
                let _ = l.resolve(&svc(WOHNGELD), &ars("010030000000"), SupportLevel::SecondLevel);
            }
        }
    }
}
