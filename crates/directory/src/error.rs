//! The crate's error type: one variant per reason a directory is refused or a lookup finds nobody, each with a
//! stable machine-readable code ([`Error::code`]).
//!
//! Error policy: a refused directory never replaces the one held ([`crate::DirectoryHolder`] keeps the last good
//! one); messages name the failed check and where it failed (a JSON pointer into the document), never key
//! material; I/O errors are kept apart ([`Error::Io`]) so that a command line can give them another exit code.

use sdx_model::{Ars, OrgKey, SupportLevel, Timestamp};

use crate::document::ServiceId;

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when a directory is read, verified, loaded or asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is a bare JSON document, not a JWS: a directory must be signed by its authority.
    #[error("the directory is not signed (a bare JSON document; sign it with `sdx directory sign`)")]
    Unsigned,
    /// The JWS is malformed or its signature does not verify with the authority's key.
    #[error("the directory's signature is invalid: {0}")]
    BadSignature(#[source] sdx_crypto::Error),
    /// The JWS names a key (`kid`) that is not one of the trusted directory authorities.
    #[error("the directory is signed by an unknown authority (kid {})", kid.as_deref().unwrap_or("missing"))]
    UnknownAuthority {
        /// The `kid` of the JWS header, if it has one.
        kid: Option<String>,
    },
    /// The key is trusted, but for another issuer than the document names.
    #[error("the directory names issuer {got}, but the signing key is trusted for {expected} only")]
    IssuerMismatch {
        /// The issuer the key is trusted for.
        expected: OrgKey,
        /// The issuer in the document.
        got: OrgKey,
    },
    /// The signed payload is not the RFC 8785 canonical form of the directory it decodes to.
    #[error("the signed payload is not in canonical form (RFC 8785); sign with `sdx directory sign`")]
    NotCanonical,
    /// The version is lower than the one held (or than the minimum asked for).
    #[error("directory version {got} is older than version {have}, which is held")]
    Older {
        /// The version held (or the minimum).
        have: u64,
        /// The version offered.
        got: u64,
    },
    /// The version equals the one held, but the content differs: a version number must never be reused.
    #[error("directory version {version} is already held with other content: a new directory needs a new version")]
    VersionReused {
        /// The version.
        version: u64,
    },
    /// The directory expired.
    #[error("the directory expired at {at}")]
    Expired {
        /// Its `expiresAt`.
        at: Timestamp,
    },
    /// The directory's `issuedAt` lies in the future (beyond the allowed clock skew).
    #[error("the directory is not valid before {from}")]
    NotYetValid {
        /// Its `issuedAt`.
        from: Timestamp,
    },
    /// The input is larger than [`crate::MAX_DIRECTORY_BYTES`].
    #[error("the directory is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Not a directory document: invalid JSON, a missing, unknown or mistyped member, an invalid identifier or
    /// code, or a value outside its range.
    #[error("malformed directory at {pointer}: {reason}")]
    Malformed {
        /// JSON pointer (RFC 6901) into the document; empty for the whole document.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// Two organisations share a key.
    #[error("organisation {key} appears twice (second at {pointer})")]
    DuplicateOrganisation {
        /// The key.
        key: OrgKey,
        /// JSON pointer of the second one.
        pointer: String,
    },
    /// A responsibility or an endpoint names an organisation that the directory does not list.
    #[error("{pointer} names organisation {key}, which the directory does not list")]
    UnknownOrganisation {
        /// The key.
        key: OrgKey,
        /// Where it is named.
        pointer: String,
    },
    /// An organisation is reached through a hub that is not one (no `hub` role, or itself reached via a hub).
    #[error("{pointer}: {key} is reached via {hub}, which {reason}")]
    InvalidHub {
        /// The organisation.
        key: OrgKey,
        /// The named hub.
        hub: OrgKey,
        /// Where.
        pointer: String,
        /// Why the hub cannot be one.
        reason: &'static str,
    },
    /// The same (service, region, level, organisation) is listed twice.
    #[error("{pointer}: {service} in {region} ({level}) is already assigned to {organisation}")]
    DuplicateResponsibility {
        /// The service.
        service: ServiceId,
        /// The region (an ARS prefix or `nationwide`).
        region: String,
        /// The support level.
        level: SupportLevel,
        /// The organisation.
        organisation: OrgKey,
        /// Where the second one is.
        pointer: String,
    },
    /// The directory has no responsibility at all for this service.
    #[error("no organisation is responsible for service {service} in any region at any level")]
    UnknownService {
        /// The service asked for.
        service: ServiceId,
    },
    /// The service is known, but nobody is responsible for it in this region at this level.
    #[error("no organisation is responsible for service {service} in region {region} at {level}{hint}")]
    NoResponsibility {
        /// The service asked for.
        service: ServiceId,
        /// The region asked for.
        region: Ars,
        /// The level asked for.
        level: SupportLevel,
        /// What exists instead (other levels), for the reader; may be empty.
        hint: String,
    },
    /// Signing failed (a key that cannot sign, a document too large for a JWS).
    #[error("signing failed: {0}")]
    Signing(#[source] sdx_crypto::Error),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Stable lowerCamelCase code of the failure class, for logs, metrics and problem documents.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unsigned => "unsigned",
            Error::BadSignature(_) => "signatureInvalid",
            Error::UnknownAuthority { .. } => "unknownAuthority",
            Error::IssuerMismatch { .. } => "issuerMismatch",
            Error::NotCanonical => "notCanonical",
            Error::Older { .. } => "olderVersion",
            Error::VersionReused { .. } => "versionReused",
            Error::Expired { .. } => "expired",
            Error::NotYetValid { .. } => "notYetValid",
            Error::TooLarge { .. } => "tooLarge",
            Error::Malformed { .. } => "malformed",
            Error::DuplicateOrganisation { .. } => "duplicateOrganisation",
            Error::UnknownOrganisation { .. } => "unknownOrganisation",
            Error::InvalidHub { .. } => "invalidHub",
            Error::DuplicateResponsibility { .. } => "duplicateResponsibility",
            Error::UnknownService { .. } => "unknownService",
            Error::NoResponsibility { .. } => "noResponsibility",
            Error::Signing(_) => "signingFailed",
            Error::Io { .. } => "io",
        }
    }

    /// Whether the failure is about the environment (a file that cannot be read) rather than the directory.
    #[must_use]
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    pub(crate) fn malformed(pointer: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Malformed { pointer: pointer.into(), reason: reason.into() }
    }
}
