//! Decode + validate + encode of a typical case (about 2 KB as JSON, three journal entries) in both formats.
//! Run: `cargo bench -p sdx-codec --bench codec`. Figures go to docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sdx_codec::{json, validate, xml};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let m = sdx_model::sample::typical_forward();
    let j = json::encode_compact(&m);
    let x = xml::encode(&m);
    eprintln!("typical case: {} bytes JSON, {} bytes XML", j.len(), x.len());
    let mut g = c.benchmark_group("typical_case");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_decode_validate", |b| b.iter(|| validate(black_box(j.as_bytes())).unwrap()));
    g.bench_function("xml_decode_validate", |b| b.iter(|| validate(black_box(x.as_bytes())).unwrap()));
    g.bench_function("json_decode_validate_encode", |b| {
        b.iter(|| json::encode_compact(&validate(black_box(j.as_bytes())).unwrap().1))
    });
    g.bench_function("xml_decode_validate_encode", |b| {
        b.iter(|| xml::encode(&validate(black_box(x.as_bytes())).unwrap().1))
    });
    g.bench_function("canonical", |b| b.iter(|| json::canonical(black_box(&m))));
    g.finish();
    // A smaller typical forward from the examples (about 2 KB compact JSON).
    let ex = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/20-ummeldung-forward.json")).unwrap();
    let m2 = validate(&ex).unwrap().1;
    let (j2, x2) = (json::encode_compact(&m2), xml::encode(&m2));
    eprintln!("example 20: {} bytes JSON, {} bytes XML", j2.len(), x2.len());
    let mut g = c.benchmark_group("example_20");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_decode_validate", |b| b.iter(|| validate(black_box(j2.as_bytes())).unwrap()));
    g.bench_function("xml_decode_validate", |b| b.iter(|| validate(black_box(x2.as_bytes())).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
