//! Keys: PKCS#8 PEM/DER round trips, JWK export and strict JWK import,
//! thumbprints.

use crate::helpers::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
use sdx_crypto::{Alg, PrivateKey, PublicKey, key};
use serde_json::{Value, json};

#[test]
fn pem_and_der_round_trip() {
    for key in [ec(), rsa()] {
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        let again = PrivateKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.to_pkcs8_der(), key.to_pkcs8_der());
        let alg = key.signing_alg();
        assert_eq!(again.public_key(alg).unwrap(), key.public_key(alg).unwrap());
        let from_der = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der()).unwrap();
        assert_eq!(from_der.kid(), key.kid());
        // Surrounding text and CRLF line ends are tolerated.
        let wrapped = format!("Bag Attributes\r\n{}\r\nrest", pem.replace('\n', "\r\n"));
        assert_eq!(PrivateKey::from_pkcs8_pem(&wrapped).unwrap().kid(), key.kid());
    }
}

#[test]
fn generated_keys_have_the_profile_sizes() {
    assert_eq!(ec().signing_alg(), Alg::Es256);
    assert_eq!(rsa().signing_alg(), Alg::Ps512);
    assert_eq!(public(rsa(), Alg::Ps512).rsa_bits(), Some(4096));
    assert_eq!(public(rsa2(), Alg::RsaOaep256).rsa_bits(), Some(4096));
    assert_eq!(public(ec(), Alg::Es256).rsa_bits(), None);
}

#[test]
fn debug_output_shows_no_key_material() {
    let dbg = format!("{:?}", rsa());
    assert!(dbg.contains("RSA") && dbg.contains(rsa().kid()), "{dbg}");
    let pem_body: String = rsa().to_pkcs8_pem().lines().nth(3).unwrap().to_owned();
    assert!(!dbg.contains(&pem_body));
    assert!(dbg.len() < 200);
}

#[test]
fn bad_private_keys_are_rejected() {
    assert_code(PrivateKey::from_pkcs8_pem("nothing here"), "keyInvalid");
    assert_code(
        PrivateKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n"),
        "keyInvalid",
    );
    assert_code(PrivateKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n"), "keyInvalid");
    assert_code(
        PrivateKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        "keyInvalid",
    );
    let pkcs1 = rsa().to_pkcs8_pem().replace("PRIVATE KEY", "RSA PRIVATE KEY");
    assert_code(PrivateKey::from_pkcs8_pem(&pkcs1), "keyInvalid");
    assert_code(PrivateKey::from_pkcs8_der(&[0x30, 0x03, 0x02, 0x01, 0x00]), "keyInvalid");
    assert_code(PrivateKey::from_pkcs8_pem(&"A".repeat(key::MAX_PEM_LEN + 1)), "inputTooLarge");

    let p384 = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
    assert_code(PrivateKey::from_pkcs8_der(p384.as_ref()), "keyInvalid");
    let rsa2048 = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let der: aws_lc_rs::encoding::Pkcs8V1Der = rsa2048.as_der().unwrap();
    let err = PrivateKey::from_pkcs8_der(der.as_ref()).unwrap_err();
    assert_eq!(err.code(), "keyInvalid");
    assert!(err.to_string().contains("2048"), "{err}");
}

#[test]
fn public_key_alg_must_fit_key_type() {
    assert_code(ec().public_key(Alg::Ps512), "algorithmKeyMismatch");
    assert_code(ec().public_key(Alg::RsaOaep256), "algorithmKeyMismatch");
    assert_code(rsa().public_key(Alg::Es256), "algorithmKeyMismatch");
}

#[test]
fn jwk_export_has_fit_connect_members() {
    let es = public(ec(), Alg::Es256).to_jwk();
    assert_eq!(es["kty"], "EC");
    assert_eq!(es["crv"], "P-256");
    assert_eq!(es["alg"], "ES256");
    assert_eq!(es["use"], "sig");
    assert_eq!(es["key_ops"], json!(["verify"]));
    assert_eq!(es["kid"], ec().thumbprint().as_str());
    assert_eq!(unb64(es["x"].as_str().unwrap()).len(), 32);
    assert!(es.get("d").is_none());

    let ps = public(rsa(), Alg::Ps512).to_jwk();
    assert_eq!((ps["kty"].as_str(), ps["alg"].as_str(), ps["use"].as_str()), (Some("RSA"), Some("PS512"), Some("sig")));
    assert_eq!(ps["key_ops"], json!(["verify"]));
    assert_eq!(ps["e"], "AQAB");
    assert_eq!(unb64(ps["n"].as_str().unwrap()).len(), 512);

    let oaep = public(rsa(), Alg::RsaOaep256).to_jwk();
    assert_eq!((oaep["alg"].as_str(), oaep["use"].as_str()), (Some("RSA-OAEP-256"), Some("enc")));
    assert_eq!(oaep["key_ops"], json!(["wrapKey"]));
    // RFC 7638 covers only the required members: one RSA key, one thumbprint.
    assert_eq!(oaep["kid"], ps["kid"]);
    let expected = serde_json::to_vec(&json!({"e": ps["e"], "kty": "RSA", "n": ps["n"]})).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &expected);
    assert_eq!(ps["kid"], b64(digest.as_ref()).as_str());
}

#[test]
fn jwk_round_trip_for_every_alg() {
    for (key, alg) in [(ec(), Alg::Es256), (rsa(), Alg::Ps512), (rsa(), Alg::RsaOaep256)] {
        let pk = public(key, alg);
        let back = PublicKey::from_jwk(&pk.to_jwk_string()).unwrap();
        assert_eq!(back, pk);
        assert_eq!(back.alg(), alg);
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.thumbprint(), key.thumbprint());
    }
}

fn jwk_with(base: &Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = base.clone();
    f(v.as_object_mut().unwrap());
    v.to_string()
}

#[test]
fn jwk_import_infers_alg_and_keeps_foreign_kid() {
    let ec_jwk = public(ec(), Alg::Es256).to_jwk();
    let bare = jwk_with(&ec_jwk, |m| {
        for k in ["alg", "use", "key_ops", "kid"] {
            m.remove(k);
        }
    });
    let pk = PublicKey::from_jwk(&bare).unwrap();
    assert_eq!(pk.alg(), Alg::Es256);
    assert_eq!(pk.kid(), ec().thumbprint());

    let rsa_jwk = public(rsa(), Alg::Ps512).to_jwk();
    let by_use = jwk_with(&rsa_jwk, |m| {
        m.remove("alg");
        m.remove("key_ops");
        m.insert("use".into(), "enc".into());
    });
    assert_eq!(PublicKey::from_jwk(&by_use).unwrap().alg(), Alg::RsaOaep256);
    let by_ops = jwk_with(&rsa_jwk, |m| {
        m.remove("alg");
        m.remove("use");
        m.insert("key_ops".into(), json!(["wrapKey"]));
    });
    assert_eq!(PublicKey::from_jwk(&by_ops).unwrap().alg(), Alg::RsaOaep256);

    let fitko = jwk_with(&rsa_jwk, |m| {
        m.insert("kid".into(), "fitko-signing-key-2026".into());
        m.insert("x5c".into(), json!(["MIIB..."]));
    });
    let pk = PublicKey::from_jwk(&fitko).unwrap();
    assert_eq!(pk.kid(), "fitko-signing-key-2026");
    assert_eq!(pk.thumbprint(), rsa().thumbprint());
    assert_eq!(pk.to_jwk()["kid"], "fitko-signing-key-2026");
}

#[test]
fn jwk_import_is_strict() {
    let ec_jwk = public(ec(), Alg::Es256).to_jwk();
    let rsa_jwk = public(rsa(), Alg::Ps512).to_jwk();
    let key_invalid = [
        // private members
        jwk_with(&ec_jwk, |m| {
            m.insert("d".into(), b64(&[1; 32]).into());
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("p".into(), "AQAB".into());
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("qi".into(), "AQAB".into());
        }),
        // unknown kty, wrong curve, missing members
        jwk_with(&ec_jwk, |m| {
            m.insert("kty".into(), "OKP".into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("kty".into(), "oct".into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("crv".into(), "P-384".into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("crv".into(), "secp256k1".into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.remove("kty");
        }),
        jwk_with(&ec_jwk, |m| {
            m.remove("y");
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("x".into(), 5.into());
        }),
        // coordinates: short, padded, off-curve
        jwk_with(&ec_jwk, |m| {
            m.insert("x".into(), b64(&[1; 31]).into());
        }),
        jwk_with(&ec_jwk, |m| {
            let x = m["x"].as_str().unwrap().to_owned();
            m.insert("x".into(), format!("{x}=").into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("y".into(), b64(&[1; 32]).into());
        }),
        // RSA: weak modulus (RFC 7638 example, 2048 bits), leading zero, even e
        jwk_with(&rsa_jwk, |m| {
            m.insert("n".into(), b64(&[0xc1; 256]).into());
        }),
        jwk_with(&rsa_jwk, |m| {
            let mut n = unb64(m["n"].as_str().unwrap());
            n.insert(0, 0);
            m.insert("n".into(), b64(&n).into());
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("e".into(), b64(&[1, 0, 0]).into());
        }),
        jwk_with(&rsa_jwk, |m| {
            let mut n = m["n"].as_str().unwrap().to_owned();
            n.replace_range(10..11, "+");
            m.insert("n".into(), n.into());
        }),
        // use / key_ops contradicting alg, private ops
        jwk_with(&rsa_jwk, |m| {
            m.insert("use".into(), "enc".into());
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("key_ops".into(), json!(["sign"]));
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("key_ops".into(), json!(["verify", "verify"]));
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("key_ops".into(), json!([]));
        }),
        jwk_with(&rsa_jwk, |m| {
            m.insert("key_ops".into(), json!("verify"));
        }),
        // RSA without any hint of its purpose
        jwk_with(&rsa_jwk, |m| {
            m.remove("alg");
            m.remove("use");
            m.remove("key_ops");
        }),
        // kid
        jwk_with(&ec_jwk, |m| {
            m.insert("kid".into(), "".into());
        }),
        jwk_with(&ec_jwk, |m| {
            m.insert("kid".into(), 7.into());
        }),
        // not JSON / not an object / duplicates
        "not json".to_owned(),
        "[]".to_owned(),
        ec_jwk.to_string().replacen('{', r#"{"kty":"EC","#, 1),
    ];
    for (i, jwk) in key_invalid.iter().enumerate() {
        let r = PublicKey::from_jwk(jwk);
        assert_eq!(r.as_ref().err().map(sdx_crypto::Error::code), Some("keyInvalid"), "case {i}: {jwk} -> {r:?}");
    }
    let rfc7638_n = concat!(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY",
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f",
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    );
    let weak = json!({"kty": "RSA", "n": rfc7638_n, "e": "AQAB", "alg": "PS512"}).to_string();
    let err = PublicKey::from_jwk(&weak).unwrap_err();
    assert_eq!(err.code(), "keyInvalid");
    assert!(err.to_string().contains("2048 bits"), "{err}");

    for alg in ["none", "HS256", "RS256", "EdDSA"] {
        let jwk = jwk_with(&ec_jwk, |m| {
            m.insert("alg".into(), alg.into());
        });
        assert_code(PublicKey::from_jwk(&jwk), "algorithmNotAllowed");
    }
    let mismatched = jwk_with(&ec_jwk, |m| {
        m.insert("alg".into(), "PS512".into());
    });
    assert_code(PublicKey::from_jwk(&mismatched), "algorithmKeyMismatch");
    let mismatched = jwk_with(&rsa_jwk, |m| {
        m.insert("alg".into(), "ES256".into());
    });
    assert_code(PublicKey::from_jwk(&mismatched), "algorithmKeyMismatch");

    let padded = format!("{}{}", ec_jwk, " ".repeat(key::MAX_JWK_LEN));
    assert_code(PublicKey::from_jwk(&padded), "inputTooLarge");
}

#[test]
fn jwk_sets_hold_one_to_sixteen_keys_each_read_as_a_jwk() {
    let (a, b) = (ec().public_key(Alg::Es256).unwrap(), rsa().public_key(Alg::Ps512).unwrap());
    let jwk = |k: &PublicKey| serde_json::from_str::<Value>(&k.to_jwk_string()).unwrap();
    // A set, in order; a single JWK is a set of one.
    let set = json!({ "keys": [jwk(&a), jwk(&b)] }).to_string();
    assert_eq!(PublicKey::from_jwk_set(&set).unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(PublicKey::from_jwk_set(&a.to_jwk_string()).unwrap(), vec![a.clone()]);
    // Refused: empty, not an array, a member that is not a key, a private member, too many keys.
    let refused = |text: String, what: &str| {
        let e = PublicKey::from_jwk_set(&text).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    };
    refused(json!({ "keys": [] }).to_string(), "empty");
    refused(json!({ "keys": jwk(&a) }).to_string(), "not an array");
    refused(json!({ "keys": [jwk(&a), 5] }).to_string(), "key 2: not a JSON object");
    let mut private = jwk(&a);
    private["d"] = json!("AAAA");
    refused(json!({ "keys": [private] }).to_string(), "key 1");
    let many: Vec<Value> = (0..=key::MAX_JWK_SET_KEYS).map(|_| jwk(&a)).collect();
    assert!(matches!(
        PublicKey::from_jwk_set(&json!({ "keys": many }).to_string()),
        Err(sdx_crypto::Error::InputTooLarge { .. })
    ));
    refused("[1]".into(), "not a JSON object");
}
