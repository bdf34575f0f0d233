//! Property tests: parsers of outside input never panic, and round trips
//! hold for arbitrary payloads.

use crate::helpers::*;
use proptest::prelude::*;
use sdx_crypto::{Alg, PublicKey, jwe, jws};

/// Strings shaped like compact serializations: dot-separated runs of
/// base64url characters, sometimes valid JSON headers.
fn jose_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "[A-Za-z0-9_-]{0,40}",
        "[A-Za-z0-9_=+/ -]{0,12}",
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| b64(&b)),
        prop_oneof![
            Just(r#"{"alg":"ES256"}"#),
            Just(r#"{"alg":"PS512","kid":1}"#),
            Just(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#),
            Just(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#),
            Just(r#"{"alg":"none","crit":[]}"#),
            Just(r#"{"alg":"ES256","alg":"ES256"}"#),
        ]
        .prop_map(|h| b64(h.as_bytes())),
    ];
    prop::collection::vec(part, 1..7).prop_map(|p| p.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn jws_verify_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = String::from_utf8_lossy(&bytes);
        let es = public(ec(), Alg::Es256);
        let ps = public(rsa(), Alg::Ps512);
        let _ = jws::verify(&s, &es);
        let _ = jws::verify(&s, &ps);
        let _ = jws::decode_unverified(&s);
    }

    #[test]
    fn jose_shaped_inputs_never_panic(s in jose_like()) {
        let _ = jws::verify(&s, &public(ec(), Alg::Es256));
        let _ = jws::verify(&s, &public(rsa(), Alg::Ps512));
        let _ = jws::decode_unverified(&s);
        let _ = jwe::decrypt(&s, rsa());
        let _ = jwe::decrypt(&s, ec());
        let _ = jwe::auth_tag(&s);
    }

    #[test]
    fn jwe_decrypt_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = jwe::decrypt(&s, rsa());
        let _ = jwe::decrypt(&s, ec());
    }

    #[test]
    fn from_jwk_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = PublicKey::from_jwk(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn from_jwk_with_jwk_shaped_input_never_panics(
        kty in "EC|RSA|oct|[A-Z]{0,3}",
        crv in "P-256|P-384|[A-Za-z0-9-]{0,6}",
        x in prop::collection::vec(any::<u8>(), 0..40),
        y in prop::collection::vec(any::<u8>(), 0..40),
        n in prop::collection::vec(any::<u8>(), 0..600),
        e in prop::collection::vec(any::<u8>(), 0..6),
        alg in "ES256|PS512|RSA-OAEP-256|none|[A-Z0-9-]{0,8}",
    ) {
        let jwk = serde_json::json!({
            "kty": kty, "crv": crv, "x": b64(&x), "y": b64(&y), "n": b64(&n), "e": b64(&e), "alg": alg,
        });
        let _ = PublicKey::from_jwk(&jwk.to_string());
    }

    #[test]
    fn private_key_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = sdx_crypto::PrivateKey::from_pkcs8_der(&bytes);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &bytes));
        let _ = sdx_crypto::PrivateKey::from_pkcs8_pem(&pem);
    }

    #[test]
    fn es256_round_trip(payload in prop::collection::vec(any::<u8>(), 0..2048), cty in proptest::option::of("[ -~]{0,20}")) {
        let token = jws::sign(&payload, ec(), Alg::Es256, cty.as_deref()).unwrap();
        let v = jws::verify(&token, &public(ec(), Alg::Es256)).unwrap();
        prop_assert_eq!(v.payload, payload);
        prop_assert_eq!(v.header.cty, cty);
    }
}

proptest! {
    // RSA operations are slow in debug builds: fewer cases.
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn ps512_round_trip(payload in prop::collection::vec(any::<u8>(), 0..2048)) {
        let token = jws::sign(&payload, rsa(), Alg::Ps512, None).unwrap();
        prop_assert_eq!(jws::verify(&token, &public(rsa(), Alg::Ps512)).unwrap().payload, payload);
    }

    #[test]
    fn jwe_round_trip(plaintext in prop::collection::vec(any::<u8>(), 0..4096), cty in proptest::option::of("[ -~]{0,20}")) {
        let token = jwe::encrypt(&plaintext, &public(rsa(), Alg::RsaOaep256), cty.as_deref()).unwrap();
        let d = jwe::decrypt(&token, rsa()).unwrap();
        prop_assert_eq!(d.plaintext, plaintext);
        prop_assert_eq!(d.header.cty, cty);
    }
}
