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
//!
//! # Saying what went wrong
//!
//! A handshake that fails on the server is logged at WARN with the remote address and one sentence naming the
//! reason ([`HandshakeFailure`]: unknown CA, expired, not yet valid, refused by the client — e.g. because our
//! certificate does not carry the name it asked for —, no common parameters, not TLS, timeout), and counted in
//! `sdx_tls_refused_total`; a certificate without a valid organisation (not a peer) is logged once per connection.
//! On the client side, [`describe_client_error`] turns a failed request into one line (unknown CA, name mismatch,
//! expired, handshake refused by the peer, connection refused, timeout) without repeating a cause.
//!
//! Timeouts and connection bounds of the server ([`serve_mtls_with`]) are described in [`crate::server`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, ClientConfig, ProtocolVersion, RootCertStore, ServerConfig, SignatureScheme};
use sdx_model::{ErrorCode, OrgKey};
use tokio::net::TcpStream;
use webpki::aws_lc_rs as alg;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pki::{self, NodeCert, PkiError};
use crate::server::{self, Conn, ConnService, Gate, ListenerKind, ServerLimits};

/// ALPN protocols offered and accepted, in order of preference.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How long [`serve_mtls`] lets requests in flight finish after the shutdown future completes.
pub const SHUTDOWN_GRACE: Duration = crate::server::SHUTDOWN_GRACE;
/// Client: time to establish TCP + TLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Client: time for a whole request, response body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Client: idle pooled connections are closed after this — before the peer's server closes them (its default
/// `limits.idle_timeout_ms` is 60 s), so that a request is never sent on a connection the server is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

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
    #[error("[httpClient] the HTTP client could not be built")]
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
    server_config_pinned(node, federation_ca_pem, None)
}

/// [`server_config`] that also requires a client whose organisation has pinned certificates ([`CertPins`]) to
/// present one of them.
pub fn server_config_pinned(
    node: &NodeCert,
    federation_ca_pem: &str,
    pins: Option<Arc<dyn CertPins>>,
) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let roots = Arc::new(federation_roots(federation_ca_pem)?);
    let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::TrustAnchorInvalid(e.to_string()))?;
    let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> = match pins {
        Some(pins) => Arc::new(PinnedClients { inner: webpki, pins }),
        None => webpki,
    };
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
    client_config_pinned(node, federation_ca_pem, None)
}

/// [`client_config`] that also requires a server whose organisation has pinned certificates ([`CertPins`]) to
/// present one of them.
pub fn client_config_pinned(
    node: &NodeCert,
    federation_ca_pem: &str,
    pins: Option<Arc<dyn CertPins>>,
) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(PROTOCOL_VERSIONS)?;
    let roots = federation_roots(federation_ca_pem)?;
    let builder = match pins {
        Some(pins) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::TrustAnchorInvalid(e.to_string()))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedServers { inner, pins }))
        }
        None => builder.with_root_certificates(roots),
    };
    let mut config = builder.with_client_auth_cert(pki::certs_from_pem(node.cert_pem())?, node_key(node)?)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.require_ems = true;
    Ok(config)
}

// ---------------------------------------------------------------------------------------------------------------
// Pinned certificates

/// Certificates pinned per organisation — the signed directory's `tls` entries (`crate::directory`): on top of
/// the federation CA's chain, an organisation with pins must present one of them, checked in the handshake on both
/// sides (a node that connects, a node that accepts). An organisation without pins is not pinned.
pub trait CertPins: Send + Sync + std::fmt::Debug {
    /// Whether `org`'s node may present the certificate with this SHA-256 (of the DER certificate, 64 lowercase
    /// hex digits): one of its pins, or any when it has none.
    fn admits(&self, org: &OrgKey, cert_sha256_hex: &str) -> bool;
}

/// Refuse (403 `unknownSender`) a request whose client certificate its organisation's pins do not name (any
/// more): one on a connection opened before the directory changed — new connections are refused in the handshake.
/// A layer of the peer endpoint's router, with the node's pins as state.
pub async fn require_pinned(
    axum::extract::State(pins): axum::extract::State<Arc<dyn CertPins>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(peer) = request.extensions().get::<PeerIdentity>() {
        let fingerprint = peer.cert_sha256_hex();
        if !pins.admits(&peer.org, &fingerprint) {
            let detail =
                format!("certificate {fingerprint} of {} is not one the directory pins for it (notPinned)", peer.org);
            return ApiError::new(StatusCode::FORBIDDEN, ErrorCode::UnknownSender, detail).into_response();
        }
    }
    next.run(request).await
}

/// The refusal of a certificate its organisation's pins do not name.
#[derive(Debug)]
struct NotPinned(String);

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotPinned {}

/// Whether `leaf` is one of its organisation's pinned certificates (or its organisation has none; a certificate
/// naming no organisation is left to the checks after the handshake).
fn check_pin(
    pins: &dyn CertPins,
    leaf: &rustls::pki_types::CertificateDer<'_>,
) -> std::result::Result<(), rustls::Error> {
    let Ok(org) = pki::org_of_cert(leaf) else { return Ok(()) };
    let fingerprint = pki::hex(&pki::cert_sha256(leaf));
    if pins.admits(&org, &fingerprint) {
        return Ok(());
    }
    let why = format!("certificate {fingerprint} of {org} is not one the directory pins for it (notPinned)");
    Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(Arc::new(NotPinned(
        why,
    ))))))
}

/// The server-side check of client certificates: the federation CA's, then the pins.
#[derive(Debug)]
struct PinnedClients {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    pins: Arc<dyn CertPins>,
}

impl rustls::server::danger::ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        check_pin(&*self.pins, end_entity)?;
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client-side check of server certificates: the federation CA's, then the pins.
#[derive(Debug)]
struct PinnedServers {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pins: Arc<dyn CertPins>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedServers {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        check_pin(&*self.pins, end_entity)?;
        Ok(verified)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
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
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::UnknownSender, &*self.detail).into_response()
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
/// completes, then let requests in flight finish for up to [`SHUTDOWN_GRACE`]; with the default
/// [`ServerLimits`] and a metrics registry of its own. Nodes use [`serve_mtls_with`].
pub async fn serve_mtls(
    listener: std::net::TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_mtls_with(listener, router, config, &ServerLimits::default(), &Metrics::new(), shutdown).await
}

/// Serve `router` over HTTPS with mutual TLS (`config` from [`server_config`]) on `listener`, bounded by `limits`
/// (timeouts and connection bounds, see [`crate::server`]), until `shutdown` completes; then stop accepting and let
/// requests in flight finish for up to [`SHUTDOWN_GRACE`].
///
/// Every accepted socket gets `TCP_NODELAY` (without it, HTTP/2 latency suffers badly — see
/// `shared/reference/machine-notes.md`). A handshake that fails is logged at WARN with the remote address and the
/// reason ([`HandshakeFailure`]; a connection closed before it said anything only at DEBUG) and counted in
/// `sdx_tls_refused_total`. Every request carries [`PeerIdentity`] and [`TlsSession`]; requests from a certificate
/// without a valid organisation are answered 403 before the router (see the module docs), and such a connection is
/// logged once at WARN. Requests are counted in `metrics` with `listener="peer"`.
///
/// Bind `listener` yourself (`127.0.0.1:0` in tests) and read `local_addr()` before calling this; it is switched
/// to non-blocking mode here. Must run inside a Tokio runtime.
pub async fn serve_mtls_with(
    listener: std::net::TcpListener,
    router: Router,
    config: Arc<ServerConfig>,
    limits: &ServerLimits,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let gate = Gate::new(ListenerKind::Peer, limits, metrics);
    let acceptor = PeerAcceptor {
        tls: RustlsAcceptor::new(RustlsConfig::from_config(config)).handshake_timeout(limits.handshake_timeout),
        gate: Arc::clone(&gate),
    };
    let router = router.layer(axum::middleware::from_fn(require_peer));
    crate::server::serve_with(listener, router, acceptor, &gate, shutdown).await
}

/// Connection bounds, TLS, then the peer's identity and its organisation's bound, once per connection.
#[derive(Clone)]
struct PeerAcceptor {
    tls: RustlsAcceptor,
    gate: Arc<Gate>,
}

type AcceptFuture<St, Sv> = Pin<Box<dyn Future<Output = io::Result<(St, Sv)>> + Send>>;
type TlsStreamOf<S> = <RustlsAcceptor as Accept<TcpStream, S>>::Stream;
type TlsServiceOf<S> = <RustlsAcceptor as Accept<TcpStream, S>>::Service;

impl<S> Accept<TcpStream, S> for PeerAcceptor
where
    S: Send + 'static,
{
    // tokio-rustls' server stream and axum-server's `TlsService<S>`, named through the inner acceptor.
    type Stream = TlsStreamOf<S>;
    type Service = ConnService<PeerService<TlsServiceOf<S>>>;
    type Future = AcceptFuture<Self::Stream, Self::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let (remote, ip_slot) = match self.gate.admit(&stream) {
            Ok(admitted) => admitted,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let handshake = self.tls.accept(stream, service);
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            let (stream, service) = match handshake.await {
                Ok(done) => done,
                Err(e) => {
                    let failure = HandshakeFailure::of_server(&e, gate.limits.handshake_timeout);
                    gate.metrics.tls_refused(failure.code);
                    if failure.code == "closed" {
                        tracing::debug!(%remote, reason = failure.code, "peer endpoint: TLS handshake failed: {failure}");
                    } else if let Some(left_out) = gate.failures.allow() {
                        tracing::warn!(%remote, reason = failure.code, "peer endpoint: TLS handshake failed: {failure}{}",
                            server::left_out(left_out));
                    }
                    return Err(e);
                }
            };
            let (_, connection) = stream.get_ref();
            let peer = match connection.peer_certificates().and_then(|c| c.first()) {
                Some(leaf) => PeerIdentity::from_cert(leaf).map_err(|e| PeerRejected(e.to_string().into())),
                None => Err(PeerRejected("no client certificate".into())),
            };
            let org_slot = match &peer {
                Ok(p) => match gate.by_org.take(p.org.clone()) {
                    Ok(slot) => Some(slot),
                    Err(_) => {
                        let max = gate.limits.max_connections_per_org;
                        let what = format!("open connections of organisation {}", p.org);
                        return Err(gate.refuse(remote, "perOrg", &what, max));
                    }
                },
                Err(PeerRejected(why)) => {
                    gate.metrics.tls_refused("notAPeer");
                    if let Some(left_out) = gate.failures.allow() {
                        tracing::warn!(%remote, reason = "notAPeer",
                            "peer endpoint: not a peer, its requests are answered 403: {why}{}", server::left_out(left_out));
                    }
                    None
                }
            };
            let session = match (connection.protocol_version(), connection.negotiated_cipher_suite()) {
                (Some(version), Some(suite)) => Some(TlsSession { version, cipher_suite: suite.suite() }),
                _ => None,
            };
            let conn = Conn::open(remote, ip_slot, org_slot, gate.limits.idle_timeout);
            Ok((stream, ConnService::new(PeerService { inner: service, peer, session }, conn)))
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

// ---------------------------------------------------------------------------------------------------------------
// Saying what went wrong

/// Why a TLS handshake failed, in one line an operator understands, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailure {
    /// `unknownCa`, `expired`, `notYetValid`, `nameMismatch`, `revoked`, `badCertificate`, `notPinned`,
    /// `noCertificate`, `refusedByPeer`, `incompatible`, `notTls`, `timeout`, `closed` or `other`.
    pub code: &'static str,
    /// The explanation, e.g. `the client's certificate is not issued by the federation CA (unknown CA)`.
    pub reason: String,
}

impl std::fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl HandshakeFailure {
    fn new(code: &'static str, reason: impl Into<String>) -> HandshakeFailure {
        HandshakeFailure { code, reason: reason.into() }
    }

    /// The server's view of a failed handshake (the error of the TLS acceptor, `timeout` the handshake timeout).
    pub fn of_server(e: &io::Error, timeout: Duration) -> HandshakeFailure {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return HandshakeFailure::of_rustls(tls, "the client");
        }
        match e.kind() {
            io::ErrorKind::TimedOut => HandshakeFailure::new(
                "timeout",
                format!("the handshake did not finish within {} ms (timeout)", timeout.as_millis()),
            ),
            k if closed(k) => HandshakeFailure::new("closed", "the client closed the connection during the handshake"),
            _ => HandshakeFailure::new("other", e.to_string()),
        }
    }

    /// A rustls error of a handshake with `other` (`the client`, `the peer`), said from our side.
    pub fn of_rustls(e: &rustls::Error, other: &str) -> HandshakeFailure {
        use rustls::CertificateError as C;
        let theirs = format!("{other}'s certificate");
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::UnknownIssuer => HandshakeFailure::new(
                    "unknownCa",
                    format!("{theirs} is not issued by the federation CA (unknown CA)"),
                ),
                C::Expired | C::ExpiredContext { .. } => {
                    let when = match c {
                        C::ExpiredContext { not_after, .. } => format!(" on {}", unix_time(not_after.as_secs())),
                        _ => String::new(),
                    };
                    HandshakeFailure::new("expired", format!("{theirs} has expired{when} (expired)"))
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    HandshakeFailure::new("notYetValid", format!("{theirs} is not valid yet (check the clocks)"))
                }
                C::NotValidForName => HandshakeFailure::new(
                    "nameMismatch",
                    format!("{theirs} is not valid for the name we connected to (name mismatch)"),
                ),
                C::NotValidForNameContext { expected, presented } => HandshakeFailure::new(
                    "nameMismatch",
                    format!(
                        "{theirs} is not valid for {} (name mismatch; it names {})",
                        expected.to_str(),
                        presented.join(", ")
                    ),
                ),
                C::Revoked => HandshakeFailure::new("revoked", format!("{theirs} is revoked")),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => HandshakeFailure::new(
                    "badCertificate",
                    format!("{theirs} is not for this use (extended key usage)"),
                ),
                C::Other(o) if o.0.downcast_ref::<NotPinned>().is_some() => {
                    HandshakeFailure::new("notPinned", format!("{theirs}: {}", o.0))
                }
                other_error => {
                    HandshakeFailure::new("badCertificate", format!("{theirs} is not acceptable: {other_error:?}"))
                }
            },
            rustls::Error::NoCertificatesPresented => {
                HandshakeFailure::new("noCertificate", format!("{other} presented no certificate"))
            }
            rustls::Error::AlertReceived(alert) => {
                HandshakeFailure::new("refusedByPeer", format!("handshake refused by {other}: {}", alert_text(*alert)))
            }
            rustls::Error::PeerIncompatible(why) => HandshakeFailure::new(
                "incompatible",
                format!("{other} has no TLS version, cipher suite or group in common with the BSI profile ({why:?})"),
            ),
            rustls::Error::InvalidMessage(_) => {
                HandshakeFailure::new("notTls", format!("{other} does not speak TLS (e.g. plain HTTP to the TLS port)"))
            }
            e => HandshakeFailure::new("other", e.to_string()),
        }
    }
}

fn closed(kind: io::ErrorKind) -> bool {
    matches!(
        kind,
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn unix_time(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// What a TLS alert from the other side says about us.
fn alert_text(alert: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match alert {
        A::UnknownCA => "it does not trust our certificate (unknown CA)".into(),
        A::CertificateExpired => "it considers our certificate expired (expired)".into(),
        A::BadCertificate => {
            "it refused our certificate (bad certificate; e.g. a name mismatch or an invalid signature)".into()
        }
        A::CertificateRequired => "it requires a client certificate and we sent none".into(),
        A::CertificateRevoked => "it considers our certificate revoked".into(),
        A::UnsupportedCertificate => "it does not support our certificate's type or use".into(),
        A::HandshakeFailure => "no TLS version, cipher suite or group in common".into(),
        A::ProtocolVersion => "no TLS version in common".into(),
        A::AccessDenied => "access denied".into(),
        other => format!("{other:?}"),
    }
}

/// The alert in rustls' text `received fatal alert: <Name>`, if any.
fn alert_in_text(message: &str) -> Option<rustls::AlertDescription> {
    let (_, rest) = message.split_once("received fatal alert: ")?;
    let name: String = rest.chars().take_while(char::is_ascii_alphanumeric).collect();
    (0..=u8::MAX).map(rustls::AlertDescription::from).find(|a| format!("{a:?}") == name)
}

/// The cause of a failed request to a peer, in one line without repetition: `unknown CA`, `name mismatch`,
/// `expired`, `handshake refused by the peer`, `connection refused`, `timeout`, the peer closing the connection,
/// or (for anything else) the error's chain with repeated parts left out. The URL is not included; the caller
/// names it.
///
/// ```text
/// TLS: the peer's certificate is not issued by the federation CA (unknown CA)
/// TLS: handshake refused by the peer: it does not trust our certificate (unknown CA)
/// connection refused
/// timed out after connecting, waiting for the answer (timeout)
/// ```
pub fn describe_client_error(e: &reqwest::Error) -> String {
    let mut tls: Option<&rustls::Error> = None;
    let mut kinds = Vec::new();
    let mut chain: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            tls.get_or_insert(t);
        }
        // An `io::Error`'s source skips the error it wraps (often another `io::Error`): look inside.
        let mut io_err = err.downcast_ref::<io::Error>();
        while let Some(i) = io_err {
            kinds.push(i.kind());
            let inner = i.get_ref();
            if let Some(t) = inner.and_then(|e| e.downcast_ref::<rustls::Error>()) {
                tls.get_or_insert(t);
            }
            io_err = inner.and_then(|e| e.downcast_ref::<io::Error>());
        }
        // The outermost message names the URL; the caller does that.
        if !std::ptr::addr_eq(err, e as &dyn std::error::Error) || err.source().is_none() {
            let text = err.to_string();
            if !chain.iter().any(|c| c.contains(&text)) {
                chain.push(text);
            }
        }
        next = err.source();
    }
    if let Some(t) = tls {
        return format!("TLS: {}", HandshakeFailure::of_rustls(t, "the peer"));
    }
    // HTTP/2 keeps only the text of an I/O error: an alert that arrives after the client finished its side of the
    // handshake (TLS 1.3 refusing the client's certificate) is found by rustls' wording.
    if let Some(alert) = chain.iter().find_map(|m| alert_in_text(m)) {
        return format!("TLS: {}", HandshakeFailure::of_rustls(&rustls::Error::AlertReceived(alert), "the peer"));
    }
    if kinds.contains(&io::ErrorKind::ConnectionRefused) {
        return "connection refused".into();
    }
    if e.is_timeout() || kinds.contains(&io::ErrorKind::TimedOut) {
        return if e.is_connect() {
            "timed out connecting (timeout)".into()
        } else {
            "timed out after connecting, waiting for the answer (timeout)".into()
        };
    }
    if kinds.iter().any(|k| closed(*k)) {
        return if e.is_connect() {
            "the peer closed the connection during the TLS handshake".into()
        } else {
            "the peer closed the connection before it answered".into()
        };
    }
    if let Some(status) = e.status() {
        return format!("HTTP {status}");
    }
    // Drop parts that a later (inner) part repeats in full.
    let mut parts: Vec<&str> = Vec::new();
    for (i, part) in chain.iter().enumerate() {
        if !chain[i + 1..].iter().any(|inner| inner.contains(part.as_str()) && inner != part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}
