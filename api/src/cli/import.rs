//! `rapport import contacts|companies|deals FILE --workspace N`: a CSV file of any size
//! into a workspace, streamed, with a progress bar, a dry run, and the refused rows in a
//! reject file.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_engine::integrations::bulk::{self, Kind, Target};
use rapport_engine::platform::auth::Principal;

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Imports contacts, upserted by email. Columns are matched by their header (email,
    /// first name, last name, phone, source, timezone, lifecycle stage, tags; anything
    /// else becomes a custom attribute) unless --map says otherwise.
    Contacts(Options),
    /// Imports companies, upserted by domain (name, domain or website, industry, size,
    /// country).
    Companies(Options),
    /// Imports deals, upserted by external id; a row without one is a new deal (external
    /// id, name, amount, currency, pipeline and stage by name, contact email, company
    /// domain, expected close date as YYYY-MM-DD).
    Deals(Options),
}

/// What every import takes.
#[derive(clap::Args)]
pub(crate) struct Options {
    /// The CSV file, with a header row.
    file: PathBuf,
    /// The workspace to import into.
    #[arg(long)]
    workspace: i64,
    /// `Header=field` (repeatable): `"E-mail address=email"`, `"Plan=attributes.plan"`,
    /// `"Notes=skip"`.
    #[arg(long = "map")]
    map: Vec<String>,
    /// Reads and checks everything, writes nothing, and says what would be created
    /// and updated.
    #[arg(long)]
    dry_run: bool,
    /// Where refused rows go, with their reason (default: beside FILE,
    /// `<name>.rejects.csv`).
    #[arg(long)]
    rejects: Option<PathBuf>,
}

/// Runs one import command.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    let (kind, options) = match cmd {
        Command::Contacts(o) => (Kind::Contacts, o),
        Command::Companies(o) => (Kind::Companies, o),
        Command::Deals(o) => (Kind::Deals, o),
    };
    let Options {
        file,
        workspace,
        map,
        dry_run,
        rejects,
    } = options;
    let mut mapping = HashMap::new();
    for (i, pair) in map.iter().enumerate() {
        let field = format!("--map[{i}]");
        let (header, target) = pair
            .rsplit_once('=')
            .with_context(|| format!("{field}: write Header=field, not {pair:?}"))?;
        mapping.insert(
            header.trim().to_string(),
            Target::parse(kind, &field, target.trim())?,
        );
    }
    let conn = &cli.connect().await?;
    use sea_orm::EntityTrait;
    rapport_schema::workspace::Entity::find_by_id(workspace)
        .one(conn)
        .await?
        .with_context(|| format!("workspace {workspace} does not exist"))?;
    let input =
        std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let rejects = rejects.unwrap_or_else(|| file.with_extension("rejects.csv"));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&rejects)
            .with_context(|| format!("creating {}", rejects.display()))?,
    );
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(if dry_run { "checking" } else { "importing" });
    let report = bulk::import(
        conn,
        &Principal::owner(workspace),
        kind,
        std::io::BufReader::new(input),
        &mapping,
        dry_run,
        &mut out,
        |r| {
            bar.set_position(r.bytes);
            bar.set_message(format!("{} rows, {} failed", r.processed, r.failed));
        },
    )
    .await?;
    bar.finish_and_clear();
    use std::io::Write as _;
    out.flush()?;
    drop(out);
    let verb = if dry_run { "would create" } else { "created" };
    let update = if dry_run { "would update" } else { "updated" };
    eprintln!(
        "{} rows: {verb} {}, {update} {}, {} refused",
        report.processed, report.created, report.updated, report.failed
    );
    if report.failed > 0 {
        eprintln!("refused rows and their reasons: {}", rejects.display());
    } else {
        let _ = std::fs::remove_file(&rejects);
    }
    Ok(())
}
