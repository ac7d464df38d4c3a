//! Workspaces (tenants): every row of customer data belongs to exactly one.

use crate::clock;
use crate::crm::deals;
use crate::error::Result;
use crate::platform::auth::{self, IssuedKey, Principal};
use crate::values::{Scope, Text};
use rapport_schema::workspace;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};

/// A new workspace and the admin key that opens it.
pub struct NewWorkspace {
    /// The workspace row.
    pub workspace: workspace::Model,
    /// A key with every scope, shown once.
    pub key: IssuedKey,
}

/// Creates a workspace with a default "Sales" pipeline and an admin API key.
pub async fn create(db: &DatabaseConnection, name: &str) -> Result<NewWorkspace> {
    let name = Text::parse("name", name, 100)?.into_string();
    let tx = crate::platform::db::write(db).await?;
    let workspace = workspace::ActiveModel {
        name: Set(name),
        created_at: Set(clock::now()),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let owner = Principal::owner(workspace.id);
    deals::create_pipeline(&tx, &owner, "Sales", deals::default_stages()).await?;
    let key = auth::create_key(
        &tx,
        workspace.id,
        "initial admin key",
        &[Scope::Read, Scope::Write, Scope::Admin],
    )
    .await?;
    tx.commit().await?;
    Ok(NewWorkspace { workspace, key })
}

/// A workspace's name (empty when there is no such workspace).
pub async fn name_of(db: &impl sea_orm::ConnectionTrait, id: i64) -> Result<String> {
    use sea_orm::EntityTrait;
    Ok(rapport_schema::workspace::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|w| w.name)
        .unwrap_or_default())
}
