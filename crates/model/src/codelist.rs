//! The SDX vocabulary: every ITIL-based codelist as a Rust enum, each with a URN and a version.
//!
//! A codelist value cannot be represented unless it is on its list: parsing an unknown code fails with
//! [`UnknownCode`]. [`ALL`] lists the metadata of every codelist; the codec exports them as OASIS Genericode
//! and uses them for the `listURI`/`listVersionID` attributes of the XÖV `Code` type.

use std::fmt;

/// Version of the set of SDX codelists that this build speaks (every list below carries this version).
pub const CODELIST_VERSION: &str = "1";

/// One entry of a codelist: the code and its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The code as it appears in documents.
    pub code: &'static str,
    /// German name (shown to case workers).
    pub name_de: &'static str,
    /// English description, with the ITIL / TMF621 equivalent where there is one.
    pub description: &'static str,
}

/// Metadata of one codelist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeList {
    /// Short identifier, also the file name of the Genericode export (`status` → `status.xml`).
    pub id: &'static str,
    /// Canonical URI (XÖV `listURI`).
    pub urn: &'static str,
    /// Version (XÖV `listVersionID`).
    pub version: &'static str,
    /// German name of the list.
    pub name_de: &'static str,
    /// What the list is for.
    pub description: &'static str,
    /// The entries, in their defined order.
    pub entries: &'static [Entry],
}

impl CodeList {
    /// Whether `code` is on this list.
    pub fn contains(&self, code: &str) -> bool {
        self.entries.iter().any(|e| e.code == code)
    }
}

/// A code that is not on its codelist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[unknownCode] `{code}` is not a code of list {list} (allowed: {allowed})")]
pub struct UnknownCode {
    /// The list that was asked.
    pub list: &'static str,
    /// The code that was given (truncated to 64 characters).
    pub code: String,
    /// The allowed codes, comma separated.
    pub allowed: String,
}

/// Implemented by every codelist enum.
pub trait Coded: Sized + Copy + 'static {
    /// The list's metadata.
    const LIST: &'static CodeList;
    /// Every value, in list order.
    const VALUES: &'static [Self];
    /// The code of this value.
    fn code(self) -> &'static str;
    /// Parse a code.
    fn parse(code: &str) -> Result<Self, UnknownCode>;
    /// The entry (code and names) of this value.
    fn entry(self) -> &'static Entry;
}

fn unknown(list: &'static CodeList, code: &str) -> UnknownCode {
    UnknownCode {
        list: list.id,
        code: code.chars().take(64).collect(),
        allowed: list.entries.iter().map(|e| e.code).collect::<Vec<_>>().join(", "),
    }
}

macro_rules! codelist {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $konst:ident {
            id: $id:literal, name_de: $lname:literal, description: $ldesc:literal,
            $( $variant:ident = $code:literal, $de:literal, $desc:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                #[doc = concat!("`", $code, "` — ", $de, ": ", $desc)]
                $variant,
            )+
        }

        #[doc = concat!("Metadata of the codelist `", $id, "`.")]
        pub static $konst: CodeList = CodeList {
            id: $id,
            urn: concat!("urn:xoev-de:sdx:codeliste:", $id),
            version: CODELIST_VERSION,
            name_de: $lname,
            description: $ldesc,
            entries: &[ $( Entry { code: $code, name_de: $de, description: $desc }, )+ ],
        };

        impl Coded for $name {
            const LIST: &'static CodeList = &$konst;
            const VALUES: &'static [Self] = &[ $( $name::$variant, )+ ];
            fn code(self) -> &'static str {
                match self { $( $name::$variant => $code, )+ }
            }
            fn parse(code: &str) -> Result<Self, UnknownCode> {
                match code {
                    $( $code => Ok($name::$variant), )+
                    other => Err(unknown(&$konst, other)),
                }
            }
            fn entry(self) -> &'static Entry {
                let code = self.code();
                $konst.entries.iter().find(|e| e.code == code).expect("every variant has an entry")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                <$name as Coded>::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(CodeVisitor::<$name>(std::marker::PhantomData))
            }
        }
    };
}

struct CodeVisitor<T>(std::marker::PhantomData<T>);

impl<T: Coded> serde::de::Visitor<'_> for CodeVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a code of list {}", T::LIST.id)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::parse(v).map_err(E::custom)
    }
}

codelist! {
    /// Kind of support request (ITIL record types; TMF621 `ticketType`).
    pub enum TicketType: TICKET_TYPE {
        id: "ticketType", name_de: "Art des Anliegens", description: "Kind of support request (ITIL record type, TMF621 ticketType).",
        Incident = "incident", "Störung", "ITIL incident: unplanned interruption or reduced quality of a service";
        ServiceRequest = "serviceRequest", "Serviceanfrage", "ITIL service request: request for something standard (access, change of data)";
        InformationRequest = "informationRequest", "Auskunftsersuchen", "Question about a service or its use";
        Complaint = "complaint", "Beschwerde", "Complaint about a service or its handling";
        Problem = "problem", "Problem", "ITIL problem: cause of one or more incidents";
    }
}

codelist! {
    /// Lifecycle status of a case (union of ITIL incident states and TMF621 / MEF 124 states).
    pub enum Status: STATUS {
        id: "status", name_de: "Bearbeitungsstatus", description: "Lifecycle status of a case; covers ITIL and TMF621/MEF 124 states.",
        New = "new", "Neu", "Recorded, not yet acknowledged by the assignee";
        Acknowledged = "acknowledged", "Angenommen", "Receipt confirmed by the assignee (TMF621 acknowledged)";
        InProgress = "inProgress", "In Bearbeitung", "Being worked on (TMF621 inProgress, ITIL in progress)";
        Pending = "pending", "Wartend", "Waiting; the pending reason says for whom (TMF621 pending)";
        OnHold = "onHold", "Zurückgestellt", "Deliberately put on hold (TMF621 held, ServiceNow on hold)";
        Resolved = "resolved", "Gelöst", "A solution was given (TMF621 resolved)";
        Closed = "closed", "Abgeschlossen", "Confirmed by the originator or closed after timeout; terminal";
        Rejected = "rejected", "Abgelehnt", "The receiver is not responsible (TMF621 rejected)";
        Cancelled = "cancelled", "Storniert", "Withdrawn by the originator; terminal (TMF621 cancelled)";
        Reopened = "reopened", "Wiedereröffnet", "Resolved case reopened by the originator (MEF 124 reopened)";
    }
}

codelist! {
    /// Why a case is pending.
    pub enum PendingReason: PENDING_REASON {
        id: "pendingReason", name_de: "Grund der Wartestellung", description: "Why a pending case waits (ServiceNow on-hold reason, MEF 124 pending).",
        WaitingForRequester = "waitingForRequester", "Wartet auf Anfragende", "Information from the requester or originator is needed";
        WaitingForThirdParty = "waitingForThirdParty", "Wartet auf Dritte", "Waiting for another organisation";
        WaitingForVendor = "waitingForVendor", "Wartet auf Hersteller", "Waiting for the software vendor (3rd level)";
        WaitingForChange = "waitingForChange", "Wartet auf Änderung", "Waiting for a planned change or deployment";
    }
}

codelist! {
    /// ITIL impact.
    pub enum Impact: IMPACT {
        id: "impact", name_de: "Auswirkung", description: "ITIL impact: how widely the service is affected.",
        High = "high", "Hoch", "Many users or a whole service affected";
        Medium = "medium", "Mittel", "A group of users or part of a service affected";
        Low = "low", "Niedrig", "A single user affected";
    }
}

codelist! {
    /// ITIL urgency.
    pub enum Urgency: URGENCY {
        id: "urgency", name_de: "Dringlichkeit", description: "ITIL urgency: how soon a resolution is needed.",
        High = "high", "Hoch", "Needed at once (deadline, legal time limit)";
        Medium = "medium", "Mittel", "Needed soon";
        Low = "low", "Niedrig", "Can wait";
    }
}

codelist! {
    /// ITIL priority, derived from impact × urgency by [`Priority::from_matrix`].
    pub enum Priority: PRIORITY {
        id: "priority", name_de: "Priorität", description: "ITIL priority 1-5, derived from impact x urgency.",
        Critical = "critical", "1 – Kritisch", "ITIL priority 1";
        High = "high", "2 – Hoch", "ITIL priority 2";
        Moderate = "moderate", "3 – Mittel", "ITIL priority 3";
        Low = "low", "4 – Niedrig", "ITIL priority 4";
        Planning = "planning", "5 – Planung", "ITIL priority 5";
    }
}

impl Priority {
    /// The ITIL matrix: H/H → critical; H/M, M/H → high; H/L, M/M, L/H → moderate; M/L, L/M → low; L/L → planning.
    pub fn from_matrix(impact: Impact, urgency: Urgency) -> Priority {
        let i = match impact {
            Impact::High => 0,
            Impact::Medium => 1,
            Impact::Low => 2,
        };
        let u = match urgency {
            Urgency::High => 0,
            Urgency::Medium => 1,
            Urgency::Low => 2,
        };
        match i + u {
            0 => Priority::Critical,
            1 => Priority::High,
            2 => Priority::Moderate,
            3 => Priority::Low,
            _ => Priority::Planning,
        }
    }

    /// The ITIL priority number, 1 (critical) to 5 (planning).
    pub fn number(self) -> u8 {
        match self {
            Priority::Critical => 1,
            Priority::High => 2,
            Priority::Moderate => 3,
            Priority::Low => 4,
            Priority::Planning => 5,
        }
    }
}

codelist! {
    /// Support level.
    pub enum SupportLevel: SUPPORT_LEVEL {
        id: "supportLevel", name_de: "Supportebene", description: "Support level that currently handles the case.",
        FirstLevel = "firstLevel", "1st-Level-Support", "Service desk, 115, user help desk";
        SecondLevel = "secondLevel", "2nd-Level-Support", "Specialist support of the operating organisation";
        ThirdLevel = "thirdLevel", "3rd-Level-Support", "Vendor or development";
    }
}

codelist! {
    /// Role of a party in a case.
    pub enum PartyRole: PARTY_ROLE {
        id: "partyRole", name_de: "Rolle der Organisation", description: "Role of an organisation in a case (TMF621 relatedParty.role).",
        Mila = "mila", "Mitnutzendes Land / mitnutzende Organisation", "Organisation that co-uses an EfA service (MiLa)";
        Bela = "bela", "Betreibendes Land / betreibende Organisation", "Organisation that operates an EfA service (BeLa)";
        Vendor = "vendor", "Hersteller", "Software vendor, 3rd level";
        Portal = "portal", "Verwaltungsportal", "Portal that takes requests in or shows notices";
        ServiceDesk = "serviceDesk", "Service Desk", "Service desk or 115 service centre (1st level)";
    }
}

codelist! {
    /// Channel through which the request came in.
    pub enum Channel: CHANNEL {
        id: "channel", name_de: "Eingangskanal", description: "Channel of the original request (ITIL channel, TMF621 channel).",
        Phone = "phone", "Telefon", "Telephone";
        Phone115 = "phone115", "Behördennummer 115", "Public-administration number 115";
        Email = "email", "E-Mail", "E-mail";
        WebForm = "webForm", "Webformular", "Web contact form";
        Portal = "portal", "Verwaltungsportal", "Administration portal or user account";
        Chat = "chat", "Chat", "Chat or chatbot";
        Letter = "letter", "Brief", "Letter";
        InPerson = "inPerson", "Persönlich", "In person at an office";
    }
}

codelist! {
    /// Symptom category.
    pub enum SymptomCategory: SYMPTOM_CATEGORY {
        id: "symptomCategory", name_de: "Symptomkategorie", description: "What the requester observes (ITIL category).",
        Unavailable = "unavailable", "Dienst nicht erreichbar", "Service cannot be reached";
        Login = "login", "Anmeldung / Nutzerkonto", "Login, user account, eID";
        FormError = "formError", "Fehler im Formular", "Form cannot be filled or submitted";
        Upload = "upload", "Hochladen von Nachweisen", "Documents cannot be uploaded";
        Payment = "payment", "Bezahlung", "ePayment fails";
        Submission = "submission", "Übermittlung an Fachverfahren", "Submission does not reach the authority";
        Notification = "notification", "Bescheid / Benachrichtigung", "Notice or message not received";
        Performance = "performance", "Antwortzeiten", "Slow responses";
        Data = "data", "Falsche Daten", "Wrong or missing data";
        Usability = "usability", "Bedienung", "Unclear use, accessibility";
        Other = "other", "Sonstiges", "Anything else";
    }
}

codelist! {
    /// Visibility of a journal entry.
    pub enum Visibility: VISIBILITY {
        id: "visibility", name_de: "Sichtbarkeit", description: "Whether a journal entry may reach the requester (RT correspond/comment, ServiceNow comments/work_notes).",
        Public = "public", "Öffentlich", "May be shown to the requester";
        Internal = "internal", "Intern", "Between support organisations only";
    }
}

codelist! {
    /// How a case was resolved.
    pub enum ResolutionCode: RESOLUTION_CODE {
        id: "resolutionCode", name_de: "Lösungsart", description: "How a case was resolved (ITIL closure category).",
        Fixed = "fixed", "Behoben", "Fault corrected";
        Workaround = "workaround", "Umgehungslösung", "Workaround given, cause remains";
        InformationProvided = "informationProvided", "Auskunft erteilt", "Question answered or use explained";
        UserError = "userError", "Bedienfehler", "Caused by wrong use";
        NoFaultFound = "noFaultFound", "Kein Fehler feststellbar", "Could not be reproduced";
        Duplicate = "duplicate", "Dublette", "Same as another case";
        ChangeRequested = "changeRequested", "Änderung beauftragt", "Handled by a change request";
        Withdrawn = "withdrawn", "Zurückgezogen", "Requester withdrew the request";
    }
}

codelist! {
    /// Why a receiver rejects a case.
    pub enum RejectionReason: REJECTION_REASON {
        id: "rejectionReason", name_de: "Ablehnungsgrund", description: "Why a receiver rejects a forwarded case.",
        NotResponsible = "notResponsible", "Nicht zuständig", "Another organisation is responsible";
        UnknownService = "unknownService", "Dienst unbekannt", "The named online service is not operated here";
        InsufficientInformation = "insufficientInformation", "Angaben unzureichend", "Cannot be worked on with the given information";
        Duplicate = "duplicate", "Dublette", "Already known as another case";
        OutOfScope = "outOfScope", "Kein Supportfall", "Not a support matter";
    }
}

codelist! {
    /// Kind of service notice.
    pub enum NoticeType: NOTICE_TYPE {
        id: "noticeType", name_de: "Art der Meldung", description: "Kind of service notice for portals.",
        Disruption = "disruption", "Störung", "Unplanned disruption";
        Maintenance = "maintenance", "Wartung", "Planned maintenance window";
        Resolution = "resolution", "Entstörung", "A disruption has ended";
    }
}

codelist! {
    /// Message type (XÖV `nachrichtentyp`).
    pub enum MessageType: MESSAGE_TYPE {
        id: "messageType", name_de: "Nachrichtentyp", description: "Type of an SDX message; decides the body.",
        Forward = "forward", "Weiterleitung", "Full case to a new assignee (use case 2.1)";
        Update = "update", "Aktualisierung", "Changes to a case: status, fields, journal entries, attachments";
        Resolve = "resolve", "Lösung", "Assignee resolves the case, with solution";
        HandBack = "handBack", "Rückgabe", "Assignee hands the case back to the originator (use case 2.2)";
        Close = "close", "Abschluss", "Originator confirms and closes the case";
        Reopen = "reopen", "Wiedereröffnung", "Originator reopens a resolved case";
        Reject = "reject", "Ablehnung", "Receiver is not responsible";
        Receipt = "receipt", "Empfangsbestätigung", "Positive or negative receipt of a message";
        ServiceNotice = "serviceNotice", "Betriebsmeldung", "Disruption or maintenance notice";
    }
}

codelist! {
    /// Receipt result.
    pub enum ReceiptResult: RECEIPT_RESULT {
        id: "receiptResult", name_de: "Ergebnis der Empfangsbestätigung", description: "Whether a message was accepted.",
        Accepted = "accepted", "Angenommen", "Committed by the receiver";
        Rejected = "rejected", "Abgewiesen", "Not accepted; error codes say why";
    }
}

codelist! {
    /// Kind of relation between cases.
    pub enum RelationType: RELATION_TYPE {
        id: "relationType", name_de: "Art der Beziehung", description: "Relation between cases (TMF621 troubleTicketRelationship).",
        RelatedTo = "relatedTo", "Steht in Beziehung zu", "Loosely related";
        DuplicateOf = "duplicateOf", "Dublette von", "Same request as the other case";
        ParentOf = "parentOf", "Übergeordnet zu", "The other case is part of this one";
        ChildOf = "childOf", "Untergeordnet zu", "This case is part of the other one";
        CausedBy = "causedBy", "Verursacht durch", "Caused by the other case (e.g. a problem)";
        Replaces = "replaces", "Ersetzt", "This case replaces the other (e.g. sent anew after a rejection)";
    }
}

codelist! {
    /// Directory service in which an organisation key is registered (XÖV `verzeichnisdienst`).
    pub enum DirectoryService: DIRECTORY_SERVICE {
        id: "directoryService", name_de: "Verzeichnisdienst", description: "Directory in which an organisation key is registered.",
        Dvdv = "DVDV", "Deutsches Verwaltungsdiensteverzeichnis", "DVDV organisation key prefix:id";
        Sdx = "SDX", "SDX-Verzeichnis", "SDX federation directory";
    }
}

codelist! {
    /// Stable error codes of validation, receipts and the API.
    pub enum ErrorCode: ERROR_CODE {
        id: "errorCode", name_de: "Fehlercode", description: "Stable machine-readable error codes used in validation results and negative receipts.",
        Malformed = "malformed", "Syntaktisch fehlerhaft", "Not well-formed JSON or XML, truncated, invalid UTF-8";
        TooLarge = "tooLarge", "Zu groß", "Document, string or list exceeds a documented limit";
        TooDeep = "tooDeep", "Zu tief verschachtelt", "Nesting exceeds the limit";
        DuplicateKey = "duplicateKey", "Doppelter Schlüssel", "A JSON member or XML element appears twice where once is allowed";
        ForbiddenXml = "forbiddenXml", "Unzulässiges XML-Konstrukt", "DTD, entity declaration or entity reference";
        WrongRoot = "wrongRoot", "Falsches Wurzelelement", "Root element or namespace is not an SDX message";
        SchemaViolation = "schemaViolation", "Schemaverletzung", "Missing, unknown or mistyped member";
        UnknownCode = "unknownCode", "Unbekannter Code", "Value not on its codelist";
        UnsupportedVersion = "unsupportedVersion", "Nicht unterstützte Version", "Schema or codelist version not supported";
        InvalidIdentifier = "invalidIdentifier", "Ungültiger Bezeichner", "LeiKa key, ARS, organisation key, UUID or hash malformed";
        InvalidTimestamp = "invalidTimestamp", "Ungültiger Zeitstempel", "Not RFC 3339 with offset, or out of order";
        MessageTypeMismatch = "messageTypeMismatch", "Nachrichtentyp passt nicht", "Header message type differs from the body";
        InvalidTransition = "invalidTransition", "Unzulässiger Statuswechsel", "Status change not allowed by the lifecycle";
        PriorityMismatch = "priorityMismatch", "Priorität widerspricht Matrix", "Priority not equal to ITIL impact x urgency";
        SolutionMissing = "solutionMissing", "Lösung fehlt", "Resolve or resolved case without solution";
        PendingReasonMissing = "pendingReasonMissing", "Wartegrund fehlt", "Pending status without reason, or reason without pending";
        AttachmentMismatch = "attachmentMismatch", "Anhang inkonsistent", "Inline content differs from size or SHA-256, or neither content nor reference";
        DuplicateId = "duplicateId", "Doppelte Kennung", "Two journal entries or attachments share an id";
        InconsistentCase = "inconsistentCase", "Vorgang widersprüchlich", "Case contradicts itself or the receiver's copy (status vs history, parties, a case that exists already)";
        SignatureInvalid = "signatureInvalid", "Signatur ungültig", "Signature missing, malformed or not valid";
        DecryptionFailed = "decryptionFailed", "Entschlüsselung fehlgeschlagen", "Cannot be decrypted with the recipient key";
        UnknownSender = "unknownSender", "Absender unbekannt", "Author not a known peer";
        SenderMismatch = "senderMismatch", "Absender passt nicht", "Author differs from transport identity or signer";
        WrongRecipient = "wrongRecipient", "Falscher Empfänger", "Message addressed to another organisation";
        Replay = "replay", "Wiederholung mit anderem Inhalt", "Known message id with different content";
        OutOfOrder = "outOfOrder", "Reihenfolge verletzt", "Sequence number gap or repeat";
        NotPermitted = "notPermitted", "Nicht berechtigt", "Sender may not make this change";
        UnknownCase = "unknownCase", "Vorgang unbekannt", "Case id not known to the receiver";
        Internal = "internal", "Interner Fehler", "Receiver failed; sender should retry";
    }
}

/// Every codelist, in export order.
pub static ALL: &[&CodeList] = &[
    &TICKET_TYPE,
    &STATUS,
    &PENDING_REASON,
    &IMPACT,
    &URGENCY,
    &PRIORITY,
    &SUPPORT_LEVEL,
    &PARTY_ROLE,
    &CHANNEL,
    &SYMPTOM_CATEGORY,
    &VISIBILITY,
    &RESOLUTION_CODE,
    &REJECTION_REASON,
    &NOTICE_TYPE,
    &MESSAGE_TYPE,
    &RECEIPT_RESULT,
    &RELATION_TYPE,
    &DIRECTORY_SERVICE,
    &ERROR_CODE,
];

/// Look a codelist up by its id.
pub fn by_id(id: &str) -> Option<&'static CodeList> {
    ALL.iter().copied().find(|l| l.id == id)
}

impl Status {
    /// Terminal states allow no further change.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Closed | Status::Cancelled)
    }

    /// Whether the lifecycle allows going from `self` to `next` (see `docs/model.md`, "Status lifecycle").
    pub fn can_transition_to(self, next: Status) -> bool {
        use Status::*;
        if self == next {
            // Only pending → pending (a new pending reason) is a meaningful self-transition.
            return self == Pending;
        }
        match self {
            New => matches!(next, Acknowledged | InProgress | Pending | OnHold | Resolved | Rejected | Cancelled),
            Acknowledged => matches!(next, InProgress | Pending | OnHold | Resolved | Rejected | Cancelled),
            InProgress => matches!(next, Pending | OnHold | Resolved | Rejected | Cancelled),
            Pending => matches!(next, InProgress | OnHold | Resolved | Cancelled),
            OnHold => matches!(next, InProgress | Pending | Resolved | Cancelled),
            Resolved => matches!(next, Closed | Reopened),
            Reopened => matches!(next, Acknowledged | InProgress | Pending | OnHold | Resolved | Cancelled),
            Rejected => matches!(next, Closed | Cancelled),
            Closed | Cancelled => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_matrix_follows_itil() {
        use Impact as I;
        use Urgency as U;
        assert_eq!(Priority::from_matrix(I::High, U::High), Priority::Critical);
        assert_eq!(Priority::from_matrix(I::High, U::Medium), Priority::High);
        assert_eq!(Priority::from_matrix(I::Medium, U::High), Priority::High);
        assert_eq!(Priority::from_matrix(I::High, U::Low), Priority::Moderate);
        assert_eq!(Priority::from_matrix(I::Medium, U::Medium), Priority::Moderate);
        assert_eq!(Priority::from_matrix(I::Low, U::High), Priority::Moderate);
        assert_eq!(Priority::from_matrix(I::Medium, U::Low), Priority::Low);
        assert_eq!(Priority::from_matrix(I::Low, U::Medium), Priority::Low);
        assert_eq!(Priority::from_matrix(I::Low, U::Low), Priority::Planning);
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_fail() {
        for list in ALL {
            let mut seen = std::collections::HashSet::new();
            for e in list.entries {
                assert!(seen.insert(e.code), "duplicate code {} in {}", e.code, list.id);
            }
        }
        for s in Status::VALUES {
            assert_eq!(Status::parse(s.code()), Ok(*s));
        }
        let err = Status::parse("open").unwrap_err();
        assert!(err.to_string().starts_with("[unknownCode]"));
        assert!(by_id("status").is_some());
    }

    #[test]
    fn terminal_states_have_no_exit() {
        for s in Status::VALUES {
            for n in Status::VALUES {
                if s.is_terminal() {
                    assert!(!s.can_transition_to(*n));
                }
            }
        }
        assert!(Status::Resolved.can_transition_to(Status::Reopened));
        assert!(!Status::New.can_transition_to(Status::Closed));
    }
}
