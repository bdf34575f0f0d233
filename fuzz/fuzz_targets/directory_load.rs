//! Fuzz target: arbitrary bytes as a directory of responsibilities (`LoadedDirectory::unverified`: bare JSON or
//! an unverified JWS; decoding, the document's checks, building the index) and lookups in what loads. Must never
//! panic; whatever loads must load again from its own canonical form and from its pretty JSON, with the same
//! digest, and every responsibility's own service and region must resolve without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sdx_directory::{LoadedDirectory, Region};
use sdx_model::{Ars, SupportLevel};

fuzz_target!(|data: &[u8]| {
    let Ok(d) = LoadedDirectory::unverified(data) else { return };
    let again = LoadedDirectory::unverified(&d.directory().canonical()).expect("own canonical form loads");
    assert_eq!(again.digest(), d.digest());
    assert_eq!(again.directory(), d.directory());
    let pretty = LoadedDirectory::unverified(d.directory().to_json_pretty().as_bytes()).expect("own JSON loads");
    assert_eq!(pretty.digest(), d.digest());
    for r in d.directory().responsibilities.iter().take(8) {
        let region = match r.regions.first() {
            Some(Region::Prefix(p)) => format!("{:0<12}", p.as_str()),
            _ => "010600045045".to_owned(),
        };
        let Ok(ars) = Ars::parse(&region) else { continue };
        for service in r.services.iter().take(2) {
            for level in [SupportLevel::FirstLevel, SupportLevel::SecondLevel, SupportLevel::ThirdLevel] {
                let _ = d.resolve(service, &ars, level);
            }
        }
    }
});
