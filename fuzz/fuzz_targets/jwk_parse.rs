//! Fuzz target: arbitrary input to `PublicKey::from_jwk` and `PublicKey::from_jwk_set`; whatever parses must
//! survive a `to_jwk_string` round trip unchanged, a single JWK must read as a set of one, and a set must read back
//! from its keys' own JWKs. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::PublicKey;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = PublicKey::from_jwk(&text) {
        let again = PublicKey::from_jwk(&key.to_jwk_string()).expect("own JWK parses");
        assert_eq!(again, key);
        assert_eq!(PublicKey::from_jwk_set(&text).expect("a JWK is a set of one"), vec![key]);
    }
    if let Ok(keys) = PublicKey::from_jwk_set(&text) {
        assert!(!keys.is_empty());
        let jwks: Vec<String> = keys.iter().map(PublicKey::to_jwk_string).collect();
        let set = format!("{{\"keys\":[{}]}}", jwks.join(","));
        assert_eq!(PublicKey::from_jwk_set(&set).expect("own JWK set parses"), keys);
    }
});
