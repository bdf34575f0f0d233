//! Lookup benchmark of the directory (issue 9): builds the synthetic federation (16 Länder × 400 Kreise × 50
//! services), signs it, measures loading (verify + decode + index) and then single-threaded resolution of random
//! (service, Gemeinde ARS, level) queries.
//!
//! ```console
//! $ cargo run --release -p sdx-directory --example lookups [LOOKUPS_PER_ROUND]
//! ```

use std::hint::black_box;
use std::time::Instant;

use sdx_crypto::{Alg, PrivateKey};
use sdx_directory::synthetic::{self, Shape};
use sdx_directory::{DirectoryHolder, ServiceId, Verifier, sign};
use sdx_model::{Ars, SupportLevel, Timestamp};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_round: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(1_000_000);
    let shape = Shape::FEDERATION;

    let t = Instant::now();
    let dir = synthetic::synthetic(shape);
    let canonical = dir.canonical();
    let key = PrivateKey::generate(Alg::Es256)?;
    let signed = sign(&dir, &key)?;
    println!(
        "directory: {} organisations, {} responsibilities, {:.1} MB canonical, {:.1} MB signed (built and signed in {:.2} s)",
        dir.organisations.len(),
        dir.responsibilities.len(),
        canonical.len() as f64 / 1e6,
        signed.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let holder = DirectoryHolder::new(Verifier::new().trust(key.public_key(Alg::Es256)?));
    let now = Timestamp::parse("2026-12-01T00:00:00Z")?;
    let t = Instant::now();
    holder.load_bytes(signed.as_bytes(), now)?;
    let load = t.elapsed();
    let current = holder.current().ok_or("not loaded")?;
    println!(
        "load (verify ES256 + decode + check + index {} assignments): {:.0} ms",
        current.index().assignments(),
        load.as_secs_f64() * 1e3
    );

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let levels =
        [SupportLevel::SecondLevel, SupportLevel::SecondLevel, SupportLevel::FirstLevel, SupportLevel::ThirdLevel];
    let queries: Vec<(ServiceId, Ars, SupportLevel)> = (0..per_round.min(1 << 20))
        .map(|_| {
            let ars =
                synthetic::gemeinde(rng.below(shape.lands), rng.below(shape.kreise_per_land), rng.below(1_000_000));
            (synthetic::service(rng.below(shape.services)), ars, levels[rng.below(4) as usize])
        })
        .collect();
    let texts: Vec<(String, String)> = queries
        .iter()
        .map(|(s, a, _)| {
            let s = match s {
                ServiceId::LeikaKey(k) => k.as_str(),
                ServiceId::OzgId(o) => o.as_str(),
            };
            (s.to_owned(), a.to_string())
        })
        .collect();

    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut found = 0usize;
        for i in 0..per_round {
            let (s, a, l) = &queries[i % queries.len()];
            let r = current.resolve(s, a, *l)?;
            found += black_box(r.responsible.rank as usize + r.considered.len());
        }
        black_box(found);
        rates.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "resolve (typed query, one thread): median {:.2} M lookups/s (min {:.2}, max {:.2}) over 5 rounds of {per_round}",
        rates[2] / 1e6,
        rates[0] / 1e6,
        rates[4] / 1e6
    );

    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut found = 0usize;
        for i in 0..per_round {
            let (s, a) = &texts[i % texts.len()];
            let l = queries[i % queries.len()].2;
            let r = current.resolve(&ServiceId::parse(s)?, &Ars::parse(a.as_str())?, l)?;
            found += black_box(r.responsible.rank as usize);
        }
        black_box(found);
        rates.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "parse + resolve (from text, one thread): median {:.2} M lookups/s (min {:.2}, max {:.2})",
        rates[2] / 1e6,
        rates[0] / 1e6,
        rates[4] / 1e6
    );
    Ok(())
}
