//! One store per SQLite file: a second store on an open database is refused with `Error::InUse` naming the file,
//! the first keeps working, and the file is free again once the first is closed or dropped. (PostgreSQL has no
//! file to lock; a node's schema is its own by configuration.)

use anyhow::Result;
use sdx_store::{Error, SqliteStore, Store, StoreTx};

use crate::helpers::{SqliteDb, bela, case_rec, t};

/// The error of a second open, with its message.
async fn refused(url: &str) -> (std::path::PathBuf, std::path::PathBuf, Option<u32>, String) {
    match SqliteStore::open(url).await {
        Err(e @ Error::InUse { .. }) => {
            let text = e.to_string();
            assert_eq!(e.code(), "databaseInUse");
            assert!(!e.is_transient(), "waiting does not help: another node runs on the file");
            let Error::InUse { path, lock, holder } = e else { unreachable!() };
            (path, lock, holder, text)
        }
        Err(e) => panic!("a second open of {url} failed with another error: {e}"),
        Ok(_) => panic!("a second store on {url} was opened while the first is open"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_open_is_refused_naming_the_file_and_the_first_keeps_working() -> Result<()> {
    let db = SqliteDb::new().await;
    let file = db._dir.path().canonicalize()?.join("node.db");
    let (path, lock, holder, text) = refused(&db.url).await;
    assert_eq!(path, file);
    assert_eq!(lock, file.with_extension("db.lock"));
    assert_eq!(holder, Some(std::process::id()), "the holder's process id is in the lock file");
    assert!(text.contains(&file.display().to_string()), "the message names the file: {text}");
    assert!(text.contains(&format!("process {}", std::process::id())), "{text}");

    // Other spellings of the same file are the same database.
    let dir = db._dir.path().display().to_string();
    for url in [format!("sqlite:{dir}/node.db"), format!("sqlite://{dir}/./node.db?mode=rwc")] {
        assert_eq!(refused(&url).await.0, file, "{url}");
    }
    #[cfg(unix)]
    {
        let link = db._dir.path().join("link.db");
        std::os::unix::fs::symlink(&file, &link)?;
        assert_eq!(refused(&format!("sqlite://{}", link.display())).await.0, file, "through a symbolic link");
    }

    // The first store still reads and writes.
    let rec = case_rec(&bela(), t(0));
    let mut tx = db.store.begin().await?;
    tx.put_case(&rec, None).await?;
    tx.commit().await?;
    assert_eq!(db.store.get_case(rec.case.case_id).await?, Some(rec.clone()));

    // SQLite's own locking is untouched: another SQLite client (a backup, the sqlite3 shell) reads the file.
    let other = rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let n: i64 = other.query_row("SELECT count(*) FROM cases", [], |r| r.get(0))?;
    assert_eq!(n, 1);
    drop(other);
    let mut tx = db.store.begin().await?;
    tx.put_case(&case_rec(&bela(), t(1)), None).await?;
    tx.commit().await?;

    // Closed: the file is free; the new store sees what the first committed.
    db.store.close().await;
    let again = SqliteStore::open(&db.url).await?;
    assert_eq!(again.get_case(rec.case.case_id).await?, Some(rec));
    assert!(matches!(SqliteStore::open(&db.url).await, Err(Error::InUse { .. })), "the new store holds it now");
    again.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_frees_its_file_and_memory_databases_take_no_lock() -> Result<()> {
    let db = SqliteDb::new().await;
    let SqliteDb { _dir: dir, url, store } = db;
    let clone = store.clone();
    drop(store);
    assert!(matches!(SqliteStore::open(&url).await, Err(Error::InUse { .. })), "a clone still holds the file");
    drop(clone);
    let again = SqliteStore::open(&url).await?;
    again.close().await;
    drop(dir);

    let (a, b) = (SqliteStore::open("sqlite::memory:").await?, SqliteStore::open("sqlite::memory:").await?);
    let mut tx = a.begin().await?;
    tx.put_case(&case_rec(&bela(), t(0)), None).await?;
    tx.commit().await?;
    assert!(b.query_cases(&Default::default()).await?.items.is_empty(), "two separate databases");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_in_a_missing_directory_is_created_with_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("data/node.db");
    let store = SqliteStore::open(&format!("sqlite://{}?mode=rwc", file.display())).await?;
    assert!(file.is_file());
    store.close().await;
    // Without mode=rwc nothing is created, and the error names the lock file it could not open.
    let missing = dir.path().join("nothing/node.db");
    let e = SqliteStore::open(&format!("sqlite://{}", missing.display())).await.expect_err("refused");
    assert!(e.to_string().contains("nothing/node.db"), "{e}");
    assert!(!missing.parent().unwrap().exists());
    Ok(())
}
