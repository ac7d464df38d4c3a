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
mod write;

use async_graphql::Variables;
use async_graphql::parser::parse_query;
use rapport_engine::crm::filters::Evaluation;
use rapport_engine::platform::auth::Principal;
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use compile::Plan;

use crate::graphql::cost_budget::CostBudget;

/// Distinct documents whose plans (or the lack of one) are kept; past it the cache
/// starts again.
const MAX_DOCUMENTS: usize = 1_000;
/// And their bytes in all.
const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

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
    budget: CostBudget,
}

/// Each operation name of a document (`None`: its only one) with its plan, if it has one.
type Operations = Vec<(Option<Box<str>>, Option<Arc<Plan>>)>;

#[derive(Default)]
struct Known {
    by_document: HashMap<Arc<str>, Operations>,
    documents: usize,
    bytes: usize,
}

impl Plans {
    /// No plans yet; requests charge `budget`, as the schema's own do.
    pub fn new(budget: CostBudget) -> Self {
        Plans {
            known: RwLock::default(),
            budget,
        }
    }

    /// The plan of `document`'s `operation`, if it has run on the schema and has one.
    pub fn get(&self, document: &str, operation: Option<&str>) -> Option<Arc<Plan>> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known
            .by_document
            .get(document)?
            .iter()
            .find(|(op, _)| op.as_deref() == operation)
            .and_then(|(_, plan)| plan.clone())
    }

    /// Notes that `document`'s `operation` passed the schema's validation: it gets its
    /// plan, or is remembered as having none.
    pub fn learn(&self, document: &str, operation: Option<&str>) {
        {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            if known
                .by_document
                .get(document)
                .is_some_and(|ops| ops.iter().any(|(op, _)| op.as_deref() == operation))
            {
                return;
            }
        }
        let plan = parse_query(document)
            .ok()
            .and_then(|doc| compile::compile(&doc, operation))
            .map(Arc::new);
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if known.documents >= MAX_DOCUMENTS || known.bytes + document.len() > MAX_DOCUMENT_BYTES {
            *known = Known::default();
        }
        known.documents += 1;
        known.bytes += document.len();
        known
            .by_document
            .entry(Arc::from(document))
            .or_default()
            .push((operation.map(Box::from), plan));
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
        let reads = load::Reads {
            db,
            workspace_id: who.workspace_id,
            at: Evaluation::new(who.workspace_id, rapport_engine::clock::now()),
            plan,
            variables,
        };
        let cost = reads.cost()?;
        if cost > crate::graphql::MAX_COMPLEXITY
            || !self.budget.spend((who.workspace_id, who.key_id), cost)
        {
            // The schema refuses it, with its own words.
            return Err(Fallback::NotCharged);
        }
        // Paid for now: whatever sends it to the schema, the schema must not charge again.
        let loaded = reads.roots().await.map_err(|_| Fallback::Charged)?;
        Ok(write::response(plan, &loaded))
    }
}
