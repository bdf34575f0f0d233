//! The store's error type and `Result` alias.
//!
//! Error policy: every failure has a stable machine-readable [`Error::code`]. Expected outcomes that the caller
//! acts on (`conflict`, `duplicate`, `notFound`) are their own variants and leave the transaction usable;
//! everything the database reports is wrapped in [`Error::Database`], whose message never shows a connection URL
//! with credentials (the `sqlx` error is kept for inspection but is deliberately not exposed as `source()`, so
//! that error chains printed with `{:#}` cannot leak it). Stored data that does not decode is [`Error::Corrupt`].

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Optimistic concurrency failed: the stored revision is not the expected one (or, on insert, the record
    /// already exists).
    #[error("the stored record has changed (revision conflict)")]
    Conflict,
    /// A record with this id exists already (e.g. a message id seen before).
    #[error("a record with this id exists already")]
    Duplicate,
    /// The record to change does not exist.
    #[error("no such record")]
    NotFound,
    /// The database failed or refused (connection, I/O, SQL, pool timeout, migration).
    #[error("database error: {}", redacted(.0))]
    Database(sqlx::Error),
    /// The embedded SQLite database failed or refused (I/O, SQL, busy, closed).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored value does not decode (a bug or an edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// An argument the caller gave is not acceptable (bad URL or schema name, bad paging cursor).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The SQLite database file is open in another store already — another node process, or a store of this
    /// process that was not closed. One node per database: its lock file is held for the store's life.
    #[error(
        "the database {} is in use by {}: one node per database (lock {})",
        path.display(),
        holder.map_or_else(|| "another store".to_string(), |pid| format!("process {pid}")),
        lock.display()
    )]
    InUse {
        /// The database file.
        path: std::path::PathBuf,
        /// The lock file next to it (`<database>.lock`).
        lock: std::path::PathBuf,
        /// The process id written into the lock file by its holder, if readable.
        holder: Option<u32>,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Stable lower-camel-case code, e.g. for `application/problem+json` and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Conflict => "conflict",
            Error::Duplicate => "duplicate",
            Error::NotFound => "notFound",
            Error::Database(_) | Error::Sqlite(_) => "database",
            Error::Corrupt(_) => "corrupt",
            Error::Invalid(_) => "invalidArgument",
            Error::InUse { .. } => "databaseInUse",
        }
    }

    /// Whether retrying the whole transaction may succeed (lock timeouts, serialization failures, lost
    /// connections, busy SQLite database).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed) => true,
            Error::Database(sqlx::Error::Database(e)) => {
                // PostgreSQL: serialization_failure, deadlock_detected; SQLite: BUSY (5), LOCKED (6).
                matches!(e.code().as_deref(), Some("40001" | "40P01" | "5" | "6" | "517" | "261"))
            }
            Error::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sqlite(e)
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(e) => Error::Database(e),
            other => Error::Database(sqlx::Error::Migrate(Box::new(other))),
        }
    }
}

/// The message of a `sqlx` error with any `scheme://user:password@` user information masked.
fn redacted(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("[{code}] {}", db.message()),
            None => db.message().to_string(),
        },
        // Configuration errors may quote the URL they failed on.
        sqlx::Error::Configuration(_) => "invalid connection options".to_string(),
        other => other.to_string(),
    };
    redact_userinfo(&text)
}

/// Mask the user information of every URL in `s` (`postgres://u:secret@h` → `postgres://***@h`).
pub(crate) fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || matches!(c, '/' | '"' | '\'' | ')')).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let all = [
            Error::Conflict,
            Error::Duplicate,
            Error::NotFound,
            Error::Database(sqlx::Error::PoolTimedOut),
            Error::Corrupt(String::new()),
            Error::Invalid(String::new()),
            Error::InUse { path: "node.db".into(), lock: "node.db.lock".into(), holder: None },
        ];
        let codes: std::collections::BTreeSet<_> = all.iter().map(Error::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_userinfo("cannot reach postgres://sdx:geheim@db.example:5432/sdx now"),
            "cannot reach postgres://***@db.example:5432/sdx now"
        );
        assert_eq!(redact_userinfo("sqlite://data/node.db"), "sqlite://data/node.db");
        assert_eq!(redact_userinfo("a://x@y and b://u:p@h/x"), "a://***@y and b://***@h/x");
        let e = Error::Database(sqlx::Error::Configuration("postgres://u:pw@h".into()));
        assert!(!e.to_string().contains("pw"), "{e}");
    }
}
