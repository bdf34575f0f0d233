//! The PostgreSQL engine: for operators who run a database server, possibly one server for several nodes.
//!
//! Each node lives in its own schema (created if missing): every pooled connection sets `search_path` to it
//! right after connecting, so the tables, the migration history (`_sqlx_migrations`) and all statements are the
//! node's own. Transactions run at `READ COMMITTED`; optimistic concurrency is the `revision` check in the
//! `UPDATE`, sequence numbers are atomic upserts, and claiming deliveries uses `FOR UPDATE SKIP LOCKED` so that
//! several workers or processes never take the same delivery. Text columns use the `"C"` collation (see the
//! migration), so ordering and prefix ranges do not depend on the server's locale.

use std::str::FromStr;
use std::time::Duration;

use sdx_model::{CaseId, MessageId};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::error::{Error, Result};
use crate::queries;
use crate::record::{
    BlockedCase, CaseQuery, CaseRecord, Delivery, DeliveryState, DeliveryStats, MessageRecord, Page, TimelineEvent,
};

/// Connections per store.
const MAX_CONNECTIONS: u32 = 8;

/// The PostgreSQL engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    schema: Option<String>,
}

/// A write transaction on the PostgreSQL engine.
#[derive(Debug)]
pub struct PgTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

/// Check a schema name: 1–63 of `[a-z0-9_]`, not starting with a digit, not `pg_…` (so it never needs
/// escaping beyond double quotes and cannot name a system schema).
pub fn check_schema_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("schema name `{name}` must be 1-63 of [a-z0-9_], not starting with a digit or pg_")))
    }
}

impl PgStore {
    /// Connect to `postgres://user:password@host:port/database`, create `schema` if it is missing, and migrate
    /// it. Without a schema the server's default `search_path` is used (normally `public`).
    pub async fn open(url: &str, schema: Option<&str>) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| Error::Invalid("not a PostgreSQL URL (postgres://user@host/database)".into()))?;
        if let Some(s) = schema {
            check_schema_name(s)?;
            let mut conn = PgConnection::connect_with(&options).await?;
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS \"{s}\"")))
                .execute(&mut conn)
                .await
            {
                // Two nodes creating the same schema at once: one of them sees a unique violation.
                let raced = matches!(&e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"));
                if !raced {
                    return Err(e.into());
                }
            }
            conn.close().await?;
        }
        let set_path: Option<std::sync::Arc<str>> = schema.map(|s| format!("SET search_path TO \"{s}\"").into());
        let mut pool = PgPoolOptions::new().max_connections(MAX_CONNECTIONS).acquire_timeout(Duration::from_secs(30));
        if let Some(set_path) = set_path {
            pool = pool.after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    sqlx::query(sqlx::AssertSqlSafe(set_path)).execute(conn).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        migrator().run(&pool).await?;
        Ok(PgStore { pool, schema: schema.map(str::to_owned) })
    }

    /// The schema this store lives in, if one was given.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Close all connections (waits for transactions in flight).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The embedded PostgreSQL migrations.
fn migrator() -> sqlx::migrate::Migrator {
    queries::migrator(&[
        (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
        (2, "outbox order", include_str!("../migrations/postgres/0002_outbox_order.sql")),
        (3, "replay and blocking", include_str!("../migrations/postgres/0003_replay_and_blocking.sql")),
        (4, "feed and connectors", include_str!("../migrations/postgres/0004_feed_and_connectors.sql")),
        (5, "notices", include_str!("../migrations/postgres/0005_notices.sql")),
        (6, "case owner", include_str!("../migrations/postgres/0006_case_owner.sql")),
    ])
}

impl PgTx {
    pub(crate) fn conn(&mut self) -> Result<&mut PgConnection> {
        Ok(&mut self.tx)
    }

    pub(crate) async fn finish(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}

use crate::postgres_queries as sql;

impl crate::Store for PgStore {
    type Tx = PgTx;

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx { tx: self.pool.begin().await? })
    }

    async fn begin_volatile(&self) -> Result<PgTx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        Ok(PgTx { tx })
    }

    async fn get_case(&self, id: CaseId) -> Result<Option<CaseRecord>> {
        sql::get_case(&self.pool, id).await
    }

    async fn query_cases(&self, q: &CaseQuery) -> Result<Page<CaseRecord>> {
        sql::query_cases(&self.pool, q).await
    }

    async fn timeline(&self, id: CaseId) -> Result<Vec<TimelineEvent>> {
        sql::timeline(&self.pool, id).await
    }

    async fn get_message(&self, id: MessageId) -> Result<Option<MessageRecord>> {
        sql::get_message(&self.pool, id).await
    }

    async fn list_deliveries(&self, state: Option<DeliveryState>, limit: u32) -> Result<Vec<Delivery>> {
        sql::list_deliveries(&self.pool, state, limit).await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats> {
        sql::delivery_stats(&self.pool).await
    }

    async fn list_blocked(&self, limit: u32) -> Result<Vec<BlockedCase>> {
        sql::list_blocked(&self.pool, limit).await
    }

    async fn feed(&self, after: crate::FeedCursor, limit: u32) -> Result<Vec<crate::FeedEvent>> {
        sql::feed(&self.pool, after, limit).await
    }

    async fn connector_state(&self, connector: &str, key: &str) -> Result<Option<crate::StateEntry>> {
        sql::connector_state(&self.pool, connector, key).await
    }

    async fn active_notices(&self, now: sdx_model::Timestamp, limit: u32) -> Result<Vec<crate::NoticeRecord>> {
        sql::active_notices(&self.pool, now, limit).await
    }
}
