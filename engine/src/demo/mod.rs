//! Realistic, deterministic synthetic data for demos and benchmarks.
//!
//! The same sizes always produce the same rows (a seeded generator), so a benchmark run
//! is comparable with the last one. Rows are written in batched multi-row inserts.

pub mod showcase;

use crate::clock;
use crate::crm::deals;
use crate::crm::workspaces::{self, NewWorkspace};
use crate::error::Result;
use crate::intelligence::models::logistic::sigmoid;
use crate::platform::auth::Principal;
use crate::values::{ActivityKind, DealStatus, Direction, LifecycleStage, UserRole};
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_schema as s;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::json;

/// How much data to make.
#[derive(Clone, Debug)]
pub struct DemoSize {
    /// Contacts; the other counts default to multiples of this.
    pub contacts: u64,
    /// Companies.
    pub companies: u64,
    /// Deals.
    pub deals: u64,
    /// Activities.
    pub activities: u64,
}

impl DemoSize {
    /// Sizes derived from a contact count: a company per 10 contacts, a deal per 2,
    /// 10 activities per contact.
    pub fn for_contacts(contacts: u64) -> Self {
        Self {
            contacts,
            companies: (contacts / 10).max(1),
            deals: contacts / 2,
            activities: contacts * 10,
        }
    }

    /// Rows in all, for a progress bar.
    pub fn total(&self) -> u64 {
        self.contacts
            + self.companies
            + self.deals
            + self.activities
            + self.contacts / 5
            + self.contacts / 2
    }
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "John",
    "Hedy",
    "Niklaus",
    "Sophie",
    "Guido",
    "Anita",
    "Bjarne",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Lamarr",
    "Wirth",
    "Wilson",
    "van Rossum",
    "Borg",
    "Stroustrup",
];
const INDUSTRIES: &[&str] = &[
    "Software",
    "Retail",
    "Manufacturing",
    "Healthcare",
    "Finance",
    "Education",
    "Logistics",
    "Media",
];
const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "NL", "SE", "ES", "CA", "AU", "JP"];
const SOURCES: &[&str] = &[
    "web",
    "referral",
    "event",
    "paid_search",
    "social",
    "outbound",
];
const TAGS: &[&str] = &["vip", "newsletter", "trial", "enterprise", "smb", "partner"];
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
];
const PLANS: &[&str] = &["free", "pro", "enterprise"];
/// Products as (sku, name, price, category); neighbours (0 and 1, 2 and 3, ...) are
/// bought together.
const CATALOG: &[(&str, &str, f64, &str)] = &[
    ("PRO-1", "Pro plan", 49.0, "plans"),
    ("ONB-1", "Onboarding session", 150.0, "services"),
    ("TEAM-1", "Team plan", 99.0, "plans"),
    ("TRN-1", "Training workshop", 300.0, "services"),
    ("API-1", "API add-on", 19.0, "add-ons"),
    ("SSO-1", "SSO add-on", 29.0, "add-ons"),
    ("STO-1", "Extra storage", 9.0, "add-ons"),
    ("SUP-1", "Priority support", 59.0, "services"),
];
const BATCH: usize = 500;

/// One contact's hidden traits, decided before any row is written.
struct Plan {
    warmth: f64,
    source: &'static str,
    company_id: i64,
    created_at: DateTime<Utc>,
    converted_at: Option<DateTime<Utc>>,
}

/// One deal's traits.
struct DealPlan {
    owner: usize,
    amount_minor: i64,
    open_stage: i64,
    contact: usize,
    created: DateTime<Utc>,
    status: DealStatus,
    closed_at: Option<DateTime<Utc>>,
}

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

async fn ids<E: crate::platform::records::Record>(
    db: &impl ConnectionTrait,
    ws: i64,
) -> Result<Vec<i64>> {
    Ok(E::find()
        .select_only()
        .column(E::id_col())
        .filter(E::workspace_col().eq(ws))
        .order_by_asc(E::id_col())
        .into_tuple::<i64>()
        .all(db)
        .await?)
}

/// Creates a workspace named `name` and fills it; `progress` is called with the number
/// of rows written so far.
pub async fn seed(
    db: &DatabaseConnection,
    name: &str,
    size: &DemoSize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<NewWorkspace> {
    let created = workspaces::create(db, name).await?;
    let ws = created.workspace.id;
    let who = Principal::owner(ws);
    let mut rng = StdRng::seed_from_u64(0x5241_5050);
    let now = clock::now();
    let mut done = 0u64;

    // The team.
    let team = crate::crm::team::create_team(db, &who, "Sales").await?;
    let mut users = Vec::new();
    for (i, role) in [
        UserRole::Admin,
        UserRole::Manager,
        UserRole::Member,
        UserRole::Member,
        UserRole::Member,
    ]
    .iter()
    .enumerate()
    {
        let u = s::user::ActiveModel {
            workspace_id: Set(ws),
            team_id: Set(Some(team.id)),
            name: Set(format!("{} {}", FIRST[i], LAST[i + 5])),
            email: Set(format!("user{i}@rapport.example")),
            role: Set(role.as_str().to_string()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await?;
        users.push(u.id);
    }

    // Companies.
    let tx = crate::platform::db::write(db).await?;
    for chunk in (0..size.companies).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk.iter().map(|&i| s::company::ActiveModel {
            workspace_id: Set(ws),
            name: Set(format!(
                "{} {}",
                pick(&mut rng, LAST),
                ["Labs", "Systems", "GmbH", "Inc", "Group"][(i % 5) as usize]
            )),
            domain: Set(Some(format!("company{i}.example"))),
            industry: Set(Some(pick(&mut rng, INDUSTRIES).to_string())),
            size: Set(Some(rng.random_range(2..5000))),
            country: Set(Some(pick(&mut rng, COUNTRIES).to_string())),
            owner_id: Set(Some(users[(i as usize) % users.len()])),
            created_at: Set(now - Duration::days(rng.random_range(30..900))),
            updated_at: Set(now),
            ..Default::default()
        });
        s::company::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
        done += chunk.len() as u64;
        progress(done);
    }

    // Contacts. Each gets a hidden "warmth" that drives how recently and how often they
    // engage and, with their source and company size, whether they become customers; the
    // built-in models are tested on recovering exactly these effects.
    let company_sizes: Vec<(i64, i32)> = s::company::Entity::find()
        .select_only()
        .column(s::company::Column::Id)
        .column(s::company::Column::Size)
        .filter(s::company::Column::WorkspaceId.eq(ws))
        .order_by_asc(s::company::Column::Id)
        .into_tuple::<(i64, Option<i32>)>()
        .all(&tx)
        .await?
        .into_iter()
        .map(|(id, size)| (id, size.unwrap_or(0)))
        .collect();
    let plans: Vec<Plan> = (0..size.contacts)
        .map(|_| {
            let warmth: f64 = rng.random();
            let source = pick(&mut rng, SOURCES);
            let (company_id, company_size) =
                company_sizes[rng.random_range(0..company_sizes.len())];
            let created_at = now - Duration::minutes(rng.random_range(60..500_000));
            let z = -3.2
                + 3.0 * warmth
                + if source == "referral" { 1.2 } else { 0.0 }
                + if company_size > 1000 { 0.6 } else { 0.0 };
            let converted_at = (rng.random::<f64>() < sigmoid(z)).then(|| {
                let span = (now - created_at).num_minutes().max(1);
                created_at + Duration::minutes(rng.random_range(0..span))
            });
            Plan {
                warmth,
                source,
                company_id,
                created_at,
                converted_at,
            }
        })
        .collect();
    for chunk in (0..size.contacts).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk.iter().map(|&i| {
            let plan = &plans[i as usize];
            let first = pick(&mut rng, FIRST);
            let last = pick(&mut rng, LAST);
            let tag_count = rng.random_range(0..3);
            let tags: Vec<&str> = (0..tag_count)
                .map(|k| TAGS[(i as usize + k * 3) % TAGS.len()])
                .collect();
            let lifecycle = match plan.converted_at {
                Some(_) if rng.random_bool(0.2) => LifecycleStage::Churned,
                Some(_) => LifecycleStage::Customer,
                None => [
                    LifecycleStage::Lead,
                    LifecycleStage::Qualified,
                    LifecycleStage::Opportunity,
                    LifecycleStage::Lost,
                ][rng.random_range(0..4)],
            };
            // insert_many skips the entity's save hook, so the hash is set here.
            let email = format!(
                "{}.{}.{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace(' ', "")
            );
            s::contact::ActiveModel {
                workspace_id: Set(ws),
                first_name: Set(first.to_string()),
                last_name: Set(last.to_string()),
                email: Set(Some(email.clone())),
                email_hash: Set(Some(s::contact::email_hash(&email))),
                other_emails: Set(json!([])),
                phone: Set(Some(format!("+1 555 {:07}", i))),
                phone_normalized: Set(Some(format!("+1555{:07}", i))),
                company_id: Set(Some(plan.company_id)),
                owner_id: Set(Some(users[(i as usize) % users.len()])),
                lifecycle_stage: Set(lifecycle.as_str().to_string()),
                source: Set(Some(plan.source.to_string())),
                tags: Set(json!(tags)),
                attributes: Set(
                    json!({"plan": PLANS[(i % 3) as usize], "seats": rng.random_range(1..200)}),
                ),
                timezone: Set(Some(pick(&mut rng, ZONES).to_string())),
                merged_into_id: Set(None),
                created_at: Set(plan.created_at),
                updated_at: Set(now),
                ..Default::default()
            }
        });
        s::contact::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
        done += chunk.len() as u64;
        progress(done);
    }
    let contacts = ids::<s::contact::Entity>(&tx, ws).await?;
    // Tag rows mirror the JSON lists.
    let tagged: Vec<(i64, serde_json::Value)> = s::contact::Entity::find()
        .select_only()
        .column(s::contact::Column::Id)
        .column(s::contact::Column::Tags)
        .filter(s::contact::Column::WorkspaceId.eq(ws))
        .into_tuple()
        .all(&tx)
        .await?;
    let mut tag_rows = Vec::new();
    for (id, tags) in tagged {
        for t in tags
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str())
        {
            tag_rows.push(s::contact_tag::ActiveModel {
                contact_id: Set(id),
                tag: Set(t.to_string()),
                workspace_id: Set(ws),
            });
        }
    }
    for chunk in tag_rows.chunks(BATCH) {
        s::contact_tag::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await?;
    }
    tx.commit().await?;

    // Deals with their stage history.
    let pipeline = s::pipeline::Entity::find()
        .filter(s::pipeline::Column::WorkspaceId.eq(ws))
        .one(db)
        .await?
        .expect("workspace has a pipeline");
    let stage_rows = deals::stages_of(db, ws, pipeline.id).await?;
    let open_stages: Vec<&s::stage::Model> = stage_rows
        .iter()
        .filter(|s| !s.is_won && !s.is_lost)
        .collect();
    let won_stage = stage_rows.iter().find(|s| s.is_won).expect("a won stage");
    let lost_stage = stage_rows.iter().find(|s| s.is_lost).expect("a lost stage");
    let converters: Vec<usize> = (0..plans.len())
        .filter(|&i| plans[i].converted_at.is_some())
        .collect();
    // Deals close as won more often when they are small and when their owner is one of
    // the stronger reps: the win-probability model is tested on finding that.
    let skill = [0.8, 0.3, 0.0, -0.3, -0.8];
    let deal_plans: Vec<DealPlan> = (0..size.deals)
        .map(|i| {
            let owner = (i as usize) % users.len();
            let amount_minor: i64 = rng.random_range(10..5000) * 10_000;
            let open_stage = open_stages[rng.random_range(0..open_stages.len())].id;
            let dollars = amount_minor as f64 / 100.0;
            let p_win = sigmoid(0.4 - 1.5 * (dollars.log10() - 4.0) + skill[owner % skill.len()]);
            // Half the open and lost deals are with people who buy at some point, so a
            // deal's outcome is not given away by who it is with.
            let mut contact = if rng.random_bool(0.5) && !converters.is_empty() {
                converters[rng.random_range(0..converters.len())]
            } else {
                rng.random_range(0..plans.len())
            };
            let mut created = now - Duration::days(rng.random_range(1..400));
            let status = if rng.random_bool(0.4) {
                DealStatus::Open
            } else if rng.random::<f64>() < p_win && !converters.is_empty() {
                DealStatus::Won
            } else {
                DealStatus::Lost
            };
            let closed_at = match status {
                // Deals that are still open are young.
                DealStatus::Open => {
                    created = now - Duration::days(rng.random_range(1..90));
                    None
                }
                // A won deal is how its contact converted.
                DealStatus::Won => {
                    contact = converters[rng.random_range(0..converters.len())];
                    let closed = plans[contact].converted_at.expect("a converter");
                    created = closed - Duration::days(rng.random_range(5..90));
                    Some(closed)
                }
                DealStatus::Lost => {
                    Some((created + Duration::days(rng.random_range(5..90))).min(now))
                }
            };
            DealPlan {
                owner,
                amount_minor,
                open_stage,
                contact,
                created,
                status,
                closed_at,
            }
        })
        .collect();
    let tx = crate::platform::db::write(db).await?;
    for chunk in (0..size.deals).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk.iter().map(|&i| {
            let plan = &deal_plans[i as usize];
            let stage = match plan.status {
                DealStatus::Open => plan.open_stage,
                DealStatus::Won => won_stage.id,
                DealStatus::Lost => lost_stage.id,
            };
            s::deal::ActiveModel {
                workspace_id: Set(ws),
                name: Set(format!("Deal {i}")),
                contact_id: Set(Some(contacts[plan.contact])),
                company_id: Set(Some(plans[plan.contact].company_id)),
                pipeline_id: Set(pipeline.id),
                stage_id: Set(stage),
                amount_minor: Set(plan.amount_minor),
                currency: Set("USD".into()),
                expected_close_date: Set(Some(
                    (plan.created + Duration::days(rng.random_range(20..120))).date_naive(),
                )),
                owner_id: Set(Some(users[plan.owner])),
                status: Set(plan.status.as_str().into()),
                lost_reason: Set((plan.status == DealStatus::Lost).then(|| "price".to_string())),
                competitor: Set(None),
                closed_at: Set(plan.closed_at),
                created_at: Set(plan.created),
                updated_at: Set(now),
                deleted_at: Set(None),
                ..Default::default()
            }
        });
        s::deal::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
        done += chunk.len() as u64;
        progress(done);
    }
    let deal_ids = ids::<s::deal::Entity>(&tx, ws).await?;
    let mut history = Vec::new();
    for (plan, &id) in deal_plans.iter().zip(&deal_ids) {
        let change = |from: Option<i64>, to: i64, at| s::deal_stage_change::ActiveModel {
            workspace_id: Set(ws),
            deal_id: Set(id),
            from_stage_id: Set(from),
            to_stage_id: Set(to),
            moved_at: Set(at),
            moved_by_key_id: Set(None),
            moved_by_user_id: Set(None),
            ..Default::default()
        };
        // The deal walks the open stages in order up to where it stands (won deals went
        // through all of them), spending equal time in each; then it closes.
        let reached = if plan.status == DealStatus::Won {
            open_stages.len() - 1
        } else {
            open_stages
                .iter()
                .position(|s| s.id == plan.open_stage)
                .expect("an open stage")
        };
        let end = plan.closed_at.unwrap_or(now);
        let step = (end - plan.created) / (reached as i32 + 2);
        let mut from = None;
        for (k, stage) in open_stages[..=reached].iter().enumerate() {
            history.push(change(from, stage.id, plan.created + step * k as i32));
            from = Some(stage.id);
        }
        if let Some(closed) = plan.closed_at {
            let outcome = if plan.status == DealStatus::Won {
                won_stage.id
            } else {
                lost_stage.id
            };
            history.push(change(from, outcome, closed));
        }
    }
    for chunk in history.chunks(BATCH) {
        s::deal_stage_change::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await?;
    }
    tx.commit().await?;

    // Activities, in several transactions so a large seed does not hold one forever.
    let kinds = ActivityKind::ALL;
    let mut written = 0u64;
    while written < size.activities {
        let tx = crate::platform::db::write(db).await?;
        let end = (written + 20 * BATCH as u64).min(size.activities);
        for chunk in (written..end).collect::<Vec<_>>().chunks(BATCH) {
            let rows = chunk.iter().map(|&i| {
                let person = (i as usize) % contacts.len();
                let warmth = plans[person].warmth;
                // Warm contacts meet more, and their touches crowd towards the present.
                let kind = if rng.random::<f64>() < 0.4 * warmth {
                    ActivityKind::Meeting
                } else {
                    kinds[rng.random_range(0..kinds.len())]
                };
                let plan = &plans[person];
                // Buyers engage in the months before they buy, so most of a converter's
                // touches fall in the 150 days up to the conversion.
                let age = match plan.converted_at {
                    Some(at) if rng.random_bool(0.7) => {
                        ((now - at).num_minutes() + rng.random_range(0..150 * 1440)) as f64
                    }
                    _ => 500_000.0 * rng.random::<f64>().powf(1.0 + 3.0 * warmth),
                }
                .min((now - plan.created_at).num_minutes() as f64);
                s::activity::ActiveModel {
                    workspace_id: Set(ws),
                    kind: Set(kind.as_str().to_string()),
                    direction: Set(Some(
                        if rng.random_bool(0.5) {
                            Direction::Inbound
                        } else {
                            Direction::Outbound
                        }
                        .as_str()
                        .to_string(),
                    )),
                    subject: Set(Some(format!("{} #{i}", kind.as_str()))),
                    body: Set(Some("Talked about next steps.".into())),
                    occurred_at: Set(now - Duration::minutes(1 + age as i64)),
                    contact_id: Set(Some(contacts[person])),
                    deal_id: Set(None),
                    author_id: Set(Some(users[(i as usize) % users.len()])),
                    created_at: Set(now),
                    updated_at: Set(now),
                    deleted_at: Set(None),
                    ..Default::default()
                }
            });
            s::activity::Entity::insert_many(rows)
                .exec_without_returning(&tx)
                .await?;
            done += chunk.len() as u64;
            progress(done);
        }
        tx.commit().await?;
        written = end;
    }

    // Tasks and orders.
    let tx = crate::platform::db::write(db).await?;
    let mut catalog = Vec::new();
    for (sku, name, price, category) in CATALOG {
        catalog.push(
            crate::crm::commerce::create_product(
                &tx,
                &who,
                crate::crm::commerce::ProductInput {
                    sku: Some(sku.to_string()),
                    name: Some(name.to_string()),
                    price: Some(*price),
                    category: crate::values::Patch::Set(category.to_string()),
                    ..Default::default()
                },
            )
            .await?,
        );
    }
    for chunk in (0..size.contacts / 5).collect::<Vec<_>>().chunks(BATCH) {
        let rows = chunk.iter().map(|&i| s::task::ActiveModel {
            workspace_id: Set(ws),
            title: Set(format!("Follow up #{i}")),
            due_at: Set(Some(now + Duration::days(rng.random_range(-10..30)))),
            status: Set(if i.is_multiple_of(3) { "done" } else { "open" }.into()),
            assignee_id: Set(Some(users[(i as usize) % users.len()])),
            contact_id: Set(Some(contacts[(i as usize * 5) % contacts.len()])),
            deal_id: Set(None),
            completed_at: Set(None),
            created_at: Set(now - Duration::days(rng.random_range(0..60))),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        });
        s::task::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
        done += chunk.len() as u64;
        progress(done);
    }
    // Customers' orders: the first when they converted, then repeat purchases as BG/NBD
    // pictures them: each customer buys at their own Poisson rate (warmer customers more
    // often) and may drop out for good after any purchase (warmer customers less likely). Products come in pairs bought
    // together (CATALOG order: 0 with 1, 2 with 3, ...) and each customer keeps to a
    // favourite pair; the customer-value and recommendation models are tested on these.
    let mut order_rows = Vec::new();
    let mut baskets: Vec<Vec<(usize, i32)>> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let Some(first) = plan.converted_at else {
            continue;
        };
        let mut placed = vec![first];
        let exp1 = |rng: &mut StdRng| -(1.0 - rng.random::<f64>()).ln();
        let per_day = (exp1(&mut rng) + exp1(&mut rng)) / 2.0 / 30.0 * (0.5 + plan.warmth);
        let mut at = first;
        // Warm customers also stay longer: the churn model is tested on finding that.
        let drop_out = 0.35 - 0.3 * plan.warmth;
        while placed.len() < 40 && !rng.random_bool(drop_out) {
            at += Duration::minutes((exp1(&mut rng) / per_day * 1440.0) as i64);
            if at > now {
                break;
            }
            placed.push(at);
        }
        let favourite = rng.random_range(0..catalog.len() / 2);
        for at in placed {
            let main = if rng.random_bool(0.7) {
                favourite * 2 + rng.random_range(0..2)
            } else {
                rng.random_range(0..catalog.len())
            };
            let mut basket = vec![(main, rng.random_range(1..=3))];
            if rng.random_bool(0.6) {
                basket.push((main ^ 1, 1));
            }
            if rng.random_bool(0.15) {
                let other = rng.random_range(0..catalog.len());
                if basket.iter().all(|(p, _)| *p != other) {
                    basket.push((other, 1));
                }
            }
            let total: i64 = basket
                .iter()
                .map(|&(p, q)| catalog[p].price_minor * i64::from(q))
                .sum();
            order_rows.push(s::order::ActiveModel {
                workspace_id: Set(ws),
                contact_id: Set(contacts[i]),
                placed_at: Set(at),
                status: Set("paid".into()),
                currency: Set("USD".into()),
                total_minor: Set(total),
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
                ..Default::default()
            });
            baskets.push(basket);
        }
    }
    for chunk in order_rows.chunks(BATCH) {
        s::order::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await?;
        done += chunk.len() as u64;
        progress(done);
    }
    let orders = ids::<s::order::Entity>(&tx, ws).await?;
    let lines: Vec<s::order_line::ActiveModel> = orders
        .iter()
        .zip(&baskets)
        .flat_map(|(&o, basket)| basket.iter().map(move |&(p, q)| (o, p, q)))
        .map(|(o, p, q)| s::order_line::ActiveModel {
            workspace_id: Set(ws),
            order_id: Set(o),
            product_id: Set(Some(catalog[p].id)),
            quantity: Set(q),
            unit_price_minor: Set(catalog[p].price_minor),
            ..Default::default()
        })
        .collect();
    for chunk in lines.chunks(BATCH) {
        s::order_line::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await?;
    }
    tx.commit().await?;
    // Fresh statistics, so the planner sees a million activities rather than the empty
    // tables it last measured and picks the per-contact indexes.
    db.execute_unprepared("ANALYZE").await?;
    Ok(created)
}
