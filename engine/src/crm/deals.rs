//! Pipelines, their ordered stages, and deals moving through them.
//!
//! Every stage a deal enters is written to the stage history (with who moved it), so
//! funnels and stage velocity can be computed from facts rather than snapshots.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::{live, outbox, records};
use crate::values::{Currency, DealStatus, Money, Patch, Text, WebhookEventType};
use chrono::NaiveDate;
use rapport_schema::{company, contact, deal, deal_stage_change, pipeline, stage, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, Set,
};

/// A stage as a client describes it.
#[derive(Clone, Debug, Default)]
pub struct StageInput {
    /// Display name.
    pub name: Option<String>,
    /// Default win probability, 0-100.
    pub win_probability: Option<i32>,
    /// Reaching it wins the deal.
    pub is_won: Option<bool>,
    /// Reaching it loses the deal.
    pub is_lost: Option<bool>,
    /// Position in the pipeline (0 first); new stages go last by default.
    pub position: Option<i32>,
}

fn check_probability(field: &str, p: i32) -> Result<i32> {
    if (0..=100).contains(&p) {
        Ok(p)
    } else {
        Err(EngineError::invalid(
            field,
            format!("must be between 0 and 100 (got {p})"),
        ))
    }
}

fn stage_row(
    ws: i64,
    pipeline_id: i64,
    position: i32,
    input: StageInput,
    field: &str,
) -> Result<stage::ActiveModel> {
    let name = Text::parse(
        &format!("{field}.name"),
        input.name.as_deref().unwrap_or(""),
        100,
    )?
    .into_string();
    let is_won = input.is_won.unwrap_or(false);
    let is_lost = input.is_lost.unwrap_or(false);
    if is_won && is_lost {
        return Err(EngineError::invalid(
            field,
            "a stage cannot be both won and lost",
        ));
    }
    let default_probability = if is_won { 100 } else { 0 };
    let now = clock::now();
    Ok(stage::ActiveModel {
        workspace_id: Set(ws),
        pipeline_id: Set(pipeline_id),
        name: Set(name),
        position: Set(position),
        win_probability: Set(check_probability(
            &format!("{field}.winProbability"),
            input.win_probability.unwrap_or(default_probability),
        )?),
        is_won: Set(is_won),
        is_lost: Set(is_lost),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
}

/// The stages a new workspace's "Sales" pipeline starts with.
pub fn default_stages() -> Vec<StageInput> {
    [
        ("Prospecting", 10, false, false),
        ("Qualification", 25, false, false),
        ("Proposal", 50, false, false),
        ("Negotiation", 75, false, false),
        ("Closed won", 100, true, false),
        ("Closed lost", 0, false, true),
    ]
    .into_iter()
    .map(|(n, p, w, l)| StageInput {
        name: Some(n.into()),
        win_probability: Some(p),
        is_won: Some(w),
        is_lost: Some(l),
        position: None,
    })
    .collect()
}

/// Creates a pipeline with its stages in the given order.
pub async fn create_pipeline(
    db: &impl ConnectionTrait,
    who: &Principal,
    name: &str,
    stages: Vec<StageInput>,
) -> Result<pipeline::Model> {
    let ws = who.workspace_id;
    let name = Text::parse("name", name, 100)?.into_string();
    if stages.is_empty() {
        return Err(EngineError::invalid(
            "stages",
            "a pipeline needs at least one stage",
        ));
    }
    let now = clock::now();
    let rows = stages
        .into_iter()
        .enumerate()
        .map(|(i, s)| stage_row(ws, 0, i as i32, s, &format!("stages[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let p = pipeline::ActiveModel {
        workspace_id: Set(ws),
        name: Set(name),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    for mut row in rows {
        row.pipeline_id = Set(p.id);
        row.insert(db).await?;
    }
    Ok(p)
}

/// Renames a pipeline.
pub async fn rename_pipeline(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    name: &str,
) -> Result<pipeline::Model> {
    let current = records::get::<pipeline::Entity>(db, who.workspace_id, id).await?;
    let mut am: pipeline::ActiveModel = current.into();
    am.name = Set(Text::parse("name", name, 100)?.into_string());
    am.updated_at = Set(clock::now());
    Ok(am.update(db).await?)
}

/// The stages of a pipeline in order.
pub async fn stages_of(
    db: &impl ConnectionTrait,
    ws: i64,
    pipeline_id: i64,
) -> Result<Vec<stage::Model>> {
    Ok(stage::Entity::find()
        .filter(stage::Column::WorkspaceId.eq(ws))
        .filter(stage::Column::PipelineId.eq(pipeline_id))
        .order_by_asc(stage::Column::Position)
        .order_by_asc(stage::Column::Id)
        .all(db)
        .await?)
}

/// Adds a stage to a pipeline (last, unless a position is given).
pub async fn add_stage(
    db: &DatabaseConnection,
    who: &Principal,
    pipeline_id: i64,
    input: StageInput,
) -> Result<stage::Model> {
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    records::get::<pipeline::Entity>(&tx, ws, pipeline_id).await?;
    let existing = stages_of(&tx, ws, pipeline_id).await?;
    let position = input
        .position
        .unwrap_or(existing.len() as i32)
        .clamp(0, existing.len() as i32);
    // Make room: stages at or after the new position move one down.
    for s in existing.into_iter().filter(|s| s.position >= position) {
        let pos = s.position;
        let mut am: stage::ActiveModel = s.into();
        am.position = Set(pos + 1);
        am.update(&tx).await?;
    }
    let created = stage_row(ws, pipeline_id, position, input, "input")?
        .insert(&tx)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// Changes a stage's name, probability or flags.
pub async fn update_stage(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: StageInput,
) -> Result<stage::Model> {
    let current = records::get::<stage::Entity>(db, who.workspace_id, id).await?;
    let is_won = input.is_won.unwrap_or(current.is_won);
    let is_lost = input.is_lost.unwrap_or(current.is_lost);
    if is_won && is_lost {
        return Err(EngineError::invalid(
            "input",
            "a stage cannot be both won and lost",
        ));
    }
    let mut am: stage::ActiveModel = current.into();
    if let Some(n) = input.name {
        am.name = Set(Text::parse("name", &n, 100)?.into_string());
    }
    if let Some(p) = input.win_probability {
        am.win_probability = Set(check_probability("winProbability", p)?);
    }
    am.is_won = Set(is_won);
    am.is_lost = Set(is_lost);
    am.updated_at = Set(clock::now());
    Ok(am.update(db).await?)
}

/// Fields of a deal as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct DealInput {
    /// Display name.
    pub name: Option<String>,
    /// The main contact.
    pub contact_id: Patch<i64>,
    /// The company buying.
    pub company_id: Patch<i64>,
    /// Pipeline; defaults to the workspace's first pipeline.
    pub pipeline_id: Option<i64>,
    /// Stage; defaults to the pipeline's first stage.
    pub stage_id: Option<i64>,
    /// Amount in major units (dollars, not cents).
    pub amount: Option<f64>,
    /// ISO 4217 currency; USD by default.
    pub currency: Option<String>,
    /// When the deal is expected to close.
    pub expected_close_date: Patch<NaiveDate>,
    /// The team member who owns it.
    pub owner_id: Patch<i64>,
    /// Its id in another system, unique in the workspace (1–200 characters).
    pub external_id: Patch<String>,
}

/// The most deals one bulk call may upsert.
pub const BULK_LIMIT: usize = 1000;

fn external_id_of(field: &str, input: &DealInput) -> Result<Patch<String>> {
    input
        .external_id
        .clone()
        .parse(|e| Text::parse(field, &e, 200).map(Text::into_string))
}

/// Refuses an external id another deal of the workspace has.
async fn ensure_external_id_free(
    db: &impl ConnectionTrait,
    ws: i64,
    external_id: &Patch<String>,
    except: Option<i64>,
) -> Result<()> {
    let Patch::Set(wanted) = external_id else {
        return Ok(());
    };
    let mut q = deal::Entity::find()
        .filter(deal::Column::WorkspaceId.eq(ws))
        .filter(deal::Column::ExternalId.eq(wanted.as_str()));
    if let Some(id) = except {
        q = q.filter(deal::Column::Id.ne(id));
    }
    if let Some(other) = q.one(db).await? {
        return Err(EngineError::Conflict(format!(
            "deal {} already has the external id {wanted}",
            other.id
        )));
    }
    Ok(())
}

async fn first_pipeline(db: &impl ConnectionTrait, ws: i64) -> Result<pipeline::Model> {
    records::scoped::<pipeline::Entity>(ws, records::Deleted::Exclude)
        .order_by_asc(pipeline::Column::Id)
        .one(db)
        .await?
        .ok_or_else(|| {
            EngineError::invalid(
                "pipelineId",
                "the workspace has no pipeline; create one first",
            )
        })
}

/// Loads `stage_id` and checks that it belongs to `pipeline_id`.
async fn stage_in(
    db: &impl ConnectionTrait,
    ws: i64,
    stage_id: i64,
    pipeline_id: i64,
) -> Result<stage::Model> {
    let s = records::get::<stage::Entity>(db, ws, stage_id).await?;
    if s.pipeline_id != pipeline_id {
        return Err(EngineError::invalid(
            "stageId",
            format!(
                "stage {stage_id} belongs to pipeline {}, not to the deal's pipeline {pipeline_id}",
                s.pipeline_id
            ),
        ));
    }
    Ok(s)
}

fn status_of(s: &stage::Model) -> DealStatus {
    if s.is_won {
        DealStatus::Won
    } else if s.is_lost {
        DealStatus::Lost
    } else {
        DealStatus::Open
    }
}

async fn record_move(
    db: &impl ConnectionTrait,
    who: &Principal,
    deal_id: i64,
    from: Option<i64>,
    to: i64,
) -> Result<()> {
    deal_stage_change::ActiveModel {
        workspace_id: Set(who.workspace_id),
        deal_id: Set(deal_id),
        from_stage_id: Set(from),
        to_stage_id: Set(to),
        moved_at: Set(clock::now()),
        moved_by_key_id: Set(who.key_id),
        moved_by_user_id: Set(who.user_id),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

async fn check_links(db: &impl ConnectionTrait, ws: i64, input: &DealInput) -> Result<()> {
    if let Patch::Set(id) = input.contact_id {
        records::ensure_exists::<contact::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.company_id {
        records::ensure_exists::<company::Entity>(db, ws, id).await?;
    }
    if let Patch::Set(id) = input.owner_id {
        records::ensure_exists::<user::Entity>(db, ws, id).await?;
    }
    Ok(())
}

/// Applies status, stage and closing time for entering `s`.
fn enter_stage(am: &mut deal::ActiveModel, s: &stage::Model) {
    let status = status_of(s);
    am.stage_id = Set(s.id);
    am.status = Set(status.as_str().to_string());
    am.closed_at = Set(if status == DealStatus::Open {
        None
    } else {
        Some(clock::now())
    });
    if status != DealStatus::Lost {
        am.lost_reason = Set(None);
        am.competitor = Set(None);
    }
}

/// Creates a deal inside an open transaction (lead conversion uses this too).
pub(crate) async fn create_in(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: DealInput,
) -> Result<deal::Model> {
    let ws = who.workspace_id;
    let name = Text::parse("name", input.name.as_deref().unwrap_or(""), 200)?.into_string();
    let currency = Currency::parse("currency", input.currency.as_deref().unwrap_or("USD"))?;
    let money = Money::parse("amount", input.amount.unwrap_or(0.0), currency)?;
    let external_id = external_id_of("externalId", &input)?;
    check_links(db, ws, &input).await?;
    ensure_external_id_free(db, ws, &external_id, None).await?;
    let pipeline = match input.pipeline_id {
        Some(id) => records::get::<pipeline::Entity>(db, ws, id).await?,
        None => first_pipeline(db, ws).await?,
    };
    let stage = match input.stage_id {
        Some(id) => stage_in(db, ws, id, pipeline.id).await?,
        None => stages_of(db, ws, pipeline.id)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| EngineError::invalid("pipelineId", "the pipeline has no stages"))?,
    };
    let now = clock::now();
    let mut am = deal::ActiveModel {
        workspace_id: Set(ws),
        name: Set(name),
        pipeline_id: Set(pipeline.id),
        amount_minor: Set(money.minor),
        currency: Set(currency.code().to_string()),
        contact_id: Set(None),
        company_id: Set(None),
        expected_close_date: Set(None),
        owner_id: Set(None),
        lost_reason: Set(None),
        competitor: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    enter_stage(&mut am, &stage);
    input.contact_id.apply(&mut am.contact_id);
    input.company_id.apply(&mut am.company_id);
    input.expected_close_date.apply(&mut am.expected_close_date);
    input.owner_id.apply(&mut am.owner_id);
    external_id.apply(&mut am.external_id);
    let saved = am.insert(db).await?;
    record_move(db, who, saved.id, None, stage.id).await?;
    tell(db, None, &saved).await?;
    Ok(saved)
}

/// Tells webhooks what a write did to a deal: `deal.created` for a new one, `deal.won` or
/// `deal.lost` when it closed, `deal.stage_changed` when it only moved.
async fn tell(
    db: &impl ConnectionTrait,
    before: Option<&deal::Model>,
    after: &deal::Model,
) -> Result<()> {
    let subject = outbox::Subject {
        typename: "Deal",
        id: after.id,
    };
    let ws = after.workspace_id;
    // The board follows every change of a deal, not only those webhooks report.
    let notice = live::Notice {
        workspace_id: ws,
        topic: live::Topic::Deal,
        scope_id: after.pipeline_id,
        object_id: after.id,
    };
    live::publish(db, notice).await?;
    if let Some(b) = before
        && b.pipeline_id != after.pipeline_id
    {
        // Moved to another pipeline: it left the old board.
        let left = live::Notice {
            scope_id: b.pipeline_id,
            ..notice
        };
        live::publish(db, left).await?;
    }
    let Some(before) = before else {
        return outbox::created(db, ws, WebhookEventType::DealCreated, subject, after).await;
    };
    let event = match DealStatus::from_db(&after.status) {
        s if s.as_str() == before.status => None,
        DealStatus::Won => Some(WebhookEventType::DealWon),
        DealStatus::Lost => Some(WebhookEventType::DealLost),
        DealStatus::Open => None,
    };
    let event =
        event.or((before.stage_id != after.stage_id).then_some(WebhookEventType::DealStageChanged));
    match event {
        Some(e) => outbox::updated(db, ws, e, subject, before, after).await,
        None => Ok(()),
    }
}

/// Creates a deal in its pipeline's first stage (or the stage given).
pub async fn create(
    db: &DatabaseConnection,
    who: &Principal,
    input: DealInput,
) -> Result<deal::Model> {
    let tx = crate::platform::db::write(db).await?;
    let saved = create_in(&tx, who, input).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Changes the given fields of a deal. A new stage is a move and goes to the history.
pub async fn update(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    input: DealInput,
) -> Result<deal::Model> {
    let tx = crate::platform::db::write(db).await?;
    let saved = update_in(&tx, who, id, input).await?;
    tx.commit().await?;
    Ok(saved)
}

async fn update_in(
    tx: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: DealInput,
) -> Result<deal::Model> {
    let ws = who.workspace_id;
    let current = records::get::<deal::Entity>(tx, ws, id).await?;
    let external_id = external_id_of("externalId", &input)?;
    check_links(tx, ws, &input).await?;
    ensure_external_id_free(tx, ws, &external_id, Some(id)).await?;
    let pipeline_id = input.pipeline_id.unwrap_or(current.pipeline_id);
    if pipeline_id != current.pipeline_id {
        records::get::<pipeline::Entity>(tx, ws, pipeline_id).await?;
        if input.stage_id.is_none() {
            return Err(EngineError::invalid(
                "stageId",
                "moving a deal to another pipeline needs a stage of that pipeline",
            ));
        }
    }
    let currency = Currency::parse(
        "currency",
        input.currency.as_deref().unwrap_or(&current.currency),
    )?;
    let from_stage = current.stage_id;
    let mut am: deal::ActiveModel = current.clone().into();
    if let Some(n) = &input.name {
        am.name = Set(Text::parse("name", n, 200)?.into_string());
    }
    if let Some(a) = input.amount {
        am.amount_minor = Set(Money::parse("amount", a, currency)?.minor);
    } else if currency.code() != current.currency {
        return Err(EngineError::invalid(
            "currency",
            "changing the currency needs the amount in the new currency",
        ));
    }
    am.currency = Set(currency.code().to_string());
    am.pipeline_id = Set(pipeline_id);
    let moved_to = match input.stage_id {
        Some(s) if s != from_stage || pipeline_id != current.pipeline_id => {
            let s = stage_in(tx, ws, s, pipeline_id).await?;
            enter_stage(&mut am, &s);
            Some(s.id)
        }
        _ => None,
    };
    input.contact_id.apply(&mut am.contact_id);
    input.company_id.apply(&mut am.company_id);
    input.expected_close_date.apply(&mut am.expected_close_date);
    input.owner_id.apply(&mut am.owner_id);
    external_id.apply(&mut am.external_id);
    am.updated_at = Set(clock::now());
    let saved = am.update(tx).await?;
    if let Some(to) = moved_to {
        record_move(tx, who, id, Some(from_stage), to).await?;
    }
    tell(tx, Some(&current), &saved).await?;
    Ok(saved)
}

/// Creates or updates many deals, all or nothing: a deal whose `external_id` another deal
/// of the workspace has is updated (a deleted one is a conflict), any other is created.
/// Returns each deal and whether it was created, in input order.
pub async fn bulk_upsert(
    db: &DatabaseConnection,
    who: &Principal,
    inputs: Vec<DealInput>,
) -> Result<Vec<(deal::Model, bool)>> {
    let ws = who.workspace_id;
    if inputs.len() > BULK_LIMIT {
        return Err(EngineError::invalid(
            "deals",
            format!("at most {BULK_LIMIT} deals per call (got {})", inputs.len()),
        ));
    }
    let mut keys = std::collections::HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        let field = format!("deals[{i}].externalId");
        if let Patch::Set(key) = external_id_of(&field, input)?
            && let Some(j) = keys.insert(key.clone(), i)
        {
            return Err(EngineError::invalid(
                field,
                format!("{key} also appears at deals[{j}]"),
            ));
        }
    }
    let tx = crate::platform::db::write(db).await?;
    let existing: std::collections::HashMap<String, deal::Model> =
        crate::platform::db::planned_lookup(
            &tx,
            deal::Entity::find()
                .filter(deal::Column::WorkspaceId.eq(ws))
                .filter(deal::Column::ExternalId.is_in(keys.into_keys()))
                .all(&tx),
        )
        .await?
        .into_iter()
        .filter_map(|d| d.external_id.clone().map(|k| (k, d)))
        .collect();
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let found = match &input.external_id {
            Patch::Set(key) => existing.get(key.trim()),
            _ => None,
        };
        let done = match found {
            Some(d) if d.deleted_at.is_some() => {
                return Err(EngineError::Conflict(format!(
                    "deals[{i}]: deal {} is deleted; restore it first",
                    d.id
                )));
            }
            Some(d) => (update_in(&tx, who, d.id, input).await?, false),
            None => (create_in(&tx, who, input).await?, true),
        };
        out.push(done);
    }
    tx.commit().await?;
    Ok(out)
}

/// Moves a deal to another stage of its pipeline and records the move. Moving a closed
/// deal to an open stage reopens it.
pub async fn move_to_stage(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    stage_id: i64,
) -> Result<deal::Model> {
    let ws = who.workspace_id;
    let tx = crate::platform::db::write(db).await?;
    let current = records::get::<deal::Entity>(&tx, ws, id).await?;
    let target = stage_in(&tx, ws, stage_id, current.pipeline_id).await?;
    if target.id == current.stage_id {
        return Ok(current);
    }
    let from = current.stage_id;
    let mut am: deal::ActiveModel = current.clone().into();
    enter_stage(&mut am, &target);
    am.updated_at = Set(clock::now());
    let saved = am.update(&tx).await?;
    record_move(&tx, who, id, Some(from), target.id).await?;
    tell(&tx, Some(&current), &saved).await?;
    tx.commit().await?;
    Ok(saved)
}

/// How a deal ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The customer bought.
    Won,
    /// The customer did not.
    Lost,
}

/// Closes an open deal as won or lost, moving it to the pipeline's won or lost stage when
/// it has one. Closing a closed deal is a conflict, not a silent overwrite.
pub async fn close(
    db: &DatabaseConnection,
    who: &Principal,
    id: i64,
    outcome: Outcome,
    reason: Option<String>,
    competitor: Option<String>,
) -> Result<deal::Model> {
    let ws = who.workspace_id;
    let reason =
        Text::parse_multiline_opt("reason", reason.as_deref(), 500)?.map(Text::into_string);
    let competitor =
        Text::parse_opt("competitor", competitor.as_deref(), 200)?.map(Text::into_string);
    if outcome == Outcome::Won && competitor.is_some() {
        return Err(EngineError::invalid(
            "competitor",
            "only a lost deal has a competitor that won it",
        ));
    }
    let tx = crate::platform::db::write(db).await?;
    let current = records::get::<deal::Entity>(&tx, ws, id).await?;
    if DealStatus::from_db(&current.status) != DealStatus::Open {
        return Err(EngineError::Conflict(format!(
            "deal {id} is already {}; reopen it by moving it to an open stage",
            current.status
        )));
    }
    let target = stages_of(&tx, ws, current.pipeline_id)
        .await?
        .into_iter()
        .find(|s| {
            if outcome == Outcome::Won {
                s.is_won
            } else {
                s.is_lost
            }
        });
    let from = current.stage_id;
    let before = current.clone();
    let mut am: deal::ActiveModel = current.into();
    if let Some(s) = &target {
        enter_stage(&mut am, s);
    }
    let status = if outcome == Outcome::Won {
        DealStatus::Won
    } else {
        DealStatus::Lost
    };
    am.status = Set(status.as_str().to_string());
    am.closed_at = Set(Some(clock::now()));
    am.lost_reason = Set(if outcome == Outcome::Lost {
        reason
    } else {
        None
    });
    am.competitor = Set(competitor);
    am.updated_at = Set(clock::now());
    let saved = am.update(&tx).await?;
    if let Some(s) = target {
        record_move(&tx, who, id, Some(from), s.id).await?;
    }
    tell(&tx, Some(&before), &saved).await?;
    tx.commit().await?;
    Ok(saved)
}

/// What a stage holds of open deals in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageTotal {
    /// The currency.
    pub currency: String,
    /// Open deals.
    pub deals: i64,
    /// Their amounts together, in minor units.
    pub amount_minor: i64,
}

/// The open deals of a stage, counted and summed per currency (optionally only one
/// owner's): one grouped statement, however many deals there are.
pub async fn open_totals(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    stage_id: i64,
    owner_id: Option<i64>,
) -> Result<Vec<StageTotal>> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{QuerySelect, QueryTrait};
    let rows: Vec<(String, i64, Option<i64>)> =
        records::scoped::<deal::Entity>(workspace_id, records::Deleted::Exclude)
            .select_only()
            .column(deal::Column::Currency)
            .column_as(Expr::cust("COUNT(*)"), "deals")
            // Summed as BIGINT on both databases (PostgreSQL's SUM of BIGINT is NUMERIC).
            .column_as(
                Expr::cust("CAST(SUM(amount_minor) AS BIGINT)"),
                "amount_minor",
            )
            .filter(deal::Column::StageId.eq(stage_id))
            .filter(deal::Column::Status.eq(DealStatus::Open.as_str()))
            .apply_if(owner_id, |q, o| q.filter(deal::Column::OwnerId.eq(o)))
            .group_by(deal::Column::Currency)
            .order_by_asc(deal::Column::Currency)
            .into_tuple()
            .all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(currency, deals, sum)| StageTotal {
            currency,
            deals,
            amount_minor: sum.unwrap_or(0),
        })
        .collect())
}
