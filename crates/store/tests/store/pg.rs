//! PostgreSQL for the suite: a fresh schema per test on the server of `sdx_testkit::pg` (the one named by
//! `SDX_TEST_DATABASE_URL`, or a throw-away cluster started for this test binary).

use sdx_store::PgStore;
use sdx_testkit::pg::{drop_schema, schema_name, server_url};

/// A fresh schema on the test server, for one test.
pub struct PgDb {
    pub schema: String,
    pub store: PgStore,
}

impl PgDb {
    pub async fn new() -> PgDb {
        let url = server_url();
        let schema = schema_name();
        let store = PgStore::open(url, Some(&schema)).await.expect("open PostgreSQL store in a fresh schema");
        PgDb { schema, store }
    }

    pub async fn reopen(&self) -> PgStore {
        PgStore::open(server_url(), Some(&self.schema)).await.expect("reopen PostgreSQL store")
    }

    /// Drop the schema (matters only on a server that outlives the test binary).
    pub async fn cleanup(self) {
        self.store.close().await;
        drop_schema(&self.schema).await;
    }
}

