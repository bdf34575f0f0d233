//! Fuzz target: arbitrary input to `PublicKey::from_jwk`; whatever parses
//! must survive a `to_jwk_string` round trip unchanged. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::PublicKey;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = PublicKey::from_jwk(&text) {
        let again = PublicKey::from_jwk(&key.to_jwk_string()).expect("own JWK parses");
        assert_eq!(again, key);
    }
});
