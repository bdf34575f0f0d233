//! Keys: EC P-256 and RSA private keys (PKCS#8, PEM or DER), public keys as
//! RFC 7517 JWKs, and RFC 7638 thumbprints used as `kid`.
//!
//! A private key knows what it *is* (EC P-256 or RSA), not what it is *for*:
//! PKCS#8 does not record PS512 vs RSA-OAEP-256. The operation decides — an
//! RSA key signs with PS512 and decrypts RSA-OAEP-256 — and
//! [`PrivateKey::public_key`] takes the algorithm the public JWK is published
//! for. A public key, in contrast, is bound to exactly one [`Alg`]: the JWK's
//! `alg`, `use` and `key_ops` say what it may be used for, and the JWS and JWE
//! modules refuse any other use.

use crate::alg::{Alg, truncate};
use crate::b64;
use crate::error::{Error, Result};
use crate::json;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, ParsedPublicKey,
    RSA_PSS_2048_8192_SHA512, RsaKeyPair, RsaParameters, RsaPublicKeyComponents,
};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use std::fmt;
use zeroize::Zeroizing;

/// Largest JWK text [`PublicKey::from_jwk`] reads (64 KiB; an RSA-8192 JWK
/// with an `x5c` chain of a few certificates fits easily).
pub const MAX_JWK_LEN: usize = 64 * 1024;
/// Largest PEM text [`PrivateKey::from_pkcs8_pem`] reads.
pub const MAX_PEM_LEN: usize = 64 * 1024;
/// Smallest accepted RSA modulus in bits (BSI TR-02102-1: at least 3000 bits;
/// 3072 is the smallest common size above that).
pub const MIN_RSA_BITS: usize = 3072;
/// Largest accepted RSA modulus in bits.
pub const MAX_RSA_BITS: usize = 8192;
/// Size of generated RSA keys (FIT-Connect requires RSA 4096).
pub const GENERATED_RSA_BITS: usize = 4096;
/// Longest accepted `kid` in a JWK.
pub const MAX_KID_LEN: usize = 256;
/// Most keys [`PublicKey::from_jwk_set`] reads from one JWK set.
pub const MAX_JWK_SET_KEYS: usize = 16;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
/// JWK members that only private (or symmetric) keys have.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// PS512 verification parameters; moduli below [`MIN_RSA_BITS`] are already
/// refused when the key is built.
static PSS_SHA512: RsaParameters = RSA_PSS_2048_8192_SHA512;

// ---------------------------------------------------------------------------
// Private keys
// ---------------------------------------------------------------------------

/// A private key: EC P-256 (for ES256) or RSA (for PS512 and RSA-OAEP-256).
///
/// `Debug` prints the key type and `kid` only, never key material.
pub struct PrivateKey {
    inner: PrivateInner,
    /// The PKCS#8 encoding, wiped from memory on drop.
    pkcs8: Zeroizing<Vec<u8>>,
    kid: String,
}

pub(crate) enum PrivateInner {
    Ec(EcdsaKeyPair),
    Rsa { signing: RsaKeyPair, decrypting: PrivateDecryptingKey },
}

impl PrivateKey {
    /// Generates a fresh key for `alg`: P-256 for ES256, RSA 4096 for PS512
    /// and RSA-OAEP-256 (FIT-Connect).
    ///
    /// # Errors
    /// [`Error::CryptoFailure`] if the library cannot generate a key.
    pub fn generate(alg: Alg) -> Result<PrivateKey> {
        let pkcs8 = match alg {
            Alg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|kp| kp.to_pkcs8v1())
                .map_err(|_| Error::CryptoFailure("EC P-256 key generation"))?
                .as_ref()
                .to_vec(),
            Alg::Ps512 | Alg::RsaOaep256 => {
                let kp = RsaKeyPair::generate(KeySize::Rsa4096)
                    .map_err(|_| Error::CryptoFailure("RSA 4096 key generation"))?;
                let der: Pkcs8V1Der<'static> = kp.as_der().map_err(|_| Error::CryptoFailure("RSA PKCS#8 encoding"))?;
                der.as_ref().to_vec()
            }
        };
        PrivateKey::from_pkcs8_der(&pkcs8)
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo` (DER) holding an EC P-256
    /// or RSA key (3072 to 8192 bits).
    ///
    /// # Errors
    /// [`Error::KeyInvalid`] for anything else (other curves, weak RSA,
    /// garbage, encrypted PKCS#8, SEC1 or PKCS#1 encodings).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey> {
        if der.len() > MAX_PEM_LEN {
            return Err(Error::InputTooLarge { what: "PKCS#8 private key", limit: MAX_PEM_LEN });
        }
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            let (x, y) = split_point(kp.public_key().as_ref())
                .ok_or_else(|| Error::key("EC public point is not uncompressed P-256"))?;
            let kid = thumbprint_ec(&x, &y);
            return Ok(PrivateKey { inner: PrivateInner::Ec(kp), pkcs8: Zeroizing::new(der.to_vec()), kid });
        }
        let signing = RsaKeyPair::from_pkcs8(der)
            .map_err(|_| Error::key("not an unencrypted PKCS#8 EC P-256 or RSA private key"))?;
        let (n, e) = {
            let pk = signing.public_key();
            (
                pk.modulus().big_endian_without_leading_zero().to_vec(),
                pk.exponent().big_endian_without_leading_zero().to_vec(),
            )
        };
        check_rsa_size(&n)?;
        let decrypting =
            PrivateDecryptingKey::from_pkcs8(der).map_err(|_| Error::key("RSA key not usable for decryption"))?;
        let kid = thumbprint_rsa(&n, &e);
        Ok(PrivateKey { inner: PrivateInner::Rsa { signing, decrypting }, pkcs8: Zeroizing::new(der.to_vec()), kid })
    }

    /// Reads a PEM `-----BEGIN PRIVATE KEY-----` block (PKCS#8). Text before
    /// the BEGIN line and after the END line is ignored; `RSA PRIVATE KEY`
    /// and `EC PRIVATE KEY` blocks are refused (convert them with
    /// `openssl pkcs8 -topk8 -nocrypt`).
    ///
    /// # Errors
    /// [`Error::InputTooLarge`] above [`MAX_PEM_LEN`], [`Error::KeyInvalid`]
    /// otherwise.
    pub fn from_pkcs8_pem(pem: &str) -> Result<PrivateKey> {
        if pem.len() > MAX_PEM_LEN {
            return Err(Error::InputTooLarge { what: "PEM private key", limit: MAX_PEM_LEN });
        }
        let start = pem
            .find(PEM_BEGIN)
            .ok_or_else(|| Error::key("no \"-----BEGIN PRIVATE KEY-----\" line (PKCS#8 PEM expected)"))?;
        let body_and_rest = &pem[start + PEM_BEGIN.len()..];
        let end = body_and_rest.find(PEM_END).ok_or_else(|| Error::key("no \"-----END PRIVATE KEY-----\" line"))?;
        let body: String = body_and_rest[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| Error::key("PEM body is not valid base64"))?;
        PrivateKey::from_pkcs8_der(&der)
    }

    /// The key as PKCS#8 DER (secret!).
    #[must_use]
    pub fn to_pkcs8_der(&self) -> Vec<u8> {
        self.pkcs8.to_vec()
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, 64-column
    /// base64, trailing newline). Secret: never log it.
    #[must_use]
    pub fn to_pkcs8_pem(&self) -> String {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.pkcs8));
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 64);
        out.push_str(PEM_BEGIN);
        out.push('\n');
        for chunk in b64.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(PEM_END);
        out.push('\n');
        out
    }

    /// The public half, published for `alg`.
    ///
    /// # Errors
    /// [`Error::AlgorithmKeyMismatch`] if `alg` does not fit the key type
    /// (ES256 needs EC P-256; PS512 and RSA-OAEP-256 need RSA).
    pub fn public_key(&self, alg: Alg) -> Result<PublicKey> {
        let material = match (&self.inner, alg) {
            (PrivateInner::Ec(kp), Alg::Es256) => {
                let (x, y) = split_point(kp.public_key().as_ref())
                    .ok_or_else(|| Error::key("EC public point is not uncompressed P-256"))?;
                PublicMaterial::ec(x, y)?
            }
            (PrivateInner::Rsa { signing, .. }, Alg::Ps512 | Alg::RsaOaep256) => {
                let pk = signing.public_key();
                PublicMaterial::rsa(
                    pk.modulus().big_endian_without_leading_zero().to_vec(),
                    pk.exponent().big_endian_without_leading_zero().to_vec(),
                )?
            }
            _ => return Err(mismatch(alg, self.key_type())),
        };
        Ok(PublicKey { material, alg, kid: self.kid.clone() })
    }

    /// The signature algorithm this key signs with: ES256 for EC, PS512 for RSA.
    #[must_use]
    pub fn signing_alg(&self) -> Alg {
        match self.inner {
            PrivateInner::Ec(_) => Alg::Es256,
            PrivateInner::Rsa { .. } => Alg::Ps512,
        }
    }

    /// `"EC P-256"` or `"RSA"`.
    #[must_use]
    pub fn key_type(&self) -> &'static str {
        match self.inner {
            PrivateInner::Ec(_) => "EC P-256",
            PrivateInner::Rsa { .. } => "RSA",
        }
    }

    /// The key id written into JWS/JWE headers and JWKs: the RFC 7638
    /// thumbprint of the public key unless replaced with [`PrivateKey::with_kid`].
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url) of the public key,
    /// whatever [`PrivateKey::kid`] says.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        match &self.inner {
            PrivateInner::Ec(kp) => match split_point(kp.public_key().as_ref()) {
                Some((x, y)) => thumbprint_ec(&x, &y),
                None => String::new(),
            },
            PrivateInner::Rsa { signing, .. } => {
                let pk = signing.public_key();
                thumbprint_rsa(
                    pk.modulus().big_endian_without_leading_zero(),
                    pk.exponent().big_endian_without_leading_zero(),
                )
            }
        }
    }

    /// Replaces the key id, e.g. with the `kid` a partner's directory (DVDV,
    /// FIT-Connect) already published for this key. Headers produced with
    /// this key carry it, and JWEs addressed to it must carry it.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> PrivateKey {
        self.kid = kid.into();
        self
    }

    pub(crate) fn inner(&self) -> &PrivateInner {
        &self.inner
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("type", &self.key_type()).field("kid", &self.kid).finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Public keys
// ---------------------------------------------------------------------------

/// A public key bound to one algorithm, as published in a JWK.
#[derive(Clone)]
pub struct PublicKey {
    material: PublicMaterial,
    alg: Alg,
    kid: String,
}

#[derive(Clone)]
pub(crate) enum PublicMaterial {
    Ec { x: [u8; 32], y: [u8; 32], verifier: ParsedPublicKey },
    Rsa { n: Vec<u8>, e: Vec<u8>, verifier: ParsedPublicKey, encrypter: PublicEncryptingKey },
}

impl PublicMaterial {
    fn ec(x: [u8; 32], y: [u8; 32]) -> Result<PublicMaterial> {
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&x);
        point[33..].copy_from_slice(&y);
        let verifier = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|_| Error::key("EC point is not on P-256"))?;
        Ok(PublicMaterial::Ec { x, y, verifier })
    }

    fn rsa(n: Vec<u8>, e: Vec<u8>) -> Result<PublicMaterial> {
        check_rsa_size(&n)?;
        if e.first().is_none_or(|b| *b == 0) || e.len() > 4 || e.last().is_some_and(|b| b % 2 == 0) {
            return Err(Error::key("RSA public exponent must be odd, at most 32 bits, no leading zero"));
        }
        let components = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() };
        let verifier =
            components.to_parsed_public_key(&PSS_SHA512).map_err(|_| Error::key("RSA public key rejected"))?;
        let encrypter: PublicEncryptingKey = RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
            .try_into()
            .map_err(|_| Error::key("RSA public key rejected"))?;
        Ok(PublicMaterial::Rsa { n, e, verifier, encrypter })
    }
}

impl PublicKey {
    /// Parses a public JWK (RFC 7517) strictly.
    ///
    /// Accepted: `kty` `EC` with `crv` `P-256` and 32-byte `x`/`y` on the
    /// curve, or `kty` `RSA` with `n` of [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`]
    /// bits and an odd `e`, all canonical base64url without leading zero
    /// octets. The algorithm comes from `alg` if present (ES256, PS512,
    /// RSA-OAEP-256 only), otherwise from the key type (EC → ES256) or, for
    /// RSA, from `use`/`key_ops`; `use` and `key_ops`, if present, must fit
    /// it and list public operations only. A present `kid` (any non-empty
    /// string up to [`MAX_KID_LEN`] bytes) is kept as the key's id; without
    /// one the id is the RFC 7638 thumbprint. Other members (`x5c`, `ext`, …)
    /// are ignored: certificate chains are checked outside this crate.
    ///
    /// # Errors
    /// [`Error::InputTooLarge`] above [`MAX_JWK_LEN`];
    /// [`Error::AlgorithmNotAllowed`] / [`Error::AlgorithmKeyMismatch`] for a
    /// bad `alg`; [`Error::KeyInvalid`] for everything else, including private
    /// members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`), duplicate
    /// members and invalid JSON.
    pub fn from_jwk(jwk: &str) -> Result<PublicKey> {
        PublicKey::from_jwk_map(&key_object(jwk, "JWK", MAX_JWK_LEN)?)
    }

    /// The public keys of a JWK set `{"keys": [JWK, …]}` (RFC 7517 §5; 1 to [`MAX_JWK_SET_KEYS`] keys, each as
    /// [`PublicKey::from_jwk`] reads it), or of a single JWK: every key an owner may use, e.g. its old and its
    /// new signing key during a rollover.
    ///
    /// # Errors
    /// [`Error::InputTooLarge`] above [`MAX_JWK_SET_KEYS`] × [`MAX_JWK_LEN`] bytes or keys; [`Error::KeyInvalid`]
    /// for an empty set, a `keys` member that is not an array of objects, and the errors of
    /// [`PublicKey::from_jwk`] for each key.
    pub fn from_jwk_set(text: &str) -> Result<Vec<PublicKey>> {
        let map = key_object(text, "JWK set", MAX_JWK_SET_KEYS * MAX_JWK_LEN)?;
        let Some(keys) = map.get("keys") else { return Ok(vec![PublicKey::from_jwk_map(&map)?]) };
        let keys = keys.as_array().ok_or_else(|| Error::key("JWK set: \"keys\" is not an array"))?;
        if keys.is_empty() {
            return Err(Error::key("JWK set: \"keys\" is empty"));
        }
        if keys.len() > MAX_JWK_SET_KEYS {
            return Err(Error::InputTooLarge { what: "JWK set (keys)", limit: MAX_JWK_SET_KEYS });
        }
        keys.iter()
            .enumerate()
            .map(|(i, k)| match k {
                Value::Object(m) => {
                    PublicKey::from_jwk_map(m).map_err(|e| Error::key(format!("JWK set, key {}: {e}", i + 1)))
                }
                _ => Err(Error::key(format!("JWK set, key {}: not a JSON object", i + 1))),
            })
            .collect()
    }

    fn from_jwk_map(map: &Map<String, Value>) -> Result<PublicKey> {
        let str_member = |name: &str| -> Result<Option<String>> {
            json::opt_str(map, name, "JWK").map_err(|e| Error::key(e.to_string()))
        };
        if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| map.contains_key(**m)) {
            return Err(Error::key(format!("JWK has private member {private:?}; only public keys are accepted")));
        }
        let kty = str_member("kty")?.ok_or_else(|| Error::key("JWK has no \"kty\""))?;
        let alg = str_member("alg")?.map(|a| Alg::parse(&a)).transpose()?;
        let key_use = str_member("use")?;
        let key_ops = read_key_ops(map)?;

        let (material, alg) = match kty.as_str() {
            "EC" => {
                let crv = str_member("crv")?.ok_or_else(|| Error::key("EC JWK has no \"crv\""))?;
                if crv != "P-256" {
                    return Err(Error::key(format!("EC curve {:?} not accepted (P-256 only)", truncate(&crv))));
                }
                let x = fixed_32(&b64_member(map, "x")?, "x")?;
                let y = fixed_32(&b64_member(map, "y")?, "y")?;
                let alg = alg.unwrap_or(Alg::Es256);
                if alg != Alg::Es256 {
                    return Err(mismatch(alg, "EC P-256"));
                }
                (PublicMaterial::ec(x, y)?, alg)
            }
            "RSA" => {
                let n = b64_member(map, "n")?;
                let e = b64_member(map, "e")?;
                if n.first() == Some(&0) || e.first() == Some(&0) {
                    return Err(Error::key("RSA n and e must not have leading zero octets"));
                }
                let alg = match alg {
                    Some(a) => a,
                    None => rsa_alg_from_usage(key_use.as_deref(), key_ops.as_deref())?,
                };
                if alg == Alg::Es256 {
                    return Err(mismatch(alg, "RSA"));
                }
                (PublicMaterial::rsa(n, e)?, alg)
            }
            other => {
                return Err(Error::key(format!("kty {:?} not accepted (EC or RSA only)", truncate(other))));
            }
        };
        if let Some(u) = &key_use
            && u != alg.jwk_use()
        {
            return Err(Error::key(format!(
                "JWK \"use\" {:?} does not fit alg {alg} (expected {:?})",
                truncate(u),
                alg.jwk_use()
            )));
        }
        if let Some(ops) = &key_ops {
            let allowed: &[&str] = if alg.is_signature() { &["verify"] } else { &["wrapKey", "encrypt"] };
            if let Some(bad) = ops.iter().find(|op| !allowed.contains(&op.as_str())) {
                return Err(Error::key(format!(
                    "JWK \"key_ops\" entry {:?} not allowed for a public {alg} key (allowed: {allowed:?})",
                    truncate(bad)
                )));
            }
        }
        let kid = match str_member("kid")? {
            Some(k) if k.is_empty() || k.len() > MAX_KID_LEN => {
                return Err(Error::key(format!("JWK \"kid\" must be 1 to {MAX_KID_LEN} bytes")));
            }
            Some(k) => k,
            None => material_thumbprint(&material),
        };
        Ok(PublicKey { material, alg, kid })
    }

    /// The RFC 7517 JWK: `kty`, `crv`/`x`/`y` or `n`/`e`, `alg`, `use`,
    /// `key_ops` (`["verify"]` or `["wrapKey"]`, as FIT-Connect publishes
    /// them) and `kid`.
    #[must_use]
    pub fn to_jwk(&self) -> Value {
        let mut v = match &self.material {
            PublicMaterial::Ec { x, y, .. } => {
                json!({"kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y)})
            }
            PublicMaterial::Rsa { n, e, .. } => {
                json!({"kty": "RSA", "n": b64::encode(n), "e": b64::encode(e)})
            }
        };
        if let Value::Object(m) = &mut v {
            m.insert("alg".into(), self.alg.as_str().into());
            m.insert("use".into(), self.alg.jwk_use().into());
            m.insert("key_ops".into(), json!([self.alg.public_key_op()]));
            m.insert("kid".into(), self.kid.clone().into());
        }
        v
    }

    /// [`PublicKey::to_jwk`] as compact JSON text.
    #[must_use]
    pub fn to_jwk_string(&self) -> String {
        self.to_jwk().to_string()
    }

    /// The RFC 7638 JWK thumbprint: SHA-256 over the required members in
    /// lexicographic order, base64url without padding.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        material_thumbprint(&self.material)
    }

    /// The key id: the JWK's `kid`, or the thumbprint for keys made here.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key may be used with.
    #[must_use]
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// RSA modulus size in bits, `None` for EC keys.
    #[must_use]
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            PublicMaterial::Rsa { n, .. } => Some(bit_len(n)),
            PublicMaterial::Ec { .. } => None,
        }
    }

    /// Replaces the key id (see [`PrivateKey::with_kid`]).
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> PublicKey {
        self.kid = kid.into();
        self
    }

    pub(crate) fn material(&self) -> &PublicMaterial {
        &self.material
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        let same_material = match (&self.material, &other.material) {
            (PublicMaterial::Ec { x, y, .. }, PublicMaterial::Ec { x: x2, y: y2, .. }) => x == x2 && y == y2,
            (PublicMaterial::Rsa { n, e, .. }, PublicMaterial::Rsa { n: n2, e: e2, .. }) => n == n2 && e == e2,
            _ => false,
        };
        same_material && self.alg == other.alg && self.kid == other.kid
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kty = match &self.material {
            PublicMaterial::Ec { .. } => "EC P-256".to_owned(),
            PublicMaterial::Rsa { n, .. } => format!("RSA {}", bit_len(n)),
        };
        f.debug_struct("PublicKey")
            .field("type", &kty)
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

pub(crate) fn mismatch(alg: Alg, key: &str) -> Error {
    Error::AlgorithmKeyMismatch { alg: alg.as_str().to_owned(), key: key.to_owned() }
}

fn split_point(point: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    if point.len() != 65 || point[0] != 0x04 {
        return None;
    }
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    x.copy_from_slice(&point[1..33]);
    y.copy_from_slice(&point[33..]);
    Some((x, y))
}

fn bit_len(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (n.len() - i - 1) * 8 + (8 - n[i].leading_zeros() as usize),
    }
}

fn check_rsa_size(n: &[u8]) -> Result<()> {
    let bits = bit_len(n);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(Error::key(format!(
            "RSA modulus has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} required (BSI TR-02102)"
        )));
    }
    Ok(())
}

fn b64_member(map: &Map<String, Value>, name: &str) -> Result<Vec<u8>> {
    match map.get(name) {
        Some(Value::String(s)) => {
            b64::decode(s).ok_or_else(|| Error::key(format!("JWK member {name:?} is not canonical base64url")))
        }
        Some(_) => Err(Error::key(format!("JWK member {name:?} must be a string"))),
        None => Err(Error::key(format!("JWK has no {name:?}"))),
    }
}

fn fixed_32(bytes: &[u8], name: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| Error::key(format!("EC coordinate {name:?} must be exactly 32 bytes")))
}

/// The JSON object of a JWK or JWK set text of at most `limit` bytes; malformed JSON is [`Error::KeyInvalid`].
fn key_object(text: &str, what: &'static str, limit: usize) -> Result<Map<String, Value>> {
    if text.len() > limit {
        return Err(Error::InputTooLarge { what, limit });
    }
    json::parse_object(text.as_bytes(), what).map_err(|e| match e {
        Error::MalformedJose(m) => Error::KeyInvalid(m),
        other => other,
    })
}

fn read_key_ops(map: &Map<String, Value>) -> Result<Option<Vec<String>>> {
    let Some(v) = map.get("key_ops") else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(Error::key("JWK \"key_ops\" must be an array of strings"));
    };
    if items.is_empty() {
        return Err(Error::key("JWK \"key_ops\" must not be empty"));
    }
    let mut ops: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(Error::key("JWK \"key_ops\" must be an array of strings"));
        };
        if ops.contains(s) {
            return Err(Error::key("JWK \"key_ops\" has duplicate entries"));
        }
        ops.push(s.clone());
    }
    Ok(Some(ops))
}

fn rsa_alg_from_usage(key_use: Option<&str>, key_ops: Option<&[String]>) -> Result<Alg> {
    match key_use {
        Some("sig") => return Ok(Alg::Ps512),
        Some("enc") => return Ok(Alg::RsaOaep256),
        _ => {}
    }
    if let Some(ops) = key_ops {
        if ops.iter().any(|o| o == "verify") {
            return Ok(Alg::Ps512);
        }
        if ops.iter().any(|o| o == "wrapKey" || o == "encrypt") {
            return Ok(Alg::RsaOaep256);
        }
    }
    Err(Error::key("RSA JWK needs \"alg\", \"use\" or \"key_ops\" to say whether it signs or encrypts"))
}

fn material_thumbprint(m: &PublicMaterial) -> String {
    match m {
        PublicMaterial::Ec { x, y, .. } => thumbprint_ec(x, y),
        PublicMaterial::Rsa { n, e, .. } => thumbprint_rsa(n, e),
    }
}

fn thumbprint_ec(x: &[u8], y: &[u8]) -> String {
    sha256_b64(&format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, b64::encode(x), b64::encode(y)))
}

fn thumbprint_rsa(n: &[u8], e: &[u8]) -> String {
    sha256_b64(&format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64::encode(e), b64::encode(n)))
}

fn sha256_b64(s: &str) -> String {
    b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1 example.
    #[test]
    fn rfc7638_rsa_thumbprint_vector() {
        let n = b64::decode(concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
            "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY",
            "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f",
            "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ))
        .unwrap();
        let e = b64::decode("AQAB").unwrap();
        assert_eq!(thumbprint_rsa(&n, &e), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(bit_len(&n), 2048);
    }

    #[test]
    fn keys_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PrivateKey>();
        check::<PublicKey>();
    }

    #[test]
    fn bit_len_counts_from_top_bit() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0, 0x7f]), 7);
    }
}
