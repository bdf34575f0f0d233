//! The SDX data model: what a support case and an SDX message *are*, independent of any serial format.
//!
//! Levels 1 and 2 of the interoperability model (vocabulary and data model). No I/O happens here.
//!
//! # Layout
//! - [`codelist`]: the ITIL-based vocabulary (status, priority, …) as enums with URN and version.
//! - [`id`]: identifiers (LeiKa key, ARS, organisation key, UUIDs, timestamps) with `parse` constructors.
//! - [`case`]: the support case and its parts (journal, attachments, solution, …).
//! - [`message`]: the envelope (header after XÖV `nachrichtenkopf.g2g`) and one body per message type.
//! - [`lifecycle`]: who may do what across organisations, and what a message does to a case.
//! - [`convergence`]: the one order of concurrent changes of a case, so that both copies end identical.
//! - [`rules`]: checks beyond the schema (lifecycle, ITIL priority matrix, consistency, size limits).
//! - [`sample`]: realistic sample messages for tests, benchmarks and documentation.
#![forbid(unsafe_code)]

pub mod case;
pub mod codelist;
pub mod convergence;
pub mod id;
pub mod lifecycle;
pub mod message;
pub mod rules;
pub mod sample;

pub use case::*;
pub use codelist::{
    Channel, Coded, DirectoryService, ErrorCode, Impact, MessageType, NoticeType, PartyRole, PendingReason, Priority,
    ReceiptResult, RejectionReason, RelationType, ResolutionCode, Status, SupportLevel, SymptomCategory, TicketType,
    Urgency, Visibility,
};
pub use id::{Ars, CaseId, InvalidValue, ItemId, LeikaKey, MediaType, MessageId, OrgKey, OzgId, Sha256Hex, Timestamp};
pub use message::*;
