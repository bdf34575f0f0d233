//! What a connector needs from a ticket system: the [`TicketSystem`] trait, implemented once per system
//! (`systems::otobo`, `systems::rt`, `systems::redmine`), and the ticket as the connector sees it — in the
//! system's own vocabulary (its status names, queue names, …). Translating that vocabulary to SDX is the
//! mapping's job ([`crate::mapping`]), deciding what travels is the sync's ([`crate::sync`]).
//!
//! Every ticket system answers some refused writes with success (RT: 200 with a message; Redmine: 204 for an
//! unknown status; OTOBO: 200 with `Error`), so every implementation reads back what it wrote and returns
//! [`SystemError::Refused`] when the system did not take it.

use std::collections::BTreeMap;
use std::future::Future;

use time::OffsetDateTime;

/// A ticket's id in its system (RT and Redmine: the number; OTOBO: the `TicketID`, not the `TicketNumber`).
pub type TicketId = String;

/// A ticket as read from its system.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// The system's id.
    pub id: TicketId,
    /// The number an agent sees (OTOBO's `TicketNumber`; RT and Redmine: the id).
    pub number: String,
    /// Title / subject.
    pub title: String,
    /// The description: the first article (OTOBO), the create transaction's content (RT), the description
    /// (Redmine). Empty when there is none.
    pub description: String,
    /// Status name as the system shows it (`open`, `closed successful`, `In Progress`).
    pub status: String,
    /// Priority name (`3 normal`, `Low`, `Normal`), when the system has one.
    pub priority: Option<String>,
    /// OTOBO queue, RT queue, Redmine project identifier.
    pub queue: Option<String>,
    /// OTOBO type, Redmine tracker name; RT: `None`.
    pub kind: Option<String>,
    /// The customer/requester, when the system has one.
    pub requester: Option<Contact>,
    /// Custom/dynamic fields by name, only those with a value.
    pub fields: BTreeMap<String, String>,
    /// When the ticket was created.
    pub created_at: OffsetDateTime,
    /// When the ticket last changed (second resolution).
    pub updated_at: OffsetDateTime,
    /// Comments/articles after the description, oldest first.
    pub comments: Vec<Comment>,
}

/// A person on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// Display name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
}

/// One comment (OTOBO article, RT comment/correspondence, Redmine journal with notes).
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The system's id of the comment (article id, transaction id, journal id).
    pub id: String,
    /// Visible to the customer / public (OTOBO `IsVisibleForCustomer`, RT correspond, Redmine not
    /// `private_notes`). Internal notes never leave the organisation.
    pub public: bool,
    /// Who wrote it (login or name), when the system says.
    pub author: Option<String>,
    /// When it was written.
    pub created_at: OffsetDateTime,
    /// The text (plain text; HTML is reduced to text by the implementation).
    pub text: String,
    /// Files that came with it.
    pub files: Vec<FileInfo>,
}

/// A file on a ticket (its content is fetched with [`TicketSystem::download`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The system's id of the file (attachment id; OTOBO: `ArticleID/FileID`).
    pub id: String,
    /// File name.
    pub name: String,
    /// Media type (`application/pdf`).
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A ticket to create.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewTicket {
    /// Title / subject.
    pub title: String,
    /// Description / first article (public).
    pub description: String,
    /// Status name.
    pub status: String,
    /// Priority name.
    pub priority: Option<String>,
    /// Queue / project.
    pub queue: String,
    /// Type / tracker.
    pub kind: Option<String>,
    /// Customer/requester.
    pub requester: Option<Contact>,
    /// Custom/dynamic fields to set (the SDX case field among them).
    pub fields: BTreeMap<String, String>,
}

/// Changes to a ticket's fields; `None` and absent fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TicketChange {
    /// New status name.
    pub status: Option<String>,
    /// New priority name.
    pub priority: Option<String>,
    /// New queue / project.
    pub queue: Option<String>,
    /// New type / tracker.
    pub kind: Option<String>,
    /// Custom/dynamic fields to set.
    pub fields: BTreeMap<String, String>,
}

impl TicketChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.priority.is_none()
            && self.queue.is_none()
            && self.kind.is_none()
            && self.fields.is_empty()
    }
}

/// A comment to add, with files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewComment {
    /// Public (visible to the customer) or internal.
    pub public: bool,
    /// The text. The sync puts a marker line into it (see [`crate::sync`]) by which it recognises the comment
    /// later: [`Comment::text`] must give it back unchanged.
    pub text: String,
    /// Files to attach with the comment.
    pub files: Vec<NewFile>,
}

/// A file to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// What a system offers, for `sdx connector check` and for limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vocabulary {
    /// Status names.
    pub statuses: Vec<String>,
    /// Priority names.
    pub priorities: Vec<String>,
    /// Queue names / project identifiers.
    pub queues: Vec<String>,
    /// Type / tracker names.
    pub kinds: Vec<String>,
    /// Custom/dynamic field names.
    pub fields: Vec<String>,
    /// Largest file the system takes, in bytes, when it has a limit.
    pub max_file_bytes: Option<u64>,
    /// Longest title, in characters.
    pub max_title_chars: Option<usize>,
}

/// Why a call to a ticket system failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// Not reachable, timed out, or a 5xx: try again later.
    #[error("{system} is unavailable: {detail}")]
    Unavailable {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// What happened.
        detail: String,
    },
    /// The credentials were refused.
    #[error("{system} refused the credentials: {detail}")]
    Auth {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// What the system said.
        detail: String,
    },
    /// No such ticket (or not visible to the connector's user).
    #[error("{system} has no ticket {id}")]
    NotFound {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// The ticket id.
        id: String,
    },
    /// The system did not take a write (a status its workflow does not allow, an unknown value, a field it
    /// does not have), whatever HTTP status it answered.
    #[error("{system} refused: {detail}")]
    Refused {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// What the system said or what the read-back showed.
        detail: String,
    },
    /// A file or text above the system's limit.
    #[error("{system} takes at most {limit} for {what}, this is {size}")]
    TooLarge {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// What was too large (`file report.pdf`, `title`).
        what: String,
        /// Its size (bytes or characters).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// An answer the implementation does not understand.
    #[error("{system} answered unexpectedly: {detail}")]
    Protocol {
        /// `otobo`, `rt`, `redmine`.
        system: &'static str,
        /// What was unexpected.
        detail: String,
    },
}

impl SystemError {
    /// Whether trying again later may succeed (the system is down or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(self, SystemError::Unavailable { .. })
    }
}

/// Result of a call to a ticket system.
pub type SystemResult<T> = Result<T, SystemError>;

/// One ticket system, reached over its REST API.
///
/// Implementations are cheap to clone handles (a `reqwest::Client` and settings); every method may be called
/// concurrently. Writes are verified by reading back (see the module documentation).
pub trait TicketSystem: Send + Sync {
    /// `otobo`, `rt` or `redmine`.
    fn kind(&self) -> &'static str;

    /// Ids of the tickets changed at or after `since` (inclusive, second resolution: the caller de-duplicates),
    /// in any order. Includes tickets whose only change is a new comment.
    fn changed_since(&self, since: OffsetDateTime) -> impl Future<Output = SystemResult<Vec<TicketId>>> + Send;

    /// The ticket with its comments and their files' metadata.
    fn get(&self, id: &str) -> impl Future<Output = SystemResult<Ticket>> + Send;

    /// The ticket whose custom/dynamic field `field` has the value `value`, if any (the first when several).
    fn find_by_field(&self, field: &str, value: &str) -> impl Future<Output = SystemResult<Option<TicketId>>> + Send;

    /// Create a ticket; returns its id. The read-back must show the status, queue and fields asked for.
    fn create(&self, ticket: &NewTicket) -> impl Future<Output = SystemResult<TicketId>> + Send;

    /// Change fields; [`SystemError::Refused`] when the read-back does not show every value asked for (a status
    /// the workflow refuses, for instance).
    fn update(&self, id: &str, change: &TicketChange) -> impl Future<Output = SystemResult<()>> + Send;

    /// Add a comment with its files; returns the comment's id. [`SystemError::TooLarge`] for a file above the
    /// system's limit, before anything is written.
    fn comment(&self, id: &str, comment: &NewComment) -> impl Future<Output = SystemResult<String>> + Send;

    /// The bytes of a file listed on the ticket.
    fn download(&self, id: &str, file: &FileInfo) -> impl Future<Output = SystemResult<Vec<u8>>> + Send;

    /// The statuses, priorities, queues, types and fields the system offers, and its limits.
    fn vocabulary(&self) -> impl Future<Output = SystemResult<Vocabulary>> + Send;
}
