//! Criterion benchmarks of the JOSE operations SDX performs per message:
//! ES256 and PS512 sign/verify and RSA-OAEP-256 + A256GCM encrypt/decrypt,
//! on a 2 KB payload (a typical ticket event).
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use sdx_crypto::{Alg, PrivateKey, jwe, jws};
use std::hint::black_box;

fn payload() -> Vec<u8> {
    (0..2048u32).map(|i| b"abcdefghijklmnopqrstuvwxyz{}\":,0123456789"[(i % 41) as usize]).collect()
}

fn es256(c: &mut Criterion) {
    let key = PrivateKey::generate(Alg::Es256).expect("P-256 key");
    let public = key.public_key(Alg::Es256).expect("public key");
    let data = payload();
    let token = jws::sign(&data, &key, Alg::Es256, Some("application/json")).expect("sign");
    c.bench_function("es256_sign_2k", |b| {
        b.iter(|| jws::sign(black_box(&data), &key, Alg::Es256, Some("application/json")))
    });
    c.bench_function("es256_verify_2k", |b| b.iter(|| jws::verify(black_box(&token), &public)));
    c.bench_function("es256_sign_verify_2k", |b| {
        b.iter(|| {
            let t = jws::sign(black_box(&data), &key, Alg::Es256, None).expect("sign");
            jws::verify(&t, &public).expect("verify")
        })
    });
}

fn ps512(c: &mut Criterion) {
    let key = PrivateKey::generate(Alg::Ps512).expect("RSA key");
    let public = key.public_key(Alg::Ps512).expect("public key");
    let data = payload();
    let token = jws::sign(&data, &key, Alg::Ps512, None).expect("sign");
    c.bench_function("ps512_sign_2k", |b| b.iter(|| jws::sign(black_box(&data), &key, Alg::Ps512, None)));
    c.bench_function("ps512_verify_2k", |b| b.iter(|| jws::verify(black_box(&token), &public)));
}

fn rsa_oaep_a256gcm(c: &mut Criterion) {
    let key = PrivateKey::generate(Alg::RsaOaep256).expect("RSA key");
    let public = key.public_key(Alg::RsaOaep256).expect("public key");
    let data = payload();
    let token = jwe::encrypt(&data, &public, Some("application/json")).expect("encrypt");
    c.bench_function("jwe_encrypt_2k", |b| {
        b.iter(|| jwe::encrypt(black_box(&data), &public, Some("application/json")))
    });
    c.bench_function("jwe_decrypt_2k", |b| b.iter(|| jwe::decrypt(black_box(&token), &key)));
}

criterion_group!(benches, es256, ps512, rsa_oaep_a256gcm);
criterion_main!(benches);
