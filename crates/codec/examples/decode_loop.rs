//! Decode + validate the typical case N times (default 2000), or write its canonical form N times, for
//! instruction counts that do not depend on machine load:
//! `valgrind --tool=callgrind target/release/examples/decode_loop 2000 [json|xml|canonical]`.

fn main() {
    let m = sdx_model::sample::typical_forward();
    let format = std::env::args().nth(2).unwrap_or_else(|| "xml".into());
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    if format == "canonical" {
        for _ in 0..n {
            std::hint::black_box(sdx_codec::json::canonical(std::hint::black_box(&m)));
        }
        return;
    }
    let doc = if format == "json" { sdx_codec::json::encode_compact(&m) } else { sdx_codec::xml::encode(&m) };
    for _ in 0..n {
        std::hint::black_box(sdx_codec::validate(std::hint::black_box(doc.as_bytes())).expect("valid"));
    }
}
