//! The node and the signed directory of responsibilities (issue 9). Three real nodes started through
//! `App::build`, none with `[[peers]]`: every peer comes from one signed directory file that all of them read and
//! reload every second. A case sent without assignee is routed by the directory (service, region, support level)
//! and delivered over mutual TLS; a newer directory adds an organisation responsible for a narrower region and the
//! next case goes there without a restart; the partner's published capabilities refuse, at the source, a text it
//! cannot take; a case rejected as not responsible goes to the next candidate, and stays with its originator when
//! nobody is left; notices go to those responsible for their services in their regions; an older, unsigned or
//! tampered directory is refused and the last good one kept; a node whose directory is not signed by its authority
//! does not start; a node that checks its own responsibility rejects a case the directory gives to others, which
//! then goes to them; certificates the directory pins are required in both directions.

mod federation;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{BELA, MILA};
use sdx_model::*;
use sdx_node::app::App;

use federation::*;

/// The sample case without assignee and without the assignee's party, in `region`.
fn unassigned(region: &str) -> Value {
    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    case["caseId"] = json!(CaseId::new_random());
    case["region"] = json!(region);
    let o = case.as_object_mut().unwrap();
    o.remove("assignee");
    let parties = o.get_mut("parties").unwrap().as_array_mut().unwrap();
    parties.retain(|p| p["organisation"] == MILA);
    json!({"case": case, "note": "Bitte übernehmen."})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_are_routed_by_a_signed_directory_that_reloads_without_restart_sqlite() {
    cases_are_routed_by_a_signed_directory_that_reloads_without_restart(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_are_routed_by_a_signed_directory_that_reloads_without_restart_postgres() {
    cases_are_routed_by_a_signed_directory_that_reloads_without_restart(Db::Postgres).await;
}

async fn cases_are_routed_by_a_signed_directory_that_reloads_without_restart(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela, kreis) = (Org::new(MILA).on(db), Org::new(BELA).on(db), Org::new(KREIS).on(db));
    let leika = "99107004017000";

    // Version 1: MiLa and BeLa; BeLa is responsible nationwide at the second level.
    let nationwide = json!({"services": [{"leikaKey": leika}], "regions": ["nationwide"], "level": "secondLevel",
        "organisation": BELA});
    let v1 = signed(authority, 1, vec![mila.entry(json!({})), bela.entry(json!({}))], json!([nationwide.clone()]));
    write(file, &v1);
    let m = start(mila.settings(ca, file, authority_jwk)).await;
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    m.until_version(1).await;

    // A case without assignee goes to BeLa, with the reason, and is delivered (BeLa knows MiLa from the
    // directory too: the receipt verifies).
    let (s, v) =
        m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&unassigned("010020000000"))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!((v["routing"]["assignee"].as_str(), v["delivered"].as_bool()), (Some(BELA), Some(true)), "{v}");
    assert_eq!(v["routing"]["directoryVersion"], 1);
    assert!(v["routing"]["reason"].as_str().unwrap().contains("nationwide"), "{v}");
    assert!(v["case"]["parties"].as_array().unwrap().iter().any(|p| p["organisation"] == BELA && p["role"] == "bela"));
    let id = v["case"]["caseId"].as_str().unwrap().to_string();
    let (_, at_bela) = b.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!(at_bela["case"]["assignee"], BELA, "{at_bela}");
    let (_, at_mila) = m.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    let routed: Vec<&Value> =
        at_mila["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "routed").collect();
    assert_eq!(routed.len(), 1, "{at_mila}");
    assert!(routed[0]["detail"].as_str().unwrap().contains("directory version 1"), "{at_mila}");

    // Nothing to route by: no region.
    let mut no_region = unassigned("010020000000");
    no_region["case"].as_object_mut().unwrap().remove("region");
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases", Some(&no_region)).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("wrongRecipient")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("no region"), "{v}");

    // Version 2 adds the Kreis, responsible in Schleswig-Holstein, whose fields take at most 400 characters.
    let kreis_entry = kreis.entry(json!({"capabilities": {"maxTextChars": 400}}));
    // In Schleswig-Holstein BeLa is the second candidate (rank 1), after the Kreis.
    let sh =
        json!({"services": [{"leikaKey": leika}], "regions": ["01"], "level": "secondLevel", "organisation": KREIS});
    let sh_second = json!({"services": [{"leikaKey": leika}], "regions": ["01"], "level": "secondLevel",
        "organisation": BELA, "rank": 1});
    let v2 = signed(
        authority,
        2,
        vec![mila.entry(json!({})), bela.entry(json!({})), kreis_entry],
        json!([nationwide.clone(), sh, sh_second]),
    );
    write(file, &v2);
    let k = start(kreis.settings(ca, file, authority_jwk)).await;
    m.until_version(2).await;
    let (s, v) =
        m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&unassigned("010020000000"))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!((v["routing"]["assignee"].as_str(), v["delivered"].as_bool()), (Some(KREIS), Some(true)), "{v}");
    let kreis_case = v["case"]["caseId"].as_str().unwrap().to_string();
    // Outside Schleswig-Holstein it is still BeLa.
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases", Some(&unassigned("064120000000"))).await;
    assert_eq!((s, v["routing"]["assignee"].as_str()), (201, Some(BELA)), "{v}");

    // The Kreis's published limit refuses a long text at the source; nothing is queued.
    let (_, before) = m.call(reqwest::Method::GET, "/api/v1/deliveries", None).await;
    let entry = |text: String| {
        json!({"id": ItemId::new_random(), "visibility": "public", "author": {"organisation": MILA},
               "createdAt": "2026-11-30T10:00:00Z", "text": text})
    };
    let path = format!("/api/v1/cases/{kreis_case}/changes");
    let long = json!({"update": {"revision": 0, "journal": [entry("x".repeat(401))]}});
    let (s, v) = m.call(reqwest::Method::POST, &path, Some(&long)).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("tooLarge")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains(KREIS), "{v}");
    let (_, after) = m.call(reqwest::Method::GET, "/api/v1/deliveries", None).await;
    // (The case to BeLa may be delivered meanwhile: compare which messages there are, not their states.)
    let ids = |v: &Value| v["items"].as_array().unwrap().iter().map(|d| d["messageId"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&before), ids(&after), "nothing queued");
    let short = json!({"update": {"revision": 0, "journal": [entry("x".repeat(400))]}});
    let (s, v) = m.call(reqwest::Method::POST, &path, Some(&short)).await;
    assert_eq!(s, 200, "{v}");

    // The Kreis rejects the case as not responsible: MiLa's node forwards it to the next candidate, BeLa.
    settle(&m).await;
    let reject = json!({"reject": {"revision": 0, "reason": "notResponsible", "text": "Zuständig ist die HZD."}});
    let (s, v) = k.call(reqwest::Method::POST, &path, Some(&reject)).await;
    assert_eq!(s, 200, "{v}");
    let case_path = format!("/api/v1/cases/{kreis_case}");
    let t = Instant::now();
    while b.call(reqwest::Method::GET, &case_path, None).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(20), "the rerouted case did not reach BeLa");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v) = m.call(reqwest::Method::GET, &case_path, None).await;
    assert_eq!((v["case"]["assignee"].as_str(), v["partner"].as_str()), (Some(BELA), Some(BELA)), "{v}");
    let routed: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "routed")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    let expected = format!("{KREIS} rejected it as not responsible (Zuständig ist die HZD.); rerouted to {BELA}");
    assert!(routed.iter().any(|d| d.contains(&expected)), "{routed:?}");
    let (_, at_bela) = b.call(reqwest::Method::GET, &case_path, None).await;
    let c = &at_bela["case"];
    assert_eq!((c["assignee"].as_str(), c["status"].as_str()), (Some(BELA), Some("new")), "{at_bela}");
    assert!(!c["parties"].as_array().unwrap().iter().any(|p| p["organisation"] == KREIS), "{at_bela}");
    // BeLa rejects it too: nobody is left, the case stays with MiLa, rejected, and the timeline says why.
    settle(&m).await;
    let (s, v) = b.call(reqwest::Method::POST, &path, Some(&reject)).await;
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    loop {
        let (_, v) = m.call(reqwest::Method::GET, &case_path, None).await;
        if v["case"]["status"] == "rejected" {
            assert_eq!(v["case"]["assignee"], MILA, "{v}");
            let events = v["timeline"].as_array().unwrap();
            let last = events.iter().rev().find(|e| e["kind"] == "routed").unwrap();
            assert!(last["detail"].as_str().unwrap().contains("not rerouted"), "{last}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "BeLa's rejection did not arrive: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A notice goes to those responsible for its service in its regions: in Hessen BeLa only (nationwide), in
    // Schleswig-Holstein the Kreis too; a notice for a service nobody is responsible for goes to nobody.
    for (regions, expected) in
        [(json!(["06"]), json!([BELA])), (json!(["01060"]), json!([KREIS, BELA])), (json!([]), json!([KREIS, BELA]))]
    {
        let notice = json!({"noticeType": "maintenance", "services": [{"leikaKey": leika}], "regions": regions,
            "startsAt": "2099-01-01T08:00:00Z", "endsAt": "2099-01-01T12:00:00Z", "title": "Wartung",
            "text": "Wartungsfenster."});
        let (s, v) = m.call(reqwest::Method::POST, "/api/v1/notices", Some(&notice)).await;
        assert_eq!(s, 201, "{v}");
        let mut got: Vec<String> = serde_json::from_value(v["recipients"].clone()).unwrap();
        got.sort();
        let mut want: Vec<String> = serde_json::from_value(expected).unwrap();
        want.sort();
        assert_eq!(got, want, "{regions}");
    }
    let other = json!({"noticeType": "disruption", "services": [{"leikaKey": "99036004000000"}],
        "startsAt": "2099-01-01T08:00:00Z", "title": "Störung", "text": "Gestört."});
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/notices", Some(&other)).await;
    assert_eq!((s, &v["recipients"]), (201, &json!([])), "{v}");

    // An older directory, an unsigned one and a tampered one are refused; version 2 stays in use.
    for (bad, code) in [
        (v1.clone(), "olderVersion"),
        (document(3, vec![mila.entry(json!({}))], json!([])).to_string(), "unsigned"),
        (tamper(&v2), "signatureInvalid"),
    ] {
        let counted = format!("sdx_directory_reloads_total{{outcome=\"{code}\"}} ");
        write(file, &bad);
        let t = Instant::now();
        while m.metric(&counted).await.is_none() {
            assert!(t.elapsed() < Duration::from_secs(20), "{code} not counted");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(m.metric("sdx_directory_version ").await, Some(2.0), "{code}: the last good one is kept");
    }
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases", Some(&unassigned("010020000000"))).await;
    assert_eq!((s, v["routing"]["assignee"].as_str()), (201, Some(KREIS)), "{v}");

    for n in [m, b, k] {
        n.shutdown().await;
    }

    // A node whose directory is signed by another authority does not start, and says why.
    let stranger = PrivateKey::generate(Alg::Es256).unwrap();
    write(file, &signed(&stranger, 3, vec![mila.entry(json!({})), bela.entry(json!({}))], json!([nationwide])));
    let err = App::build(mila.settings(ca, file, authority_jwk)).await.err().expect("refused");
    let chain = format!("{err}: {}", std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default());
    assert!(chain.contains("directory"), "{chain}");
    assert!(matches!(err, sdx_node::app::AppError::Directory(ref e) if e.code() == "unknownAuthority"), "{chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_directory_pins_are_required_on_both_sides_sqlite() {
    certificates_the_directory_pins_are_required_on_both_sides(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_directory_pins_are_required_on_both_sides_postgres() {
    certificates_the_directory_pins_are_required_on_both_sides(Db::Postgres).await;
}

/// The directory's `tls` entries pin each node's certificate on top of the federation CA: with the right pins the
/// exchange works; when the directory pins another certificate for BeLa, MiLa's node refuses to talk to BeLa's
/// (its server certificate) and BeLa's messages to MiLa (its client certificate) — both sides refuse in the
/// handshake, say `notPinned`, and keep the messages for later; the directory pinning the right one again lets
/// them through, without a restart.
async fn certificates_the_directory_pins_are_required_on_both_sides(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela) = (Org::new(MILA).on(db), Org::new(BELA).on(db));
    let pinned = |o: &Org| json!({"tls": {"certificates": [o.cert(ca).cert_pem()]}});
    let wrong = json!({"tls": {"certificateSha256": ["ab".repeat(32)]}});
    let entries = |bela_tls: Value| vec![mila.entry(pinned(&mila)), bela.entry(bela_tls)];
    write(file, &signed(authority, 1, entries(pinned(&bela)), json!([])));
    // Retries at least every second, so that the messages kept go out soon after the pins are right again.
    let quick = |mut s: sdx_node::settings::Settings| {
        (s.delivery.backoff_initial_ms, s.delivery.backoff_max_ms) = (200, 1000);
        s
    };
    let m = start(quick(mila.settings(ca, file, authority_jwk))).await;
    let b = start(quick(bela.settings(ca, file, authority_jwk))).await;
    m.until_version(1).await;
    b.until_version(1).await;

    // Pinned right: delivered.
    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    case["caseId"] = json!(CaseId::new_random());
    let id = case["caseId"].as_str().unwrap().to_string();
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&json!({"case": case}))).await;
    assert_eq!((s, v["delivered"].as_bool()), (201, Some(true)), "{v}");

    // A connection BeLa's certificate opened to MiLa while it was pinned.
    let held = sdx_node::tls::http_client(&bela.cert(ca), ca.cert_pem()).unwrap();
    let noop = format!("https://localhost:{}/sdx/v1/noop", mila.addr.port());
    assert_eq!(held.post(&noop).body("").send().await.unwrap().status(), 204);

    // The directory pins another certificate for BeLa.
    write(file, &signed(authority, 2, entries(wrong.clone()), json!([])));
    m.until_version(2).await;
    b.until_version(2).await;
    // The connection opened before is refused from now on, request by request.
    let r = held.post(&noop).body("").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("notPinned"), "{problem}");
    // MiLa → BeLa: MiLa's node refuses BeLa's server certificate; the case waits.
    let mut second = serde_json::to_value(sample::typical_case()).unwrap();
    second["caseId"] = json!(CaseId::new_random());
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=3", Some(&json!({"case": second}))).await;
    assert_eq!((s, v["delivered"].as_bool()), (201, Some(false)), "{v}");
    let (_, pending) = m.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
    let error = pending["items"][0]["lastError"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("notPinned"), "{pending}");
    // BeLa → MiLa: MiLa's server refuses BeLa's client certificate in the handshake.
    let entry = json!({"id": ItemId::new_random(), "visibility": "public", "author": {"organisation": BELA},
        "createdAt": "2026-11-30T10:00:00Z", "text": "Wir prüfen."});
    let change = json!({"update": {"revision": 0, "journal": [entry]}});
    let (s, v) = b.call(reqwest::Method::POST, &format!("/api/v1/cases/{id}/changes"), Some(&change)).await;
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    while m.metric("sdx_tls_refused_total{reason=\"notPinned\"}").await.unwrap_or(0.0) < 1.0 {
        assert!(t.elapsed() < Duration::from_secs(20), "MiLa did not refuse BeLa's certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, at_mila) = m.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    let said =
        |v: &Value| v["case"]["journal"].as_array().is_some_and(|j| j.iter().any(|e| e["text"] == "Wir prüfen."));
    assert!(!said(&at_mila), "nothing got through: {at_mila}");

    // Pinned right again: both wait no longer.
    write(file, &signed(authority, 3, entries(pinned(&bela)), json!([])));
    m.until_version(3).await;
    b.until_version(3).await;
    settle(&m).await;
    settle(&b).await;
    let (_, at_mila) = m.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    assert!(said(&at_mila), "{at_mila}");
    m.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_checking_its_responsibility_rejects_what_the_directory_gives_to_others_sqlite() {
    a_node_checking_its_responsibility_rejects_what_the_directory_gives_to_others(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_checking_its_responsibility_rejects_what_the_directory_gives_to_others_postgres() {
    a_node_checking_its_responsibility_rejects_what_the_directory_gives_to_others(Db::Postgres).await;
}

/// The Kreis checks its own responsibility (`[directory] check_responsibility`): a case MiLa sends it for a service
/// the directory gives to BeLa is rejected as not responsible, with the directory's reason, and MiLa's node routes
/// it on to BeLa; a case for a service the directory does not know stays with the Kreis.
async fn a_node_checking_its_responsibility_rejects_what_the_directory_gives_to_others(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela, kreis) = (Org::new(MILA).on(db), Org::new(BELA).on(db), Org::new(KREIS).on(db));
    let leika = "99107004017000";
    let nationwide = json!({"services": [{"leikaKey": leika}], "regions": ["nationwide"], "level": "secondLevel",
        "organisation": BELA});
    let orgs = vec![mila.entry(json!({})), bela.entry(json!({})), kreis.entry(json!({}))];
    write(file, &signed(authority, 1, orgs, json!([nationwide])));
    let m = start(mila.settings(ca, file, authority_jwk)).await;
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    let mut checking = kreis.settings(ca, file, authority_jwk);
    checking.directory.as_mut().unwrap().check_responsibility = true;
    let k = start(checking).await;
    m.until_version(1).await;

    // A case sent to the Kreis by name (not by the directory).
    let to_kreis = |service: &str| {
        let mut doc = unassigned("010020000000");
        let case = &mut doc["case"];
        case["assignee"] = json!(KREIS);
        case["category"]["service"] = json!({"leikaKey": service, "name": "Testleistung"});
        case["parties"].as_array_mut().unwrap().push(json!({"role": "bela", "organisation": KREIS, "name": "Kreis"}));
        doc
    };
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&to_kreis(leika))).await;
    assert_eq!((s, v["delivered"].as_bool()), (201, Some(true)), "{v}");
    let id = v["case"]["caseId"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}");

    // The Kreis rejected it with the directory's reason; MiLa's node sent it on to BeLa.
    let t = Instant::now();
    while b.call(reqwest::Method::GET, &path, None).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(20), "the case did not reach BeLa");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, at_kreis) = k.call(reqwest::Method::GET, &path, None).await;
    assert_eq!(at_kreis["case"]["status"], "rejected", "{at_kreis}");
    let routed = |v: &Value| -> Vec<String> {
        let events = v["timeline"].as_array().unwrap().iter();
        events.filter(|e| e["kind"] == "routed").map(|e| e["detail"].as_str().unwrap().to_string()).collect()
    };
    assert!(routed(&at_kreis).iter().any(|d| d.contains("not responsible by the directory (directory version 1")));
    let (_, at_mila) = m.call(reqwest::Method::GET, &path, None).await;
    assert_eq!((at_mila["partner"].as_str(), at_mila["case"]["assignee"].as_str()), (Some(BELA), Some(BELA)));
    let expected = format!("{KREIS} rejected it as not responsible (not responsible by the directory");
    assert!(routed(&at_mila).iter().any(|d| d.starts_with(&expected) && d.contains(&format!("rerouted to {BELA}"))));

    // A service the directory does not know: the Kreis cannot tell, and keeps it.
    let other = "99050012104000";
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&to_kreis(other))).await;
    assert_eq!((s, v["delivered"].as_bool()), (201, Some(true)), "{v}");
    let kept = v["case"]["caseId"].as_str().unwrap().to_string();
    settle(&k).await;
    settle(&m).await;
    let (_, at_kreis) = k.call(reqwest::Method::GET, &format!("/api/v1/cases/{kept}"), None).await;
    assert_eq!(at_kreis["case"]["status"], "new", "{at_kreis}");
    for n in [m, b, k] {
        n.shutdown().await;
    }
}
