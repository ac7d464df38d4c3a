//! Connecting to the database and bringing its schema up to date.

use crate::error::Result;
use rapport_migrations::Migrator;
use rapport_migrations::MigratorTrait;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::time::Duration;

/// The default database: an SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://rapport.db?mode=rwc";

/// Opens a pool to `url` (`sqlite://...` or `postgres://...`).
///
/// SQLite runs in WAL mode with a busy timeout, so readers never block the writer and
/// concurrent writers wait instead of failing.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx checks each connection as it returns to the pool (a round trip); checking it
        // again as it leaves, the default, doubled the round trips of every statement (on
        // SQLite, two more hand-offs to its thread). A connection idle long enough for the
        // database to have gone away (a restart) is still checked first.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Ok(Database::connect(options).await?)
}

/// Makes SQLite allocate as the rest of the process does, without bookkeeping; returns
/// whether it took effect.
///
/// SQLite makes several allocations for each row it returns (sqlx copies every value out
/// of the statement), on the connection's own thread, and the row is freed on the
/// runtime's. Two things made that slow under load, each pooled connection having its own
/// thread: SQLite's memory statistics, which take one process-wide mutex around every
/// allocation, and the C library's allocator, whose arenas lock when one thread frees what
/// another allocated. Without the statistics (nothing of ours reads them) and on mimalloc,
/// the binary's allocator, an SQLite page of contacts takes a third less CPU.
///
/// # Safety
/// SQLite's configuration is not thread-safe: call this before any thread opens an SQLite
/// database (first thing in `main`). Once SQLite is initialised it changes nothing and
/// returns `false`.
pub unsafe fn tune_sqlite_memory() -> bool {
    use libsqlite3_sys::{
        SQLITE_CONFIG_MALLOC, SQLITE_CONFIG_MEMSTATUS, SQLITE_OK, sqlite3_config,
        sqlite3_mem_methods,
    };
    let mimalloc = sqlite3_mem_methods {
        xMalloc: Some(sqlite_memory::malloc),
        xFree: Some(sqlite_memory::free),
        xRealloc: Some(sqlite_memory::realloc),
        xSize: Some(sqlite_memory::size),
        xRoundup: Some(sqlite_memory::roundup),
        xInit: Some(sqlite_memory::init),
        xShutdown: Some(sqlite_memory::shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: the caller promises no other thread uses SQLite yet. Each option takes what
    // the variadic call passes: an int, then a pointer to methods that SQLite copies
    // before returning.
    unsafe {
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) == SQLITE_OK
            && sqlite3_config(
                SQLITE_CONFIG_MALLOC,
                &mimalloc as *const sqlite3_mem_methods,
            ) == SQLITE_OK
    }
}

/// SQLite's allocator methods (`sqlite3_mem_methods`) on mimalloc. SQLite asks for sizes
/// in `1..2^31` and passes back only pointers these returned.
mod sqlite_memory {
    use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
    use std::ffi::{c_int, c_void};

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    fn int(n: usize) -> c_int {
        c_int::try_from(n).unwrap_or(c_int::MAX)
    }

    pub unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size; mimalloc aligns to 8 bytes at least, as SQLite needs.
        unsafe { mi_malloc(bytes(n)) }
    }

    pub unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: `p` came from `malloc` or `realloc` (or is null).
        unsafe { mi_free(p) }
    }

    pub unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as `free`.
        unsafe { mi_realloc(p, bytes(n)) }
    }

    pub unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as `free`; SQLite may use all of the usable size.
        int(unsafe { mi_usable_size(p) })
    }

    pub unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure function of the size.
        int(unsafe { mi_good_size(bytes(n)) })
    }

    pub unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        libsqlite3_sys::SQLITE_OK
    }

    pub unsafe extern "C" fn shutdown(_: *mut c_void) {}
}

/// Applies every migration not yet applied; running it twice changes nothing.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    Migrator::up(db, None).await?;
    crate::platform::queue::setup(db).await?;
    // SQLite gathers planner statistics only when asked; this refreshes those that are
    // stale and is cheap when they are not. (PostgreSQL's autovacuum does this itself.)
    if db.get_database_backend() == DatabaseBackend::Sqlite {
        db.execute_unprepared("PRAGMA optimize").await?;
    }
    Ok(())
}

/// Begins a transaction that writes. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once
/// with "database is locked" when another writer committed in between, where this one
/// waits its turn (the busy timeout) instead. PostgreSQL ignores the mode.
pub async fn write<C: TransactionTrait>(db: &C) -> std::result::Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Makes PostgreSQL plan each statement of the transaction for its values rather than
/// reuse a generic plan (a no-op on SQLite). A bulk writer needs this: a lookup the
/// connection prepared while a table was empty keeps a generic plan that walks the whole
/// workspace (`workspace_id` only, filtering the rest), which turns an import that grows
/// the table into quadratic work; PostgreSQL replans only after an `ANALYZE`.
pub async fn plan_each(tx: &impl ConnectionTrait) -> Result<()> {
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        tx.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
    }
    Ok(())
}

/// Runs `lookup` as [`plan_each`] does, then lets the rest of the transaction reuse
/// plans again. A bulk writer looks up its batch's keys this way before it writes: its
/// inserts fire a foreign-key check per row, each a statement too, and replanning every
/// check cost more than the rows themselves.
pub async fn planned_lookup<T>(
    tx: &impl ConnectionTrait,
    lookup: impl std::future::Future<Output = std::result::Result<T, sea_orm::DbErr>>,
) -> Result<T> {
    plan_each(tx).await?;
    let found = lookup.await?;
    if tx.get_database_backend() == DatabaseBackend::Postgres {
        tx.execute_unprepared("SET LOCAL plan_cache_mode TO DEFAULT")
            .await?;
    }
    Ok(found)
}

/// Refreshes PostgreSQL's statistics of `tables` (`ANALYZE`; a no-op on SQLite, whose
/// planner prefers the unique index anyway). A bulk writer calls it as a table grows:
/// without statistics — autovacuum off, or not yet round — the planner takes a table it
/// never measured for small and picks an index on `workspace_id` alone for a lookup by
/// workspace and email, reading the whole workspace per batch.
pub async fn refresh_statistics(db: &impl ConnectionTrait, tables: &[&str]) -> Result<()> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        for table in tables {
            db.execute_unprepared(&format!("ANALYZE \"{table}\""))
                .await?;
        }
    }
    Ok(())
}
