//! The message envelope: a header modelled on XÖV `nachrichtenkopf.g2g` and one body per message type.

use serde::{Deserialize, Serialize};

use crate::case::{
    Attachment, Case, Category, ExternalReference, JournalEntry, Party, RelatedCase, ServiceLevel, ServiceRef, Solution,
};
use crate::codelist::{
    DirectoryService, ErrorCode, Impact, MessageType, NoticeType, PendingReason, Priority, ReceiptResult,
    RejectionReason, ResolutionCode, Status, SupportLevel, Urgency,
};
use crate::id::{Ars, CaseId, ItemId, MessageId, OrgKey, Sha256Hex, Timestamp};

/// Version of the SDX schema this build writes and reads.
pub const SCHEMA_VERSION: &str = "1.0";
/// Identifier of the standard (XÖV `standard` attribute).
pub const STANDARD: &str = "urn:xoev-de:sdx:standard:sdx";

/// One SDX message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The body; its variant must match `header.messageType`.
    pub body: Body,
}

/// The message header (XÖV `nachrichtenkopf.g2g`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    /// Message id (`nachrichtenUUID`).
    pub message_id: MessageId,
    /// Message type (`nachrichtentyp`).
    pub message_type: MessageType,
    /// Creation time (`erstellungszeitpunkt`).
    pub created_at: Timestamp,
    /// Sending organisation (`autor`).
    pub author: Participant,
    /// Receiving organisation (`leser`).
    pub reader: Participant,
    /// The case; absent only for service notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<CaseId>,
    /// Per case and direction: 1 for the first message from author to reader about the case, +1 for each next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Per case: the sequence number of the last message from the reader about this case that the author had
    /// applied when it made this one (0: none). It places the message among the reader's messages, so that both
    /// nodes order concurrent changes the same way (see `docs/protocol.md`, "Concurrent changes"). Written by
    /// nodes on every case message except the forward that creates the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_sequence: Option<u64>,
    /// Message this one answers (receipts: the received message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<MessageId>,
    /// SDX schema version, `1.0`.
    pub schema_version: String,
    /// Version of the codelist set, `1`.
    pub codelist_version: String,
    /// Product that wrote the message (XÖV `produkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Vendor of the product (XÖV `produkthersteller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_vendor: Option<String>,
    /// Version of the product (XÖV `produktversion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    /// A test message, not for production processing (XÖV `test`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
}

/// Author or reader of a message (XÖV `Behoerde`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Participant {
    /// Directory in which the key is registered.
    pub directory: DirectoryService,
    /// Organisation key.
    pub key: OrgKey,
    /// Name of the organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The body of a message, one variant per message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(clippy::large_enum_variant)] // one message at a time; boxing the case would only add an allocation
pub enum Body {
    /// Full case to a new assignee.
    Forward(Forward),
    /// Changes to a case.
    Update(Update),
    /// The assignee resolves the case.
    Resolve(Resolve),
    /// The assignee hands the case back.
    HandBack(HandBack),
    /// The originator closes the case.
    Close(Close),
    /// The originator reopens the case.
    Reopen(Reopen),
    /// The receiver is not responsible.
    Reject(Reject),
    /// Positive or negative receipt.
    Receipt(Receipt),
    /// Disruption or maintenance notice.
    ServiceNotice(ServiceNotice),
}

impl Body {
    /// The message type this body belongs to.
    pub fn message_type(&self) -> MessageType {
        match self {
            Body::Forward(_) => MessageType::Forward,
            Body::Update(_) => MessageType::Update,
            Body::Resolve(_) => MessageType::Resolve,
            Body::HandBack(_) => MessageType::HandBack,
            Body::Close(_) => MessageType::Close,
            Body::Reopen(_) => MessageType::Reopen,
            Body::Reject(_) => MessageType::Reject,
            Body::Receipt(_) => MessageType::Receipt,
            Body::ServiceNotice(_) => MessageType::ServiceNotice,
        }
    }
}

/// Forward: the full case, assigned to the reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forward {
    /// The case as the sender holds it.
    pub case: Case,
    /// Why it is forwarded, for the receiving team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Update: what changed. Absent members did not change; lists are additions (append-only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Update {
    /// Case revision after applying this update.
    pub revision: u32,
    /// New status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Pending reason (with status `pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<PendingReason>,
    /// Why the status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// New impact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Impact>,
    /// New urgency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Urgency>,
    /// New priority (required when impact or urgency change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// New subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New categorisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    /// New region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Ars>,
    /// New support level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_level: Option<SupportLevel>,
    /// New service-level targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<ServiceLevel>,
    /// New assignee inside the sender's sphere (e.g. escalation to its vendor); must be a party afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<OrgKey>,
    /// Parties added (e.g. the vendor on an escalation to 3rd level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parties: Vec<Party>,
    /// References added (e.g. the receiver's own ticket number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ExternalReference>,
    /// Relations added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_cases: Vec<RelatedCase>,
    /// Journal entries added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
    /// Attachments added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// Resolve: the solution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resolve {
    /// Case revision after resolving.
    pub revision: u32,
    /// The solution.
    pub solution: Solution,
    /// Journal entries added with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
}

/// Hand back: responsibility returns to the originator, with the solution when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandBack {
    /// Case revision after the hand-back.
    pub revision: u32,
    /// The solution, when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<Solution>,
    /// Note for the originator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Close: the originator confirms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Close {
    /// Case revision after closing.
    pub revision: u32,
    /// Closure category, when it differs from the solution's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure_code: Option<ResolutionCode>,
    /// Note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Reopen: the originator does not accept the solution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reopen {
    /// Case revision after reopening.
    pub revision: u32,
    /// Why (required, MEF 124).
    pub reason: String,
}

/// Reject: the receiver is not responsible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reject {
    /// Case revision after the rejection.
    pub revision: u32,
    /// Why.
    pub reason: RejectionReason,
    /// Explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Organisation the receiver thinks is responsible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_assignee: Option<OrgKey>,
}

/// Receipt for a received message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Receipt {
    /// Accepted or rejected.
    pub result: ReceiptResult,
    /// The message this receipt is for.
    pub received_message_id: MessageId,
    /// When the receiver committed (or refused) it.
    pub received_at: Timestamp,
    /// SHA-256 of the received message as it arrived (signed bytes): proof of what was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Sha256Hex>,
    /// Errors; at least one when rejected, none when accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ReceiptError>,
}

/// One error in a negative receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiptError {
    /// Stable error code.
    pub code: ErrorCode,
    /// Where (JSON pointer into the received message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Explanation.
    pub text: String,
}

/// A service notice for portals: disruption or maintenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceNotice {
    /// Notice id; a later notice with the same id replaces the earlier one.
    pub notice_id: ItemId,
    /// Disruption, maintenance or resolution.
    pub notice_type: NoticeType,
    /// Affected online services (at least one).
    pub services: Vec<ServiceRef>,
    /// Affected regions; empty means everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Ars>,
    /// Start of the disruption or window.
    pub starts_at: Timestamp,
    /// Expected or actual end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// Headline for the portal.
    pub title: String,
    /// Text for the portal.
    pub text: String,
    /// Related cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_cases: Vec<CaseId>,
}
