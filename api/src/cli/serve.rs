//! `rapport serve`: the GraphQL API, and in the same process (unless told otherwise) the
//! job workers, the sequence ticker and the score schedule. This is the composition root
//! of a serving process: the mailer, the plugin host and the health report are built here
//! once and handed to the API and the workers.

use std::net::SocketAddr;

use anyhow::Context as _;
use rapport_engine::intelligence::analytics::{self, schedule::Schedule};

use super::settings::{LimitArgs, MailArgs, WorkerArgs};
use super::{Global, demo, shutdown_signal};

/// What `serve` is told.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, env = "RAPPORT_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seed a fresh demo workspace first and print its API key.
    #[arg(long)]
    demo: bool,
    /// A next-best-action plugin component for the demo workspace (see `rapport demo
    /// --plugin`).
    #[arg(long)]
    demo_plugin: Option<std::path::PathBuf>,
    /// Contacts in the demo workspace.
    #[arg(long, default_value_t = 500)]
    demo_contacts: u64,
    /// Seconds a verified API key is trusted before it is looked up again (0: always).
    #[arg(long, env = "RAPPORT_KEY_CACHE_SECONDS", default_value_t = 5)]
    key_cache_seconds: u64,
    #[command(flatten)]
    mail: MailArgs,
    /// Run the API only: no job workers in this process (run `rapport worker` instead).
    #[arg(long, env = "RAPPORT_NO_WORKERS")]
    no_workers: bool,
    #[command(flatten)]
    workers: WorkerArgs,
    /// Do not keep scores fresh in this process (when another process does).
    #[arg(long, env = "RAPPORT_NO_SCHEDULER")]
    no_scheduler: bool,
    /// Seconds between rescoring the contacts whose data changed.
    #[arg(long, env = "RAPPORT_SCORE_CHANGES_SECONDS", default_value_t = Schedule::DEFAULT.changes_every.as_secs())]
    score_changes_seconds: u64,
    /// Hours between full rescoring runs.
    #[arg(long, env = "RAPPORT_RESCORE_HOURS", default_value_t = Schedule::DEFAULT.rescore_every.as_secs() / 3600)]
    rescore_hours: u64,
    /// Hours between retraining every model.
    #[arg(long, env = "RAPPORT_RETRAIN_HOURS", default_value_t = Schedule::DEFAULT.retrain_every.as_secs() / 3600)]
    retrain_hours: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Migrates the database, then serves until SIGTERM or Ctrl-C.
pub(crate) async fn run(cli: &Global, args: Args) -> anyhow::Result<()> {
    let conn = cli.connect().await?;
    let Args {
        addr,
        demo,
        demo_plugin,
        demo_contacts,
        key_cache_seconds,
        mail,
        no_workers,
        workers,
        no_scheduler,
        score_changes_seconds,
        rescore_hours,
        retrain_hours,
        limits,
    } = args;

    if demo {
        let seeded = demo::seed(
            &conn,
            "Demo",
            rapport_engine::demo::DemoSize::for_contacts(demo_contacts),
            demo_plugin.as_deref(),
            cli,
        )
        .await?;
        let key = &seeded.key;
        let console = mail
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        eprintln!(
            "Demo workspace ready.\n  Console: {}/  sign in as {} with password {}\n  API: curl -s http://{addr}/graphql -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"query\":\"{{ contacts(first: 3) {{ totalCount edges {{ node {{ name email company {{ name }} }} }} }} }}\"}}'",
            console.trim_end_matches('/'),
            seeded.sign_in.0,
            seeded.sign_in.1
        );
        println!("{key}");
    }
    let hours = |h: u64| std::time::Duration::from_secs(h.max(1) * 3600);
    let schedule = (!no_scheduler).then(|| Schedule {
        changes_every: std::time::Duration::from_secs(score_changes_seconds.max(1)),
        rescore_every: hours(rescore_hours),
        retrain_every: hours(retrain_hours),
    });
    let public_url = mail
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let api_mail = rapport_api::graphql::Mail {
        mailer: mail.mailer()?,
        from: rapport_engine::values::EmailAddress::parse("--mail-from", &mail.mail_from)?,
    };
    // One report of this process's loops, which `/readyz` reads.
    let health = std::sync::Arc::new(rapport_engine::platform::health::Health::default());
    // One plugin host for the API and the workers: one wasmtime engine, one epoch
    // thread, one compiled-component cache.
    let plugins = rapport_api::graphql::plugin_host(
        &conn,
        std::sync::Arc::new(rapport_api::keys::VerifiedKeys::new(
            std::time::Duration::from_secs(key_cache_seconds),
        )),
        rapport_api::graphql::PublicUrl(public_url.trim_end_matches('/').to_string()),
        Some(cli.plugin_cache.clone()),
    )
    .inspect_err(|e| tracing::error!(error = %e, "serving without plugins"))
    .ok()
    .map(|mut host| {
        host.capture = cli.plugin_capture();
        host
    });
    let webhooks = workers.webhooks(&mail)?;
    let workers = (!no_workers)
        .then(|| workers.config(&mail, public_url.clone()))
        .transpose()?
        .map(|mut w| {
            w.plugin_cache = Some(cli.plugin_cache.clone());
            w.plugin_capture = cli.plugin_capture();
            w.plugins = plugins.clone();
            w.health = health.clone();
            w
        });
    let config = rapport_api::server::Config {
        key_ttl: std::time::Duration::from_secs(key_cache_seconds),
        public_url: public_url.clone(),
        mail: Some(api_mail),
        plugin_cache: Some(cli.plugin_cache.clone()),
        plugins,
        clock: rapport_engine::clock::system(),
        limits: limits.limits(),
        graphiql: !limits.no_graphiql,
        introspection: limits.introspection,
        documents: std::sync::Arc::new(limits.documents()?),
        health,
        trusted_proxies: limits.trusted_proxies.clone(),
        cors_origins: limits.cors_origins()?,
        capture: limits.capture(),
        sessions: limits.sessions(),
        webhooks,
        metrics_token: limits.metrics_token.clone().filter(|t| !t.is_empty()),
    };
    serve(conn, addr, config, schedule, workers).await
}

async fn serve(
    conn: sea_orm::DatabaseConnection,
    addr: SocketAddr,
    config: rapport_api::server::Config,
    schedule: Option<Schedule>,
    workers: Option<rapport_api::workers::WorkerConfig>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving GraphQL at /graphql");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = schedule.map(|schedule| {
        tokio::spawn(analytics::schedule::run(
            conn.clone(),
            schedule,
            config.health.clone(),
            async {
                let _ = stopped.await;
            },
        ))
    });
    let (stop_workers, workers_stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = workers.map(|config| {
        tokio::spawn(rapport_api::workers::run(conn.clone(), config, async {
            let _ = workers_stopped.await;
        }))
    });
    axum::serve(
        listener,
        rapport_api::server::router_with(conn.clone(), config)
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    let _ = stop.send(());
    let _ = stop_workers.send(());
    if let Some(task) = workers {
        match task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "job workers stopped with an error"),
            Err(e) => tracing::error!(error = %e, "job workers panicked"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(task) = scheduler {
        let _ = task.await;
    }
    conn.close().await?;
    tracing::info!("stopped");
    Ok(())
}
