//! Fuzz target: arbitrary input to `jws::verify` (against a fixed ES256 and a
//! fixed PS512 key) and `jws::decode_unverified`. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::{Alg, PrivateKey, PublicKey, jws};
use std::sync::LazyLock;

static KEYS: LazyLock<(PublicKey, PublicKey)> = LazyLock::new(|| {
    let ec = PrivateKey::from_pkcs8_pem(include_str!("../keys/ec-p256.pem")).expect("EC test key");
    let rsa = PrivateKey::from_pkcs8_pem(include_str!("../keys/rsa-3072.pem")).expect("RSA test key");
    (ec.public_key(Alg::Es256).expect("ES256"), rsa.public_key(Alg::Ps512).expect("PS512"))
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (es256, ps512) = &*KEYS;
    for key in [es256, ps512] {
        if let Ok(v) = jws::verify(&text, key) {
            // Whatever verifies must also decode the same way unverified.
            let (header, payload) = jws::decode_unverified(&text).expect("verified JWS decodes");
            assert_eq!(header, v.header);
            assert_eq!(payload, v.payload);
        }
    }
    let _ = jws::decode_unverified(&text);
});
