//! Fuzz target: arbitrary bytes as what a peer or a hub sends to the peer endpoint before any store is touched —
//! a batch request body (`peer_api::BatchRequest::parse`), an envelope (`envelope::is_envelope`, `peek`, and
//! `open` against a fixed ES256 key) for the body and for each message of a batch. Must never panic; an envelope
//! that opens must read the same unverified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_crypto::{Alg, PrivateKey, PublicKey};
use sdx_model::OrgKey;
use sdx_node::{envelope, peer_api::BatchRequest};
use std::sync::LazyLock;

static KEY: LazyLock<(OrgKey, PublicKey)> = LazyLock::new(|| {
    let ec = PrivateKey::from_pkcs8_pem(include_str!("../keys/ec-p256.pem")).expect("EC test key");
    (OrgKey::parse("psw:01003110").expect("org key"), ec.public_key(Alg::Es256).expect("ES256"))
});

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = BatchRequest::parse(data) {
        for m in batch.messages.iter().take(4) {
            look_at(m.as_bytes());
        }
    }
    look_at(data);
});

fn look_at(wire: &[u8]) {
    let (author, key) = &*KEY;
    let _ = envelope::is_envelope(wire);
    let peeked = envelope::peek(wire);
    if let Ok((route, _sealed)) = envelope::open(wire, author, key) {
        assert_eq!(peeked.expect("an envelope that opens can be read unverified"), route);
    }
}
