//! SQLite's process-wide settings, in a process of their own: they can only be made before
//! SQLite is first used, which the other test binaries do from many threads at once.

use libsqlite3_sys::{
    SQLITE_OK, SQLITE_STATUS_MEMORY_USED, sqlite3_free, sqlite3_malloc, sqlite3_msize,
    sqlite3_status64,
};
use rapport_engine::platform::db;
use sea_orm::ConnectionTrait;

/// The memory SQLite has counted as in use, and its high-water mark.
fn counted() -> (i64, i64) {
    let (mut now, mut peak) = (0i64, 0i64);
    // SAFETY: two valid out-pointers; the status call is thread-safe.
    let rc = unsafe { sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &mut now, &mut peak, 0) };
    assert_eq!(rc, SQLITE_OK);
    (now, peak)
}

#[test]
fn sqlite_allocates_on_mimalloc_uncounted_once_told_before_first_use() {
    // SAFETY: this binary's only test, run before anything in it touched SQLite.
    assert!(unsafe { db::tune_sqlite_memory() });
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let conn = db::connect("sqlite::memory:", 1)
                .await
                .expect("in-memory SQLite");
            conn.execute_unprepared(
                "CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO t SELECT printf('%0100d', i) FROM n",
            )
            .await
            .expect("rows");
            let rows = conn
                .query_all_raw(sea_orm::Statement::from_string(
                    conn.get_database_backend(),
                    "SELECT x FROM t ORDER BY x DESC",
                ))
                .await
                .expect("read back");
            assert_eq!(rows.len(), 1000);
        });
    // SQLite opened a database, wrote and read rows, and counted none of what it allocated.
    assert_eq!(counted(), (0, 0));
    // What it allocates comes from mimalloc.
    // SAFETY: a fresh allocation, measured and freed once.
    unsafe {
        let p = sqlite3_malloc(100);
        assert!(!p.is_null());
        assert!(libmimalloc_sys::mi_is_in_heap_region(p));
        assert!(sqlite3_msize(p) >= 100);
        sqlite3_free(p);
    }
    // Too late now: SQLite is initialised, so the setting is refused, not changed under
    // live connections.
    // SAFETY: the only thread here; SQLite refuses configuration once initialised.
    assert!(!unsafe { db::tune_sqlite_memory() });
}
