//! Batched loading: every relation a page of results asks for is fetched with one
//! statement per relation, however many rows the page has.

use crate::error::to_graphql;
use crate::graphql::batching::Dispatcher;
use async_graphql::dataloader::{DataLoader, Loader};
use rapport_engine::platform::pagination::{self, Page, SortKeys};
use rapport_engine::platform::records::{self, Deleted, Record};
use rapport_schema as s;
use sea_orm::{DatabaseConnection, EntityTrait, ModelTrait, QueryFilter, Select};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rows of `E` by id, within one workspace.
pub struct ById<E> {
    db: DatabaseConnection,
    workspace_id: i64,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Record> Loader<i64> for ById<E>
where
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    type Value = E::Model;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, E::Model>, Self::Error> {
        // Soft-deleted rows still resolve through references (a deal's deleted contact
        // is history, not a dangling pointer); lists hide them.
        let rows = records::scoped::<E>(self.workspace_id, Deleted::Include)
            .filter(pagination::among(
                self.db.get_database_backend(),
                E::id_col(),
                keys,
            ))
            .all(&self.db)
            .await
            .map_err(|e| to_graphql(e.into()))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match r.get(E::id_col()) {
                sea_orm::Value::BigInt(Some(id)) => Some((id, r)),
                _ => None,
            })
            .collect())
    }
}

/// How one nested list is cut: which foreign key, which rows, which order, how many.
pub struct ChildSpec<E: EntityTrait> {
    /// The column pointing at the parent.
    pub fk: E::Column,
    /// The rows (workspace, deletion and client filter already applied).
    pub select: Select<E>,
    /// Sort keys with the id tiebreaker.
    pub keys: SortKeys<E>,
    /// Rows per parent.
    pub first: usize,
}

/// A spec's identity: equal specs from sibling rows batch together.
pub fn spec_id(description: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    description.hash(&mut h);
    h.finish()
}

/// The first page of a nested list for many parents at once.
pub struct Children<E: EntityTrait> {
    db: DatabaseConnection,
    specs: Mutex<HashMap<u64, Arc<ChildSpec<E>>>>,
}

impl<E: EntityTrait> Children<E> {
    /// Makes `spec` known under `id` before a load names it; the first one registered
    /// under an id stays.
    pub fn register(&self, id: u64, spec: ChildSpec<E>) {
        self.specs
            .lock()
            .expect("spec lock")
            .entry(id)
            .or_insert_with(|| Arc::new(spec));
    }

    /// Whether a spec is known under `id`.
    pub fn knows(&self, id: u64) -> bool {
        self.specs.lock().expect("spec lock").contains_key(&id)
    }

    fn spec(&self, id: u64) -> Option<Arc<ChildSpec<E>>> {
        self.specs.lock().expect("spec lock").get(&id).cloned()
    }
}

fn group(keys: &[(i64, u64)]) -> HashMap<u64, Vec<i64>> {
    let mut by_spec: HashMap<u64, Vec<i64>> = HashMap::new();
    for (parent, spec) in keys {
        by_spec.entry(*spec).or_default().push(*parent);
    }
    by_spec
}

impl<E: EntityTrait> Loader<(i64, u64)> for Children<E>
where
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    type Value = Arc<Page<E::Model>>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[(i64, u64)],
    ) -> Result<HashMap<(i64, u64), Self::Value>, Self::Error> {
        let mut out = HashMap::new();
        for (spec_key, parents) in group(keys) {
            let spec = self
                .spec(spec_key)
                .ok_or_else(|| async_graphql::Error::new("internal error"))?;
            let mut pages = pagination::first_per_parent(
                &self.db,
                spec.select.clone(),
                spec.fk,
                &parents,
                &spec.keys,
                spec.first,
            )
            .await
            .map_err(to_graphql)?;
            for p in parents {
                let page = pages.remove(&p).unwrap_or_else(Page::empty);
                out.insert((p, spec_key), Arc::new(page));
            }
        }
        Ok(out)
    }
}

/// The foreign key and the rows to count of one nested list.
type CountSpec<E> = (<E as EntityTrait>::Column, Select<E>);

/// Row counts of a nested list for many parents at once.
pub struct ChildCounts<E: EntityTrait> {
    db: DatabaseConnection,
    specs: Mutex<HashMap<u64, CountSpec<E>>>,
}

impl<E: EntityTrait> ChildCounts<E> {
    /// Makes the rows to count known under `id` before a load names it; the first one
    /// registered under an id stays.
    pub fn register(&self, id: u64, fk: E::Column, select: Select<E>) {
        self.specs
            .lock()
            .expect("spec lock")
            .entry(id)
            .or_insert((fk, select));
    }
}

impl<E: EntityTrait> Loader<(i64, u64)> for ChildCounts<E>
where
    E::Model: Send + Sync,
{
    type Value = u64;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[(i64, u64)]) -> Result<HashMap<(i64, u64), u64>, Self::Error> {
        let mut out = HashMap::new();
        for (spec_key, parents) in group(keys) {
            let spec = self
                .specs
                .lock()
                .expect("spec lock")
                .get(&spec_key)
                .cloned();
            let (fk, select) = spec.ok_or_else(|| async_graphql::Error::new("internal error"))?;
            let counts = pagination::count_per_parent(&self.db, select, fk, &parents)
                .await
                .map_err(to_graphql)?;
            for p in parents {
                out.insert((p, spec_key), counts.get(&p).copied().unwrap_or(0));
            }
        }
        Ok(out)
    }
}

fn by_id<E>(d: &Dispatcher, db: &DatabaseConnection, ws: i64) -> DataLoader<ById<E>>
where
    E: Record,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    DataLoader::new(
        ById {
            db: db.clone(),
            workspace_id: ws,
            _entity: PhantomData,
        },
        d.spawner(),
    )
    .delay(Duration::ZERO)
}

fn children<E>(d: &Dispatcher, db: &DatabaseConnection) -> DataLoader<Children<E>>
where
    E: EntityTrait,
    E::Model: ModelTrait<Entity = E> + Clone + Send + Sync,
{
    DataLoader::new(
        Children {
            db: db.clone(),
            specs: Mutex::default(),
        },
        d.spawner(),
    )
    .delay(Duration::ZERO)
}

fn counts<E>(d: &Dispatcher, db: &DatabaseConnection) -> DataLoader<ChildCounts<E>>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    DataLoader::new(
        ChildCounts {
            db: db.clone(),
            specs: Mutex::default(),
        },
        d.spawner(),
    )
    .delay(Duration::ZERO)
}

/// Adds one request's loaders to its data; they live as long as the request, so nothing
/// cached crosses requests or workspaces. Their loads are dispatched by `d`.
pub fn attach(
    request: async_graphql::Request,
    d: &Dispatcher,
    db: &DatabaseConnection,
    ws: i64,
) -> async_graphql::Request {
    request
        .data(by_id::<s::company::Entity>(d, db, ws))
        .data(by_id::<s::contact::Entity>(d, db, ws))
        .data(by_id::<s::user::Entity>(d, db, ws))
        .data(by_id::<s::team::Entity>(d, db, ws))
        .data(by_id::<s::pipeline::Entity>(d, db, ws))
        .data(by_id::<s::stage::Entity>(d, db, ws))
        .data(by_id::<s::deal::Entity>(d, db, ws))
        .data(by_id::<s::product::Entity>(d, db, ws))
        .data(children::<s::contact::Entity>(d, db))
        .data(children::<s::deal::Entity>(d, db))
        .data(children::<s::activity::Entity>(d, db))
        .data(children::<s::task::Entity>(d, db))
        .data(children::<s::inquiry::Entity>(d, db))
        .data(children::<s::order::Entity>(d, db))
        .data(children::<s::event::Entity>(d, db))
        .data(children::<s::stage::Entity>(d, db))
        .data(children::<s::deal_stage_change::Entity>(d, db))
        .data(children::<s::order_line::Entity>(d, db))
        .data(children::<s::user::Entity>(d, db))
        .data(children::<s::contact_merge::Entity>(d, db))
        .data(Arc::new(counts::<s::contact::Entity>(d, db)))
        .data(Arc::new(counts::<s::deal::Entity>(d, db)))
        .data(Arc::new(counts::<s::activity::Entity>(d, db)))
        .data(Arc::new(counts::<s::task::Entity>(d, db)))
        .data(Arc::new(counts::<s::inquiry::Entity>(d, db)))
        .data(Arc::new(counts::<s::order::Entity>(d, db)))
        .data(Arc::new(counts::<s::event::Entity>(d, db)))
        .data(Arc::new(counts::<s::user::Entity>(d, db)))
}
