//! Fuzz target: arbitrary bytes to the JSON decoder and whole-document validation. Must never panic; whatever
//! decodes must survive JSON and XML round trips unchanged, and its canonical form (the codec's own RFC 8785
//! writer, what every signature is made over) must be the reference implementation's, byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_codec::{json, validate, xml};

fuzz_target!(|data: &[u8]| {
    let _ = validate(data);
    if let Ok(m) = json::decode(data) {
        let j = json::encode(&m);
        assert_eq!(json::decode(j.as_bytes()).expect("own JSON decodes"), m);
        let x = xml::encode(&m);
        assert_eq!(xml::decode(x.as_bytes()).expect("own XML decodes"), m);
        let reference = serde_json_canonicalizer::to_string(&m).expect("the model serializes");
        assert_eq!(json::canonical(&m), reference);
    }
    let _ = json::locate(data, "/body/forward/case/journal/0/text");
});
