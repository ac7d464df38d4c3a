//! The audit log on the graph: the extension that names each mutation to the engine's
//! trail (so the changes the rooms report are recorded with their caller) and writes a row
//! for a mutation no room reported, and `auditLog` for admins.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextResolve, ResolveInfo,
};
use async_graphql::{
    Context, ID, InputObject, Json, Object, Result, ServerResult, Value, Variables,
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

/// Bytes of a mutation's arguments a row keeps; longer ones keep only their names.
const MAX_ARGUMENTS: usize = 8 * 1024;

/// Argument names whose values never reach the log.
const SECRET: &[&str] = &["password", "secret", "token"];

/// The schema's extension: one per request.
pub struct AuditTrail;

impl ExtensionFactory for AuditTrail {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Trail::default())
    }
}

#[derive(Default)]
struct Trail {
    /// The request's variables, to read the arguments a mutation was given.
    variables: Mutex<Variables>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Trail {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        *self.variables.lock().unwrap_or_else(|e| e.into_inner()) = request.variables.clone();
        next.run(ctx, request).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let is_mutation = info.path_node.parent.is_none()
            && ctx.schema_env.registry.mutation_type.as_deref() == Some(info.parent_type);
        if !is_mutation {
            return next.run(ctx, info).await;
        }
        audit::begin(info.name);
        let asked = Asked {
            operation: info.name.to_string(),
            object_type: info
                .return_type
                .trim_matches(|c| matches!(c, '[' | ']' | '!'))
                .to_string(),
            arguments: self.arguments(&info),
        };
        let result = next.run(ctx, info).await;
        let noted = audit::end();
        let (Some(who), Ok(db)) = (
            ctx.data_opt::<Principal>(),
            ctx.data::<DatabaseConnection>(),
        ) else {
            return result;
        };
        // A failed mutation changed nothing (its transaction rolled back), so a row that
        // says so is written even when a room had noted a change; a successful one that no
        // room reported gets a row of its own.
        if result.is_ok() && noted > 0 {
            return result;
        }
        let operation = asked.operation.clone();
        let entry = asked.entry(&result);
        let actor = audit::actor().unwrap_or_else(|| audit::Actor {
            api_key_id: who.key_id,
            user_id: who.user_id,
            ..Default::default()
        });
        if let Err(e) = audit::record(db, who.workspace_id, &actor, entry).await {
            tracing::error!(error = ?e, operation, "the audit log could not be written");
        }
        result
    }
}

/// What a mutation was asked, read before it runs.
struct Asked {
    operation: String,
    object_type: String,
    arguments: serde_json::Map<String, serde_json::Value>,
}

impl Asked {
    /// The row for a mutation no room reported: its type and id, as far as the arguments
    /// and the answer tell them, and its arguments (only their names when it failed, whose
    /// values describe nothing that exists).
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
        let names = || serde_json::json!({ "argumentNames": arguments.keys().collect::<Vec<_>>() });
        let changes = if result.is_ok() {
            let shown = serde_json::Value::Object(arguments.clone());
            if shown.to_string().len() <= MAX_ARGUMENTS {
                serde_json::json!({ "arguments": shown })
            } else {
                names()
            }
        } else {
            names()
        };
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

impl Trail {
    /// The field's arguments with the variables filled in, secrets blanked.
    fn arguments(&self, info: &ResolveInfo<'_>) -> serde_json::Map<String, serde_json::Value> {
        let variables = self.variables.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = serde_json::Map::new();
        for (name, value) in &info.field.arguments {
            let value = value
                .node
                .clone()
                .into_const_with(|v| variables.get(&v).cloned().ok_or(()))
                .ok()
                .and_then(|v| v.into_json().ok())
                .unwrap_or(serde_json::Value::Null);
            out.insert(name.node.to_string(), blank_secrets(value));
        }
        out
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `value` with the values of secret-named keys replaced, at any depth (bounded by the
/// request limits that measured the variables).
fn blank_secrets(mut value: serde_json::Value) -> serde_json::Value {
    let mut stack = vec![&mut value];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(fields) => {
                for (key, field) in fields.iter_mut() {
                    let lower = key.to_ascii_lowercase();
                    if SECRET.iter().any(|s| lower.contains(s)) {
                        *field = serde_json::Value::String("[hidden]".into());
                    } else {
                        stack.push(field);
                    }
                }
            }
            serde_json::Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    value
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
    fn secrets_are_hidden_at_any_depth() {
        let args = serde_json::json!({
            "input": {"name": "x", "password": "p", "items": [{"apiToken": "t", "ok": 1}]},
            "secret": "s"
        });
        assert_eq!(
            blank_secrets(args),
            serde_json::json!({
                "input": {"name": "x", "password": "[hidden]", "items": [{"apiToken": "[hidden]", "ok": 1}]},
                "secret": "[hidden]"
            })
        );
    }
}
