//! `sdx directory resolve|sign|verify|diff|schema`: the signed directory of responsibilities (see
//! `docs/routing.md`).
//!
//! Exit codes as everywhere: 0 done / valid, 1 a directory that is refused or a lookup that finds nobody, 2 usage
//! and I/O.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use sdx_crypto::{PrivateKey, PublicKey};
use sdx_directory::{
    Candidate, Diff, Directory, Endpoint, Error, LoadedDirectory, Resolution, ServiceId, Verifier, schema, sign,
};
use sdx_model::{Ars, Coded, SupportLevel, Timestamp};

use crate::Outcome;
use crate::io::{self, Input};

/// The subcommands of `sdx directory`.
#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Print the organisation responsible for a service in a region at a support level, and why.
    /// Exit 1 if nobody is (or the directory is refused).
    Resolve {
        /// The directory: signed (JWS) or, without --authority, also a bare JSON document.
        #[arg(long)]
        directory: PathBuf,
        /// The service: a LeiKa key (14 digits starting with 99) or an OZG id; `leika:` or `ozg:` to be explicit.
        #[arg(long, value_parser = parse_service)]
        service: ServiceId,
        /// The region: an ARS (12 digits) or one of its prefixes (2, 3, 5, 9 digits).
        #[arg(long)]
        region: Ars,
        /// Support level: firstLevel, secondLevel, thirdLevel (or 1, 2, 3).
        #[arg(long, value_parser = parse_level, default_value = "secondLevel")]
        level: SupportLevel,
        /// Verify the directory with this authority key (JWK or JWK set; repeat for more) before using it.
        /// Without it the directory is read unverified (a warning says so).
        #[arg(long, value_name = "KEYFILE")]
        authority: Vec<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign a directory document as its authority: JWS (ES256 or PS512) over its RFC 8785 canonical form.
    /// Exit 1 if the document is not a valid directory.
    Sign {
        /// The authority's PKCS#8 PEM private key (EC P-256 signs ES256, RSA signs PS512).
        #[arg(long)]
        key: PathBuf,
        /// The directory document (JSON; `-` for standard input).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Where to write the signed directory (compact JWS).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify a signed directory as a node would: signature of a trusted authority, canonical form, content,
    /// validity period, version. Exit 0 if valid, 1 if refused.
    Verify {
        /// The authority's public key: JWK or JWK set (`{"keys": [...]}`); repeat for more.
        #[arg(long, value_name = "KEYFILE", required = true)]
        authority: Vec<PathBuf>,
        /// The signed directory (`-` for standard input).
        file: PathBuf,
        /// Refuse a version below this one (the version a node holds).
        #[arg(long, value_name = "VERSION")]
        not_older_than: Option<u64>,
    },
    /// What changed between two directories (signed or not; signatures are not checked).
    Diff {
        /// The old directory.
        old: PathBuf,
        /// The new directory.
        new: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the directory document (docs/schemas/directory.schema.json).
    Schema,
}

fn parse_service(s: &str) -> std::result::Result<ServiceId, String> {
    ServiceId::parse(s).map_err(|e| e.to_string())
}

fn parse_level(s: &str) -> std::result::Result<SupportLevel, String> {
    match s {
        "1" | "first" => Ok(SupportLevel::FirstLevel),
        "2" | "second" => Ok(SupportLevel::SecondLevel),
        "3" | "third" => Ok(SupportLevel::ThirdLevel),
        _ => <SupportLevel as Coded>::parse(s).map_err(|e| e.to_string()),
    }
}

/// Run one `sdx directory` subcommand.
pub fn run(command: DirectoryCommand) -> Result<Outcome> {
    match command {
        DirectoryCommand::Resolve { directory, service, region, level, authority, json } => {
            resolve(&directory, &service, &region, level, &authority, json)
        }
        DirectoryCommand::Sign { key, input, out } => sign_file(&key, &input, &out),
        DirectoryCommand::Verify { authority, file, not_older_than } => verify(&authority, &file, not_older_than),
        DirectoryCommand::Diff { old, new, json } => diff(&old, &new, json),
        DirectoryCommand::Schema => io::stdout(schema::json_schema_text().as_bytes()).map(|()| Outcome::Valid),
    }
}

/// Read a directory file (signed or not) within the size limit; `None` (reported) if it is larger.
fn read(path: &Path) -> Result<Option<Vec<u8>>> {
    match io::read(path, sdx_directory::MAX_DIRECTORY_BYTES)? {
        Input::Bytes(b) => Ok(Some(b)),
        Input::TooLarge => {
            let e = Error::TooLarge { limit: sdx_directory::MAX_DIRECTORY_BYTES };
            refused(path, &e);
            Ok(None)
        }
    }
}

fn refused(path: &Path, e: &Error) {
    eprintln!("{}: error[{}]: {e}", io::name(path), e.code());
}

/// The authority keys of `--authority` files: each a JWK or a JWK set.
fn authorities(files: &[PathBuf]) -> Result<Verifier> {
    let mut v = Verifier::new();
    for f in files {
        let text = io::read_key(f)?;
        let keys = PublicKey::from_jwk_set(&text)
            .with_context(|| format!("{} is not a usable public JWK or JWK set", f.display()))?;
        for key in keys {
            if !key.alg().is_signature() {
                bail!("{} holds a {} key; a directory authority signs with ES256 or PS512", f.display(), key.alg());
            }
            v = v.trust(key);
        }
    }
    Ok(v)
}

fn load(path: &Path, authority: &[PathBuf]) -> Result<Option<LoadedDirectory>> {
    let Some(bytes) = read(path)? else { return Ok(None) };
    let loaded = if authority.is_empty() {
        eprintln!("{}: warning: signature and validity not checked (no --authority)", io::name(path));
        LoadedDirectory::unverified(&bytes)
    } else {
        authorities(authority)?.verify(&bytes, Timestamp::now())
    };
    match loaded {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.is_io() => Err(e.into()),
        Err(e) => {
            refused(path, &e);
            Ok(None)
        }
    }
}

/// `sdx directory resolve`
fn resolve(
    path: &Path,
    service: &ServiceId,
    region: &Ars,
    level: SupportLevel,
    authority: &[PathBuf],
    json: bool,
) -> Result<Outcome> {
    let Some(dir) = load(path, authority)? else { return Ok(Outcome::Invalid) };
    let r = match dir.resolve(service, region, level) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sdx: error[{}]: {e}", e.code());
            return Ok(Outcome::Invalid);
        }
    };
    if json {
        let mut v = resolution_json(&dir, &r);
        v["directoryVersion"] = json!(dir.version());
        v["verified"] = json!(dir.signer().is_some());
        io::stdout(format!("{v}\n").as_bytes())?;
    } else {
        let org = r.responsible.organisation;
        let mut out = format!("{}\t{}\n", org.key, org.name);
        if let Some(p) = dir.peer(&org.key) {
            match p.via_hub {
                Some(h) => out.push_str(&format!("  endpoint: {} (via hub {})\n", p.url, h.key)),
                None => out.push_str(&format!("  endpoint: {}\n", p.url)),
            }
        }
        out.push_str(&format!("why: {r}\n"));
        io::stdout(out.as_bytes())?;
    }
    Ok(Outcome::Valid)
}

fn candidate_json(dir: &LoadedDirectory, c: &Candidate<'_>) -> Value {
    let o = c.organisation;
    let peer = dir.peer(&o.key);
    json!({
        "organisation": o.key,
        "name": o.name,
        "endpoint": o.endpoint,
        "url": peer.map(|p| p.url.as_str()),
        "viaHub": match &o.endpoint { Endpoint::ViaHub(h) => Some(h), Endpoint::Url(_) => None },
        "region": c.region,
        "regionLevel": c.region_level(),
        "rank": c.rank,
        "responsibility": format!("/responsibilities/{}", c.responsibility),
    })
}

fn resolution_json(dir: &LoadedDirectory, r: &Resolution<'_>) -> Value {
    json!({
        "service": r.service,
        "region": r.region,
        "level": r.level,
        "responsible": candidate_json(dir, &r.responsible),
        "alternatives": r.alternatives.iter().map(|c| candidate_json(dir, c)).collect::<Vec<_>>(),
        "considered": r.considered.iter().map(|c| candidate_json(dir, c)).collect::<Vec<_>>(),
        "explanation": r.to_string(),
    })
}

/// `sdx directory sign --key KEY --in FILE --out FILE`
fn sign_file(key: &Path, input: &Path, out: &Path) -> Result<Outcome> {
    let pem = io::read_key(key)?;
    let key = PrivateKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is not a usable PKCS#8 private key", key.display()))?;
    let Some(bytes) = read(input)? else { return Ok(Outcome::Invalid) };
    let signed = Directory::from_json(&bytes).and_then(|d| sign(&d, &key).map(|s| (d, s)));
    let (dir, jws) = match signed {
        Ok(x) => x,
        Err(Error::Signing(e)) => return Err(anyhow::Error::new(e).context("signing failed")),
        Err(e) => {
            refused(input, &e);
            eprintln!("{}: not signed: the directory is invalid", io::name(input));
            return Ok(Outcome::Invalid);
        }
    };
    std::fs::write(out, format!("{jws}\n")).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!(
        "signed directory version {} of {} ({}, kid {}): {} organisations, {} responsibilities, valid {} to {} → {}",
        dir.version,
        dir.issuer,
        key.signing_alg(),
        key.kid(),
        dir.organisations.len(),
        dir.responsibilities.len(),
        dir.issued_at,
        dir.expires_at,
        out.display()
    );
    if dir.expires_at <= Timestamp::now() {
        eprintln!("warning: the directory has already expired ({}); nodes will refuse it", dir.expires_at);
    }
    Ok(Outcome::Valid)
}

/// `sdx directory verify --authority KEY FILE [--not-older-than V]`
fn verify(authority: &[PathBuf], file: &Path, not_older_than: Option<u64>) -> Result<Outcome> {
    let mut verifier = authorities(authority)?;
    if let Some(v) = not_older_than {
        verifier = verifier.with_minimum_version(v);
    }
    let Some(bytes) = read(file)? else { return Ok(Outcome::Invalid) };
    match verifier.verify(&bytes, Timestamp::now()) {
        Ok(l) => {
            let d = l.directory();
            let (alg, kid) = l.signer().map_or(("?", ""), |s| (s.alg.as_str(), s.kid.as_str()));
            eprintln!(
                "{}: valid: directory version {} of {}, issued {}, expires {}, signed {alg} (kid {kid}); \
                 {} organisations, {} responsibilities ({} assignments); sha256 {}",
                io::name(file),
                d.version,
                d.issuer,
                d.issued_at,
                d.expires_at,
                d.organisations.len(),
                d.responsibilities.len(),
                l.index().assignments(),
                l.digest()
            );
            Ok(Outcome::Valid)
        }
        Err(e) if e.is_io() => Err(e.into()),
        Err(e) => {
            refused(file, &e);
            Ok(Outcome::Invalid)
        }
    }
}

/// `sdx directory diff OLD NEW [--json]`
fn diff(old: &Path, new: &Path, json: bool) -> Result<Outcome> {
    let mut dirs = Vec::new();
    for p in [old, new] {
        let Some(bytes) = read(p)? else { return Ok(Outcome::Invalid) };
        match LoadedDirectory::unverified(&bytes) {
            Ok(l) => dirs.push(l),
            Err(e) => {
                refused(p, &e);
                return Ok(Outcome::Invalid);
            }
        }
    }
    let [a, b] = dirs.as_slice() else { bail!("two directories expected") };
    let d = Diff::between(a.directory(), b.directory());
    if json {
        io::stdout(format!("{}\n", serde_json::to_string(&d)?).as_bytes())?;
    } else {
        io::stdout(d.to_string().as_bytes())?;
    }
    Ok(Outcome::Valid)
}
