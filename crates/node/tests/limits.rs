//! Timeouts and connection bounds of both servers over real sockets on loopback: the peer endpoint (mutual TLS,
//! `tls::serve_mtls_with`) and the local API (plain HTTP, `server::serve_plain`). Short limits come from the
//! settings types; the assertions are about behaviour (closed, refused, served), with generous upper bounds only
//! so that a broken limit fails instead of hanging.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use rustls::pki_types::ServerName;
use sdx_model::OrgKey;
use sdx_node::metrics::Metrics;
use sdx_node::pki::{Ca, NodeCert};
use sdx_node::server::{self, ServerLimits};
use sdx_node::settings::LimitSettings;
use sdx_node::tls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ORG_A: &str = "psw:01000115";
const ORG_B: &str = "psw:06412000";
const ORG_C: &str = "psw:02000000";

/// Limits short enough for tests; `f` changes some.
fn limits(f: impl FnOnce(&mut LimitSettings)) -> LimitSettings {
    let mut l = LimitSettings {
        handshake_timeout_ms: 2_000,
        header_read_timeout_ms: 400,
        body_read_timeout_ms: 2_000,
        idle_timeout_ms: 30_000,
        peer_request_timeout_ms: 5_000,
        api_request_timeout_ms: 5_000,
        ..LimitSettings::default()
    };
    f(&mut l);
    l
}

/// Echoes the body length; `/slow` answers after 3 s; bodies up to 16 MiB.
fn router() -> Router {
    Router::new()
        .route("/echo", post(|body: Bytes| async move { body.len().to_string() }))
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .layer(DefaultBodyLimit::max(16 << 20))
}

struct Federation {
    ca: Ca,
    a: NodeCert,
    b: NodeCert,
    c: NodeCert,
    server: NodeCert,
}

fn federation() -> Federation {
    let ca = Ca::generate("SDX limits test").unwrap();
    let node = |o: &str| ca.issue_node(&OrgKey::parse(o).unwrap(), &[]).unwrap();
    let (a, b, c, server) = (node(ORG_A), node(ORG_B), node(ORG_C), node("psw:09000009"));
    Federation { ca, a, b, c, server }
}

struct Running {
    addr: SocketAddr,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task).await.expect("server stops").unwrap().unwrap();
    }

    /// The value of `sdx_connections_open` in this server's metrics.
    fn open_connections(&self) -> f64 {
        let text = self.metrics.render();
        text.lines()
            .find(|l| l.starts_with("sdx_connections_open{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no sdx_connections_open in\n{text}"))
    }
}

fn start_api(l: &LimitSettings) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let (limits, m) = (ServerLimits::api(l), metrics.clone());
    let task = tokio::spawn(async move {
        server::serve_plain(listener, router(), &limits, &m, async move {
            let _ = stopped.await;
        })
        .await
    });
    Running { addr, metrics, stop: Some(stop), task }
}

fn start_peer(f: &Federation, l: &LimitSettings) -> Running {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Metrics::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = tls::server_config(&f.server, f.ca.cert_pem()).unwrap();
    let (limits, m) = (ServerLimits::peer(l), metrics.clone());
    let task = tokio::spawn(async move {
        tls::serve_mtls_with(listener, router(), config, &limits, &m, async move {
            let _ = stopped.await;
        })
        .await
    });
    Running { addr, metrics, stop: Some(stop), task }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.x: each is its own source for the server).
async fn tcp_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A completed mutual-TLS handshake with `node`'s certificate, from the loopback address `from`.
async fn tls_from(
    from: Ipv4Addr,
    to: SocketAddr,
    node: &NodeCert,
    ca_pem: &str,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = tls::client_config(node, ca_pem).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tcp_from(from, to).await;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// Read until the server closes the connection; `Ok(elapsed)` if it did within `within`. Whatever the server
/// sends first (an error answer, a TLS alert) is read and ignored.
async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {within:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Still open: nothing to read and no close for `quiet`.
async fn still_open<S: AsyncRead + Unpin>(stream: &mut S, quiet: Duration) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(quiet, stream.read(&mut buf)).await.is_err()
}

/// Send `head` one byte at a time, `gap` apart, until a write fails or `head` is sent; then wait for the close.
async fn drip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    head: &[u8],
    gap: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    for b in head {
        if stream.write_all(&[*b]).await.is_err() || stream.flush().await.is_err() {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(gap).await;
    }
    closed_within(stream, Duration::from_secs(5)).await.map(|_| start.elapsed())
}

/// A request head that takes long to drip: 40 header lines.
fn long_head() -> Vec<u8> {
    let mut head = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..40 {
        head.extend(format!("X-Drip-{i}: {}\r\n", "x".repeat(20)).as_bytes());
    }
    head.extend(b"\r\n");
    head
}

#[tokio::test]
async fn silent_clients_are_disconnected_after_the_header_timeout() {
    let f = federation();
    let l = limits(|_| {});
    let (api, peer) = (start_api(&l), start_peer(&f, &l));

    // Local API: connected, nothing sent.
    let mut silent = tcp_from(Ipv4Addr::LOCALHOST, api.addr).await;
    let took = closed_within(&mut silent, Duration::from_secs(10)).await.expect("local API closes a silent client");
    assert!(took >= Duration::from_millis(300), "closed by the timeout, not at once: {took:?}");

    // Peer endpoint: the TLS handshake completes, then nothing.
    let mut silent = tls_from(Ipv4Addr::LOCALHOST, peer.addr, &f.a, f.ca.cert_pem()).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10)).await.expect("peer endpoint closes a silent client");
    assert!(took >= Duration::from_millis(300), "closed by the timeout, not at once: {took:?}");

    // A TCP client that never starts the handshake.
    let l2 = limits(|l| l.handshake_timeout_ms = 400);
    let peer2 = start_peer(&f, &l2);
    let mut mute = tcp_from(Ipv4Addr::LOCALHOST, peer2.addr).await;
    closed_within(&mut mute, Duration::from_secs(10)).await.expect("peer endpoint closes a client without handshake");

    // Both still serve.
    let client = reqwest::Client::new();
    assert_eq!(client.get(format!("http://{}/hello", api.addr)).send().await.unwrap().text().await.unwrap(), "hello");
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let url = format!("https://localhost:{}/hello", peer.addr.port());
    assert_eq!(client.get(url).send().await.unwrap().text().await.unwrap(), "hello");
    for r in [api, peer, peer2] {
        r.stop().await;
    }
}

#[tokio::test]
async fn clients_dripping_a_header_are_disconnected() {
    let f = federation();
    let l = limits(|_| {});
    let (api, peer) = (start_api(&l), start_peer(&f, &l));
    // 40 lines of 32 bytes, one byte per 20 ms: 25 s if nobody stopped it.
    let gap = Duration::from_millis(20);

    let mut tcp = tcp_from(Ipv4Addr::LOCALHOST, api.addr).await;
    let took = drip(&mut tcp, &long_head(), gap).await.expect("local API closes a dripping client");
    assert!(took < Duration::from_secs(10), "{took:?}");

    let mut tls_stream = tls_from(Ipv4Addr::LOCALHOST, peer.addr, &f.a, f.ca.cert_pem()).await.unwrap();
    let took = drip(&mut tls_stream, &long_head(), gap).await.expect("peer endpoint closes a dripping client");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // On a kept-alive HTTP/1.1 connection, the second request's head is bounded too.
    let mut tcp = tcp_from(Ipv4Addr::LOCALHOST, api.addr).await;
    tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    let took = drip(&mut tcp, &long_head(), gap).await.expect("second request head bounded");
    assert!(took < Duration::from_secs(10), "{took:?}");
    api.stop().await;
    peer.stop().await;
}

#[tokio::test]
async fn local_api_bounds_connections_per_ip_and_in_total_while_others_are_served() {
    let l = limits(|l| {
        l.header_read_timeout_ms = 30_000;
        l.api_max_connections_per_ip = 3;
        l.api_max_connections = 5;
    });
    let api = start_api(&l);
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from(one, api.addr).await);
    }
    // The fourth from the same address is closed at once.
    let mut fourth = tcp_from(one, api.addr).await;
    let took = closed_within(&mut fourth, Duration::from_secs(5)).await.expect("fourth connection closed");
    assert!(took < Duration::from_secs(2), "{took:?}");
    for c in &mut held {
        assert!(still_open(c, Duration::from_millis(100)).await, "the first three stay");
    }
    // Another address is served meanwhile.
    let other = reqwest::Client::builder().local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).build().unwrap();
    let answer = other.get(format!("http://{}/hello", api.addr)).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hello");
    // That client keeps its connection (4 open); one more from a third address fits, a sixth does not.
    held.push(tcp_from(Ipv4Addr::new(127, 0, 0, 3), api.addr).await);
    let mut sixth = tcp_from(Ipv4Addr::new(127, 0, 0, 4), api.addr).await;
    closed_within(&mut sixth, Duration::from_secs(5)).await.expect("over the total: closed");
    // Closing one frees its slot.
    drop(held.remove(0));
    let mut again = None;
    for _ in 0..50 {
        let mut c = tcp_from(one, api.addr).await;
        if still_open(&mut c, Duration::from_millis(100)).await {
            again = Some(c);
            break;
        }
    }
    assert!(again.is_some(), "a freed slot is usable again");
    let text = api.metrics.render();
    assert!(text.contains(r#"sdx_connections_refused_total{listener="api",reason="perIp"}"#), "{text}");
    assert!(text.contains(r#"sdx_connections_refused_total{listener="api",reason="total"}"#), "{text}");
    drop(held);
    api.stop().await;
}

#[tokio::test]
async fn peer_endpoint_bounds_connections_per_ip_and_per_organisation() {
    let f = federation();
    let l = limits(|l| {
        l.header_read_timeout_ms = 30_000;
        l.peer_max_connections_per_ip = 3;
        l.peer_max_connections_per_org = 2;
    });
    let peer = start_peer(&f, &l);
    let one = Ipv4Addr::new(127, 0, 0, 1);
    // Organisation A: two connections, the third is closed right after its handshake.
    let mut a1 = tls_from(one, peer.addr, &f.a, f.ca.cert_pem()).await.unwrap();
    let mut a2 = tls_from(one, peer.addr, &f.a, f.ca.cert_pem()).await.unwrap();
    let mut a3 = tls_from(Ipv4Addr::new(127, 0, 0, 5), peer.addr, &f.a, f.ca.cert_pem()).await.unwrap();
    closed_within(&mut a3, Duration::from_secs(5)).await.expect("third connection of one organisation closed");
    assert!(
        still_open(&mut a1, Duration::from_millis(100)).await && still_open(&mut a2, Duration::from_millis(100)).await
    );
    // Organisation B from the same address: one more fits the per-IP bound (3) …
    let mut b1 = tls_from(one, peer.addr, &f.b, f.ca.cert_pem()).await.unwrap();
    assert!(still_open(&mut b1, Duration::from_millis(100)).await);
    // … a fourth connection from that address is closed before any TLS.
    let mut fourth = tcp_from(one, peer.addr).await;
    closed_within(&mut fourth, Duration::from_secs(5)).await.expect("fourth connection from one address closed");
    // Organisation C from elsewhere is served.
    let mut config = tls::client_config(&f.c, f.ca.cert_pem()).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let c = tls::http_client_builder(config).local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6))).build().unwrap();
    let answer = c.get(format!("https://localhost:{}/hello", peer.addr.port())).send().await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "hello");
    let text = peer.metrics.render();
    assert!(text.contains(r#"sdx_connections_refused_total{listener="peer",reason="perOrg"} 1"#), "{text}");
    assert!(text.contains(r#"sdx_connections_refused_total{listener="peer",reason="perIp"} 1"#), "{text}");
    drop((a1, a2, b1));
    peer.stop().await;
}

#[tokio::test]
async fn normal_requests_work_including_large_bodies_over_http1_and_http2() {
    let f = federation();
    let l = limits(|_| {});
    let (api, peer) = (start_api(&l), start_peer(&f, &l));
    let big = vec![b'x'; 8 << 20];

    let h1 = reqwest::Client::new();
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    for (client, version) in [(&h1, reqwest::Version::HTTP_11), (&h2, reqwest::Version::HTTP_2)] {
        for _ in 0..3 {
            let r = client.post(format!("http://{}/echo", api.addr)).body(big.clone()).send().await.unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.text().await.unwrap(), big.len().to_string());
        }
    }
    let h2 = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let mut config = tls::client_config(&f.a, f.ca.cert_pem()).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let h1 = tls::http_client_builder(config).http1_only().build().unwrap();
    for (client, version) in [(&h1, reqwest::Version::HTTP_11), (&h2, reqwest::Version::HTTP_2)] {
        for _ in 0..3 {
            let url = format!("https://localhost:{}/echo", peer.addr.port());
            let r = client.post(url).body(big.clone()).send().await.unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.text().await.unwrap(), big.len().to_string());
        }
    }
    // Many requests at once on one HTTP/2 connection.
    let url = format!("https://localhost:{}/echo", peer.addr.port());
    let all = futures_util::future::join_all((0..64).map(|_| h2.post(&url).body(vec![b'y'; 2048]).send())).await;
    for r in all {
        assert_eq!(r.unwrap().text().await.unwrap(), "2048");
    }
    let text = peer.metrics.render();
    assert!(
        text.contains(r#"sdx_http_requests_total{listener="peer",method="POST",route="/echo",status="200"} 70"#),
        "{text}"
    );
    api.stop().await;
    peer.stop().await;
}

#[tokio::test]
async fn slow_requests_and_stalled_bodies_are_bounded() {
    let f = federation();
    let l = limits(|l| {
        l.api_request_timeout_ms = 300;
        l.peer_request_timeout_ms = 300;
    });
    let (api, peer) = (start_api(&l), start_peer(&f, &l));
    // A handler slower than the request timeout: 503 problem `internal`, retryable.
    let r = reqwest::get(format!("http://{}/slow", api.addr)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["errorCode"], "internal");
    let client = tls::http_client(&f.a, f.ca.cert_pem()).unwrap();
    let r = client.get(format!("https://localhost:{}/slow", peer.addr.port())).send().await.unwrap();
    assert_eq!(r.status(), 503);

    // A body that stops after 10 of 100 bytes: refused, and the connection does not stay.
    let stall = start_api(&limits(|l| l.body_read_timeout_ms = 300));
    let mut tcp = tcp_from(Ipv4Addr::LOCALHOST, stall.addr).await;
    tcp.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    for r in [api, peer, stall] {
        r.stop().await;
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let f = federation();
    // The header timeout is long: only the idle timeout can close these connections.
    let l = limits(|l| {
        l.header_read_timeout_ms = 60_000;
        l.idle_timeout_ms = 500;
    });
    let (api, peer) = (start_api(&l), start_peer(&f, &l));
    let h2c = reqwest::Client::builder().http2_prior_knowledge().pool_idle_timeout(None).build().unwrap();
    let h1 = reqwest::Client::builder().pool_idle_timeout(None).build().unwrap();
    for client in [&h2c, &h1] {
        assert_eq!(
            client.get(format!("http://{}/hello", api.addr)).send().await.unwrap().text().await.unwrap(),
            "hello"
        );
    }
    let tls_h2 = tls::http_client_builder(tls::client_config(&f.a, f.ca.cert_pem()).unwrap())
        .pool_idle_timeout(None)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/hello", peer.addr.port());
    assert_eq!(tls_h2.get(&url).send().await.unwrap().text().await.unwrap(), "hello");
    assert_eq!(api.open_connections(), 2.0);
    assert_eq!(peer.open_connections(), 1.0);
    let start = Instant::now();
    while api.open_connections() > 0.0 || peer.open_connections() > 0.0 {
        assert!(start.elapsed() < Duration::from_secs(10), "idle connections still open after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The clients notice and connect again.
    assert_eq!(h2c.get(format!("http://{}/hello", api.addr)).send().await.unwrap().text().await.unwrap(), "hello");
    assert_eq!(tls_h2.get(&url).send().await.unwrap().text().await.unwrap(), "hello");
    // A slow request is not idle: with a 500 ms idle timeout, a 3 s request on the same connection completes.
    let r = h2c.get(format!("http://{}/slow", api.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    api.stop().await;
    peer.stop().await;
}
