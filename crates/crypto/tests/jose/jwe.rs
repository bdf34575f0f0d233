//! JWE: round trips, tampering of each of the five parts, algorithm and
//! header strictness.

use crate::helpers::*;
use sdx_crypto::{Alg, PrivateKey, jwe};
use serde_json::Value;

const PLAIN: &[u8] = br#"{"ticket":"T-2","note":"Drucker im 3. OG defekt"}"#;

fn enc_key() -> sdx_crypto::PublicKey {
    public(rsa(), Alg::RsaOaep256)
}

#[test]
fn round_trip_with_fit_connect_header() {
    let token = jwe::encrypt(PLAIN, &enc_key(), Some("application/json")).unwrap();
    let p = parts(&token);
    assert_eq!(p.len(), 5);
    let h: Value = serde_json::from_slice(&unb64(&p[0])).unwrap();
    assert_eq!(h["alg"], "RSA-OAEP-256");
    assert_eq!(h["enc"], "A256GCM");
    assert_eq!(h["kid"], rsa().kid());
    assert_eq!(h["cty"], "application/json");
    assert_eq!(h.as_object().unwrap().len(), 4);
    assert_eq!(unb64(&p[1]).len(), 512, "RSA 4096 wrapped key");
    assert_eq!(unb64(&p[2]).len(), 12, "96-bit IV");
    assert_eq!(unb64(&p[3]).len(), PLAIN.len());
    assert_eq!(unb64(&p[4]).len(), 16, "128-bit tag");

    let d = jwe::decrypt(&token, rsa()).unwrap();
    assert_eq!(d.plaintext, PLAIN);
    assert_eq!(d.header.alg, Alg::RsaOaep256);
    assert_eq!(d.header.enc, jwe::Enc::A256Gcm);
    assert_eq!(d.header.cty.as_deref(), Some("application/json"));
    assert_eq!(d.header.kid.as_deref(), Some(rsa().kid()));
    assert_eq!(d.auth_tag, p[4]);
    assert_eq!(jwe::auth_tag(&token).unwrap(), p[4]);
}

#[test]
fn empty_and_large_plaintexts_round_trip() {
    for plain in [Vec::new(), vec![0xa5u8; 3 * 1024 * 1024 + 1]] {
        let token = jwe::encrypt(&plain, &enc_key(), None).unwrap();
        let d = jwe::decrypt(&token, rsa()).unwrap();
        assert_eq!(d.plaintext, plain);
        assert_eq!(d.header.cty, None);
    }
}

#[test]
fn every_encryption_uses_fresh_key_and_iv() {
    let a = parts(&jwe::encrypt(PLAIN, &enc_key(), None).unwrap());
    let b = parts(&jwe::encrypt(PLAIN, &enc_key(), None).unwrap());
    assert_eq!(a[0], b[0]);
    for i in 1..5 {
        assert_ne!(a[i], b[i], "part {i} repeated");
    }
}

#[test]
fn tampering_any_of_the_five_parts_fails() {
    let token = jwe::encrypt(PLAIN, &enc_key(), Some("application/json")).unwrap();
    // 0: protected header (AAD) changed but still valid and acceptable.
    let header = {
        let mut p = parts(&token);
        let h = String::from_utf8(unb64(&p[0])).unwrap().replace("application/json", "application/xml");
        p[0] = b64(h.as_bytes());
        p.join(".")
    };
    assert_code(jwe::decrypt(&header, rsa()), "decryptionFailed");
    // 1: encrypted key, 2: IV, 3: ciphertext, 4: tag — one bit each, first and last byte.
    for i in 1..5 {
        for pos in [0usize, usize::MAX] {
            let t = edit_part(&token, i, |b| {
                let at = if pos == 0 { 0 } else { b.len() - 1 };
                b[at] ^= 0x01;
            });
            assert_code(jwe::decrypt(&t, rsa()), "decryptionFailed");
        }
    }
    // Truncated or extended ciphertext.
    let t = edit_part(&token, 3, |b| {
        b.pop();
    });
    assert_code(jwe::decrypt(&t, rsa()), "decryptionFailed");
    let t = edit_part(&token, 3, |b| b.push(0));
    assert_code(jwe::decrypt(&t, rsa()), "decryptionFailed");
    // Encrypted key of the wrong length, or empty.
    let t = edit_part(&token, 1, |b| {
        b.pop();
    });
    assert_code(jwe::decrypt(&t, rsa()), "decryptionFailed");
    let t = edit_part(&token, 1, Vec::clear);
    assert_code(jwe::decrypt(&t, rsa()), "decryptionFailed");
    // Parts swapped between two JWEs to the same key.
    let other = jwe::encrypt(b"another message", &enc_key(), Some("application/json")).unwrap();
    for i in 1..5 {
        let mut p = parts(&token);
        p[i] = parts(&other)[i].clone();
        assert!(jwe::decrypt(&p.join("."), rsa()).is_err(), "swapped part {i}");
    }
}

#[test]
fn wrong_private_key_fails() {
    let token = jwe::encrypt(PLAIN, &enc_key(), None).unwrap();
    assert_code(jwe::decrypt(&token, rsa2()), "kidMismatch");
    let impostor = PrivateKey::from_pkcs8_der(&rsa2().to_pkcs8_der()).unwrap().with_kid(rsa().kid());
    assert_code(jwe::decrypt(&token, &impostor), "decryptionFailed");
    assert_code(jwe::decrypt(&token, ec()), "algorithmKeyMismatch");
}

#[test]
fn kid_may_be_absent_or_foreign() {
    let pk = enc_key();
    let no_kid = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#, PLAIN, &pk);
    assert_eq!(jwe::decrypt(&no_kid, rsa()).unwrap().header.kid, None);
    let foreign = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"fitko-42"}"#, PLAIN, &pk);
    assert_code(jwe::decrypt(&foreign, rsa()), "kidMismatch");
    let renamed = PrivateKey::from_pkcs8_der(&rsa().to_pkcs8_der()).unwrap().with_kid("fitko-42");
    assert_eq!(jwe::decrypt(&foreign, &renamed).unwrap().plaintext, PLAIN);
    // Encrypting to a JWK with a foreign kid writes that kid.
    let t = jwe::encrypt(PLAIN, &pk.with_kid("fitko-42"), None).unwrap();
    assert_eq!(jwe::decrypt(&t, &renamed).unwrap().header.kid.as_deref(), Some("fitko-42"));
}

#[test]
fn other_algorithms_and_encodings_are_rejected() {
    let pk = enc_key();
    for alg in ["RSA1_5", "RSA-OAEP", "RSA-OAEP-384", "dir", "A256KW", "ECDH-ES", "none", "PS512"] {
        let h = format!(r#"{{"alg":"{alg}","enc":"A256GCM"}}"#);
        assert_code(jwe::decrypt(&encrypt_raw(&h, PLAIN, &pk), rsa()), "algorithmNotAllowed");
    }
    for enc in ["A128GCM", "A192GCM", "A256CBC-HS512", "A128CBC-HS256", "a256gcm"] {
        let h = format!(r#"{{"alg":"RSA-OAEP-256","enc":"{enc}"}}"#);
        assert_code(jwe::decrypt(&encrypt_raw(&h, PLAIN, &pk), rsa()), "algorithmNotAllowed");
    }
    let missing_enc = encrypt_raw(r#"{"alg":"RSA-OAEP-256"}"#, PLAIN, &pk);
    assert_code(jwe::decrypt(&missing_enc, rsa()), "malformedJose");
}

#[test]
fn zip_crit_and_duplicates_are_rejected_even_when_valid() {
    let pk = enc_key();
    let zip = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#, PLAIN, &pk);
    assert_code(jwe::decrypt(&zip, rsa()), "unsupportedHeader");
    let crit = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["x"],"x":1}"#, PLAIN, &pk);
    assert_code(jwe::decrypt(&crit, rsa()), "unsupportedHeader");
    let dup = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","enc":"A256GCM"}"#, PLAIN, &pk);
    assert_code(jwe::decrypt(&dup, rsa()), "malformedJose");
    let ok = encrypt_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","typ":"x","foo":[1]}"#, PLAIN, &pk);
    let d = jwe::decrypt(&ok, rsa()).unwrap();
    assert_eq!(d.header.typ.as_deref(), Some("x"));
    assert_eq!(d.header.extra.len(), 1);
}

#[test]
fn wrong_iv_or_tag_length_is_malformed() {
    let token = jwe::encrypt(PLAIN, &enc_key(), None).unwrap();
    let long_iv = edit_part(&token, 2, |b| b.extend_from_slice(&[0; 4]));
    assert_code(jwe::decrypt(&long_iv, rsa()), "malformedJose");
    let short_iv = edit_part(&token, 2, |b| b.truncate(8));
    assert_code(jwe::decrypt(&short_iv, rsa()), "malformedJose");
    let short_tag = edit_part(&token, 4, |b| b.truncate(12));
    assert_code(jwe::decrypt(&short_tag, rsa()), "malformedJose");
    assert_code(jwe::auth_tag(&short_tag), "malformedJose");
    let empty_tag = edit_part(&token, 4, Vec::clear);
    assert_code(jwe::decrypt(&empty_tag, rsa()), "malformedJose");
}

#[test]
fn structure_and_size_errors() {
    let token = jwe::encrypt(PLAIN, &enc_key(), None).unwrap();
    assert_code(jwe::decrypt(&parts(&token)[..4].join("."), rsa()), "malformedJose");
    assert_code(jwe::decrypt(&format!("{token}.AA"), rsa()), "malformedJose");
    assert_code(jwe::decrypt(&format!("{token}="), rsa()), "malformedJose");
    assert_code(jwe::decrypt("....", rsa()), "malformedJose");
    let huge = "A".repeat(jwe::MAX_COMPACT_LEN + 1);
    assert_code(jwe::decrypt(&huge, rsa()), "inputTooLarge");
    assert_code(jwe::auth_tag(&huge), "inputTooLarge");
    let big_header = format!("{}.A.A.A.A", "A".repeat(jwe::MAX_HEADER_LEN + 4));
    assert_code(jwe::decrypt(&big_header, rsa()), "inputTooLarge");
}

#[test]
fn encrypt_needs_an_encryption_key() {
    assert_code(jwe::encrypt(PLAIN, &public(rsa(), Alg::Ps512), None), "algorithmKeyMismatch");
    assert_code(jwe::encrypt(PLAIN, &public(ec(), Alg::Es256), None), "algorithmKeyMismatch");
}

#[test]
fn a_content_key_is_wrapped_once_and_each_jwe_still_stands_alone() {
    let ck = jwe::ContentKey::new(&enc_key()).unwrap();
    assert_eq!(ck.kid(), rsa().kid());
    let (a, b) = (ck.encrypt(PLAIN, Some("application/jose")).unwrap(), ck.encrypt(PLAIN, None).unwrap());
    let (pa, pb) = (parts(&a), parts(&b));
    assert_eq!(pa[1], pb[1], "the same wrapped key");
    assert_ne!(pa[2], pb[2], "a fresh IV per JWE");
    assert_ne!(pa[3], pb[3]);
    assert!(!ck.is_spent());
    // Any holder of the key opens each one alone, as an ordinary JWE of the profile.
    assert_eq!(jwe::decrypt(&a, rsa()).unwrap().plaintext, PLAIN);
    assert_eq!(jwe::decrypt(&b, rsa()).unwrap().header.cty, None);
    // With a cache the key is unwrapped once; a forged or tampered JWE is refused and never cached.
    let cache = jwe::UnwrapCache::new(8);
    assert_eq!(jwe::decrypt_cached(&a, rsa(), &cache).unwrap().plaintext, PLAIN);
    assert_eq!(cache.len(), 1);
    assert_eq!(jwe::decrypt_cached(&b, rsa(), &cache).unwrap().plaintext, PLAIN);
    assert_eq!(cache.len(), 1, "the second JWE used the cached key");
    let mut bad = pb.clone();
    bad[3] = b64(b"something else entirely, same length?");
    assert!(matches!(jwe::decrypt_cached(&bad.join("."), rsa(), &cache), Err(sdx_crypto::Error::DecryptionFailed)));
    let mut forged = parts(&jwe::encrypt(PLAIN, &enc_key(), None).unwrap());
    forged[4] = pb[4].clone();
    assert!(jwe::decrypt_cached(&forged.join("."), rsa(), &cache).is_err());
    assert_eq!(cache.len(), 1, "nothing that failed is cached");
    // Another recipient key is refused (its kid), cache or not.
    let other = PrivateKey::generate(Alg::RsaOaep256).unwrap();
    assert!(jwe::decrypt_cached(&a, &other, &cache).is_err());
}
