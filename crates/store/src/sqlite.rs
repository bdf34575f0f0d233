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
//!   returns only then, with the group's result. Each logical transaction after the first of a group is a
//!   `SAVEPOINT` (the first is the physical transaction itself), so dropping one
//!   uncommitted rolls back only its own changes. A lone writer commits at once, as without grouping.
//!   Consequence: a transaction may see changes of another transaction of its group that is not yet durable;
//!   they become durable together or fail together.
//! - **Volatile transactions** ([`Store::begin_volatile`](crate::Store::begin_volatile), claiming deliveries):
//!   when no group is forming, one is a physical transaction of its own, begun with `synchronous=OFF` and
//!   committed at once without an `fsync` (the next durable transaction sets `FULL` again before it begins; SQLite
//!   refuses to change the level inside a transaction). Meanwhile the writer's automatic checkpoint is off (one at
//!   `OFF` would not sync the database file), and closing the store sets `FULL` before its final checkpoint. Its
//!   WAL frames become durable with the next `fsync`; a crash before that undoes it whole (the WAL's checksums end
//!   recovery at the last complete commit). When a group is forming, it joins it like any other. Readers may see
//!   a volatile transaction before it is durable.
//! - **A few reader connections** (`query_only`) for reads outside a transaction (queries, timeline, lookups),
//!   each statement on a consistent WAL snapshot; they see only committed data (durably committed, except
//!   volatile transactions). An in-memory database (`sqlite::memory:`) exists once per connection, so there
//!   reads use the writer (and wait while a write transaction is open — do not read through the store while
//!   holding a transaction of an in-memory store).
//! - **Statements run in the calling thread** (`rusqlite`, no worker thread): a statement on the writer takes
//!   microseconds, while a hand-off to a connection thread and back (as `sqlx` does for every statement) cost
//!   tens of microseconds of context switches under load and held the single writer that long — it was the
//!   throughput limit of a node (see `docs/benchmarks.md`). Only the durable commit (an `fsync`) blocks for
//!   long; it runs under `tokio::task::block_in_place` on a multi-threaded runtime, so the worker thread's
//!   other tasks move on meanwhile. Queries and timelines on the readers run on the blocking pool; point
//!   lookups run inline. Migrations are applied with `sqlx` when the store is opened (its `_sqlx_migrations`
//!   history, the same as on PostgreSQL).
//! - **Prepared statements**: statements are static text, prepared once per connection and cached (the dynamic
//!   case queries have few shapes and share the cache). Sequence numbers are one upsert with `RETURNING`,
//!   duplicates are detected with `ON CONFLICT DO NOTHING` (the transaction stays usable), and claiming
//!   deliveries is a single `UPDATE … RETURNING`.
//! - **Indexes** for every query shape: the paging order (`updated_at`, `case_id`) behind status, partner,
//!   LeiKa key and region; partial indexes for held messages and due deliveries (they stay small as history
//!   grows). Every index costs a page in the WAL on each commit that touches it (measured: ≈ 23 pages per
//!   forward transaction), so the low-cardinality filters type and priority are trailing columns of the two
//!   order indexes — checked on index entries while walking the order — instead of indexes of their own.
//! - **Checkpoints in the background**: a thread of the store copies the WAL back into the database
//!   (`wal_checkpoint(PASSIVE)`, which never blocks the writer) every 200 ms, so a commit never pays for a
//!   checkpoint and its `fsync` of the database file. The writer's automatic checkpoint stays on, at 10,000
//!   pages (40 MB of WAL), only as a backstop should the thread fall behind.
//! - **One store per database file**: [`SqliteStore::open`] takes an exclusive advisory lock (`flock`) on
//!   `<database>.lock` next to the file and holds it until the store is closed or dropped; a second store on the
//!   same file — another node process, or a second open in this process — is refused with
//!   [`Error::InUse`](crate::Error::InUse), which names the file and the process holding it (its id is written
//!   into the lock file). A separate file, not the database itself: SQLite's own locks are POSIX record locks on
//!   the database, which closing any other descriptor of that file in the process would drop. The operating
//!   system releases the lock when the holder dies (`kill -9` included), so a restart never finds a stale lock.
//!   Other SQLite clients (the `sqlite3` shell, a backup) are not affected. In-memory databases take no lock.
//! - 2 MiB page cache for the writer, 16 MiB per reader; the first GiB of the file memory-mapped (`mmap_size`),
//!   so pages that fall out of the page cache are read from the OS cache without a system call — with a
//!   million cases stored, the random case ids touch index pages all over the file; `temp_store=memory`. The
//!   writer's cache is small on purpose: when a B-tree page splits, SQLite briefly gives a page a number past
//!   the first GiB, and the next commit then scans the writer's whole page cache to drop it again
//!   (`pcache1TruncateUnsafe`, 3–4 % of the node's CPU with 32 MiB). Pages that fall out of the small cache are
//!   read from the memory map, or from the WAL in the OS cache.
//! - **Plans do not depend on bound values** (`SQLITE_DBCONFIG_ENABLE_QPSG`): otherwise SQLite prepares a
//!   statement again whenever the value bound to its `LIMIT` changes — every claim of deliveries did.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sdx_model::{CaseId, MessageId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection as _};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore, watch};

use crate::error::{Error, Result};
use crate::queries;
use crate::record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, MessageRecord, Page, TimelineEvent,
};
use crate::sqlite_queries as sql;

/// Reader connections for a file database that run at once on the blocking pool.
const READERS: usize = 4;
/// Idle reader connections kept open.
const IDLE_READERS: usize = 8;
/// Page cache of the writer connection, KiB (see the module docs).
const WRITER_CACHE_KIB: i64 = 2 * 1024;
/// Most logical transactions committed by one `fsync`.
const MAX_GROUP: usize = 32;
/// How long a member waits for its group to be committed before it tries to commit the group itself.
const STALL: Duration = Duration::from_millis(20);
/// How often the background thread checkpoints the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL pages after which the writer checkpoints itself (a backstop for the background thread).
const AUTOCHECKPOINT_PAGES: u32 = 10_000;
/// Bytes of the database file read through a memory map instead of `read` calls (pages come straight from the
/// operating system's cache; it counts against address space, not memory).
const MMAP_BYTES: u64 = 1 << 30;
/// How long a statement waits for a lock held by another process on the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    /// `None` for an in-memory database: reads go through the writer.
    readers: Option<Arc<Readers>>,
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
    /// The background checkpoint thread of a file database.
    checkpointer: SyncMutex<Option<Checkpointer>>,
    /// The lock that keeps other stores off a file database, released on close (or drop).
    lock: SyncMutex<Option<FileLock>>,
}

/// An exclusive advisory lock on `<database>.lock`, held while the value lives.
#[derive(Debug)]
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Lock the database file `db` (created if `create`, with its directory) or fail with
    /// [`Error::InUse`] if another store holds it.
    fn acquire(db: &std::path::Path, create: bool) -> Result<FileLock> {
        use std::io::{Read, Seek, Write};
        let io = |what: &str, path: &std::path::Path, e: std::io::Error| {
            Error::Invalid(format!("{what} {}: {e}", path.display()))
        };
        let db = std::path::absolute(db).map_err(|e| io("cannot resolve", db, e))?;
        if create {
            if let Some(dir) = db.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory", dir, e))?;
            }
            // A new database holds requesters' personal data: readable by the node's user only. SQLite gives the
            // `-wal` and `-shm` files the database file's mode. An existing file keeps the mode it has.
            let mut new = std::fs::OpenOptions::new();
            new.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut new, 0o600);
            match new.open(&db) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("cannot create", &db, e)),
            }
        }
        // The same file under another name (a symbolic link, `dir/../dir`) gets the same lock.
        let db = match (db.canonicalize(), db.parent().map(std::path::Path::canonicalize), db.file_name()) {
            (Ok(real), _, _) => real,
            (Err(_), Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => db,
        };
        let mut name = db.clone().into_os_string();
        name.push(".lock");
        let lock = PathBuf::from(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(|e| io("cannot open the lock file", &lock, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse().ok());
                return Err(Error::InUse { path: db, lock, holder });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("cannot lock", &lock, e)),
        }
        // Who holds it, for the message another process gets (best effort: the lock is what counts).
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|_| writeln!(file, "{}", std::process::id()));
        Ok(FileLock { _file: file })
    }
}

/// The thread that checkpoints the WAL; it stops when told to or when the store is gone.
#[derive(Debug)]
struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: PathBuf) -> Result<Checkpointer> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&conn, 2 * 1024, false)?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sdx-sqlite-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    // Errors (e.g. busy) are retried at the next tick; the writer's backstop covers a stuck thread.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, thread })
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(c) = self.checkpointer.get_mut().ok().and_then(Option::take) {
            c.stop.store(true, Ordering::SeqCst);
            c.thread.thread().unpark();
        }
    }
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
    conn: Option<Connection>,
    /// A physical transaction is open.
    in_tx: bool,
    /// A logical transaction (savepoint) was begun and neither committed nor rolled back (its `SqliteTx` was
    /// dropped); the next holder of the connection rolls it back.
    open_savepoint: bool,
    /// Generation of the group now forming.
    group: u64,
    /// Logical transactions released into the open physical transaction, waiting for its commit.
    members: usize,
    /// The connection commits without an `fsync` (`synchronous=OFF`, set for a volatile transaction); the next
    /// durable physical transaction sets `FULL` again before it begins. While a transaction holds the connection,
    /// this says whether it is a volatile one (which nobody joins).
    unsynced: bool,
}

/// Read-only connections of a file database, opened on demand and kept.
#[derive(Debug)]
struct Readers {
    path: PathBuf,
    idle: SyncMutex<Vec<Connection>>,
    /// Bounds the readers running on the blocking pool.
    running: Semaphore,
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
    Error::Invalid("the store is closed".into())
}

/// Run `f`, which blocks (an `fsync`), without stalling the runtime: on a multi-threaded runtime the worker's
/// other tasks are handed to another thread meanwhile; elsewhere (a current-thread runtime, no runtime) `f`
/// simply runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Connection settings every connection gets.
fn configure(conn: &Connection, cache_kib: i64, query_only: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
         PRAGMA foreign_keys = ON; PRAGMA cache_size = -{cache_kib}; PRAGMA mmap_size = {MMAP_BYTES};{}",
        if query_only { " PRAGMA query_only = ON;" } else { "" }
    ))?;
    // Plans do not depend on bound values (see the module docs).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl WriterState {
    fn conn(&mut self) -> Result<&Connection> {
        self.conn.as_ref().ok_or_else(closed)
    }

    fn exec(&mut self, sql: &str) -> Result<()> {
        Ok(self.conn()?.execute_batch(sql)?)
    }

    /// Switch the connection between durable commits (`synchronous=FULL`, with the automatic checkpoint as a
    /// backstop) and volatile ones (`OFF`, and no automatic checkpoint: one run at `OFF` would copy the WAL into
    /// the database without syncing it, and the WAL may then be started over). Only between transactions.
    fn set_unsynced(&mut self, unsynced: bool) -> Result<()> {
        if self.unsynced != unsynced {
            let conn = self.conn()?;
            if unsynced {
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                conn.pragma_update(None, "synchronous", 0)?;
            } else {
                conn.pragma_update(None, "synchronous", 2)?;
                conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
            }
            self.unsynced = unsynced;
        }
        Ok(())
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

    /// Commit the physical transaction and finish the group. `sql` is `COMMIT` or `RELEASE …; COMMIT`. Durable
    /// (an `fsync`, counted in [`CommitStats::physical`]) unless it is a volatile transaction.
    fn commit_group(&self, st: &mut WriterState, sql: &'static str) -> Result<()> {
        let durable = !st.unsynced;
        let result = if durable { blocking(|| st.exec(sql)) } else { st.exec(sql) };
        if result.is_ok() {
            if durable {
                self.physical.fetch_add(1, Ordering::Relaxed);
            }
        } else if let Ok(conn) = st.conn() {
            // The transaction may still be open after a failed COMMIT (e.g. disk full): end it.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
        self.publish(st, &result);
        result
    }

    /// Roll back what a dropped transaction left behind; then, if `finish_group`, commit a group that nobody
    /// else is going to finish.
    fn settle(&self, st: &mut WriterState, finish_group: bool) -> Result<()> {
        if st.open_savepoint {
            st.open_savepoint = false;
            let sql = if st.members == 0 { "ROLLBACK" } else { "ROLLBACK TO sdx_tx; RELEASE sdx_tx" };
            let rolled_back = st.exec(sql);
            if st.members == 0 {
                st.in_tx = false;
            }
            if let Err(e) = rolled_back {
                // Unknown state: abandon the physical transaction and fail its group.
                let _ = st.exec("ROLLBACK");
                self.publish(st, &Err(Error::Invalid(format!("rollback failed: {e}"))));
                return Err(e);
            }
        }
        if finish_group && st.in_tx && st.members > 0 && self.waiting.load(Ordering::SeqCst) == 0 {
            self.commit_group(st, "COMMIT")?;
        }
        Ok(())
    }

    /// The result of group `group` once it is finished.
    fn outcome(&self, group: u64) -> Result<()> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).get(&group) {
            Some(msg) => Err(Error::Invalid(format!("group commit failed: {msg}"))),
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
                    self.settle(&mut st, false)?;
                    if st.group == group && st.in_tx && st.members > 0 {
                        let _ = self.commit_group(&mut st, "COMMIT");
                    }
                }
            }
        }
    }
}

impl Readers {
    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&conn, 16 * 1024, true)?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection> {
        if self.running.is_closed() {
            return Err(closed());
        }
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.open(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }

    /// A short read (one indexed lookup) in the calling thread.
    fn inline<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.take()?;
        let r = f(&conn);
        self.give_back(conn);
        r
    }

    /// A read that may take a while (queries, timelines) on the blocking pool.
    async fn pooled<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self.running.acquire().await.map_err(|_| closed())?;
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.inline(f))
            .await
            .map_err(|e| Error::Invalid(format!("reader task failed: {e}")))?
    }
}

impl SqliteStore {
    /// Open (creating it if the URL says `mode=rwc`) and migrate: `sqlite://path/node.db?mode=rwc`,
    /// `sqlite:node.db`, or `sqlite::memory:` for a throw-away database.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| Error::Invalid("not a SQLite URL (sqlite://path?mode=rwc or sqlite::memory:)".into()))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut checkpointer = None;
        // Before anything touches the file (migrations included): one store per database.
        let lock =
            if in_memory { None } else { Some(FileLock::acquire(options.get_filename(), url.contains("mode=rwc"))?) };
        let (conn, readers) = if in_memory {
            let conn = Connection::open_in_memory()?;
            for (_, _, text) in MIGRATIONS {
                conn.execute_batch(text)?;
            }
            (conn, None)
        } else {
            // Create the file if asked to and apply the migrations with sqlx (its migration history).
            let mut mig = options.clone().journal_mode(SqliteJournalMode::Wal).connect().await?;
            migrator().run(&mut mig).await?;
            mig.close().await?;
            let path = options.get_filename().to_path_buf();
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )?;
            conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
            checkpointer = Some(Checkpointer::start(path.clone())?);
            let readers = Readers { path, idle: SyncMutex::new(Vec::new()), running: Semaphore::new(READERS) };
            (conn, Some(Arc::new(readers)))
        };
        configure(&conn, WRITER_CACHE_KIB, false)?;
        let state = WriterState {
            conn: Some(conn),
            in_tx: false,
            open_savepoint: false,
            group: 0,
            members: 0,
            unsynced: false,
        };
        let writer = Writer {
            state: Arc::new(Mutex::new(state)),
            waiting: AtomicUsize::new(0),
            done: watch::Sender::new(0),
            failed: SyncMutex::new(BTreeMap::new()),
            physical: AtomicU64::new(0),
            logical: AtomicU64::new(0),
            checkpointer: SyncMutex::new(checkpointer),
            lock: SyncMutex::new(lock),
        };
        Ok(SqliteStore { writer: Arc::new(writer), readers })
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
        let checkpointer = self.writer.checkpointer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(c) = checkpointer {
            blocking(|| c.stop());
        }
        if let Some(r) = &self.readers {
            r.running.close();
            r.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        let mut st = self.writer.state.lock().await;
        let _ = self.writer.settle(&mut st, false);
        if st.in_tx && st.members > 0 {
            let _ = self.writer.commit_group(&mut st, "COMMIT");
        }
        // Closing checkpoints the WAL into the database at the connection's level: `FULL`, so that it is synced.
        let _ = st.set_unsynced(false);
        if let Some(conn) = st.conn.take() {
            blocking(|| drop(conn.close()));
        }
        // Every connection of this store is closed: another store may open the file now.
        drop(self.writer.lock.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    /// A short read outside any transaction: on a reader, or (in-memory database) on the writer.
    async fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        match &self.readers {
            Some(r) => r.inline(f),
            None => {
                let mut st = self.writer.state.lock().await;
                self.writer.settle(&mut st, true)?;
                f(st.conn()?)
            }
        }
    }

    /// A longer read outside any transaction: on a reader on the blocking pool, or on the writer.
    async fn read_long<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match &self.readers {
            Some(r) => r.pooled(f).await,
            None => self.read(f).await,
        }
    }

    /// Begin a logical transaction: durable, or volatile (see [`crate::Store::begin_volatile`]).
    async fn begin_tx(&self, volatile: bool) -> Result<SqliteTx> {
        let writer = self.writer.clone();
        let waiting = Waiting::new(&writer.waiting);
        let mut st = writer.state.clone().lock_owned().await;
        drop(waiting);
        writer.settle(&mut st, false)?;
        // A volatile transaction that finds a group open joins it, and becomes durable with it.
        if st.in_tx {
            st.exec("SAVEPOINT sdx_tx")?;
        } else {
            // The sync level is set between transactions (SQLite refuses to change it inside one), so a durable
            // physical transaction always begins with `FULL`.
            st.set_unsynced(volatile)?;
            // The first logical transaction needs no savepoint: undoing it is undoing the physical transaction
            // (which saves the statement journal's work on every page it changes).
            st.exec("BEGIN IMMEDIATE")?;
            st.in_tx = true;
        }
        st.open_savepoint = true;
        Ok(SqliteTx { writer, guard: Some(st) })
    }
}

impl SqliteTx {
    fn conn(&mut self) -> Result<&Connection> {
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
        if st.unsynced {
            // A volatile transaction, its own physical one, which nobody joined: committed at once, without an
            // `fsync`.
            st.open_savepoint = false;
            return writer.commit_group(&mut st, "COMMIT");
        }
        let solo = writer.waiting.load(Ordering::SeqCst) == 0 || st.members + 1 >= MAX_GROUP;
        // The first logical transaction of a physical one has no savepoint (see `begin`).
        let first = st.members == 0;
        if solo {
            st.open_savepoint = false;
            return writer.commit_group(&mut st, if first { "COMMIT" } else { "RELEASE sdx_tx; COMMIT" });
        }
        if !first {
            // On failure the savepoint stays open for `settle` to roll back.
            st.exec("RELEASE sdx_tx")?;
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
                    let _ = writer.settle(&mut st, true);
                });
            }
        }
    }
}

/// The embedded SQLite migrations: (version, description, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, "outbox order", include_str!("../migrations/sqlite/0002_outbox_order.sql")),
    (3, "replay and blocking", include_str!("../migrations/sqlite/0003_replay_and_blocking.sql")),
    (4, "feed and connectors", include_str!("../migrations/sqlite/0004_feed_and_connectors.sql")),
    (5, "notices", include_str!("../migrations/sqlite/0005_notices.sql")),
    (6, "case owner", include_str!("../migrations/sqlite/0006_case_owner.sql")),
];

/// The embedded SQLite migrations as a `sqlx` migrator.
fn migrator() -> sqlx::migrate::Migrator {
    queries::migrator(MIGRATIONS)
}

impl crate::Store for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self) -> Result<SqliteTx> {
        self.begin_tx(false).await
    }

    async fn begin_volatile(&self) -> Result<SqliteTx> {
        self.begin_tx(true).await
    }

    async fn get_case(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        self.read(|c| sql::get_case(c, id)).await
    }

    async fn query_cases(&self, q: &CaseQuery) -> Result<Page<CaseRecord>> {
        let q = q.clone();
        self.read_long(move |c| sql::query_cases(c, &q)).await
    }

    async fn timeline(&self, id: CaseId) -> Result<Vec<TimelineEvent>> {
        self.read_long(move |c| sql::timeline(c, id)).await
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        self.read(|c| sql::get_message(c, id)).await
    }

    async fn list_deliveries(&self, state: Option<DeliveryState>, limit: u32) -> Result<Vec<Delivery>> {
        self.read_long(move |c| sql::list_deliveries(c, state, limit)).await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats> {
        self.read_long(sql::delivery_stats).await
    }

    async fn list_blocked(&self, limit: u32) -> Result<Vec<BlockedCase>> {
        self.read_long(move |c| sql::list_blocked(c, limit)).await
    }

    async fn feed(&self, after: crate::FeedCursor, limit: u32) -> Result<Vec<crate::FeedEvent>> {
        self.read_long(move |c| sql::feed(c, after, limit)).await
    }

    async fn connector_state(&self, connector: &str, key: &str) -> Result<Option<crate::StateEntry>> {
        let (connector, key) = (connector.to_string(), key.to_string());
        self.read(move |c| sql::connector_state(c, &connector, &key)).await
    }

    async fn active_notices(&self, now: sdx_model::Timestamp, limit: u32) -> Result<Vec<crate::NoticeRecord>> {
        self.read_long(move |c| sql::active_notices(c, now, limit)).await
    }
}

impl crate::StoreTx for SqliteTx {
    async fn commit(self) -> Result<()> {
        self.finish().await
    }
    async fn get_case(&mut self, id: CaseId) -> Result<Option<CaseRecord>> {
        sql::get_case(self.conn()?, id)
    }
    async fn put_case(&mut self, rec: &CaseRecord, expected_revision: Option<u32>) -> Result<()> {
        sql::put_case(self.conn()?, rec, expected_revision)
    }
    async fn next_out_sequence(&mut self, case: CaseId, peer: &sdx_model::OrgKey) -> Result<u64> {
        sql::next_out_sequence(self.conn()?, case, peer)
    }
    async fn last_in_sequence(&mut self, case: CaseId, peer: &sdx_model::OrgKey) -> Result<u64> {
        sql::last_in_sequence(self.conn()?, case, peer)
    }
    async fn set_last_in_sequence(&mut self, case: CaseId, peer: &sdx_model::OrgKey, seq: u64) -> Result<()> {
        sql::set_last_in_sequence(self.conn()?, case, peer, seq)
    }
    async fn insert_message(&mut self, rec: &MessageRecord) -> Result<()> {
        sql::insert_message(self.conn()?, rec)
    }
    async fn get_message(&mut self, id: MessageId) -> Result<Option<MessageRecord>> {
        sql::get_message(self.conn()?, id)
    }
    async fn get_delivery(&mut self, id: MessageId) -> Result<Option<Delivery>> {
        sql::get_delivery(self.conn()?, id)
    }
    async fn set_inbound_state(&mut self, id: MessageId, state: crate::MessageState) -> Result<()> {
        sql::set_inbound_state(self.conn()?, id, state)
    }
    async fn case_messages(&mut self, case: CaseId) -> Result<Vec<MessageRecord>> {
        sql::case_messages(self.conn()?, case)
    }
    async fn last_out_sequence(&mut self, case: CaseId, peer: &sdx_model::OrgKey) -> Result<u64> {
        sql::last_out_sequence(self.conn()?, case, peer)
    }
    async fn set_last_out_sequence(&mut self, case: CaseId, peer: &sdx_model::OrgKey, seq: u64) -> Result<()> {
        sql::set_last_out_sequence(self.conn()?, case, peer, seq)
    }
    async fn mark_rejected(&mut self, id: MessageId, receipt: &crate::ReceiptRecord, error: &str) -> Result<()> {
        sql::mark_rejected(self.conn()?, id, receipt, error)
    }
    async fn skip_dead(&mut self, id: MessageId) -> Result<bool> {
        sql::skip_dead(self.conn()?, id)
    }
    async fn supersede(&mut self, id: MessageId) -> Result<bool> {
        sql::supersede(self.conn()?, id)
    }
    async fn held_messages(&mut self, case: CaseId, peer: &sdx_model::OrgKey) -> Result<Vec<MessageRecord>> {
        sql::held_messages(self.conn()?, case, peer)
    }
    async fn enqueue(&mut self, d: &Delivery) -> Result<()> {
        sql::enqueue(self.conn()?, d)
    }
    async fn claim_due(
        &mut self,
        now: sdx_model::Timestamp,
        lease_until: sdx_model::Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        sql::claim_due(self.conn()?, now, lease_until, limit)
    }
    async fn mark_delivered(&mut self, id: MessageId, receipt: &crate::ReceiptRecord) -> Result<()> {
        sql::mark_delivered(self.conn()?, id, receipt)
    }
    async fn mark_failed(
        &mut self,
        id: MessageId,
        attempts: u32,
        next_attempt_at: sdx_model::Timestamp,
        error: &str,
        dead: bool,
    ) -> Result<()> {
        sql::mark_failed(self.conn()?, id, attempts, next_attempt_at, error, dead)
    }
    async fn release_leases(&mut self) -> Result<u64> {
        sql::release_leases(self.conn()?)
    }
    async fn retry_dead(&mut self, id: MessageId, now: sdx_model::Timestamp) -> Result<bool> {
        sql::retry_dead(self.conn()?, id, now)
    }
    async fn put_receipt(&mut self, rec: &crate::ReceiptRecord) -> Result<()> {
        sql::put_receipt(self.conn()?, rec)
    }
    async fn get_receipt(
        &mut self,
        for_message: MessageId,
        direction: crate::Direction,
    ) -> Result<Option<crate::ReceiptRecord>> {
        sql::get_receipt(self.conn()?, for_message, direction)
    }
    async fn add_event(&mut self, ev: &TimelineEvent) -> Result<()> {
        sql::add_event(self.conn()?, ev)
    }
    async fn put_connector_state(
        &mut self,
        connector: &str,
        key: &str,
        value: Option<&str>,
        expected: Option<u64>,
    ) -> Result<u64> {
        sql::put_connector_state(self.conn()?, connector, key, value, expected, sdx_model::Timestamp::now())
    }
    async fn put_notice(&mut self, rec: &crate::NoticeRecord) -> Result<bool> {
        sql::put_notice(self.conn()?, rec)
    }
    async fn get_notice(
        &mut self,
        origin: &sdx_model::OrgKey,
        id: sdx_model::ItemId,
    ) -> Result<Option<crate::NoticeRecord>> {
        sql::get_notice(self.conn()?, origin, id)
    }
    async fn idempotent(&mut self, key: &str) -> Result<Option<crate::IdempotentResult>> {
        sql::idempotent(self.conn()?, key)
    }
    async fn put_idempotent(
        &mut self,
        key: &str,
        result: crate::IdempotentResult,
        at: sdx_model::Timestamp,
    ) -> Result<()> {
        sql::put_idempotent(self.conn()?, key, result, at)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{StatementStatus, config::DbConfig};

    /// A statement whose bound `LIMIT` changes from call to call (as the claim of deliveries does), prepared
    /// again at each change: how often. `configured` applies the store's connection settings first.
    fn reprepares(configured: bool) -> i32 {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        if configured {
            super::configure(&conn, super::WRITER_CACHE_KIB, false).unwrap();
        }
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2), (3);").unwrap();
        let mut st = conn.prepare("SELECT x FROM t WHERE x > ?1 ORDER BY x LIMIT ?2").unwrap();
        for limit in 1..6 {
            let rows: Vec<i64> = st.query_map([0, limit], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            assert_eq!(rows.len(), usize::try_from(limit.min(3)).unwrap());
        }
        st.get_status(StatementStatus::RePrepare)
    }

    #[test]
    fn plans_do_not_depend_on_bound_values() {
        // Without the setting SQLite prepares the statement again whenever the limit changes …
        assert!(reprepares(false) > 0);
        // … with it, never.
        assert_eq!(reprepares(true), 0);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        super::configure(&conn, super::WRITER_CACHE_KIB, false).unwrap();
        assert!(conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG).unwrap());
        let kib: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap();
        assert_eq!(kib, -super::WRITER_CACHE_KIB);
    }

    /// The writer's sync level inside a transaction (0 `OFF`, 2 `FULL`), checked against its automatic
    /// checkpoint (off while unsynced).
    fn synchronous(tx: &mut super::SqliteTx) -> i64 {
        let conn = tx.conn().unwrap();
        let level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let pages: u32 = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(pages, if level == 0 { 0 } else { super::AUTOCHECKPOINT_PAGES });
        level
    }

    /// A volatile transaction commits without an `fsync` (not counted as a durable commit); the durable one after
    /// it is `synchronous=FULL` again, also after a volatile one was dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn volatile_transactions_skip_only_their_own_fsync() {
        use crate::{Store, StoreTx};
        let dir = std::env::temp_dir().join(format!("sdx-volatile-{}", sdx_model::ItemId::new_random()));
        let store = super::SqliteStore::open(&format!("sqlite://{}/t.db?mode=rwc", dir.display())).await.unwrap();
        let before = store.commit_stats();
        let mut tx = store.begin_volatile().await.unwrap();
        assert_eq!(synchronous(&mut tx), 0);
        tx.commit().await.unwrap();
        let after = store.commit_stats();
        assert_eq!((after.logical - before.logical, after.physical - before.physical), (1, 0));
        let mut tx = store.begin().await.unwrap();
        assert_eq!(synchronous(&mut tx), 2);
        tx.commit().await.unwrap();
        assert_eq!(store.commit_stats().physical - after.physical, 1);
        let mut tx = store.begin_volatile().await.unwrap();
        assert_eq!(synchronous(&mut tx), 0);
        drop(tx);
        let mut tx = store.begin().await.unwrap();
        assert_eq!(synchronous(&mut tx), 2);
        drop(tx);
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
