//! A node started through `App::build` from settings on disk, as `sdx serve` does: the operations endpoints on
//! the local API (`/healthz`, `/readyz`, `/metrics`, no token), and start-up errors that name what failed — a port
//! in use names the listener and the address, and no cause is printed twice.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sdx_crypto::{Alg, PrivateKey};
use sdx_node::app::{App, AppError};
use sdx_node::pki::Ca;
use sdx_node::settings::Settings;

use sdx_model::sample::{self, BELA, MILA};

/// This node: the sample case's originator; its one peer (the assignee) never answers.
const ORG: &str = MILA;
const TOKEN: &str = "app-test-token";

/// Settings of one node in `dir` (keys, certificate, SQLite), listening on `peer` and `api`.
fn settings(dir: &Path, peer: SocketAddr, api: SocketAddr) -> Settings {
    let ca = Ca::generate("SDX app test").unwrap();
    let cert = ca.issue_node(&sdx_model::OrgKey::parse(ORG).unwrap(), &[]).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.cert_pem()).unwrap();
    std::fs::write(dir.join("tls.key"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("signing.pem"), PrivateKey::generate(Alg::Es256).unwrap().to_pkcs8_pem()).unwrap();
    let peer_key = PrivateKey::generate(Alg::Es256).unwrap().public_key(Alg::Es256).unwrap();
    std::fs::write(dir.join("bela.jwk"), peer_key.to_jwk_string()).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let token = sdx_node::protocol::sha256(TOKEN.as_bytes());
    let toml = format!(
        r#"[node]
org = "{ORG}"
listen = "{peer}"
[keys]
signing_key = "signing.pem"
tls_cert = "tls.crt"
tls_key = "tls.key"
federation_ca = "ca.pem"
[storage]
url = "sqlite://{}?mode=rwc"
[api]
listen = "{api}"
clients = [{{ name = "test", token_sha256 = "{token}" }}]
[[peers]]
org = "{BELA}"
url = "https://localhost:{}"
signing_key = "bela.jwk"
"#,
        dir.join("node.db").display(),
        closed.port()
    );
    let file = dir.join("node.toml");
    std::fs::write(&file, toml).unwrap();
    Settings::load(Some(&file)).unwrap()
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_need_no_token_and_show_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::build(settings(dir.path(), any_port(), any_port())).await.unwrap();
    let base = format!("http://{}", app.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ok\n".to_string()));
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "ready\n".to_string()));
    // The API itself still wants its token.
    let r = http.get(format!("{base}/api/v1/deliveries")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = r.text().await.unwrap();
    for needle in [
        "# TYPE sdx_http_requests_total counter",
        r#"sdx_http_requests_total{listener="api",method="GET",route="/healthz",status="200"} 1"#,
        r#"sdx_http_requests_total{listener="api",method="GET",route="/api/v1/deliveries",status="401"} 1"#,
        "# TYPE sdx_http_request_duration_seconds histogram",
        r#"sdx_connections_open{listener="peer"} 0"#,
        "sdx_build_info{",
    ] {
        assert!(text.contains(needle), "no `{needle}` in\n{text}");
    }
    // This client's connection(s): the pool may have opened a second one while the first was being returned.
    let open = text.lines().find_map(|l| l.strip_prefix(r#"sdx_connections_open{listener="api"} "#));
    assert!(matches!(open, Some("1" | "2" | "3")), "{text}");
    // Unknown paths are counted under one label, not under the path a client made up.
    http.get(format!("{base}/no/such/path?x=1")).send().await.unwrap();
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"route="unmatched",status="404"} 1"#), "{text}");
    assert!(!text.contains("no/such/path"), "{text}");

    // A forward to the unreachable peer stays pending; the outbox gauges show it within a refresh or two.
    let mut case = sample::typical_case();
    case.case_id = sdx_model::CaseId::new_random();
    let r = http
        .post(format!("{base}/api/v1/cases"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "case": case, "note": "Bitte übernehmen." }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let pending = format!(r#"sdx_deliveries{{peer="{BELA}",state="pending"}} 1"#);
    let age = format!(r#"sdx_outbox_oldest_pending_age_seconds{{peer="{BELA}"}} "#);
    let start = std::time::Instant::now();
    loop {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if text.contains(&pending) && text.contains(&age) && text.contains("sdx_blocked_cases 0") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no outbox gauges after 15 s:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops").unwrap().unwrap();
}

#[tokio::test]
async fn a_port_in_use_names_the_listener_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for (peer, api, listener) in [(addr, any_port(), "peer endpoint"), (any_port(), addr, "local API")] {
        let err = match App::build(settings(dir.path(), peer, api)).await {
            Ok(_) => panic!("{listener} bound to a port in use"),
            Err(e) => e,
        };
        assert!(matches!(err, AppError::Bind { .. }), "{err:?}");
        // As `sdx serve` prints it: every cause once.
        let printed = format!("{:#}", anyhow::Error::new(err).context("cannot start the node"));
        let expected = format!("cannot start the node: cannot bind the {listener} to {addr}: ");
        assert!(printed.starts_with(&expected), "{printed}");
        assert!(printed.contains("in use"), "{printed}");
        assert_eq!(printed.matches("in use").count(), 1, "{printed}");
    }
    // A node that could not bind touched no store.
    assert!(!dir.path().join("node.db").exists());
}

#[tokio::test]
async fn start_up_errors_print_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path(), any_port(), any_port());
    s.keys.tls_key = dir.path().join("missing.key");
    let err = match App::build(s).await {
        Ok(_) => panic!("started without its TLS key"),
        Err(e) => e,
    };
    let printed = format!("{:#}", anyhow::Error::new(err));
    assert!(printed.starts_with(&format!("cannot read {}: ", dir.path().join("missing.key").display())), "{printed}");
    assert_eq!(printed.matches("No such file").count(), 1, "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_the_store_fails_but_still_alive() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::build(settings(dir.path(), any_port(), any_port())).await.unwrap();
    let base = format!("http://{}", app.api_addr().unwrap());
    app.engine().store().close().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("not ready: the store failed a read"), "{problem}");
    assert_eq!(problem["retryable"], true, "{problem}");
    assert_eq!(http.get(format!("{base}/healthz")).send().await.unwrap().status(), 200);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_push_the_feed_signed_retried_and_in_order() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let key = "a-webhook-secret-of-more-than-32-bytes!";
    std::fs::write(dir.path().join("hook.key"), key).unwrap();
    // A receiver that refuses the first two posts, then keeps what it gets with the signature's verdict.
    let got: Arc<Mutex<Vec<(bool, serde_json::Value)>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let (got, refused) = (got.clone(), refused.clone());
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers.get(sdx_node::webhooks::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let ok = sdx_node::webhooks::verify(key.as_bytes(), sig, &body, now, 300);
                got.lock().unwrap().push((ok, serde_json::from_slice(&body).unwrap()));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, receiver).into_future());

    let mut s = settings(dir.path(), any_port(), any_port());
    s.webhooks.push(sdx_node::webhooks::WebhookSettings {
        name: "ticket-system".into(),
        url: hook_url,
        secret_file: dir.path().join("hook.key"),
    });
    s.check().unwrap();
    let app = App::build(s).await.unwrap();
    let base = format!("http://{}", app.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut case = sample::typical_case();
        case.case_id = sdx_model::CaseId::new_random();
        ids.push(case.case_id.to_string());
        let r = http
            .post(format!("{base}/api/v1/cases"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"case": case}))
            .send();
        assert_eq!(r.await.unwrap().status(), 201);
    }
    let start = std::time::Instant::now();
    let events = loop {
        let seen: Vec<serde_json::Value> =
            got.lock().unwrap().iter().flat_map(|(_, v)| v["events"].as_array().cloned().unwrap_or_default()).collect();
        let sent: Vec<String> = seen
            .iter()
            .filter(|e| e["kind"] == "messageSent")
            .map(|e| e["caseId"].as_str().unwrap().to_string())
            .collect();
        if sent.len() >= 3 {
            assert_eq!(sent, ids, "every case's forward, in commit order");
            break seen;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "webhook got {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= 3, "refused posts were retried");
    assert!(got.lock().unwrap().iter().all(|(ok, _)| *ok), "every post carries a valid signature");
    let cursors: Vec<&str> = events.iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    let mut sorted = cursors.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), cursors.len(), "no event twice after the receiver accepted it");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), run).await.expect("stops").unwrap().unwrap();
}
