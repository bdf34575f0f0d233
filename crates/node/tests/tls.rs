//! Mutual TLS between real nodes on 127.0.0.1:0: who gets in, who does not, what handlers learn, and what the
//! server's log and `tls::describe_client_error` say when a handshake fails.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::{Extension, Json, Router};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::{ClientConfig, SupportedProtocolVersion};
use sdx_model::OrgKey;
use sdx_node::pki::{self, Ca, NodeCert, PkiError};
use sdx_node::tls::{self, PeerIdentity, TlsSession};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ORG_A: &str = "psw:01000115";
const ORG_B: &str = "psw:06412000";

fn org(key: &str) -> OrgKey {
    OrgKey::parse(key).unwrap()
}

/// A federation: one CA (written to disk and read back, as a node would), nodes A and B.
struct Federation {
    _dir: tempfile::TempDir,
    ca: Ca,
    a: NodeCert,
    b: NodeCert,
}

fn federation() -> Federation {
    let dir = tempfile::tempdir().unwrap();
    Ca::generate("SDX test federation").unwrap().write_to(dir.path().join("ca")).unwrap();
    let ca = Ca::load_from(dir.path().join("ca")).unwrap();
    let a = ca.issue_node(&org(ORG_A), &["node-a.example"]).unwrap();
    ca.issue_node(&org(ORG_B), &["node-b.example"]).unwrap().write_to(dir.path().join("b")).unwrap();
    let b = NodeCert::load_from(dir.path().join("b")).unwrap();
    Federation { _dir: dir, ca, a, b }
}

async fn whoami(peer: PeerIdentity, Extension(session): Extension<TlsSession>, body: Bytes) -> Json<Value> {
    Json(json!({
        "org": peer.org.as_str(),
        "certSha256": peer.cert_sha256_hex(),
        "version": format!("{:?}", session.version),
        "suite": format!("{:?}", session.cipher_suite),
        "bytes": body.len(),
    }))
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl TestServer {
    async fn start(node: &NodeCert, ca_pem: &str) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let config = tls::server_config(node, ca_pem).unwrap();
        let router = Router::new().route("/whoami", post(whoami));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tls::serve_mtls(listener, router, config, async move {
            let _ = stopped.await;
        }));
        TestServer { addr, stop: Some(stop), task }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    async fn stop(mut self) -> io::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), &mut self.task).await.expect("server stops").unwrap()
    }
}

fn payload() -> Vec<u8> {
    vec![b'x'; 2048]
}

/// A client with its own provider and versions, trusting `ca_pem`, presenting `node` if given.
fn custom_client(
    node: Option<&NodeCert>,
    ca_pem: &str,
    provider: CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
) -> reqwest::Client {
    let builder = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(tls::federation_roots(ca_pem).unwrap());
    let mut config = match node {
        Some(node) => builder
            .with_client_auth_cert(
                pki::certs_from_pem(node.cert_pem()).unwrap(),
                rustls::pki_types::pem::PemObject::from_pem_slice(node.key_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls::http_client_builder(config).build().unwrap()
}

/// The SDX provider with other cipher suites or groups.
fn provider_with(
    suites: Vec<rustls::SupportedCipherSuite>,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> CryptoProvider {
    let mut p = (*tls::provider()).clone();
    if !suites.is_empty() {
        p.cipher_suites = suites;
    }
    if !groups.is_empty() {
        p.kx_groups = groups;
    }
    p
}

/// The error and all its sources, for checking why a request failed.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(" <- ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

async fn post_whoami(client: &reqwest::Client, url: &str) -> reqwest::Result<(reqwest::Version, Value)> {
    let response = client.post(url).body(payload()).send().await?.error_for_status()?;
    let version = response.version();
    Ok((version, response.json().await?))
}

#[tokio::test]
async fn peer_identity_reaches_handler_over_http2_and_http1() {
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;

    // HTTP/2 (ALPN h2), the node client as it is.
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let (version, body) = post_whoami(&client, &server.url("/whoami")).await.unwrap();
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(body["org"], ORG_A);
    assert_eq!(body["certSha256"], f.a.sha256().iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(body["version"], "TLSv1_3");
    assert_eq!(body["bytes"], 2048);
    // By DNS name too (the certificate names `localhost`).
    let url = format!("https://localhost:{}/whoami", server.addr.port());
    assert_eq!(post_whoami(&client, &url).await.unwrap().1["org"], ORG_A);

    // HTTP/1.1 (ALPN http/1.1 only).
    let mut config = tls::client_config(&f.a, f.ca.cert_pem()).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = tls::http_client_builder(config).http1_only().build().unwrap();
    let (version, body) = post_whoami(&client, &server.url("/whoami")).await.unwrap();
    assert_eq!(version, reqwest::Version::HTTP_11);
    assert_eq!(body["org"], ORG_A);

    // And the other way round: B calls A.
    let server_a = TestServer::start(&f.a, f.ca.cert_pem()).await;
    let client_b = tls::http_client(&f.b, f.ca.cert_pem()).unwrap();
    assert_eq!(post_whoami(&client_b, &server_a.url("/whoami")).await.unwrap().1["org"], ORG_B);

    server.stop().await.unwrap();
    server_a.stop().await.unwrap();
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    let client = custom_client(None, f.ca.cert_pem(), (*tls::provider()).clone(), tls::PROTOCOL_VERSIONS);
    let err = post_whoami(&client, &server.url("/whoami")).await.unwrap_err();
    let why = chain(&err);
    assert!(why.contains("CertificateRequired"), "{why}");
    assert!(err.status().is_none(), "refused in the handshake, not by HTTP: {err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let f = federation();
    let other = Ca::generate("another federation").unwrap();
    let intruder = other.issue_node(&org(ORG_A), &[]).unwrap();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    // The intruder trusts the real CA (it knows the server) but its own certificate is from elsewhere.
    let client = tls::http_client(&intruder, f.ca.cert_pem()).unwrap();
    let err = post_whoami(&client, &server.url("/whoami")).await.unwrap_err();
    let why = chain(&err);
    assert!(why.contains("UnknownCA"), "{why}");
    assert!(err.status().is_none(), "refused in the handshake, not by HTTP: {err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_certificate_without_a_valid_org_gets_403_before_the_router() {
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    let cases: [(&[&str], &str); 4] = [
        (&[], "certificateOrgMissing"),
        (&["https://node.example/"], "certificateOrgMissing"),
        (&["urn:sdx:org:psw:01000115", "urn:sdx:org:psw:06412000"], "certificateOrgAmbiguous"),
        (&["urn:sdx:org:PSW-1"], "certificateOrgInvalid"),
    ];
    for (uris, code) in cases {
        let cert = f.ca.issue("no org", &[], uris).unwrap();
        let client = tls::http_client(&cert, f.ca.cert_pem()).unwrap();
        // A known route and an unknown one: both 403, so the check sits in front of the router.
        for path in ["/whoami", "/no-such-route"] {
            let response = client.post(server.url(path)).body(payload()).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN, "{uris:?} {path}");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["status"], 403);
            assert_eq!(problem["errorCode"], "unknownSender");
            assert!(problem["detail"].as_str().unwrap().contains(code), "{uris:?}: {problem}");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn client_refuses_a_server_from_another_ca() {
    let f = federation();
    let other = Ca::generate("another federation").unwrap();
    let impostor = other.issue_node(&org(ORG_B), &[]).unwrap();
    // The impostor server would even accept A's certificate.
    let server = TestServer::start(&impostor, f.ca.cert_pem()).await;
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let err = post_whoami(&client, &server.url("/whoami")).await.unwrap_err();
    let why = chain(&err);
    assert!(why.contains("UnknownIssuer"), "{why}");
    assert!(err.is_connect(), "{err:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn non_bsi_suites_and_groups_are_refused() {
    use aws_lc_rs::cipher_suite as cs;
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    let url = server.url("/whoami");
    let tls13: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let tls12: &[&'static SupportedProtocolVersion] = &[&rustls::version::TLS12];

    let refused = [
        ("TLS 1.3 ChaCha20 only", provider_with(vec![cs::TLS13_CHACHA20_POLY1305_SHA256], vec![]), tls13),
        (
            "TLS 1.2 ECDHE-ECDSA-ChaCha20 only",
            provider_with(vec![cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256], vec![]),
            tls12,
        ),
        ("X25519 only", provider_with(vec![], vec![aws_lc_rs::kx_group::X25519]), tls13),
        ("X25519 only, TLS 1.2", provider_with(vec![], vec![aws_lc_rs::kx_group::X25519]), tls12),
    ];
    for (what, provider, versions) in refused {
        let client = custom_client(Some(&f.a), f.ca.cert_pem(), provider, versions);
        let err = post_whoami(&client, &url).await.unwrap_err();
        let why = chain(&err);
        assert!(why.contains("HandshakeFailure"), "{what}: {why}");
        assert!(err.is_connect(), "{what}: {err:?}");
    }

    // TLS 1.2 with ECDHE + AES-GCM works, on either curve.
    for (suite, group, name) in [
        (
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            aws_lc_rs::kx_group::SECP256R1,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            aws_lc_rs::kx_group::SECP384R1,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ] {
        let client = custom_client(Some(&f.a), f.ca.cert_pem(), provider_with(vec![suite], vec![group]), tls12);
        let (_, body) = post_whoami(&client, &url).await.unwrap();
        assert_eq!(body["version"], "TLSv1_2");
        assert_eq!(body["suite"], name);
        assert_eq!(body["org"], ORG_A);
    }
    // Both TLS 1.3 suites work.
    for (suite, name) in [
        (cs::TLS13_AES_128_GCM_SHA256, "TLS13_AES_128_GCM_SHA256"),
        (cs::TLS13_AES_256_GCM_SHA384, "TLS13_AES_256_GCM_SHA384"),
    ] {
        let client = custom_client(Some(&f.a), f.ca.cert_pem(), provider_with(vec![suite], vec![]), tls13);
        let (_, body) = post_whoami(&client, &url).await.unwrap();
        assert_eq!(body["suite"], name);
    }
    server.stop().await.unwrap();
}

/// A minimal ClientHello (no TLS 1.3 extensions), as an old or badly configured client sends it.
fn client_hello(version: u16, suites: &[u16], ems: bool) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend(kind.to_be_bytes());
        out.extend((data.len() as u16).to_be_bytes());
        out.extend(data);
    }
    let mut body = Vec::new();
    body.extend(version.to_be_bytes());
    body.extend([0x5a; 32]); // random
    body.push(0); // no session id
    body.extend(((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend(s.to_be_bytes());
    }
    body.extend([1, 0]); // compression: null
    let mut exts = Vec::new();
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x17, 0x00, 0x18]); // supported_groups: secp256r1, secp384r1
    ext(&mut exts, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
    ext(&mut exts, 0x000d, &[0, 4, 0x04, 0x03, 0x08, 0x04]); // signature_algorithms: ecdsa_p256_sha256, rsa_pss_rsae_sha256
    ext(&mut exts, 0xff01, &[0]); // renegotiation_info
    if ems {
        ext(&mut exts, 0x0017, &[]); // extended_master_secret
    }
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut handshake = vec![1]; // ClientHello
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Send a ClientHello, return the first record's content type and, for an alert, its description.
async fn first_answer(addr: SocketAddr, hello: &[u8]) -> (u8, Option<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(hello).await.unwrap();
    let mut head = [0u8; 7];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head)).await.unwrap().unwrap();
    (head[0], (head[0] == 21).then_some(head[6]))
}

#[tokio::test]
async fn old_versions_non_gcm_tls12_suites_and_missing_ems_get_alerts() {
    const HANDSHAKE: u8 = 22;
    const ALERT: u8 = 21;
    const HANDSHAKE_FAILURE: u8 = 40;
    const PROTOCOL_VERSION: u8 = 70;
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;

    // The hello itself is fine: TLS 1.2 with ECDHE-ECDSA-AES128-GCM gets a ServerHello.
    assert_eq!(first_answer(server.addr, &client_hello(0x0303, &[0xc02b], true)).await, (HANDSHAKE, None));
    // Without the Extended Master Secret extension it is refused.
    let answer = first_answer(server.addr, &client_hello(0x0303, &[0xc02b], false)).await;
    assert_eq!(answer, (ALERT, Some(HANDSHAKE_FAILURE)), "no EMS");
    // TLS 1.1 and 1.0, even offering a GCM suite.
    for version in [0x0302, 0x0301] {
        let answer = first_answer(server.addr, &client_hello(version, &[0xc02b, 0xc009, 0xc013], true)).await;
        assert_eq!(answer, (ALERT, Some(PROTOCOL_VERSION)), "version {version:#06x}");
    }
    // TLS 1.2 with suites outside TR-02102-2's list: CBC, static RSA, DHE, ChaCha20.
    for suite in [0xc023u16, 0xc009, 0xc027, 0x009c, 0x002f, 0x009e, 0xcca9, 0xcca8] {
        let answer = first_answer(server.addr, &client_hello(0x0303, &[suite], true)).await;
        assert_eq!(answer, (ALERT, Some(HANDSHAKE_FAILURE)), "suite {suite:#06x}");
    }
    server.stop().await.unwrap();
}

#[test]
fn org_of_cert_requires_exactly_one_org_uri() {
    let ca = Ca::generate("t").unwrap();
    let node = ca.issue_node(&org(ORG_A), &[]).unwrap();
    assert_eq!(pki::org_of_cert(node.cert_der()).unwrap(), org(ORG_A));
    assert_eq!(node.org().unwrap(), org(ORG_A));

    let zero = ca.issue("x", &[], &[]).unwrap();
    assert!(matches!(pki::org_of_cert(zero.cert_der()), Err(PkiError::OrgMissing)));
    let other_uri = ca.issue("x", &[], &["urn:sdx:orgs:psw:1", "https://a.example/"]).unwrap();
    assert!(matches!(pki::org_of_cert(other_uri.cert_der()), Err(PkiError::OrgMissing)));

    let two = ca.issue("x", &[], &["urn:sdx:org:psw:1", "urn:sdx:org:psw:2"]).unwrap();
    assert!(matches!(pki::org_of_cert(two.cert_der()), Err(PkiError::OrgAmbiguous(2))));
    // URNs compare case-insensitively in scheme and namespace: a second spelling is still a second organisation.
    let two_cases = ca.issue("x", &[], &["urn:sdx:org:psw:1", "URN:SDX:ORG:psw:1"]).unwrap();
    assert!(matches!(pki::org_of_cert(two_cases.cert_der()), Err(PkiError::OrgAmbiguous(2))));
    let same_twice = ca.issue("x", &[], &["urn:sdx:org:psw:1", "urn:sdx:org:psw:1"]).unwrap();
    assert_eq!(pki::org_of_cert(same_twice.cert_der()).unwrap_err().code(), "certificateOrgAmbiguous");

    let bad_key = ca.issue("x", &[], &["urn:sdx:org:PSW:1"]).unwrap();
    assert_eq!(pki::org_of_cert(bad_key.cert_der()).unwrap_err().code(), "certificateOrgInvalid");
    let empty_key = ca.issue("x", &[], &["urn:sdx:org:"]).unwrap();
    assert_eq!(pki::org_of_cert(empty_key.cert_der()).unwrap_err().code(), "certificateOrgInvalid");

    assert_eq!(pki::org_of_cert(b"not a certificate").unwrap_err().code(), "certificateInvalid");
    let mut trailing = node.cert_der().to_vec();
    trailing.push(0);
    assert_eq!(pki::org_of_cert(&trailing).unwrap_err().code(), "certificateInvalid");
}

#[test]
fn node_certificate_contents() {
    use x509_parser::extensions::GeneralName;
    let ca = Ca::generate("t").unwrap();
    let node = ca.issue_node(&org(ORG_A), &["node-a.example", "localhost"]).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(node.cert_der()).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::URI(u) => format!("uri:{u}"),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["dns:localhost", "dns:node-a.example", "ip:[127, 0, 0, 1]", "uri:urn:sdx:org:psw:01000115"]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!cert.is_ca());
    let (_, ca_cert) = x509_parser::parse_x509_certificate(ca.cert_der()).unwrap();
    assert!(ca_cert.is_ca());
    assert_eq!(cert.issuer(), ca_cert.subject());
    // Keys are PKCS#8 and never printed.
    assert!(node.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!format!("{node:?}{ca:?}").contains("PRIVATE"));
}

#[cfg(unix)]
#[test]
fn private_keys_are_written_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("t").unwrap();
    ca.write_to(dir.path()).unwrap();
    ca.issue_node(&org(ORG_A), &[]).unwrap().write_to(dir.path()).unwrap();
    for (file, mode) in [(pki::CA_KEY_FILE, 0o600), (pki::NODE_KEY_FILE, 0o600)] {
        let meta = std::fs::metadata(dir.path().join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let loaded = NodeCert::load_from(dir.path()).unwrap();
    assert_eq!(loaded.org().unwrap(), org(ORG_A));
}

#[test]
fn bad_inputs_give_stable_codes() {
    let ca = Ca::generate("t").unwrap();
    let node = ca.issue_node(&org(ORG_A), &[]).unwrap();
    assert_eq!(NodeCert::from_pem("no pem here", node.key_pem()).unwrap_err().code(), "pemInvalid");
    assert_eq!(NodeCert::from_pem(node.cert_pem(), "no key").unwrap_err().code(), "pemInvalid");
    assert_eq!(tls::server_config(&node, "nothing").unwrap_err().code(), "pemInvalid");
    // A key that does not belong to the certificate.
    let other = ca.issue_node(&org(ORG_B), &[]).unwrap();
    let mismatched = NodeCert::from_pem(node.cert_pem(), other.key_pem()).unwrap();
    assert_eq!(tls::server_config(&mismatched, ca.cert_pem()).unwrap_err().code(), "tlsConfig");
    assert_eq!(Ca::load_from("/nonexistent/sdx-ca").unwrap_err().code(), "pkiIo");
}

#[tokio::test]
async fn peer_identity_extractor_refuses_outside_serve_mtls() {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, ()) = axum::http::Request::new(()).into_parts();
    let rejection = PeerIdentity::from_request_parts(&mut parts, &()).await.unwrap_err();
    assert_eq!(rejection.into_response().status(), axum::http::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn shutdown_lets_serve_return() {
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    let addr = server.addr;
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    post_whoami(&client, &server.url("/whoami")).await.unwrap();
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed");
}

// ---------------------------------------------------------------------------------------------------------------
// Saying what went wrong: the server's log and `describe_client_error` name the reason.

/// Log lines written by the test's own tracing subscriber (the tests run on one thread, so a thread-local default
/// subscriber sees the server's tasks too).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The first line (from line `from` on) containing `needle`; waits a little, the server logs on its own task.
    async fn line(&self, from: usize, needle: &str) -> (usize, String) {
        for _ in 0..100 {
            let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
            if let Some((i, l)) = text.lines().enumerate().skip(from).find(|(_, l)| l.contains(needle)) {
                return (i + 1, l.to_string());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log line with `{needle}` in\n{}", String::from_utf8_lossy(&self.0.lock().unwrap()));
    }
}

/// A node certificate for `org` that expired yesterday, issued by `ca`.
fn expired_node(ca: &Ca, org_key: &str) -> NodeCert {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
    let issuer = Issuer::from_ca_cert_pem(ca.cert_pem(), KeyPair::from_pem(&ca.key_pem()).unwrap()).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    params.subject_alt_names.push(SanType::URI(format!("urn:sdx:org:{org_key}").try_into().unwrap()));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(60);
    params.not_after = now - time::Duration::days(1);
    let cert = params.signed_by(&key, &issuer).unwrap();
    NodeCert::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
}

/// The server's warning names the reason once, with the remote address, and nothing is said twice.
fn assert_warning(line: &str, reason: &str) {
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("remote=127.0.0.1:"), "{line}");
    assert_eq!(line.matches(reason).count(), 1, "the reason once: {line}");
}

#[tokio::test]
async fn handshake_failures_are_named_on_both_sides() {
    let (logs, _guard) = Logs::capture();
    let f = federation();
    let server = TestServer::start(&f.b, f.ca.cert_pem()).await;
    let url = server.url("/whoami");

    // A client certificate from another CA.
    let other = Ca::generate("another federation").unwrap();
    let intruder = tls::http_client(&other.issue_node(&org(ORG_A), &[]).unwrap(), f.ca.cert_pem()).unwrap();
    let err = post_whoami(&intruder, &url).await.unwrap_err();
    let said = tls::describe_client_error(&err);
    assert_eq!(said, "TLS: handshake refused by the peer: it does not trust our certificate (unknown CA)");
    let (at, line) = logs.line(0, "TLS handshake failed").await;
    assert_warning(&line, "(unknown CA)");
    assert!(line.contains("the client's certificate is not issued by the federation CA"), "{line}");
    assert!(line.contains(r#"reason="unknownCa""#), "{line}");

    // A server certificate that does not name the host the client asked for.
    let client = tls::http_client_builder(tls::client_config(&f.a, f.ca.cert_pem()).unwrap())
        .resolve("wrong.example", server.addr)
        .build()
        .unwrap();
    let err = post_whoami(&client, &format!("https://wrong.example:{}/whoami", server.addr.port())).await.unwrap_err();
    let said = tls::describe_client_error(&err);
    assert!(said.starts_with("TLS: the peer's certificate is not valid for wrong.example (name mismatch;"), "{said}");
    assert_eq!(said.matches("name mismatch").count(), 1, "{said}");
    let (at, line) = logs.line(at, "TLS handshake failed").await;
    assert_warning(&line, "bad certificate");
    assert!(line.contains("handshake refused by the client: it refused our certificate"), "{line}");

    // An expired client certificate.
    let expired = tls::http_client(&expired_node(&f.ca, ORG_A), f.ca.cert_pem()).unwrap();
    let err = post_whoami(&expired, &url).await.unwrap_err();
    let said = tls::describe_client_error(&err);
    assert_eq!(said, "TLS: handshake refused by the peer: it considers our certificate expired (expired)");
    let (at, line) = logs.line(at, "TLS handshake failed").await;
    assert_warning(&line, "(expired)");
    assert!(line.contains("the client's certificate has expired on 20"), "{line}");

    // A certificate without an organisation: TLS completes, requests get 403, the server says why once.
    let no_org = tls::http_client(&f.ca.issue("no org", &[], &[]).unwrap(), f.ca.cert_pem()).unwrap();
    let answer = no_org.post(&url).body(payload()).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN);
    let (_, line) = logs.line(at, "not a peer").await;
    assert_warning(&line, "certificateOrgMissing");
    assert!(line.contains(r#"reason="notAPeer""#), "{line}");
    server.stop().await.unwrap();

    // An expired server certificate, from the client's side.
    let stale = TestServer::start(&expired_node(&f.ca, ORG_B), f.ca.cert_pem()).await;
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let err = post_whoami(&client, &stale.url("/whoami")).await.unwrap_err();
    let said = tls::describe_client_error(&err);
    assert!(said.starts_with("TLS: the peer's certificate has expired on 20"), "{said}");
    assert!(said.ends_with("(expired)"), "{said}");
    let (_, line) = logs.line(0, "it considers our certificate expired").await;
    assert_warning(&line, "(expired)");
    stale.stop().await.unwrap();
}

#[tokio::test]
async fn client_errors_name_refused_connections_and_timeouts() {
    let f = federation();
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    // Nothing listens.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = client.post(format!("https://127.0.0.1:{}/x", closed.port())).send().await.unwrap_err();
    assert_eq!(tls::describe_client_error(&err), "connection refused");
    // Something accepts TCP and never answers.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = mute.local_addr().unwrap().port();
    let _held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = mute.accept().await {
            held.push(s);
        }
    });
    let impatient = tls::http_client_builder(tls::client_config(&f.a, f.ca.cert_pem()).unwrap())
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let err = impatient.post(format!("https://127.0.0.1:{port}/x")).send().await.unwrap_err();
    let said = tls::describe_client_error(&err);
    assert!(said.starts_with("timed out") && said.ends_with("(timeout)"), "{said}");
}
