//! The crate's error type: one variant per failure class, each with a stable,
//! machine-readable code (see [`Error::code`]).
//!
//! Error policy: messages never contain key material, plaintext or whole
//! inputs; they name the failed check only. Decryption failures (wrong key,
//! tampered ciphertext, bad key wrap) all collapse into
//! [`Error::DecryptionFailed`] so that callers cannot build a padding or
//! authentication oracle from the error.

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `sdx-crypto`.
///
/// Match on the variant in code and send [`Error::code`] over the wire; the
/// `Display` text is for logs and humans and may change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input exceeded a documented size limit before any parsing was done.
    #[error("input too large: {what} exceeds {limit} bytes")]
    InputTooLarge {
        /// Which input (e.g. `"JWS compact serialization"`).
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// The JOSE object is not well formed: wrong number of parts, bad
    /// base64url, invalid or duplicate-key JSON, wrong member types, wrong
    /// IV or tag length.
    #[error("malformed JOSE object: {0}")]
    MalformedJose(String),
    /// The algorithm named in a header (or requested by the caller) is not
    /// one this crate accepts for that operation (`none`, `HS256`, …).
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// The algorithm is allowed, but not with this key (an ES256 header
    /// checked with an RSA key, a signature key used to encrypt, …).
    #[error("algorithm {alg} cannot be used with a {key} key")]
    AlgorithmKeyMismatch {
        /// The algorithm that was asked for.
        alg: String,
        /// What the key is (`"EC P-256"`, `"RSA"`, or the key's own alg).
        key: String,
    },
    /// A header parameter this crate refuses to process (`crit`, `b64:false`, `zip`).
    #[error("unsupported header parameter: {0}")]
    UnsupportedHeader(String),
    /// The header's `kid` names a different key than the one supplied.
    #[error("kid mismatch: header names {header:?}, key is {key:?}")]
    KidMismatch {
        /// The `kid` in the header.
        header: String,
        /// The `kid` of the supplied key.
        key: String,
    },
    /// The signature does not verify with the supplied key.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The JWE could not be decrypted: wrong key, tampered encrypted key,
    /// IV, ciphertext, tag or protected header.
    #[error("decryption failed")]
    DecryptionFailed,
    /// A key could not be parsed or is not acceptable (weak RSA modulus,
    /// wrong curve, private members in a public JWK, bad encoding, …).
    #[error("key invalid: {0}")]
    KeyInvalid(String),
    /// The crypto library reported an internal failure (key generation,
    /// random number generation, signing). Not caused by the input.
    #[error("cryptographic operation failed: {0}")]
    CryptoFailure(&'static str),
}

impl Error {
    /// Stable lowerCamelCase code for this failure class, for logs, metrics
    /// and `application/problem+json` bodies.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::InputTooLarge { .. } => "inputTooLarge",
            Error::MalformedJose(_) => "malformedJose",
            Error::AlgorithmNotAllowed(_) => "algorithmNotAllowed",
            Error::AlgorithmKeyMismatch { .. } => "algorithmKeyMismatch",
            Error::UnsupportedHeader(_) => "unsupportedHeader",
            Error::KidMismatch { .. } => "kidMismatch",
            Error::SignatureInvalid => "signatureInvalid",
            Error::DecryptionFailed => "decryptionFailed",
            Error::KeyInvalid(_) => "keyInvalid",
            Error::CryptoFailure(_) => "cryptoFailure",
        }
    }

    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        Error::MalformedJose(msg.into())
    }

    pub(crate) fn key(msg: impl Into<String>) -> Self {
        Error::KeyInvalid(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_lower_camel_case_and_distinct() {
        let all = [
            Error::InputTooLarge { what: "x", limit: 1 },
            Error::MalformedJose(String::new()),
            Error::AlgorithmNotAllowed(String::new()),
            Error::AlgorithmKeyMismatch { alg: String::new(), key: String::new() },
            Error::UnsupportedHeader(String::new()),
            Error::KidMismatch { header: String::new(), key: String::new() },
            Error::SignatureInvalid,
            Error::DecryptionFailed,
            Error::KeyInvalid(String::new()),
            Error::CryptoFailure(""),
        ];
        let mut codes: Vec<_> = all.iter().map(Error::code).collect();
        for c in &codes {
            assert!(c.chars().next().unwrap().is_ascii_lowercase(), "{c}");
            assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric()), "{c}");
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
