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

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_and_return_over_mutual_tls_with_a_receiver_that_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("SDX test federation").unwrap();
    let (m_org, b_org) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let (m_cert, b_cert) = (ca.issue_node(&m_org, &[]).unwrap(), ca.issue_node(&b_org, &[]).unwrap());
    let (m_key, b_key) = (PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap());
    let (m_pub, b_pub) = (m_key.public_key(Alg::Es256).unwrap(), b_key.public_key(Alg::Es256).unwrap());
    let (m_addr, b_addr) = (free_addr(), free_addr());
    let url = |n: &str| format!("sqlite://{}?mode=rwc", dir.path().join(n).display());
    let fast = DeliverySettings { backoff_initial_ms: 1, backoff_max_ms: 5, ..DeliverySettings::default() };
    let mila = Engine::new(
        Identity { org: m_org.clone(), name: None, signing_key: m_key },
        SqliteStore::open(&url("mila.db")).await.unwrap(),
        vec![Peer { org: b_org.clone(), url: format!("https://localhost:{}", b_addr.port()), key: b_pub }],
        fast.clone(),
    );
    let bela = Engine::new(
        Identity { org: b_org.clone(), name: None, signing_key: b_key },
        SqliteStore::open(&url("bela.db")).await.unwrap(),
        vec![Peer { org: m_org.clone(), url: format!("https://localhost:{}", m_addr.port()), key: m_pub }],
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

    m_srv.shutdown().await;
    b_srv.shutdown().await;
}
