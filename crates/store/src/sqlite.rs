//! The SQLite engine: the embedded default, one database file per node.
//!
//! # Choices
//! - **WAL journal, `synchronous=FULL`**: [`StoreTx::commit`](crate::StoreTx::commit) returns only after the
//!   commit's WAL frames are on disk, so a committed message survives a crash or power loss; readers never block
//!   the writer and the writer never blocks readers.
//! - **One writer connection**, owned by the store behind a fair (FIFO) async mutex — not a pool, which would
//!   cost an extra round trip (`ping`) and a spawned task every time a connection is returned. Transactions
//!   start with `BEGIN IMMEDIATE`, so a transaction that has begun never fails later with `SQLITE_BUSY`; other
//!   processes on the same file are held off by `busy_timeout`.
//! - **Group commit**: the durable commit (an `fsync`) dominates the cost of a small transaction. When other
//!   tasks are already waiting to write, a transaction's `commit` releases its savepoint into the open physical
//!   transaction, hands the writer to the next task and waits; the last transaction of the group (the one that
//!   finds nobody waiting, or the 32nd) commits them all with one `fsync`, and every `commit` in the group
//!   returns only then, with the group's result. Each logical transaction is a `SAVEPOINT`, so dropping one
//!   uncommitted rolls back only its own changes. A lone writer commits at once, as without grouping.
//!   Consequence: a transaction may see changes of another transaction of its group that is not yet durable;
//!   they become durable together or fail together.
//! - **A few reader connections** (`query_only`) for reads outside a transaction (queries, timeline, lookups),
//!   each statement on a consistent WAL snapshot; they see only durably committed data. An in-memory database
//!   (`sqlite::memory:`) exists once per connection, so there reads use the writer (and wait while a write
//!   transaction is open — do not read through the store while holding a transaction of an in-memory store).
//! - **Prepared statements**: statements are static text, prepared once and cached by sqlx (the dynamic case
//!   queries have few shapes and share the cache).
//! - **Few round trips**: every statement is a round trip to sqlx's worker thread for the connection, so
//!   `BEGIN IMMEDIATE; SAVEPOINT` and `RELEASE; COMMIT` go in one each, sequence numbers are one upsert with
//!   `RETURNING`, duplicates are detected with `ON CONFLICT DO NOTHING` (the transaction stays usable), and
//!   claiming deliveries is a single `UPDATE … RETURNING`.
//! - **Indexes** for every query shape: the paging order (`updated_at`, `case_id`) behind status, partner,
//!   LeiKa key and region; partial indexes for held messages and due deliveries (they stay small as history
//!   grows). Every index costs a page in the WAL on each commit that touches it (measured: ≈ 23 pages per
//!   forward transaction), so the low-cardinality filters type and priority are trailing columns of the two
//!   order indexes — checked on index entries while walking the order — instead of indexes of their own.
//! - 32 MiB page cache for the writer, 16 MiB per reader; `temp_store=memory`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use sdx_model::{CaseId, MessageId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use crate::error::{Error, Result};
use crate::queries;
use crate::record::{CaseQuery, CaseRecord, Delivery, DeliveryState, MessageRecord, Page, TimelineEvent};

/// Reader connections for a file database.
const READERS: u32 = 4;
/// Most logical transactions committed by one `fsync`.
const MAX_GROUP: usize = 32;
/// How long a member waits for its group to be committed before it tries to commit the group itself.
const STALL: Duration = Duration::from_millis(20);

/// The SQLite engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    /// `None` for an in-memory database: reads go through the writer.
    reader: Option<SqlitePool>,
}

/// A write transaction on the SQLite engine: a savepoint on the writer connection, which it holds until it is
/// committed or dropped.
#[derive(Debug)]
pub struct SqliteTx {
    writer: Arc<Writer>,
    guard: Option<OwnedMutexGuard<WriterState>>,
}

/// The single writer connection and the group commit state.
#[derive(Debug)]
struct Writer {
    state: Arc<Mutex<WriterState>>,
    /// Tasks waiting in `begin` for the connection: while there are any, a commit joins the group.
    waiting: AtomicUsize,
    /// Groups with a generation below this number are finished (committed or failed).
    done: watch::Sender<u64>,
    /// Why a finished group failed (rare; pruned).
    failed: SyncMutex<BTreeMap<u64, String>>,
    /// Successful physical commits (`fsync`s).
    physical: AtomicU64,
    /// Successful logical commits ([`StoreTx::commit`](crate::StoreTx::commit) calls).
    logical: AtomicU64,
}

/// Commit counters of a [`SqliteStore`] since it was opened: `logical / physical` is the mean group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Durable commits of the database (one `fsync` each).
    pub physical: u64,
    /// Transactions committed by callers.
    pub logical: u64,
}

#[derive(Debug)]
struct WriterState {
    /// `None` once closed.
    conn: Option<SqliteConnection>,
    /// A physical transaction is open.
    in_tx: bool,
    /// A logical transaction (savepoint) was begun and neither committed nor rolled back (its `SqliteTx` was
    /// dropped); the next holder of the connection rolls it back.
    open_savepoint: bool,
    /// Generation of the group now forming.
    group: u64,
    /// Logical transactions released into the open physical transaction, waiting for its commit.
    members: usize,
}

/// Counts a task as waiting for the writer while it lives (also when its `begin` future is dropped).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Waiting(n)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn closed() -> Error {
    Error::Database(sqlx::Error::PoolClosed)
}

impl WriterState {
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        self.conn.as_mut().ok_or_else(closed)
    }
}

impl Writer {
    /// End the current group with `result`: wake its waiting members.
    fn publish(&self, st: &mut WriterState, result: &Result<()>) {
        let g = st.group;
        st.group += 1;
        st.members = 0;
        st.in_tx = false;
        if let Err(e) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.insert(g, e.to_string());
            while failed.len() > 64 {
                failed.pop_first();
            }
        }
        self.done.send_replace(g + 1);
    }

    /// Commit the physical transaction (durably) and finish the group. `sql` is `COMMIT` or
    /// `RELEASE …; COMMIT`.
    async fn commit_group(&self, st: &mut WriterState, sql: &'static str) -> Result<()> {
        let result = match st.conn() {
            Ok(conn) => conn.execute(sql).await.map(|_| ()).map_err(Error::from),
            Err(e) => Err(e),
        };
        if result.is_ok() {
            self.physical.fetch_add(1, Ordering::Relaxed);
        } else {
            // The transaction may still be open after a failed COMMIT (e.g. disk full): end it.
            if let Ok(conn) = st.conn() {
                let _ = conn.execute("ROLLBACK").await;
            }
        }
        self.publish(st, &result);
        result
    }

    /// Roll back what a dropped transaction left behind; then, if `finish_group`, commit a group that nobody
    /// else is going to finish.
    async fn settle(&self, st: &mut WriterState, finish_group: bool) -> Result<()> {
        if st.open_savepoint {
            st.open_savepoint = false;
            let sql = if st.members == 0 { "ROLLBACK" } else { "ROLLBACK TO sdx_tx; RELEASE sdx_tx" };
            let rolled_back = st.conn()?.execute(sql).await;
            if st.members == 0 {
                st.in_tx = false;
            }
            if let Err(e) = rolled_back {
                // Unknown state: abandon the physical transaction and fail its group.
                let _ = st.conn()?.execute("ROLLBACK").await;
                let e = Error::from(e);
                self.publish(st, &Err(Error::Database(sqlx::Error::Protocol(e.to_string()))));
                return Err(e);
            }
        }
        if finish_group && st.in_tx && st.members > 0 && self.waiting.load(Ordering::SeqCst) == 0 {
            self.commit_group(st, "COMMIT").await?;
        }
        Ok(())
    }

    /// The result of group `group` once it is finished.
    fn outcome(&self, group: u64) -> Result<()> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).get(&group) {
            Some(msg) => Err(Error::Database(sqlx::Error::Protocol(format!("group commit failed: {msg}")))),
            None => Ok(()),
        }
    }

    /// Wait until group `group` is finished. A waiter that has waited [`STALL`] also queues for the connection,
    /// so that a group is committed even if its last member was dropped where no cleanup task could be spawned.
    async fn wait_for(self: &Arc<Self>, group: u64) -> Result<()> {
        let mut rx = self.done.subscribe();
        loop {
            if *rx.borrow_and_update() > group {
                return self.outcome(group);
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(closed());
                    }
                }
                mut st = async {
                    // Normally the group's last member commits it; step in only if that does not happen soon.
                    tokio::time::sleep(STALL).await;
                    self.state.clone().lock_owned().await
                } => {
                    if *self.done.borrow() > group {
                        continue;
                    }
                    // Holding the connection, no logical transaction is in progress.
                    self.settle(&mut st, false).await?;
                    if st.group == group && st.in_tx && st.members > 0 {
                        let _ = self.commit_group(&mut st, "COMMIT").await;
                    }
                }
            }
        }
    }
}

impl SqliteStore {
    /// Open (creating it if the URL says `mode=rwc`) and migrate: `sqlite://path/node.db?mode=rwc`,
    /// `sqlite:node.db`, or `sqlite::memory:` for a throw-away database.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let base = SqliteConnectOptions::from_str(url)
            .map_err(|_| Error::Invalid("not a SQLite URL (sqlite://path?mode=rwc or sqlite::memory:)".into()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut conn = base.clone().pragma("cache_size", "-32768").connect().await?;
        migrator().run(&mut conn).await?;
        let reader = if in_memory {
            None
        } else {
            Some(
                SqlitePoolOptions::new()
                    .max_connections(READERS)
                    .min_connections(0)
                    .acquire_timeout(Duration::from_secs(60))
                    .connect_with(base.pragma("cache_size", "-16384").pragma("query_only", "ON"))
                    .await?,
            )
        };
        let state = WriterState { conn: Some(conn), in_tx: false, open_savepoint: false, group: 0, members: 0 };
        let writer = Writer {
            state: Arc::new(Mutex::new(state)),
            waiting: AtomicUsize::new(0),
            done: watch::Sender::new(0),
            failed: SyncMutex::new(BTreeMap::new()),
            physical: AtomicU64::new(0),
            logical: AtomicU64::new(0),
        };
        Ok(SqliteStore { writer: Arc::new(writer), reader })
    }

    /// How many transactions were committed, and with how many durable commits.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            physical: self.writer.physical.load(Ordering::Relaxed),
            logical: self.writer.logical.load(Ordering::Relaxed),
        }
    }

    /// Finish pending work and close all connections; the last one checkpoints the WAL. Transactions begun
    /// afterwards fail.
    pub async fn close(&self) {
        if let Some(r) = &self.reader {
            r.close().await;
        }
        let mut st = self.writer.state.lock().await;
        let _ = self.writer.settle(&mut st, false).await;
        if st.in_tx && st.members > 0 {
            let _ = self.writer.commit_group(&mut st, "COMMIT").await;
        }
        if let Some(conn) = st.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Run a read outside any transaction: on a reader, or (in-memory database) on the writer.
macro_rules! read_with {
    ($self:expr, |$e:ident| $body:expr) => {
        match &$self.reader {
            Some($e) => $body.await,
            None => {
                let mut st = $self.writer.state.lock().await;
                $self.writer.settle(&mut st, true).await?;
                let $e = st.conn()?;
                $body.await
            }
        }
    };
}

impl SqliteTx {
    fn conn(&mut self) -> Result<&mut SqliteConnection> {
        self.guard.as_mut().ok_or_else(closed)?.conn()
    }

    /// Commit: at once if no other task waits to write, else as part of the group (see the module docs).
    async fn finish(mut self) -> Result<()> {
        let writer = self.writer.clone();
        let result = self.finish_inner().await;
        if result.is_ok() {
            writer.logical.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn finish_inner(&mut self) -> Result<()> {
        let mut st = self.guard.take().ok_or_else(closed)?;
        let writer = self.writer.clone();
        let solo = writer.waiting.load(Ordering::SeqCst) == 0 || st.members + 1 >= MAX_GROUP;
        if solo {
            st.open_savepoint = false;
            return writer.commit_group(&mut st, "RELEASE sdx_tx; COMMIT").await;
        }
        if let Err(e) = st.conn()?.execute("RELEASE sdx_tx").await {
            // Leave the savepoint for `settle` to roll back.
            return Err(e.into());
        }
        st.open_savepoint = false;
        st.members += 1;
        let group = st.group;
        drop(st);
        writer.wait_for(group).await
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Dropped uncommitted: the savepoint is still open. Roll it back (and finish a group left waiting) as
        // soon as possible; if there is no runtime, the next user of the writer does it.
        if let Some(st) = self.guard.take() {
            drop(st);
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let writer = self.writer.clone();
                rt.spawn(async move {
                    let mut st = writer.state.lock().await;
                    let _ = writer.settle(&mut st, true).await;
                });
            }
        }
    }
}

/// The embedded SQLite migrations.
fn migrator() -> sqlx::migrate::Migrator {
    queries::migrator(&[(1, "initial", include_str!("../migrations/sqlite/0001_initial.sql"))])
}

mod sql {
    crate::queries::shared_queries!(sqlx::Sqlite, super::SqliteTx, crate::queries::CLAIM_SQLITE);
}

impl crate::Store for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self) -> Result<SqliteTx> {
        let writer = self.writer.clone();
        let waiting = Waiting::new(&writer.waiting);
        let mut st = writer.state.clone().lock_owned().await;
        drop(waiting);
        writer.settle(&mut st, false).await?;
        if st.in_tx {
            st.conn()?.execute("SAVEPOINT sdx_tx").await?;
        } else {
            if let Err(e) = st.conn()?.execute("BEGIN IMMEDIATE; SAVEPOINT sdx_tx").await {
                // BEGIN may have succeeded before SAVEPOINT failed.
                let _ = st.conn()?.execute("ROLLBACK").await;
                return Err(e.into());
            }
            st.in_tx = true;
        }
        st.open_savepoint = true;
        Ok(SqliteTx { writer, guard: Some(st) })
    }

    async fn get_case(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        read_with!(self, |e| sql::get_case(e, id))
    }

    async fn query_cases(&self, q: &CaseQuery) -> Result<Page<CaseRecord>> {
        read_with!(self, |e| sql::query_cases(e, q))
    }

    async fn timeline(&self, id: CaseId) -> Result<Vec<TimelineEvent>> {
        read_with!(self, |e| sql::timeline(e, id))
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        read_with!(self, |e| sql::get_message(e, id))
    }

    async fn list_deliveries(&self, state: Option<DeliveryState>, limit: u32) -> Result<Vec<Delivery>> {
        read_with!(self, |e| sql::list_deliveries(e, state, limit))
    }
}
