//! Test databases (one per test) and record builders.

use sdx_model::sample::{self, BELA, MILA};
use sdx_model::{CaseId, MessageId, MessageType, OrgKey, ReceiptResult, Sha256Hex, Timestamp};
use sdx_store::{
    CaseRecord, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole, PgStore,
    ReceiptRecord, SqliteStore, Store, TimelineEvent,
};

use crate::pg::PgDb;

/// A database for one test: the store under test and a way to open it again.
pub trait TestDb {
    type S: Store;
    fn store(&self) -> Self::S;
    /// Another store on the same database while the first stays open (as a second node process would use it).
    /// SQLite refuses a second store on an open file (see `lock.rs`): there it is the same store, whose reads
    /// still go through connections of their own; reopening after close is tested in `lock.rs`.
    async fn reopen(&self) -> Self::S;
}

/// A SQLite file in a temporary directory.
pub struct SqliteDb {
    pub _dir: tempfile::TempDir,
    pub url: String,
    pub store: SqliteStore,
}

impl SqliteDb {
    pub async fn new() -> SqliteDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("node.db").display());
        let store = SqliteStore::open(&url).await.expect("open SQLite store");
        SqliteDb { _dir: dir, url, store }
    }
}

impl TestDb for SqliteDb {
    type S = SqliteStore;
    fn store(&self) -> SqliteStore {
        self.store.clone()
    }
    async fn reopen(&self) -> SqliteStore {
        self.store.clone()
    }
}

impl TestDb for PgDb {
    type S = PgStore;
    fn store(&self) -> PgStore {
        self.store.clone()
    }
    async fn reopen(&self) -> PgStore {
        PgDb::reopen(self).await
    }
}

pub fn org(s: &str) -> OrgKey {
    OrgKey::parse(s).unwrap()
}
pub fn mila() -> OrgKey {
    org(MILA)
}
pub fn bela() -> OrgKey {
    org(BELA)
}

/// A UTC timestamp `ms` milliseconds after 2026-11-27T08:00:00Z.
pub fn t(ms: i64) -> Timestamp {
    let base = Timestamp::parse("2026-11-27T08:00:00Z").unwrap().as_offset_date_time();
    Timestamp::from_offset_date_time(base + time::Duration::milliseconds(ms))
}

/// A new case (random id, revision 1) held for `partner`, stored at `updated`.
pub fn case_rec(partner: &OrgKey, updated: Timestamp) -> CaseRecord {
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    CaseRecord { case, partner: partner.clone(), our_role: OurRole::Originator, updated_at: updated, owner: None }
}

pub fn digest(n: u8) -> Sha256Hex {
    Sha256Hex::parse(format!("{n:02x}").repeat(32)).unwrap()
}

pub fn message(
    case: Option<CaseId>,
    direction: Direction,
    peer: &OrgKey,
    seq: Option<u64>,
    state: MessageState,
) -> MessageRecord {
    let id = MessageId::new_random();
    MessageRecord {
        message_id: id,
        case_id: case,
        direction,
        peer: peer.clone(),
        message_type: MessageType::Update,
        sequence: seq,
        created_at: Timestamp::parse("2026-11-27T09:12:00.5+01:00").unwrap(),
        stored_at: t(1_000),
        jws: format!("eyJhbGciOiJFUzI1NiJ9.{id}.c2ln"),
        digest: digest(seq.unwrap_or(0) as u8),
        state,
    }
}

pub fn delivery(m: &MessageRecord, due: Timestamp) -> Delivery {
    Delivery {
        message_id: m.message_id,
        peer: m.peer.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        created_at: due,
        next_attempt_at: due,
        last_error: None,
        delivered_at: None,
    }
}

pub fn receipt(for_message: MessageId, direction: Direction, result: ReceiptResult, at: Timestamp) -> ReceiptRecord {
    ReceiptRecord {
        for_message,
        direction,
        result,
        jws: format!("eyJ9.receipt-{for_message}-{result}.c2ln"),
        received_at: at,
    }
}

pub fn event(case: CaseId, at: Timestamp, kind: EventKind, detail: &str) -> TimelineEvent {
    TimelineEvent { case_id: case, at, kind, message_id: None, detail: detail.into() }
}
