//! What every workspace-owned table has in common: an id, a workspace, and (for most) a
//! soft-delete time. Lookups, deletes and restores are written once here.

use crate::clock;
use crate::error::{EngineError, Result};
use rapport_schema as s;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select};

/// A table whose rows belong to one workspace.
pub trait Record: EntityTrait {
    /// The type's name as clients see it, for error messages.
    const KIND: &'static str;
    /// The primary key column.
    fn id_col() -> Self::Column;
    /// The owning workspace.
    fn workspace_col() -> Self::Column;
    /// When the row was soft-deleted, for tables that support restore.
    fn deleted_col() -> Option<Self::Column>;
}

macro_rules! record {
    ($module:ident, $kind:literal, soft) => {
        impl Record for s::$module::Entity {
            const KIND: &'static str = $kind;
            fn id_col() -> Self::Column {
                s::$module::Column::Id
            }
            fn workspace_col() -> Self::Column {
                s::$module::Column::WorkspaceId
            }
            fn deleted_col() -> Option<Self::Column> {
                Some(s::$module::Column::DeletedAt)
            }
        }
    };
    ($module:ident, $kind:literal) => {
        impl Record for s::$module::Entity {
            const KIND: &'static str = $kind;
            fn id_col() -> Self::Column {
                s::$module::Column::Id
            }
            fn workspace_col() -> Self::Column {
                s::$module::Column::WorkspaceId
            }
            fn deleted_col() -> Option<Self::Column> {
                None
            }
        }
    };
}

record!(team, "Team", soft);
record!(user, "User", soft);
record!(company, "Company", soft);
record!(contact, "Contact", soft);
record!(pipeline, "Pipeline", soft);
record!(deal, "Deal", soft);
record!(activity, "Activity", soft);
record!(task, "Task", soft);
record!(inquiry, "Inquiry", soft);
record!(product, "Product", soft);
record!(order, "Order", soft);
record!(stage, "Stage");
record!(deal_stage_change, "DealStageChange");
record!(order_line, "OrderLine");
record!(event, "Event");
record!(contact_merge, "ContactMerge");
record!(api_key, "ApiKey");
record!(segment, "Segment", soft);
record!(email_template, "EmailTemplate", soft);
record!(campaign, "Campaign", soft);
record!(campaign_variant, "CampaignVariant");
record!(campaign_message, "CampaignMessage");
record!(plugin, "Plugin");
record!(plugin_version, "PluginVersion");
record!(plugin_action, "PluginAction");
record!(sequence, "Sequence");
record!(sequence_enrollment, "SequenceEnrollment");

/// A table whose rows a person owns (contacts, companies, deals): a member changes only
/// their own rows and rows nobody owns.
pub trait Owned: Record {
    /// The owning user.
    fn owner_col() -> Self::Column;
}

impl Owned for s::contact::Entity {
    fn owner_col() -> Self::Column {
        s::contact::Column::OwnerId
    }
}
impl Owned for s::company::Entity {
    fn owner_col() -> Self::Column {
        s::company::Column::OwnerId
    }
}
impl Owned for s::deal::Entity {
    fn owner_col() -> Self::Column {
        s::deal::Column::OwnerId
    }
}

/// Fails unless `who` may change row `id` of `E`: write scope, and for a member, a row
/// they own or nobody owns (deleted rows included, so a member cannot restore another's).
pub async fn ensure_may_change<E: Owned>(
    db: &impl ConnectionTrait,
    who: &crate::platform::auth::Principal,
    id: i64,
) -> Result<()> {
    who.require(crate::values::Scope::Write)?;
    if !who.owner_bound {
        return Ok(());
    }
    use sea_orm::QuerySelect;
    let owner: Option<Option<i64>> = E::find()
        .select_only()
        .column(E::owner_col())
        .filter(E::workspace_col().eq(who.workspace_id))
        .filter(E::id_col().eq(id))
        .into_tuple()
        .one(db)
        .await?;
    match owner {
        None => Err(EngineError::not_found(E::KIND, id)),
        Some(owner) => who.require_owner(owner),
    }
}

/// Fails unless `who` may change a row that hangs off a contact and/or a deal (an
/// activity, a task, a recommended action): for a member, a row they wrote or are assigned
/// (`own`), or one whose contact and deal they may change.
pub async fn ensure_may_change_attached(
    db: &impl ConnectionTrait,
    who: &crate::platform::auth::Principal,
    own: Option<i64>,
    contact_id: Option<i64>,
    deal_id: Option<i64>,
) -> Result<()> {
    who.require(crate::values::Scope::Write)?;
    if !who.owner_bound || (own.is_some() && own == who.user_id) {
        return Ok(());
    }
    if let Some(c) = contact_id {
        ensure_may_change::<s::contact::Entity>(db, who, c).await?;
    }
    if let Some(d) = deal_id {
        ensure_may_change::<s::deal::Entity>(db, who, d).await?;
    }
    Ok(())
}

/// Which rows a query sees with respect to soft deletion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Deleted {
    /// Live rows only (the default everywhere).
    #[default]
    Exclude,
    /// Live and deleted rows.
    Include,
    /// Deleted rows only (the trash).
    Only,
}

/// All rows of `E` in the workspace, filtered by deletion state.
pub fn scoped<E: Record>(workspace_id: i64, deleted: Deleted) -> Select<E> {
    let q = E::find().filter(E::workspace_col().eq(workspace_id));
    match (E::deleted_col(), deleted) {
        (Some(col), Deleted::Exclude) => q.filter(col.is_null()),
        (Some(col), Deleted::Only) => q.filter(col.is_not_null()),
        _ => q,
    }
}

/// One live row by id; rows of other workspaces are "not found", like missing ones.
pub async fn get<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<E::Model> {
    get_with::<E>(db, workspace_id, id, Deleted::Exclude).await
}

/// One row by id, seeing deleted rows as `deleted` says.
pub async fn get_with<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
    deleted: Deleted,
) -> Result<E::Model> {
    scoped::<E>(workspace_id, deleted)
        .filter(E::id_col().eq(id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found(E::KIND, id))
}

/// Fails with not-found unless every id is a live row of the workspace (for references
/// such as `companyId` given in input).
pub async fn ensure_exists<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<()> {
    get::<E>(db, workspace_id, id).await.map(|_| ())
}

/// Moves a live row to the trash.
pub async fn soft_delete<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<()> {
    set_deleted::<E>(db, workspace_id, id, true).await
}

/// Brings a row back from the trash.
pub async fn restore<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<()> {
    set_deleted::<E>(db, workspace_id, id, false).await
}

async fn set_deleted<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
    delete: bool,
) -> Result<()> {
    let Some(col) = E::deleted_col() else {
        return Err(EngineError::invalid(
            "id",
            format!("{} cannot be soft-deleted", E::KIND),
        ));
    };
    let (value, current) = if delete {
        (Some(clock::now()), col.is_null())
    } else {
        (None, col.is_not_null())
    };
    let res = E::update_many()
        .col_expr(col, Expr::value(value))
        .filter(E::workspace_col().eq(workspace_id))
        .filter(E::id_col().eq(id))
        .filter(current)
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(EngineError::not_found(E::KIND, id));
    }
    Ok(())
}

/// Deletes a row for good.
pub async fn hard_delete<E: Record>(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    id: i64,
) -> Result<()> {
    let res = E::delete_many()
        .filter(E::workspace_col().eq(workspace_id))
        .filter(E::id_col().eq(id))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        return Err(EngineError::not_found(E::KIND, id));
    }
    Ok(())
}
