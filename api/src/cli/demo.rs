//! `rapport demo`: a workspace full of synthetic data; its API key last on stdout.

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_engine::demo;

use super::Global;

/// What `demo` is told.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Number of contacts (companies, deals and activities scale with it).
    #[arg(long, default_value_t = 1000)]
    contacts: u64,
    /// Activities in all (default: 10 per contact).
    #[arg(long)]
    activities: Option<u64>,
    /// Workspace name.
    #[arg(long, default_value = "Demo")]
    name: String,
    /// A next-best-action plugin component to install and run over the demo's contacts
    /// (build the example with `cargo build --release --target wasm32-wasip2
    /// --manifest-path plugins/examples/Cargo.toml`: `next_best_action.wasm`).
    #[arg(long)]
    plugin: Option<std::path::PathBuf>,
}

/// The input query of the example next-best-action plugin, which `--plugin` installs with.
const NEXT_BEST_ACTION_QUERY: &str =
    include_str!("../../../plugins/examples/next-best-action/query.graphql");

/// Seeds the workspace and prints its key.
pub(crate) async fn run(cli: &Global, args: Args) -> anyhow::Result<()> {
    let conn = cli.connect().await?;
    let Args {
        contacts,
        activities,
        name,
        plugin,
    } = args;
    let mut size = demo::DemoSize::for_contacts(contacts);
    if let Some(a) = activities {
        size.activities = a;
    }
    let key = seed(&conn, &name, size, plugin.as_deref(), &cli.plugin_cache).await?;
    println!("{key}");
    Ok(())
}

pub(crate) async fn seed(
    conn: &sea_orm::DatabaseConnection,
    name: &str,
    size: demo::DemoSize,
    plugin: Option<&std::path::Path>,
    plugin_cache: &std::path::Path,
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
    if size.contacts <= demo::showcase::SHOWCASE_MAX_CONTACTS {
        eprintln!("training models, sending the demo campaign and running the demo sequence…");
        let shown = demo::showcase::build(conn, created.workspace.id)
            .await
            .context("building the demo's campaign, sequence and segments")?;
        eprintln!(
            "segments: {}; campaign {} sent; sequence {} active; sign-up form at /f/{}",
            shown
                .segments
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            shown.campaign_id,
            shown.sequence_id,
            shown.form_public_id
        );
    } else {
        eprintln!(
            "(the campaign, sequence and models of the demo are made for up to {} contacts)",
            demo::showcase::SHOWCASE_MAX_CONTACTS
        );
    }
    if let Some(file) = plugin {
        install_plugin(conn, created.workspace.id, file, plugin_cache).await?;
    }
    Ok(created.key.key)
}

/// Installs `file` as the workspace's "next-best-action" plugin, with the example's input
/// query, and runs it over every contact.
async fn install_plugin(
    conn: &sea_orm::DatabaseConnection,
    workspace: i64,
    file: &std::path::Path,
    cache: &std::path::Path,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::plugins::registry;
    let host = super::plugin::offline_host(conn, cache)?;
    let registration = registry::Registration {
        name: "next-best-action".into(),
        wasm: std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        input_query: NEXT_BEST_ACTION_QUERY.into(),
        config: None,
        limits: None,
        failure_threshold: None,
    };
    let who = rapport_engine::platform::auth::Principal::owner(workspace);
    registry::register(conn, &host, &who, registration)
        .await
        .context("installing the demo's plugin")?;
    let ran =
        super::plugin::run_over_everyone(conn, &host, workspace, Some("next-best-action")).await?;
    eprintln!(
        "plugin next-best-action installed: {} contacts, {} actions proposed",
        ran["contacts"], ran["actions"]
    );
    Ok(())
}
