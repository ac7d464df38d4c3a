//! Sign-up forms Rapport hosts at `/f/<public id>`: an email address and the fields the
//! form asks, the topic it subscribes to, and whether consent waits for the emailed
//! confirmation (double opt-in, the default). A sending identifies or creates the
//! contact, records a `form_submitted` event and asks for (or records) consent.

use rand::RngCore;
use rapport_schema::capture_form;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};

use super::{Identified, OptIn, Visitor};
use crate::clock;
use crate::engagement::{consent, topics};
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::values::{FormField, Scope, Text};

/// Forms one workspace may keep (archived ones included).
pub const MAX_FORMS: u64 = 500;

/// A form as the team describes it.
#[derive(Clone, Debug, Default)]
pub struct FormInput {
    /// How the team names it.
    pub name: String,
    /// The heading visitors read; the name when absent.
    pub title: Option<String>,
    /// Fields asked besides the email address.
    pub fields: Vec<String>,
    /// The topic a sign-up subscribes to.
    pub topic_id: Option<i64>,
    /// Whether consent waits for the emailed confirmation (default true).
    pub double_opt_in: Option<bool>,
    /// What visitors read once they sent it.
    pub success_message: Option<String>,
}

/// The fields a stored form asks, in its order.
pub fn fields_of(form: &capture_form::Model) -> Vec<FormField> {
    form.fields
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .filter_map(|f| FormField::parse("fields", f).ok())
        .collect()
}

fn public_id() -> String {
    let mut buf = [0u8; 9];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates a form (write scope).
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: FormInput,
) -> Result<capture_form::Model> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let name = Text::parse("name", &input.name, 100)?.into_string();
    let title = match input.title.as_deref() {
        Some(t) => Text::parse("title", t, 200)?.into_string(),
        None => name.clone(),
    };
    let mut fields: Vec<FormField> = Vec::new();
    for (i, f) in input.fields.iter().enumerate() {
        let f = FormField::parse(&format!("fields[{i}]"), f)?;
        if !fields.contains(&f) {
            fields.push(f);
        }
    }
    if let Some(topic) = input.topic_id {
        topics::get(db, ws, topic).await?;
    }
    let success_message = match input.success_message.as_deref() {
        Some(m) => Text::parse("successMessage", m, 1000)?.into_string(),
        None => "Thank you! Please check your inbox to confirm your subscription.".into(),
    };
    let count = capture_form::Entity::find()
        .filter(capture_form::Column::WorkspaceId.eq(ws))
        .select_only()
        .column(capture_form::Column::Id)
        .limit(MAX_FORMS)
        .into_tuple::<i64>()
        .all(db)
        .await?
        .len() as u64;
    if count >= MAX_FORMS {
        return Err(EngineError::invalid(
            "input",
            format!("a workspace keeps at most {MAX_FORMS} forms"),
        ));
    }
    let now = clock::now();
    Ok(capture_form::ActiveModel {
        workspace_id: Set(ws),
        public_id: Set(public_id()),
        name: Set(name),
        title: Set(title),
        fields: Set(serde_json::Value::from(
            fields.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        )),
        topic_id: Set(input.topic_id),
        double_opt_in: Set(input.double_opt_in.unwrap_or(true)),
        success_message: Set(success_message),
        created_at: Set(now),
        updated_at: Set(now),
        archived_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// The workspace's forms, newest first (read scope).
pub async fn list(db: &impl ConnectionTrait, who: &Principal) -> Result<Vec<capture_form::Model>> {
    who.require(Scope::Read)?;
    Ok(capture_form::Entity::find()
        .filter(capture_form::Column::WorkspaceId.eq(who.workspace_id))
        .order_by_desc(capture_form::Column::Id)
        .limit(MAX_FORMS)
        .all(db)
        .await?)
}

/// Archives form `id`: its page stops taking sign-ups (write scope).
pub async fn archive(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
) -> Result<capture_form::Model> {
    who.require(Scope::Write)?;
    let form = capture_form::Entity::find_by_id(id)
        .filter(capture_form::Column::WorkspaceId.eq(who.workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("Form", id))?;
    if form.archived_at.is_some() {
        return Ok(form);
    }
    let mut row: capture_form::ActiveModel = form.into();
    row.archived_at = Set(Some(clock::now()));
    row.updated_at = Set(clock::now());
    Ok(row.update(db).await?)
}

/// The live form at `public_id`, for its public page.
pub async fn published(
    db: &impl ConnectionTrait,
    public_id: &str,
) -> Result<Option<capture_form::Model>> {
    if public_id.len() > 64 || !public_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(capture_form::Entity::find()
        .filter(capture_form::Column::PublicId.eq(public_id))
        .filter(capture_form::Column::ArchivedAt.is_null())
        .one(db)
        .await?)
}

/// What a sign-up did.
#[derive(Debug)]
pub struct Submitted {
    /// Who it concerned.
    pub contact: Identified,
    /// The double opt-in it started, when the form asks for one.
    pub opt_in: Option<OptIn>,
}

/// Takes a sign-up on `form`: only the form's fields of `visitor` count.
pub async fn submit(
    db: &DatabaseConnection,
    form: &capture_form::Model,
    visitor: Visitor,
    proof: consent::Proof,
) -> Result<Submitted> {
    let ws = form.workspace_id;
    let asked = fields_of(form);
    let visitor = Visitor {
        first_name: visitor
            .first_name
            .filter(|_| asked.contains(&FormField::FirstName)),
        last_name: visitor
            .last_name
            .filter(|_| asked.contains(&FormField::LastName)),
        phone: visitor.phone.filter(|_| asked.contains(&FormField::Phone)),
        email: visitor.email,
    };
    let source = format!("form: {}", form.name);
    let contact = super::track(
        db,
        ws,
        &visitor,
        &source,
        "form_submitted",
        serde_json::json!({"form": form.public_id, "name": form.name}),
    )
    .await?;
    let Identified::Contact { id, .. } = contact else {
        return Ok(Submitted {
            contact,
            opt_in: None,
        });
    };
    if let Some(topic) = form.topic_id {
        topics::subscribe_from_form(db, ws, id, topic, &source).await?;
    }
    let opt_in = if form.double_opt_in {
        Some(super::request_opt_in(db, ws, id, &source).await?)
    } else {
        super::grant_from_form(db, ws, id, &form.name, proof).await?
    };
    Ok(Submitted { contact, opt_in })
}
