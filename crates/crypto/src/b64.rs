//! Strict base64url (RFC 4648 §5, no padding) as JOSE requires it (RFC 7515
//! §2): the URL-safe alphabet only, no `=` padding, no whitespace, and no
//! non-zero trailing bits, so every byte string has exactly one accepted
//! encoding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical unpadded base64url; `None` for anything else.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    // URL_SAFE_NO_PAD rejects padding (RequireNone), the standard alphabet's
    // `+` and `/`, whitespace and non-zero trailing bits.
    URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()
}

/// Length of the unpadded base64url encoding of `n` bytes.
pub(crate) fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_only() {
        assert_eq!(decode("AQ").unwrap(), vec![1]);
        assert!(decode("AQ==").is_none(), "padding");
        assert!(decode("AR").is_none(), "non-zero trailing bits");
        assert!(decode("+/8").is_none(), "standard alphabet");
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("A Q").is_none(), "whitespace");
        assert!(decode("A").is_none(), "impossible length");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn encoded_len_matches() {
        for n in 0..20 {
            assert_eq!(encoded_len(n), encode(&vec![0u8; n]).len());
        }
    }
}
