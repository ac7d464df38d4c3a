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
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Ok(Database::connect(options).await?)
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
