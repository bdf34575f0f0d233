//! The signed envelope and its verification: a compact JWS (ES256 or PS512) over the RFC 8785 canonical form of
//! the directory, checked against the trusted directory authorities; the result is a [`LoadedDirectory`] with
//! its index.
//!
//! What [`Verifier::verify`] refuses, in the order it checks: more than [`crate::MAX_DIRECTORY_BYTES`]; a bare
//! JSON document ([`Error::Unsigned`]); a JWS whose `kid` is no trusted authority's ([`Error::UnknownAuthority`]);
//! a malformed JWS or a signature that does not verify ([`Error::BadSignature`]); a `typ` other than
//! [`JWS_TYP`]; a payload that is no valid directory, or not in canonical form; an issuer the key is not trusted
//! for; a version below the minimum ([`Error::Older`]); an `issuedAt` in the future beyond the clock skew
//! ([`Error::NotYetValid`]); an `expiresAt` that has passed ([`Error::Expired`]).

use std::fmt;

use sdx_crypto::{Alg, PrivateKey, PublicKey, jws};
use sdx_model::{Ars, OrgKey, SupportLevel, Timestamp};

use crate::document::{Directory, Endpoint, NodeUrl, Organisation, ServiceId};
use crate::error::{Error, Result};
use crate::resolve::{Index, Resolution};

/// `typ` of a signed directory's JWS header.
pub const JWS_TYP: &str = "sdx-directory+jws";
/// `cty` of a signed directory's JWS header: the payload is the canonical JSON of a directory.
pub const JWS_CTY: &str = "application/vnd.sdx.directory+json";
/// Default allowed clock skew for `issuedAt`: 5 minutes.
pub const DEFAULT_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Sign a directory as its authority: checks it, then signs its canonical form (ES256 with an EC key, PS512 with
/// an RSA key). Returns the compact JWS.
///
/// # Errors
/// The errors of [`Directory::check`] and [`Index::build`] (nothing invalid gets signed), [`Error::Signing`].
pub fn sign(dir: &Directory, key: &PrivateKey) -> Result<String> {
    dir.check()?;
    Index::build(dir)?;
    jws::sign_typed(&dir.canonical(), key, key.signing_alg(), JWS_TYP, Some(JWS_CTY)).map_err(Error::Signing)
}

/// A directory authority the verifier trusts: its public key, and optionally the one issuer it may sign for.
#[derive(Debug, Clone)]
pub struct Authority {
    /// The public key (ES256 or PS512); the JWS `kid` must be its `kid`.
    pub key: PublicKey,
    /// If set, directories signed with this key must name this issuer.
    pub issuer: Option<OrgKey>,
}

/// Checks signed directories against the trusted authorities and the clock.
#[derive(Debug, Clone)]
pub struct Verifier {
    authorities: Vec<Authority>,
    clock_skew: time::Duration,
    minimum_version: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    /// A verifier that trusts nobody yet (every directory is refused until [`Verifier::trust`] is called).
    #[must_use]
    pub fn new() -> Verifier {
        Verifier { authorities: Vec::new(), clock_skew: DEFAULT_CLOCK_SKEW, minimum_version: 0 }
    }

    /// Trust `key` (for any issuer). Several keys may be trusted at once, e.g. during a key rollover.
    #[must_use]
    pub fn trust(mut self, key: PublicKey) -> Verifier {
        self.authorities.push(Authority { key, issuer: None });
        self
    }

    /// Trust `key` for directories of `issuer` only.
    #[must_use]
    pub fn trust_for(mut self, key: PublicKey, issuer: OrgKey) -> Verifier {
        self.authorities.push(Authority { key, issuer: Some(issuer) });
        self
    }

    /// Allow `issuedAt` to lie this far in the future (default [`DEFAULT_CLOCK_SKEW`]).
    #[must_use]
    pub fn with_clock_skew(mut self, skew: time::Duration) -> Verifier {
        self.clock_skew = skew;
        self
    }

    /// Refuse directories with a version below `v` ([`Error::Older`]).
    #[must_use]
    pub fn with_minimum_version(mut self, v: u64) -> Verifier {
        self.minimum_version = v;
        self
    }

    /// The trusted authorities.
    #[must_use]
    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// Verify a signed directory (the compact JWS, surrounding whitespace allowed) at time `now`, and index it.
    ///
    /// # Errors
    /// See the module docs.
    pub fn verify(&self, input: &[u8], now: Timestamp) -> Result<LoadedDirectory> {
        let compact = jws_text(input)?;
        let (header, _) = jws::decode_unverified(compact).map_err(Error::BadSignature)?;
        let authority = header
            .kid
            .as_deref()
            .and_then(|kid| self.authorities.iter().find(|a| a.key.kid() == kid))
            .ok_or_else(|| Error::UnknownAuthority { kid: header.kid.clone() })?;
        let verified = jws::verify(compact, &authority.key).map_err(Error::BadSignature)?;
        if verified.header.typ.as_deref() != Some(JWS_TYP) {
            return Err(Error::malformed(
                "",
                format!("the JWS typ is {:?}, not {JWS_TYP:?}: not a directory", verified.header.typ),
            ));
        }
        let directory = Directory::from_json(&verified.payload)?;
        if directory.canonical() != verified.payload {
            return Err(Error::NotCanonical);
        }
        if let Some(expected) = &authority.issuer
            && expected != &directory.issuer
        {
            return Err(Error::IssuerMismatch { expected: expected.clone(), got: directory.issuer.clone() });
        }
        if directory.version < self.minimum_version {
            return Err(Error::Older { have: self.minimum_version, got: directory.version });
        }
        let skewed = now.as_offset_date_time().saturating_add(self.clock_skew);
        if directory.issued_at.as_offset_date_time() > skewed {
            return Err(Error::NotYetValid { from: directory.issued_at });
        }
        if now >= directory.expires_at {
            return Err(Error::Expired { at: directory.expires_at });
        }
        let signer = Signer { kid: authority.key.kid().to_owned(), alg: verified.header.alg };
        LoadedDirectory::new(directory, &verified.payload, Some(signer))
    }
}

/// The input as JWS text, or why it is not one.
fn jws_text(input: &[u8]) -> Result<&str> {
    if input.len() > crate::MAX_DIRECTORY_BYTES {
        return Err(Error::TooLarge { limit: crate::MAX_DIRECTORY_BYTES });
    }
    let t = input.trim_ascii();
    if t.first() == Some(&b'{') {
        return Err(Error::Unsigned);
    }
    std::str::from_utf8(t).map_err(|_| Error::BadSignature(sdx_crypto::Error::MalformedJose("not ASCII text".into())))
}

/// Who signed a loaded directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The authority key's `kid`.
    pub kid: String,
    /// The algorithm.
    pub alg: Alg,
}

/// A directory with its index, ready for lookups. Made by [`Verifier::verify`] (signed, checked against the
/// clock) or, for tools only, [`LoadedDirectory::unverified`].
pub struct LoadedDirectory {
    directory: Directory,
    index: Index,
    signer: Option<Signer>,
    digest: String,
}

impl fmt::Debug for LoadedDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedDirectory")
            .field("version", &self.directory.version)
            .field("issuer", &self.directory.issuer)
            .field("signer", &self.signer)
            .field("digest", &self.digest)
            .field("index", &self.index)
            .finish()
    }
}

/// How to reach an organisation: its own node, or the hub that relays for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer<'d> {
    /// The organisation.
    pub organisation: &'d Organisation,
    /// The URL to post its messages to (its own, or its hub's).
    pub url: &'d NodeUrl,
    /// The hub, if it is reached through one (then TLS shows the hub's identity, not the organisation's).
    pub via_hub: Option<&'d Organisation>,
}

impl LoadedDirectory {
    fn new(directory: Directory, canonical: &[u8], signer: Option<Signer>) -> Result<LoadedDirectory> {
        let index = Index::build(&directory)?;
        let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical).as_ref());
        Ok(LoadedDirectory { directory, index, signer, digest })
    }

    /// Read a directory **without verifying anything but its content**: a bare JSON document or a JWS whose
    /// signature and validity period are not checked. For tools (`sdx directory resolve` without `--authority`,
    /// `diff`), never for routing.
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::BadSignature`] for a JWS that cannot be decoded, and the errors of
    /// [`Directory::from_json`] and [`Index::build`].
    pub fn unverified(input: &[u8]) -> Result<LoadedDirectory> {
        let directory = match jws_text(input) {
            Err(Error::Unsigned) => Directory::from_json(input)?,
            Err(e) => return Err(e),
            Ok(compact) => {
                let (_, payload) = jws::decode_unverified(compact).map_err(Error::BadSignature)?;
                Directory::from_json(&payload)?
            }
        };
        let canonical = directory.canonical();
        LoadedDirectory::new(directory, &canonical, None)
    }

    /// The directory.
    #[must_use]
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Its index.
    #[must_use]
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Its version.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.directory.version
    }

    /// Who signed it (`None` if it was read unverified).
    #[must_use]
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// SHA-256 (hex) of its canonical form: equal digests, equal directories.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether it has expired at `now` (a held directory can expire while the node runs).
    #[must_use]
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.directory.expires_at
    }

    /// Who is responsible for `service` in `region` at `level`; see [`Index::resolve`].
    ///
    /// # Errors
    /// [`Error::UnknownService`], [`Error::NoResponsibility`].
    pub fn resolve(&self, service: &ServiceId, region: &Ars, level: SupportLevel) -> Result<Resolution<'_>> {
        self.index.resolve(&self.directory, service, region, level)
    }

    /// The organisation with this key.
    #[must_use]
    pub fn organisation(&self, key: &OrgKey) -> Option<&Organisation> {
        self.index.organisation_position(key).and_then(|i| self.directory.organisations.get(i))
    }

    /// Who gets a service notice for `services` in `regions` (empty: everywhere): every organisation responsible
    /// for one of the services at any support level in a region that overlaps one of `regions` (one is a prefix of
    /// the other, or nationwide), and every portal and service desk; sorted by key, without duplicates. Hubs are
    /// not recipients (they relay).
    #[must_use]
    pub fn notice_audience(&self, services: &[ServiceId], regions: &[Ars]) -> Vec<OrgKey> {
        use crate::document::{Region, Role};
        let overlaps = |r: &Region| match r {
            Region::Nationwide => true,
            Region::Prefix(p) => {
                regions.is_empty()
                    || regions.iter().any(|n| n.as_str().starts_with(p.as_str()) || p.as_str().starts_with(n.as_str()))
            }
        };
        let mut out: std::collections::BTreeSet<OrgKey> = self
            .directory
            .responsibilities
            .iter()
            .filter(|r| r.services.iter().any(|s| services.contains(s)) && r.regions.iter().any(overlaps))
            .map(|r| r.organisation.clone())
            .collect();
        out.extend(
            self.directory
                .organisations
                .iter()
                .filter(|o| o.has_role(Role::Portal) || o.has_role(Role::ServiceDesk))
                .map(|o| o.key.clone()),
        );
        out.into_iter().collect()
    }

    /// How to reach the organisation with this key (for the node's delivery worker).
    #[must_use]
    pub fn peer(&self, key: &OrgKey) -> Option<Peer<'_>> {
        let organisation = self.organisation(key)?;
        match &organisation.endpoint {
            Endpoint::Url(url) => Some(Peer { organisation, url, via_hub: None }),
            Endpoint::ViaHub(h) => {
                let hub = self.organisation(h)?;
                match &hub.endpoint {
                    Endpoint::Url(url) => Some(Peer { organisation, url, via_hub: Some(hub) }),
                    Endpoint::ViaHub(_) => None,
                }
            }
        }
    }
}
