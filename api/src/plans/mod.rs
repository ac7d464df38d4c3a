//! Planned execution: the reads of the CRM graph that clients repeat (a page of contacts
//! with their company, deals and latest activities; one contact by id) run from a plan
//! made once per distinct document, batch by batch, writing the JSON answer straight from
//! the rows. The schema's resolvers give each value its own future and map; for a page of
//! a few thousand values that bookkeeping, not the database, was most of the request.
//!
//! A document gets a plan only after the schema has run it once without a request
//! error: the schema's validation (types, depth, fragments) has then passed, and every
//! later request of it is checked here for what varies with its variables (argument
//! values, complexity, the key's budget). Whatever a plan cannot answer exactly as the
//! schema would (a missing row, a refused argument, a database error) goes to the schema
//! instead, which words the error; reads have no effects, so running them there again is
//! safe. Documents with fields a plan does not know (`compile`) always run on the schema.

mod compile;
mod load;
mod rows;
mod shape;
mod write;

use async_graphql::Variables;
use async_graphql::parser::parse_query;
use async_graphql::parser::types::OperationType;
use rapport_engine::crm::filters::Evaluation;
use rapport_engine::platform::auth::Principal;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use compile::Plan;

use crate::graphql::cost_budget::CostBudget;

/// Distinct documents whose plans (or the lack of one) are kept; past it, the half used
/// least recently is forgotten.
const MAX_DOCUMENTS: usize = 1_000;
/// And their bytes in all (a plan's counted at a generous 64 bytes a unit).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// Shapes of documents with plans that are kept; past it, they are learned anew.
const MAX_SHAPES: usize = 1_000;

/// Why a request goes to the schema after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Before the key's budget was charged: the schema charges it.
    NotCharged,
    /// After: the schema must not charge it again.
    Charged,
}

/// The plans of documents seen, by document and operation name.
pub struct Plans {
    known: RwLock<Known>,
    /// Shapes ([`shape`]) of the documents with plans.
    shapes: RwLock<std::collections::HashSet<String>>,
    /// Counts lookups, to tell which documents were used last.
    clock: AtomicU64,
    budget: CostBudget,
}

/// Each operation name of a document (`None`: none given) with its plan, if it has one.
type Operations = Vec<(Option<Box<str>>, Option<Arc<Plan>>)>;

struct Entry {
    operations: Operations,
    bytes: usize,
    used: AtomicU64,
}

#[derive(Default)]
struct Known {
    by_document: HashMap<Arc<str>, Entry>,
    bytes: usize,
}

impl Plans {
    /// No plans yet; requests charge `budget`, as the schema's own do.
    pub fn new(budget: CostBudget) -> Self {
        Plans {
            known: RwLock::default(),
            shapes: RwLock::default(),
            clock: AtomicU64::new(0),
            budget,
        }
    }

    /// The plan of `document`'s `operation`, if it has run on the schema and has one.
    pub fn get(&self, document: &str, operation: Option<&str>) -> Option<Arc<Plan>> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let entry = known.by_document.get(document)?;
        entry.used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        entry
            .operations
            .iter()
            .find(|(op, _)| op.as_deref() == operation)
            .and_then(|(_, plan)| plan.clone())
    }

    /// Notes that `document`'s `operation` passed the schema's validation: a query gets
    /// its plan, or is remembered as having none (mutations are not kept).
    pub fn learn(&self, document: &str, operation: Option<&str>) {
        {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            if known.by_document.get(document).is_some_and(|entry| {
                entry
                    .operations
                    .iter()
                    .any(|(op, _)| op.as_deref() == operation)
            }) {
                return;
            }
        }
        let Ok(doc) = parse_query(document) else {
            return;
        };
        let is_query = doc.operations.iter().any(|(name, op)| {
            op.node.ty == OperationType::Query
                && operation.is_none_or(|wanted| name.is_some_and(|n| n.as_str() == wanted))
        });
        if !is_query {
            return;
        }
        let plan = compile::compile(&doc, operation).map(Arc::new);
        if plan.is_some()
            && let Some(shape) = shape::of(&doc)
        {
            let mut shapes = self.shapes.write().unwrap_or_else(|e| e.into_inner());
            if shapes.len() >= MAX_SHAPES {
                shapes.clear();
            }
            shapes.insert(shape);
        }
        let bytes = document.len() + plan.as_ref().map_or(0, |p| p.units * 64);
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.by_document.len() >= MAX_DOCUMENTS || known.bytes + bytes > MAX_BYTES {
            known.forget_least_used();
        }
        known.bytes += bytes;
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let entry = known
            .by_document
            .entry(Arc::from(document))
            .or_insert_with(|| Entry {
                operations: Vec::new(),
                bytes: 0,
                used: AtomicU64::new(now),
            });
        entry.bytes += bytes;
        entry.operations.push((operation.map(Box::from), plan));
    }

    /// A plan for `doc`, a text not seen before, when the schema has run a document of its
    /// shape: the same document with other values written into its arguments.
    pub fn for_shape(
        &self,
        doc: &async_graphql::parser::types::ExecutableDocument,
        operation: Option<&str>,
    ) -> Option<Arc<Plan>> {
        let shape = shape::of(doc)?;
        let known = self
            .shapes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&shape);
        known
            .then(|| compile::compile(doc, operation))
            .flatten()
            .map(Arc::new)
    }

    /// The answer of `plan` for `who` with `variables`: the JSON body, or why the schema
    /// must answer instead.
    pub async fn answer(
        &self,
        db: &DatabaseConnection,
        who: &Principal,
        plan: &Plan,
        variables: &Variables,
    ) -> Result<Vec<u8>, Fallback> {
        let limit = Limit {
            complexity: crate::graphql::MAX_COMPLEXITY,
            budget: Some(&self.budget),
        };
        run(db, who, plan, variables, limit).await
    }
}

impl Known {
    /// Forgets the half of the documents used least recently, so a flood of new ones
    /// cannot push out those in steady use.
    fn forget_least_used(&mut self) {
        let mut used: Vec<u64> = self
            .by_document
            .values()
            .map(|e| e.used.load(Ordering::Relaxed))
            .collect();
        used.sort_unstable();
        let Some(&median) = used.get(used.len() / 2) else {
            return;
        };
        self.by_document
            .retain(|_, e| e.used.load(Ordering::Relaxed) > median);
        self.bytes = self.by_document.values().map(|e| e.bytes).sum();
    }
}

/// The plan of a parsed document's only operation, if it has one. For documents the
/// schema has validated already (a plugin's input query, checked when it was registered).
pub fn of_document(doc: &async_graphql::parser::types::ExecutableDocument) -> Option<Plan> {
    compile::compile(doc, None)
}

/// What a planned request may cost: the schema's complexity limit, and the key's budget
/// when it has one (plugins' input queries have none).
pub struct Limit<'a> {
    pub complexity: usize,
    pub budget: Option<&'a CostBudget>,
}

/// Runs `plan` for `who`: the JSON body, or why the schema must answer instead.
pub async fn run(
    db: &DatabaseConnection,
    who: &Principal,
    plan: &Plan,
    variables: &Variables,
    limit: Limit<'_>,
) -> Result<Vec<u8>, Fallback> {
    let reads = load::Reads {
        db,
        workspace_id: who.workspace_id,
        at: Evaluation::new(who.workspace_id, rapport_engine::clock::now()),
        plan,
        variables,
    };
    let cost = reads.cost().map_err(|_| Fallback::NotCharged)?;
    if cost > limit.complexity
        || limit
            .budget
            .is_some_and(|b| !b.spend((who.workspace_id, who.key_id), cost))
    {
        // The schema refuses it, with its own words.
        return Err(Fallback::NotCharged);
    }
    // Paid for now: whatever sends it to the schema, the schema must not charge again.
    let loaded = reads.roots().await.map_err(|_| Fallback::Charged)?;
    Ok(write::response(plan, &loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan's complexity is the schema's, as its analyser counts it, for any variables.
    #[tokio::test]
    async fn plans_cost_what_the_schema_counts() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        let schema = crate::graphql::build_for_plugins(
            db.clone(),
            Arc::new(crate::keys::VerifiedKeys::new(std::time::Duration::ZERO)),
            crate::graphql::PublicUrl("http://localhost".into()),
        );
        let page = "query($n: Int, $f: ContactFilter) { __typename contacts(first: $n, filter: $f) { __typename pageInfo { hasNextPage __typename endCursor } edges { __typename cursor node { __typename id name company { name contacts(first: 3, filter: {email: {contains: \"a\"}}) { nodes { id } } } deals(filter: {status: {eq: OPEN}}) { edges { node { name stage { name } } } } activities(first: $n) { nodes { kind } } } } } }";
        let cases = [
            (page, serde_json::json!({})),
            (page, serde_json::json!({"n": 7})),
            (
                page,
                serde_json::json!({"n": 50, "f": {"lifecycleStage": {"eq": "LEAD"}, "or": [{"email": {"contains": "x"}}, {"tags": {"has": "vip"}}], "company": {"name": {"contains": "a"}}, "deals": {"status": {"eq": "WON"}}}}),
            ),
            (
                "query($id: ID!) { contact(id: $id) { id tags company { name } } deal(id: 3) { amount } }",
                serde_json::json!({"id": "5"}),
            ),
            (
                "{ companies(last: 9) { edges { node { deals(first: 4) { nodes { id } } } } } deals { nodes { contact { name } } } }",
                serde_json::json!({}),
            ),
        ];
        for (query, variables) in cases {
            let doc = parse_query(query).expect("parses");
            let plan = compile::compile(&doc, None).expect("a plan");
            let variables = Variables::from_json(variables);
            let reads = load::Reads {
                db: &db,
                workspace_id: 1,
                at: Evaluation::new(1, rapport_engine::clock::now()),
                plan: &plan,
                variables: &variables,
            };
            let ours = reads.cost().expect("a cost");
            let who = Principal::acting_for(1, rapport_engine::values::Scope::Read);
            let request = async_graphql::Request::new(query).variables(variables.clone());
            let (request, dispatcher) = crate::graphql::with_loaders(request, &db, who);
            // The database has no tables: the reads fail, the count is made before them.
            let response = dispatcher.drive(schema.execute(request)).await;
            let theirs = serde_json::to_value(&response.extensions).expect("extensions")
                ["analyzer"]["complexity"]
                .as_u64()
                .expect("the analyser's count");
            assert_eq!(ours as u64, theirs, "{query} with {variables:?}");
        }
    }
}
