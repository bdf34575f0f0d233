//! The support case: what every organisation that holds a case knows about it.
//!
//! Field names are the JSON names (camelCase); `docs/model.md` gives the XML name and the TMF621 and ITIL
//! equivalent of each field. Lists default to empty and optional fields to absent, so an empty list and a
//! missing member mean the same and serialize the same (missing).

use serde::{Deserialize, Serialize};

use crate::codelist::{
    Channel, Impact, PartyRole, PendingReason, Priority, RelationType, ResolutionCode, Status, SupportLevel,
    SymptomCategory, TicketType, Urgency, Visibility,
};
use crate::id::{Ars, CaseId, ItemId, LeikaKey, MediaType, OrgKey, OzgId, Sha256Hex, Timestamp};

/// A support case (TMF621 `troubleTicket`, ITIL incident record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Case {
    /// Case id, the same at every organisation (TMF621 `id` of the originator's ticket is a reference instead).
    pub case_id: CaseId,
    /// Revision of this case record; +1 for every accepted change.
    pub revision: u32,
    /// Each party's own ticket number (TMF621 `externalIdentifier`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ExternalReference>,
    /// Kind of request.
    pub ticket_type: TicketType,
    /// Current status; equals the last entry of `statusHistory`.
    pub status: Status,
    /// Why the case is pending; present exactly when `status` is `pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<PendingReason>,
    /// Every status the case has had, oldest first (TMF621 `statusChangeHistory`).
    pub status_history: Vec<StatusChange>,
    /// ITIL impact.
    pub impact: Impact,
    /// ITIL urgency.
    pub urgency: Urgency,
    /// ITIL priority; must equal impact × urgency by the ITIL matrix.
    pub priority: Priority,
    /// Affected service and symptom.
    pub category: Category,
    /// Region of the requester or of the affected authority (ARS or prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Ars>,
    /// Support level now working on the case.
    pub support_level: SupportLevel,
    /// Channel the request came in by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Organisations involved (TMF621 `relatedParty`).
    pub parties: Vec<Party>,
    /// Organisation that created the case and to which it returns.
    pub originator: OrgKey,
    /// Organisation currently responsible for working the case.
    pub assignee: OrgKey,
    /// The person who asked. **Personal data**: send only what the receiver needs, never log it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// Short summary (TMF621 `name`).
    pub subject: String,
    /// Full description of the request (TMF621 `description`, ITIL symptoms).
    pub description: String,
    /// When the case was recorded (TMF621 `creationDate`).
    pub created_at: Timestamp,
    /// When the case last changed (TMF621 `lastUpdate`).
    pub updated_at: Timestamp,
    /// Journal, append-only (TMF621 `note`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub journal: Vec<JournalEntry>,
    /// Attachments, append-only (TMF621 `attachment`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The solution, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<Solution>,
    /// Related cases (TMF621 `troubleTicketRelationship`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_cases: Vec<RelatedCase>,
    /// Service-level target times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<ServiceLevel>,
}

/// One party's own reference for the case (TMF621 `externalIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalReference {
    /// Organisation that owns the reference.
    pub owner: OrgKey,
    /// Ticket system, e.g. `Request Tracker`, `Redmine`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The ticket number there.
    pub id: String,
}

/// One entry of the status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusChange {
    /// The new status.
    pub status: Status,
    /// Pending reason, when the new status is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<PendingReason>,
    /// When.
    pub changed_at: Timestamp,
    /// Organisation that made the change.
    pub changed_by: OrgKey,
    /// Why (TMF621 `statusChangeReason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Categorisation: the affected online service and the symptom.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Category {
    /// The affected online service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// What the requester observes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptom: Option<SymptomCategory>,
}

/// Reference to an online service (by LeiKa key and/or OZG id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRef {
    /// LeiKa service key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leika_key: Option<LeikaKey>,
    /// OZG id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ozg_id: Option<OzgId>,
    /// Name of the service, e.g. `Wohngeld`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An organisation involved in the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Party {
    /// Role in this case.
    pub role: PartyRole,
    /// Organisation key (DVDV style).
    pub organisation: OrgKey,
    /// Name of the organisation.
    pub name: String,
    /// Functional contact point (team mailbox, hotline): not a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactPoint>,
}

/// A functional contact (team, hotline). Not personal data by design: use team addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactPoint {
    /// Team or function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The requester. **Personal data** (GDPR): minimised, optional, never logged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requester {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Preferred language (BCP 47, e.g. `de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A journal entry (TMF621 `note`). Append-only; entries of the partner are never edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JournalEntry {
    /// Entry id.
    pub id: ItemId,
    /// Public (may reach the requester) or internal.
    pub visibility: Visibility,
    /// Who wrote it.
    pub author: Author,
    /// When.
    pub created_at: Timestamp,
    /// The text.
    pub text: String,
}

/// Author of a journal entry: the organisation, optionally a role or display name (no personal data needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Author {
    /// Organisation.
    pub organisation: OrgKey,
    /// Display name or team, e.g. `2nd-Level Wohngeld`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An attachment: inline (base64) or by reference; size and SHA-256 always given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attachment {
    /// Attachment id.
    pub id: ItemId,
    /// File name.
    pub file_name: String,
    /// Media type.
    pub media_type: MediaType,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: Sha256Hex,
    /// Content, standard base64 (RFC 4648 §4), when inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Where to fetch the content, when not inline (https URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Who added it.
    pub added_by: OrgKey,
    /// When.
    pub added_at: Timestamp,
}

/// The solution of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Solution {
    /// How it was resolved.
    pub code: ResolutionCode,
    /// The solution in words (may be passed to the requester).
    pub text: String,
    /// When (TMF621 `resolutionDate`).
    pub resolved_at: Timestamp,
    /// Organisation that resolved it.
    pub resolved_by: OrgKey,
}

/// A relation to another case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelatedCase {
    /// The other case.
    pub case_id: CaseId,
    /// Kind of relation.
    pub relation: RelationType,
}

/// Service-level target times.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceLevel {
    /// Name or id of the agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// Reaction due by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_due: Option<Timestamp>,
    /// Resolution due by (TMF621 `expectedResolutionDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution_due: Option<Timestamp>,
}

impl Case {
    /// The case with personal data removed (for logs, metrics and receivers that do not need it).
    pub fn without_personal_data(&self) -> Case {
        Case { requester: None, ..self.clone() }
    }
}
