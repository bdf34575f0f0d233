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
//! | node | 2 years | keyUsage digitalSignature; EKU serverAuth + clientAuth; SAN DNS `localhost` + the given names, IP `127.0.0.1`, URI `urn:sdx:org:<key>`; AKI |
//!
//! `notBefore` lies five minutes in the past to tolerate clock skew between nodes.
//!
//! A production federation will take its certificates from an existing administration PKI; this module is then
//! only used through [`org_of_cert`] and [`NodeCert::from_pem`] / [`NodeCert::load_from`].
//!
//! # Files
//!
//! [`Ca::write_to`] writes `ca.crt.pem` and `ca.key.pem`, [`NodeCert::write_to`] writes `node.crt.pem` and
//! `node.key.pem`; private keys are PKCS#8 PEM created with mode `0600` on Unix.

use std::fmt;
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
/// File name of the node private key written by [`NodeCert::write_to`].
pub const NODE_KEY_FILE: &str = "node.key.pem";

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
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
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
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + NODE_VALIDITY;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert { cert_pem: cert.pem(), cert_der: cert.der().clone(), key_pem: key.serialize_pem() })
    }

    /// Write `ca.crt.pem` and `ca.key.pem` (mode `0600`) into `dir`, creating it if needed.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        write_file(&dir.join(CA_CERT_FILE), self.cert_pem.as_bytes(), false)?;
        write_file(&dir.join(CA_KEY_FILE), self.key_pem().as_bytes(), true)
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

    /// Write `node.crt.pem` and `node.key.pem` (mode `0600`) into `dir`, creating it if needed.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        write_file(&dir.join(NODE_CERT_FILE), self.cert_pem.as_bytes(), false)?;
        write_file(&dir.join(NODE_KEY_FILE), self.key_pem.as_bytes(), true)
    }

    /// Read a node certificate written by [`NodeCert::write_to`].
    pub fn load_from(dir: impl AsRef<Path>) -> Result<NodeCert> {
        let dir = dir.as_ref();
        NodeCert::from_pem(&read_file(&dir.join(NODE_CERT_FILE))?, &read_file(&dir.join(NODE_KEY_FILE))?)
    }
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
                && uri.len() >= ORG_URI_PREFIX.len()
                && uri.is_char_boundary(ORG_URI_PREFIX.len())
                && uri[..ORG_URI_PREFIX.len()].eq_ignore_ascii_case(ORG_URI_PREFIX)
            {
                found.push(&uri[ORG_URI_PREFIX.len()..]);
            }
        }
    }
    match found.as_slice() {
        [] => Err(PkiError::OrgMissing),
        [key] => Ok(OrgKey::parse(*key)?),
        more => Err(PkiError::OrgAmbiguous(more.len())),
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

fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    use std::io::Write;
    let io = |source| PkiError::Io { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(io)?;
    #[cfg(unix)]
    if secret {
        // `mode` only applies to a new file: narrow an existing one too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}
