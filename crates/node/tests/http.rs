//! Two nodes over real HTTPS with mutual TLS on 127.0.0.1 (port 0): the peer endpoint, the HTTP transport,
//! signed receipts, and a receiver that is down for a while and gets everything, in order, when it returns.

use std::net::{SocketAddr, TcpListener};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Engine, Peer};
use sdx_node::peer_api::{self, HttpTransport};
use sdx_node::pki::{Ca, NodeCert};
use sdx_node::protocol::Identity;
use sdx_node::settings::DeliverySettings;
use sdx_node::tls;
use sdx_store::{DeliveryState, SqliteStore, Store};

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn serve(addr: SocketAddr, engine: Engine<SqliteStore>, cert: &NodeCert, ca: &Ca) -> Running {
    let listener = TcpListener::bind(addr).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = tls::server_config(cert, ca.cert_pem()).unwrap();
    let task = tokio::spawn(tls::serve_mtls(listener, peer_api::router(engine), config, async move {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A federation CA, MiLa's and BeLa's organisation keys, TLS certificates and signing keys.
struct Federation {
    ca: Ca,
    m_org: OrgKey,
    b_org: OrgKey,
    m_cert: NodeCert,
    b_cert: NodeCert,
    m_key: PrivateKey,
    b_key: PrivateKey,
    m_pub: sdx_crypto::PublicKey,
    b_pub: sdx_crypto::PublicKey,
}

fn federation() -> Federation {
    let ca = Ca::generate("SDX test federation").unwrap();
    let (m_org, b_org) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let (m_cert, b_cert) = (ca.issue_node(&m_org, &[]).unwrap(), ca.issue_node(&b_org, &[]).unwrap());
    let (m_key, b_key) = (PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap());
    let (m_pub, b_pub) = (m_key.public_key(Alg::Es256).unwrap(), b_key.public_key(Alg::Es256).unwrap());
    Federation { ca, m_org, b_org, m_cert, b_cert, m_key, b_key, m_pub, b_pub }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_return_over_mutual_tls_with_a_receiver_that_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let Federation { ca, m_org, b_org, m_cert, b_cert, m_key, b_key, m_pub, b_pub } = federation();
    let (m_addr, b_addr) = (free_addr(), free_addr());
    let url = |n: &str| format!("sqlite://{}?mode=rwc", dir.path().join(n).display());
    let fast = DeliverySettings { backoff_initial_ms: 1, backoff_max_ms: 5, ..DeliverySettings::default() };
    let mila = Engine::new(
        Identity { org: m_org.clone(), name: None, signing_key: m_key },
        SqliteStore::open(&url("mila.db")).await.unwrap(),
        vec![Peer::new(b_org.clone(), format!("https://localhost:{}", b_addr.port()), b_pub)],
        fast.clone(),
    );
    let bela = Engine::new(
        Identity { org: b_org.clone(), name: None, signing_key: b_key },
        SqliteStore::open(&url("bela.db")).await.unwrap(),
        vec![Peer::new(m_org.clone(), format!("https://localhost:{}", m_addr.port()), m_pub)],
        fast,
    );
    let to_bela = HttpTransport::new(tls::http_client(&m_cert, ca.cert_pem()).unwrap());
    let to_mila = HttpTransport::new(tls::http_client(&b_cert, ca.cert_pem()).unwrap());
    let m_srv = serve(m_addr, mila.clone(), &m_cert, &ca);

    // BeLa is down: the forward waits in MiLa's outbox and is retried.
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let id = case.case_id;
    mila.forward(case, None).await.unwrap();
    assert_eq!(mila.deliver_due(&to_bela, 10).await.unwrap(), 0);
    let pending = mila.store().list_deliveries(Some(DeliveryState::Pending), 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].last_error.as_deref().unwrap_or("").contains("localhost"), "{pending:?}");

    // BeLa comes up; the retry goes through and the signed receipt is stored.
    let b_srv = serve(b_addr, bela.clone(), &b_cert, &ca);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(mila.deliver_due(&to_bela, 10).await.unwrap(), 1);
    assert_eq!(bela.store().get_case(id).await.unwrap().unwrap().case.status, Status::New);
    let delivered = mila.store().list_deliveries(Some(DeliveryState::Delivered), 10).await.unwrap();
    assert_eq!(delivered.len(), 1);

    // BeLa works the case; MiLa's node learns every status.
    bela.change(id, Body::Update(Update { revision: 0, status: Some(Status::InProgress), ..Update::default() }))
        .await
        .unwrap();
    let solution = Solution {
        code: ResolutionCode::Fixed,
        text: "Upload-Grenze auf 20 MB erhöht.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: b_org.clone(),
    };
    bela.change(id, Body::Resolve(Resolve { revision: 0, solution: solution.clone(), journal: vec![] })).await.unwrap();
    bela.change(id, Body::HandBack(HandBack { revision: 0, solution: Some(solution), note: None })).await.unwrap();
    assert_eq!(bela.deliver_due(&to_mila, 10).await.unwrap(), 3);
    mila.change(id, Body::Close(Close { revision: 0, closure_code: None, note: None })).await.unwrap();
    assert_eq!(mila.deliver_due(&to_bela, 10).await.unwrap(), 1);

    let m = mila.store().get_case(id).await.unwrap().unwrap().case;
    let b = bela.store().get_case(id).await.unwrap().unwrap().case;
    assert_eq!(m.status, Status::Closed);
    assert_eq!(m, b);

    // A client of another federation cannot even reach the endpoint.
    let other_ca = Ca::generate("other").unwrap();
    let intruder = other_ca.issue_node(&OrgKey::parse("psw:99999999").unwrap(), &[]).unwrap();
    let client = tls::http_client(&intruder, other_ca.cert_pem()).unwrap();
    let r =
        client.post(format!("https://localhost:{}{}", b_addr.port(), peer_api::MESSAGES_PATH)).body("x").send().await;
    assert!(r.is_err(), "{r:?}");
    // A federation member that is not a configured peer gets a problem, not a receipt.
    let stranger = ca.issue_node(&OrgKey::parse("psw:99999999").unwrap(), &[]).unwrap();
    let client = tls::http_client(&stranger, ca.cert_pem()).unwrap();
    let r = client
        .post(format!("https://localhost:{}{}", b_addr.port(), peer_api::MESSAGES_PATH))
        .body("eyJ.eyJ.sig")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // The no-op endpoint answers configured peers only.
    let noop = format!("https://localhost:{}{}", b_addr.port(), peer_api::NOOP_PATH);
    let r = client.post(&noop).body("x").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!((p["errorCode"].as_str(), &p["retryable"]), (Some("unknownSender"), &serde_json::json!(false)), "{p}");
    let peer = tls::http_client(&m_cert, ca.cert_pem()).unwrap();
    assert_eq!(peer.post(&noop).body("x").send().await.unwrap().status(), 204);
    // Unknown routes and methods: problems too.
    let r = peer.get(&noop).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (405, "application/problem+json"));
    let r = peer.post(format!("https://localhost:{}/sdx/v1/nothing", b_addr.port())).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()), (404, "application/problem+json"));

    m_srv.shutdown().await;
    b_srv.shutdown().await;
}

/// A forward of a new case from MiLa with fresh ids.
fn new_forward() -> Message {
    let mut m = sample::typical_forward();
    let case_id = CaseId::new_random();
    m.header.message_id = MessageId::new_random();
    m.header.case_id = Some(case_id);
    if let Body::Forward(f) = &mut m.body {
        f.case.case_id = case_id;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_endpoint_answers_every_message_in_order_and_refuses_bad_batches() {
    let dir = tempfile::tempdir().unwrap();
    let Federation { ca, m_org, b_org, m_cert, b_cert, m_key, b_key, m_pub, b_pub } = federation();
    let b_addr = free_addr();
    let b_store =
        SqliteStore::open(&format!("sqlite://{}?mode=rwc", dir.path().join("bela.db").display())).await.unwrap();
    let bela = Engine::new(
        Identity { org: b_org.clone(), name: None, signing_key: b_key },
        b_store.clone(),
        vec![Peer::new(m_org.clone(), "https://localhost:1", m_pub)],
        DeliverySettings::default(),
    );
    let srv = serve(b_addr, bela, &b_cert, &ca);
    let me = Identity { org: m_org.clone(), name: None, signing_key: m_key };
    let client = tls::http_client(&m_cert, ca.cert_pem()).unwrap();
    let url = format!("https://localhost:{}{}", b_addr.port(), peer_api::BATCH_PATH);
    let post = |body: String| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap())
        }
    };

    let (m1, m2) = (new_forward(), new_forward());
    let mut m3 = new_forward();
    m3.header.reader.key = OrgKey::parse("psw:99999999").unwrap();
    let (s1, s2, s3) = (me.seal(&m1).unwrap(), me.seal(&m2).unwrap(), me.seal(&m3).unwrap());
    let messages = vec![s1.jws.clone(), s1.jws.clone(), "kein JWS".to_string(), s3.jws.clone(), s2.jws.clone()];
    let body = serde_json::json!({ "messages": messages }).to_string();
    let (status, answer) = post(body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let receipt = |i: usize, m: &Message, digest: &Sha256Hex| {
        let jws = results[i]["receipt"].as_str().unwrap_or_else(|| panic!("result {i}: {}", results[i]));
        let (_, r) =
            sdx_node::protocol::open_receipt(jws.as_bytes(), &b_pub, &b_org, &m_org, m.header.message_id, digest)
                .unwrap_or_else(|e| panic!("result {i}: {e}"));
        (jws.to_string(), r)
    };
    let (first, r) = receipt(0, &m1, &s1.digest);
    assert_eq!(r.result, ReceiptResult::Accepted);
    // The same message twice in one batch: stored once, the same receipt twice.
    assert_eq!(receipt(1, &m1, &s1.digest).0, first);
    assert_eq!(results[2]["problem"]["errorCode"], "signatureInvalid", "{}", results[2]);
    let (_, r) = receipt(3, &m3, &s3.digest);
    assert_eq!(r.result, ReceiptResult::Rejected);
    // Exactly what the single-message endpoint answers for it.
    let single = client
        .post(format!("https://localhost:{}{}", b_addr.port(), peer_api::MESSAGES_PATH))
        .body(s3.jws.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let (_, alone) =
        sdx_node::protocol::open_receipt(&single, &b_pub, &b_org, &m_org, m3.header.message_id, &s3.digest).unwrap();
    assert_eq!(alone.result, ReceiptResult::Rejected);
    assert_eq!(r.errors[0].code, alone.errors[0].code);
    assert_eq!(receipt(4, &m2, &s2.digest).1.result, ReceiptResult::Accepted);
    // Stored: the two cases, not the refused one.
    for (m, known) in [(&m1, true), (&m2, true), (&m3, false)] {
        assert_eq!(b_store.get_case(m.header.case_id.unwrap()).await.unwrap().is_some(), known);
    }
    // The whole batch again: the same answers (applied once).
    let (status, again) = post(body).await;
    assert_eq!(status, 200);
    assert_eq!(again["results"][0], answer["results"][0]);
    assert_eq!(again["results"][4], answer["results"][4]);

    // Bad batches: refused as a whole, nothing stored.
    let m4 = new_forward();
    let s4 = me.seal(&m4).unwrap();
    let too_many: Vec<String> = (0..65).map(|_| s4.jws.clone()).collect();
    let big = "x".repeat(sdx_node::protocol::MAX_BATCH_ITEM_BYTES + 1);
    for (body, want_status, code) in [
        ("{\"messages\": []}".to_string(), 400, "tooLarge"),
        (serde_json::json!({ "messages": too_many }).to_string(), 400, "tooLarge"),
        ("[1, 2".to_string(), 400, "malformed"),
        ("{\"messages\": [\"a\"], \"x\": 1}".to_string(), 400, "malformed"),
        (serde_json::json!({ "messages": [s4.jws.clone(), big] }).to_string(), 413, "tooLarge"),
    ] {
        let (status, problem) = post(body).await;
        assert_eq!(status, want_status, "{problem}");
        assert_eq!(problem["errorCode"], code, "{problem}");
    }
    assert!(b_store.get_case(m4.header.case_id.unwrap()).await.unwrap().is_none());
    srv.shutdown().await;
}
