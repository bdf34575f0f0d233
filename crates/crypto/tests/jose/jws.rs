//! JWS: round trips, tampering, algorithm confusion and header strictness.

use crate::helpers::*;
use aws_lc_rs::hmac;
use sdx_crypto::{Alg, PrivateKey, jws};
use serde_json::Value;

const PAYLOAD: &[u8] = br#"{"ticket":"T-1","status":"inProgress"}"#;

fn header_json(compact: &str) -> Value {
    serde_json::from_slice(&unb64(&parts(compact)[0])).unwrap()
}

#[test]
fn es256_round_trip_with_header_fields() {
    let key = ec();
    let token = jws::sign(PAYLOAD, key, Alg::Es256, Some("application/json")).unwrap();
    let h = header_json(&token);
    assert_eq!(h["alg"], "ES256");
    assert_eq!(h["typ"], "JOSE");
    assert_eq!(h["cty"], "application/json");
    assert_eq!(h["kid"], key.thumbprint().as_str());
    assert_eq!(unb64(&parts(&token)[2]).len(), 64, "R||S form");
    let v = jws::verify(&token, &public(key, Alg::Es256)).unwrap();
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.header.alg, Alg::Es256);
    assert_eq!(v.header.kid.as_deref(), Some(key.kid()));
    assert_eq!(v.header.cty.as_deref(), Some("application/json"));
    assert_eq!(v.header.typ.as_deref(), Some("JOSE"));
    assert!(v.header.extra.is_empty());
}

#[test]
fn ps512_round_trip() {
    let key = rsa();
    let token = jws::sign(PAYLOAD, key, Alg::Ps512, None).unwrap();
    let h = header_json(&token);
    assert_eq!(h["alg"], "PS512");
    assert!(h.get("cty").is_none());
    assert_eq!(unb64(&parts(&token)[2]).len(), 512);
    let v = jws::verify(&token, &public(key, Alg::Ps512)).unwrap();
    assert_eq!(v.payload, PAYLOAD);
    assert_eq!(v.header.cty, None);
}

#[test]
fn empty_and_binary_payloads_round_trip() {
    for payload in [&b""[..], &[0u8, 255, 10, 13, 0][..]] {
        let token = jws::sign(payload, ec(), Alg::Es256, None).unwrap();
        assert_eq!(jws::verify(&token, &public(ec(), Alg::Es256)).unwrap().payload, payload);
    }
}

#[test]
fn sign_typed_sets_typ() {
    let token = jws::sign_typed(PAYLOAD, rsa(), Alg::Ps512, "secevent+jwt", None).unwrap();
    let v = jws::verify(&token, &public(rsa(), Alg::Ps512)).unwrap();
    assert_eq!(v.header.typ.as_deref(), Some("secevent+jwt"));
}

#[test]
fn signatures_are_randomized_but_all_verify() {
    let a = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    let b = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    assert_ne!(a, b);
    let pk = public(ec(), Alg::Es256);
    jws::verify(&a, &pk).unwrap();
    jws::verify(&b, &pk).unwrap();
}

#[test]
fn tampered_payload_header_or_signature_fails() {
    for (key, alg) in [(ec(), Alg::Es256), (rsa(), Alg::Ps512)] {
        let pk = public(key, alg);
        let token = jws::sign(PAYLOAD, key, alg, Some("application/json")).unwrap();
        let payload = edit_part(&token, 1, |p| p[10] ^= 1);
        assert_code(jws::verify(&payload, &pk), "signatureInvalid");
        let header = {
            let mut p = parts(&token);
            let h = String::from_utf8(unb64(&p[0])).unwrap().replace("application/json", "text/plain");
            p[0] = b64(h.as_bytes());
            p.join(".")
        };
        assert_code(jws::verify(&header, &pk), "signatureInvalid");
        let sig = edit_part(&token, 2, |s| s[5] ^= 0x80);
        assert_code(jws::verify(&sig, &pk), "signatureInvalid");
        let truncated = edit_part(&token, 2, |s| {
            s.pop();
        });
        assert_code(jws::verify(&truncated, &pk), "signatureInvalid");
        let swapped = {
            let other = jws::sign(b"other", key, alg, Some("application/json")).unwrap();
            let mut p = parts(&token);
            p[2] = parts(&other)[2].clone();
            p.join(".")
        };
        assert_code(jws::verify(&swapped, &pk), "signatureInvalid");
    }
}

#[test]
fn wrong_key_of_same_type_fails() {
    let token = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    // Same kid claimed, different key material.
    let other = public(ec2(), Alg::Es256).with_kid(ec().kid());
    assert_code(jws::verify(&token, &other), "signatureInvalid");
    // Honest kid: caught earlier.
    assert_code(jws::verify(&token, &public(ec2(), Alg::Es256)), "kidMismatch");
}

#[test]
fn alg_none_is_rejected() {
    let pk = public(ec(), Alg::Es256);
    let token = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(PAYLOAD));
    assert_code(jws::verify(&token, &pk), "algorithmNotAllowed");
    let token = format!("{}.{}.", b64(br#"{"alg":"None"}"#), b64(PAYLOAD));
    assert_code(jws::verify(&token, &pk), "algorithmNotAllowed");
    assert_code(jws::decode_unverified(&token), "algorithmNotAllowed");
}

#[test]
fn hs256_with_public_key_as_secret_is_rejected() {
    // Classic confusion: HMAC keyed with the public JWK or PEM text.
    for (key, alg) in [(ec(), Alg::Es256), (rsa(), Alg::Ps512)] {
        let pk = public(key, alg);
        let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(PAYLOAD));
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, pk.to_jwk_string().as_bytes()), input.as_bytes());
        let token = format!("{input}.{}", b64(mac.as_ref()));
        assert_code(jws::verify(&token, &pk), "algorithmNotAllowed");
    }
}

#[test]
fn other_algorithms_are_rejected() {
    let pk = public(rsa(), Alg::Ps512);
    for alg in ["RS256", "RS512", "PS256", "ES384", "EdDSA", "RSA-OAEP-256", "ps512", ""] {
        let h = format!(r#"{{"alg":"{alg}"}}"#);
        let token = format!("{}.{}.{}", b64(h.as_bytes()), b64(PAYLOAD), b64(&[1; 512]));
        assert_code(jws::verify(&token, &pk), "algorithmNotAllowed");
    }
}

#[test]
fn alg_must_match_key() {
    // ES256 header checked with an RSA key.
    let es = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    assert_code(jws::verify(&es, &public(rsa(), Alg::Ps512)), "algorithmKeyMismatch");
    // PS512 token checked with an EC key.
    let ps = jws::sign(PAYLOAD, rsa(), Alg::Ps512, None).unwrap();
    assert_code(jws::verify(&ps, &public(ec(), Alg::Es256)), "algorithmKeyMismatch");
    // PS512 token checked with the same RSA key published for encryption.
    assert_code(jws::verify(&ps, &public(rsa(), Alg::RsaOaep256)), "algorithmKeyMismatch");
    // ES256 header forged over a PS512 signature.
    let forged = sign_raw(&format!(r#"{{"alg":"ES256","kid":"{}"}}"#, rsa().kid()), PAYLOAD, rsa(), Alg::Ps512);
    assert_code(jws::verify(&forged, &public(rsa(), Alg::Ps512)), "algorithmKeyMismatch");
}

#[test]
fn signing_refuses_wrong_alg() {
    assert_code(jws::sign(PAYLOAD, ec(), Alg::RsaOaep256, None), "algorithmNotAllowed");
    assert_code(jws::sign(PAYLOAD, ec(), Alg::Ps512, None), "algorithmKeyMismatch");
    assert_code(jws::sign(PAYLOAD, rsa(), Alg::Es256, None), "algorithmKeyMismatch");
}

#[test]
fn crit_and_b64_false_are_rejected_even_when_signed() {
    let pk = public(ec(), Alg::Es256);
    let crit = sign_raw(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&crit, &pk), "unsupportedHeader");
    let b64f = sign_raw(r#"{"alg":"ES256","b64":false,"crit":["b64"]}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&b64f, &pk), "unsupportedHeader");
    let b64f = sign_raw(r#"{"alg":"ES256","b64":false}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&b64f, &pk), "unsupportedHeader");
    let b64t = sign_raw(r#"{"alg":"ES256","b64":true}"#, PAYLOAD, ec(), Alg::Es256);
    assert_eq!(jws::verify(&b64t, &pk).unwrap().payload, PAYLOAD);
}

#[test]
fn kid_must_match_when_present() {
    let pk = public(ec(), Alg::Es256);
    let other = sign_raw(r#"{"alg":"ES256","kid":"someone-else"}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&other, &pk), "kidMismatch");
    let none = sign_raw(r#"{"alg":"ES256"}"#, PAYLOAD, ec(), Alg::Es256);
    assert_eq!(jws::verify(&none, &pk).unwrap().header.kid, None);
    // A key with a foreign kid verifies headers carrying that kid.
    let named = sign_raw(r#"{"alg":"ES256","kid":"dvdv:4711"}"#, PAYLOAD, ec(), Alg::Es256);
    jws::verify(&named, &pk.clone().with_kid("dvdv:4711")).unwrap();
    let renamed = PrivateKey::from_pkcs8_der(&ec().to_pkcs8_der()).unwrap().with_kid("dvdv:4711");
    let token = jws::sign(PAYLOAD, &renamed, Alg::Es256, None).unwrap();
    assert_eq!(jws::decode_unverified(&token).unwrap().0.kid.as_deref(), Some("dvdv:4711"));
    jws::verify(&token, &pk.with_kid("dvdv:4711")).unwrap();
}

#[test]
fn duplicate_header_members_are_rejected_even_when_signed() {
    let pk = public(ec(), Alg::Es256);
    let dup = sign_raw(r#"{"alg":"ES256","alg":"ES256"}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&dup, &pk), "malformedJose");
    let dup = sign_raw(r#"{"alg":"ES256","kid":"a","kid":"b"}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&dup, &pk), "malformedJose");
    let nested = sign_raw(r#"{"alg":"ES256","x":{"y":1,"y":2}}"#, PAYLOAD, ec(), Alg::Es256);
    assert_code(jws::verify(&nested, &pk), "malformedJose");
}

#[test]
fn header_member_types_are_checked() {
    let pk = public(ec(), Alg::Es256);
    for h in [
        r#"{"alg":"ES256","kid":5}"#,
        r#"{"alg":"ES256","cty":null}"#,
        r#"{"alg":256}"#,
        r#"{"kid":"x"}"#,
        r#"[]"#,
        "not json",
    ] {
        let token = format!("{}.{}.{}", b64(h.as_bytes()), b64(PAYLOAD), b64(&[0; 64]));
        assert_code(jws::verify(&token, &pk), "malformedJose");
    }
}

#[test]
fn non_canonical_base64url_is_rejected() {
    let pk = public(ec(), Alg::Es256);
    let token = jws::sign(b"payload!", ec(), Alg::Es256, None).unwrap();
    let p = parts(&token);
    let variants = [
        format!("{}.{}.{}=", p[0], p[1], p[2]),
        format!("{}=.{}.{}", p[0], p[1], p[2]),
        format!("{}.{}==.{}", p[0], p[1], p[2]),
        format!("{}.{} .{}", p[0], p[1], p[2]),
        format!("{}.{}.{}\n", p[0], p[1], p[2]),
        format!(" {token}"),
    ];
    for v in variants {
        assert_code(jws::verify(&v, &pk), "malformedJose");
    }
    // Standard alphabet instead of URL-safe: payload 0xfb 0xff 0xbf is "-_-_".
    let url = jws::sign(&[0xfb, 0xff, 0xbf], ec(), Alg::Es256, None).unwrap();
    assert_eq!(parts(&url)[1], "-_-_");
    jws::verify(&url, &pk).unwrap();
    assert_code(jws::verify(&url.replace(".-_-_.", ".+/+/."), &pk), "malformedJose");
    // Non-zero trailing bits: "payload!" is 8 bytes -> 11 chars, last char carries 2 spare bits.
    let mut last = p[1].clone();
    let c = last.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(c).unwrap();
    last.push(alphabet.as_bytes()[idx | 1] as char);
    assert_eq!(idx & 3, 0, "canonical encoding has zero spare bits");
    let v = format!("{}.{}.{}", p[0], last, p[2]);
    assert_code(jws::verify(&v, &pk), "malformedJose");
}

#[test]
fn wrong_number_of_parts_is_rejected() {
    let pk = public(ec(), Alg::Es256);
    let token = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    for bad in [String::new(), ".".into(), "..".into(), "...".into(), format!("{token}."), parts(&token)[..2].join(".")]
    {
        assert!(jws::verify(&bad, &pk).is_err(), "{bad:?}");
    }
    assert_code(jws::verify(&format!("{token}.x"), &pk), "malformedJose");
    assert_code(jws::verify(&parts(&token)[..2].join("."), &pk), "malformedJose");
}

#[test]
fn es256_signature_must_be_raw_64_bytes() {
    let pk = public(ec(), Alg::Es256);
    let token = jws::sign(PAYLOAD, ec(), Alg::Es256, None).unwrap();
    let long = edit_part(&token, 2, |s| s.push(0));
    assert_code(jws::verify(&long, &pk), "signatureInvalid");
    let zero = edit_part(&token, 2, |s| s.iter_mut().for_each(|b| *b = 0));
    assert_code(jws::verify(&zero, &pk), "signatureInvalid");
}

#[test]
fn oversized_input_is_rejected_before_parsing() {
    let pk = public(ec(), Alg::Es256);
    let huge = "A".repeat(jws::MAX_COMPACT_LEN + 1);
    assert_code(jws::verify(&huge, &pk), "inputTooLarge");
    assert_code(jws::decode_unverified(&huge), "inputTooLarge");
    let big_header = format!("{}.{}.{}", "A".repeat(jws::MAX_HEADER_LEN + 4), b64(PAYLOAD), b64(&[0; 64]));
    assert_code(jws::verify(&big_header, &pk), "inputTooLarge");
    let payload = vec![0u8; jws::MAX_COMPACT_LEN / 4 * 3];
    assert_code(jws::sign(&payload, ec(), Alg::Es256, None), "inputTooLarge");
}

#[test]
fn large_payload_round_trips() {
    let payload = vec![0x5au8; 4 * 1024 * 1024];
    let token = jws::sign(&payload, ec(), Alg::Es256, None).unwrap();
    assert_eq!(jws::verify(&token, &public(ec(), Alg::Es256)).unwrap().payload, payload);
}

#[test]
fn decode_unverified_peeks_at_kid_and_extra() {
    let token = sign_raw(r#"{"alg":"PS512","kid":"k1","x5c":["AAAA"],"iat":5}"#, PAYLOAD, rsa(), Alg::Ps512);
    let (h, payload) = jws::decode_unverified(&token).unwrap();
    assert_eq!(h.kid.as_deref(), Some("k1"));
    assert_eq!(h.alg, Alg::Ps512);
    assert_eq!(h.extra.len(), 2);
    assert_eq!(payload, PAYLOAD);
    assert_code(jws::decode_unverified("a.b"), "malformedJose");
}
