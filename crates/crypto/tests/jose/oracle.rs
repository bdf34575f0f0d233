//! Interoperability against an independent implementation: josekit (on
//! OpenSSL). Tokens made by sdx-crypto must verify/decrypt in josekit and
//! vice versa; keys made by josekit must load here.
//!
//! Finding: josekit's RSA-OAEP `encrypter_from_jwk` insists that a present
//! `key_ops` contains `encrypt`, so it refuses FIT-Connect encryption JWKs
//! (`key_ops: ["wrapKey"]`). The test below hands it the JWK without
//! `key_ops`; sdx-crypto accepts both `wrapKey` and `encrypt`. And josekit's
//! PS512 signer reads RSA keys only as PKCS#1 or as PKCS#8 with the
//! RSASSA-PSS OID (and its PKCS#1 *PEM* path is broken in 0.10.3: it wraps
//! the PEM text instead of the decoded DER), so it gets our
//! plain-`rsaEncryption` PKCS#8 key converted to PKCS#1 DER by josekit itself.

use crate::helpers::*;
use josekit::jwe::{self as kjwe, JweHeader as KJweHeader, RSA_OAEP_256};
use josekit::jwk::alg::rsa::RsaKeyPair as KRsaKeyPair;
use josekit::jwk::{Jwk, KeyPair as _};
use josekit::jws::{self as kjws, ES256, JwsHeader as KJwsHeader, PS512};
use sdx_crypto::{Alg, PrivateKey, PublicKey, jwe, jws};

const PAYLOAD: &[u8] = br#"{"ticket":"T-3","priority":2,"text":"\u00fcber"}"#;

fn kjwk(pk: &PublicKey) -> Jwk {
    Jwk::from_bytes(pk.to_jwk_string().as_bytes()).expect("josekit parses our JWK")
}

#[test]
fn our_es256_verifies_in_josekit() {
    let token = jws::sign(PAYLOAD, ec(), Alg::Es256, Some("application/json")).unwrap();
    let verifier = ES256.verifier_from_jwk(&kjwk(&public(ec(), Alg::Es256))).unwrap();
    let (payload, header) = kjws::deserialize_compact(&token, &verifier).unwrap();
    assert_eq!(payload, PAYLOAD);
    assert_eq!(header.key_id(), Some(ec().kid()));
    assert_eq!(header.content_type(), Some("application/json"));
    // And a tampered one does not.
    let bad = edit_part(&token, 1, |p| p[0] ^= 1);
    assert!(kjws::deserialize_compact(&bad, &verifier).is_err());
}

#[test]
fn josekit_es256_verifies_in_ours() {
    let signer = ES256.signer_from_pem(ec().to_pkcs8_pem()).unwrap();
    let mut header = KJwsHeader::new();
    header.set_key_id(ec().kid());
    header.set_content_type("application/json");
    let token = kjws::serialize_compact(PAYLOAD, &header, &signer).unwrap();
    let v = jws::verify(&token, &public(ec(), Alg::Es256)).unwrap();
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.header.cty.as_deref(), Some("application/json"));
}

#[test]
fn our_ps512_verifies_in_josekit() {
    let token = jws::sign(PAYLOAD, rsa(), Alg::Ps512, None).unwrap();
    let verifier = PS512.verifier_from_jwk(&kjwk(&public(rsa(), Alg::Ps512))).unwrap();
    let (payload, header) = kjws::deserialize_compact(&token, &verifier).unwrap();
    assert_eq!(payload, PAYLOAD);
    assert_eq!(header.key_id(), Some(rsa().kid()));
}

#[test]
fn josekit_ps512_verifies_in_ours() {
    let pkcs1 = KRsaKeyPair::from_pem(rsa().to_pkcs8_pem()).unwrap().to_raw_private_key();
    let signer = PS512.signer_from_der(pkcs1).unwrap();
    let mut header = KJwsHeader::new();
    header.set_key_id(rsa().kid());
    let token = kjws::serialize_compact(PAYLOAD, &header, &signer).unwrap();
    assert_eq!(jws::verify(&token, &public(rsa(), Alg::Ps512)).unwrap().payload, PAYLOAD);
}

#[test]
fn our_jwe_decrypts_in_josekit() {
    let token = jwe::encrypt(PAYLOAD, &public(rsa(), Alg::RsaOaep256), Some("application/json")).unwrap();
    let decrypter = RSA_OAEP_256.decrypter_from_pem(rsa().to_pkcs8_pem()).unwrap();
    let (plain, header) = kjwe::deserialize_compact(&token, &decrypter).unwrap();
    assert_eq!(plain, PAYLOAD);
    assert_eq!(header.key_id(), Some(rsa().kid()));
    assert_eq!(header.content_type(), Some("application/json"));
    assert_eq!(header.claims_set()["enc"], "A256GCM");
    let bad = edit_part(&token, 3, |c| c[0] ^= 1);
    assert!(kjwe::deserialize_compact(&bad, &decrypter).is_err());
}

#[test]
fn josekit_jwe_decrypts_in_ours() {
    let mut jwk = public(rsa(), Alg::RsaOaep256).to_jwk();
    jwk.as_object_mut().unwrap().remove("key_ops"); // see module docs
    let encrypter = RSA_OAEP_256.encrypter_from_jwk(&Jwk::from_bytes(jwk.to_string().as_bytes()).unwrap()).unwrap();
    let mut header = KJweHeader::new();
    header.set_content_encryption("A256GCM");
    header.set_key_id(rsa().kid());
    header.set_content_type("application/json");
    let token = kjwe::serialize_compact(PAYLOAD, &header, &encrypter).unwrap();
    let d = jwe::decrypt(&token, rsa()).unwrap();
    assert_eq!(d.plaintext, PAYLOAD);
    assert_eq!(d.header.cty.as_deref(), Some("application/json"));
    assert_eq!(d.auth_tag, parts(&token)[4]);

    // josekit's default A128CBC-HS256 is refused.
    let mut cbc = KJweHeader::new();
    cbc.set_content_encryption("A128CBC-HS256");
    let token = kjwe::serialize_compact(PAYLOAD, &cbc, &encrypter).unwrap();
    assert_code(jwe::decrypt(&token, rsa()), "algorithmNotAllowed");
}

#[test]
fn josekit_keys_load_here_and_thumbprints_agree() {
    // EC: josekit's PKCS#8 PEM and its public JWK describe the same key to us.
    let kp = ES256.generate_key_pair().unwrap();
    let private = PrivateKey::from_pkcs8_pem(std::str::from_utf8(&kp.to_pem_private_key()).unwrap()).unwrap();
    let from_jwk = PublicKey::from_jwk(&kp.to_jwk_public_key().to_string()).unwrap();
    assert_eq!(from_jwk, private.public_key(Alg::Es256).unwrap());
    assert_eq!(from_jwk.kid(), private.thumbprint());
    let signer = ES256.signer_from_pem(kp.to_pem_private_key()).unwrap();
    let token = kjws::serialize_compact(PAYLOAD, &KJwsHeader::new(), &signer).unwrap();
    assert_eq!(jws::verify(&token, &from_jwk).unwrap().payload, PAYLOAD);

    // RSA 3072 (the smallest size BSI allows) from OpenSSL.
    let kp = RSA_OAEP_256.generate_key_pair(3072).unwrap();
    let pem = String::from_utf8(kp.to_pem_private_key()).unwrap();
    let private = PrivateKey::from_pkcs8_pem(&pem).unwrap();
    let mut jwk = kp.to_jwk_public_key();
    jwk.set_algorithm("PS512");
    let public = PublicKey::from_jwk(&jwk.to_string()).unwrap();
    assert_eq!(public.rsa_bits(), Some(3072));
    assert_eq!(public.kid(), private.kid());
    let signer = PS512.signer_from_der(kp.to_raw_private_key()).unwrap();
    let token = kjws::serialize_compact(PAYLOAD, &KJwsHeader::new(), &signer).unwrap();
    assert_eq!(jws::verify(&token, &public).unwrap().payload, PAYLOAD);
    let ours = jws::sign(PAYLOAD, &private, Alg::Ps512, None).unwrap();
    let verifier = PS512.verifier_from_jwk(&jwk).unwrap();
    assert_eq!(kjws::deserialize_compact(&ours, &verifier).unwrap().0, PAYLOAD);

    // josekit accepts RSA 2048; we refuse it (BSI TR-02102).
    let weak = RSA_OAEP_256.generate_key_pair(2048).unwrap();
    assert_code(PrivateKey::from_pkcs8_pem(std::str::from_utf8(&weak.to_pem_private_key()).unwrap()), "keyInvalid");
}
