//! The envelope a message travels in through a hub (issue 9, hub mode; `docs/routing.md`, *Hub*).
//!
//! A message to an organisation reached `viaHub` is sealed as always (the author's JWS over the canonical message:
//! what the recipient keeps and its receipt quotes), then **encrypted end to end** to the recipient's published
//! encryption key (JWE, RSA-OAEP-256 + A256GCM) and put into an envelope: a JWS, signed by the author too (`typ`
//! [`ENVELOPE_TYP`]), over the canonical JSON `{"route": {…}, "sealed": "<JWE>"}`. The hub reads and checks only
//! the route (message id, type, author, reader, case id, time) and passes the envelope on unchanged; it cannot read
//! the message (it has no key for the JWE) nor change the route unnoticed (the author's signature). The recipient
//! checks the envelope's signature, decrypts, opens the inner message as if it came straight from the author, and
//! checks that the route names the same message, author and reader as the message itself.
//!
//! Receipts come back in the clear (they carry ids and digests, no personal data), signed by the recipient.

use serde::{Deserialize, Serialize};

use sdx_crypto::{PrivateKey, PublicKey, jwe, jws};
use sdx_model::lifecycle::Refusal;
use sdx_model::{ErrorCode, Header, MessageId, MessageType, OrgKey, Timestamp};

/// JWS `typ` of an envelope.
pub const ENVELOPE_TYP: &str = "sdx-envelope+jws";

/// What a hub may read of a message: enough to route it, nothing of the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// The inner message's id.
    pub message_id: MessageId,
    /// Its type.
    pub message_type: MessageType,
    /// Its author (the envelope's signer).
    pub author: OrgKey,
    /// Its reader (where the hub passes it on).
    pub reader: OrgKey,
    /// When it was made.
    pub created_at: Timestamp,
}

impl Route {
    /// The route of a message with this header.
    #[must_use]
    pub fn of(h: &Header) -> Route {
        Route {
            message_id: h.message_id,
            message_type: h.message_type,
            author: h.author.key.clone(),
            reader: h.reader.key.clone(),
            created_at: h.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    route: Route,
    sealed: String,
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// Whether `wire` is an envelope (by its JWS `typ`; nothing is verified).
#[must_use]
pub fn is_envelope(wire: &[u8]) -> bool {
    std::str::from_utf8(wire)
        .ok()
        .and_then(|t| t.trim().split('.').next())
        .and_then(base64_json_typ)
        .is_some_and(|t| t == ENVELOPE_TYP)
}

fn base64_json_typ(header_b64: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header_b64).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("typ")?.as_str().map(str::to_string)
}

/// Put the sealed message `inner_jws` with header `header` into an envelope: encrypted to `to` (the reader's
/// encryption key), signed with `signer` (the author's signing key).
///
/// # Errors
/// [`sdx_crypto::Error`] if encryption or signing fails.
pub fn seal(
    inner_jws: &str,
    header: &Header,
    to: &PublicKey,
    signer: &PrivateKey,
) -> Result<String, sdx_crypto::Error> {
    seal_with(inner_jws, header, &jwe::ContentKey::new(to)?, signer)
}

/// [`seal`] under a content key already wrapped to the reader ([`jwe::ContentKey`], kept by the author per
/// reader): the same envelope, without an RSA operation at either end for all but the first message.
///
/// # Errors
/// As [`seal`].
pub fn seal_with(
    inner_jws: &str,
    header: &Header,
    key: &jwe::ContentKey,
    signer: &PrivateKey,
) -> Result<String, sdx_crypto::Error> {
    let sealed = key.encrypt(inner_jws.as_bytes(), Some("application/jose"))?;
    let body = serde_json::to_value(Body { route: Route::of(header), sealed })
        .map_err(|_| sdx_crypto::Error::CryptoFailure("envelope encoding"))?;
    let payload = serde_json_canonicalizer::to_string(&body)
        .map_err(|_| sdx_crypto::Error::CryptoFailure("envelope canonical form"))?;
    jws::sign_typed(payload.as_bytes(), signer, signer.signing_alg(), ENVELOPE_TYP, Some("application/json"))
}

/// The route of an envelope, read **without verifying** (to find the author's key).
///
/// # Errors
/// [`Refusal`] `malformed` if it is not an envelope.
pub fn peek(wire: &[u8]) -> Result<Route, Refusal> {
    let text = std::str::from_utf8(wire).map_err(|_| refusal(ErrorCode::Malformed, "an envelope is ASCII"))?.trim();
    let (_, payload) =
        jws::decode_unverified(text).map_err(|e| refusal(ErrorCode::Malformed, format!("envelope: {e}")))?;
    let body: Body =
        serde_json::from_slice(&payload).map_err(|e| refusal(ErrorCode::Malformed, format!("envelope: {e}")))?;
    Ok(body.route)
}

/// Verify an envelope with its author's key and return its route and the encrypted message.
///
/// # Errors
/// [`Refusal`]: `signatureInvalid` (signature, or not an envelope), `malformed`, `senderMismatch` if the route's
/// author is not `author`.
pub fn open(wire: &[u8], author: &OrgKey, author_key: &PublicKey) -> Result<(Route, String), Refusal> {
    let text = std::str::from_utf8(wire).map_err(|_| refusal(ErrorCode::Malformed, "an envelope is ASCII"))?.trim();
    let verified = jws::verify(text, author_key)
        .map_err(|e| refusal(ErrorCode::SignatureInvalid, format!("envelope signature of {author} not valid: {e}")))?;
    if verified.header.typ.as_deref() != Some(ENVELOPE_TYP) {
        return Err(refusal(ErrorCode::SignatureInvalid, "not an envelope (typ)"));
    }
    let body: Body = serde_json::from_slice(&verified.payload)
        .map_err(|e| refusal(ErrorCode::Malformed, format!("envelope: {e}")))?;
    if &body.route.author != author {
        return Err(refusal(
            ErrorCode::SenderMismatch,
            format!("the envelope's author {} is not {author}", body.route.author),
        ));
    }
    Ok((body.route, body.sealed))
}

/// Decrypt the message of an envelope with this node's encryption key.
///
/// # Errors
/// [`Refusal`] `decryptionFailed`.
pub fn decrypt(sealed: &str, key: &PrivateKey, cache: &jwe::UnwrapCache) -> Result<String, Refusal> {
    let d = jwe::decrypt_cached(sealed, key, cache)
        .map_err(|e| refusal(ErrorCode::DecryptionFailed, format!("the enveloped message: {e}")))?;
    String::from_utf8(d.plaintext).map_err(|_| refusal(ErrorCode::Malformed, "the enveloped message is not a JWS"))
}

/// Check that the message opened from an envelope is the one its route names.
///
/// # Errors
/// [`Refusal`] `senderMismatch` for another author, `wrongRecipient` for another reader, `inconsistentCase` for
/// another id, type, case or time.
pub fn check_route(route: &Route, inner: &Header) -> Result<(), Refusal> {
    let expected = Route::of(inner);
    if route.author != expected.author {
        return Err(refusal(ErrorCode::SenderMismatch, "the envelope's author differs from the message's"));
    }
    if route.reader != expected.reader {
        return Err(refusal(ErrorCode::WrongRecipient, "the envelope's reader differs from the message's"));
    }
    if *route != expected {
        return Err(refusal(ErrorCode::InconsistentCase, "the envelope's route differs from the message's header"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sdx_crypto::Alg;
    use sdx_model::sample;

    use super::*;
    use crate::protocol::Identity;

    #[test]
    fn an_envelope_hides_the_message_and_keeps_its_route() {
        let author = Identity {
            org: OrgKey::parse(sample::MILA).unwrap(),
            name: None,
            signing_key: PrivateKey::generate(Alg::Es256).unwrap(),
        };
        let reader_enc = PrivateKey::generate(Alg::RsaOaep256).unwrap();
        let m = sample::typical_forward();
        let sealed = author.seal(&m).unwrap();
        let wire = seal(&sealed.jws, &m.header, &reader_enc.public_key(Alg::RsaOaep256).unwrap(), &author.signing_key)
            .unwrap();
        assert!(is_envelope(wire.as_bytes()));
        assert!(!is_envelope(sealed.jws.as_bytes()));
        // What a hub sees: the route, not the description.
        let sdx_model::Body::Forward(f) = &m.body else { unreachable!() };
        let (_, payload) = jws::decode_unverified(&wire).unwrap();
        assert!(!String::from_utf8_lossy(&payload).contains(&f.case.description[..20]));
        let author_pub = author.signing_key.public_key(Alg::Es256).unwrap();
        let (route, jwe) = open(wire.as_bytes(), &author.org, &author_pub).unwrap();
        assert_eq!(route, Route::of(&m.header));
        assert_eq!(peek(wire.as_bytes()).unwrap(), route);
        // The recipient gets exactly the sealed message.
        assert_eq!(decrypt(&jwe, &reader_enc, &jwe::UnwrapCache::new(4)).unwrap(), sealed.jws);
        check_route(&route, &m.header).unwrap();
        // Someone else's key cannot open it; a changed ciphertext or route is noticed.
        let other = PrivateKey::generate(Alg::RsaOaep256).unwrap();
        assert_eq!(decrypt(&jwe, &other, &jwe::UnwrapCache::new(4)).unwrap_err().code, ErrorCode::DecryptionFailed);
        let mut parts: Vec<String> = wire.split('.').map(str::to_string).collect();
        let mid = parts[1].len() / 2;
        let c = if &parts[1][mid..=mid] == "A" { "B" } else { "A" };
        parts[1].replace_range(mid..=mid, c);
        assert_eq!(
            open(parts.join(".").as_bytes(), &author.org, &author_pub).unwrap_err().code,
            ErrorCode::SignatureInvalid
        );
        let mut moved = route.clone();
        moved.reader = OrgKey::parse("psw:09162000").unwrap();
        assert_eq!(check_route(&moved, &m.header).unwrap_err().code, ErrorCode::WrongRecipient);
        let stranger = OrgKey::parse("psw:09162000").unwrap();
        assert_eq!(open(wire.as_bytes(), &stranger, &author_pub).unwrap_err().code, ErrorCode::SenderMismatch);
    }
}
