//! Fuzz target: arbitrary input to `jwe::decrypt` (with a fixed RSA key, and
//! with an EC key to exercise the key-type check) and `jwe::auth_tag`. Must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::{PrivateKey, jwe};
use std::sync::LazyLock;

static KEYS: LazyLock<(PrivateKey, PrivateKey)> = LazyLock::new(|| {
    (
        PrivateKey::from_pkcs8_pem(include_str!("../keys/rsa-3072.pem")).expect("RSA test key"),
        PrivateKey::from_pkcs8_pem(include_str!("../keys/ec-p256.pem")).expect("EC test key"),
    )
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rsa, ec) = &*KEYS;
    if let Ok(d) = jwe::decrypt(&text, rsa) {
        assert_eq!(jwe::auth_tag(&text).expect("decrypted JWE has a tag"), d.auth_tag);
    }
    let _ = jwe::decrypt(&text, ec);
    let _ = jwe::auth_tag(&text);
});
