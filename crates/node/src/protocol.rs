//! The wire protocol between nodes: building, sealing (signing) and opening (verifying) SDX messages, and
//! the receipts that answer them.
//!
//! A message travels as a JWS (compact, `ES256` by default) whose payload is the RFC 8785 canonical JSON of
//! the message. Opening a message checks, in this order and before anything is stored: size, signature
//! with the key of the TLS-authenticated peer, that the payload is a valid SDX document in canonical form,
//! that its author is that peer and its reader is this node. Each failure is a [`Refusal`] with a stable
//! code that goes into a signed negative receipt.

use sdx_codec::json;
use sdx_crypto::{PrivateKey, PublicKey, jws};
use sdx_model::lifecycle::Refusal;
use sdx_model::message::SCHEMA_VERSION;
use sdx_model::{
    Body, CaseId, DirectoryService, ErrorCode, Header, Message, MessageId, MessageType, OrgKey, Participant, Receipt,
    ReceiptError, ReceiptResult, Sha256Hex, Timestamp,
};

/// Content type of the JWS payload (canonical SDX JSON).
pub const PAYLOAD_CTY: &str = "application/vnd.sdx+json";
/// Media type of a message or receipt on the wire (a JWS in compact serialization).
pub const WIRE_MEDIA_TYPE: &str = "application/jose";
/// Largest message accepted on the wire, in bytes (a 16 MiB document, base64url-encoded, plus header).
pub const MAX_WIRE_BYTES: usize = sdx_model::rules::limits::MAX_DOCUMENT_BYTES / 3 * 4 + 64 * 1024;

/// Most messages in one batch request (`POST /sdx/v1/batch`).
pub const MAX_BATCH_MESSAGES: usize = 64;
/// Largest message that travels in a batch; larger ones go alone.
pub const MAX_BATCH_ITEM_BYTES: usize = 128 * 1024;
/// Largest batch request body: the messages plus their JSON framing.
pub const MAX_BATCH_BYTES: usize = MAX_BATCH_MESSAGES * (MAX_BATCH_ITEM_BYTES + 16) + 64;

/// This node: its organisation and signing key.
pub struct Identity {
    /// Organisation key.
    pub org: OrgKey,
    /// Organisation name, written into headers.
    pub name: Option<String>,
    /// Key that signs every message and receipt of this node.
    pub signing_key: PrivateKey,
}

/// A sealed message: the JWS as it goes on the wire and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The JWS (compact serialization).
    pub jws: String,
    /// SHA-256 of the JWS bytes: what the receipt quotes.
    pub digest: Sha256Hex,
}

/// An opened (verified) message.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The message.
    pub message: Message,
    /// The JWS as kept: the received bytes without surrounding whitespace (which transport may add).
    pub jws: String,
    /// SHA-256 of exactly those bytes: what the receipt quotes and what deduplication compares.
    pub digest: Sha256Hex,
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// SHA-256 of bytes as lowercase hex.
pub use sdx_codec::validate::sha256;

impl Identity {
    /// A header for a message from this node to `reader`.
    pub fn header(
        &self,
        message_type: MessageType,
        reader: &OrgKey,
        case_id: Option<CaseId>,
        sequence: Option<u64>,
        acknowledged_sequence: Option<u64>,
        in_reply_to: Option<MessageId>,
    ) -> Header {
        Header {
            message_id: MessageId::new_time_ordered(),
            message_type,
            created_at: Timestamp::now(),
            author: Participant { directory: DirectoryService::Dvdv, key: self.org.clone(), name: self.name.clone() },
            reader: Participant { directory: DirectoryService::Dvdv, key: reader.clone(), name: None },
            case_id,
            sequence,
            acknowledged_sequence,
            in_reply_to,
            schema_version: SCHEMA_VERSION.into(),
            codelist_version: sdx_model::codelist::CODELIST_VERSION.into(),
            product: Some("SDX".into()),
            product_vendor: None,
            product_version: Some(env!("CARGO_PKG_VERSION").into()),
            test: false,
        }
    }

    /// Sign a message: JWS over its canonical JSON form.
    pub fn seal(&self, m: &Message) -> Result<Sealed, sdx_crypto::Error> {
        let payload = json::canonical(m);
        let jws = jws::sign(payload.as_bytes(), &self.signing_key, self.signing_key.signing_alg(), Some(PAYLOAD_CTY))?;
        let digest = sha256(jws.as_bytes());
        Ok(Sealed { jws, digest })
    }

    /// The receipt for a received message (positive when `errors` is empty).
    pub fn receipt(
        &self,
        received_id: MessageId,
        received_from: &OrgKey,
        case_id: Option<CaseId>,
        digest: Option<Sha256Hex>,
        errors: Vec<ReceiptError>,
    ) -> Message {
        let result = if errors.is_empty() { ReceiptResult::Accepted } else { ReceiptResult::Rejected };
        Message {
            header: self.header(MessageType::Receipt, received_from, case_id, None, None, Some(received_id)),
            body: Body::Receipt(Receipt {
                result,
                received_message_id: received_id,
                received_at: Timestamp::now(),
                digest,
                errors,
            }),
        }
    }
}

/// The receipt errors for a refusal.
pub fn receipt_errors(r: &Refusal) -> Vec<ReceiptError> {
    vec![ReceiptError { code: r.code, location: None, text: r.message.chars().take(1000).collect() }]
}

/// Open a message that arrived over mutual TLS from `tls_peer`, whose signature key is `peer_key`, at the
/// node of organisation `me`.
///
/// The message is the JWS without surrounding whitespace: its digest (what a receipt quotes) is over exactly the
/// bytes kept, and a retry that differs only in such whitespace is the same message.
pub fn open(wire: &[u8], peer_key: &PublicKey, tls_peer: &OrgKey, me: &OrgKey) -> Result<Opened, Refusal> {
    if wire.len() > MAX_WIRE_BYTES {
        return Err(refusal(ErrorCode::TooLarge, format!("message larger than {MAX_WIRE_BYTES} bytes")));
    }
    let text = std::str::from_utf8(wire)
        .map_err(|_| refusal(ErrorCode::Malformed, "a message is a JWS in compact serialization (ASCII)"))?
        .trim();
    let digest = sha256(text.as_bytes());
    let verified = jws::verify(text, peer_key)
        .map_err(|e| refusal(ErrorCode::SignatureInvalid, format!("signature of {tls_peer} not valid: {e}")))?;
    let message = json::decode(&verified.payload).map_err(|d| {
        let first = d.into_iter().next();
        let (code, msg) =
            first.map_or((ErrorCode::Malformed, String::from("not decodable")), |d| (d.code, d.to_string()));
        refusal(code, msg)
    })?;
    if let Some(d) = sdx_codec::validate::check(&message).into_iter().next() {
        return Err(refusal(d.code, d.to_string()));
    }
    if json::canonical(&message).as_bytes() != verified.payload.as_slice() {
        return Err(refusal(ErrorCode::SignatureInvalid, "the signed payload is not in canonical form (RFC 8785)"));
    }
    if &message.header.author.key != tls_peer {
        return Err(refusal(
            ErrorCode::SenderMismatch,
            format!("author {} is not the TLS peer {tls_peer}", message.header.author.key),
        ));
    }
    if &message.header.reader.key != me {
        return Err(refusal(
            ErrorCode::WrongRecipient,
            format!("addressed to {}, this node is {me}", message.header.reader.key),
        ));
    }
    Ok(Opened { message, jws: text.to_string(), digest })
}

/// Open a receipt that answers `sent` (a message this node sent with digest `sent_digest`).
pub fn open_receipt(
    wire: &[u8],
    peer_key: &PublicKey,
    peer: &OrgKey,
    me: &OrgKey,
    sent: MessageId,
    sent_digest: &Sha256Hex,
) -> Result<(Message, Receipt), Refusal> {
    let opened = open(wire, peer_key, peer, me)?;
    let Body::Receipt(r) = &opened.message.body else {
        return Err(refusal(ErrorCode::SchemaViolation, "expected a receipt"));
    };
    if r.received_message_id != sent {
        return Err(refusal(ErrorCode::InconsistentCase, "the receipt is for another message"));
    }
    // A receipt quotes the digest exactly when the receiver keeps the message: always for a positive one; for a
    // negative one only if the receiver judged the message and refused it (its sequence number is used up).
    match (&r.digest, r.result) {
        (Some(d), _) if d != sent_digest => {
            return Err(refusal(ErrorCode::InconsistentCase, "the receipt quotes another digest than what was sent"));
        }
        (None, ReceiptResult::Accepted) => {
            return Err(refusal(ErrorCode::InconsistentCase, "a positive receipt quotes the digest of the message"));
        }
        _ => {}
    }
    let r = r.clone();
    Ok((opened.message, r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdx_crypto::Alg;
    use sdx_model::sample::{self, BELA, MILA};

    fn identity(org: &str) -> Identity {
        Identity {
            org: OrgKey::parse(org).unwrap(),
            name: None,
            signing_key: PrivateKey::generate(Alg::Es256).unwrap(),
        }
    }

    #[test]
    fn seal_open_and_every_refusal() {
        let (mila, bela) = (identity(MILA), identity(BELA));
        let mila_pub = mila.signing_key.public_key(Alg::Es256).unwrap();
        let mut m = sample::typical_forward();
        m.header.author.key = mila.org.clone();
        let sealed = mila.seal(&m).unwrap();
        let opened = open(sealed.jws.as_bytes(), &mila_pub, &mila.org, &bela.org).unwrap();
        assert_eq!(opened.message, m);
        assert_eq!(opened.digest, sealed.digest);
        let code = |r: Result<Opened, Refusal>| r.unwrap_err().code;
        // Signed by someone else.
        let bela_pub = bela.signing_key.public_key(Alg::Es256).unwrap();
        assert_eq!(code(open(sealed.jws.as_bytes(), &bela_pub, &mila.org, &bela.org)), ErrorCode::SignatureInvalid);
        // TLS peer is not the author.
        assert_eq!(code(open(sealed.jws.as_bytes(), &mila_pub, &bela.org, &bela.org)), ErrorCode::SenderMismatch);
        // Not for this node.
        let other = OrgKey::parse("psw:99999999").unwrap();
        assert_eq!(code(open(sealed.jws.as_bytes(), &mila_pub, &mila.org, &other)), ErrorCode::WrongRecipient);
        // Garbage and tampering.
        assert_eq!(code(open(b"\xff", &mila_pub, &mila.org, &bela.org)), ErrorCode::Malformed);
        let mut t = sealed.jws.clone().into_bytes();
        t[40] ^= 1;
        assert!(open(&t, &mila_pub, &mila.org, &bela.org).is_err());
        // A valid signature over an invalid document.
        let mut bad = m.clone();
        if let Body::Forward(f) = &mut bad.body {
            f.case.priority = sdx_model::Priority::Planning;
        }
        let s = mila.seal(&bad).unwrap();
        assert_eq!(code(open(s.jws.as_bytes(), &mila_pub, &mila.org, &bela.org)), ErrorCode::PriorityMismatch);
        // A receipt answers exactly what was sent.
        let r = bela.receipt(m.header.message_id, &mila.org, m.header.case_id, Some(sealed.digest.clone()), vec![]);
        let rs = bela.seal(&r).unwrap();
        let (_, receipt) =
            open_receipt(rs.jws.as_bytes(), &bela_pub, &bela.org, &mila.org, m.header.message_id, &sealed.digest)
                .unwrap();
        assert_eq!(receipt.result, ReceiptResult::Accepted);
        let wrong = sha256(b"other");
        assert!(open_receipt(rs.jws.as_bytes(), &bela_pub, &bela.org, &mila.org, m.header.message_id, &wrong).is_err());
    }
}
