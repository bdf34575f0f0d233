//! Chains of parties (use case 2.3, issue 9). Three real nodes through `App::build` over mutual TLS, peers from a
//! signed directory: MiLa's case is routed to BeLa (2nd level), BeLa escalates it to the vendor the directory names
//! for the 3rd level; the vendor's progress and solution flow back along the chain to MiLa without anybody
//! re-typing them, and MiLa closing the case closes the vendor's case too. The vendor never sees the requester.
//! The same chain also runs with partners of both kinds: MiLa and BeLa bilateral, BeLa and the vendor through a
//! hub (the vendor is `viaHub` in the directory).

mod federation;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sdx_model::sample::{BELA, MILA};
use sdx_model::*;

use federation::*;

const VENDOR: &str = "psw:09162000";

/// Wait until `node`'s copy of `case` satisfies `ok`.
async fn until(node: &Node, case: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        let (s, v) = node.call(reqwest::Method::GET, &format!("/api/v1/cases/{case}"), None).await;
        if s == 200 && ok(&v["case"]) {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{what}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendors_progress_flows_back_along_the_chain_sqlite() {
    a_vendors_progress_flows_back_along_the_chain(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendors_progress_flows_back_along_the_chain_postgres() {
    a_vendors_progress_flows_back_along_the_chain(Db::Postgres).await;
}

async fn a_vendors_progress_flows_back_along_the_chain(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela, vendor) = (Org::new(MILA).on(db), Org::new(BELA).on(db), Org::new(VENDOR).on(db));
    let leika = "99107004017000";
    let at = |level: &str, org: &str| json!({"services": [{"leikaKey": leika}], "regions": ["nationwide"], "level": level, "organisation": org});
    let dir = signed(
        authority,
        1,
        vec![mila.entry(json!({})), bela.entry(json!({})), vendor.entry(json!({"roles": ["member", "vendor"]}))],
        json!([at("secondLevel", BELA), at("thirdLevel", VENDOR)]),
    );
    write(file, &dir);
    let m = start(mila.settings(ca, file, authority_jwk)).await;
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    let v = start(vendor.settings(ca, file, authority_jwk)).await;

    // MiLa's case, routed to BeLa.
    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    let id = CaseId::new_random().to_string();
    case["caseId"] = json!(id);
    let o = case.as_object_mut().unwrap();
    o.remove("assignee");
    o.get_mut("parties").unwrap().as_array_mut().unwrap().retain(|p| p["organisation"] == MILA);
    assert!(case["requester"].is_object(), "the sample names a requester");
    let (s, r) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&json!({"case": case}))).await;
    assert_eq!((s, r["routing"]["assignee"].as_str()), (201, Some(BELA)), "{r}");

    // BeLa escalates: the directory names the vendor.
    let path = format!("/api/v1/cases/{id}/escalations");
    let (s, e) = b.call(reqwest::Method::POST, &path, Some(&json!({"note": "Fehler im Fachverfahren?"}))).await;
    assert_eq!(s, 201, "{e}");
    let child = e["child"]["case"]["caseId"].as_str().unwrap().to_string();
    assert_eq!(e["child"]["case"]["assignee"], VENDOR, "{e}");
    assert!(e["reason"].as_str().unwrap().contains("thirdLevel"), "{e}");
    let at_vendor = until(&v, &child, "the escalation at the vendor", |c| c["status"] == "new").await;
    let c = &at_vendor["case"];
    assert_eq!((c["originator"].as_str(), c["supportLevel"].as_str()), (Some(BELA), Some("thirdLevel")), "{c}");
    assert!(c["requester"].is_null(), "the vendor does not get the requester: {c}");
    assert_eq!(c["relatedCases"], json!([{"caseId": id, "relation": "childOf"}]));
    // MiLa sees the escalation: third level, the vendor a party, in progress.
    let at_mila = until(&m, &id, "the escalation at MiLa", |c| c["supportLevel"] == "thirdLevel").await;
    let c = &at_mila["case"];
    assert_eq!(c["status"], "inProgress", "{c}");
    assert!(c["parties"].as_array().unwrap().iter().any(|p| p["organisation"] == VENDOR && p["role"] == "vendor"));
    assert_eq!(c["relatedCases"], json!([{"caseId": child, "relation": "parentOf"}]));

    // The vendor asks for information: pending flows to BeLa's and MiLa's copies.
    let child_path = format!("/api/v1/cases/{child}/changes");
    let pending = json!({"update": {"revision": 0, "status": "pending", "pendingReason": "waitingForThirdParty"}});
    let (s, r) = v.call(reqwest::Method::POST, &child_path, Some(&pending)).await;
    assert_eq!(s, 200, "{r}");
    until(&m, &id, "pending at MiLa", |c| c["status"] == "pending" && c["pendingReason"] == "waitingForThirdParty")
        .await;
    // The vendor resolves: the solution reaches MiLa, as BeLa's.
    let resolve = json!({"resolve": {"revision": 0, "solution": {"code": "fixed", "text": "Fehler im Fachverfahren behoben (Version 2.4.1).",
        "resolvedAt": "2026-11-30T12:00:00Z", "resolvedBy": VENDOR}}});
    let (s, r) = v.call(reqwest::Method::POST, &child_path, Some(&resolve)).await;
    assert_eq!(s, 200, "{r}");
    let at_mila = until(&m, &id, "resolved at MiLa", |c| c["status"] == "resolved").await;
    let solution = &at_mila["case"]["solution"];
    assert_eq!(
        (solution["text"].as_str(), solution["resolvedBy"].as_str()),
        (Some("Fehler im Fachverfahren behoben (Version 2.4.1)."), Some(BELA))
    );

    // MiLa closes: BeLa's case closes, and the vendor's with it.
    let (s, r) = m
        .call(reqwest::Method::POST, &format!("/api/v1/cases/{id}/changes"), Some(&json!({"close": {"revision": 0}})))
        .await;
    assert_eq!(s, 200, "{r}");
    until(&b, &id, "closed at BeLa", |c| c["status"] == "closed").await;
    until(&v, &child, "closed at the vendor", |c| c["status"] == "closed").await;

    // Refused: escalating what this node does not work on, or an ended case.
    let (s, r) = m.call(reqwest::Method::POST, &path, Some(&json!({}))).await;
    assert_eq!((s, r["errorCode"].as_str()), (403, Some("notPermitted")), "{r}");
    let (s, r) = b.call(reqwest::Method::POST, &path, Some(&json!({}))).await;
    assert_eq!((s, r["errorCode"].as_str()), (422, Some("invalidTransition")), "{r}");
    let (s, r) = b.call(reqwest::Method::POST, &path, Some(&json!({"to": 1}))).await;
    assert_eq!((s, r["errorCode"].as_str()), (400, Some("schemaViolation")), "{r}");

    for n in [m, b, v] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_mixes_bilateral_and_hub_partners_sqlite() {
    a_chain_mixes_bilateral_and_hub_partners(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_mixes_bilateral_and_hub_partners_postgres() {
    a_chain_mixes_bilateral_and_hub_partners(Db::Postgres).await;
}

/// MiLa and BeLa talk directly; the vendor is reachable only through the hub. One case crosses both: MiLa → BeLa
/// bilateral, BeLa → hub → vendor for the escalation, the vendor's solution to BeLa (directly: BeLa has an
/// endpoint) and on to MiLa, MiLa's close down the same way. The hub relays to the vendor only and cannot read it.
async fn a_chain_mixes_bilateral_and_hub_partners(db: Db) {
    const HUB: &str = "hub:test";
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela) = (Org::new(MILA).on(db), Org::with_encryption(BELA).on(db));
    let (vendor, hub) = (Org::with_encryption(VENDOR).on(db), Org::new(HUB).on(db));
    let leika = "99107004017000";
    let at = |level: &str, org: &str| json!({"services": [{"leikaKey": leika}], "regions": ["nationwide"], "level": level, "organisation": org});
    let dir = signed(
        authority,
        1,
        vec![
            mila.entry(json!({})),
            bela.entry(json!({})),
            vendor.entry(json!({"roles": ["member", "vendor"], "endpoint": {"viaHub": HUB}})),
            hub.entry(json!({"roles": ["hub"]})),
        ],
        json!([at("secondLevel", BELA), at("thirdLevel", VENDOR)]),
    );
    write(file, &dir);
    // The hub knows where the vendor's node is; BeLa has its own endpoint in the directory.
    let members = Options { hub: true, peers: vec![(VENDOR.into(), vendor.addr, vendor.jwk())], ..Options::default() };
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let m = start(mila.settings(ca, file, authority_jwk)).await;
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    let v = start(vendor.settings(ca, file, authority_jwk)).await;

    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    let id = CaseId::new_random().to_string();
    case["caseId"] = json!(id);
    let o = case.as_object_mut().unwrap();
    o.remove("assignee");
    o.get_mut("parties").unwrap().as_array_mut().unwrap().retain(|p| p["organisation"] == MILA);
    let (s, r) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=20", Some(&json!({"case": case}))).await;
    assert_eq!((s, r["routing"]["assignee"].as_str(), r["delivered"].as_bool()), (201, Some(BELA), Some(true)), "{r}");

    let secret = "Schnittstelle zum Fachverfahren liefert Fehler 0x2F.";
    let path = format!("/api/v1/cases/{id}/escalations");
    let (s, e) = b.call(reqwest::Method::POST, &path, Some(&json!({"note": secret}))).await;
    assert_eq!(s, 201, "{e}");
    let child = e["child"]["case"]["caseId"].as_str().unwrap().to_string();
    until(&v, &child, "the escalation at the vendor, through the hub", |c| c["status"] == "new").await;
    until(&m, &id, "the escalation at MiLa, directly", |c| c["supportLevel"] == "thirdLevel").await;

    let resolve = json!({"resolve": {"revision": 0, "solution": {"code": "fixed", "text": "Schnittstelle korrigiert.",
        "resolvedAt": "2026-11-30T12:00:00Z", "resolvedBy": VENDOR}}});
    let (s, r) = v.call(reqwest::Method::POST, &format!("/api/v1/cases/{child}/changes"), Some(&resolve)).await;
    assert_eq!(s, 200, "{r}");
    let at_mila = until(&m, &id, "resolved at MiLa", |c| c["status"] == "resolved").await;
    assert_eq!(at_mila["case"]["solution"]["text"], "Schnittstelle korrigiert.", "{at_mila}");
    let (s, r) = m
        .call(reqwest::Method::POST, &format!("/api/v1/cases/{id}/changes"), Some(&json!({"close": {"revision": 0}})))
        .await;
    assert_eq!(s, 200, "{r}");
    until(&v, &child, "closed at the vendor", |c| c["status"] == "closed").await;

    // Who carried what — each sender reaches a partner as the partner's directory entry says: MiLa and the vendor
    // deliver to BeLa directly (BeLa has an endpoint), BeLa to the vendor through the hub (the vendor is
    // `viaHub`); the hub carries the vendor's leg only.
    settle(&b).await;
    settle(&v).await;
    let metrics = |n: &Node| {
        let url = format!("{}/metrics", n.api);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    let delivered = |text: &str, peer: &str| {
        let line = format!("sdx_delivery_attempts_total{{peer=\"{peer}\",outcome=\"delivered\"}}");
        text.lines().any(|l| l.starts_with(&line))
    };
    let (at_m, at_v, at_h) = (metrics(&m).await, metrics(&v).await, metrics(&h).await);
    assert!(delivered(&at_m, BELA) && !delivered(&at_m, HUB), "{at_m}");
    assert!(delivered(&at_v, BELA) && !delivered(&at_v, HUB), "{at_v}");
    assert!(delivered(&at_h, VENDOR) && !delivered(&at_h, BELA) && !delivered(&at_h, MILA), "{at_h}");
    let at_b = metrics(&b).await;
    // (BeLa counts by reader: its envelopes to the vendor are the hub's deliveries above.)
    assert!(delivered(&at_b, MILA) && delivered(&at_b, VENDOR) && !delivered(&at_b, HUB), "{at_b}");
    let kept = hub.kept().await;
    assert!(!kept.windows(secret.len()).any(|w| w == secret.as_bytes()), "the hub keeps the escalation's note");

    for n in [m, b, v, h] {
        n.shutdown().await;
    }
}
