//! `rapport plugin`: install a component in a workspace, run plugins over it, replay a
//! recorded call, test a component on an input without a database, scaffold a new plugin.

use anyhow::Context as _;
use rapport_engine::platform::auth;

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
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
        /// Registers it as the plugin's shadow version: scored apart, never shown or
        /// acted on, until promoted.
        #[arg(long)]
        shadow: bool,
        /// An event type whose tracking calls the plugin's next-best-actions with the
        /// event (repeatable).
        #[arg(long = "hook")]
        hooks: Vec<String>,
        #[arg(long)]
        workspace: i64,
    },
    /// Measures a plugin's score: scores the leads of a past moment as of that moment and
    /// compares with who converted after it, beside the built-in lead score (the same as
    /// `Plugin.backtest`); prints AUC, lift and calibration as JSON.
    Backtest {
        /// The plugin's name.
        name: String,
        /// The version (default: the active one).
        #[arg(long)]
        version: Option<i32>,
        /// The moment scored as of (RFC 3339; default: `horizon-days` ago).
        #[arg(long)]
        as_of: Option<String>,
        /// Days after the moment in which a conversion counts.
        #[arg(long, default_value_t = 90)]
        horizon_days: i64,
        /// The most leads scored.
        #[arg(long, default_value_t = 1000)]
        sample: usize,
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
    /// Plays a recorded call (`Plugin.runs`) again: the run's captured input against a
    /// component file (default: the version that made the call), under that version's
    /// limits; prints what was recorded, what happened now and what differs, as JSON.
    Replay {
        /// The run's id.
        run: i64,
        /// The component to replay against (.wasm), a fixed build, say.
        #[arg(long)]
        component: Option<std::path::PathBuf>,
        #[arg(long)]
        workspace: i64,
    },
    /// Prints Rust types for a plugin's input, generated from its input query against
    /// this Rapport's schema (for `input.data::<input::Data>()`).
    Types {
        /// The input query file.
        query: std::path::PathBuf,
    },
    /// Creates a new plugin project that builds as it is.
    New {
        /// The project's (and plugin's) name.
        name: String,
        /// The language: Rust (with the SDK crate), Python (with componentize-py) or
        /// JavaScript (with componentize-js from npm).
        #[arg(long, value_enum, default_value = "rust")]
        lang: PluginLang,
        /// Where the SDK crate is, for Rust (default: this Rapport's own plugins/sdk).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
}
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum PluginLang {
    Rust,
    Python,
    Js,
}
/// Runs one plugin command; `test` and `new` need no database.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Install {
            file,
            name,
            query,
            config,
            limits,
            shadow,
            hooks,
            workspace,
        } => {
            let conn = cli.connect().await?;
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
                shadow,
                hooks,
            };
            let host = offline_host(&conn, cli)?;
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
            Ok(())
        }
        Command::Backtest {
            name,
            version,
            as_of,
            horizon_days,
            sample,
            workspace,
        } => {
            let conn = cli.connect().await?;
            let as_of = as_of
                .map(|a| chrono::DateTime::parse_from_rfc3339(&a).map(|t| t.to_utc()))
                .transpose()
                .context("--as-of is not an RFC 3339 time")?;
            let options = rapport_engine::intelligence::plugins::backtest::Options {
                version,
                as_of,
                horizon_days,
                sample,
            };
            plugin_backtest(&conn, cli, workspace, &name, options).await
        }
        Command::Run { workspace, plugin } => {
            let conn = cli.connect().await?;
            plugin_run(&conn, cli, workspace, plugin.as_deref()).await
        }
        Command::Test {
            file,
            input,
            config,
            limits,
            as_of,
        } => {
            // Off the async runtime: WASI's blocking calls (stdin, sleep, sockets) wait on
            // a runtime of their own, which cannot start inside a runtime worker thread.
            let cache = cli.plugin_cache.clone();
            tokio::task::spawn_blocking(move || {
                plugin_test(&file, &input, &config, limits.as_deref(), as_of, &cache)
            })
            .await
            .context("the plugin test panicked")?
        }
        Command::Replay {
            run,
            component,
            workspace,
        } => {
            let conn = cli.connect().await?;
            plugin_replay(&conn, &cli.plugin_cache, workspace, run, component).await
        }
        Command::Types { query } => {
            let text = std::fs::read_to_string(&query)
                .with_context(|| format!("reading {}", query.display()))?;
            print!(
                "{}",
                super::plugin_types::generate(&text, &rapport_api::graphql::sdl())?
            );
            Ok(())
        }
        Command::New {
            name,
            lang: PluginLang::Rust,
            sdk,
        } => plugin_new(&name, sdk),
        Command::New {
            name,
            lang: lang @ (PluginLang::Python | PluginLang::Js),
            ..
        } => plugin_new_scripted(&name, lang),
    }
}

/// A plugin host for a command that runs outside a server: keys are never cached and
/// links point at the default public URL.
pub(crate) fn offline_host(
    conn: &sea_orm::DatabaseConnection,
    cli: &Global,
) -> anyhow::Result<rapport_engine::intelligence::plugins::Host> {
    let mut host = rapport_api::graphql::plugin_host(
        conn,
        std::sync::Arc::new(rapport_api::keys::VerifiedKeys::new(
            std::time::Duration::ZERO,
        )),
        rapport_api::graphql::PublicUrl(rapport_api::server::DEFAULT_PUBLIC_URL.into()),
        Some(cli.plugin_cache.clone()),
    )?;
    host.capture = cli.plugin_capture();
    Ok(host)
}

async fn plugin_backtest(
    conn: &sea_orm::DatabaseConnection,
    cli: &Global,
    workspace: i64,
    name: &str,
    options: rapport_engine::intelligence::plugins::backtest::Options,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::plugins::backtest::{self, Measure};
    let host = offline_host(conn, cli)?;
    let who = auth::Principal::owner(workspace);
    let b = backtest::backtest(conn, &host, &who, name, options).await?;
    let measure = |m: &Measure| {
        serde_json::json!({
            "scored": m.scored,
            "converted": m.converted,
            "auc": m.auc,
            "lift": m.lift,
            "calibration": m.calibration,
        })
    };
    println!(
        "{}",
        serde_json::json!({
            "plugin": name,
            "version": b.version.version,
            "asOf": b.as_of,
            "pointInTime": b.point_in_time,
            "horizonDays": b.horizon_days,
            "leads": b.leads,
            "measure": measure(&b.plugin),
            "builtIn": b.built_in.as_ref().map(|bi| serde_json::json!({
                "modelVersion": bi.version.version,
                "overlapsTraining": bi.overlaps_training,
                "measure": measure(&bi.measure),
            })),
            "failed": b.failed,
            "stoppedEarly": b.stopped_early,
        })
    );
    Ok(())
}

async fn plugin_run(
    conn: &sea_orm::DatabaseConnection,
    cli: &Global,
    workspace: i64,
    plugin: Option<&str>,
) -> anyhow::Result<()> {
    let host = offline_host(conn, cli)?;
    let summary = run_over_everyone(conn, &host, workspace, plugin).await?;
    println!("{summary}");
    Ok(())
}

/// Runs the workspace's plugins (or only `plugin`) over every live record they score
/// (contacts, deals, companies); returns what they did, as JSON.
pub(crate) async fn run_over_everyone(
    conn: &sea_orm::DatabaseConnection,
    host: &rapport_engine::intelligence::plugins::Host,
    workspace: i64,
    plugin: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    use rapport_engine::intelligence::plugins::{Subject, record_scores, registry, runs};
    let subjects = match plugin {
        Some(name) => {
            let p = registry::by_name(conn, workspace, name).await?;
            let active = registry::versions(conn, &p)
                .await?
                .into_iter()
                .find(|v| Some(v.id) == p.active_version_id);
            vec![active.map_or(Subject::Contact, |v| {
                rapport_engine::intelligence::plugins::subject_of(&v)
            })]
        }
        None => Subject::ALL.to_vec(),
    };
    let started = std::time::Instant::now();
    let (mut scored, mut actions, mut failures) = (0, 0, 0);
    let mut looked_at = serde_json::Map::new();
    let mut records = 0;
    for subject in subjects {
        let ids = record_scores::everyone(conn, workspace, subject).await?;
        for chunk in ids.chunks(runs::JOB_BATCH) {
            let s = runs::run_records(conn, host, workspace, subject, chunk, plugin).await?;
            scored += s.scored;
            actions += s.actions;
            failures += s.failures.len();
        }
        let key = match subject {
            Subject::Contact => "contacts",
            Subject::Deal => "deals",
            Subject::Company => "companies",
        };
        looked_at.insert(key.into(), ids.len().into());
        records += ids.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut out = looked_at;
    out.insert("scored".into(), scored.into());
    out.insert("actions".into(), actions.into());
    out.insert("failures".into(), failures.into());
    out.insert("seconds".into(), seconds.into());
    out.insert(
        "records_per_second".into(),
        (records as f64 / seconds).into(),
    );
    Ok(serde_json::Value::Object(out))
}

async fn plugin_replay(
    conn: &sea_orm::DatabaseConnection,
    cache: &std::path::Path,
    workspace: i64,
    run: i64,
    component: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::plugins::call_records;
    let run = call_records::get(conn, workspace, run).await?;
    let (version, stored) = call_records::recorded_component(conn, &run).await?;
    let wasm = match &component {
        Some(file) => std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        None => stored,
    };
    let limits: rapport_plugins::Limits =
        serde_json::from_value(version.limits.clone()).unwrap_or_default();
    let cache = cache.to_path_buf();
    // Off the async runtime's workers, as `plugin test` runs (WASI's blocking calls).
    let replay = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let loaded = rapport_plugins::Runtime::new(Some(cache))?.load(&wasm)?;
        Ok(call_records::replay(&run, &loaded, &limits)?)
    })
    .await
    .context("the replay panicked")??;
    let mut out = serde_json::to_value(&replay)?;
    out["reproduced"] = replay.reproduced().into();
    out["component"] = match &component {
        Some(file) => file.display().to_string().into(),
        None => format!("version {} as stored", version.version).into(),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    if replay.reproduced() {
        eprintln!(
            "run {}: the replay did what the recorded call did",
            replay.run_id
        );
    } else {
        eprintln!(
            "run {}: the replay differs in {}",
            replay.run_id,
            replay.differences.join(", ")
        );
    }
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
/// A Python or JavaScript plugin project: the rule, its input query, the contract and a
/// build script (and, for JavaScript, the package that pins componentize-js).
fn plugin_new_scripted(name: &str, lang: PluginLang) -> anyhow::Result<()> {
    let name = rapport_engine::intelligence::plugins::PluginName::parse(name)?;
    let dir = std::path::Path::new(name.as_str());
    anyhow::ensure!(!dir.exists(), "{} already exists", dir.display());
    std::fs::create_dir_all(dir.join("wit"))?;
    let fill = |template: &str| {
        template
            .replace("{name}", name.as_str())
            .replace("{lib}", &name.as_str().replace('-', "_"))
    };
    let (own, build_hint): (Vec<(&str, &str)>, &str) = match lang {
        PluginLang::Python => (
            vec![
                ("app.py", include_str!("scaffold/python/app.py.txt")),
                ("build.sh", include_str!("scaffold/python/build.sh.txt")),
                ("README.md", include_str!("scaffold/python/README.md.txt")),
            ],
            "pip install componentize-py==0.25.1 && {dir}/build.sh",
        ),
        PluginLang::Rust => anyhow::bail!("a Rust project is made with its SDK path"),
        PluginLang::Js => (
            vec![
                ("app.js", include_str!("scaffold/js/app.js.txt")),
                ("package.json", include_str!("scaffold/js/package.json.txt")),
                ("build.sh", include_str!("scaffold/js/build.sh.txt")),
                ("README.md", include_str!("scaffold/js/README.md.txt")),
            ],
            "{dir}/build.sh   (npm installs componentize-js on the first build)",
        ),
    };
    let mut files: Vec<(&str, String)> = own.into_iter().map(|(p, t)| (p, fill(t))).collect();
    files.push((
        "query.graphql",
        fill(include_str!("scaffold/query.graphql.txt")),
    ));
    // The contract as this Rapport serves it.
    files.push((
        "wit/plugin.wit",
        include_str!("../../../plugins/wit/plugin.wit").to_string(),
    ));
    for (path, text) in files {
        std::fs::write(dir.join(path), text)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.join("build.sh"), std::fs::Permissions::from_mode(0o755))?;
    }
    eprintln!(
        "Created {}/. Build it with:\n  {}",
        name.as_str(),
        build_hint.replace("{dir}", name.as_str())
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
    let query = fill(include_str!("scaffold/query.graphql.txt"));
    // The input's types, generated from the query: `rapport plugin types` again after
    // changing it.
    std::fs::write(
        dir.join("src/input.rs"),
        super::plugin_types::generate(&query, &rapport_api::graphql::sdl())?,
    )?;
    std::fs::write(dir.join("query.graphql"), query)?;
    eprintln!(
        "Created {0}/. Build it with:\n  cd {0} && cargo build --release --target wasm32-wasip2",
        name.as_str()
    );
    Ok(())
}
