//! Hub mode (issue 9). Three real nodes through `App::build` over mutual TLS: MiLa and BeLa are members behind the
//! hub (`viaHub` in the signed directory, each with an encryption key), the hub relays (`role = "hub"`). A case
//! routed by the directory reaches BeLa through the hub, encrypted end to end; BeLa's change comes back the same
//! way; the hub's database and metrics hold no case content. A member that forges another's envelope, a hub that
//! alters one, and a loop are refused with typed errors; while the hub is down the case waits in MiLa's outbox
//! and goes out when it is back.

mod federation;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{BELA, MILA};
use sdx_model::*;
use sdx_node::envelope;
use sdx_node::pki::Ca;
use sdx_node::protocol::Identity;

use federation::*;

const HUB: &str = "hub:test";

/// A sample case without assignee (routed by the directory), with a text that must never show at the hub.
fn unassigned(secret: &str) -> Value {
    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    case["caseId"] = json!(CaseId::new_random());
    case["description"] = json!(secret);
    let o = case.as_object_mut().unwrap();
    o.remove("assignee");
    o.get_mut("parties").unwrap().as_array_mut().unwrap().retain(|p| p["organisation"] == MILA);
    json!({"case": case})
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The payload of a JWS (not verified).
fn alter_source(jws: &str) -> Value {
    let (_, payload) = sdx_crypto::jws::decode_unverified(jws).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

/// `jws` with its payload changed by `f` and its signature kept (what a hub that alters messages would send).
fn alter(jws: &str, f: impl Fn(&mut Value)) -> String {
    use base64::Engine as _;
    let mut payload = alter_source(jws);
    f(&mut payload);
    let parts: Vec<&str> = jws.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{}.{b64}.{}", parts[0], parts[2])
}

/// POST `body` to `url`'s message endpoint as `org` (its certificate).
async fn post_as(org: &Org, ca: &Ca, url: &str, body: String) -> (u16, Value) {
    post_to(org, ca, &format!("{url}/sdx/v1/messages"), body).await
}

/// POST `body` to `url` as `org` (its certificate).
async fn post_to(org: &Org, ca: &Ca, url: &str, body: String) -> (u16, Value) {
    let client = sdx_node::tls::http_client(&org.cert(ca), ca.cert_pem()).unwrap();
    let r = client.post(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_a_case_through_a_hub_that_cannot_read_it_sqlite() {
    members_exchange_a_case_through_a_hub_that_cannot_read_it(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_exchange_a_case_through_a_hub_that_cannot_read_it_postgres() {
    members_exchange_a_case_through_a_hub_that_cannot_read_it(Db::Postgres).await;
}

async fn members_exchange_a_case_through_a_hub_that_cannot_read_it(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela, hub) =
        (Org::with_encryption(MILA).on(db), Org::with_encryption(BELA).on(db), Org::new(HUB).on(db));
    let behind = json!({"endpoint": {"viaHub": HUB}});
    let leika = "99107004017000";
    let dir = signed(
        authority,
        1,
        vec![mila.entry(behind.clone()), bela.entry(behind), hub.entry(json!({"roles": ["hub"]}))],
        json!([{"services": [{"leikaKey": leika}], "regions": ["nationwide"], "level": "secondLevel",
                "organisation": BELA}]),
    );
    write(file, &dir);
    // The hub knows where its members' nodes are; the members know only the hub.
    let members = Options {
        hub: true,
        peers: vec![(MILA.into(), mila.addr, mila.jwk()), (BELA.into(), bela.addr, bela.jwk())],
        ..Options::default()
    };
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let m = start(mila.settings(ca, file, authority_jwk)).await;
    let b = start(bela.settings(ca, file, authority_jwk)).await;

    // MiLa → hub → BeLa, routed by the directory, receipt end to end.
    let secret = "Die Bürgerin Erika Mustermann, geboren am 12.08.1964, erreicht den Wohngeldantrag nicht.";
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=30", Some(&unassigned(secret))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!((v["routing"]["assignee"].as_str(), v["delivered"].as_bool()), (Some(BELA), Some(true)), "{v}");
    let id = v["case"]["caseId"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cases/{id}");
    let (s, at_bela) = b.call(reqwest::Method::GET, &path, None).await;
    assert_eq!((s, at_bela["case"]["description"].as_str()), (200, Some(secret)), "{at_bela}");

    // BeLa → hub → MiLa: a public comment.
    let entry = json!({"id": ItemId::new_random(), "visibility": "public", "author": {"organisation": BELA},
        "createdAt": "2026-11-30T10:00:00Z", "text": "Wir prüfen den Antrag."});
    let (s, v) = b
        .call(
            reqwest::Method::POST,
            &format!("{path}/changes"),
            Some(&json!({"update": {"revision": 0,
        "journal": [entry]}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let t = Instant::now();
    loop {
        let (_, v) = m.call(reqwest::Method::GET, &path, None).await;
        if v["case"]["journal"].as_array().is_some_and(|j| j.iter().any(|e| e["text"] == "Wir prüfen den Antrag.")) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "BeLa's comment did not reach MiLa: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The hub relayed both ways and holds nothing of the case.
    let metrics = reqwest::get(format!("{}/metrics", h.api)).await.unwrap().text().await.unwrap();
    for member in [MILA, BELA] {
        let line = format!("sdx_delivery_attempts_total{{peer=\"{member}\",outcome=\"delivered\"}}");
        assert!(metrics.lines().any(|l| l.starts_with(&line)), "{member}: {metrics}");
    }
    let kept = hub.kept().await;
    assert!(contains(&kept, "sdx-envelope+jws"), "the hub's outbox holds the envelopes it relayed");
    // (The case id is no secret of the case: the readers' receipts, signed and not encrypted, name it, and the hub
    // keeps them to answer an author's retry.)
    for needle in ["Erika Mustermann", "Wohngeldantrag", "Wir prüfen"] {
        assert!(!contains(&kept, needle), "the hub keeps {needle:?}");
        assert!(!metrics.contains(needle), "the hub's metrics show {needle:?}");
    }

    // A member that signs an envelope in another's name, a hub that alters one, a loop: refused, typed.
    let me = Identity {
        org: OrgKey::parse(MILA).unwrap(),
        name: None,
        signing_key: PrivateKey::from_pkcs8_pem(&mila.signing.to_pkcs8_pem()).unwrap(),
    };
    let msg = sample::typical_forward();
    let sealed = me.seal(&msg).unwrap();
    let bela_enc = bela.encryption.as_ref().unwrap().public_key(Alg::RsaOaep256).unwrap();
    let good = envelope::seal(&sealed.jws, &msg.header, &bela_enc, &mila.signing).unwrap();
    let hub_url = format!("https://localhost:{}", hub.addr.port());
    let (s, v) = post_as(&bela, ca, &hub_url, good.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("senderMismatch")), "BeLa posting MiLa's envelope: {v}");
    let forged = envelope::seal(&sealed.jws, &msg.header, &bela_enc, &bela.signing).unwrap();
    let (s, v) = post_as(&mila, ca, &hub_url, forged).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("signatureInvalid")), "MiLa's envelope, BeLa's key: {v}");
    let bela_url = format!("https://localhost:{}", bela.addr.port());
    let other = envelope::seal(&me.seal(&msg).unwrap().jws, &msg.header, &bela_enc, &mila.signing).unwrap();
    let swapped = alter(&good, |p| p["sealed"] = alter_source(&other)["sealed"].clone());
    let (s, v) = post_as(&hub, ca, &bela_url, swapped).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("signatureInvalid")), "content swapped at the hub: {v}");
    let redirected = alter(&good, |p| p["route"]["createdAt"] = json!("2026-01-01T00:00:00Z"));
    let (s, v) = post_as(&hub, ca, &bela_url, redirected).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("signatureInvalid")), "route changed at the hub: {v}");
    let (s, v) = post_as(&hub, ca, &bela_url, tamper(&good)).await;
    assert_eq!(s, 400, "bits flipped at the hub: {v}");
    let mut to_self = msg.clone();
    to_self.header.reader.key = OrgKey::parse(MILA).unwrap();
    let looped = envelope::seal(&me.seal(&to_self).unwrap().jws, &to_self.header, &bela_enc, &mila.signing).unwrap();
    let (s, v) = post_as(&mila, ca, &hub_url, looped).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("wrongRecipient")), "a loop: {v}");
    let (s, v) = post_as(&mila, ca, &hub_url, sealed.jws.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("malformed")), "not an envelope: {v}");
    // Straight to BeLa, an envelope needs a hub to come through.
    let (s, v) = post_as(&mila, ca, &bela_url, good).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("unknownSender")), "{v}");

    // The hub down: the next case waits in MiLa's outbox and goes out when the hub is back.
    h.shutdown().await;
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases", Some(&unassigned("Zweiter Fall."))).await;
    assert_eq!(s, 201, "{v}");
    let second = v["case"]["caseId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, pending) = m.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 1, "{pending}");
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let t = Instant::now();
    while b.call(reqwest::Method::GET, &format!("/api/v1/cases/{second}"), None).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "the case did not go out after the hub came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle(&m).await;

    for n in [m, b, h] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_stores_and_forwards_while_a_member_is_down_sqlite() {
    the_hub_stores_and_forwards_while_a_member_is_down(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_stores_and_forwards_while_a_member_is_down_postgres() {
    the_hub_stores_and_forwards_while_a_member_is_down(Db::Postgres).await;
}

/// BeLa down: the hub takes MiLa's case into its own outbox (MiLa's delivery waits for the receipt, no retries),
/// keeps it across its own restart, delivers it when BeLa is back and pushes BeLa's receipt to MiLa — who then
/// counts it delivered without sending it again. The hub's outbox shows each member's delivery state. Then the
/// same for three cases that reach the hub as one batch.
async fn the_hub_stores_and_forwards_while_a_member_is_down(db: Db) {
    let shared = Shared::new();
    let (ca, authority, authority_jwk, file) = (&shared.ca, &shared.authority, &shared.authority_jwk, &shared.file);
    let (mila, bela, hub) =
        (Org::with_encryption(MILA).on(db), Org::with_encryption(BELA).on(db), Org::new(HUB).on(db));
    let behind = json!({"endpoint": {"viaHub": HUB}});
    let dir = signed(
        authority,
        1,
        vec![mila.entry(behind.clone()), bela.entry(behind), hub.entry(json!({"roles": ["hub"]}))],
        json!([{"services": [{"leikaKey": "99107004017000"}], "regions": ["nationwide"], "level": "secondLevel",
                "organisation": BELA}]),
    );
    write(file, &dir);
    let members = Options {
        hub: true,
        peers: vec![(MILA.into(), mila.addr, mila.jwk()), (BELA.into(), bela.addr, bela.jwk())],
        ..Options::default()
    };
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let m = start(mila.settings(ca, file, authority_jwk)).await;

    // BeLa is not there: the hub keeps the case and says so (202); MiLa waits for the receipt.
    let secret = "Herr Max Mustermann wartet seit Wochen auf seinen Bescheid.";
    let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases?waitForReceipt=3", Some(&unassigned(secret))).await;
    assert_eq!((s, v["delivered"].as_bool()), (201, Some(false)), "{v}");
    let id = v["case"]["caseId"].as_str().unwrap().to_string();
    let t = Instant::now();
    let waiting = loop {
        let (_, p) = m.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
        let item = p["items"].as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
        if item["lastError"].as_str().is_some_and(|e| e.contains("queued at hub:test")) {
            break item;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "MiLa's delivery does not say the hub has it: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["attempts"], 0, "waiting at the hub is no failed attempt: {waiting}");
    let queued = format!("sdx_delivery_attempts_total{{peer=\"{BELA}\",outcome=\"queued\"}}");
    assert_eq!(m.metric(&queued).await, Some(1.0), "MiLa sent it once and waits");
    let (_, at_hub) = h.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
    let items = at_hub["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{at_hub}");
    assert_eq!(items[0]["peer"], BELA, "{at_hub}");

    // The hub restarts while it holds the case: nothing is lost.
    h.shutdown().await;
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let (_, at_hub) = h.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
    assert_eq!(at_hub["items"].as_array().unwrap().len(), 1, "after the restart: {at_hub}");

    // BeLa comes up: the hub delivers, and pushes BeLa's receipt to MiLa.
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    let t = Instant::now();
    loop {
        let (_, d) = m.call(reqwest::Method::GET, "/api/v1/deliveries?state=delivered", None).await;
        if d["items"].as_array().is_some_and(|a| a.len() == 1) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "MiLa did not get BeLa's receipt through the hub: {d}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, at_bela) = b.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!((s, at_bela["case"]["description"].as_str()), (200, Some(secret)), "{at_bela}");
    assert_eq!(m.metric(&queued).await, Some(1.0), "MiLa did not send it again");
    let (_, at_mila) = m.call(reqwest::Method::GET, &format!("/api/v1/cases/{id}"), None).await;
    assert!(at_mila["timeline"].to_string().contains("receiptReceived"), "{at_mila}");
    // At the hub: the envelope to BeLa and the receipt to MiLa, both delivered, nothing open.
    let (_, delivered) = h.call(reqwest::Method::GET, "/api/v1/deliveries?state=delivered", None).await;
    let mut peers: Vec<&str> =
        delivered["items"].as_array().unwrap().iter().map(|d| d["peer"].as_str().unwrap()).collect();
    peers.sort_unstable();
    let mut expected = vec![MILA, BELA];
    expected.sort_unstable();
    assert_eq!(peers, expected, "{delivered}");
    let (_, open) = h.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
    assert_eq!(open["items"].as_array().unwrap().len(), 0, "{open}");

    // Receipts pushed by anyone but the hub, forged, or not receipts at all: refused, nothing changes.
    let sent = MessageId::parse(d_items(&m, "delivered").await[0]["messageId"].as_str().unwrap()).unwrap();
    let bela_id = Identity {
        org: OrgKey::parse(BELA).unwrap(),
        name: None,
        signing_key: PrivateKey::from_pkcs8_pem(&bela.signing.to_pkcs8_pem()).unwrap(),
    };
    let mila_org = OrgKey::parse(MILA).unwrap();
    let forged = bela_id.seal(&bela_id.receipt(sent, &mila_org, None, Some(protocol_sha("other")), vec![])).unwrap();
    let receipts = format!("https://localhost:{}/sdx/v1/receipts", mila.addr.port());
    let (s, v) = post_to(&bela, ca, &receipts, forged.jws.clone()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("senderMismatch")), "pushed by BeLa itself: {v}");
    let (s, v) = post_to(&hub, ca, &receipts, forged.jws).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("signatureInvalid")), "another digest: {v}");
    let (s, v) = post_to(&hub, ca, &receipts, "not a receipt".into()).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("malformed")), "{v}");
    assert_eq!(d_items(&m, "delivered").await.len(), 1);
    assert_eq!(d_items(&m, "dead").await.len(), 0);

    // Several at once: with the hub and BeLa down, three cases wait in MiLa's outbox; the hub comes back and gets
    // them as one batch, answers each `queued` (BeLa still down), and delivers and pushes all three when BeLa is up.
    h.shutdown().await;
    b.shutdown().await;
    for i in 0..3 {
        let (s, v) = m.call(reqwest::Method::POST, "/api/v1/cases", Some(&unassigned(&format!("Fall {i}.")))).await;
        assert_eq!(s, 201, "{v}");
    }
    let h = start(hub.settings_with(ca, file, authority_jwk, &members)).await;
    let t = Instant::now();
    while m.metric(&queued).await < Some(4.0) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the batch was not queued at the hub: {:?}",
            d_items(&m, "pending").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(d_items(&h, "pending").await.len(), 3, "the hub holds the three");
    let b = start(bela.settings(ca, file, authority_jwk)).await;
    let t = Instant::now();
    while d_items(&m, "delivered").await.len() < 4 {
        assert!(t.elapsed() < Duration::from_secs(60), "the batch's receipts did not reach MiLa");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(d_items(&m, "dead").await.len(), 0);
    assert_eq!(m.metric(&queued).await, Some(4.0), "each sent once");

    let kept = hub.kept().await;
    for needle in ["Max Mustermann", "Bescheid", "Wohngeld"] {
        assert!(!contains(&kept, needle), "the hub keeps {needle:?}");
    }
    for n in [m, b, h] {
        n.shutdown().await;
    }
}

/// The node's deliveries in `state`.
async fn d_items(n: &Node, state: &str) -> Vec<Value> {
    let (_, v) = n.call(reqwest::Method::GET, &format!("/api/v1/deliveries?state={state}"), None).await;
    v["items"].as_array().cloned().unwrap_or_default()
}

fn protocol_sha(text: &str) -> Sha256Hex {
    sdx_node::protocol::sha256(text.as_bytes())
}
