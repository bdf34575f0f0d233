//! `sdx-directory`: the directory of responsibilities of an SDX federation, modelled on the DVDV (organisations,
//! their endpoints and certificates) and on the FIT-Connect routing API / XZuFi (who is responsible for a service
//! in a region).
//!
//! A directory lists **organisations** (key like `psw:01003110`, name, node URL or the hub that relays for them,
//! TLS identity, signing keys, accepted message types, capabilities: statuses, transitions, limits) and
//! **responsibilities** (services by LeiKa key or OZG id × regions by ARS prefix × support level → organisation,
//! with a rank). The most specific region wins: Gemeinde before Gemeindeverband, Kreis, Regierungsbezirk, Land,
//! nationwide. The directory authority signs the document (compact JWS, ES256 or PS512, over the RFC 8785
//! canonical form) with a version and an expiry; nodes verify it and swap it in without a restart, keeping the
//! last good one when a new one is refused. The format and the rules are in `docs/routing.md`.
//!
//! ```
//! use sdx_directory::{Directory, DirectoryHolder, ServiceId, Verifier, sign};
//! use sdx_crypto::{Alg, PrivateKey};
//! use sdx_model::{Ars, SupportLevel, Timestamp};
//!
//! let authority = PrivateKey::generate(Alg::Es256)?;
//! let dir = Directory::from_json(include_bytes!("../../../docs/examples/directory.json"))?;
//! let signed = sign(&dir, &authority)?;
//!
//! let holder = DirectoryHolder::new(Verifier::new().trust(authority.public_key(Alg::Es256)?));
//! holder.load_bytes(signed.as_bytes(), Timestamp::parse("2026-12-01T00:00:00Z")?)?;
//! let current = holder.current().expect("loaded");
//! let r = current.resolve(&ServiceId::parse("99107004017000")?, &Ars::parse("010600045045")?, SupportLevel::SecondLevel)?;
//! assert_eq!(r.responsible.organisation.key.as_str(), "psw:01060002");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`document`]: the document model ([`Directory`], [`Organisation`], [`Responsibility`], [`Endpoint`],
//!   [`Capabilities`], [`ServiceId`], [`Region`]) and its checks ([`Directory::from_json`]).
//! - [`signed`]: the signed envelope ([`sign`], [`Verifier`]) and a verified, indexed [`LoadedDirectory`] with
//!   [`LoadedDirectory::resolve`] and [`LoadedDirectory::peer`] (how to reach an organisation).
//! - [`capability`]: checking a case against a partner's published capabilities before it is sent.
//! - [`resolve`]: the [`Index`] built at load time and the [`Resolution`] with its explanation.
//! - [`holder`]: [`DirectoryHolder`], the current directory behind an `Arc` swap, reloaded without restart.
//! - [`diff`]: [`Diff`] of two directories.
//! - [`schema`]: the JSON Schema of the document (`docs/schemas/directory.schema.json`).
//! - [`synthetic`]: a large directory of realistic shape for the benchmark and tests.
//! - [`error`]: [`Error`] with stable codes, and the [`Result`] alias.
#![forbid(unsafe_code)]

pub mod capability;
pub mod diff;
pub mod document;
pub mod error;
pub mod holder;
pub mod resolve;
pub mod schema;
pub mod signed;
pub mod synthetic;

pub use capability::Unsupported;
pub use diff::Diff;
pub use document::{
    Capabilities, CertificatePem, Directory, EncryptionKey, Endpoint, NodeUrl, Organisation, Region, RegionLevel,
    Responsibility, Role, ServiceId, SigningKey, Tls, Transition,
};
pub use error::{Error, Result};
pub use holder::{DirectoryHolder, Reload};
pub use resolve::{Candidate, Index, Resolution};
pub use signed::{Authority, LoadedDirectory, Peer, Signer, Verifier, sign};

/// Largest directory accepted, signed or not: the JWS limit of `sdx-crypto` (16 MiB; a payload of about
/// 12 MiB).
pub const MAX_DIRECTORY_BYTES: usize = sdx_crypto::jws::MAX_COMPACT_LEN;
