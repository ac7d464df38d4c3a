//! `rapport worker`: job workers only, sharing the database's queue with every other
//! process; stops on SIGTERM after the jobs in flight finish.

use super::settings::{MailArgs, WorkerArgs};
use super::{Global, shutdown_signal};

/// What `worker` is told.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    mail: MailArgs,
    #[command(flatten)]
    workers: WorkerArgs,
}

/// Runs the workers until SIGTERM or Ctrl-C.
pub(crate) async fn run(cli: &Global, Args { mail, workers }: Args) -> anyhow::Result<()> {
    let conn = cli.connect().await?;
    let public_url = mail
        .public_url
        .clone()
        .unwrap_or_else(|| rapport_api::server::DEFAULT_PUBLIC_URL.to_string());
    let mut config = workers.config(&mail, public_url)?;
    config.plugin_cache = Some(cli.plugin_cache.clone());
    config.plugin_capture = cli.plugin_capture();
    tracing::info!(
        concurrency = config.options.concurrency,
        "running job workers"
    );
    rapport_api::workers::run(conn.clone(), config, shutdown_signal()).await?;
    conn.close().await?;
    tracing::info!("stopped");
    Ok(())
}
