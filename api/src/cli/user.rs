//! `rapport user`: console accounts from the command line, for the first admin.

use anyhow::Context as _;
use rapport_engine::platform::accounts::{self, LinkPurpose};
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::{EmailAddress, UserRole};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::Global;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Creates a console account (or finds the one with that email) and prints a one-time
    /// link to set its password: valid 72 hours for a new account, 2 hours for a reset.
    Create {
        /// The person's email.
        #[arg(long)]
        email: String,
        /// admin, manager, member or viewer.
        #[arg(long, default_value = "admin")]
        role: String,
        /// The person's name (default: the part of the email before the @).
        #[arg(long)]
        name: Option<String>,
        /// Workspace id; needed when there is more than one (one is created when there is none).
        #[arg(long)]
        workspace: Option<i64>,
        /// Where people reach the console (the link starts with it).
        #[arg(long, env = "RAPPORT_PUBLIC_URL", default_value = rapport_api::server::DEFAULT_PUBLIC_URL)]
        public_url: String,
    },
}

/// Runs one user command.
pub(crate) async fn run(cli: &Global, cmd: Command) -> anyhow::Result<()> {
    let conn = &cli.connect().await?;
    match cmd {
        Command::Create {
            email,
            role,
            name,
            workspace,
            public_url,
        } => {
            let role = UserRole::parse("--role", &role)?;
            let email = EmailAddress::parse("--email", &email)?;
            let ws = match workspace {
                Some(ws) => {
                    rapport_schema::workspace::Entity::find_by_id(ws)
                        .one(conn)
                        .await?
                        .with_context(|| format!("workspace {ws} does not exist"))?;
                    ws
                }
                None => match rapport_schema::workspace::Entity::find()
                    .count(conn)
                    .await?
                {
                    0 => {
                        let created =
                            rapport_engine::crm::workspaces::create(conn, "Workspace").await?;
                        eprintln!("created workspace {}", created.workspace.id);
                        created.workspace.id
                    }
                    1 => {
                        rapport_schema::workspace::Entity::find()
                            .one(conn)
                            .await?
                            .context("the workspace vanished")?
                            .id
                    }
                    n => anyhow::bail!("there are {n} workspaces: say which with --workspace"),
                },
            };
            let existing = rapport_schema::user::Entity::find()
                .filter(rapport_schema::user::Column::WorkspaceId.eq(ws))
                .filter(rapport_schema::user::Column::Email.eq(email.as_str()))
                .filter(rapport_schema::user::Column::DeletedAt.is_null())
                .one(conn)
                .await?;
            let token = match existing {
                Some(u) if u.password_hash.is_some() => {
                    eprintln!("{email} already signs in; this link resets the password");
                    accounts::issue_link(conn, &u, LinkPurpose::Reset, None)
                        .await?
                        .token
                }
                _ => {
                    let name = name.unwrap_or_else(|| {
                        email
                            .as_str()
                            .split('@')
                            .next()
                            .unwrap_or("admin")
                            .to_string()
                    });
                    let (invitation, token) =
                        accounts::invite(conn, &Principal::owner(ws), email.as_str(), &name, role)
                            .await?;
                    eprintln!(
                        "user {} ({}) in workspace {ws}; the link works once, until {}",
                        invitation.user.id,
                        role.as_str(),
                        invitation.link.expires_at.to_rfc3339()
                    );
                    token
                }
            };
            println!(
                "{}",
                rapport_api::sessions::password_link(&public_url, &token)
            );
        }
    }
    Ok(())
}
