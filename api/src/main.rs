//! The `rapport` command: the runtime and logging, then the command line (`cli`).

mod cli;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

// A GraphQL response is thousands of small allocations made and freed across the
// runtime's threads; glibc's allocator spent a third of the server's time in them (and
// in its arena locks) under load, mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stack of each runtime thread. Inputs that recurse are bounded before they are parsed
/// (see `rapport_api::request_limits`); this is the margin behind those bounds, wider
/// than tokio's 2 MiB default because debug builds spend far more stack per frame.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet, so none has opened an SQLite database.
    unsafe { rapport_engine::platform::db::tune_sqlite_memory() };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RAPPORT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format() {
        cli::LogFormat::Text => logs.init(),
        cli::LogFormat::Json => logs.json().init(),
    }
    cli::run(cli).await
}
