//! The closed set of JOSE algorithms SDX uses (`ES256`, `PS512`,
//! `RSA-OAEP-256`) and their names on the wire.

use crate::error::{Error, Result};
use std::fmt;

/// A JOSE algorithm accepted by SDX.
///
/// Anything else (`none`, `HS256`, `RS256`, `RSA1_5`, `EdDSA`, …) is
/// rejected by [`Alg::parse`] with [`Error::AlgorithmNotAllowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA on P-256 with SHA-256, signature as 64-byte `R || S` (RFC 7518 §3.4).
    Es256,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt (RFC 7518 §3.5);
    /// the FIT-Connect signature algorithm.
    Ps512,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3), used to wrap
    /// the A256GCM content key; the FIT-Connect key-management algorithm.
    RsaOaep256,
}

impl Alg {
    /// All algorithms, in a stable order.
    pub const ALL: [Alg; 3] = [Alg::Es256, Alg::Ps512, Alg::RsaOaep256];

    /// Parses the exact, case-sensitive JOSE name.
    ///
    /// # Errors
    /// [`Error::AlgorithmNotAllowed`] for any other string.
    pub fn parse(name: &str) -> Result<Alg> {
        match name {
            "ES256" => Ok(Alg::Es256),
            "PS512" => Ok(Alg::Ps512),
            "RSA-OAEP-256" => Ok(Alg::RsaOaep256),
            other => Err(Error::AlgorithmNotAllowed(truncate(other))),
        }
    }

    /// The JOSE name (`"ES256"`, `"PS512"`, `"RSA-OAEP-256"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Ps512 => "PS512",
            Alg::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    /// Whether this is a signature algorithm (JWK `use` `sig`).
    #[must_use]
    pub fn is_signature(self) -> bool {
        matches!(self, Alg::Es256 | Alg::Ps512)
    }

    /// The JWK `use` value: `sig` or `enc`.
    #[must_use]
    pub fn jwk_use(self) -> &'static str {
        if self.is_signature() { "sig" } else { "enc" }
    }

    /// The JWK `key_ops` value of a public key, as FIT-Connect publishes it:
    /// `verify` for signature keys, `wrapKey` for encryption keys.
    #[must_use]
    pub fn public_key_op(self) -> &'static str {
        if self.is_signature() { "verify" } else { "wrapKey" }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Alg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Alg> {
        Alg::parse(s)
    }
}

/// Shortens attacker-controlled strings before they go into an error message.
pub(crate) fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_is_case_sensitive() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.as_str()).unwrap(), alg);
        }
        for bad in ["none", "HS256", "es256", "RS256", "RSA-OAEP", "RSA1_5", "EdDSA", ""] {
            assert_eq!(Alg::parse(bad).unwrap_err().code(), "algorithmNotAllowed", "{bad}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "ä".repeat(100);
        assert!(truncate(&s).len() < 80);
    }
}
