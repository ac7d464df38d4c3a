//! `rapport api-key`: create, list and revoke API keys.

use anyhow::Context as _;
use rapport_engine::platform::auth;

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
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

/// Runs one key command.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    let conn = &cli.connect().await?;
    match cmd {
        Command::Create {
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
        Command::List { workspace } => {
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
        Command::Revoke { key } => {
            let k = auth::revoke_key(conn, None, &key).await?;
            eprintln!("revoked key {} (rk_{}_…)", k.id, k.prefix);
        }
    }
    Ok(())
}
