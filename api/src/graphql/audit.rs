//! The audit log on the graph: the mutation root, wrapped so each mutation is named to the
//! engine's trail while it runs (the changes the rooms report are then recorded with
//! their caller) and gets a row of its own when no room reported it; and `auditLog` for
//! admins.
//!
//! A wrapper of the root rather than a schema extension: an extension's field hook runs
//! for every field of every query, and costs each one a boxed future and stack.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::{MetaType, Registry};
use async_graphql::resolver_utils::ContainerType;
use async_graphql::{
    Context, ContextSelectionSet, ID, InputObject, Json, Object, ObjectType, OutputType,
    Positioned, Result, ServerError, ServerResult, Value,
};
use chrono::{DateTime, Utc};
use rapport_engine::platform::audit;
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::Scope;
use rapport_schema as s;
use sea_orm::DatabaseConnection;

use crate::error::{OrGraphql, invalid};
use crate::graphql::context::principal;
use crate::graphql::ids::{parse_id, to_id};

/// Mutations one request may hold: each is a write and an audit row, and a document of
/// thousands of aliased mutations is no client's need.
pub const MAX_MUTATIONS: u32 = 50;

/// The mutation root `M`, audited.
pub struct Audited<M>(pub M);

impl<M: ObjectType> OutputType for Audited<M> {
    fn type_name() -> Cow<'static, str> {
        M::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        M::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        async_graphql::resolver_utils::resolve_container_serial(ctx, self).await
    }
}

impl<M: ObjectType> ObjectType for Audited<M> {}

impl<M: ObjectType> ContainerType for Audited<M> {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        let name = ctx.item.node.name.node.as_str();
        if name.starts_with("__") {
            return self.0.resolve_field(ctx).await;
        }
        if audit::begin(name) > MAX_MUTATIONS {
            audit::end();
            return Err(ServerError::new(
                format!("at most {MAX_MUTATIONS} mutations in one request"),
                Some(ctx.item.pos),
            ));
        }
        let asked = Asked {
            operation: name.to_string(),
            object_type: return_type::<M>(ctx, name),
            arguments: arguments(ctx),
        };
        let result = self.0.resolve_field(ctx).await;
        let noted = audit::end();
        // A failed mutation changed nothing (its transaction rolled back), so a row that
        // says so is written even when a room had noted a change; a successful one that no
        // room reported gets a row of its own.
        if result.is_ok() && noted > 0 {
            return result;
        }
        let (Some(who), Ok(db)) = (
            ctx.data_opt::<Principal>(),
            ctx.data::<DatabaseConnection>(),
        ) else {
            return result;
        };
        let actor = audit::actor().unwrap_or_else(|| audit::Actor {
            api_key_id: who.key_id,
            user_id: who.user_id,
            ..Default::default()
        });
        let entry = asked.entry(&result);
        if let Err(e) = audit::record(db, who.workspace_id, &actor, entry).await {
            tracing::error!(error = ?e, operation = name, "the audit log could not be written");
        }
        result
    }
}

/// The named type a root field of `M` returns (`Contact` for `Contact!`).
fn return_type<M: OutputType>(ctx: &Context<'_>, field: &str) -> String {
    match ctx.schema_env.registry.types.get(&*M::type_name()) {
        Some(MetaType::Object { fields, .. }) => fields
            .get(field)
            .map(|f| {
                f.ty.trim_matches(|c| matches!(c, '[' | ']' | '!'))
                    .to_string()
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The field's arguments with the variables filled in.
fn arguments(ctx: &Context<'_>) -> serde_json::Map<String, serde_json::Value> {
    let variables = &ctx.query_env.variables;
    let mut out = serde_json::Map::new();
    for (name, value) in &ctx.item.node.arguments {
        let value = value
            .node
            .clone()
            .into_const_with(|v| variables.get(&v).cloned().ok_or(()))
            .ok()
            .and_then(|v| v.into_json().ok())
            .unwrap_or(serde_json::Value::Null);
        out.insert(name.node.to_string(), value);
    }
    out
}

/// What a mutation was asked, read before it runs.
struct Asked {
    operation: String,
    object_type: String,
    arguments: serde_json::Map<String, serde_json::Value>,
}

impl Asked {
    /// The row for a mutation no room reported, or one that failed: its type and id, as
    /// far as the arguments and the answer tell them, its arguments' names and their ids.
    fn entry(self, result: &ServerResult<Option<Value>>) -> audit::Entry {
        let Asked {
            operation,
            object_type,
            arguments,
        } = self;
        let answered_id = match result {
            Ok(Some(Value::Object(fields))) => fields.get("id").and_then(text),
            _ => None,
        };
        let object_id = arguments
            .get("id")
            .and_then(|v| v.as_str().map(str::to_string))
            .or(answered_id);
        let contact = arguments
            .get("contactId")
            .and_then(|v| v.as_str())
            .and_then(|id| id.parse::<i64>().ok())
            .or_else(|| {
                (object_type == "Contact")
                    .then(|| object_id.as_deref().and_then(|id| id.parse().ok()))
                    .flatten()
            });
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => e
                .extensions
                .as_ref()
                .and_then(|ext| ext.get("code"))
                .and_then(text)
                .unwrap_or_else(|| "ERROR".into()),
        };
        // Values are not kept: they may be a person's (an address to suppress, a test
        // recipient) or a secret, and erasure could not find them. The ids say what the
        // mutation was about; the rooms' own rows say what changed.
        let changes = serde_json::json!({
            "argumentNames": arguments.keys().collect::<Vec<_>>(),
            "ids": identifiers(&arguments),
        });
        audit::Entry {
            operation,
            action: None,
            object_type: Some(object_type),
            object_id,
            subject: contact.and_then(|id| audit::person("Contact", id)),
            changes: Some(changes),
            outcome,
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The id-valued arguments (`id`, `contactId`, `stageIds`, at any depth, by dotted path).
fn identifiers(arguments: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let mut stack: Vec<(String, &serde_json::Value)> =
        arguments.iter().map(|(k, v)| (k.clone(), v)).collect();
    while let Some((path, value)) = stack.pop() {
        let key = path.rsplit('.').next().unwrap_or(&path);
        let id_like = key == "id" || key.ends_with("Id") || key.ends_with("Ids");
        match value {
            serde_json::Value::Object(fields) => {
                stack.extend(fields.iter().map(|(k, v)| (format!("{path}.{k}"), v)));
            }
            serde_json::Value::String(_) | serde_json::Value::Number(_) if id_like => {
                out.insert(path, value.clone());
            }
            serde_json::Value::Array(items)
                if id_like && items.iter().all(|i| i.is_string() || i.is_number()) =>
            {
                out.insert(path, value.clone());
            }
            _ => {}
        }
    }
    serde_json::Value::Object(out)
}

/// One row of the audit log.
pub struct AuditEvent(s::audit_event::Model);

#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// The API key that acted, if a key did.
    async fn api_key_id(&self) -> Option<ID> {
        self.0.api_key_id.map(to_id)
    }
    /// The console user who acted (or tried to sign in), if a person did.
    async fn user_id(&self) -> Option<ID> {
        self.0.user_id.map(to_id)
    }
    /// The client's address.
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
    /// The mutation (`updateContact`), or `signIn`.
    async fn operation(&self) -> &str {
        &self.0.operation
    }
    /// What happened to the object, named as webhook events are (`contact.updated`); none
    /// for a mutation no event describes.
    async fn action(&self) -> Option<&str> {
        self.0.action.as_deref()
    }
    /// The object's type name (`Contact`).
    async fn object_type(&self) -> Option<&str> {
        self.0.object_type.as_deref()
    }
    async fn object_id(&self) -> Option<ID> {
        self.0.object_id.clone().map(ID)
    }
    /// For an update, `{field: {old, new}}`; for a creation `{field: {new}}`; for other
    /// events their data; for a mutation no event describes, its `arguments` (secrets
    /// hidden). Null once the person it was about was erased.
    async fn changes(&self) -> Option<Json<serde_json::Value>> {
        self.0.changes.clone().map(Json)
    }
    /// `ok`, the error code of a failed mutation, or a sign-in's outcome (`signed_in`,
    /// `wrong_password`, `locked`).
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
}

/// Which rows `auditLog` lists; every condition given must hold.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// The mutation (`updateContact`) or `signIn`.
    pub operation: Option<String>,
    /// The object's type name (`Contact`).
    pub object_type: Option<String>,
    /// The object's id.
    pub object_id: Option<ID>,
    /// Done with this API key.
    pub api_key_id: Option<ID>,
    /// Done by this user.
    pub user_id: Option<ID>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Characters of a name a filter compares.
const MAX_NAME: usize = 100;

impl AuditLogFilter {
    fn parse(self) -> Result<audit::Filter> {
        let name = |field: &str, v: Option<String>| -> Result<Option<String>> {
            match v {
                Some(v) if v.chars().count() > MAX_NAME => {
                    Err(invalid(field, format!("at most {MAX_NAME} characters")))
                }
                other => Ok(other),
            }
        };
        Ok(audit::Filter {
            operation: name("filter.operation", self.operation)?,
            object_type: name("filter.objectType", self.object_type)?,
            object_id: name("filter.objectId", self.object_id.map(|id| id.0))?,
            api_key_id: self
                .api_key_id
                .as_ref()
                .map(|id| parse_id("filter.apiKeyId", id))
                .transpose()?,
            user_id: self
                .user_id
                .as_ref()
                .map(|id| parse_id("filter.userId", id))
                .transpose()?,
            since: self.since,
            until: self.until,
        })
    }
}

/// Reading the audit log (admins).
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log, newest first: `first` (1–200) of the rows older than `before` (a
    /// row id) that match `filter`. Every mutation and every sign-in is in it, with who,
    /// when, from where and what changed.
    #[graphql(complexity = "first.max(0) as usize * child_complexity")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditLogFilter>,
        before: Option<ID>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<AuditEvent>> {
        let who = principal(ctx)?;
        who.require(Scope::Admin).gql()?;
        if !(1..=audit::MAX_PAGE as i32).contains(&first) {
            return Err(invalid(
                "first",
                format!("must be between 1 and {}", audit::MAX_PAGE),
            ));
        }
        let filter = filter.unwrap_or_default().parse()?;
        let before = before.as_ref().map(|b| parse_id("before", b)).transpose()?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(
            audit::list(db, who.workspace_id, &filter, before, first as u64)
                .await
                .gql()?
                .into_iter()
                .map(AuditEvent)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_are_kept_of_the_arguments() {
        let args = serde_json::json!({
            "id": "4",
            "input": {"name": "x", "password": "p", "contactId": "9", "stageIds": ["1", "2"], "owner": {"userId": 3}},
            "email": "a@b.example"
        });
        assert_eq!(
            identifiers(args.as_object().unwrap()),
            serde_json::json!({"id": "4", "input.contactId": "9", "input.stageIds": ["1", "2"], "input.owner.userId": 3})
        );
    }
}
