//! Plugins' input queries: GraphQL documents against Rapport's own schema, checked when a
//! plugin is registered and run for many records at once when it scores.
//!
//! A query declares one id variable, which names what the plugin scores: `$contactId`,
//! `$dealId` or `$companyId` ([`Subject`]).
//!
//! A batch is one document: the query's top-level fields repeated once per record under
//! aliases (`c0_contact`, `c1_contact`, ...) with the id variable replaced by each id, so
//! the request's batch loaders fetch every record's relations together. That is why the
//! id variable may appear only in arguments of top-level fields.
//!
//! A query may also declare `$asOf: DateTime`, the moment the plugin scores as of: now in
//! a run, a past moment in a backtest. A query that filters by it (`occurredAt: {lt:
//! $asOf}`) sees in a backtest only what was known then.

use std::collections::HashMap;

use async_graphql::Name;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::parser::{Positioned, parse_query};
use async_graphql_value::Value;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use rapport_engine::intelligence::plugins::{Checked, Inputs, Subject};
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::Scope;
use rapport_engine::{EngineError, Result};
use sea_orm::DatabaseConnection;

use crate::graphql::{RapportSchema, with_loaders};

/// The optional variable holding the moment scored as of.
pub const AS_OF: &str = "asOf";

/// Runs input queries on a schema built for them (with the complexity analyser).
pub struct GraphqlInputs {
    schema: RapportSchema,
    db: DatabaseConnection,
}

impl GraphqlInputs {
    /// Input queries over `schema`, which must report complexity (see
    /// [`crate::graphql::build_for_plugins`]).
    pub fn new(schema: RapportSchema, db: DatabaseConnection) -> Self {
        GraphqlInputs { schema, db }
    }

    /// Runs `doc` for `workspace_id` as of `as_of`; `planned`: from its plan if it has one.
    async fn execute(
        &self,
        workspace_id: i64,
        doc: ExecutableDocument,
        as_of: DateTime<Utc>,
        planned: bool,
    ) -> async_graphql::Response {
        let principal = Principal::acting_for(workspace_id, Scope::Read);
        let moment = as_of.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let variables = async_graphql::Variables::from_json(serde_json::json!({ AS_OF: moment }));
        // From its plan when it has one (the input query was validated when its plugin
        // was registered); the schema answers what a plan does not cover.
        if let Some(plan) = planned.then(|| crate::plans::of_document(&doc)).flatten() {
            let limit = crate::plans::Limit {
                complexity: crate::graphql::PLUGIN_INPUT_MAX_COMPLEXITY,
                budget: None,
            };
            if let Ok(body) =
                crate::plans::run(&self.db, &principal, &plan, &variables, limit).await
                && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Ok(data) = async_graphql::Value::from_json(json["data"].take())
            {
                return async_graphql::Response::new(data);
            }
        }
        let mut request = async_graphql::Request::new("").variables(variables);
        request.set_parsed_query(doc);
        let (request, dispatcher) = with_loaders(request, &self.db, principal);
        let schema = self.schema.clone();
        // On a task of its own: an input query often runs inside another GraphQL request
        // (registerPlugin's sample run), and one execution polled inside the other would
        // stack both resolver trees on one thread's stack.
        let run = tokio::spawn(async move { dispatcher.drive(schema.execute(request)).await });
        match run.await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "a plugin's input query panicked");
                async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                    "internal error",
                    None,
                )])
            }
        }
    }
}

fn invalid(message: impl Into<String>) -> EngineError {
    EngineError::invalid("inputQuery", message)
}

/// Parses an input query and checks its shape: one query operation with one id variable
/// (`$contactId`, `$dealId` or `$companyId`, which gives the subject), used only in
/// arguments of top-level fields, and optionally `$asOf`.
pub fn parse(query: &str) -> Result<(ExecutableDocument, Subject)> {
    // Measured before the parser recurses into it, as every request's document is.
    crate::request_limits::document(query)
        .map_err(|e| invalid(e.to_string().trim_start_matches("query: ")))?;
    let doc = parse_query(query).map_err(|e| invalid(format!("does not parse: {e}")))?;
    let op = match &doc.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => ops.values().next().expect("one"),
        DocumentOperations::Multiple(_) => {
            return Err(invalid("must contain exactly one operation"));
        }
    };
    if op.node.ty != OperationType::Query {
        return Err(invalid("must be a query: plugins read, they never write"));
    }
    let vars: Vec<&str> = op
        .node
        .variable_definitions
        .iter()
        .map(|v| v.node.name.node.as_str())
        .collect();
    let ids: Vec<Subject> = vars
        .iter()
        .filter_map(|v| Subject::of_variable(v))
        .collect();
    let others = vars
        .iter()
        .filter(|v| **v != AS_OF && Subject::of_variable(v).is_none())
        .count();
    let as_ofs = vars.iter().filter(|v| **v == AS_OF).count();
    let subject = match ids[..] {
        [one] if others == 0 && as_ofs <= 1 => one,
        _ => {
            return Err(invalid(format!(
                "must declare one of $contactId, $dealId or $companyId (what the plugin scores) \
             and at most ${AS_OF} besides (found: {})",
                if vars.is_empty() {
                    "none".to_string()
                } else {
                    vars.iter()
                        .map(|v| format!("${v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
    };
    let variable = subject.variable();
    let mut used = false;
    for item in &op.node.selection_set.node.items {
        let Selection::Field(field) = &item.node else {
            return Err(invalid(
                "top-level selections must be fields, not fragments",
            ));
        };
        if !field.node.directives.is_empty() {
            return Err(invalid("top-level fields cannot carry directives"));
        }
        for (arg, value) in &field.node.arguments {
            if mentions_variable(&value.node, variable) {
                used = true;
                id_of_its_subject(subject, field.node.name.node.as_str(), arg.node.as_str())?;
            }
        }
        nested_without_variable(&field.node.selection_set.node, variable)?;
    }
    if !used {
        return Err(invalid(format!("declares ${variable} but never uses it")));
    }
    for fragment in doc.fragments.values() {
        nested_without_variable(&fragment.node.selection_set.node, variable)?;
    }
    Ok((doc, subject))
}

/// The id variable names the record the data is about, so it must be used as that:
/// `$dealId` only as `deal(id:)`, `$companyId` only as `company(id:)`, and `$contactId`
/// never as a deal's or company's id. Otherwise a plugin "of deals" could read contact N
/// for deal N, and its runs would hold a person's data that their erasure never finds.
fn id_of_its_subject(subject: Subject, field: &str, argument: &str) -> Result<()> {
    let variable = subject.variable();
    match subject {
        Subject::Contact => {
            if let Some(other) = Subject::ALL
                .into_iter()
                .find(|s| *s != Subject::Contact && s.as_str() == field)
            {
                return Err(invalid(format!(
                    "${variable} is a contact's id, not a {}'s: declare ${} to score {}s",
                    other.as_str(),
                    other.variable(),
                    other.as_str()
                )));
            }
            Ok(())
        }
        Subject::Deal | Subject::Company => {
            if field == subject.as_str() && argument == "id" {
                Ok(())
            } else {
                Err(invalid(format!(
                    "use ${variable} only as {}(id: ${variable})",
                    subject.as_str()
                )))
            }
        }
    }
}

fn nested_without_variable(set: &SelectionSet, variable: &str) -> Result<()> {
    let refuse = || {
        invalid(format!(
            "use ${variable} only in arguments of top-level fields"
        ))
    };
    let mentions_variable = |v: &Value| mentions_variable(v, variable);
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                if f.node
                    .arguments
                    .iter()
                    .any(|(_, v)| mentions_variable(&v.node))
                    || f.node.directives.iter().any(|d| {
                        d.node
                            .arguments
                            .iter()
                            .any(|(_, v)| mentions_variable(&v.node))
                    })
                {
                    return Err(refuse());
                }
                nested_without_variable(&f.node.selection_set.node, variable)?;
            }
            Selection::InlineFragment(i) => {
                nested_without_variable(&i.node.selection_set.node, variable)?
            }
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}

/// Whether a query declares `$asOf`, so that a backtest shows it only what was known then.
pub fn declares_as_of(doc: &ExecutableDocument) -> bool {
    doc.operations.iter().any(|(_, op)| {
        op.node
            .variable_definitions
            .iter()
            .any(|v| v.node.name.node.as_str() == AS_OF)
    })
}

fn mentions_variable(v: &Value, variable: &str) -> bool {
    match v {
        Value::Variable(n) => n.as_str() == variable,
        Value::List(items) => items.iter().any(|x| mentions_variable(x, variable)),
        Value::Object(fields) => fields.values().any(|x| mentions_variable(x, variable)),
        _ => false,
    }
}

fn substitute(v: &Value, variable: &str, id: &str) -> Value {
    match v {
        Value::Variable(n) if n.as_str() == variable => Value::String(id.to_string()),
        Value::List(items) => {
            Value::List(items.iter().map(|x| substitute(x, variable, id)).collect())
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, x)| (k.clone(), substitute(x, variable, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// One document asking the query's top-level fields once per record of its subject.
pub fn batch(doc: &ExecutableDocument, subject: Subject, contacts: &[i64]) -> ExecutableDocument {
    let mut out = doc.clone();
    let op = match &mut out.operations {
        DocumentOperations::Single(op) => op,
        DocumentOperations::Multiple(ops) => ops.values_mut().next().expect("checked by parse"),
    };
    // `$asOf` stays a variable: it is the same for every contact of the batch.
    op.node
        .variable_definitions
        .retain(|v| v.node.name.node.as_str() == AS_OF);
    let template = std::mem::take(&mut op.node.selection_set.node.items);
    for (i, id) in contacts.iter().enumerate() {
        let id = id.to_string();
        for item in &template {
            let Selection::Field(field) = &item.node else {
                continue;
            };
            let mut f = field.clone();
            let key = f.node.response_key().node.clone();
            f.node.alias = Some(Positioned::new(Name::new(format!("c{i}_{key}")), f.pos));
            for (_, value) in &mut f.node.arguments {
                value.node = substitute(&value.node, subject.variable(), &id);
            }
            op.node
                .selection_set
                .node
                .items
                .push(Positioned::new(Selection::Field(f), item.pos));
        }
    }
    out
}

/// Splits a batched response into each contact's `data` (JSON text) or its errors.
pub fn split(
    response: async_graphql::Response,
    contacts: usize,
) -> Vec<std::result::Result<String, String>> {
    let mut data: Vec<serde_json::Map<String, serde_json::Value>> =
        vec![Default::default(); contacts];
    let mut errors: HashMap<usize, Vec<String>> = HashMap::new();
    let index_of = |key: &str| -> Option<(usize, String)> {
        let (i, rest) = key.strip_prefix('c')?.split_once('_')?;
        Some((i.parse().ok()?, rest.to_string()))
    };
    for e in &response.errors {
        let first = e.path.first().and_then(|p| match p {
            async_graphql::PathSegment::Field(k) => index_of(k),
            _ => None,
        });
        match first {
            Some((i, _)) if i < contacts => errors.entry(i).or_default().push(e.message.clone()),
            // An error of the whole document (validation) fails every contact.
            _ => (0..contacts).for_each(|i| errors.entry(i).or_default().push(e.message.clone())),
        }
    }
    if let Ok(serde_json::Value::Object(fields)) = response.data.into_json() {
        for (key, value) in fields {
            if let Some((i, field)) = index_of(&key)
                && i < contacts
            {
                data[i].insert(field, value);
            }
        }
    }
    data.into_iter()
        .enumerate()
        .map(|(i, d)| match errors.remove(&i) {
            Some(messages) => Err(messages.join("; ")),
            None => Ok(serde_json::Value::Object(d).to_string()),
        })
        .collect()
}

impl Inputs for GraphqlInputs {
    fn check<'a>(&'a self, workspace_id: i64, query: &'a str) -> BoxFuture<'a, Result<Checked>> {
        Box::pin(async move {
            let (doc, subject) = parse(query)?;
            // Run once for a record that cannot exist: the schema validates the query
            // and reports its cost; the only error left is that record's "not found".
            let response = self
                .execute(
                    workspace_id,
                    batch(&doc, subject, &[i64::MAX]),
                    chrono::Utc::now(),
                    // The schema's analyser reports the cost.
                    false,
                )
                .await;
            if let Some(e) = response.errors.iter().find(|e| e.path.is_empty()) {
                return Err(invalid(e.message.replace("c0_", "")));
            }
            let complexity = response
                .extensions
                .get("analyzer")
                .and_then(|a| match a {
                    async_graphql::Value::Object(o) => o.get("complexity").cloned(),
                    _ => None,
                })
                .and_then(|c| match c {
                    async_graphql::Value::Number(n) => n.as_i64(),
                    _ => None,
                })
                .ok_or_else(|| EngineError::internal("the query's cost could not be measured"))?;
            Ok(Checked {
                cost: complexity.clamp(1, i32::MAX as i64) as i32,
                subject,
            })
        })
    }

    fn reads_as_of(&self, query: &str) -> bool {
        parse(query).is_ok_and(|(doc, _)| declares_as_of(&doc))
    }

    fn fetch<'a>(
        &'a self,
        workspace_id: i64,
        query: &'a str,
        _cost: i32,
        contacts: &'a [i64],
        as_of: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<std::result::Result<String, String>>>> {
        Box::pin(async move {
            let (doc, subject) = parse(query)?;
            let response = self
                .execute(workspace_id, batch(&doc, subject, contacts), as_of, true)
                .await;
            Ok(split(response, contacts.len()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_nested_past_the_bounds_are_refused_before_parsing() {
        let deep = format!(
            "query($contactId: ID!) {{ contact(id: $contactId) {{ deals(filter: {}{}) {{ totalCount }} }} }}",
            "{not: ".repeat(200),
            "}".repeat(200)
        );
        let e = parse(&deep).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("inputQuery: the document's input values nest"),
            "{e}"
        );
    }

    #[test]
    fn shapes_that_cannot_be_batched_are_refused_with_the_reason() {
        let cases = [
            (
                "query { contacts { totalCount } }",
                "must declare one of $contactId, $dealId or $companyId",
            ),
            (
                "query($contactId: ID!, $n: Int) { contact(id: $contactId) { id } }",
                "$n",
            ),
            (
                "query($asOf: DateTime) { contacts { totalCount } }",
                "must declare one of $contactId, $dealId or $companyId",
            ),
            (
                "mutation($contactId: ID!) { deleteContact(id: $contactId) }",
                "must be a query",
            ),
            (
                "query($contactId: ID!) { ...F } fragment F on Query { contacts { totalCount } }",
                "fragments",
            ),
            (
                "query($contactId: ID!) { contacts { edges { node { deals(filter: {contactId: {eq: $contactId}}) { totalCount } } } } }",
                "only in arguments of top-level",
            ),
            (
                "query($contactId: ID!) { contact(id: $contactId) {",
                "does not parse",
            ),
            (
                "query($contactId: ID!, $dealId: ID!) { deal(id: $dealId) { id } }",
                "found: $contactId, $dealId",
            ),
            (
                "query($dealId: ID!) { deals { edges { node { contacts(filter: {id: {eq: $dealId}}) { totalCount } } } } }",
                "use $dealId only in arguments of top-level",
            ),
            (
                "query($dealId: ID!) { deals { totalCount } }",
                "declares $dealId but never uses it",
            ),
            (
                "query($dealId: ID!) { contact(id: $dealId) { email } }",
                "use $dealId only as deal(id: $dealId)",
            ),
            (
                "query($contactId: ID!) { deal(id: $contactId) { name } }",
                "$contactId is a contact's id, not a deal's",
            ),
        ];
        for (query, wanted) in cases {
            let e = parse(query).unwrap_err().to_string();
            assert!(e.contains(wanted), "{query}: {e}");
        }
    }

    #[test]
    fn a_batch_repeats_top_level_fields_per_contact() {
        let (doc, subject) = parse("query Q($contactId: ID!) { contact(id: $contactId) { name } me: contact(id: $contactId) { id } }").unwrap();
        assert_eq!(subject, Subject::Contact);
        let b = batch(&doc, subject, &[7, 9]);
        let op = match &b.operations {
            DocumentOperations::Single(op) => op,
            DocumentOperations::Multiple(ops) => ops.values().next().unwrap(),
        };
        let keys: Vec<String> = op
            .node
            .selection_set
            .node
            .items
            .iter()
            .map(|i| match &i.node {
                Selection::Field(f) => {
                    let arg = &f.node.arguments[0].1.node;
                    format!("{}={arg}", f.node.response_key().node)
                }
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "c0_contact=\"7\"",
                "c0_me=\"7\"",
                "c1_contact=\"9\"",
                "c1_me=\"9\""
            ]
        );
        assert!(op.node.variable_definitions.is_empty());
    }

    #[test]
    fn as_of_may_be_used_anywhere_and_stays_a_variable() {
        let (doc, subject) = parse(
            "query($contactId: ID!, $asOf: DateTime) { contact(id: $contactId) { \
             activities(filter: {occurredAt: {lt: $asOf}}) { totalCount } } }",
        )
        .unwrap();
        assert!(declares_as_of(&doc));
        let b = batch(&doc, subject, &[7]);
        let op = match &b.operations {
            DocumentOperations::Single(op) => op,
            DocumentOperations::Multiple(ops) => ops.values().next().unwrap(),
        };
        let names: Vec<&str> = op
            .node
            .variable_definitions
            .iter()
            .map(|v| v.node.name.node.as_str())
            .collect();
        assert_eq!(names, [AS_OF]);
        let (plain, _) =
            parse("query($contactId: ID!) { contact(id: $contactId) { id } }").unwrap();
        assert!(!declares_as_of(&plain));
    }

    #[test]
    fn a_deal_or_company_id_makes_the_subject_and_is_substituted() {
        for (query, subject) in [
            (
                "query($dealId: ID!) { deal(id: $dealId) { name } }",
                Subject::Deal,
            ),
            (
                "query($companyId: ID!, $asOf: DateTime) { company(id: $companyId) { name } }",
                Subject::Company,
            ),
        ] {
            let (doc, found) = parse(query).unwrap();
            assert_eq!(found, subject, "{query}");
            let b = batch(&doc, found, &[42]);
            let op = match &b.operations {
                DocumentOperations::Single(op) => op,
                DocumentOperations::Multiple(ops) => ops.values().next().unwrap(),
            };
            let Selection::Field(f) = &op.node.selection_set.node.items[0].node else {
                unreachable!()
            };
            assert_eq!(f.node.arguments[0].1.node.to_string(), "\"42\"");
        }
    }
}
