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
    let seeded = seed(&conn, &name, size, plugin.as_deref(), cli).await?;
    eprintln!(
        "console sign-in: {} / {}",
        seeded.sign_in.0, seeded.sign_in.1
    );
    println!("{}", seeded.key);
    Ok(())
}

/// A seeded demo workspace: its admin API key and the console sign-in of its admin.
pub(crate) struct Seeded {
    /// The admin API key.
    pub key: String,
    /// The admin's email and a password generated for this run.
    pub sign_in: (String, String),
}

pub(crate) async fn seed(
    conn: &sea_orm::DatabaseConnection,
    name: &str,
    size: demo::DemoSize,
    plugin: Option<&std::path::Path>,
    cli: &super::Global,
) -> anyhow::Result<Seeded> {
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
        install_plugin(conn, created.workspace.id, file, cli).await?;
    }
    let sign_in = demo_sign_in(conn, created.workspace.id).await?;
    Ok(Seeded {
        key: created.key.key,
        sign_in,
    })
}

/// Gives the demo's admin a password generated now, so the console can be tried at once.
async fn demo_sign_in(
    conn: &sea_orm::DatabaseConnection,
    workspace: i64,
) -> anyhow::Result<(String, String)> {
    use rapport_engine::platform::accounts;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let admin = rapport_schema::user::Entity::find()
        .filter(rapport_schema::user::Column::WorkspaceId.eq(workspace))
        .filter(rapport_schema::user::Column::Role.eq("admin"))
        .order_by_asc(rapport_schema::user::Column::Id)
        .one(conn)
        .await?
        .context("the demo has no admin")?;
    let password = rapport_engine::platform::auth::random_hex(8);
    accounts::set_password(
        conn,
        admin.id,
        &accounts::Password::parse("password", &password)?,
    )
    .await?;
    Ok((admin.email, password))
}

/// Installs `file` as the workspace's "next-best-action" plugin, with the example's input
/// query, and runs it over every contact.
async fn install_plugin(
    conn: &sea_orm::DatabaseConnection,
    workspace: i64,
    file: &std::path::Path,
    cli: &super::Global,
) -> anyhow::Result<()> {
    use rapport_engine::intelligence::plugins::registry;
    let host = super::plugin::offline_host(conn, cli)?;
    let registration = registry::Registration {
        name: "next-best-action".into(),
        wasm: std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        input_query: NEXT_BEST_ACTION_QUERY.into(),
        config: None,
        limits: None,
        failure_threshold: None,
        shadow: false,
        hooks: Vec::new(),
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
