//! The workspace's people: teams and users (sales reps, managers, marketers, admins).

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{EmailAddress, Patch, Text, UserRole};
use rapport_schema::{team, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// Creates a team.
pub async fn create_team(
    db: &impl ConnectionTrait,
    who: &Principal,
    name: &str,
) -> Result<team::Model> {
    let now = clock::now();
    Ok(team::ActiveModel {
        workspace_id: Set(who.workspace_id),
        name: Set(Text::parse("name", name, 100)?.into_string()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Renames a team.
pub async fn rename_team(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    name: &str,
) -> Result<team::Model> {
    let mut am: team::ActiveModel = records::get::<team::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    am.name = Set(Text::parse("name", name, 100)?.into_string());
    am.updated_at = Set(clock::now());
    Ok(am.update(db).await?)
}

/// Fields of a user as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct UserInput {
    /// Full name.
    pub name: Option<String>,
    /// Work email, unique in the workspace.
    pub email: Option<String>,
    /// Role; rep by default.
    pub role: Option<UserRole>,
    /// Team.
    pub team_id: Patch<i64>,
    /// How the user signs email: plain text, up to 2,000 characters over several lines.
    pub signature: Patch<String>,
}

/// Creates a user.
pub async fn create_user(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: UserInput,
) -> Result<user::Model> {
    if input.name.is_none() || input.email.is_none() {
        return Err(EngineError::invalid(
            if input.name.is_none() {
                "name"
            } else {
                "email"
            },
            "is required",
        ));
    }
    let now = clock::now();
    let am = user::ActiveModel {
        workspace_id: Set(who.workspace_id),
        role: Set(UserRole::Member.as_str().to_string()),
        team_id: Set(None),
        signature: Set(None),
        created_at: Set(now),
        ..Default::default()
    };
    save_user(db, who.workspace_id, am, input, None).await
}

/// Changes the given fields of a user.
pub async fn update_user(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: UserInput,
) -> Result<user::Model> {
    let am = records::get::<user::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    save_user(db, who.workspace_id, am, input, Some(id)).await
}

async fn save_user(
    db: &impl ConnectionTrait,
    ws: i64,
    mut am: user::ActiveModel,
    input: UserInput,
    id: Option<i64>,
) -> Result<user::Model> {
    if let Some(n) = input.name {
        am.name = Set(Text::parse("name", &n, 200)?.into_string());
    }
    if let Some(e) = input.email {
        let email = EmailAddress::parse("email", &e)?;
        let mut clash = user::Entity::find()
            .filter(user::Column::WorkspaceId.eq(ws))
            .filter(user::Column::Email.eq(email.as_str()));
        if let Some(id) = id {
            clash = clash.filter(user::Column::Id.ne(id));
        }
        if let Some(other) = clash.one(db).await? {
            return Err(EngineError::Conflict(format!(
                "user {} already has the email {email}",
                other.id
            )));
        }
        am.email = Set(email.as_str().to_string());
    }
    if let Some(r) = input.role {
        am.role = Set(r.as_str().to_string());
    }
    if let Some(sig) = input
        .signature
        .parse(|s| Text::parse_multiline("signature", &s, 2000).map(Text::into_string))?
        .into_change()
    {
        am.signature = Set(sig);
    }
    if let Patch::Set(t) = input.team_id {
        records::ensure_exists::<team::Entity>(db, ws, t).await?;
    }
    if let Some(t) = input.team_id.into_change() {
        am.team_id = Set(t);
    }
    am.updated_at = Set(clock::now());
    Ok(if id.is_some() {
        am.update(db).await?
    } else {
        am.insert(db).await?
    })
}
