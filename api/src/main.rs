//! The `rapport` command.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rapport_engine::intelligence::analytics;
use rapport_engine::{demo, platform::auth, platform::db};
use std::net::SocketAddr;
use tracing_subscriber::EnvFilter;

// A GraphQL response is thousands of small allocations made and freed across the
// runtime's threads; glibc's allocator spent a third of the server's time in them (and
// in its arena locks) under load, mimalloc a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rapport: a headless CRM engine with a GraphQL API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
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
    #[command(subcommand)]
    command: Command,
}

/// What one request may ask of `serve`.
#[derive(clap::Args, Clone, Debug)]
struct LimitArgs {
    /// Bytes of a JSON request body (GraphQL, webhooks); larger ones get 413 unread.
    #[arg(long, env = "RAPPORT_MAX_BODY_BYTES", default_value_t = rapport_api::server::DEFAULT_LIMITS.json_body_bytes)]
    max_body_bytes: usize,
    /// Bytes of a multipart GraphQL request (a plugin upload).
    #[arg(long, env = "RAPPORT_MAX_UPLOAD_BYTES", default_value_t = rapport_api::server::DEFAULT_LIMITS.upload_bytes)]
    max_upload_bytes: usize,
    /// Seconds a request may run before it is answered with a timeout.
    #[arg(long, env = "RAPPORT_REQUEST_TIMEOUT_SECONDS", default_value_t = rapport_api::server::DEFAULT_LIMITS.request_timeout.as_secs())]
    request_timeout_seconds: u64,
    /// Seconds a multipart request (a plugin upload, compiled before it is answered) may run.
    #[arg(long, env = "RAPPORT_UPLOAD_TIMEOUT_SECONDS", default_value_t = rapport_api::server::DEFAULT_LIMITS.upload_timeout.as_secs())]
    upload_timeout_seconds: u64,
    /// Query complexity one API key may spend per second (a request costs at most 100,000).
    #[arg(long, env = "RAPPORT_KEY_COST_PER_SECOND", default_value_t = rapport_api::server::DEFAULT_LIMITS.key_cost_per_second)]
    key_cost_per_second: u64,
    /// Do not serve GraphiQL to browsers at `GET /graphql`.
    #[arg(long, env = "RAPPORT_NO_GRAPHIQL")]
    no_graphiql: bool,
    /// Addresses of reverse proxies whose `X-Forwarded-For` names the client (comma
    /// separated); from anyone else the header is ignored.
    #[arg(long, env = "RAPPORT_TRUSTED_PROXIES", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
}

impl LimitArgs {
    fn limits(&self) -> rapport_api::server::Limits {
        rapport_api::server::Limits {
            json_body_bytes: self.max_body_bytes,
            upload_bytes: self.max_upload_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds.max(1)),
            upload_timeout: std::time::Duration::from_secs(self.upload_timeout_seconds.max(1)),
            key_cost_per_second: self.key_cost_per_second,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serves the GraphQL API (migrating the database first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "RAPPORT_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Seed a fresh demo workspace first and print its API key.
        #[arg(long)]
        demo: bool,
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
        #[arg(long, env = "RAPPORT_SCORE_CHANGES_SECONDS", default_value_t = 60)]
        score_changes_seconds: u64,
        /// Hours between full rescoring runs.
        #[arg(long, env = "RAPPORT_RESCORE_HOURS", default_value_t = 6)]
        rescore_hours: u64,
        /// Hours between retraining every model.
        #[arg(long, env = "RAPPORT_RETRAIN_HOURS", default_value_t = 24)]
        retrain_hours: u64,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Runs job workers only (campaign sends), sharing the database's queue with every
    /// other process; stops on SIGTERM after jobs in flight finish.
    Worker {
        #[command(flatten)]
        mail: MailArgs,
        #[command(flatten)]
        workers: WorkerArgs,
    },
    /// Applies pending migrations (safe to run again).
    Migrate,
    /// Creates a workspace full of synthetic data; prints its API key last on stdout.
    Demo {
        /// Number of contacts (companies, deals and activities scale with it).
        #[arg(long, default_value_t = 1000)]
        contacts: u64,
        /// Activities in all (default: 10 per contact).
        #[arg(long)]
        activities: Option<u64>,
        /// Workspace name.
        #[arg(long, default_value = "Demo")]
        name: String,
    },
    /// Manages API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Prints the GraphQL schema (SDL).
    Schema,
    /// Works with the built-in models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Works with WebAssembly plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Registers a component as a new version of a plugin in a workspace (the same checks
    /// as `registerPlugin`); prints the version as JSON.
    Install {
        /// The component (.wasm).
        file: std::path::PathBuf,
        /// The plugin's name in the workspace.
        #[arg(long)]
        name: String,
        /// A file holding the input query (GraphQL with a `$contactId` variable).
        #[arg(long)]
        query: std::path::PathBuf,
        /// The plugin's configuration, as a JSON object.
        #[arg(long)]
        config: Option<String>,
        /// Limits per call, as JSON (`{"fuel": 50000000, "timeMs": 200}`).
        #[arg(long)]
        limits: Option<String>,
        #[arg(long)]
        workspace: i64,
    },
    /// Runs every enabled plugin (or one) over every contact of a workspace now, in
    /// batches as the jobs do; prints what was stored and the rate, as JSON.
    Run {
        #[arg(long)]
        workspace: i64,
        /// Only this plugin.
        #[arg(long)]
        plugin: Option<String>,
    },
    /// Runs a component on an input without a database: prints its answer, the fuel it
    /// used and the time it took, as JSON.
    Test {
        /// The component (.wasm).
        file: std::path::PathBuf,
        /// The input query's result for one contact, as JSON (`{"contact": {...}}`).
        #[arg(long)]
        input: std::path::PathBuf,
        /// The plugin's configuration, as a JSON object.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Limits per call, as JSON.
        #[arg(long)]
        limits: Option<String>,
        /// The moment the input describes (RFC 3339; default: now).
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Creates a new plugin project that builds as it is.
    New {
        /// The project's (and plugin's) name.
        name: String,
        /// The language (only Rust for now).
        #[arg(long, value_enum, default_value = "rust")]
        lang: PluginLang,
        /// Where the SDK crate is (default: this Rapport's own plugins/sdk).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PluginLang {
    Rust,
}

/// Where mail goes and where its links point.
#[derive(clap::Args)]
struct MailArgs {
    /// The address people reach the API at, for unsubscribe, confirmation and tracking
    /// links (default: http:// + the serve address).
    #[arg(long, env = "RAPPORT_PUBLIC_URL")]
    public_url: Option<String>,
    /// SMTP server for outgoing mail (`smtp://user:pass@host:587`, `smtps://…`);
    /// without it, mail is written as .eml files to --outbox.
    #[arg(long, env = "RAPPORT_SMTP_URL")]
    smtp_url: Option<String>,
    /// Where mail goes when no SMTP server is configured.
    #[arg(long, env = "RAPPORT_OUTBOX", default_value = "outbox")]
    outbox: std::path::PathBuf,
    /// The sender address of Rapport's own emails.
    #[arg(
        long,
        env = "RAPPORT_MAIL_FROM",
        default_value = "no-reply@rapport.localhost"
    )]
    mail_from: String,
    /// A DKIM private key to sign outgoing mail with: RSA in PKCS#1 PEM, or an Ed25519
    /// seed in base64.
    #[arg(long, env = "RAPPORT_DKIM_KEY_FILE", requires = "dkim_selector")]
    dkim_key_file: Option<std::path::PathBuf>,
    /// The DKIM selector published in DNS (`<selector>._domainkey.<domain>`).
    #[arg(long, env = "RAPPORT_DKIM_SELECTOR")]
    dkim_selector: Option<String>,
    /// The DKIM signing domain (default: the domain of --mail-from).
    #[arg(long, env = "RAPPORT_DKIM_DOMAIN")]
    dkim_domain: Option<String>,
}

impl MailArgs {
    fn mailer(&self) -> anyhow::Result<rapport_engine::platform::email::Mailer> {
        let mailer = rapport_engine::platform::email::Mailer::configure(
            self.smtp_url.as_deref(),
            self.outbox.clone(),
        )?;
        let Some(file) = &self.dkim_key_file else {
            return Ok(mailer);
        };
        let private_key = std::fs::read_to_string(file)
            .with_context(|| format!("reading the DKIM key {}", file.display()))?;
        let from = rapport_engine::values::EmailAddress::parse("--mail-from", &self.mail_from)?;
        let key = rapport_engine::platform::email::DkimKey {
            selector: self.dkim_selector.clone().unwrap_or_default(),
            domain: self
                .dkim_domain
                .clone()
                .unwrap_or_else(|| from.domain().to_string()),
            private_key,
        };
        Ok(mailer.with_dkim(&key)?)
    }
}

/// How job workers run.
#[derive(clap::Args)]
struct WorkerArgs {
    /// Jobs this process runs at once.
    #[arg(long, env = "RAPPORT_WORKER_CONCURRENCY", default_value_t = 4)]
    worker_concurrency: usize,
    /// Seconds between worker heartbeats; a worker silent for three is presumed dead and
    /// its jobs are taken over.
    #[arg(long, env = "RAPPORT_WORKER_HEARTBEAT_SECONDS", default_value_t = 10)]
    worker_heartbeat_seconds: u64,
    /// Seconds before a message claimed by a worker that never answered counts as
    /// interrupted (it is then marked failed, never sent twice).
    #[arg(long, env = "RAPPORT_CLAIM_TIMEOUT_SECONDS", default_value_t = 900)]
    claim_timeout_seconds: u64,
    /// Consecutive failed sends after which a campaign pauses itself.
    #[arg(long, env = "RAPPORT_SEND_FAILURE_LIMIT", default_value_t = 10)]
    send_failure_limit: i32,
    /// Seconds before a campaign that paused itself (the mail server kept failing) first
    /// checks whether the server is back; the wait doubles up to ten minutes.
    #[arg(long, env = "RAPPORT_MAIL_PROBE_SECONDS", default_value_t = 30)]
    mail_probe_seconds: u64,
    /// Seconds before the first retry of a failed job (doubling each time).
    #[arg(long, env = "RAPPORT_RETRY_DELAY_SECONDS", default_value_t = 2)]
    retry_delay_seconds: u64,
    /// Milliseconds between looks for due drip-sequence steps and new trigger rows.
    #[arg(long, env = "RAPPORT_SEQUENCE_TICK_MS", default_value_t = 2000)]
    sequence_tick_ms: u64,
    /// Seconds between evaluations of segment and date-attribute triggers.
    #[arg(long, env = "RAPPORT_SEQUENCE_SLOW_TICK_SECONDS", default_value_t = 60)]
    sequence_slow_tick_seconds: u64,
    /// Seconds a worker may hold a sequence enrollment before another takes it over (a
    /// worker that died holding it).
    #[arg(long, env = "RAPPORT_SEQUENCE_LEASE_SECONDS", default_value_t = 600)]
    sequence_lease_seconds: u64,
}

impl WorkerArgs {
    fn config(
        &self,
        mail: &MailArgs,
        public_url: String,
    ) -> anyhow::Result<rapport_api::workers::WorkerConfig> {
        let mailer = mail.mailer()?;
        let mut config = rapport_api::workers::WorkerConfig::new(mailer, public_url);
        config.failure_limit = self.send_failure_limit.max(1);
        config.probe_delay = std::time::Duration::from_secs(self.mail_probe_seconds.max(1));
        config.claim_timeout = std::time::Duration::from_secs(self.claim_timeout_seconds.max(1));
        config.options.concurrency = self.worker_concurrency.max(1);
        config.options.heartbeat =
            std::time::Duration::from_secs(self.worker_heartbeat_seconds.max(1));
        config.options.retry_delay = std::time::Duration::from_secs(self.retry_delay_seconds);
        config.ticking = rapport_engine::engagement::sequences::runner::Ticking {
            every: std::time::Duration::from_millis(self.sequence_tick_ms.max(10)),
            slow_every: std::time::Duration::from_secs(self.sequence_slow_tick_seconds.max(1)),
            lease: std::time::Duration::from_secs(self.sequence_lease_seconds.max(1)),
        };
        Ok(config)
    }
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Fits a model to your own exported data and reports how it does.
    Evaluate {
        /// Which model.
        #[arg(long, value_enum)]
        kind: ModelKind,
        /// The data, with a header row: for `clv`, `customer,frequency,recency,T[,monetary]`;
        /// for `classifier`, any columns plus the label column.
        #[arg(long)]
        csv: std::path::PathBuf,
        /// `classifier`: the column to predict.
        #[arg(long, required_if_eq("kind", "classifier"))]
        label: Option<String>,
        /// `classifier`: the label value that counts as positive (default 1, true or yes).
        #[arg(long)]
        positive: Option<String>,
        /// `classifier`: an id column, not used as a feature.
        #[arg(long)]
        id: Option<String>,
        /// `classifier`: a column whose `train` / `test` values split the rows (default: a
        /// stratified 80/20 split with a fixed seed).
        #[arg(long)]
        split: Option<String>,
        /// Predict this many periods ahead for every customer (needs --out).
        #[arg(long, requires = "out")]
        predict: Option<f64>,
        /// Where predictions go: `customer,p_alive,expected_purchases,expected_value`.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Trains a model on a workspace's data (as the trainModel mutation does) and prints
    /// the new version as JSON.
    Train {
        /// Which model.
        #[arg(long, value_enum)]
        kind: TrainKind,
        /// The workspace.
        #[arg(long)]
        workspace: i64,
        /// Fewest examples of each class (or repeat customers, multi-product orders).
        #[arg(long, default_value_t = 50)]
        min_positives: usize,
    },
    /// Rescores a workspace's contacts and deals with the active models and prints how
    /// many were scored and how fast.
    Rescore {
        /// The workspace.
        #[arg(long)]
        workspace: i64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TrainKind {
    LeadScore,
    WinProbability,
    CustomerValue,
    Recommendations,
    BehaviourSegments,
    Churn,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ModelKind {
    /// BG/NBD repeat purchases and Gamma-Gamma spend.
    Clv,
    /// The logistic pipeline behind lead scoring, win probability and churn.
    Classifier,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Creates a key and prints only the key on stdout.
    Create {
        /// Workspace id; a new workspace is created when omitted.
        #[arg(long)]
        workspace: Option<i64>,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated scopes: read, write, admin.
        #[arg(long, default_value = "read,write")]
        scopes: String,
    },
    /// Lists a workspace's keys (never the secrets).
    List {
        #[arg(long)]
        workspace: i64,
    },
    /// Revokes a key by id or prefix.
    Revoke { key: String },
}

/// Stack of each runtime thread. Inputs that recurse are bounded before they are parsed
/// (see `rapport_api::request_limits`); this is the margin behind those bounds, wider
/// than tokio's 2 MiB default because debug builds spend far more stack per frame.
const THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK_BYTES)
        .build()
        .context("starting the async runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RAPPORT_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", rapport_api::graphql::sdl());
            return Ok(());
        }
        Command::Model(ModelCommand::Evaluate {
            kind: ModelKind::Clv,
            csv,
            predict,
            out,
            json,
            ..
        }) => {
            return evaluate_clv(&csv, predict.zip(out), json);
        }
        Command::Model(ModelCommand::Evaluate {
            kind: ModelKind::Classifier,
            csv,
            label,
            positive,
            id,
            split,
            json,
            ..
        }) => {
            let spec = rapport_engine::intelligence::models::classifier::CsvSpec {
                label: label.unwrap_or_default(),
                positive,
                id,
                split,
            };
            return evaluate_classifier(&csv, &spec, json);
        }
        Command::Plugin(PluginCommand::Test {
            file,
            input,
            config,
            limits,
            as_of,
        }) => {
            // Off the async runtime: WASI's blocking calls (stdin, sleep, sockets) wait on
            // a runtime of their own, which cannot start inside a runtime worker thread.
            let cache = cli.plugin_cache.clone();
            return tokio::task::spawn_blocking(move || {
                plugin_test(&file, &input, &config, limits.as_deref(), as_of, &cache)
            })
            .await
            .context("the plugin test panicked")?;
        }
        Command::Plugin(PluginCommand::New {
            name,
            lang: PluginLang::Rust,
            sdk,
        }) => return plugin_new(&name, sdk),
        _ => {}
    }
    let conn = db::connect(&cli.database_url, cli.max_connections)
        .await
        .context("connecting to the database")?;
    db::migrate(&conn).await.context("migrating the database")?;
    match cli.command {
        Command::Plugin(PluginCommand::Install {
            file,
            name,
            query,
            config,
            limits,
            workspace,
        }) => {
            let parse = |what: &str,
                         s: Option<String>|
             -> anyhow::Result<Option<serde_json::Value>> {
                s.map(|s| serde_json::from_str(&s).with_context(|| format!("--{what} is not JSON")))
                    .transpose()
            };
            let registration = rapport_engine::intelligence::plugins::registry::Registration {
                name,
                wasm: std::fs::read(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
                input_query: std::fs::read_to_string(&query)
                    .with_context(|| format!("reading {}", query.display()))?,
                config: parse("config", config)?,
                limits: parse("limits", limits)?,
                failure_threshold: None,
            };
            let host = rapport_api::graphql::plugin_host(
                &conn,
                std::sync::Arc::new(rapport_api::keys::VerifiedKeys::new(
                    std::time::Duration::ZERO,
                )),
                rapport_api::graphql::PublicUrl(rapport_api::server::DEFAULT_PUBLIC_URL.into()),
                Some(cli.plugin_cache.clone()),
            )?;
            let who = auth::Principal::owner(workspace);
            let r = rapport_engine::intelligence::plugins::registry::register(
                &conn,
                &host,
                &who,
                registration,
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({
                    "plugin": r.plugin.name,
                    "version": r.version.version,
                    "declaredName": r.version.declared_name,
                    "declaredVersion": r.version.declared_version,
                    "score": r.version.scores,
                    "nextBestActions": r.version.recommends,
                    "inputCost": r.version.input_cost,
                    "sha256": r.version.wasm_sha256,
                })
            );
        }
        Command::Plugin(PluginCommand::Run { workspace, plugin }) => {
            plugin_run(&conn, &cli.plugin_cache, workspace, plugin.as_deref()).await?
        }
        Command::Plugin(_) => unreachable!("handled before connecting"),
        Command::Schema | Command::Model(ModelCommand::Evaluate { .. }) | Command::Migrate => {
            tracing::info!("database is up to date")
        }
        Command::Serve {
            addr,
            demo,
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
        } => {
            if demo {
                let key = seed(&conn, "Demo", demo::DemoSize::for_contacts(demo_contacts)).await?;
                eprintln!(
                    "Demo workspace ready. Try:\n  curl -s http://{addr}/graphql -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"query\":\"{{ contacts(first: 3) {{ totalCount edges {{ node {{ name email company {{ name }} }} }} }} }}\"}}'"
                );
                println!("{key}");
            }
            let hours = |h: u64| std::time::Duration::from_secs(h.max(1) * 3600);
            let schedule = (!no_scheduler).then(|| analytics::schedule::Schedule {
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
            .ok();
            let workers = (!no_workers)
                .then(|| workers.config(&mail, public_url.clone()))
                .transpose()?
                .map(|mut w| {
                    w.plugin_cache = Some(cli.plugin_cache.clone());
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
                health,
                trusted_proxies: limits.trusted_proxies.clone(),
            };
            serve(conn, addr, config, schedule, workers).await?;
        }
        Command::Worker { mail, workers } => {
            let public_url = mail
                .public_url
                .clone()
                .unwrap_or_else(|| rapport_api::server::DEFAULT_PUBLIC_URL.to_string());
            let mut config = workers.config(&mail, public_url)?;
            config.plugin_cache = Some(cli.plugin_cache.clone());
            tracing::info!(
                concurrency = config.options.concurrency,
                "running job workers"
            );
            rapport_api::workers::run(conn.clone(), config, shutdown_signal()).await?;
            conn.close().await?;
            tracing::info!("stopped");
        }
        Command::Demo {
            contacts,
            activities,
            name,
        } => {
            let mut size = demo::DemoSize::for_contacts(contacts);
            if let Some(a) = activities {
                size.activities = a;
            }
            let key = seed(&conn, &name, size).await?;
            println!("{key}");
        }
        Command::ApiKey(cmd) => api_key(&conn, cmd).await?,
        Command::Model(ModelCommand::Train {
            kind,
            workspace,
            min_positives,
        }) => train(&conn, kind, workspace, min_positives).await?,
        Command::Model(ModelCommand::Rescore { workspace }) => {
            let started = std::time::Instant::now();
            let scored =
                rapport_engine::intelligence::analytics::rescore_all(&conn, workspace).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "scored": scored,
                    "seconds": seconds,
                    "per_second": scored as f64 / seconds,
                })
            );
        }
    }
    Ok(())
}

async fn train(
    conn: &sea_orm::DatabaseConnection,
    kind: TrainKind,
    workspace: i64,
    min_positives: usize,
) -> anyhow::Result<()> {
    use rapport_engine::{intelligence::analytics, platform::auth::Principal, values};
    let kind = match kind {
        TrainKind::LeadScore => values::ModelKind::LeadScore,
        TrainKind::WinProbability => values::ModelKind::WinProbability,
        TrainKind::CustomerValue => values::ModelKind::CustomerValue,
        TrainKind::Recommendations => values::ModelKind::Recommendations,
        TrainKind::BehaviourSegments => values::ModelKind::BehaviourSegments,
        TrainKind::Churn => values::ModelKind::Churn,
    };
    let options = analytics::lead_score::TrainOptions {
        min_positives,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let version = analytics::train(conn, &Principal::owner(workspace), kind, &options).await?;
    let mut report = serde_json::json!({
        "id": version.id,
        "kind": version.kind,
        "version": version.version,
        "status": version.status,
        "message": version.message,
        "rows": version.rows_used,
        "positives": version.positives,
        "metrics": version.metrics,
        "seconds": started.elapsed().as_secs_f64(),
    });
    report["scored"] = rapport_engine::intelligence::analytics::registry::count_scores(
        conn, workspace, kind, version.id,
    )
    .await?
    .into();
    println!("{report}");
    Ok(())
}

async fn seed(
    conn: &sea_orm::DatabaseConnection,
    name: &str,
    size: demo::DemoSize,
) -> anyhow::Result<String> {
    let bar = ProgressBar::new(size.total());
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})")
            .expect("valid template"),
    );
    bar.set_message("seeding");
    let created = demo::seed(conn, name, &size, &|n| bar.set_position(n))
        .await
        .context("seeding demo data")?;
    bar.finish_and_clear();
    eprintln!(
        "workspace {} ({}) seeded with {} contacts",
        created.workspace.id, created.workspace.name, size.contacts
    );
    Ok(created.key.key)
}

async fn api_key(conn: &sea_orm::DatabaseConnection, cmd: ApiKeyCommand) -> anyhow::Result<()> {
    match cmd {
        ApiKeyCommand::Create {
            workspace,
            name,
            scopes,
        } => {
            let scopes = auth::parse_scopes("scopes", &scopes)?;
            let ws = match workspace {
                Some(ws) => ws,
                None => {
                    let created =
                        rapport_engine::crm::workspaces::create(conn, "Workspace").await?;
                    eprintln!("created workspace {}", created.workspace.id);
                    created.workspace.id
                }
            };
            use sea_orm::EntityTrait;
            rapport_schema::workspace::Entity::find_by_id(ws)
                .one(conn)
                .await?
                .with_context(|| format!("workspace {ws} does not exist"))?;
            let issued = auth::create_key(conn, ws, &name, &scopes).await?;
            println!("{}", issued.key);
        }
        ApiKeyCommand::List { workspace } => {
            for k in auth::list_keys(conn, workspace).await? {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let used = k
                    .last_used_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                println!(
                    "{}\trk_{}_…\t{}\t{}\t{state}\tlast used {used}",
                    k.id, k.prefix, k.name, k.scopes
                );
            }
        }
        ApiKeyCommand::Revoke { key } => {
            let k = auth::revoke_key(conn, None, &key).await?;
            eprintln!("revoked key {} (rk_{}_…)", k.id, k.prefix);
        }
    }
    Ok(())
}

async fn serve(
    conn: sea_orm::DatabaseConnection,
    addr: SocketAddr,
    config: rapport_api::server::Config,
    schedule: Option<analytics::schedule::Schedule>,
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

async fn plugin_run(
    conn: &sea_orm::DatabaseConnection,
    cache: &std::path::Path,
    workspace: i64,
    plugin: Option<&str>,
) -> anyhow::Result<()> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let host = rapport_api::graphql::plugin_host(
        conn,
        std::sync::Arc::new(rapport_api::keys::VerifiedKeys::new(
            std::time::Duration::ZERO,
        )),
        rapport_api::graphql::PublicUrl(rapport_api::server::DEFAULT_PUBLIC_URL.into()),
        Some(cache.to_path_buf()),
    )?;
    if let Some(name) = plugin {
        rapport_engine::intelligence::plugins::registry::by_name(conn, workspace, name).await?;
    }
    let ids: Vec<i64> = rapport_schema::contact::Entity::find()
        .filter(rapport_schema::contact::Column::WorkspaceId.eq(workspace))
        .filter(rapport_schema::contact::Column::DeletedAt.is_null())
        .select_only()
        .column(rapport_schema::contact::Column::Id)
        .order_by_asc(rapport_schema::contact::Column::Id)
        .into_tuple()
        .all(conn)
        .await?;
    let started = std::time::Instant::now();
    let (mut scored, mut actions, mut failures) = (0, 0, 0);
    for chunk in ids.chunks(rapport_engine::intelligence::plugins::runs::JOB_BATCH) {
        let s =
            rapport_engine::intelligence::plugins::runs::run(conn, &host, workspace, chunk, plugin)
                .await?;
        scored += s.scored;
        actions += s.actions;
        failures += s.failures.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "contacts": ids.len(),
            "scored": scored,
            "actions": actions,
            "failures": failures,
            "seconds": seconds,
            "contacts_per_second": ids.len() as f64 / seconds,
        })
    );
    Ok(())
}

fn plugin_test(
    file: &std::path::Path,
    input: &std::path::Path,
    config: &str,
    limits: Option<&str>,
    as_of: Option<String>,
    cache: &std::path::Path,
) -> anyhow::Result<()> {
    use rapport_plugins::{Input, Limits, Runtime};
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let data: serde_json::Value = serde_json::from_slice(
        &std::fs::read(input).with_context(|| format!("reading {}", input.display()))?,
    )
    .with_context(|| format!("{} is not JSON", input.display()))?;
    let config: serde_json::Value = serde_json::from_str(config).context("--config is not JSON")?;
    let limits = match limits {
        Some(l) => Limits::parse(&serde_json::from_str(l).context("--limits is not JSON")?)
            .map_err(|(field, message)| anyhow::anyhow!("{field}: {message}"))?,
        None => Limits::default(),
    };
    let runtime = Runtime::new(Some(cache.to_path_buf()))?;
    let started = std::time::Instant::now();
    let plugin = runtime.load(&wasm)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let description = plugin.describe(&limits)?.value;
    let input = Input {
        contact_id: data
            .pointer("/contact/id")
            .and_then(|v| v.as_str())
            .unwrap_or("0")
            .to_string(),
        data: data.to_string(),
        config: config.to_string(),
        as_of: as_of.unwrap_or_else(|| {
            rapport_engine::clock::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        }),
    };
    let call = |r: Result<serde_json::Value, rapport_plugins::Error>| match r {
        Ok(v) => v,
        Err(e) => serde_json::json!({"error": e.to_string()}),
    };
    let score = description.implements.score.then(|| {
        call(plugin.score(&input, &limits).map(|c| {
            serde_json::json!({"score": c.value.score, "reasons": c.value.reasons, "fuelUsed": c.fuel_used,
                "microseconds": c.elapsed.as_micros() as u64, "log": c.log, "logDropped": c.log_dropped})
        }))
    });
    let actions = description.implements.next_best_actions.then(|| {
        call(plugin.next_best_actions(&input, &limits).map(|c| {
            serde_json::json!({"actions": c.value, "fuelUsed": c.fuel_used,
                "microseconds": c.elapsed.as_micros() as u64, "log": c.log, "logDropped": c.log_dropped})
        }))
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "plugin": description.name,
            "version": description.version,
            "loadMilliseconds": load_ms,
            "score": score,
            "nextBestActions": actions,
        }))?
    );
    Ok(())
}

fn plugin_new(name: &str, sdk: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let name = rapport_engine::intelligence::plugins::PluginName::parse(name)?;
    let sdk = match sdk {
        Some(path) => path,
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the plugin SDK is not at {}; pass --sdk PATH",
            sdk.display()
        )
    })?;
    let dir = std::path::Path::new(name.as_str());
    anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
    std::fs::create_dir_all(dir.join("src"))?;
    let fill = |template: &str| {
        template
            .replace("{name}", name.as_str())
            .replace("{lib}", &name.as_str().replace('-', "_"))
            .replace("{sdk}", &sdk.display().to_string())
    };
    std::fs::write(
        dir.join("Cargo.toml"),
        fill(include_str!("scaffold/Cargo.toml.txt")),
    )?;
    std::fs::write(
        dir.join("src/lib.rs"),
        fill(include_str!("scaffold/lib.rs.txt")),
    )?;
    std::fs::write(
        dir.join("query.graphql"),
        fill(include_str!("scaffold/query.graphql.txt")),
    )?;
    eprintln!(
        "Created {0}/. Build it with:\n  cd {0} && cargo build --release --target wasm32-wasip2",
        name.as_str()
    );
    Ok(())
}

async fn shutdown_signal() {
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

fn evaluate_classifier(
    csv: &std::path::Path,
    spec: &rapport_engine::intelligence::models::classifier::CsvSpec,
    json: bool,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::models::classifier::{Classifier, Split, read_labelled_csv};
    let bytes = std::fs::read(csv).with_context(|| format!("reading {}", csv.display()))?;
    let data = read_labelled_csv(&bytes, spec)?;
    let split = data
        .split
        .clone()
        .unwrap_or_else(|| Split::stratified(&data.labels));
    let (model, report) = Classifier::train(&data.table, &data.labels, &split)?;
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["features"] = model.encoder.column_names().len().into();
        println!("{value}");
        return Ok(());
    }
    let auc = report
        .auc
        .map_or("n/a (the test rows hold one class)".to_string(), |a| {
            format!("{a:.4}")
        });
    println!(
        "rows             {} train, {} test",
        report.rows_train, report.rows_test
    );
    println!(
        "positives        {} train, {} test",
        report.positives_train, report.positives_test
    );
    println!(
        "features         {} columns -> {} encoded",
        data.table.names().len(),
        model.encoder.column_names().len()
    );
    println!("imputed values   {}", report.imputed);
    println!("AUC              {auc}");
    println!("log loss         {:.4}", report.log_loss);
    println!("fit time         {:.2} s", report.fit_seconds);
    println!("calibration      predicted -> observed (rows)");
    for bin in &report.calibration {
        println!(
            "  {:.1}-{:.1}        {:.3} -> {:.3} ({})",
            bin.from, bin.to, bin.predicted, bin.observed, bin.rows
        );
    }
    Ok(())
}

fn evaluate_clv(
    csv: &std::path::Path,
    predict: Option<(f64, std::path::PathBuf)>,
    json: bool,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::models::clv::{BgNbd, GammaGamma, Spend, read_summary_csv};
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let rows = read_summary_csv(&text)?;
    let histories: Vec<_> = rows.iter().map(|r| r.history).collect();
    let started = std::time::Instant::now();
    let bg = BgNbd::fit(&histories)?;
    let spend: Option<Vec<Spend>> = rows
        .iter()
        .map(|r| {
            r.monetary.map(|m| Spend {
                frequency: r.history.frequency,
                mean_value: m,
            })
        })
        .collect();
    let gg = spend.as_deref().map(GammaGamma::fit).transpose()?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let m = bg.model;
    if json {
        let mut report = serde_json::json!({
            "r": m.r, "alpha": m.alpha, "a": m.a, "b": m.b,
            "log_likelihood": bg.log_likelihood, "customers": rows.len(), "fit_seconds": fit_seconds,
        });
        if let Some(g) = &gg {
            report["p"] = g.model.p.into();
            report["q"] = g.model.q.into();
            report["v"] = g.model.v.into();
        }
        println!("{report}");
    } else {
        println!("customers        {}", rows.len());
        println!(
            "BG/NBD           r = {:.4}  alpha = {:.4}  a = {:.4}  b = {:.4}",
            m.r, m.alpha, m.a, m.b
        );
        println!("log-likelihood   {:.2}", bg.log_likelihood);
        if let Some(g) = &gg {
            println!(
                "Gamma-Gamma      p = {:.4}  q = {:.4}  v = {:.4}  (log-likelihood {:.2})",
                g.model.p, g.model.q, g.model.v, g.log_likelihood
            );
        }
        println!("fit time         {fit_seconds:.2} s");
    }
    if let Some((periods, out)) = predict {
        let mut w = String::from("customer,p_alive,expected_purchases,expected_value\n");
        for r in &rows {
            let purchases = m.expected_purchases(&r.history, periods);
            let value = match (&gg, r.monetary) {
                (Some(g), Some(mean)) => {
                    let spend = Spend {
                        frequency: r.history.frequency,
                        mean_value: mean,
                    };
                    let per_purchase = if r.history.frequency > 0.0 {
                        g.model.expected_mean_value(&spend)
                    } else {
                        g.model.p * g.model.v / (g.model.q - 1.0)
                    };
                    format!("{:.4}", purchases * per_purchase)
                }
                _ => String::new(),
            };
            w.push_str(&format!(
                "{},{:.6},{:.6},{}\n",
                r.customer,
                m.probability_alive(&r.history),
                purchases,
                value
            ));
        }
        std::fs::write(&out, w).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
