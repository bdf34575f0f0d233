//! Node-to-node transport security: mutual TLS restricted to BSI TR-02102-2, the HTTPS client a node uses to reach
//! its peers, and [`serve_mtls`], which serves an axum router to verified peers only and tells each handler which
//! organisation is calling ([`PeerIdentity`]).
//!
//! # Profile (BSI TR-02102-2, "Verwendung von Transport Layer Security")
//!
//! Both directions use one [`provider`]: rustls on **aws-lc-rs**, cut down to what TR-02102-2 recommends.
//!
//! | what | allowed | why |
//! |---|---|---|
//! | versions | TLS 1.3, TLS 1.2 | TR-02102-2 recommends 1.3 and 1.2 (1.2 until the end of 2031); rustls cannot speak ≤ 1.1 at all |
//! | TLS 1.3 suites | `TLS_AES_256_GCM_SHA384`, `TLS_AES_128_GCM_SHA256` | the AES-GCM suites of TR-02102-2 (its `TLS_AES_128_CCM_SHA256` is not in rustls); `TLS_CHACHA20_POLY1305_SHA256` is not in TR-02102-2 |
//! | TLS 1.2 suites | `TLS_ECDHE_ECDSA_WITH_AES_{256,128}_GCM_SHA{384,256}`, `TLS_ECDHE_RSA_WITH_AES_{256,128}_GCM_SHA{384,256}` | TR-02102-2 wants forward secrecy and AEAD for 1.2; we take its ECDHE + AES-GCM subset (no CBC, ChaCha20, static RSA, DHE) |
//! | groups | `secp256r1`, `secp384r1` | both in TR-02102-2's list of recommended groups and in aws-lc-rs. `x25519` is left out: we could not confirm that TR-02102-2 lists it, so it stays out until someone checks the current edition. The Brainpool curves and `ffdhe3072/4096` are recommended too but not offered by rustls/aws-lc-rs. Hybrid ML-KEM groups are left for a later edition of this profile. |
//! | handshake signatures | ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512; RSA-PSS SHA-256/384/512 | TR-02102-1/-2 signature schemes; Ed25519 and RSA PKCS#1 v1.5 handshake signatures are not offered |
//! | certificate signatures | the above plus RSA PKCS#1 v1.5 with SHA-256/384/512 | existing administration PKIs still sign certificates that way; Ed25519 and ML-DSA are not accepted |
//! | TLS 1.2 extras | Extended Master Secret (RFC 7627) required; no renegotiation, compression, heartbeat or 0-RTT (rustls implements none of them, early data stays off) | TR-02102-2 recommends the EMS extension for TLS 1.2 (as we recall it; not re-checked against the 2026 edition); every current TLS stack sends it |
//! | client authentication | required, against the federation CA only | every peer is a node of the federation; no system roots in either direction |
//! | ALPN | `h2`, `http/1.1` | HTTP/2 multiplexes many messages on one connection |
//!
//! # How a handler learns who is calling
//!
//! [`serve_mtls`] completes the handshake (which already proves that the client holds a key certified by the
//! federation CA), then reads the organisation from the client certificate once per connection
//! ([`crate::pki::org_of_cert`]). Every request on the connection then carries the extension [`PeerIdentity`]
//! — take it as a handler argument, it implements `FromRequestParts` — and [`TlsSession`] (version and suite).
//!
//! A connection whose certificate names no valid organisation (none, two, or a malformed key) still completes TLS,
//! but **every request on it is answered `403 Forbidden`** (`application/problem+json`, `errorCode`
//! `unknownSender`) before it reaches the router: handlers never see a request without an identity. The
//! [`PeerIdentity`] extractor refuses with the same 403 if it is ever used outside [`serve_mtls`].
//!
//! Whether that organisation may send a given message, and whether it matches the message's author and signer, is
//! the protocol's business, not this module's.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig, SignatureScheme};
use sdx_model::OrgKey;
use tokio::net::TcpStream;
use webpki::aws_lc_rs as alg;

use crate::pki::{self, NodeCert, PkiError};

/// ALPN protocols offered and accepted, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How long a client may take to finish the TLS handshake before the server drops the connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`serve_mtls`] lets requests in flight finish after the shutdown future completes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Client: time to establish TCP + TLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Client: time for a whole request, response body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Client: idle pooled connections are closed after this.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What went wrong building a TLS configuration or client. [`TlsError::code`] gives a stable code.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or PEM input is not acceptable.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The federation CA certificate cannot serve as a trust anchor.
    #[error("[trustAnchorInvalid] {0}")]
    TrustAnchorInvalid(String),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("[tlsConfig] {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("[httpClient] {0}")]
    HttpClient(#[from] reqwest::Error),
}

impl TlsError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TlsError::Pki(e) => e.code(),
            TlsError::TrustAnchorInvalid(_) => "trustAnchorInvalid",
            TlsError::Config(_) => "tlsConfig",
            TlsError::HttpClient(_) => "httpClient",
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Config(e.to_string())
    }
}

/// Result with [`TlsError`].
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------------------------------
// The BSI profile

static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    // Certificate signatures (chains).
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P256_SHA512,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ECDSA_P384_SHA512,
        alg::ECDSA_P521_SHA256,
        alg::ECDSA_P521_SHA384,
        alg::ECDSA_P521_SHA512,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
    ],
    // Handshake signatures (CertificateVerify, ServerKeyExchange): what we offer and accept.
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384, alg::ECDSA_P521_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256, alg::ECDSA_P521_SHA256],
        ),
        (
            SignatureScheme::ECDSA_NISTP521_SHA512,
            &[alg::ECDSA_P521_SHA512, alg::ECDSA_P384_SHA512, alg::ECDSA_P256_SHA512],
        ),
        (SignatureScheme::RSA_PSS_SHA512, &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY]),
        (SignatureScheme::RSA_PSS_SHA384, &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY]),
        (SignatureScheme::RSA_PSS_SHA256, &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY]),
    ],
};

/// The crypto provider of every SDX TLS connection: aws-lc-rs restricted to the BSI TR-02102-2 suites, groups and
/// signature schemes listed in the module docs.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            use aws_lc_rs::cipher_suite as cs;
            Arc::new(CryptoProvider {
                cipher_suites: vec![
                    cs::TLS13_AES_256_GCM_SHA384,
                    cs::TLS13_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                ],
                kx_groups: vec![aws_lc_rs::kx_group::SECP256R1, aws_lc_rs::kx_group::SECP384R1],
                signature_verification_algorithms: SIGNATURE_ALGORITHMS,
                ..aws_lc_rs::default_provider()
            })
        })
        .clone()
}

/// The protocol versions SDX speaks: TLS 1.3 and TLS 1.2.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A root store holding only the federation CA certificate(s) in `federation_ca_pem` (several during a rollover).
pub fn federation_roots(federation_ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in pki::certs_from_pem(federation_ca_pem)? {
        roots.add(cert).map_err(|e| TlsError::TrustAnchorInvalid(e.to_string()))?;
    }
    Ok(roots)
}

fn node_key(node: &NodeCert) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(node.key_pem().as_bytes())
        .map_err(|e| TlsError::Pki(PkiError::PemInvalid(format!("node key: {e}"))))
}

/// The server side of a node: presents `node`'s certificate, **requires** a client certificate issued by the
/// federation CA (`federation_ca_pem`, no other roots), BSI profile, ALPN `h2` and `http/1.1`.
pub fn server_config(node: &NodeCert, federation_ca_pem: &str) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let roots = Arc::new(federation_roots(federation_ca_pem)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::TrustAnchorInvalid(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki::certs_from_pem(node.cert_pem())?, node_key(node)?)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.require_ems = true;
    Ok(Arc::new(config))
}

/// The client side of a node: trusts only the federation CA, presents `node`'s certificate, BSI profile, ALPN
/// `h2` and `http/1.1`. Returned by value because reqwest takes it by value ([`http_client_builder`]); change
/// `alpn_protocols` before that to pin an HTTP version.
pub fn client_config(node: &NodeCert, federation_ca_pem: &str) -> Result<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)?
        .with_root_certificates(federation_roots(federation_ca_pem)?)
        .with_client_auth_cert(pki::certs_from_pem(node.cert_pem())?, node_key(node)?)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.require_ems = true;
    Ok(config)
}

/// A reqwest builder around `config` with the node's defaults: HTTPS only, HTTP/2 when the server agrees (ALPN),
/// `TCP_NODELAY`, connect timeout [`CONNECT_TIMEOUT`], request timeout [`REQUEST_TIMEOUT`], idle pooled
/// connections closed after [`POOL_IDLE_TIMEOUT`], HTTP/2 keep-alive pings, no redirects.
pub fn http_client_builder(config: ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(false)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sdx-node/", env!("CARGO_PKG_VERSION")))
}

/// The HTTPS client a node uses to reach its peers: [`client_config`] + [`http_client_builder`].
pub fn http_client(node: &NodeCert, federation_ca_pem: &str) -> Result<reqwest::Client> {
    Ok(http_client_builder(client_config(node, federation_ca_pem)?).build()?)
}

// ---------------------------------------------------------------------------------------------------------------
// Peer identity

/// Who is calling: the organisation named by the verified client certificate, and that certificate's SHA-256.
/// Present on every request served by [`serve_mtls`]; take it as a handler argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The organisation key from the certificate's `urn:sdx:org:` URI.
    pub org: OrgKey,
    /// SHA-256 of the client certificate's DER (pins the exact certificate, e.g. for logs and receipts).
    pub cert_sha256: [u8; 32],
}

impl PeerIdentity {
    /// The identity a verified client certificate (DER) gives, or why it gives none.
    pub fn from_cert(der: &[u8]) -> pki::Result<PeerIdentity> {
        Ok(PeerIdentity { org: pki::org_of_cert(der)?, cert_sha256: pki::cert_sha256(der) })
    }

    /// The certificate fingerprint as 64 lowercase hex digits.
    pub fn cert_sha256_hex(&self) -> String {
        pki::hex(&self.cert_sha256)
    }
}

/// The negotiated TLS parameters of the connection a request came on. Present on every request served by
/// [`serve_mtls`] (as an extension: `Extension<TlsSession>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: ProtocolVersion,
    /// The cipher suite.
    pub cipher_suite: CipherSuite,
}

/// Why a connection has no [`PeerIdentity`]; inside the request extensions only.
#[derive(Debug, Clone)]
struct PeerRejected(Arc<str>);

/// The 403 answer to a request without a [`PeerIdentity`] (`application/problem+json`, RFC 9457).
#[derive(Debug, Clone)]
pub struct PeerRejection {
    detail: Arc<str>,
}

impl IntoResponse for PeerRejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Forbidden",
            "status": 403,
            "detail": &*self.detail,
            "errorCode": "unknownSender",
        });
        (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

fn rejection(extensions: &axum::http::Extensions) -> PeerRejection {
    let detail = match extensions.get::<PeerRejected>() {
        Some(PeerRejected(reason)) => format!("the client certificate identifies no organisation: {reason}").into(),
        None => Arc::from("no verified client certificate on this connection"),
    };
    PeerRejection { detail }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerIdentity {
    type Rejection = PeerRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<PeerIdentity>().cloned().ok_or_else(|| rejection(&parts.extensions))
    }
}

async fn require_peer(request: Request, next: Next) -> Response {
    if request.extensions().get::<PeerIdentity>().is_some() {
        next.run(request).await
    } else {
        rejection(request.extensions()).into_response()
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Server

/// Serve `router` over HTTPS with mutual TLS (`config` from [`server_config`]) on `listener` until `shutdown`
/// completes, then let requests in flight finish for up to [`SHUTDOWN_GRACE`].
///
/// Every accepted socket gets `TCP_NODELAY` (without it, HTTP/2 latency suffers badly — see
/// `shared/reference/machine-notes.md`); handshakes taking longer than [`HANDSHAKE_TIMEOUT`] are dropped. Every
/// request carries [`PeerIdentity`] and [`TlsSession`]; requests from a certificate without a valid organisation
/// are answered 403 before the router (see the module docs).
///
/// Bind `listener` yourself (`127.0.0.1:0` in tests) and read `local_addr()` before calling this; it is switched
/// to non-blocking mode here. Must run inside a Tokio runtime.
pub async fn serve_mtls(
    listener: std::net::TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handle: Handle<SocketAddr> = Handle::new();
    let watcher = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        })
    };
    let acceptor = PeerAcceptor {
        inner: RustlsAcceptor::new(RustlsConfig::from_config(config))
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .acceptor(NoDelayAcceptor::new()),
    };
    let router = router.layer(axum::middleware::from_fn(require_peer));
    let served =
        axum_server::from_tcp(listener)?.acceptor(acceptor).handle(handle).serve(router.into_make_service()).await;
    watcher.abort();
    served
}

/// TLS (over a `TCP_NODELAY` socket), then the peer's identity, once per connection.
#[derive(Clone)]
struct PeerAcceptor {
    inner: RustlsAcceptor<NoDelayAcceptor>,
}

type AcceptFuture<St, Sv> = Pin<Box<dyn Future<Output = io::Result<(St, Sv)>> + Send>>;

impl<S> Accept<TcpStream, S> for PeerAcceptor
where
    S: Send + 'static,
{
    // tokio-rustls' server stream and axum-server's `TlsService<S>`, named through the inner acceptor.
    type Stream = <RustlsAcceptor<NoDelayAcceptor> as Accept<TcpStream, S>>::Stream;
    type Service = PeerService<<RustlsAcceptor<NoDelayAcceptor> as Accept<TcpStream, S>>::Service>;
    type Future = AcceptFuture<Self::Stream, Self::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let (_, connection) = stream.get_ref();
            let peer = match connection.peer_certificates().and_then(|c| c.first()) {
                Some(leaf) => PeerIdentity::from_cert(leaf).map_err(|e| PeerRejected(e.to_string().into())),
                None => Err(PeerRejected("no client certificate".into())),
            };
            let session = match (connection.protocol_version(), connection.negotiated_cipher_suite()) {
                (Some(version), Some(suite)) => Some(TlsSession { version, cipher_suite: suite.suite() }),
                _ => None,
            };
            Ok((stream, PeerService { inner: service, peer, session }))
        })
    }
}

/// Adds the connection's [`PeerIdentity`] (or [`PeerRejected`]) and [`TlsSession`] to every request.
#[derive(Clone)]
struct PeerService<S> {
    inner: S,
    peer: Result<PeerIdentity, PeerRejected>,
    session: Option<TlsSession>,
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for PeerService<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        match &self.peer {
            Ok(peer) => {
                extensions.insert(peer.clone());
            }
            Err(rejected) => {
                extensions.insert(rejected.clone());
            }
        }
        if let Some(session) = self.session {
            extensions.insert(session);
        }
        self.inner.call(request)
    }
}
