//! The local API over real HTTP on 127.0.0.1:0: bearer tokens, create-and-forward, changes, the case with its
//! timeline, queries with paging, the outbox, and problem+json answers with stable codes.

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Engine, Peer};
use sdx_node::local_api;
use sdx_node::protocol::{Identity, sha256};
use sdx_node::settings::{ApiClient, DeliverySettings};
use sdx_store::SqliteStore;
use serde_json::{Value, json};

const TOKEN: &str = "s3cr3t-token-of-the-rt-connector";

async fn start() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&format!("sqlite://{}?mode=rwc", dir.path().join("mila.db").display())).await.unwrap();
    let bela_key = PrivateKey::generate(Alg::Es256).unwrap().public_key(Alg::Es256).unwrap();
    let engine = Engine::new(
        Identity {
            org: OrgKey::parse(MILA).unwrap(),
            name: None,
            signing_key: PrivateKey::generate(Alg::Es256).unwrap(),
        },
        store,
        // The peer is not running: forwards stay in the outbox.
        vec![Peer { org: OrgKey::parse(BELA).unwrap(), url: "https://localhost:1".into(), key: bela_key }],
        DeliverySettings::default(),
    );
    let clients = vec![ApiClient { name: "rt".into(), token_sha256: sha256(TOKEN.as_bytes()).to_string() }];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, local_api::router(engine, &clients)).into_future());
    (base, dir)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value, String) {
    let mut rq = client().request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), ctype)
}

#[tokio::test]
async fn the_local_api_end_to_end() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;

    // No token, a wrong token: 401 problem.
    let r = client().get(format!("{base}/cases")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = client().get(format!("{base}/cases")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Create and forward.
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let id = case.case_id;
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case, "note": "Bitte prüfen"}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["case"]["caseId"], id.to_string());
    // The same case again: conflict.
    let (s, v, ct) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await;
    assert_eq!((s, v["errorCode"].as_str(), ct.as_str()), (409, Some("inconsistentCase"), "application/problem+json"));
    // Invalid documents: typed problems with the SDX code.
    let mut bad = serde_json::to_value(&case).unwrap();
    bad["priority"] = json!("low");
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": bad}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("priorityMismatch")), "{v}");
    let mut bad = serde_json::to_value(&case).unwrap();
    bad["region"] = json!("1234");
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": bad}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("invalidIdentifier")), "{v}");

    // The originator may add information but not set the status from new.
    let entry = json!({"id": ItemId::new_random(), "visibility": "public",
        "author": {"organisation": MILA}, "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag der Bürgerin."});
    let url = format!("{base}/cases/{id}/changes");
    let (s, v, _) = call(M::POST, &url, Some(json!({"update": {"revision": 0, "journal": [entry]}}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["case"]["revision"], 2);
    let (s, v, _) = call(M::POST, &url, Some(json!({"update": {"revision": 0, "status": "inProgress"}}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");
    let (s, _, _) = call(
        M::POST,
        &format!("{base}/cases/{}/changes", CaseId::new_random()),
        Some(json!({"close": {"revision": 0}})),
    )
    .await;
    assert_eq!(s, 404);

    // The case with its timeline.
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["partner"], BELA);
    assert!(v["timeline"].as_array().unwrap().len() >= 2, "{v}");

    // Queries: filters and paging.
    for _ in 0..3 {
        let mut c = sample::typical_case();
        c.case_id = CaseId::new_random();
        c.ticket_type = TicketType::ServiceRequest;
        assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": c}))).await.0, 201);
    }
    let (_, v, _) = call(M::GET, &format!("{base}/cases?ticketType=serviceRequest&limit=2"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let cursor = v["nextCursor"].as_str().unwrap().to_string();
    let (_, v, _) =
        call(M::GET, &format!("{base}/cases?ticketType=serviceRequest&limit=2&cursor={cursor}"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v, _) = call(M::GET, &format!("{base}/cases?status=new&region=01&partner={BELA}"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
    let (s, v, _) = call(M::GET, &format!("{base}/cases?status=open"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("unknownCode")));
    let (s, _, _) = call(M::GET, &format!("{base}/cases?colour=red"), None).await;
    assert_eq!(s, 400);

    // The outbox: everything pending (the peer is down); a retry of a message that is not dead is a 404.
    let (_, v, _) = call(M::GET, &format!("{base}/deliveries?state=pending"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let first = v["items"][0]["messageId"].as_str().unwrap().to_string();
    let (s, _, _) = call(M::POST, &format!("{base}/deliveries/{first}/retry"), None).await;
    assert_eq!(s, 404);
}
