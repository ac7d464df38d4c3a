//! `rapport import contacts FILE --workspace N`: a CSV file of any size into a workspace,
//! streamed, with a progress bar, a dry run, and the refused rows in a reject file.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use rapport_engine::integrations::bulk::{self, Target};
use rapport_engine::platform::auth::Principal;

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Imports contacts from a CSV file with a header row, upserted by email. Columns are
    /// matched by their header (email, first name, last name, phone, source, timezone,
    /// lifecycle stage, tags; anything else becomes a custom attribute) unless --map says
    /// otherwise. Refused rows go to a reject file with their reason.
    Contacts {
        /// The CSV file.
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
        /// Where refused rows go (default: beside FILE, `<name>.rejects.csv`).
        #[arg(long)]
        rejects: Option<PathBuf>,
    },
}

/// Runs one import command.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    let Command::Contacts {
        file,
        workspace,
        map,
        dry_run,
        rejects,
    } = cmd;
    let mut mapping = HashMap::new();
    for (i, pair) in map.iter().enumerate() {
        let field = format!("--map[{i}]");
        let (header, target) = pair
            .rsplit_once('=')
            .with_context(|| format!("{field}: write Header=field, not {pair:?}"))?;
        mapping.insert(
            header.trim().to_string(),
            Target::parse(&field, target.trim())?,
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
    let report = bulk::import_contacts(
        conn,
        &Principal::owner(workspace),
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
