//! What a template may say about a contact besides its own fields and company: its
//! owner, its lead score and churn risk, the products to offer it, its last order and its
//! open deal. Loaded for a batch of contacts at once, and only the parts the templates
//! name ([`Needs`]), so a campaign that says "Hi {{ contact.first_name }}" reads nothing
//! more.
//!
//! Everything is read through the schema from the rooms that write it — the CRM's tables,
//! and the scores and insights the models stored at their last rescoring — never through
//! their code.

use std::collections::{HashMap, HashSet};

use rapport_schema::{
    contact, contact_insight, deal, order, order_line, product, score, stage, user,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value, json};

use super::TemplateParts;
use crate::error::Result;
use crate::platform::records::{self, Deleted};
use crate::values::{Currency, DealStatus, ModelKind, OrderStatus};

/// `owner.<field>`: the contact's owner.
pub const OWNER_FIELDS: &[&str] = &["name", "first_name", "email", "signature"];
/// `lead_score.<field>`: the built-in lead score (0–100, whole) and its grade.
pub const LEAD_SCORE_FIELDS: &[&str] = &["score", "grade"];
/// `churn_risk.<field>`: the risk (0–1) and its level (`low`, `medium`, `high`).
pub const CHURN_RISK_FIELDS: &[&str] = &["risk", "level"];
/// `last_order.<field>`: the latest order not cancelled or refunded.
pub const LAST_ORDER_FIELDS: &[&str] = &["placed_at", "total", "currency", "status", "products"];
/// `open_deal.<field>`: the open deal worked on most recently.
pub const OPEN_DEAL_FIELDS: &[&str] =
    &["name", "amount", "currency", "stage", "expected_close_date"];
/// The fields of each product in `recommendations`.
pub const PRODUCT_FIELDS: &[&str] = &["name", "sku", "category", "price", "currency", "url"];
/// How many products `recommendations` holds, best first.
pub const RECOMMENDATIONS_SHOWN: usize = 5;

/// The top-level names this module fills in.
pub const NAMES: &[&str] = &[
    "owner",
    "lead_score",
    "churn_risk",
    "recommendations",
    "last_order",
    "open_deal",
];

/// Whether `first.second` (a variable a template names) is one of this module's; `None`
/// when `first` is not its name at all.
pub(super) fn allowed(first: &str, second: Option<&str>, third: Option<&str>) -> Option<bool> {
    let fields = match first {
        "owner" => OWNER_FIELDS,
        "lead_score" => LEAD_SCORE_FIELDS,
        "churn_risk" => CHURN_RISK_FIELDS,
        "last_order" => LAST_ORDER_FIELDS,
        "open_deal" => OPEN_DEAL_FIELDS,
        // A list: its items are read inside loops, under names the template declares.
        "recommendations" => return Some(second.is_none()),
        _ => return None,
    };
    Some(match (second, third) {
        (None, _) => true,
        (Some(f), None) => fields.contains(&f),
        _ => false,
    })
}

/// Which of this module's variables some templates use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `owner`.
    pub owner: bool,
    /// `lead_score`.
    pub lead_score: bool,
    /// `churn_risk`.
    pub churn_risk: bool,
    /// `recommendations`.
    pub recommendations: bool,
    /// `last_order`.
    pub last_order: bool,
    /// `open_deal`.
    pub open_deal: bool,
}

impl Needs {
    /// What the given template sources use; one that does not parse uses nothing (it
    /// fails when rendered, with its own error).
    pub fn of<'a>(sources: impl IntoIterator<Item = &'a str>) -> Needs {
        let env = super::environment();
        let mut needs = Needs::default();
        for source in sources {
            let Ok(t) = env.template_from_str(source) else {
                continue;
            };
            for name in t.undeclared_variables(false) {
                match name.as_str() {
                    "owner" => needs.owner = true,
                    "lead_score" => needs.lead_score = true,
                    "churn_risk" => needs.churn_risk = true,
                    "recommendations" => needs.recommendations = true,
                    "last_order" => needs.last_order = true,
                    "open_deal" => needs.open_deal = true,
                    _ => {}
                }
            }
        }
        needs
    }

    /// What the three parts of emails use.
    pub fn of_parts<'a>(parts: impl IntoIterator<Item = &'a TemplateParts>) -> Needs {
        Needs::of(
            parts
                .into_iter()
                .flat_map(|p| [p.subject.as_str(), p.html.as_str(), p.text.as_str()]),
        )
    }

    fn any(&self) -> bool {
        self.owner
            || self.lead_score
            || self.churn_risk
            || self.recommendations
            || self.last_order
            || self.open_deal
    }
}

/// One contact's variables of this module; a missing value (no owner, never ordered) is
/// left out, so `default` filters and `{% if %}` apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Personal(pub(super) Map<String, Value>);

impl Personal {
    fn put(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }
}

/// Loads what `needs` asks for, for each of `people` (contacts of workspace `ws`).
pub async fn load(
    db: &impl ConnectionTrait,
    ws: i64,
    people: &[&contact::Model],
    needs: Needs,
) -> Result<HashMap<i64, Personal>> {
    let mut out: HashMap<i64, Personal> = HashMap::new();
    if !needs.any() || people.is_empty() {
        return Ok(out);
    }
    let ids: Vec<i64> = people.iter().map(|p| p.id).collect();
    if needs.owner {
        let owners: HashMap<i64, user::Model> =
            records::scoped::<user::Entity>(ws, Deleted::Exclude)
                .filter(user::Column::Id.is_in(people.iter().filter_map(|p| p.owner_id)))
                .all(db)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
        for p in people {
            if let Some(u) = p.owner_id.and_then(|o| owners.get(&o)) {
                let mut m = Map::new();
                m.insert("name".into(), json!(u.name));
                if let Some(first) = u.name.split_whitespace().next() {
                    m.insert("first_name".into(), json!(first));
                }
                m.insert("email".into(), json!(u.email));
                if let Some(sig) = u.signature.as_ref().filter(|s| !s.trim().is_empty()) {
                    m.insert("signature".into(), json!(sig));
                }
                out.entry(p.id).or_default().put("owner", Value::Object(m));
            }
        }
    }
    if needs.lead_score {
        let rows = score::Entity::find()
            .filter(score::Column::WorkspaceId.eq(ws))
            .filter(score::Column::Kind.eq(ModelKind::LeadScore.as_str()))
            .filter(score::Column::SubjectId.is_in(ids.iter().copied()))
            .all(db)
            .await?;
        for s in rows {
            let mut m = Map::new();
            m.insert("score".into(), json!(s.score.round() as i64));
            if let Some(g) = s.grade {
                m.insert("grade".into(), json!(g));
            }
            out.entry(s.subject_id)
                .or_default()
                .put("lead_score", Value::Object(m));
        }
    }
    if needs.churn_risk || needs.recommendations {
        let insights = contact_insight::Entity::find()
            .filter(contact_insight::Column::WorkspaceId.eq(ws))
            .filter(contact_insight::Column::ContactId.is_in(ids.iter().copied()))
            .all(db)
            .await?;
        if needs.churn_risk {
            for i in &insights {
                if let (Some(risk), Some(level)) = (i.churn_risk, &i.churn_level) {
                    out.entry(i.contact_id).or_default().put(
                        "churn_risk",
                        json!({"risk": (risk * 100.0).round() / 100.0, "level": level}),
                    );
                }
            }
        }
        if needs.recommendations {
            recommendations(db, ws, &insights, &mut out).await?;
        }
    }
    if needs.last_order {
        last_orders(db, ws, &ids, &mut out).await?;
    }
    if needs.open_deal {
        open_deals(db, ws, &ids, &mut out).await?;
    }
    Ok(out)
}

fn major(minor: i64, currency: &str) -> f64 {
    Currency::parse("currency", currency).map_or(minor as f64 / 100.0, |c| c.to_major(minor))
}

async fn recommendations(
    db: &impl ConnectionTrait,
    ws: i64,
    insights: &[contact_insight::Model],
    out: &mut HashMap<i64, Personal>,
) -> Result<()> {
    let offered: Vec<(i64, Vec<i64>)> = insights
        .iter()
        .filter_map(|i| {
            let ids: Vec<i64> = serde_json::from_value(i.recommended.clone()?).ok()?;
            Some((i.contact_id, ids))
        })
        .collect();
    let wanted: HashSet<i64> = offered
        .iter()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    // Products deleted since the rescoring are skipped.
    let products: HashMap<i64, product::Model> =
        records::scoped::<product::Entity>(ws, Deleted::Exclude)
            .filter(product::Column::Id.is_in(wanted))
            .all(db)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
    for (contact, ids) in offered {
        let list: Vec<Value> = ids
            .iter()
            .filter_map(|id| products.get(id))
            .take(RECOMMENDATIONS_SHOWN)
            .map(|p| {
                let mut m = Map::new();
                m.insert("name".into(), json!(p.name));
                m.insert("sku".into(), json!(p.sku));
                if let Some(c) = &p.category {
                    m.insert("category".into(), json!(c));
                }
                m.insert("price".into(), json!(major(p.price_minor, &p.currency)));
                m.insert("currency".into(), json!(p.currency));
                if let Some(u) = &p.url {
                    m.insert("url".into(), json!(u));
                }
                Value::Object(m)
            })
            .collect();
        if !list.is_empty() {
            out.entry(contact)
                .or_default()
                .put("recommendations", Value::Array(list));
        }
    }
    Ok(())
}

async fn last_orders(
    db: &impl ConnectionTrait,
    ws: i64,
    ids: &[i64],
    out: &mut HashMap<i64, Personal>,
) -> Result<()> {
    let counted = || {
        records::scoped::<order::Entity>(ws, Deleted::Exclude)
            .filter(order::Column::ContactId.is_in(ids.iter().copied()))
            .filter(order::Column::Status.is_not_in([
                OrderStatus::Cancelled.as_str(),
                OrderStatus::Refunded.as_str(),
            ]))
    };
    // Each contact's latest time first, then only the orders at those times: a customer
    // with ten thousand orders costs one row, not ten thousand.
    let latest: Vec<(i64, chrono::DateTime<chrono::Utc>)> = counted()
        .select_only()
        .column(order::Column::ContactId)
        .column_as(order::Column::PlacedAt.max(), "latest")
        .group_by(order::Column::ContactId)
        .into_tuple()
        .all(db)
        .await?;
    let orders = counted()
        .filter(order::Column::PlacedAt.is_in(latest.iter().map(|(_, at)| *at)))
        .order_by_desc(order::Column::PlacedAt)
        .order_by_desc(order::Column::Id)
        .all(db)
        .await?;
    let latest: HashMap<i64, chrono::DateTime<chrono::Utc>> = latest.into_iter().collect();
    let mut last: HashMap<i64, order::Model> = HashMap::new();
    for o in orders {
        if latest.get(&o.contact_id) == Some(&o.placed_at) {
            last.entry(o.contact_id).or_insert(o);
        }
    }
    let lines = order_line::Entity::find()
        .filter(order_line::Column::WorkspaceId.eq(ws))
        .filter(order_line::Column::OrderId.is_in(last.values().map(|o| o.id)))
        .order_by_asc(order_line::Column::Id)
        .all(db)
        .await?;
    let names: HashMap<i64, String> = records::scoped::<product::Entity>(ws, Deleted::Include)
        .filter(product::Column::Id.is_in(lines.iter().filter_map(|l| l.product_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let mut products: HashMap<i64, Vec<String>> = HashMap::new();
    for l in &lines {
        if let Some(name) = l.product_id.and_then(|p| names.get(&p)) {
            products.entry(l.order_id).or_default().push(name.clone());
        }
    }
    for (contact, o) in last {
        out.entry(contact).or_default().put(
            "last_order",
            json!({
                "placed_at": o.placed_at.format("%Y-%m-%d").to_string(),
                "total": major(o.total_minor, &o.currency),
                "currency": o.currency,
                "status": o.status,
                "products": products.remove(&o.id).unwrap_or_default(),
            }),
        );
    }
    Ok(())
}

async fn open_deals(
    db: &impl ConnectionTrait,
    ws: i64,
    ids: &[i64],
    out: &mut HashMap<i64, Personal>,
) -> Result<()> {
    let open = || {
        records::scoped::<deal::Entity>(ws, Deleted::Exclude)
            .filter(deal::Column::ContactId.is_in(ids.iter().copied()))
            .filter(deal::Column::Status.eq(DealStatus::Open.as_str()))
    };
    // As for orders: the latest time per contact, then only the deals at those times.
    let newest: Vec<(Option<i64>, chrono::DateTime<chrono::Utc>)> = open()
        .select_only()
        .column(deal::Column::ContactId)
        .column_as(deal::Column::UpdatedAt.max(), "latest")
        .group_by(deal::Column::ContactId)
        .into_tuple()
        .all(db)
        .await?;
    let deals = open()
        .filter(deal::Column::UpdatedAt.is_in(newest.iter().map(|(_, at)| *at)))
        .order_by_desc(deal::Column::UpdatedAt)
        .order_by_desc(deal::Column::Id)
        .all(db)
        .await?;
    let newest: HashMap<Option<i64>, chrono::DateTime<chrono::Utc>> = newest.into_iter().collect();
    let mut latest: HashMap<i64, deal::Model> = HashMap::new();
    for d in deals {
        if let Some(c) = d.contact_id
            && newest.get(&d.contact_id) == Some(&d.updated_at)
        {
            latest.entry(c).or_insert(d);
        }
    }
    let stages: HashMap<i64, String> = stage::Entity::find()
        .filter(stage::Column::WorkspaceId.eq(ws))
        .filter(stage::Column::Id.is_in(latest.values().map(|d| d.stage_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    for (contact, d) in latest {
        let mut m = Map::new();
        m.insert("name".into(), json!(d.name));
        m.insert("amount".into(), json!(major(d.amount_minor, &d.currency)));
        m.insert("currency".into(), json!(d.currency));
        if let Some(s) = stages.get(&d.stage_id) {
            m.insert("stage".into(), json!(s));
        }
        if let Some(date) = d.expected_close_date {
            m.insert("expected_close_date".into(), json!(date.to_string()));
        }
        out.entry(contact)
            .or_default()
            .put("open_deal", Value::Object(m));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_are_the_names_a_template_uses() {
        let needs = Needs::of([
            "Hi {{ contact.first_name }}, {{ owner.name }} here",
            "{% for p in recommendations %}{{ p.name }}{% endfor %}{{ unsubscribe_url }}",
        ]);
        assert_eq!(
            needs,
            Needs {
                owner: true,
                recommendations: true,
                ..Needs::default()
            }
        );
        assert!(!Needs::of(["{{ contact.name }}", "{% broken"]).any());
    }

    #[test]
    fn only_known_fields_are_allowed() {
        assert_eq!(allowed("owner", Some("signature"), None), Some(true));
        assert_eq!(allowed("owner", Some("salary"), None), Some(false));
        assert_eq!(allowed("recommendations", None, None), Some(true));
        assert_eq!(allowed("recommendations", Some("name"), None), Some(false));
        assert_eq!(allowed("contact", Some("name"), None), None);
    }
}
