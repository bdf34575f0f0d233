//! JWS compact serialization (RFC 7515) with ES256 and PS512: signing,
//! strict verification, and unverified peeking at the header.
//!
//! # Header produced by [`sign`]
//! `{"alg":…,"kid":…,"typ":"JOSE","cty":…}` in that order: `alg` is ES256
//! or PS512, `kid` is the signing key's [`PrivateKey::kid`], `typ` is `JOSE`
//! (RFC 7515 §4.1.9: a JWS in compact serialization that is not a JWT;
//! [`sign_typed`] sets another value, e.g. `secevent+jwt` for FIT-Connect
//! security event tokens), and `cty` is present only when the caller passes
//! one (e.g. `application/json`).
//!
//! # What [`verify`] refuses
//! Inputs over [`MAX_COMPACT_LEN`] bytes or protected headers over
//! [`MAX_HEADER_LEN`] bytes; anything but three canonical base64url parts;
//! protected headers that are not a JSON object or have duplicate members;
//! `alg` other than ES256/PS512 (`none`, `HS256`, `RS256`, …); an `alg` the
//! key is not published for; `crit`; `b64` other than `true`; a `kid` that is
//! not the key's; and of course a signature that does not verify. Unprotected
//! headers do not exist in compact serialization, and header parameters that
//! point to keys (`jwk`, `jku`, `x5c`, `x5u`) are never used: the caller
//! chooses the key.

use crate::alg::{Alg, truncate};
use crate::b64;
use crate::error::{Error, Result};
use crate::json;
use crate::key::{PrivateInner, PrivateKey, PublicKey, PublicMaterial, mismatch};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::RSA_PSS_SHA512;
use serde_json::{Map, Value};

/// Largest JWS compact serialization accepted or produced: 16 MiB
/// (a payload of about 12 MiB).
pub const MAX_COMPACT_LEN: usize = 16 * 1024 * 1024;
/// Largest base64url-encoded protected header accepted: 16 KiB.
pub const MAX_HEADER_LEN: usize = 16 * 1024;
/// The `typ` written by [`sign`].
pub const DEFAULT_TYP: &str = "JOSE";

/// The protected header of a JWS, as far as SDX interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct JwsHeader {
    /// Signature algorithm (ES256 or PS512 after verification).
    pub alg: Alg,
    /// Key id, if the header has one.
    pub kid: Option<String>,
    /// Media type of the whole JWS (`typ`), if present.
    pub typ: Option<String>,
    /// Media type of the payload (`cty`), if present.
    pub cty: Option<String>,
    /// All other header members, uninterpreted (e.g. `x5c`, `iat`).
    pub extra: Map<String, Value>,
}

/// A verified JWS: the header and the payload whose signature checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The protected header.
    pub header: JwsHeader,
    /// The signed payload bytes.
    pub payload: Vec<u8>,
}

/// Signs `payload` with the `typ` [`DEFAULT_TYP`] (`JOSE`).
///
/// # Errors
/// See [`sign_typed`].
pub fn sign(payload: &[u8], key: &PrivateKey, alg: Alg, cty: Option<&str>) -> Result<String> {
    sign_typed(payload, key, alg, DEFAULT_TYP, cty)
}

/// Signs `payload` into a JWS compact serialization with header
/// `{"alg","kid","typ","cty"?}`.
///
/// # Errors
/// [`Error::AlgorithmNotAllowed`] for RSA-OAEP-256,
/// [`Error::AlgorithmKeyMismatch`] if `alg` does not fit the key,
/// [`Error::InputTooLarge`] if the result would exceed [`MAX_COMPACT_LEN`],
/// [`Error::CryptoFailure`] if the library fails to sign.
pub fn sign_typed(payload: &[u8], key: &PrivateKey, alg: Alg, typ: &str, cty: Option<&str>) -> Result<String> {
    if !alg.is_signature() {
        return Err(Error::AlgorithmNotAllowed(format!("{alg} is not a signature algorithm")));
    }
    let mut header =
        format!(r#"{{"alg":"{}","kid":{},"typ":{}"#, alg.as_str(), json::quote(key.kid()), json::quote(typ));
    if let Some(cty) = cty {
        header.push_str(r#","cty":"#);
        header.push_str(&json::quote(cty));
    }
    header.push('}');
    let header_b64 = b64::encode(header.as_bytes());
    let sig_len = match key.inner() {
        PrivateInner::Ec(_) => 64,
        PrivateInner::Rsa { signing, .. } => signing.public_modulus_len(),
    };
    let total = header_b64.len() + b64::encoded_len(payload.len()) + b64::encoded_len(sig_len) + 2;
    if total > MAX_COMPACT_LEN || header_b64.len() > MAX_HEADER_LEN {
        return Err(Error::InputTooLarge { what: "JWS compact serialization", limit: MAX_COMPACT_LEN });
    }
    let mut out = String::with_capacity(total);
    out.push_str(&header_b64);
    out.push('.');
    out.push_str(&b64::encode(payload));
    let rng = SystemRandom::new();
    let signature = match (key.inner(), alg) {
        (PrivateInner::Ec(kp), Alg::Es256) => {
            kp.sign(&rng, out.as_bytes()).map_err(|_| Error::CryptoFailure("ES256 signing"))?.as_ref().to_vec()
        }
        (PrivateInner::Rsa { signing, .. }, Alg::Ps512) => {
            let mut sig = vec![0u8; signing.public_modulus_len()];
            signing
                .sign(&RSA_PSS_SHA512, &rng, out.as_bytes(), &mut sig)
                .map_err(|_| Error::CryptoFailure("PS512 signing"))?;
            sig
        }
        _ => return Err(mismatch(alg, key.key_type())),
    };
    out.push('.');
    out.push_str(&b64::encode(&signature));
    Ok(out)
}

/// Verifies a JWS compact serialization against `key` and returns the header
/// and payload. See the module docs for everything that is refused.
///
/// # Errors
/// [`Error::InputTooLarge`], [`Error::MalformedJose`],
/// [`Error::AlgorithmNotAllowed`], [`Error::AlgorithmKeyMismatch`],
/// [`Error::UnsupportedHeader`], [`Error::KidMismatch`],
/// [`Error::SignatureInvalid`].
pub fn verify(compact: &str, key: &PublicKey) -> Result<Verified> {
    let parts = Parts::split(compact)?;
    let header = parts.header()?;
    if header.alg != key.alg() {
        return Err(mismatch(header.alg, key.alg().as_str()));
    }
    if let Some(kid) = &header.kid
        && kid != key.kid()
    {
        return Err(Error::KidMismatch { header: truncate(kid), key: key.kid().to_owned() });
    }
    let signature = parts.signature()?;
    let payload = parts.payload()?;
    let verifier = match key.material() {
        PublicMaterial::Ec { verifier, .. } | PublicMaterial::Rsa { verifier, .. } => verifier,
    };
    verifier.verify_sig(parts.signing_input.as_bytes(), &signature).map_err(|_| Error::SignatureInvalid)?;
    Ok(Verified { header, payload })
}

/// Decodes a JWS **without verifying the signature**, e.g. to read `kid`
/// and pick the key. The same structural checks as [`verify`] apply; the
/// result must not be trusted.
///
/// # Errors
/// [`Error::InputTooLarge`], [`Error::MalformedJose`],
/// [`Error::AlgorithmNotAllowed`], [`Error::UnsupportedHeader`].
pub fn decode_unverified(compact: &str) -> Result<(JwsHeader, Vec<u8>)> {
    let parts = Parts::split(compact)?;
    let header = parts.header()?;
    parts.signature()?;
    Ok((header, parts.payload()?))
}

struct Parts<'a> {
    header_b64: &'a str,
    payload_b64: &'a str,
    signature_b64: &'a str,
    signing_input: &'a str,
}

impl<'a> Parts<'a> {
    fn split(compact: &'a str) -> Result<Parts<'a>> {
        if compact.len() > MAX_COMPACT_LEN {
            return Err(Error::InputTooLarge { what: "JWS compact serialization", limit: MAX_COMPACT_LEN });
        }
        let mut it = compact.split('.');
        let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(Error::malformed("JWS compact serialization must have exactly 3 parts"));
        };
        if h.len() > MAX_HEADER_LEN {
            return Err(Error::InputTooLarge { what: "JWS protected header", limit: MAX_HEADER_LEN });
        }
        Ok(Parts { header_b64: h, payload_b64: p, signature_b64: s, signing_input: &compact[..h.len() + 1 + p.len()] })
    }

    fn header(&self) -> Result<JwsHeader> {
        let bytes = b64::decode(self.header_b64)
            .ok_or_else(|| Error::malformed("JWS protected header is not canonical base64url"))?;
        let mut map = json::parse_object(&bytes, "JWS protected header")?;
        let alg = match map.remove("alg") {
            Some(Value::String(a)) => Alg::parse(&a)?,
            Some(_) => return Err(Error::malformed("JWS \"alg\" must be a string")),
            None => return Err(Error::malformed("JWS protected header has no \"alg\"")),
        };
        if !alg.is_signature() {
            return Err(Error::AlgorithmNotAllowed(format!("{alg} is not a JWS algorithm")));
        }
        reject_common(&map)?;
        match map.get("b64") {
            None | Some(Value::Bool(true)) => {}
            Some(_) => {
                return Err(Error::UnsupportedHeader("b64 (unencoded payload, RFC 7797) is not supported".into()));
            }
        }
        let kid = take_str(&mut map, "kid")?;
        let typ = take_str(&mut map, "typ")?;
        let cty = take_str(&mut map, "cty")?;
        Ok(JwsHeader { alg, kid, typ, cty, extra: map })
    }

    fn payload(&self) -> Result<Vec<u8>> {
        b64::decode(self.payload_b64).ok_or_else(|| Error::malformed("JWS payload is not canonical base64url"))
    }

    fn signature(&self) -> Result<Vec<u8>> {
        b64::decode(self.signature_b64).ok_or_else(|| Error::malformed("JWS signature is not canonical base64url"))
    }
}

/// Header checks shared by JWS and JWE: no `crit` (RFC 7515 §4.1.11 — SDX
/// understands no extensions, so any `crit` must be refused).
pub(crate) fn reject_common(map: &Map<String, Value>) -> Result<()> {
    if map.contains_key("crit") {
        return Err(Error::UnsupportedHeader("crit (no critical extensions are supported)".into()));
    }
    Ok(())
}

/// Removes and returns an optional string member.
pub(crate) fn take_str(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>> {
    match map.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::malformed(format!("header member {name:?} must be a string"))),
    }
}
