//! Fuzz target: arbitrary input to `jwe::decrypt` (with a fixed RSA key, and
//! with an EC key to exercise the key-type check) and `jwe::auth_tag`. Must
//! never panic. `jwe::decrypt_cached` (one cache for the whole run, so content
//! keys of earlier inputs are in it) must give exactly what `decrypt` gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::{PrivateKey, jwe};
use std::sync::LazyLock;

static CACHE: LazyLock<jwe::UnwrapCache> = LazyLock::new(|| jwe::UnwrapCache::new(64));

static KEYS: LazyLock<(PrivateKey, PrivateKey)> = LazyLock::new(|| {
    (
        PrivateKey::from_pkcs8_pem(include_str!("../keys/rsa-3072.pem")).expect("RSA test key"),
        PrivateKey::from_pkcs8_pem(include_str!("../keys/ec-p256.pem")).expect("EC test key"),
    )
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (rsa, ec) = &*KEYS;
    let plain = jwe::decrypt(&text, rsa);
    if let Ok(d) = &plain {
        assert_eq!(jwe::auth_tag(&text).expect("decrypted JWE has a tag"), d.auth_tag);
    }
    // Twice: the first call may fill the cache, the second uses it.
    for _ in 0..2 {
        match (&plain, jwe::decrypt_cached(&text, rsa, &CACHE)) {
            (Ok(a), Ok(b)) => assert_eq!((&a.plaintext, &a.auth_tag), (&b.plaintext, &b.auth_tag)),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("decrypt and decrypt_cached disagree: {:?} / {:?}", a.is_ok(), b.is_ok()),
        }
    }
    let _ = jwe::decrypt(&text, ec);
    let _ = jwe::auth_tag(&text);
});
