//! Resolution: who is responsible for a service in a region at a support level, and why.
//!
//! At load time every (service, region, level) assignment of the directory goes into one hash table keyed by
//! (service number, level, ARS prefix as a number): a lookup computes the prefixes of the asked ARS (12, 9, 5, 3
//! and 2 digits, then nationwide) and probes at most six keys. No strings are built and nothing is allocated
//! beyond the result's two small vectors; the explanation is only written when [`Resolution`] is displayed.
//!
//! Rules (see `docs/routing.md`): the most specific region that has any organisation for the service at the level
//! wins; its organisations are the candidates, by `rank` (lower first), ties in document order; organisations of
//! less specific regions are reported as *considered*, never as candidates.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use sdx_model::{Ars, Coded, OrgKey, SupportLevel};

use crate::document::{Directory, Organisation, Region, RegionLevel, ServiceId};
use crate::error::{Error, Result};

/// A small, fast hasher for the index's keys (the Fx hash of rustc). The keys in the tables come from the signed
/// directory, so there is no attacker choosing them to collide.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(FX_SEED);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = BuildHasherDefault<FxHasher>;

/// A region as a number: the prefix's digits as an integer, times 16, plus its length (0 for nationwide), so that
/// `01` and `001` differ.
fn region_code(digits: &str) -> u64 {
    let mut v: u64 = 0;
    for b in digits.bytes() {
        v = v * 10 + u64::from(b.wrapping_sub(b'0'));
    }
    v * 16 + digits.len() as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    service: u32,
    level: u8,
    region: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    organisation: u32,
    responsibility: u32,
    region: u32,
    rank: u32,
}

fn level_index(l: SupportLevel) -> u8 {
    match l {
        SupportLevel::FirstLevel => 0,
        SupportLevel::SecondLevel => 1,
        SupportLevel::ThirdLevel => 2,
    }
}

/// Lengths of the meaningful ARS prefixes, most specific first.
const PREFIX_LENGTHS: [usize; 5] = [12, 9, 5, 3, 2];

/// The lookup structures of one directory, built once when it is loaded.
#[derive(Clone, Default)]
pub struct Index {
    services: HashMap<ServiceId, u32, Fx>,
    organisations: HashMap<OrgKey, u32, Fx>,
    table: HashMap<Key, Vec<Slot>, Fx>,
    assignments: usize,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("services", &self.services.len())
            .field("organisations", &self.organisations.len())
            .field("keys", &self.table.len())
            .field("assignments", &self.assignments)
            .finish()
    }
}

impl Index {
    /// Build the index of a checked directory.
    ///
    /// # Errors
    /// [`Error::DuplicateResponsibility`] if an assignment (service, region, level, organisation) appears twice;
    /// [`Error::UnknownOrganisation`] if a responsibility names an organisation that is not listed (cannot happen
    /// after [`Directory::check`]); [`Error::Malformed`] if the directory is larger than the index can address.
    pub fn build(dir: &Directory) -> Result<Index> {
        let too_many = || Error::malformed("", "more than 2^32 organisations, responsibilities or regions");
        let mut organisations: HashMap<OrgKey, u32, Fx> = HashMap::default();
        for (i, o) in dir.organisations.iter().enumerate() {
            organisations.insert(o.key.clone(), u32::try_from(i).map_err(|_| too_many())?);
        }
        let mut services: HashMap<ServiceId, u32, Fx> = HashMap::default();
        let mut table: HashMap<Key, Vec<Slot>, Fx> = HashMap::default();
        let mut assignments = 0usize;
        for (ri, r) in dir.responsibilities.iter().enumerate() {
            let p = format!("/responsibilities/{ri}");
            let Some(&org) = organisations.get(&r.organisation) else {
                return Err(Error::UnknownOrganisation {
                    key: r.organisation.clone(),
                    pointer: format!("{p}/organisation"),
                });
            };
            let responsibility = u32::try_from(ri).map_err(|_| too_many())?;
            for s in &r.services {
                let next = u32::try_from(services.len()).map_err(|_| too_many())?;
                let service = *services.entry(s.clone()).or_insert(next);
                for (gi, g) in r.regions.iter().enumerate() {
                    let region = match g {
                        Region::Nationwide => 0,
                        Region::Prefix(a) => region_code(a.as_str()),
                    };
                    let key = Key { service, level: level_index(r.level), region };
                    let slots = table.entry(key).or_default();
                    if slots.iter().any(|s| s.organisation == org) {
                        return Err(Error::DuplicateResponsibility {
                            service: s.clone(),
                            region: g.to_string(),
                            level: r.level,
                            organisation: r.organisation.clone(),
                            pointer: p,
                        });
                    }
                    let slot = Slot {
                        organisation: org,
                        responsibility,
                        region: u32::try_from(gi).map_err(|_| too_many())?,
                        rank: r.rank,
                    };
                    // Keep each list ordered by rank, then document order (stable insertion after equal ranks).
                    let at = slots.partition_point(|s| s.rank <= r.rank);
                    slots.insert(at, slot);
                    assignments += 1;
                }
            }
        }
        Ok(Index { services, organisations, table, assignments })
    }

    /// Number of (service, region, level, organisation) assignments.
    #[must_use]
    pub fn assignments(&self) -> usize {
        self.assignments
    }

    /// Number of distinct services.
    #[must_use]
    pub fn services(&self) -> usize {
        self.services.len()
    }

    /// Position of the organisation in [`Directory::organisations`].
    #[must_use]
    pub fn organisation_position(&self, key: &OrgKey) -> Option<usize> {
        self.organisations.get(key).map(|&i| i as usize)
    }

    /// Who is responsible for `service` in `region` at `level` (see the module docs for the rules).
    ///
    /// # Errors
    /// [`Error::UnknownService`] if the directory has no responsibility for the service at all;
    /// [`Error::NoResponsibility`] if it has, but not for this region and level (the error's hint names the
    /// levels that do have someone there).
    pub fn resolve<'d>(
        &self,
        dir: &'d Directory,
        service: &ServiceId,
        region: &Ars,
        level: SupportLevel,
    ) -> Result<Resolution<'d>> {
        let Some(&svc) = self.services.get(service) else {
            return Err(Error::UnknownService { service: service.clone() });
        };
        let mut candidates: Vec<Candidate<'d>> = Vec::new();
        let mut considered = Vec::new();
        self.probe(dir, svc, level, region, |slots, dir| {
            let list = if candidates.is_empty() { &mut candidates } else { &mut considered };
            list.extend(slots.iter().filter_map(|s| candidate(dir, *s)));
        });
        let mut found = candidates.into_iter();
        let Some(responsible) = found.next() else {
            let others: Vec<&str> = SupportLevel::VALUES
                .iter()
                .filter(|l| **l != level)
                .filter(|l| {
                    let mut any = false;
                    self.probe(dir, svc, **l, region, |_, _| any = true);
                    any
                })
                .map(|l| l.code())
                .collect();
            let hint =
                if others.is_empty() { String::new() } else { format!(" (there is at {})", others.join(" and ")) };
            return Err(Error::NoResponsibility { service: service.clone(), region: region.clone(), level, hint });
        };
        Ok(Resolution {
            service: service.clone(),
            region: region.clone(),
            level,
            responsible,
            alternatives: found.collect(),
            considered,
        })
    }

    /// Call `f` with the non-empty slot lists of every prefix of `region`, most specific first.
    fn probe<'d>(
        &self,
        dir: &'d Directory,
        service: u32,
        level: SupportLevel,
        region: &Ars,
        mut f: impl FnMut(&[Slot], &'d Directory),
    ) {
        let digits = region.as_str();
        let level = level_index(level);
        let codes = PREFIX_LENGTHS
            .iter()
            .filter(|&&n| n <= digits.len())
            .map(|&n| region_code(&digits[..n]))
            .chain(std::iter::once(0));
        for code in codes {
            if let Some(slots) = self.table.get(&Key { service, level, region: code })
                && !slots.is_empty()
            {
                f(slots, dir);
            }
        }
    }
}

fn candidate(dir: &Directory, s: Slot) -> Option<Candidate<'_>> {
    let responsibility = s.responsibility as usize;
    let r = dir.responsibilities.get(responsibility)?;
    Some(Candidate {
        organisation: dir.organisations.get(s.organisation as usize)?,
        region: r.regions.get(s.region as usize)?,
        rank: s.rank,
        responsibility,
    })
}

/// One organisation that a resolution found, and through which entry of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'d> {
    /// The organisation.
    pub organisation: &'d Organisation,
    /// The region of the responsibility that matched (an ARS prefix of the asked region, or nationwide).
    pub region: &'d Region,
    /// Its rank (lower first).
    pub rank: u32,
    /// Position of the responsibility in [`Directory::responsibilities`] (JSON pointer `/responsibilities/N`).
    pub responsibility: usize,
}

impl Candidate<'_> {
    /// How specific the matched region is.
    #[must_use]
    pub fn region_level(&self) -> RegionLevel {
        self.region.level()
    }
}

/// The answer to "who is responsible": the responsible organisation, the further candidates in order, and what
/// else was considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution<'d> {
    /// The service asked for.
    pub service: ServiceId,
    /// The region asked for.
    pub region: Ars,
    /// The support level asked for.
    pub level: SupportLevel,
    /// The first candidate of the most specific matching region: the responsible organisation.
    pub responsible: Candidate<'d>,
    /// Further organisations of the same region, by rank then document order: try them in this order when the
    /// responsible one cannot be reached.
    pub alternatives: Vec<Candidate<'d>>,
    /// Organisations of less specific regions that also match but lost to the more specific one, most specific
    /// first. Not candidates.
    pub considered: Vec<Candidate<'d>>,
}

impl<'d> Resolution<'d> {
    /// Every candidate in order: the responsible organisation, then the alternatives.
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate<'d>> {
        std::iter::once(&self.responsible).chain(&self.alternatives)
    }
}

fn describe_region(r: &Region) -> String {
    match r {
        Region::Nationwide => "nationwide".into(),
        Region::Prefix(a) => format!("{a} ({})", r.level()),
    }
}

impl fmt::Display for Resolution<'_> {
    /// The explanation, e.g. `service LeiKa 99… in region 010600045045 at secondLevel: matched prefix 01060
    /// (Kreis) → psw:01060001 (Kreis Segeberg)`, then the further candidates and what else was considered.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = &self.responsible;
        write!(
            f,
            "service {} in region {} at {}: matched {} → {} ({})",
            self.service,
            self.region,
            self.level,
            match first.region {
                Region::Nationwide => "the nationwide entry".to_owned(),
                Region::Prefix(_) => format!("prefix {}", describe_region(first.region)),
            },
            first.organisation.key,
            first.organisation.name,
        )?;
        if first.rank != 0 || !self.alternatives.is_empty() {
            write!(f, ", rank {}", first.rank)?;
        }
        write!(f, ", /responsibilities/{}", first.responsibility)?;
        for c in &self.alternatives {
            write!(f, "\n  next candidate: {} ({}), rank {}", c.organisation.key, c.organisation.name, c.rank)?;
        }
        for c in &self.considered {
            write!(
                f,
                "\n  also considered: {} → {} ({}), less specific",
                describe_region(c.region),
                c.organisation.key,
                c.organisation.name
            )?;
        }
        Ok(())
    }
}
