//! Shared test keys (generated once per test run) and helpers that build
//! JOSE objects by hand, so tests can present inputs our API would never
//! produce.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PSS_SHA512, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sdx_crypto::{Alg, PrivateKey, PublicKey};
use std::sync::OnceLock;

pub fn ec() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(Alg::Es256).expect("EC key"))
}

pub fn ec2() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(Alg::Es256).expect("EC key"))
}

/// RSA 4096, used for both PS512 and RSA-OAEP-256 in tests.
pub fn rsa() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(Alg::Ps512).expect("RSA key"))
}

/// A second RSA 4096 key.
pub fn rsa2() -> &'static PrivateKey {
    static K: OnceLock<PrivateKey> = OnceLock::new();
    K.get_or_init(|| PrivateKey::generate(Alg::RsaOaep256).expect("RSA key"))
}

pub fn public(key: &PrivateKey, alg: Alg) -> PublicKey {
    key.public_key(alg).expect("public key")
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("test input is base64url")
}

/// Splits a compact serialization into owned parts.
pub fn parts(compact: &str) -> Vec<String> {
    compact.split('.').map(str::to_owned).collect()
}

/// Decodes part `i`, applies `f`, re-encodes, and joins again.
pub fn edit_part(compact: &str, i: usize, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut p = parts(compact);
    let mut bytes = unb64(&p[i]);
    f(&mut bytes);
    p[i] = b64(&bytes);
    p.join(".")
}

/// Signs an arbitrary header JSON text and payload with a correct signature
/// for `alg`, bypassing `jws::sign`'s header construction.
pub fn sign_raw(header_json: &str, payload: &[u8], key: &PrivateKey, alg: Alg) -> String {
    let input = format!("{}.{}", b64(header_json.as_bytes()), b64(payload));
    let rng = SystemRandom::new();
    let der = key.to_pkcs8_der();
    let sig = match alg {
        Alg::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .expect("EC key")
            .sign(&rng, input.as_bytes())
            .expect("sign")
            .as_ref()
            .to_vec(),
        Alg::Ps512 => {
            let kp = RsaKeyPair::from_pkcs8(&der).expect("RSA key");
            let mut sig = vec![0u8; kp.public_modulus_len()];
            kp.sign(&RSA_PSS_SHA512, &rng, input.as_bytes(), &mut sig).expect("sign");
            sig
        }
        Alg::RsaOaep256 => panic!("not a signature alg"),
    };
    format!("{input}.{}", b64(&sig))
}

/// Encrypts with an arbitrary header JSON text and a correct RSA-OAEP-256 +
/// A256GCM construction, bypassing `jwe::encrypt`'s header construction.
pub fn encrypt_raw(header_json: &str, plaintext: &[u8], to: &PublicKey) -> String {
    let jwk = to.to_jwk();
    let n = unb64(jwk["n"].as_str().expect("RSA JWK"));
    let e = unb64(jwk["e"].as_str().expect("RSA JWK"));
    let pk: PublicEncryptingKey =
        RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.try_into().expect("RSA key");
    let oaep = OaepPublicEncryptingKey::new(pk).expect("OAEP key");
    let cek = [7u8; 32];
    let iv = [9u8; 12];
    let mut ek = vec![0u8; oaep.ciphertext_size()];
    let len = oaep.encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut ek, None).expect("wrap").len();
    ek.truncate(len);
    let h = b64(header_json.as_bytes());
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &cek).expect("key"));
    let mut buf = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(h.as_bytes()), &mut buf)
        .expect("seal");
    format!("{h}.{}.{}.{}.{}", b64(&ek), b64(&iv), b64(&buf), b64(tag.as_ref()))
}

/// Asserts that `r` failed with the given stable code.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(r: sdx_crypto::Result<T>, code: &str) {
    match r {
        Ok(v) => panic!("expected error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(e.code(), code, "wrong error: {e}"),
    }
}
