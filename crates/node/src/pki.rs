//! The federation PKI for tests, demos and development: a root CA and the node certificates it issues, and
//! [`org_of_cert`], which reads the organisation a certificate speaks for.
//!
//! # What a node certificate says
//!
//! A node certificate names its organisation in exactly one subjectAltName URI `urn:sdx:org:<key>`, where `<key>`
//! is an [`OrgKey`] such as `psw:01000115` (so: `urn:sdx:org:psw:01000115`). The subject CN carries the same key for
//! people reading the certificate; only the URI counts. The TLS layer ([`crate::tls`]) turns the verified client
//! certificate into a [`PeerIdentity`](crate::tls::PeerIdentity) with this key.
//!
//! # Algorithms (BSI TR-02102-1)
//!
//! Keys are ECDSA on P-256 and certificates are signed with ECDSA-SHA-256 (`ecdsa-with-SHA256`): TR-02102-1
//! recommends ECDSA over the NIST and Brainpool curves, P-256 is what every TLS stack and aws-lc-rs support, and a
//! P-256 signature costs a node far less than RSA-3072+ would. Serial numbers are 128 random bits.
//!
//! | certificate | validity | extensions |
//! |---|---|---|
//! | root CA | 10 years | basicConstraints CA, pathLen 0; keyUsage keyCertSign, cRLSign |
//! | node ([`Ca::issue_node`], tests and demos) | 2 years | keyUsage digitalSignature; EKU serverAuth + clientAuth; SAN DNS `localhost` + the given names, IP `127.0.0.1`, URI `urn:sdx:org:<key>`; AKI |
//! | node ([`Ca::issue_node_for`], [`Ca::sign_request`]; `sdx pki issue`, `sdx init`) | 2 years | as above, but SAN DNS and IP exactly the names given (at least one) |
//!
//! `notBefore` lies five minutes in the past to tolerate clock skew between nodes.
//!
//! # Certificate requests
//!
//! A node whose certificate comes from a CA run elsewhere makes its key itself and sends only a PKCS#10 request
//! ([`NodeRequest`], `sdx init` without `--ca`, `sdx pki request`). [`Ca::sign_request`] accepts it only if its
//! signature verifies (proof of possession) and its key is ECDSA P-256; the CA decides what the certificate says
//! — organisation, DNS names, IP addresses, validity — and takes nothing from the request but the public key. A
//! request that names an organisation (its `urn:sdx:org:` URI) must name the one the certificate is for, so a
//! request filed under the wrong organisation is refused rather than signed.
//!
//! A production federation will take its certificates from an existing administration PKI; this module is then
//! only used through [`org_of_cert`] and [`NodeCert::from_pem`] / [`NodeCert::load_from`].
//!
//! # Files
//!
//! [`Ca::write_to`] writes `ca.crt.pem` and `ca.key.pem`, [`NodeCert::write_to`] writes `node.crt.pem` and
//! `node.key.pem`, [`NodeRequest::write_to`] `node.csr.pem` and `node.key.pem`; private keys are PKCS#8 PEM
//! created with mode `0600` on Unix. None of them overwrites a file: if any of its files exists, nothing is
//! written ([`PkiError::Exists`]); [`write_new_file`] is the same for one file.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use sdx_model::OrgKey;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;

/// The prefix of the subjectAltName URI that names a node's organisation: `urn:sdx:org:<key>`.
pub const ORG_URI_PREFIX: &str = "urn:sdx:org:";

/// File name of the CA certificate written by [`Ca::write_to`].
pub const CA_CERT_FILE: &str = "ca.crt.pem";
/// File name of the CA private key written by [`Ca::write_to`].
pub const CA_KEY_FILE: &str = "ca.key.pem";
/// File name of the node certificate written by [`NodeCert::write_to`].
pub const NODE_CERT_FILE: &str = "node.crt.pem";
/// File name of the node private key written by [`NodeCert::write_to`] and [`NodeRequest::write_to`].
pub const NODE_KEY_FILE: &str = "node.key.pem";
/// File name of the certificate request written by [`NodeRequest::write_to`].
pub const NODE_CSR_FILE: &str = "node.csr.pem";

const CA_VALIDITY: Duration = Duration::days(3653);
const NODE_VALIDITY: Duration = Duration::days(730);
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// What went wrong with a certificate, a key or the PKI files. [`PkiError::code`] gives a stable code.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The bytes are not one well-formed X.509 certificate (or its subjectAltName is malformed).
    #[error("[certificateInvalid] {0}")]
    CertificateInvalid(String),
    /// The certificate has no `urn:sdx:org:` subjectAltName URI.
    #[error(
        "[certificateOrgMissing] the certificate names no organisation (no subjectAltName URI `{ORG_URI_PREFIX}<key>`)"
    )]
    OrgMissing,
    /// The certificate has more than one `urn:sdx:org:` URI: which organisation it speaks for is ambiguous.
    #[error(
        "[certificateOrgAmbiguous] the certificate names {0} organisations; exactly one `{ORG_URI_PREFIX}<key>` URI is allowed"
    )]
    OrgAmbiguous(usize),
    /// The `urn:sdx:org:` URI does not hold a valid organisation key.
    #[error("[certificateOrgInvalid] {0}")]
    OrgInvalid(#[from] sdx_model::InvalidValue),
    /// PEM text without the expected certificate or PKCS#8 key.
    #[error("[pemInvalid] {0}")]
    PemInvalid(String),
    /// Generating a key or signing a certificate failed.
    #[error("[pkiGeneration] {0}")]
    Generation(#[from] rcgen::Error),
    /// Reading or writing a PKI file failed.
    #[error("[pkiIo] {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file to be written exists already: key material is never overwritten.
    #[error("[pkiFileExists] {} exists; refusing to overwrite it (move it away first)", .0.display())]
    Exists(PathBuf),
    /// A DNS name or the set of names for a certificate is not acceptable.
    #[error("[certificateNameInvalid] {0}")]
    NameInvalid(String),
    /// A certificate request that does not parse, whose signature does not verify, whose key is not ECDSA P-256
    /// or that names another organisation.
    #[error("[certificateRequestInvalid] {0}")]
    RequestInvalid(String),
}

impl PkiError {
    /// The stable machine-readable code (the text in brackets of the message).
    pub fn code(&self) -> &'static str {
        match self {
            PkiError::CertificateInvalid(_) => "certificateInvalid",
            PkiError::OrgMissing => "certificateOrgMissing",
            PkiError::OrgAmbiguous(_) => "certificateOrgAmbiguous",
            PkiError::OrgInvalid(_) => "certificateOrgInvalid",
            PkiError::PemInvalid(_) => "pemInvalid",
            PkiError::Generation(_) => "pkiGeneration",
            PkiError::Io { .. } => "pkiIo",
            PkiError::Exists(_) => "pkiFileExists",
            PkiError::NameInvalid(_) => "certificateNameInvalid",
            PkiError::RequestInvalid(_) => "certificateRequestInvalid",
        }
    }
}

/// Result with [`PkiError`].
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// A federation root CA (ECDSA P-256, self-signed) that issues node certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("Ca").field("cert_sha256", &hex(&cert_sha256(&self.cert_der))).finish_non_exhaustive()
    }
}

impl Ca {
    /// A new root CA with subject `CN=<name>, O=SDX federation`.
    pub fn generate(name: &str) -> Result<Ca> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "SDX federation");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_der = cert.der().clone();
        Ok(Ca { issuer: Issuer::new(params, key), cert_pem, cert_der })
    }

    /// A CA from its certificate and PKCS#8 private key, both PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let cert_der = first_cert(cert_pem)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::PemInvalid(format!("CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Ca { issuer, cert_pem: cert_pem.to_owned(), cert_der })
    }

    /// The CA certificate, PEM. This is the federation trust anchor that nodes are configured with.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA private key, PKCS#8 PEM. Secret.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issue a node certificate for `org` (see the module docs for its contents). `dns_names` are added to the
    /// subjectAltName next to `localhost` and `127.0.0.1`.
    pub fn issue_node(&self, org: &OrgKey, dns_names: &[&str]) -> Result<NodeCert> {
        let uri = format!("{ORG_URI_PREFIX}{org}");
        self.issue(org.as_str(), dns_names, &[uri.as_str()])
    }

    /// Issue a node-style certificate with any subject CN and any list of subjectAltName URIs, e.g. none or two
    /// organisation URIs. For tests of the refusal paths and for tools; nodes use [`Ca::issue_node`].
    pub fn issue(&self, common_name: &str, dns_names: &[&str], uris: &[&str]) -> Result<NodeCert> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut sans = vec![SanType::DnsName("localhost".try_into()?)];
        for name in dns_names {
            let san = SanType::DnsName((*name).try_into()?);
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        sans.push(SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
        for uri in uris {
            sans.push(SanType::URI((*uri).try_into()?));
        }
        let cert = node_params(common_name, sans)?.signed_by(&key, &self.issuer)?;
        Ok(NodeCert { cert_pem: cert.pem(), cert_der: cert.der().clone(), key_pem: key.serialize_pem() })
    }

    /// Issue a node certificate for `org` with a new key, valid for exactly these DNS names and IP addresses
    /// (at least one; each DNS name checked with [`check_dns_name`]) — what `sdx pki issue` and `sdx init --ca`
    /// write. Unlike [`Ca::issue_node`] it adds neither `localhost` nor `127.0.0.1`.
    pub fn issue_node_for(&self, org: &OrgKey, dns_names: &[&str], ips: &[IpAddr]) -> Result<NodeCert> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = node_params(org.as_str(), node_sans(org, dns_names, ips, true)?)?.signed_by(&key, &self.issuer)?;
        Ok(NodeCert { cert_pem: cert.pem(), cert_der: cert.der().clone(), key_pem: key.serialize_pem() })
    }

    /// Sign a node's certificate request (PEM, PKCS#10): a certificate for `org`, valid for exactly these DNS
    /// names and IP addresses (at least one), for the request's public key. Returns the certificate, PEM.
    ///
    /// Refused ([`PkiError::RequestInvalid`]) unless the request parses, its signature verifies, its key is
    /// ECDSA P-256 and any organisation it names is `org`. Nothing else is taken from the request (see the
    /// module docs).
    pub fn sign_request(&self, csr_pem: &str, org: &OrgKey, dns_names: &[&str], ips: &[IpAddr]) -> Result<String> {
        let bad = |m: String| PkiError::RequestInvalid(m);
        let der = rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
            .map_err(|e| bad(format!("no PEM CERTIFICATE REQUEST: {e}")))?;
        // The key: ECDSA on P-256 (BSI TR-02102-1, as every node key here).
        {
            use x509_parser::prelude::FromDer;
            let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
                .map_err(|e| bad(format!("not a PKCS#10 request: {e}")))?;
            let spki = &req.certification_request_info.subject_pki;
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            let p256 = spki.algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
                && curve.as_ref() == Some(&x509_parser::oid_registry::OID_EC_P256);
            if !p256 {
                return Err(bad("the requested key is not ECDSA P-256".into()));
            }
        }
        let req = rcgen::CertificateSigningRequestParams::from_der(&der).map_err(|e| match e {
            rcgen::Error::InvalidCertificationRequestSignature => bad("the request's signature does not verify".into()),
            other => bad(format!("unusable request: {other}")),
        })?;
        if req.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(bad("the request is not signed with ECDSA P-256 / SHA-256".into()));
        }
        for san in &req.params.subject_alt_names {
            if let SanType::URI(uri) = san
                && let Some(key) = strip_org_prefix(uri.as_str())
                && !key.eq_ignore_ascii_case(org.as_str())
            {
                return Err(bad(format!("the request is for organisation {key}, not {org}")));
            }
        }
        let params = node_params(org.as_str(), node_sans(org, dns_names, ips, true)?)?;
        let signed = rcgen::CertificateSigningRequestParams { params, public_key: req.public_key };
        Ok(signed.signed_by(&self.issuer)?.pem())
    }

    /// Write `ca.crt.pem` and `ca.key.pem` (mode `0600`) into `dir`, creating it if needed. Refuses
    /// ([`PkiError::Exists`]) if either file exists, writing nothing.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        write_new_files(
            dir,
            &[(CA_CERT_FILE, self.cert_pem.as_bytes(), false), (CA_KEY_FILE, self.key_pem().as_bytes(), true)],
        )
    }

    /// Read a CA written by [`Ca::write_to`].
    pub fn load_from(dir: impl AsRef<Path>) -> Result<Ca> {
        let dir = dir.as_ref();
        Ca::from_pem(&read_file(&dir.join(CA_CERT_FILE))?, &read_file(&dir.join(CA_KEY_FILE))?)
    }
}

/// A node's certificate and private key (PEM; the key PKCS#8).
#[derive(Clone)]
pub struct NodeCert {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_pem: String,
}

impl fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("NodeCert")
            .field("org", &self.org().ok())
            .field("cert_sha256", &hex(&cert_sha256(&self.cert_der)))
            .finish_non_exhaustive()
    }
}

impl NodeCert {
    /// From PEM text: the first certificate of `cert_pem` is the node's, `key_pem` holds its PKCS#8 (or SEC1/PKCS#1)
    /// private key. Whether the key matches the certificate is checked when a TLS configuration is built.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<NodeCert> {
        let cert_der = first_cert(cert_pem)?;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| PkiError::PemInvalid(format!("node key: {e}")))?;
        Ok(NodeCert { cert_pem: cert_pem.to_owned(), cert_der, key_pem: key_pem.to_owned() })
    }

    /// The certificate (and any chain that followed it in the PEM it was read from), PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The node certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key, PKCS#8 PEM. Secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The organisation this certificate speaks for ([`org_of_cert`]).
    pub fn org(&self) -> Result<OrgKey> {
        org_of_cert(&self.cert_der)
    }

    /// SHA-256 of the certificate's DER (its fingerprint).
    pub fn sha256(&self) -> [u8; 32] {
        cert_sha256(&self.cert_der)
    }

    /// Write `node.crt.pem` and `node.key.pem` (mode `0600`) into `dir`, creating it if needed. Refuses
    /// ([`PkiError::Exists`]) if either file exists, writing nothing.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        write_new_files(
            dir.as_ref(),
            &[(NODE_CERT_FILE, self.cert_pem.as_bytes(), false), (NODE_KEY_FILE, self.key_pem.as_bytes(), true)],
        )
    }

    /// Read a node certificate written by [`NodeCert::write_to`].
    pub fn load_from(dir: impl AsRef<Path>) -> Result<NodeCert> {
        let dir = dir.as_ref();
        NodeCert::from_pem(&read_file(&dir.join(NODE_CERT_FILE))?, &read_file(&dir.join(NODE_KEY_FILE))?)
    }
}

/// A node's new key and its certificate request (PKCS#10, signed with that key), for a federation CA that runs
/// elsewhere: the key stays with the node, the request goes to the CA ([`Ca::sign_request`]).
pub struct NodeRequest {
    csr_pem: String,
    key_pem: String,
}

impl fmt::Debug for NodeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("NodeRequest").finish_non_exhaustive()
    }
}

impl NodeRequest {
    /// A new ECDSA P-256 key and a request for `org` (subject CN and SAN URI `urn:sdx:org:<key>`) naming these
    /// DNS names and IP addresses (they may be empty: the CA decides the names).
    pub fn generate(org: &OrgKey, dns_names: &[&str], ips: &[IpAddr]) -> Result<NodeRequest> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, org.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = node_sans(org, dns_names, ips, false)?;
        let csr = params.serialize_request(&key)?;
        Ok(NodeRequest { csr_pem: csr.pem()?, key_pem: key.serialize_pem() })
    }

    /// The request, PEM (`CERTIFICATE REQUEST`).
    pub fn csr_pem(&self) -> &str {
        &self.csr_pem
    }

    /// The private key, PKCS#8 PEM. Secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Write `node.csr.pem` and `node.key.pem` (mode `0600`) into `dir`, creating it if needed. Refuses
    /// ([`PkiError::Exists`]) if either file exists, writing nothing.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        write_new_files(
            dir.as_ref(),
            &[(NODE_CSR_FILE, self.csr_pem.as_bytes(), false), (NODE_KEY_FILE, self.key_pem.as_bytes(), true)],
        )
    }
}

/// Check a DNS name for a node certificate: letters, digits and hyphens in dot-separated labels of 1–63
/// characters (no hyphen first or last), at most 253 in all, not all digits at the end (that would be an IP
/// address: give those as IP addresses, which TLS matches separately), no wildcard.
pub fn check_dns_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(PkiError::NameInvalid(format!("`{name}` is not a DNS name for a node: {why}")));
    if name.parse::<IpAddr>().is_ok() {
        return bad("it is an IP address; give it as an IP address (--ip)");
    }
    if name.is_empty() || name.len() > 253 {
        return bad("a name has 1 to 253 characters");
    }
    if name.contains('*') {
        return bad("wildcards are not issued; name each host");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label has 1 to 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return bad("only letters, digits, hyphens and dots (internationalised names in their xn-- form)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label neither starts nor ends with a hyphen");
        }
    }
    if name.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return bad("the last label is all digits");
    }
    Ok(())
}

/// The subjectAltNames of a node certificate: the DNS names (checked, lower-cased, once each), the IP addresses
/// (once each) and the organisation URI. `need_name`: at least one DNS name or IP address.
fn node_sans(org: &OrgKey, dns_names: &[&str], ips: &[IpAddr], need_name: bool) -> Result<Vec<SanType>> {
    if need_name && dns_names.is_empty() && ips.is_empty() {
        return Err(PkiError::NameInvalid(
            "a node certificate needs at least one DNS name or IP address: the names its peers connect to".into(),
        ));
    }
    let mut sans = Vec::new();
    for name in dns_names {
        check_dns_name(name)?;
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let san = SanType::DnsName(name.as_str().try_into()?);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    for ip in ips {
        let san = SanType::IpAddress(*ip);
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    sans.push(SanType::URI(format!("{ORG_URI_PREFIX}{org}").as_str().try_into()?));
    Ok(sans)
}

/// The parameters every node certificate shares (see the module docs), with these subjectAltNames.
fn node_params(common_name: &str, sans: Vec<SanType>) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + NODE_VALIDITY;
    Ok(params)
}

/// The organisation key of a `urn:sdx:org:<key>` URI (prefix compared case-insensitively, as URNs compare).
fn strip_org_prefix(uri: &str) -> Option<&str> {
    (uri.len() >= ORG_URI_PREFIX.len()
        && uri.is_char_boundary(ORG_URI_PREFIX.len())
        && uri[..ORG_URI_PREFIX.len()].eq_ignore_ascii_case(ORG_URI_PREFIX))
    .then(|| &uri[ORG_URI_PREFIX.len()..])
}

/// The organisation a certificate (DER) speaks for: the key in its only `urn:sdx:org:<key>` subjectAltName URI.
///
/// Refuses a certificate that does not parse, has no such URI ([`PkiError::OrgMissing`]), has more than one
/// ([`PkiError::OrgAmbiguous`], counted case-insensitively as URNs compare so), or whose key is not an [`OrgKey`].
/// This does not verify the certificate: call it on certificates that TLS has already verified.
pub fn org_of_cert(der: &[u8]) -> Result<OrgKey> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::CertificateInvalid(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::CertificateInvalid("trailing bytes after the certificate".into()));
    }
    let san =
        cert.subject_alternative_name().map_err(|e| PkiError::CertificateInvalid(format!("subjectAltName: {e}")))?;
    let mut found: Vec<&str> = Vec::new();
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(key) = strip_org_prefix(uri)
            {
                found.push(key);
            }
        }
    }
    match found.as_slice() {
        [] => Err(PkiError::OrgMissing),
        [key] => Ok(OrgKey::parse(*key)?),
        more => Err(PkiError::OrgAmbiguous(more.len())),
    }
}

/// What a certificate says, for people (`sdx pki show`): nothing here is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, as `CN=…, O=…`.
    pub subject: String,
    /// The issuer, likewise.
    pub issuer: String,
    /// Whether it is a CA certificate (basicConstraints CA).
    pub is_ca: bool,
    /// The organisation of its `urn:sdx:org:` URI, if it has exactly one that parses.
    pub org: Option<OrgKey>,
    /// Its DNS names and IP addresses (subjectAltName).
    pub names: Vec<String>,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER encoding.
    pub sha256: [u8; 32],
}

impl CertInfo {
    /// Read a certificate (DER).
    ///
    /// # Errors
    /// [`PkiError::CertificateInvalid`] if it does not parse.
    pub fn of(der: &[u8]) -> Result<CertInfo> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::CertificateInvalid(e.to_string()))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => names.push((*n).to_owned()),
                    GeneralName::IPAddress(b) => names.push(match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default()).to_string(),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default()).to_string(),
                        _ => format!("IP {}", hex(b)),
                    }),
                    _ => {}
                }
            }
        }
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            is_ca: cert.is_ca(),
            org: org_of_cert(der).ok(),
            names,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            sha256: cert_sha256(der),
        })
    }
}

/// SHA-256 of a certificate's DER encoding (its fingerprint).
pub fn cert_sha256(der: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// All certificates in a PEM text, in order. Fails if there is none.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::PemInvalid(format!("certificates: {e}")))?;
    if certs.is_empty() {
        return Err(PkiError::PemInvalid("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>> {
    let first = certs_from_pem(pem)?.swap_remove(0);
    x509_parser::parse_x509_certificate(&first).map_err(|e| PkiError::CertificateInvalid(e.to_string()))?;
    Ok(first)
}

fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| rcgen::Error::RingUnspecified)?;
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x40; // and exactly 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.to_owned(), source })
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.to_owned(), source })
}

/// Write the `(name, contents, secret)` files into `dir` (created if needed), all or none: if any exists,
/// nothing is written.
fn write_new_files(dir: &Path, files: &[(&str, &[u8], bool)]) -> Result<()> {
    create_dir(dir)?;
    for (name, ..) in files {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            return Err(PkiError::Exists(path));
        }
    }
    for (name, contents, secret) in files {
        write_new_file(&dir.join(name), contents, *secret)?;
    }
    Ok(())
}

/// Create `path` with `contents` and flush it to disk; a `secret` (a private key) gets mode `0600` on Unix from
/// the start. Refuses ([`PkiError::Exists`]) to touch an existing file, a dangling symbolic link included.
pub fn write_new_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => PkiError::Exists(path.to_owned()),
        _ => io(e),
    })?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgKey {
        OrgKey::parse(s).unwrap()
    }

    /// The subjectAltName entries of a certificate: (DNS names, IP addresses, URIs).
    fn sans(pem: &str) -> (Vec<String>, Vec<IpAddr>, Vec<String>) {
        let der = first_cert(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let (mut dns, mut ips, mut uris) = (Vec::new(), Vec::new(), Vec::new());
        for name in &cert.subject_alternative_name().unwrap().unwrap().value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => ips.push(match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                }),
                GeneralName::URI(u) => uris.push(u.to_string()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        (dns, ips, uris)
    }

    /// Whether `cert_pem` chains to `ca` (webpki, as TLS checks it) for the given server name.
    fn verifies(ca: &Ca, cert_pem: &str, name: &str) -> bool {
        let ca_der = CertificateDer::from(ca.cert_der().to_vec());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
        let der = first_cert(cert_pem).unwrap();
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        let time = rustls::pki_types::UnixTime::now();
        let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms;
        cert.verify_for_usage(algs.all, &[anchor], &[], time, webpki::KeyUsage::server_auth(), None, None).is_ok()
            && cert.verify_is_valid_for_subject_name(&rustls::pki_types::ServerName::try_from(name).unwrap()).is_ok()
    }

    #[test]
    fn issue_node_for_names_exactly_the_given_hosts() {
        let ca = Ca::generate("test").unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let cert = ca
            .issue_node_for(&org("psw:01000115"), &["Node.Example.", "node.example", "b.example"], &[ip, ip])
            .unwrap();
        let (dns, ips, uris) = sans(cert.cert_pem());
        assert_eq!(dns, ["node.example", "b.example"], "lower-cased, trailing dot dropped, each once; no localhost");
        assert_eq!(ips, [ip], "no 127.0.0.1");
        assert_eq!(uris, ["urn:sdx:org:psw:01000115"]);
        assert_eq!(cert.org().unwrap(), org("psw:01000115"));
        assert!(verifies(&ca, cert.cert_pem(), "node.example"));
        assert!(verifies(&ca, cert.cert_pem(), "192.0.2.7"));
        assert!(!verifies(&ca, cert.cert_pem(), "localhost"));
        // The key is P-256 and matches the certificate.
        let key = KeyPair::from_pem(cert.key_pem()).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert_der()).unwrap();
        assert_eq!(parsed.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
        // IP only is fine; nothing is not.
        assert!(ca.issue_node_for(&org("psw:01000115"), &[], &[ip]).is_ok());
        assert_eq!(ca.issue_node_for(&org("psw:01000115"), &[], &[]).unwrap_err().code(), "certificateNameInvalid");
    }

    #[test]
    fn dns_names_are_checked() {
        for ok in ["localhost", "node.example", "xn--mnchen-3ya.de", "a-b.c1.example", "node.example."] {
            check_dns_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = ["abcdefghi"; 26].join(".");
        for bad in [
            "",
            "127.0.0.1",
            "::1",
            "*.example",
            "a..b",
            "-a.example",
            "a-.example",
            "a_b.example",
            "bücher.example",
            "node example",
            "1.2.3",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let e = check_dns_name(bad).expect_err(bad);
            assert_eq!(e.code(), "certificateNameInvalid");
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        let ca = Ca::generate("test").unwrap();
        assert!(ca.issue_node_for(&org("psw:01000115"), &["127.0.0.1"], &[]).unwrap_err().to_string().contains("--ip"));
    }

    #[test]
    fn a_request_is_signed_with_the_cas_names_for_its_key() {
        let ca = Ca::generate("test").unwrap();
        let mila = org("psw:01000115");
        let req = NodeRequest::generate(&mila, &["asked-for.example"], &[]).unwrap();
        assert!(req.csr_pem().starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let pem = ca.sign_request(req.csr_pem(), &mila, &["mila.example"], &["10.0.0.5".parse().unwrap()]).unwrap();
        let (dns, ips, uris) = sans(&pem);
        assert_eq!(dns, ["mila.example"], "the CA decides the names, not the request");
        assert_eq!(ips, ["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(uris, ["urn:sdx:org:psw:01000115"]);
        assert!(verifies(&ca, &pem, "mila.example"));
        // The certificate is for the request's key: together they make a node certificate.
        let cert = NodeCert::from_pem(&pem, req.key_pem()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert_der()).unwrap();
        let key = KeyPair::from_pem(req.key_pem()).unwrap();
        assert_eq!(parsed.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
        assert!(crate::tls::server_config(&cert, ca.cert_pem()).is_ok(), "key and certificate match");

        // A request filed for another organisation is refused.
        let e = ca.sign_request(req.csr_pem(), &org("psw:06000042"), &["bela.example"], &[]).unwrap_err();
        assert_eq!(e.code(), "certificateRequestInvalid");
        assert!(e.to_string().contains("psw:01000115"), "{e}");
        // Names are required and checked here too.
        assert_eq!(ca.sign_request(req.csr_pem(), &mila, &[], &[]).unwrap_err().code(), "certificateNameInvalid");
        assert_eq!(ca.sign_request(req.csr_pem(), &mila, &["*.x"], &[]).unwrap_err().code(), "certificateNameInvalid");
    }

    #[test]
    fn bad_requests_are_refused() {
        let ca = Ca::generate("test").unwrap();
        let mila = org("psw:01000115");
        let refuse = |pem: &str, why: &str| {
            let e = ca.sign_request(pem, &mila, &["mila.example"], &[]).expect_err(why);
            assert_eq!(e.code(), "certificateRequestInvalid", "{why}: {e}");
            e.to_string()
        };
        refuse("", "empty");
        refuse(ca.cert_pem(), "a certificate, not a request");
        // A forged request: the signature does not cover what it says (one byte of the subject changed).
        let req = NodeRequest::generate(&mila, &[], &[]).unwrap();
        let mut der =
            rustls::pki_types::CertificateSigningRequestDer::from_pem_slice(req.csr_pem().as_bytes()).unwrap().to_vec();
        let at = der.windows(8).position(|w| w == b"psw:0100").unwrap();
        der[at + 7] = b'9';
        let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
        assert!(refuse(&forged, "forged").contains("signature"));
        // Keys other than P-256 (BSI: the node keys are P-256 here).
        for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let key = KeyPair::generate_for(alg).unwrap();
            let csr =
                CertificateParams::new(vec!["mila.example".to_string()]).unwrap().serialize_request(&key).unwrap();
            assert!(refuse(&csr.pem().unwrap(), "other key").contains("P-256"));
        }
    }

    #[test]
    fn files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("test").unwrap();
        ca.write_to(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        let e = Ca::generate("other").unwrap().write_to(dir.path()).unwrap_err();
        assert_eq!(e.code(), "pkiFileExists");
        assert!(e.to_string().contains(CA_CERT_FILE), "{e}");
        assert_eq!(std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), before);
        assert_eq!(Ca::load_from(dir.path()).unwrap().cert_pem(), ca.cert_pem());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |f: &str| std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(CA_KEY_FILE), 0o600);
            assert_eq!(mode(CA_CERT_FILE), 0o644);
        }

        // All or nothing: an existing key alone stops the certificate from being written too.
        let node = dir.path().join("node");
        std::fs::create_dir(&node).unwrap();
        std::fs::write(node.join(NODE_KEY_FILE), "mine").unwrap();
        let cert = ca.issue_node_for(&org("psw:01000115"), &["a.example"], &[]).unwrap();
        assert_eq!(cert.write_to(&node).unwrap_err().code(), "pkiFileExists");
        assert!(!node.join(NODE_CERT_FILE).exists());
        assert_eq!(std::fs::read_to_string(node.join(NODE_KEY_FILE)).unwrap(), "mine");
        let req = NodeRequest::generate(&org("psw:01000115"), &[], &[]).unwrap();
        assert_eq!(req.write_to(&node).unwrap_err().code(), "pkiFileExists");
        assert!(!node.join(NODE_CSR_FILE).exists());
        // A dangling symbolic link is not followed.
        #[cfg(unix)]
        {
            let link = dir.path().join("link.pem");
            std::os::unix::fs::symlink(dir.path().join("elsewhere.pem"), &link).unwrap();
            assert_eq!(write_new_file(&link, b"x", true).unwrap_err().code(), "pkiFileExists");
            assert!(!dir.path().join("elsewhere.pem").exists());
        }
        std::fs::remove_file(node.join(NODE_KEY_FILE)).unwrap();
        cert.write_to(&node).unwrap();
        assert_eq!(NodeCert::load_from(&node).unwrap().cert_pem(), cert.cert_pem());
    }
}
