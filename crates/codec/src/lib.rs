//! SDX serial formats (level 3 of the interoperability model): JSON and XÖV-style XML, lossless both ways,
//! the RFC 8785 canonical form that gets signed, the schemas, and validation with located errors.
//!
//! # Layout
//! - [`desc`]: the format description — every field's JSON and XML name, kind, cardinality and limits; the
//!   single source of the XML codec, the schemas and the field tables in `docs/model.md`.
//! - [`json`]: JSON decode/encode and the canonical form.
//! - [`xml`]: XML decode/encode (XÖV conventions), driven by [`desc`].
//! - [`validate`]: format detection and whole-document validation (decode + rules + attachment digests).
//! - [`docs`]: Markdown tables for `docs/` generated from the description and the codelists.
//! - [`diag`]: [`Diagnostic`], a finding with stable code and location.
#![forbid(unsafe_code)]

mod canonical;
pub mod desc;
pub mod diag;
pub mod docs;
pub mod json;
pub mod schema;
pub mod validate;
pub mod xml;

pub use diag::Diagnostic;
pub use validate::{Format, detect, validate};
