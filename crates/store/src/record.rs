//! The records the store keeps (plain structs holding `sdx_model` types), the small state enums, the case query
//! and its page type.
//!
//! Times are stored as Unix milliseconds (UTC) and come back in UTC, to the millisecond; where the original
//! offset matters it is kept in the stored documents themselves (the case JSON, the signed message).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use sdx_model::{
    Ars, Case, CaseId, LeikaKey, MessageId, MessageType, NoticeType, OrgKey, Priority, ReceiptResult, ServiceNotice,
    Sha256Hex, Status, TicketType, Timestamp,
};

use crate::error::{Error, Result};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $code)]
                $variant,
            )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored (and serialized) code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }

            /// Parse a code as produced by [`Self::as_str`].
            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub(crate) fn decode(code: &str) -> Result<Self> {
                Self::parse(code)
                    .ok_or_else(|| Error::Corrupt(format!("unknown {} `{code}`", stringify!($name))))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Our organisation's role in a case.
    OurRole {
        /// We created the case and forwarded it.
        Originator = "originator",
        /// The case was forwarded to us.
        Assignee = "assignee",
        /// Both (a case we hold in both roles, e.g. handed back and forwarded again).
        Both = "both",
    }
);

text_enum!(
    /// Direction of a message or receipt, seen from this node.
    Direction {
        /// Received from the peer.
        In = "in",
        /// Sent by us.
        Out = "out",
    }
);

text_enum!(
    /// State of a stored message. Outbound: `Pending` → `Delivered` | `Rejected` | `Dead` (→ `Pending` again when
    /// retried, or `Skipped`), or `Superseded`; inbound: `Held` → `Applied`, or `Refused`. The state of an outbound
    /// message always equals the state of its [`Delivery`]: both change together, in the store.
    MessageState {
        /// Outbound, not yet acknowledged by a positive receipt.
        Pending = "pending",
        /// Outbound, positive receipt stored: the receiver applied it.
        Delivered = "delivered",
        /// Outbound, the receiver's signed negative receipt stored: it judged the change and refused it (the change
        /// lost, e.g. to a concurrent change of the partner); its sequence number is used up.
        Rejected = "rejected",
        /// Outbound, given up (dead letter): the receiver does not have it. Later messages of its case to the same
        /// peer wait behind it until an operator retries or skips it.
        Dead = "dead",
        /// Outbound, a dead letter an operator skipped: withdrawn from the case, never to be sent.
        Skipped = "skipped",
        /// Outbound, never sent in this form: renumbered after a skip and replaced by a new message.
        Superseded = "superseded",
        /// Inbound, waiting for an earlier sequence number.
        Held = "held",
        /// Inbound, applied to the case.
        Applied = "applied",
        /// Inbound, refused with a negative receipt.
        Refused = "refused",
    }
);

text_enum!(
    /// State of an outbound delivery.
    DeliveryState {
        /// To be sent (again) at `next_attempt_at`.
        Pending = "pending",
        /// The peer's positive receipt is stored: the peer applied the message.
        Delivered = "delivered",
        /// The peer's signed negative receipt is stored: it judged the message and refused it (final).
        Rejected = "rejected",
        /// Given up (see `last_error`): the peer does not have the message; later messages of its case to the
        /// same peer wait until an operator retries or skips it.
        Dead = "dead",
        /// A dead letter an operator skipped.
        Skipped = "skipped",
        /// Replaced by a renumbered message after a skip.
        Superseded = "superseded",
    }
);

text_enum!(
    /// What a timeline event records.
    EventKind {
        /// We sent a message about the case.
        MessageSent = "messageSent",
        /// We received a message about the case.
        MessageReceived = "messageReceived",
        /// We sent a receipt.
        ReceiptSent = "receiptSent",
        /// We received a receipt.
        ReceiptReceived = "receiptReceived",
        /// The case status changed.
        StatusChanged = "statusChanged",
        /// A delivery attempt failed.
        DeliveryFailed = "deliveryFailed",
        /// A delivery was given up.
        DeadLettered = "deadLettered",
        /// An operator retried a dead letter.
        Retried = "retried",
        /// Concurrent changes met: the detail says whose change lost and the state that won.
        Conflict = "conflict",
        /// The case's outgoing messages wait behind a dead letter until an operator retries or skips it.
        Blocked = "blocked",
        /// An operator skipped a dead letter: its change is withdrawn from the case.
        Skipped = "skipped",
        /// A connector (or another local client) reported a problem with the case, e.g. a value its ticket system
        /// cannot take; kept here, not sent to the partner.
        Reported = "reported",
        /// The case was routed by the directory of responsibilities: the detail names the organisation chosen,
        /// the directory version and why.
        Routed = "routed",
        /// The case was given to one of this organisation's ticket systems (API clients): when it arrived (the
        /// detail names the rule) or by an operator (the detail names the old and new owner).
        OwnerChanged = "ownerChanged",
    }
);

/// A case as this node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseRecord {
    /// The case; its `revision` is the stored revision used for optimistic concurrency.
    pub case: Case,
    /// The other organisation of the case.
    pub partner: OrgKey,
    /// Our role.
    pub our_role: OurRole,
    /// When this node last changed the record (orders queries; not the case's own `updatedAt`).
    pub updated_at: Timestamp,
    /// The API client (ticket system of this organisation) that owns the case, if any: only it sees and changes
    /// the case among the clients limited to their own cases (`[[api.clients]] cases = "own"`). Local to this
    /// node; never sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A message sent or received, exactly as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    /// Message id (unique per node, both directions).
    pub message_id: MessageId,
    /// The case, absent for service notices.
    pub case_id: Option<CaseId>,
    /// In or out.
    pub direction: Direction,
    /// The other organisation (reader for outbound, author for inbound).
    pub peer: OrgKey,
    /// Message type from the header.
    pub message_type: MessageType,
    /// Sequence number per (case, direction, peer).
    pub sequence: Option<u64>,
    /// Creation time from the header.
    pub created_at: Timestamp,
    /// When this node stored it.
    pub stored_at: Timestamp,
    /// The signed message (JWS compact serialization) exactly as sent or received.
    pub jws: String,
    /// SHA-256 of the JWS bytes.
    pub digest: Sha256Hex,
    /// State.
    pub state: MessageState,
}

/// The delivery of one outbound message (the transactional outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The message to deliver.
    pub message_id: MessageId,
    /// To whom.
    pub peer: OrgKey,
    /// State.
    pub state: DeliveryState,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Not before this time.
    pub next_attempt_at: Timestamp,
    /// Error of the last failed attempt (short, no personal data).
    pub last_error: Option<String>,
    /// When the positive receipt was stored.
    pub delivered_at: Option<Timestamp>,
}

impl Delivery {
    /// A new delivery of message `message_id` to `peer`, queued at `at` and due then.
    #[must_use]
    pub fn pending(message_id: MessageId, peer: OrgKey, at: Timestamp) -> Delivery {
        Delivery {
            message_id,
            peer,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: at,
            next_attempt_at: at,
            last_error: None,
            delivered_at: None,
        }
    }
}

/// What the outbox holds, for operators and metrics: the open deliveries (pending and dead) per peer, and the
/// blocked cases. (Finished deliveries are counted as they finish, not here: their number only grows.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStats {
    /// Per peer and open state (`Pending`, `Dead`).
    pub open: Vec<OpenDeliveries>,
    /// Cases (with a peer) whose outgoing messages wait behind a dead letter.
    pub blocked_cases: u64,
}

/// Open deliveries of one peer in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenDeliveries {
    /// The peer.
    pub peer: OrgKey,
    /// `Pending` or `Dead`.
    pub state: DeliveryState,
    /// How many.
    pub count: u64,
    /// When the oldest of them was queued.
    pub oldest: Timestamp,
}

/// A case whose outgoing messages to a peer wait behind a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedCase {
    /// The case.
    pub case_id: CaseId,
    /// The peer.
    pub peer: OrgKey,
    /// The dead letter: retry or skip it to unblock the case.
    pub message_id: MessageId,
    /// Its type.
    pub message_type: MessageType,
    /// Its sequence number.
    pub sequence: Option<u64>,
    /// Failed attempts.
    pub attempts: u32,
    /// Why it is dead.
    pub last_error: Option<String>,
    /// Later messages of the case to the peer that wait behind it.
    pub waiting: u64,
}

/// A receipt we sent or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptRecord {
    /// The message the receipt is for.
    pub for_message: MessageId,
    /// `Out`: we sent it (for a message we received); `In`: we received it (for a message we sent).
    pub direction: Direction,
    /// Accepted or rejected.
    pub result: ReceiptResult,
    /// The signed receipt message (JWS) exactly as sent or received.
    pub jws: String,
    /// When it was sent or received.
    pub received_at: Timestamp,
}

/// One entry of a case's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// The case.
    pub case_id: CaseId,
    /// When.
    pub at: Timestamp,
    /// What.
    pub kind: EventKind,
    /// The message concerned, if any.
    pub message_id: Option<MessageId>,
    /// Short description; no personal data.
    pub detail: String,
}

/// A position in the change feed ([`crate::Store::feed`]): opaque to clients, written `XID.ID` (SQLite: `0.ID`).
/// The feed returns the events after it in commit order; [`FeedCursor::START`] is before the first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedCursor {
    /// PostgreSQL: the transaction id that wrote the event; SQLite: 0.
    pub xid: u64,
    /// The event's id.
    pub id: i64,
}

impl FeedCursor {
    /// Before the first event.
    pub const START: FeedCursor = FeedCursor { xid: 0, id: 0 };

    /// Parse `XID.ID` (both decimal, as [`std::fmt::Display`] writes it).
    pub fn parse(s: &str) -> std::result::Result<FeedCursor, crate::Error> {
        let bad = || crate::Error::Invalid(format!("not a feed cursor: {s:?} (use the `cursor` of an event)"));
        let (x, i) = s.split_once('.').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(x) || !digits(i) {
            return Err(bad());
        }
        Ok(FeedCursor { xid: x.parse().map_err(|_| bad())?, id: i.parse().map_err(|_| bad())? })
    }
}

impl std::fmt::Display for FeedCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.xid, self.id)
    }
}

/// One event of the change feed: a timeline event of some case, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// Where the feed continues after this event.
    pub cursor: FeedCursor,
    /// The event.
    pub event: TimelineEvent,
}

/// A value a connector keeps in the node's store ([`crate::Store::connector_state`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEntry {
    /// The value (JSON text, as the connector wrote it).
    pub value: String,
    /// 1 after the first write, one more after each; compare-and-set writes name it.
    pub version: u64,
}

/// What a local change sent with an idempotency key produced ([`crate::StoreTx::idempotent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotentResult {
    /// The case.
    pub case_id: CaseId,
    /// The message the change made.
    pub message_id: MessageId,
}

/// The latest version of a service notice this node holds (its own or a peer's), keyed by (`origin`,
/// `notice.notice_id`).
///
/// **Which version wins**: the one with the later (`issued_at`, `message_id`) — the issuing message's
/// `createdAt` (to the millisecond), then its time-ordered id. [`crate::StoreTx::put_notice`] keeps a stored
/// version that is as late or later, so a version that arrives late changes nothing and the same message stored
/// twice counts once. A notice is **active** at `now` while it is not a `resolution` and has not ended (`ends_at`
/// absent or after `now`); one that starts later (an announced maintenance window) is active too, so that portals
/// can announce it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeRecord {
    /// The organisation that issued it (the author of its messages).
    pub origin: OrgKey,
    /// The notice as issued.
    pub notice: ServiceNotice,
    /// The message that carried this version (of our own notices: the first of the messages sent, or an id of its
    /// own when there was no recipient).
    pub message_id: MessageId,
    /// When this version was issued: the message's `createdAt`.
    pub issued_at: Timestamp,
    /// When this node stored it (of our own notices: when it was published).
    pub received_at: Timestamp,
}

impl NoticeRecord {
    /// Whether the notice is active at `now`: not a resolution, and not ended (`ends_at` absent or after `now`).
    /// Notices that start later count.
    pub fn is_active(&self, now: &Timestamp) -> bool {
        self.notice.notice_type != NoticeType::Resolution
            && self.notice.ends_at.as_ref().is_none_or(|e| ms(e) > ms(now))
    }
}

/// Maximum page size of [`CaseQuery`].
pub const MAX_PAGE: u32 = 500;

/// A uniform case query. Empty or absent filters match everything; filters combine with AND.
/// Results are ordered by (`updated_at`, case id), ascending, and paged by an opaque cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseQuery {
    /// Any of these statuses.
    pub status: Vec<Status>,
    /// Ticket type.
    pub ticket_type: Option<TicketType>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Affected service (LeiKa key).
    pub leika_key: Option<LeikaKey>,
    /// Region: the case's ARS starts with this prefix.
    pub region_prefix: Option<Ars>,
    /// Partner organisation.
    pub partner: Option<OrgKey>,
    /// Owned by this API client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Changed at or after this time.
    pub updated_since: Option<Timestamp>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`] (0 means 100, larger values are capped).
    pub limit: u32,
}

impl CaseQuery {
    /// The effective page size.
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => 100,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Position after which the next page starts: (updated_at ms, case id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub updated_ms: i64,
    pub case_id: String,
}

impl Cursor {
    /// Opaque form: hex of `1.<ms>.<case id>`.
    pub(crate) fn encode(&self) -> String {
        hex::encode(format!("1.{}.{}", self.updated_ms, self.case_id))
    }

    pub(crate) fn decode(s: &str) -> Result<Cursor> {
        let bad = || Error::Invalid("malformed paging cursor".into());
        if s.len() > 200 {
            return Err(bad());
        }
        let bytes = hex::decode(s).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '.');
        let (Some("1"), Some(ms), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let updated_ms = ms.parse().map_err(|_| bad())?;
        let case_id = CaseId::parse(id).map_err(|_| bad())?.to_string();
        Ok(Cursor { updated_ms, case_id })
    }
}

/// Unix milliseconds of a timestamp (years 1970–9999 fit easily).
pub(crate) fn ms(t: &Timestamp) -> i64 {
    t.unix_millis() as i64
}

/// A timestamp from stored Unix milliseconds, in UTC.
pub(crate) fn from_ms(ms: i64) -> Result<Timestamp> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(Timestamp::from_offset_date_time)
        .map_err(|_| Error::Corrupt(format!("timestamp {ms} out of range")))
}

pub(crate) fn parse_id<T, E: std::fmt::Display>(
    what: &str,
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T> {
    parse(s).map_err(|e| Error::Corrupt(format!("stored {what}: {e}")))
}

pub(crate) fn seq_to_db(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Invalid(format!("sequence {seq} exceeds the stored range")))
}

pub(crate) fn seq_from_db(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative sequence {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor { updated_ms: 1_790_000_000_123, case_id: "3f2b8c1e-7a4d-4e9b-b1c2-d3e4f5a6b7c8".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", "312e", "abc", &"00".repeat(150)] {
            assert!(matches!(Cursor::decode(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn millis_round_trip_in_utc() {
        let t = Timestamp::parse("2026-11-27T09:12:00.123+01:00").unwrap();
        let back = from_ms(ms(&t)).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.to_string(), "2026-11-27T08:12:00.123Z");
    }

    #[test]
    fn enum_codes_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{k}\""));
        }
        assert!(MessageState::decode("bogus").is_err());
    }
}
