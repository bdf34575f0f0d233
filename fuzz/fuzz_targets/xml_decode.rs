//! Fuzz target: arbitrary bytes to the XML decoder and whole-document validation. Must never panic, expand an
//! entity or read a file; whatever decodes must survive XML → JSON → XML unchanged, and its canonical form must be
//! the reference implementation's (RFC 8785), byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_codec::{json, validate, xml};

fuzz_target!(|data: &[u8]| {
    let _ = validate(data);
    if let Ok(m) = xml::decode(data) {
        let x = xml::encode(&m);
        assert_eq!(xml::decode(x.as_bytes()).expect("own XML decodes"), m);
        let j = json::encode(&m);
        assert_eq!(json::decode(j.as_bytes()).expect("own JSON decodes"), m);
        let reference = serde_json_canonicalizer::to_string(&m).expect("the model serializes");
        assert_eq!(json::canonical(&m), reference);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xml::locate(text, "/body/forward/case/journal/0/text");
    }
});
