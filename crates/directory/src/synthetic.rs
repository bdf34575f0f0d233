//! A synthetic directory of realistic shape and size, for the lookup benchmark (`examples/lookups.rs`) and
//! tests: Länder × Kreise × services, with a 1st-level and a 2nd-level organisation per Land, a 2nd-level
//! organisation per Kreis that overrides its Land, and a nationwide 3rd-level vendor.

use sdx_model::{Ars, LeikaKey, OrgKey, Sha256Hex, SupportLevel, Timestamp};

use crate::document::{
    Capabilities, Directory, Endpoint, NodeUrl, Organisation, Region, Responsibility, Role, SCHEMA_VERSION, ServiceId,
    Tls,
};

/// The size of a synthetic directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Länder (at most 99; more are cut to 99).
    pub lands: u32,
    /// Kreise per Land (at most 1000; more are cut to 1000), each with its own organisation.
    pub kreise_per_land: u32,
    /// Services, every one offered everywhere.
    pub services: u32,
}

impl Shape {
    /// 16 Länder × 400 Kreise × 50 services: 6,400 Kreis organisations, 320,000 Kreis assignments.
    pub const FEDERATION: Shape = Shape { lands: 16, kreise_per_land: 400, services: 50 };
}

/// The LeiKa key of synthetic service `i`.
#[must_use]
pub fn service(i: u32) -> ServiceId {
    ServiceId::LeikaKey(key(LeikaKey::parse(format!("99{:012}", 100_000_000 + u64::from(i) * 1000))))
}

/// The 5-digit Kreis prefix of Kreis `k` of Land `l` (both from 0): Land, Regierungsbezirk `k / 100`, Kreis
/// `k % 100`.
#[must_use]
pub fn kreis_prefix(l: u32, k: u32) -> String {
    format!("{:02}{}{:02}", l % 99 + 1, (k / 100) % 10, k % 100)
}

/// A 12-digit ARS of a Gemeinde in Kreis `k` of Land `l`; `n` picks the Gemeinde.
#[must_use]
pub fn gemeinde(l: u32, k: u32, n: u32) -> Ars {
    key(Ars::parse(format!("{}{:04}{:03}", kreis_prefix(l, k), n % 10_000, n % 1000)))
}

fn key<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    // Every value above is built in the form its type requires.
    r.unwrap_or_else(|e| unreachable!("synthetic values are valid: {e:?}"))
}

fn org(key_: &str, name: String, roles: Vec<Role>, url: Option<String>, n: u64) -> Organisation {
    Organisation {
        key: key(OrgKey::parse(key_)),
        name,
        roles,
        endpoint: match url {
            Some(u) => Endpoint::Url(key(NodeUrl::parse(u))),
            None => Endpoint::ViaHub(key(OrgKey::parse("hub:bund"))),
        },
        tls: Tls { certificate_sha256: vec![key(Sha256Hex::parse(format!("{n:064x}")))], certificates: Vec::new() },
        signing_keys: Vec::new(),
        encryption_keys: Vec::new(),
        message_types: None,
        capabilities: Some(Capabilities { max_attachment_bytes: Some(10 * 1024 * 1024), ..Capabilities::default() }),
    }
}

/// Build the synthetic directory (version 1, valid 2026-01-01 to 2100-01-01, issuer `dir:sdx`).
#[must_use]
pub fn synthetic(shape: Shape) -> Directory {
    let shape = Shape { lands: shape.lands.min(99), kreise_per_land: shape.kreise_per_land.min(1000), ..shape };
    let all: Vec<ServiceId> = (0..shape.services).map(service).collect();
    let mut organisations = vec![
        org("hub:bund", "Bundes-Hub".into(), vec![Role::Hub], Some("https://hub.sdx.example/sdx/v1".into()), 1),
        org(
            "vnd:000001",
            "Hersteller EfA".into(),
            vec![Role::Vendor, Role::Member],
            Some("https://sdx.vendor.example/sdx/v1".into()),
            2,
        ),
    ];
    let mut responsibilities = vec![Responsibility {
        services: all.clone(),
        regions: vec![Region::Nationwide],
        level: SupportLevel::ThirdLevel,
        organisation: key(OrgKey::parse("vnd:000001")),
        rank: 0,
    }];
    let mut n = 10u64;
    for l in 0..shape.lands {
        let land = key(Ars::parse(format!("{:02}", l % 99 + 1)));
        for (suffix, level) in [("115", SupportLevel::FirstLevel), ("002", SupportLevel::SecondLevel)] {
            let k = format!("psw:{:02}000{suffix}", l % 99 + 1);
            n += 1;
            organisations.push(org(
                &k,
                format!("Land {:02} {level}", l % 99 + 1),
                vec![Role::Member],
                Some(format!("https://sdx.land{:02}.example/{suffix}", l % 99 + 1)),
                n,
            ));
            responsibilities.push(Responsibility {
                services: all.clone(),
                regions: vec![Region::Prefix(land.clone())],
                level,
                organisation: key(OrgKey::parse(k)),
                rank: 0,
            });
        }
        for k in 0..shape.kreise_per_land {
            let prefix = kreis_prefix(l, k);
            let ok = format!("kom:{prefix}");
            n += 1;
            // Every fourth Kreis has no node of its own and is reached via the hub.
            let url = (k % 4 != 0).then(|| format!("https://sdx.kreis{prefix}.example/sdx/v1"));
            organisations.push(org(&ok, format!("Kreis {prefix}"), vec![Role::Member], url, n));
            responsibilities.push(Responsibility {
                services: all.clone(),
                regions: vec![Region::Prefix(key(Ars::parse(prefix)))],
                level: SupportLevel::SecondLevel,
                organisation: key(OrgKey::parse(ok)),
                rank: 0,
            });
        }
    }
    Directory {
        schema_version: SCHEMA_VERSION.into(),
        version: 1,
        issued_at: key(Timestamp::parse("2026-01-01T00:00:00Z")),
        expires_at: key(Timestamp::parse("2100-01-01T00:00:00Z")),
        issuer: key(OrgKey::parse("dir:sdx")),
        organisations,
        responsibilities,
    }
}
