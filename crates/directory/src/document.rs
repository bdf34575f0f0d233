//! The directory document: what the directory authority signs (see `docs/routing.md` for the format).
//!
//! Every identifier and code is parsed into its type on the way in ([`OrgKey`], [`LeikaKey`], [`OzgId`], [`Ars`],
//! [`Status`], [`MessageType`], [`SupportLevel`], [`NodeUrl`], signing keys as [`PublicKey`]), and
//! [`Directory::from_json`] checks what the types cannot: unique organisation keys, responsibilities and hubs that
//! name listed organisations, transitions the SDX lifecycle allows, limits in range. Unknown members are refused, so
//! that what is signed is exactly what is understood.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use sdx_crypto::PublicKey;
use sdx_model::{Ars, InvalidValue, LeikaKey, MessageType, OrgKey, OzgId, Sha256Hex, Status, SupportLevel, Timestamp};

use crate::error::{Error, Result};

/// The value of `schemaVersion` this build reads and writes.
pub const SCHEMA_VERSION: &str = "1.0";
/// Largest integer in the document (version, limits): 2^53 − 1, so that RFC 8785 (numbers as IEEE doubles)
/// writes every integer exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Longest organisation name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest node URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Largest PEM certificate, in bytes.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// The directory of responsibilities, as signed by the directory authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Directory {
    /// Format version, [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// Version of this directory: grows with every new edition; a node never goes back to a lower one.
    pub version: u64,
    /// When the authority issued it; nodes refuse it before then (beyond a small clock skew).
    pub issued_at: Timestamp,
    /// When it stops being valid; nodes refuse it from then on.
    pub expires_at: Timestamp,
    /// The directory authority (an organisation key, e.g. `dir:fitko`).
    pub issuer: OrgKey,
    /// Every organisation of the federation.
    pub organisations: Vec<Organisation>,
    /// Who is responsible for which services in which regions at which support level.
    pub responsibilities: Vec<Responsibility>,
}

/// One organisation: identity, how to reach it, its keys, and what its workflow can take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Organisation {
    /// Organisation key (DVDV style), e.g. `psw:01003110`.
    pub key: OrgKey,
    /// Name, e.g. `Kreis Segeberg`.
    pub name: String,
    /// What the organisation is in the federation (at least one).
    pub roles: Vec<Role>,
    /// Its node's peer endpoint, or the hub it is reached through.
    pub endpoint: Endpoint,
    /// The identity its node shows in mutual TLS.
    #[serde(default, skip_serializing_if = "Tls::is_empty")]
    pub tls: Tls,
    /// Public keys its node signs messages with (JWK, `kid` = RFC 7638 thumbprint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// Public keys messages to it are encrypted to when they travel through a hub (JWK, RSA-OAEP-256).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encryption_keys: Vec<EncryptionKey>,
    /// Message types its node accepts; absent: every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_types: Option<Vec<MessageType>>,
    /// What its workflow supports; absent: the whole SDX lifecycle and the SDX limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

impl Organisation {
    /// Whether the organisation has `role`.
    #[must_use]
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether its node accepts messages of type `t`.
    #[must_use]
    pub fn accepts(&self, t: MessageType) -> bool {
        self.message_types.as_ref().is_none_or(|l| l.contains(&t))
    }

    /// Its capabilities (the SDX defaults when the directory states none).
    #[must_use]
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities.clone().unwrap_or_default()
    }

    /// Every SHA-256 fingerprint its TLS certificate may have: the listed ones and those of the listed
    /// certificates, sorted, without duplicates.
    #[must_use]
    pub fn tls_fingerprints(&self) -> Vec<Sha256Hex> {
        let mut set: BTreeSet<Sha256Hex> = self.tls.certificate_sha256.iter().cloned().collect();
        set.extend(self.tls.certificates.iter().map(|c| c.sha256().clone()));
        set.into_iter().collect()
    }

    /// The signing key with this `kid`, if the organisation has one.
    #[must_use]
    pub fn signing_key(&self, kid: &str) -> Option<&PublicKey> {
        self.signing_keys.iter().map(SigningKey::public_key).find(|k| k.kid() == kid)
    }
}

/// Role of an organisation in the federation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Runs (or is reached through) a node and exchanges cases: MiLa, BeLa, Kommune, IT provider.
    Member,
    /// Relays messages for organisations without a node of their own (`{"viaHub": …}`), like ORBIT.
    Hub,
    /// Administration portal: takes requests in, shows service notices.
    Portal,
    /// Software vendor (3rd level).
    Vendor,
    /// Service desk or 115 service centre (1st level).
    ServiceDesk,
}

impl Role {
    /// The JSON code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Hub => "hub",
            Role::Portal => "portal",
            Role::Vendor => "vendor",
            Role::ServiceDesk => "serviceDesk",
        }
    }

    /// Every role.
    pub const ALL: [Role; 5] = [Role::Member, Role::Hub, Role::Portal, Role::Vendor, Role::ServiceDesk];
}

/// How an organisation is reached: its own node, or a hub that relays for it.
///
/// JSON: a string `"https://…"`, or `{"viaHub": "<hub organisation key>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The peer endpoint of its own node.
    Url(NodeUrl),
    /// Reached through this hub (an organisation with role `hub` and a URL of its own).
    ViaHub(OrgKey),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Url(u) => f.write_str(u.as_str()),
            Endpoint::ViaHub(h) => write!(f, "via hub {h}"),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Endpoint::Url(u) => s.serialize_str(u.as_str()),
            Endpoint::ViaHub(h) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("viaHub", h)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Endpoint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an https:// URL or {"viaHub": "<organisation key>"}"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Endpoint, E> {
                NodeUrl::parse(v).map(Endpoint::Url).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Endpoint, A::Error> {
                let mut hub: Option<OrgKey> = None;
                while let Some(k) = map.next_key::<String>()? {
                    if k != "viaHub" {
                        return Err(de::Error::unknown_field(&k, &["viaHub"]));
                    }
                    if hub.is_some() {
                        return Err(de::Error::duplicate_field("viaHub"));
                    }
                    hub = Some(map.next_value()?);
                }
                hub.map(Endpoint::ViaHub).ok_or_else(|| de::Error::missing_field("viaHub"))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `https://` URL of a node's peer endpoint (no user info, no fragment, at most [`MAX_URL_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeUrl(String);

impl NodeUrl {
    /// Parse, checking the form.
    ///
    /// # Errors
    /// [`InvalidValue`] if it is not an `https://` URL with a host, or has spaces, user info or a fragment.
    pub fn parse(s: impl Into<String>) -> std::result::Result<NodeUrl, InvalidValue> {
        let s = s.into();
        let bad = |r: &str| InvalidValue { code: "invalidIdentifier", what: "node URL", reason: r.to_owned() };
        if s.len() > MAX_URL_BYTES {
            return Err(bad("longer than 2048 bytes"));
        }
        let Some(rest) = s.strip_prefix("https://") else {
            return Err(bad("must start with https://"));
        };
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad("must be ASCII without spaces or control characters"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.starts_with(':') {
            return Err(bad("has no host"));
        }
        if authority.contains('@') {
            return Err(bad("must not carry user info"));
        }
        if s.contains('#') {
            return Err(bad("must not have a fragment"));
        }
        Ok(NodeUrl(s))
    }

    /// The URL as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeUrl {
    type Error = InvalidValue;
    fn try_from(s: String) -> std::result::Result<Self, InvalidValue> {
        NodeUrl::parse(s)
    }
}

impl From<NodeUrl> for String {
    fn from(u: NodeUrl) -> String {
        u.0
    }
}

impl fmt::Display for NodeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The TLS identity of an organisation's node: certificate fingerprints and/or the certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// SHA-256 fingerprints (of the DER certificate), lowercase hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_sha256: Vec<Sha256Hex>,
    /// Certificates in PEM.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificatePem>,
}

impl Tls {
    /// Neither fingerprints nor certificates.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.certificate_sha256.is_empty() && self.certificates.is_empty()
    }

    /// Whether a node may present the certificate with this SHA-256 (64 lowercase hex digits): one of the
    /// fingerprints or certificates listed, or any when none is (not pinned).
    #[must_use]
    pub fn admits(&self, sha256_hex: &str) -> bool {
        self.is_empty()
            || self.certificate_sha256.iter().any(|f| f.as_str() == sha256_hex)
            || self.certificates.iter().any(|c| c.sha256().as_str() == sha256_hex)
    }
}

/// One X.509 certificate in PEM (`-----BEGIN CERTIFICATE-----`), with the SHA-256 of its DER form.
///
/// Only the PEM framing and base64 are checked here; the certificate's content is checked where it is used (the
/// node's TLS layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertificatePem {
    pem: String,
    sha256: Sha256Hex,
}

impl CertificatePem {
    /// Parse one PEM certificate.
    ///
    /// # Errors
    /// [`InvalidValue`] if it is not exactly one `CERTIFICATE` block with valid base64, or is too large.
    pub fn parse(pem: impl Into<String>) -> std::result::Result<CertificatePem, InvalidValue> {
        use base64::Engine as _;
        let pem = pem.into();
        let bad = |r: &str| InvalidValue { code: "invalidIdentifier", what: "PEM certificate", reason: r.to_owned() };
        if pem.len() > MAX_CERTIFICATE_BYTES {
            return Err(bad("larger than 64 KiB"));
        }
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN CERTIFICATE-----")
            .and_then(|r| r.strip_suffix("-----END CERTIFICATE-----"))
            .ok_or_else(|| bad("must be one -----BEGIN CERTIFICATE----- … -----END CERTIFICATE----- block"))?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad("body is not base64"))?;
        if der.is_empty() {
            return Err(bad("empty certificate"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
        let sha256 = Sha256Hex::parse(hex::encode(digest.as_ref()))?;
        Ok(CertificatePem { pem, sha256 })
    }

    /// The PEM text as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.pem
    }

    /// SHA-256 of the DER certificate (its TLS fingerprint).
    #[must_use]
    pub fn sha256(&self) -> &Sha256Hex {
        &self.sha256
    }
}

impl TryFrom<String> for CertificatePem {
    type Error = InvalidValue;
    fn try_from(s: String) -> std::result::Result<Self, InvalidValue> {
        CertificatePem::parse(s)
    }
}

impl From<CertificatePem> for String {
    fn from(c: CertificatePem) -> String {
        c.pem
    }
}

/// A public key published in the directory (JWK) whose `kid`, if present, is its RFC 7638 thumbprint, for one
/// purpose: [`SigningKey`] or [`EncryptionKey`]. Kept as given (so that the canonical form of a decoded directory
/// is the one that was signed) and as a parsed [`PublicKey`].
macro_rules! published_key {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            jwk: Value,
            key: PublicKey,
        }

        impl $name {
            /// Parse a public JWK of this purpose whose `kid`, if present, is its RFC 7638 thumbprint.
            ///
            /// # Errors
            /// A text saying why the key is refused.
            pub fn from_jwk(jwk: Value) -> std::result::Result<$name, String> {
                if !jwk.is_object() {
                    return Err(concat!("a ", $what, " must be a JWK object").into());
                }
                let key = PublicKey::from_jwk(&jwk.to_string()).map_err(|e| format!("unusable JWK: {e}"))?;
                let check: fn(&PublicKey) -> std::result::Result<(), String> = $check;
                check(&key)?;
                if key.kid() != key.thumbprint() {
                    return Err(format!(
                        "kid {:?} is not the key's RFC 7638 thumbprint {}",
                        key.kid(),
                        key.thumbprint()
                    ));
                }
                Ok($name { jwk, key })
            }

            /// From a parsed key (its JWK as [`PublicKey::to_jwk`] writes it).
            ///
            /// # Errors
            /// As [`Self::from_jwk`].
            pub fn from_public_key(key: &PublicKey) -> std::result::Result<$name, String> {
                $name::from_jwk(key.to_jwk())
            }

            /// The parsed key.
            #[must_use]
            pub fn public_key(&self) -> &PublicKey {
                &self.key
            }

            /// Its key id (the RFC 7638 thumbprint).
            #[must_use]
            pub fn kid(&self) -> &str {
                self.key.kid()
            }

            /// The JWK as given.
            #[must_use]
            pub fn jwk(&self) -> &Value {
                &self.jwk
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("alg", &self.key.alg().as_str())
                    .field("kid", &self.key.kid())
                    .finish()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.jwk == other.jwk
            }
        }
        impl Eq for $name {}

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.jwk.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                $name::from_jwk(Value::deserialize(d)?).map_err(de::Error::custom)
            }
        }
    };
}

published_key!(
    /// A public signing key (JWK, ES256 or PS512): verifies the organisation's messages and receipts.
    SigningKey,
    "signing key",
    |key| {
        if key.alg().is_signature() {
            Ok(())
        } else {
            Err(format!("a signing key must be ES256 or PS512, not {}", key.alg().as_str()))
        }
    }
);

published_key!(
    /// A public encryption key (JWK, RSA-OAEP-256, at least 3072 bits as the crypto crate requires): messages
    /// that travel through a hub are encrypted to it end to end (JWE), so that the hub cannot read them.
    EncryptionKey,
    "encryption key",
    |key| {
        if key.alg() == sdx_crypto::Alg::RsaOaep256 {
            Ok(())
        } else {
            Err(format!("an encryption key must be RSA-OAEP-256, not {}", key.alg().as_str()))
        }
    }
);

/// What an organisation's workflow supports. Absent members mean "as SDX": every status, every transition of the
/// SDX lifecycle between supported statuses, the SDX limits (`docs/limits.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Statuses its ticket system can represent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Vec<Status>>,
    /// Status changes its workflow can take (each allowed by the SDX lifecycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<Transition>>,
    /// Largest attachment it takes, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attachment_bytes: Option<u64>,
    /// Most attachments in one case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attachments: Option<u64>,
    /// Longest text (description, journal entry), in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_text_chars: Option<u64>,
}

impl Capabilities {
    /// Whether the workflow can represent `s`.
    #[must_use]
    pub fn supports_status(&self, s: Status) -> bool {
        self.statuses.as_ref().is_none_or(|l| l.contains(&s))
    }

    /// Whether the workflow can go from `from` to `to`.
    #[must_use]
    pub fn supports_transition(&self, from: Status, to: Status) -> bool {
        match &self.transitions {
            Some(l) => l.iter().any(|t| t.from == from && t.to == to),
            None => self.supports_status(from) && self.supports_status(to) && from.can_transition_to(to),
        }
    }
}

/// One status change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// From this status.
    pub from: Status,
    /// To this status.
    pub to: Status,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}→{}", self.from, self.to)
    }
}

/// One responsibility: these organisations' support at this level for these services in these regions.
/// Every (service, region) pair of the lists is one assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Responsibility {
    /// The services (at least one).
    pub services: Vec<ServiceId>,
    /// The regions: ARS prefixes or `nationwide` (at least one).
    pub regions: Vec<Region>,
    /// The support level.
    pub level: SupportLevel,
    /// The responsible organisation.
    pub organisation: OrgKey,
    /// Order among several organisations responsible for the same service, region and level: lower first
    /// (like MX preferences); ties keep document order. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rank: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A service, named by its LeiKa key or its OZG id. JSON: `{"leikaKey": "99…"}` or `{"ozgId": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceId {
    /// Leistungsschlüssel (14 digits starting with 99).
    LeikaKey(LeikaKey),
    /// OZG id.
    OzgId(OzgId),
}

impl ServiceId {
    /// The ids a service reference of a case or notice names: its LeiKa key, then its OZG id (none for a reference
    /// by name only).
    #[must_use]
    pub fn all_of(s: &sdx_model::ServiceRef) -> Vec<ServiceId> {
        s.leika_key.clone().map(ServiceId::LeikaKey).into_iter().chain(s.ozg_id.clone().map(ServiceId::OzgId)).collect()
    }

    /// The id to route a service reference by: its LeiKa key, else its OZG id.
    #[must_use]
    pub fn of(s: &sdx_model::ServiceRef) -> Option<ServiceId> {
        ServiceId::all_of(s).into_iter().next()
    }

    /// Parse a service as given on a command line: `leika:KEY`, `ozg:ID`, or a bare value, which is a LeiKa key
    /// if it has the LeiKa form (14 digits starting with 99) and an OZG id otherwise.
    ///
    /// # Errors
    /// [`InvalidValue`] if the value is neither.
    pub fn parse(s: &str) -> std::result::Result<ServiceId, InvalidValue> {
        if let Some(k) = s.strip_prefix("leika:") {
            return LeikaKey::parse(k).map(ServiceId::LeikaKey);
        }
        if let Some(k) = s.strip_prefix("ozg:") {
            return OzgId::parse(k).map(ServiceId::OzgId);
        }
        match LeikaKey::parse(s) {
            Ok(k) => Ok(ServiceId::LeikaKey(k)),
            Err(_) => OzgId::parse(s).map(ServiceId::OzgId),
        }
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceId::LeikaKey(k) => write!(f, "LeiKa {k}"),
            ServiceId::OzgId(k) => write!(f, "OZG {k}"),
        }
    }
}

/// The region of a responsibility: an ARS prefix (2, 3, 5, 9 or 12 digits) or the whole federation.
/// JSON: the digits, or `"nationwide"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Region {
    /// Every region.
    Nationwide,
    /// Every ARS starting with this prefix.
    Prefix(Ars),
}

/// The JSON value of [`Region::Nationwide`].
pub const NATIONWIDE: &str = "nationwide";

impl Region {
    /// How specific the region is.
    #[must_use]
    pub fn level(&self) -> RegionLevel {
        match self {
            Region::Nationwide => RegionLevel::Nationwide,
            Region::Prefix(a) => RegionLevel::of_len(a.as_str().len()),
        }
    }

    /// Whether `ars` lies in this region.
    #[must_use]
    pub fn contains(&self, ars: &Ars) -> bool {
        match self {
            Region::Nationwide => true,
            Region::Prefix(p) => ars.as_str().starts_with(p.as_str()),
        }
    }
}

impl TryFrom<String> for Region {
    type Error = InvalidValue;
    fn try_from(s: String) -> std::result::Result<Self, InvalidValue> {
        if s == NATIONWIDE { Ok(Region::Nationwide) } else { Ars::parse(s).map(Region::Prefix) }
    }
}

impl From<Region> for String {
    fn from(r: Region) -> String {
        match r {
            Region::Nationwide => NATIONWIDE.to_owned(),
            Region::Prefix(a) => a.into(),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Nationwide => f.write_str(NATIONWIDE),
            Region::Prefix(a) => f.write_str(a.as_str()),
        }
    }
}

/// The levels of the ARS, from the whole federation to the municipality; a more specific level wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RegionLevel {
    /// The whole federation.
    Nationwide,
    /// Land (2 digits).
    Land,
    /// Regierungsbezirk (3 digits).
    Regierungsbezirk,
    /// Kreis (5 digits).
    Kreis,
    /// Gemeindeverband (9 digits).
    Gemeindeverband,
    /// Gemeinde (12 digits).
    Gemeinde,
}

impl RegionLevel {
    /// The level of an ARS prefix of `len` digits (2, 3, 5, 9, 12; anything else counts as nationwide).
    #[must_use]
    pub fn of_len(len: usize) -> RegionLevel {
        match len {
            2 => RegionLevel::Land,
            3 => RegionLevel::Regierungsbezirk,
            5 => RegionLevel::Kreis,
            9 => RegionLevel::Gemeindeverband,
            12 => RegionLevel::Gemeinde,
            _ => RegionLevel::Nationwide,
        }
    }

    /// The German name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RegionLevel::Nationwide => "bundesweit",
            RegionLevel::Land => "Land",
            RegionLevel::Regierungsbezirk => "Regierungsbezirk",
            RegionLevel::Kreis => "Kreis",
            RegionLevel::Gemeindeverband => "Gemeindeverband",
            RegionLevel::Gemeinde => "Gemeinde",
        }
    }
}

impl fmt::Display for RegionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Directory {
    /// Decode and check a directory from its JSON text (no signature involved: see [`crate::Verifier`]).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Malformed`] (with the JSON pointer of the first problem),
    /// [`Error::DuplicateOrganisation`], [`Error::UnknownOrganisation`], [`Error::InvalidHub`].
    pub fn from_json(bytes: &[u8]) -> Result<Directory> {
        if bytes.len() > crate::MAX_DIRECTORY_BYTES {
            return Err(Error::TooLarge { limit: crate::MAX_DIRECTORY_BYTES });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let dir: Directory = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let pointer = pointer_of(e.path());
            Error::malformed(pointer, e.into_inner().to_string())
        })?;
        de.end().map_err(|e| Error::malformed("", e.to_string()))?;
        dir.check()?;
        Ok(dir)
    }

    /// Check what the types cannot (also run by [`Directory::from_json`] and before signing).
    ///
    /// # Errors
    /// As [`Directory::from_json`].
    pub fn check(&self) -> Result<()> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(Error::malformed(
                "/schemaVersion",
                format!(
                    "schema version {:?} is not supported (this build reads {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        if self.version == 0 || self.version > MAX_SAFE_INTEGER {
            return Err(Error::malformed("/version", format!("must be 1 to {MAX_SAFE_INTEGER}")));
        }
        if self.expires_at <= self.issued_at {
            return Err(Error::malformed("/expiresAt", "must be later than issuedAt"));
        }
        let mut by_key: HashMap<&OrgKey, &Organisation> = HashMap::with_capacity(self.organisations.len());
        for (i, o) in self.organisations.iter().enumerate() {
            let p = format!("/organisations/{i}");
            if by_key.insert(&o.key, o).is_some() {
                return Err(Error::DuplicateOrganisation { key: o.key.clone(), pointer: format!("{p}/key") });
            }
            check_organisation(o, &p)?;
        }
        for (i, o) in self.organisations.iter().enumerate() {
            if let Endpoint::ViaHub(hub) = &o.endpoint {
                let pointer = format!("/organisations/{i}/endpoint/viaHub");
                let Some(h) = by_key.get(hub) else {
                    return Err(Error::UnknownOrganisation { key: hub.clone(), pointer });
                };
                let reason = if !h.has_role(Role::Hub) {
                    "does not have the role hub"
                } else if !matches!(h.endpoint, Endpoint::Url(_)) {
                    "is itself reached via a hub"
                } else {
                    continue;
                };
                return Err(Error::InvalidHub { key: o.key.clone(), hub: hub.clone(), pointer, reason });
            }
        }
        for (i, r) in self.responsibilities.iter().enumerate() {
            let p = format!("/responsibilities/{i}");
            if !by_key.contains_key(&r.organisation) {
                return Err(Error::UnknownOrganisation {
                    key: r.organisation.clone(),
                    pointer: format!("{p}/organisation"),
                });
            }
            if r.services.is_empty() {
                return Err(Error::malformed(format!("{p}/services"), "at least one service is required"));
            }
            if r.regions.is_empty() {
                return Err(Error::malformed(
                    format!("{p}/regions"),
                    "at least one region is required (an ARS prefix or \"nationwide\")",
                ));
            }
        }
        Ok(())
    }

    /// The RFC 8785 canonical form: the bytes the authority signs.
    #[must_use]
    pub fn canonical(&self) -> Vec<u8> {
        // Serializing the model cannot fail: no maps with non-string keys, no floats.
        serde_json_canonicalizer::to_vec(self).unwrap_or_default()
    }

    /// Pretty-printed JSON with a final newline (for files people edit).
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The organisation with this key.
    #[must_use]
    pub fn organisation(&self, key: &OrgKey) -> Option<&Organisation> {
        self.organisations.iter().find(|o| &o.key == key)
    }
}

fn check_organisation(o: &Organisation, p: &str) -> Result<()> {
    let n = o.name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || o.name.chars().any(char::is_control) {
        return Err(Error::malformed(
            format!("{p}/name"),
            format!("must be 1 to {MAX_NAME_CHARS} characters on one line"),
        ));
    }
    if o.roles.is_empty() {
        return Err(Error::malformed(format!("{p}/roles"), "at least one role is required"));
    }
    for (name, list) in
        [("roles", has_dup(&o.roles)), ("messageTypes", o.message_types.as_deref().is_some_and(has_dup))]
    {
        if list {
            return Err(Error::malformed(format!("{p}/{name}"), "lists a value twice"));
        }
    }
    let mut kids = BTreeSet::new();
    for (j, k) in o.signing_keys.iter().enumerate() {
        if !kids.insert(k.kid()) {
            return Err(Error::malformed(format!("{p}/signingKeys/{j}"), "the same key appears twice"));
        }
    }
    let mut kids = BTreeSet::new();
    for (j, k) in o.encryption_keys.iter().enumerate() {
        if !kids.insert(k.kid()) {
            return Err(Error::malformed(format!("{p}/encryptionKeys/{j}"), "the same key appears twice"));
        }
    }
    if let Some(c) = &o.capabilities {
        let q = format!("{p}/capabilities");
        if let Some(s) = &c.statuses
            && has_dup(s)
        {
            return Err(Error::malformed(format!("{q}/statuses"), "lists a status twice"));
        }
        for (j, t) in c.transitions.iter().flatten().enumerate() {
            let tp = format!("{q}/transitions/{j}");
            if !t.from.can_transition_to(t.to) {
                return Err(Error::malformed(tp, format!("{t} is not a transition of the SDX lifecycle")));
            }
            if !(c.supports_status(t.from) && c.supports_status(t.to)) {
                return Err(Error::malformed(tp, format!("{t} uses a status that is not in statuses")));
            }
        }
        for (name, v) in [
            ("maxAttachmentBytes", c.max_attachment_bytes),
            ("maxAttachments", c.max_attachments),
            ("maxTextChars", c.max_text_chars),
        ] {
            if let Some(v) = v
                && !(1..=MAX_SAFE_INTEGER).contains(&v)
            {
                return Err(Error::malformed(format!("{q}/{name}"), format!("must be 1 to {MAX_SAFE_INTEGER}")));
            }
        }
    }
    Ok(())
}

fn has_dup<T: Ord>(l: &[T]) -> bool {
    let mut s = BTreeSet::new();
    !l.iter().all(|x| s.insert(x))
}

/// Turn a serde path into a JSON pointer (RFC 6901).
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => out.push_str(variant),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}
