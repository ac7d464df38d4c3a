//! The `rapport` command line: the settings every command shares here, one file per
//! subcommand with its arguments and its `run`, and a dispatch of one line per command.
//! A command that needs the database connects (and migrates) itself; those that do not
//! (`schema`, `model evaluate`, `plugin test`, `plugin new`) never touch it.

mod api_key;
mod demo;
mod import;
mod model;
mod plugin;
mod plugin_types;
mod serve;
mod settings;
mod user;
mod worker;

use anyhow::Context as _;
use clap::Parser;
use rapport_engine::intelligence::plugins::call_records::Capture;
use rapport_engine::platform::db;

/// Rapport: a headless CRM engine with a GraphQL API.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Settings every command shares.
#[derive(clap::Args)]
pub(crate) struct Global {
    /// Database: an SQLite file (the default) or a PostgreSQL URL.
    #[arg(long, global = true, env = "RAPPORT_DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Connections in the database pool.
    #[arg(
        long,
        global = true,
        env = "RAPPORT_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    max_connections: u32,
    /// Where compiled plugins are cached, so a restart does not compile them again.
    #[arg(
        long,
        global = true,
        env = "RAPPORT_PLUGIN_CACHE",
        default_value = "rapport-plugin-cache"
    )]
    plugin_cache: std::path::PathBuf,
    /// The share (0–1) of answered plugin calls recorded as runs (`Plugin.runs`); calls
    /// that fail or are refused are always recorded.
    #[arg(long, global = true, env = "RAPPORT_PLUGIN_RUN_SAMPLE", default_value_t = Capture::DEFAULT_SAMPLE)]
    plugin_run_sample: f64,
    /// Plugin inputs larger than this many bytes are recorded by hash and size only.
    #[arg(long, global = true, env = "RAPPORT_PLUGIN_RUN_INPUT_BYTES", default_value_t = Capture::DEFAULT_INPUT_BYTES)]
    plugin_run_input_bytes: usize,
    /// Days recorded plugin runs are kept.
    #[arg(long, global = true, env = "RAPPORT_PLUGIN_RUN_RETENTION_DAYS", default_value_t = Capture::DEFAULT_RETENTION_DAYS)]
    plugin_run_retention_days: u32,
    /// How log lines are written: `text` for people, `json` (one object a line, with the
    /// request id of the request that caused it) for a log pipeline.
    #[arg(
        long,
        global = true,
        env = "RAPPORT_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Plain lines for people.
    Text,
    /// One JSON object a line, with the fields of the spans it happened in.
    Json,
}

impl Cli {
    /// The log format asked for.
    pub fn log_format(&self) -> LogFormat {
        self.global.log_format
    }
}

impl Global {
    /// Which plugin calls are recorded as runs, and for how long.
    fn plugin_capture(&self) -> Capture {
        Capture {
            sample: self.plugin_run_sample.clamp(0.0, 1.0),
            input_bytes: self.plugin_run_input_bytes,
            retention: chrono::Duration::days(self.plugin_run_retention_days.max(1) as i64),
        }
    }

    /// The database, migrated to this version's schema.
    async fn connect(&self) -> anyhow::Result<sea_orm::DatabaseConnection> {
        let conn = db::connect(&self.database_url, self.max_connections)
            .await
            .context("connecting to the database")?;
        db::migrate(&conn).await.context("migrating the database")?;
        Ok(conn)
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// Serves the GraphQL API (migrating the database first).
    Serve(Box<serve::Args>),
    /// Runs job workers only (campaign sends), sharing the database's queue with every
    /// other process; stops on SIGTERM after jobs in flight finish.
    Worker(worker::Args),
    /// Applies pending migrations (safe to run again).
    Migrate,
    /// Creates a workspace full of synthetic data; prints its API key last on stdout.
    Demo(demo::Args),
    /// Manages API keys.
    #[command(subcommand)]
    ApiKey(api_key::Command),
    /// Prints the GraphQL schema (SDL).
    Schema,
    /// Works with the built-in models.
    #[command(subcommand)]
    Model(model::Command),
    /// Works with WebAssembly plugins.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Console accounts: creates one and prints a link to set its password.
    #[command(subcommand)]
    User(user::Command),
    /// Imports data from files.
    #[command(subcommand)]
    Import(import::Command),
}

/// Runs the command the line names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Serve(args) => serve::run(global, *args).await,
        Command::Worker(args) => worker::run(global, args).await,
        Command::Migrate => migrate(global).await,
        Command::Demo(args) => demo::run(global, args).await,
        Command::ApiKey(cmd) => api_key::run(global, cmd).await,
        Command::Schema => schema(),
        Command::Model(cmd) => model::run(global, cmd).await,
        Command::Plugin(cmd) => plugin::run(global, cmd).await,
        Command::User(cmd) => user::run(global, cmd).await,
        Command::Import(cmd) => import::run(global, cmd).await,
    }
}

async fn migrate(global: &Global) -> anyhow::Result<()> {
    global.connect().await?;
    tracing::info!("database is up to date");
    Ok(())
}

fn schema() -> anyhow::Result<()> {
    print!("{}", rapport_api::graphql::sdl());
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
