//! The format description: one table per type that names each field in JSON and in XML, with its kind,
//! cardinality, limits and its TMF621 / ITIL equivalent.
//!
//! It is the single source from which the XML codec, the JSON Schema, the XSD and the field tables in
//! `docs/model.md` are made, and a test (`tests/lockstep.rs`) proves that it matches the serde model field
//! by field. Field order is the XML order (`xs:sequence`); JSON member order is free.

use sdx_model::codelist::{self, CodeList};
use sdx_model::rules::limits;

/// What a field holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Text of at most `max` characters; `line` means single-line.
    Text {
        /// Maximum length in characters.
        max: usize,
        /// Single line only.
        line: bool,
    },
    /// A code of a codelist (XÖV `Code` type in XML, plain string in JSON).
    Code(&'static CodeList),
    /// An identifier with a fixed form.
    Ident(Ident),
    /// RFC 3339 timestamp with offset.
    Timestamp,
    /// Unsigned integer up to `max`.
    UInt {
        /// Largest value.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// A nested structure.
    Object(&'static TypeDesc),
}

/// Identifier forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ident {
    /// Lowercase hyphenated UUID.
    Uuid,
    /// LeiKa key.
    Leika,
    /// ARS or prefix.
    Ars,
    /// Organisation key `abc:ID`.
    OrgKey,
    /// OZG id.
    OzgId,
    /// SHA-256 hex.
    Sha256,
    /// Media type.
    MediaType,
}

impl Ident {
    /// Regular expression (ECMA 262 / XSD compatible: anchors added by the JSON Schema generator only).
    pub fn pattern(self) -> &'static str {
        match self {
            Ident::Uuid => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            Ident::Leika => "99[0-9]{12}",
            Ident::Ars => "[0-9]{2}|[0-9]{3}|[0-9]{5}|[0-9]{9}|[0-9]{12}",
            Ident::OrgKey => "[a-z]{3}:[A-Za-z0-9._\\-]{1,64}",
            Ident::OzgId => "[!-~]{1,64}",
            Ident::Sha256 => "[0-9a-f]{64}",
            Ident::MediaType => "[A-Za-z0-9!#$&^_.+\\-]+/[A-Za-z0-9!#$&^_.+\\-]+( *;[ -~]*)?",
        }
    }
    /// Name of the simple type in the XSD and of the `$defs` entry in the JSON Schema.
    pub fn type_name(self) -> &'static str {
        match self {
            Ident::Uuid => "UUID",
            Ident::Leika => "Leistungsschluessel",
            Ident::Ars => "Regionalschluessel",
            Ident::OrgKey => "Organisationskennung",
            Ident::OzgId => "OZGID",
            Ident::Sha256 => "SHA256",
            Ident::MediaType => "Medientyp",
        }
    }
}

/// How often a field occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurs {
    /// Exactly once.
    Required,
    /// Zero or one time.
    Optional,
    /// Zero to `max` times (JSON array; repeated element in XML).
    List {
        /// Most entries.
        max: usize,
        /// At least one entry.
        min1: bool,
    },
}

/// One field of a type.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// JSON member name (camelCase).
    pub json: &'static str,
    /// XML element name (German, XÖV style).
    pub xml: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// How often.
    pub occurs: Occurs,
    /// What it means.
    pub doc: &'static str,
    /// TMF621 equivalent (empty when none).
    pub tmf621: &'static str,
    /// ITIL equivalent (empty when none).
    pub itil: &'static str,
    /// Holds personal data.
    pub personal: bool,
}

/// One structured type.
#[derive(Debug)]
pub struct TypeDesc {
    /// Name in the JSON Schema `$defs`.
    pub json_name: &'static str,
    /// Name of the complex type in the XSD (XÖV style, dot qualifiers).
    pub xml_name: &'static str,
    /// What it is.
    pub doc: &'static str,
    /// Fields in XML order.
    pub fields: &'static [Field],
}

impl TypeDesc {
    /// The field with this JSON name.
    pub fn by_json(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.json == name)
    }
    /// Index of the field with this XML element name.
    pub fn index_by_xml(&self, name: &[u8]) -> Option<usize> {
        self.index_by_xml_from(name, 0)
    }
    /// Index of the field with this XML element name, searching from `start` first: elements come in
    /// schema order, so the match is usually at or just after the previous one.
    pub fn index_by_xml_from(&self, name: &[u8], start: usize) -> Option<usize> {
        let start = start.min(self.fields.len());
        let hit = |f: &&Field| f.xml.as_bytes() == name;
        match self.fields[start..].iter().position(|f| hit(&f)) {
            Some(i) => Some(start + i),
            None => self.fields[..start].iter().position(|f| hit(&f)),
        }
    }
}

/// A message type: its JSON body key, XML root element and body type.
#[derive(Debug)]
pub struct MessageDesc {
    /// Message type code (also the JSON key under `body`).
    pub code: &'static str,
    /// Local name of the XML root element.
    pub root: &'static str,
    /// The body.
    pub body: &'static TypeDesc,
}

const fn f(json: &'static str, xml: &'static str, kind: Kind, occurs: Occurs, doc: &'static str) -> Field {
    Field { json, xml, kind, occurs, doc, tmf621: "", itil: "", personal: false }
}
const fn eq(mut fd: Field, tmf621: &'static str, itil: &'static str) -> Field {
    fd.tmf621 = tmf621;
    fd.itil = itil;
    fd
}
const fn personal(mut fd: Field) -> Field {
    fd.personal = true;
    fd
}

use Occurs::{Optional as O, Required as R};
const fn list(max: usize) -> Occurs {
    Occurs::List { max, min1: false }
}
const fn list1(max: usize) -> Occurs {
    Occurs::List { max, min1: true }
}
const LINE: Kind = Kind::Text { max: limits::MAX_SHORT_CHARS, line: true };
const TEXT: Kind = Kind::Text { max: limits::MAX_TEXT_CHARS, line: false };
const SUBJECT: Kind = Kind::Text { max: limits::MAX_SUBJECT_CHARS, line: false };
const UUID: Kind = Kind::Ident(Ident::Uuid);
const ORG: Kind = Kind::Ident(Ident::OrgKey);
const TS: Kind = Kind::Timestamp;
const REVISION: Kind = Kind::UInt { max: u32::MAX as u64 };
const fn code(l: &'static CodeList) -> Kind {
    Kind::Code(l)
}

/// Largest JSON-safe integer (2^53 − 1): sequence numbers and sizes stay exact in every JSON parser.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `Participant`.
pub static PARTICIPANT: TypeDesc = TypeDesc {
    json_name: "Participant",
    xml_name: "Behoerde",
    doc: "An organisation as author or reader of a message (XÖV Behoerde).",
    fields: &[
        f(
            "directory",
            "verzeichnisdienst",
            code(&codelist::DIRECTORY_SERVICE),
            R,
            "Directory in which the key is registered.",
        ),
        f("key", "kennung", ORG, R, "Organisation key."),
        f("name", "name", LINE, O, "Name of the organisation."),
    ],
};

/// `Header`.
pub static HEADER: TypeDesc = TypeDesc {
    json_name: "Header",
    xml_name: "Nachrichtenkopf",
    doc: "Message header, modelled on XÖV nachrichtenkopf.g2g. In XML, product, productVendor, productVersion, schemaVersion and test are attributes of the root element.",
    fields: &[
        f("messageId", "nachrichtenUUID", UUID, R, "Message id."),
        f("messageType", "nachrichtentyp", code(&codelist::MESSAGE_TYPE), R, "Message type; decides the body."),
        f("createdAt", "erstellungszeitpunkt", TS, R, "When the message was created."),
        f("reader", "leser", Kind::Object(&PARTICIPANT), R, "Receiving organisation."),
        f("author", "autor", Kind::Object(&PARTICIPANT), R, "Sending organisation."),
        f("caseId", "vorgangsID", UUID, O, "Case id; required except for receipts and service notices."),
        f("sequence", "sequenznummer", Kind::UInt { max: MAX_SAFE_INTEGER }, O, "Per case and direction, 1, 2, 3, ..."),
        f(
            "acknowledgedSequence",
            "bestaetigteSequenznummer",
            Kind::UInt { max: MAX_SAFE_INTEGER },
            O,
            "Per case: the last sequence number of the reader's messages about the case that the author had applied when it made this one (0: none); orders concurrent changes.",
        ),
        f("inReplyTo", "antwortAuf", UUID, O, "Message this one answers."),
        f("codelistVersion", "codelistenversion", LINE, R, "Version of the codelist set (1)."),
        // Root attributes in XML (see XML_ROOT_ATTRIBUTES); listed here so JSON Schema and docs see them.
        f("schemaVersion", "@version", LINE, R, "Schema version (1.0); XML: root attribute version."),
        f("product", "@produkt", LINE, O, "Product that wrote the message; XML: root attribute produkt."),
        f(
            "productVendor",
            "@produkthersteller",
            LINE,
            O,
            "Vendor of the product; XML: root attribute produkthersteller.",
        ),
        f("productVersion", "@produktversion", LINE, O, "Version of the product; XML: root attribute produktversion."),
        f("test", "@test", Kind::Bool, O, "Test message; XML: root attribute test."),
    ],
};

/// `ExternalReference`.
pub static EXTERNAL_REFERENCE: TypeDesc = TypeDesc {
    json_name: "ExternalReference",
    xml_name: "Referenz",
    doc: "One party's own ticket number.",
    fields: &[
        f("owner", "eigentuemer", ORG, R, "Organisation that owns the reference."),
        f("system", "system", LINE, O, "Ticket system."),
        f("id", "kennung", LINE, R, "Ticket number there."),
    ],
};

/// `StatusChange`.
pub static STATUS_CHANGE: TypeDesc = TypeDesc {
    json_name: "StatusChange",
    xml_name: "Statuswechsel",
    doc: "One entry of the status history.",
    fields: &[
        eq(f("status", "status", code(&codelist::STATUS), R, "New status."), "statusChangeHistory.status", "status"),
        f("pendingReason", "wartegrund", code(&codelist::PENDING_REASON), O, "Pending reason."),
        eq(f("changedAt", "zeitpunkt", TS, R, "When."), "statusChangeHistory.statusChangeDate", ""),
        f("changedBy", "geaendertVon", ORG, R, "Organisation that changed it."),
        eq(f("reason", "begruendung", TEXT, O, "Why."), "statusChangeHistory.statusChangeReason", ""),
    ],
};

/// `ServiceRef`.
pub static SERVICE_REF: TypeDesc = TypeDesc {
    json_name: "ServiceRef",
    xml_name: "Onlinedienst",
    doc: "An online service by LeiKa key and/or OZG id.",
    fields: &[
        f("leikaKey", "leistungsschluessel", Kind::Ident(Ident::Leika), O, "LeiKa service key."),
        f("ozgId", "ozgID", Kind::Ident(Ident::OzgId), O, "OZG id."),
        f("name", "name", LINE, O, "Name of the service."),
    ],
};

/// `Category`.
pub static CATEGORY: TypeDesc = TypeDesc {
    json_name: "Category",
    xml_name: "Kategorisierung",
    doc: "Affected service and symptom.",
    fields: &[
        eq(
            f("service", "onlinedienst", Kind::Object(&SERVICE_REF), O, "Affected online service."),
            "relatedEntity (service)",
            "related CI / service",
        ),
        eq(
            f("symptom", "symptom", code(&codelist::SYMPTOM_CATEGORY), O, "Symptom category."),
            "troubleTicketCharacteristic",
            "category",
        ),
    ],
};

/// `ContactPoint`.
pub static CONTACT_POINT: TypeDesc = TypeDesc {
    json_name: "ContactPoint",
    xml_name: "Kontakt",
    doc: "Functional contact (team, hotline); not a person.",
    fields: &[
        f("name", "name", LINE, O, "Team or function."),
        f("email", "email", LINE, O, "E-mail address."),
        f("phone", "telefon", LINE, O, "Phone number."),
    ],
};

/// `Party`.
pub static PARTY: TypeDesc = TypeDesc {
    json_name: "Party",
    xml_name: "Beteiligter",
    doc: "An organisation involved in the case.",
    fields: &[
        eq(f("role", "rolle", code(&codelist::PARTY_ROLE), R, "Role in the case."), "relatedParty.role", ""),
        eq(f("organisation", "organisation", ORG, R, "Organisation key."), "relatedParty.partyOrPartyRole.id", ""),
        eq(f("name", "name", LINE, R, "Name."), "relatedParty.partyOrPartyRole.name", ""),
        f("contact", "kontakt", Kind::Object(&CONTACT_POINT), O, "Functional contact point."),
    ],
};

/// `Requester`.
pub static REQUESTER: TypeDesc = TypeDesc {
    json_name: "Requester",
    xml_name: "Anfragende",
    doc: "The person who asked. Personal data: minimised, optional, never logged.",
    fields: &[
        personal(f("name", "name", LINE, O, "Name.")),
        personal(f("email", "email", LINE, O, "E-mail address.")),
        personal(f("phone", "telefon", LINE, O, "Phone number.")),
        f("language", "sprache", LINE, O, "Preferred language (BCP 47)."),
    ],
};

/// `Author`.
pub static AUTHOR: TypeDesc = TypeDesc {
    json_name: "Author",
    xml_name: "Verfasser",
    doc: "Author of a journal entry: organisation and optional team name.",
    fields: &[
        f("organisation", "organisation", ORG, R, "Organisation."),
        f("name", "name", LINE, O, "Team or display name."),
    ],
};

/// `JournalEntry`.
pub static JOURNAL_ENTRY: TypeDesc = TypeDesc {
    json_name: "JournalEntry",
    xml_name: "Journaleintrag",
    doc: "Journal entry, append-only.",
    fields: &[
        eq(f("id", "id", UUID, R, "Entry id."), "note.id", ""),
        eq(
            f("visibility", "sichtbarkeit", code(&codelist::VISIBILITY), R, "Public or internal."),
            "(none)",
            "public / work note",
        ),
        eq(f("author", "verfasser", Kind::Object(&AUTHOR), R, "Who wrote it."), "note.author", ""),
        eq(f("createdAt", "zeitpunkt", TS, R, "When."), "note.date", ""),
        eq(f("text", "text", TEXT, R, "Text."), "note.text", "actions"),
    ],
};

/// `Attachment`.
pub static ATTACHMENT: TypeDesc = TypeDesc {
    json_name: "Attachment",
    xml_name: "Anlage",
    doc: "Attachment, inline (base64) or by reference.",
    fields: &[
        eq(f("id", "id", UUID, R, "Attachment id."), "attachment.id", ""),
        eq(f("fileName", "dateiname", LINE, R, "File name."), "attachment.name", ""),
        eq(f("mediaType", "medientyp", Kind::Ident(Ident::MediaType), R, "Media type."), "attachment.mimeType", ""),
        eq(f("size", "groesse", Kind::UInt { max: MAX_SAFE_INTEGER }, R, "Size in bytes."), "attachment.size", ""),
        f("sha256", "sha256", Kind::Ident(Ident::Sha256), R, "SHA-256 of the content."),
        eq(
            f("content", "inhalt", Kind::Text { max: usize::MAX, line: true }, O, "Content, base64."),
            "attachment.content",
            "",
        ),
        eq(f("uri", "uri", LINE, O, "Where to fetch it (https)."), "attachment.url", ""),
        f("addedBy", "hinzugefuegtVon", ORG, R, "Who added it."),
        f("addedAt", "zeitpunkt", TS, R, "When."),
    ],
};

/// `Solution`.
pub static SOLUTION: TypeDesc = TypeDesc {
    json_name: "Solution",
    xml_name: "Loesung",
    doc: "Solution of a case.",
    fields: &[
        eq(
            f("code", "loesungsart", code(&codelist::RESOLUTION_CODE), R, "How it was resolved."),
            "troubleTicketCharacteristic",
            "closure category",
        ),
        eq(f("text", "text", TEXT, R, "The solution."), "note / statusChangeReason", "resolution"),
        eq(f("resolvedAt", "zeitpunkt", TS, R, "When."), "resolutionDate", "resolution time"),
        f("resolvedBy", "geloestVon", ORG, R, "Organisation that resolved it."),
    ],
};

/// `RelatedCase`.
pub static RELATED_CASE: TypeDesc = TypeDesc {
    json_name: "RelatedCase",
    xml_name: "Beziehung",
    doc: "Relation to another case.",
    fields: &[
        eq(f("caseId", "vorgangsID", UUID, R, "The other case."), "troubleTicketRelationship.id", "related problem"),
        eq(
            f("relation", "art", code(&codelist::RELATION_TYPE), R, "Kind of relation."),
            "troubleTicketRelationship.relationshipType",
            "",
        ),
    ],
};

/// `ServiceLevel`.
pub static SERVICE_LEVEL: TypeDesc = TypeDesc {
    json_name: "ServiceLevel",
    xml_name: "Servicelevel",
    doc: "Service-level target times.",
    fields: &[
        eq(f("agreement", "vereinbarung", LINE, O, "Agreement."), "sla (characteristic)", "SLA"),
        f("responseDue", "reaktionBis", TS, O, "Reaction due by."),
        eq(
            f("resolutionDue", "loesungBis", TS, O, "Resolution due by."),
            "expectedResolutionDate",
            "target resolution time",
        ),
    ],
};

/// `Case`.
pub static CASE: TypeDesc = TypeDesc {
    json_name: "Case",
    xml_name: "Vorgang",
    doc: "A support case (TMF621 troubleTicket, ITIL incident record).",
    fields: &[
        eq(
            f("caseId", "vorgangsID", UUID, R, "Case id, the same at every organisation."),
            "id (of the shared case)",
            "reference",
        ),
        f("revision", "revision", REVISION, R, "Revision; +1 per accepted change."),
        eq(
            f(
                "references",
                "referenz",
                Kind::Object(&EXTERNAL_REFERENCE),
                list(limits::MAX_LIST_ITEMS),
                "Each party's own ticket number.",
            ),
            "externalIdentifier",
            "reference",
        ),
        eq(f("ticketType", "art", code(&codelist::TICKET_TYPE), R, "Kind of request."), "ticketType", "record type"),
        eq(f("status", "status", code(&codelist::STATUS), R, "Current status."), "status", "status"),
        eq(
            f("pendingReason", "wartegrund", code(&codelist::PENDING_REASON), O, "Why pending."),
            "statusChangeReason",
            "on-hold reason",
        ),
        eq(
            f(
                "statusHistory",
                "statuswechsel",
                Kind::Object(&STATUS_CHANGE),
                list1(limits::MAX_HISTORY_ENTRIES),
                "Status history, oldest first.",
            ),
            "statusChangeHistory",
            "",
        ),
        eq(f("impact", "auswirkung", code(&codelist::IMPACT), R, "Impact."), "(characteristic)", "impact"),
        eq(f("urgency", "dringlichkeit", code(&codelist::URGENCY), R, "Urgency."), "(characteristic)", "urgency"),
        eq(
            f("priority", "prioritaet", code(&codelist::PRIORITY), R, "Priority from impact x urgency."),
            "priority",
            "priority",
        ),
        eq(
            f("category", "kategorisierung", Kind::Object(&CATEGORY), R, "Service and symptom."),
            "relatedEntity / characteristic",
            "category",
        ),
        f("region", "region", Kind::Ident(Ident::Ars), O, "Region (ARS)."),
        f("supportLevel", "supportebene", code(&codelist::SUPPORT_LEVEL), R, "Support level."),
        eq(f("channel", "eingangskanal", code(&codelist::CHANNEL), O, "Channel."), "channel", "channel"),
        eq(
            f("parties", "beteiligter", Kind::Object(&PARTY), list1(limits::MAX_LIST_ITEMS), "Organisations involved."),
            "relatedParty",
            "assigned group",
        ),
        eq(
            f("originator", "urheber", ORG, R, "Organisation that created the case."),
            "relatedParty (role originator)",
            "recorded by",
        ),
        eq(
            f("assignee", "zustaendig", ORG, R, "Organisation working the case."),
            "relatedParty (role assignee)",
            "assigned group",
        ),
        personal(eq(
            f("requester", "anfragende", Kind::Object(&REQUESTER), O, "The requester (personal data)."),
            "relatedParty (role customer)",
            "contact",
        )),
        eq(f("subject", "betreff", SUBJECT, R, "Summary."), "name", ""),
        eq(f("description", "beschreibung", TEXT, R, "Description."), "description", "symptoms"),
        eq(f("createdAt", "erstelltAm", TS, R, "Recorded at."), "creationDate", "recorded at"),
        eq(f("updatedAt", "geaendertAm", TS, R, "Last change."), "lastUpdate", ""),
        eq(
            f("journal", "journaleintrag", Kind::Object(&JOURNAL_ENTRY), list(limits::MAX_JOURNAL_ENTRIES), "Journal."),
            "note",
            "actions",
        ),
        eq(
            f("attachments", "anlage", Kind::Object(&ATTACHMENT), list(limits::MAX_ATTACHMENTS), "Attachments."),
            "attachment",
            "",
        ),
        eq(f("solution", "loesung", Kind::Object(&SOLUTION), O, "Solution."), "resolutionDate + note", "resolution"),
        eq(
            f("relatedCases", "beziehung", Kind::Object(&RELATED_CASE), list(limits::MAX_LIST_ITEMS), "Related cases."),
            "troubleTicketRelationship",
            "related incidents / problem",
        ),
        eq(
            f("serviceLevel", "servicelevel", Kind::Object(&SERVICE_LEVEL), O, "Target times."),
            "expectedResolutionDate",
            "SLA targets",
        ),
    ],
};

/// `Forward` body.
pub static FORWARD: TypeDesc = TypeDesc {
    json_name: "Forward",
    xml_name: "Weiterleitung",
    doc: "Forward: the full case, assigned to the reader.",
    fields: &[
        f("case", "vorgang", Kind::Object(&CASE), R, "The case."),
        f("note", "hinweis", TEXT, O, "Why it is forwarded."),
    ],
};

/// `Update` body.
pub static UPDATE: TypeDesc = TypeDesc {
    json_name: "Update",
    xml_name: "Aktualisierung",
    doc: "Update: what changed; lists are additions.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after the update."),
        f("status", "status", code(&codelist::STATUS), O, "New status."),
        f("pendingReason", "wartegrund", code(&codelist::PENDING_REASON), O, "Pending reason."),
        f("statusReason", "begruendung", TEXT, O, "Why the status changed."),
        f("impact", "auswirkung", code(&codelist::IMPACT), O, "New impact."),
        f("urgency", "dringlichkeit", code(&codelist::URGENCY), O, "New urgency."),
        f("priority", "prioritaet", code(&codelist::PRIORITY), O, "New priority."),
        f("subject", "betreff", SUBJECT, O, "New subject."),
        f("description", "beschreibung", TEXT, O, "New description."),
        f("category", "kategorisierung", Kind::Object(&CATEGORY), O, "New categorisation."),
        f("region", "region", Kind::Ident(Ident::Ars), O, "New region."),
        f("supportLevel", "supportebene", code(&codelist::SUPPORT_LEVEL), O, "New support level."),
        f("serviceLevel", "servicelevel", Kind::Object(&SERVICE_LEVEL), O, "New targets."),
        f("assignee", "zustaendig", ORG, O, "New assignee within the sender's sphere (e.g. its vendor)."),
        f("parties", "beteiligter", Kind::Object(&PARTY), list(limits::MAX_LIST_ITEMS), "Parties added."),
        f(
            "references",
            "referenz",
            Kind::Object(&EXTERNAL_REFERENCE),
            list(limits::MAX_LIST_ITEMS),
            "References added.",
        ),
        f("relatedCases", "beziehung", Kind::Object(&RELATED_CASE), list(limits::MAX_LIST_ITEMS), "Relations added."),
        f(
            "journal",
            "journaleintrag",
            Kind::Object(&JOURNAL_ENTRY),
            list(limits::MAX_JOURNAL_ENTRIES),
            "Journal entries added.",
        ),
        f("attachments", "anlage", Kind::Object(&ATTACHMENT), list(limits::MAX_ATTACHMENTS), "Attachments added."),
    ],
};

/// `Resolve` body.
pub static RESOLVE: TypeDesc = TypeDesc {
    json_name: "Resolve",
    xml_name: "Loesungsmeldung",
    doc: "Resolve: the solution.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after resolving."),
        f("solution", "loesung", Kind::Object(&SOLUTION), R, "The solution."),
        f(
            "journal",
            "journaleintrag",
            Kind::Object(&JOURNAL_ENTRY),
            list(limits::MAX_JOURNAL_ENTRIES),
            "Journal entries added.",
        ),
    ],
};

/// `HandBack` body.
pub static HAND_BACK: TypeDesc = TypeDesc {
    json_name: "HandBack",
    xml_name: "Rueckgabe",
    doc: "Hand back to the originator.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after the hand-back."),
        f("solution", "loesung", Kind::Object(&SOLUTION), O, "The solution."),
        f("note", "hinweis", TEXT, O, "Note."),
    ],
};

/// `Close` body.
pub static CLOSE: TypeDesc = TypeDesc {
    json_name: "Close",
    xml_name: "Abschluss",
    doc: "Close: the originator confirms.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after closing."),
        f("closureCode", "abschlussart", code(&codelist::RESOLUTION_CODE), O, "Closure category."),
        f("note", "hinweis", TEXT, O, "Note."),
    ],
};

/// `Reopen` body.
pub static REOPEN: TypeDesc = TypeDesc {
    json_name: "Reopen",
    xml_name: "Wiedereroeffnung",
    doc: "Reopen a resolved case.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after reopening."),
        f("reason", "begruendung", TEXT, R, "Why."),
    ],
};

/// `Reject` body.
pub static REJECT: TypeDesc = TypeDesc {
    json_name: "Reject",
    xml_name: "Ablehnung",
    doc: "Reject: not responsible.",
    fields: &[
        f("revision", "revision", REVISION, R, "Revision after the rejection."),
        f("reason", "grund", code(&codelist::REJECTION_REASON), R, "Why."),
        f("text", "text", TEXT, O, "Explanation."),
        f("suggestedAssignee", "vorgeschlagenZustaendig", ORG, O, "Who may be responsible."),
    ],
};

/// `ReceiptError`.
pub static RECEIPT_ERROR: TypeDesc = TypeDesc {
    json_name: "ReceiptError",
    xml_name: "Fehler",
    doc: "One error of a negative receipt.",
    fields: &[
        f("code", "fehlercode", code(&codelist::ERROR_CODE), R, "Stable error code."),
        f("location", "ort", LINE, O, "JSON pointer into the received message."),
        f("text", "text", TEXT, R, "Explanation."),
    ],
};

/// `Receipt` body.
pub static RECEIPT: TypeDesc = TypeDesc {
    json_name: "Receipt",
    xml_name: "Empfangsbestaetigung",
    doc: "Receipt for a received message.",
    fields: &[
        f("result", "ergebnis", code(&codelist::RECEIPT_RESULT), R, "Accepted or rejected."),
        f("receivedMessageId", "empfangeneNachrichtUUID", UUID, R, "The received message."),
        f("receivedAt", "empfangszeitpunkt", TS, R, "When it was committed or refused."),
        f("digest", "pruefsumme", Kind::Ident(Ident::Sha256), O, "SHA-256 of the received bytes."),
        f("errors", "fehler", Kind::Object(&RECEIPT_ERROR), list(limits::MAX_LIST_ITEMS), "Errors."),
    ],
};

/// `ServiceNotice` body.
pub static SERVICE_NOTICE: TypeDesc = TypeDesc {
    json_name: "ServiceNotice",
    xml_name: "Betriebsmeldung",
    doc: "Disruption or maintenance notice for portals.",
    fields: &[
        f("noticeId", "meldungsID", UUID, R, "Notice id; a later notice with the same id replaces it."),
        f("noticeType", "art", code(&codelist::NOTICE_TYPE), R, "Kind."),
        f("services", "onlinedienst", Kind::Object(&SERVICE_REF), list1(limits::MAX_LIST_ITEMS), "Affected services."),
        f(
            "regions",
            "region",
            Kind::Ident(Ident::Ars),
            list(limits::MAX_LIST_ITEMS),
            "Affected regions; none means everywhere.",
        ),
        f("startsAt", "beginn", TS, R, "Start."),
        f("endsAt", "ende", TS, O, "End."),
        f("title", "titel", LINE, R, "Headline."),
        f("text", "text", TEXT, R, "Text."),
        f("relatedCases", "vorgangsID", UUID, list(limits::MAX_LIST_ITEMS), "Related cases."),
    ],
};

/// Every message type, with its XML root element.
pub static MESSAGES: &[MessageDesc] = &[
    MessageDesc { code: "forward", root: "support.weiterleitung.0101", body: &FORWARD },
    MessageDesc { code: "update", root: "support.aktualisierung.0102", body: &UPDATE },
    MessageDesc { code: "resolve", root: "support.loesung.0103", body: &RESOLVE },
    MessageDesc { code: "handBack", root: "support.rueckgabe.0104", body: &HAND_BACK },
    MessageDesc { code: "close", root: "support.abschluss.0105", body: &CLOSE },
    MessageDesc { code: "reopen", root: "support.wiedereroeffnung.0106", body: &REOPEN },
    MessageDesc { code: "reject", root: "support.ablehnung.0107", body: &REJECT },
    MessageDesc { code: "receipt", root: "support.empfangsbestaetigung.0108", body: &RECEIPT },
    MessageDesc { code: "serviceNotice", root: "support.betriebsmeldung.0201", body: &SERVICE_NOTICE },
];

/// XML namespace of SDX messages (only the root element is qualified; local elements are unqualified, as in XÖV).
pub const XML_NAMESPACE: &str = "urn:xoev-de:sdx:schema:1.0";
/// Name of the header element in XML.
pub const XML_HEADER: &str = "nachrichtenkopf";

/// Every structured type, for schema generation (dependencies before dependants).
pub static ALL_TYPES: &[&TypeDesc] = &[
    &PARTICIPANT,
    &HEADER,
    &EXTERNAL_REFERENCE,
    &STATUS_CHANGE,
    &SERVICE_REF,
    &CATEGORY,
    &CONTACT_POINT,
    &PARTY,
    &REQUESTER,
    &AUTHOR,
    &JOURNAL_ENTRY,
    &ATTACHMENT,
    &SOLUTION,
    &RELATED_CASE,
    &SERVICE_LEVEL,
    &CASE,
    &FORWARD,
    &UPDATE,
    &RESOLVE,
    &HAND_BACK,
    &CLOSE,
    &REOPEN,
    &REJECT,
    &RECEIPT_ERROR,
    &RECEIPT,
    &SERVICE_NOTICE,
];

/// The message description for a message type code.
pub fn message_by_code(code: &str) -> Option<&'static MessageDesc> {
    MESSAGES.iter().find(|m| m.code == code)
}

/// The message description for an XML root element local name.
pub fn message_by_root(root: &[u8]) -> Option<&'static MessageDesc> {
    MESSAGES.iter().find(|m| m.root.as_bytes() == root)
}

/// Whether a header field is carried as a root attribute in XML (its `xml` name starts with `@`).
pub fn is_root_attribute(fd: &Field) -> bool {
    fd.xml.starts_with('@')
}
