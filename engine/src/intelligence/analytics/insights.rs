//! What the customer-value, churn and recommendation models say about each contact —
//! churn risk and its level, RFM scores and segment, P(alive), expected purchases and
//! value, the products to offer — stored per
//! contact at each rescoring, so a segment filters on them with an index instead of
//! evaluating the model per contact, and a level or segment that changed is logged
//! (`insight_changes`) for triggers.
//!
//! The API's `contact.churnRisk`, `contact.rfm` and `contact.clv` compute the same figures
//! live, as of the request, with [`churn_risk`]; the stored ones are as of the last
//! rescoring (within a minute of a contact's data changing, every six hours for all).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rapport_schema::{contact_insight, insight_change};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
};

use super::behaviour::Behaviour;
use super::customer_value::{CustomerValue, CustomerValueModel};
use super::recommendations::{self, RecommendationModel};
use super::registry;
use crate::clock;
use crate::error::Result;
use crate::values::{ChurnMethod, InsightField, ModelKind, RfmSegment, RiskLevel};

/// The horizon of the stored expected purchases and value, in weeks.
pub const HORIZON_WEEKS: f64 = 52.0;

/// How likely a customer is to have stopped buying.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChurnRisk {
    /// 0–1.
    pub risk: f64,
    /// Its band.
    pub level: RiskLevel,
    /// How it was worked out.
    pub method: ChurnMethod,
}

/// A customer's churn risk: 1 − P(alive) by BG/NBD for one who bought on more than one
/// day; otherwise the engagement classifier's score (0–100) of going silent, when it
/// gave one (a one-time buyer's P(alive) is 1 under BG/NBD by construction, so it says
/// nothing about them).
pub fn churn_risk(value: Option<&CustomerValue>, churn_score: Option<f64>) -> Option<ChurnRisk> {
    if let Some(v) = value
        && v.summary.history.frequency >= 1.0
    {
        let risk = 1.0 - v.probability_alive;
        return Some(ChurnRisk {
            risk,
            level: RiskLevel::of(risk),
            method: ChurnMethod::BgNbd,
        });
    }
    churn_score.map(|score| {
        let risk = score / 100.0;
        ChurnRisk {
            risk,
            level: RiskLevel::of(risk),
            method: ChurnMethod::EngagementClassifier,
        }
    })
}

const BATCH: usize = 400;

/// Recomputes the stored insights of the given contacts (everyone when `None`), loading
/// what they did only when a customer-value or churn model is active; returns how many
/// contacts have insights.
pub async fn refresh_contacts(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: Option<&[i64]>,
) -> Result<usize> {
    let mut any = false;
    for kind in [
        ModelKind::CustomerValue,
        ModelKind::Churn,
        ModelKind::Recommendations,
    ] {
        any |= registry::active::<serde_json::Value>(db, workspace_id, kind)
            .await?
            .is_some();
    }
    if !any {
        // Nothing to say; rows left by a model since retired go.
        let mut gone = contact_insight::Entity::delete_many()
            .filter(contact_insight::Column::WorkspaceId.eq(workspace_id));
        if let Some(ids) = contacts {
            gone = gone.filter(contact_insight::Column::ContactId.is_in(ids.iter().copied()));
        }
        gone.exec(db).await?;
        return Ok(0);
    }
    let b = Behaviour::load_for(db, workspace_id, contacts).await?;
    refresh(db, workspace_id, &b, contacts).await
}

/// Recomputes the stored insights of the given contacts (everyone when `None`) from
/// already loaded behaviour, which must cover them; returns how many contacts have
/// insights. Contacts without any (no orders and no churn score) lose their row.
pub async fn refresh(
    db: &DatabaseConnection,
    workspace_id: i64,
    b: &Behaviour,
    contacts: Option<&[i64]>,
) -> Result<usize> {
    let now = clock::now();
    let value_model =
        registry::active::<CustomerValueModel>(db, workspace_id, ModelKind::CustomerValue)
            .await?
            .map(|(_, m)| m);
    let churn_scores: HashMap<i64, f64> = {
        let mut q = rapport_schema::score::Entity::find()
            .select_only()
            .column(rapport_schema::score::Column::SubjectId)
            .column(rapport_schema::score::Column::Score)
            .filter(rapport_schema::score::Column::WorkspaceId.eq(workspace_id))
            .filter(rapport_schema::score::Column::Kind.eq(ModelKind::Churn.as_str()));
        if let Some(ids) = contacts {
            q = q.filter(rapport_schema::score::Column::SubjectId.is_in(ids.iter().copied()));
        }
        q.into_tuple::<(i64, f64)>()
            .all(db)
            .await?
            .into_iter()
            .collect()
    };
    let asked: Option<std::collections::HashSet<i64>> =
        contacts.map(|ids| ids.iter().copied().collect());
    let recommended = recommended(db, workspace_id, b, asked.as_ref()).await?;
    let rows: Vec<contact_insight::Model> = b
        .people
        .iter()
        .filter(|p| asked.as_ref().is_none_or(|ids| ids.contains(&p.id)))
        .filter_map(|p| {
            let value = value_model.as_ref().and_then(|m| {
                m.evaluate(
                    b.orders.get(&p.id).map_or(&[][..], Vec::as_slice),
                    now,
                    HORIZON_WEEKS,
                )
            });
            let figures = Figures {
                value: value.as_ref(),
                churn_score: churn_scores.get(&p.id).copied(),
                recommended: recommended.get(&p.id),
            };
            insight(workspace_id, p.id, figures, now)
        })
        .collect();
    let previous = stored(db, workspace_id, contacts).await?;
    let changes = changes(workspace_id, &previous, &rows, asked.as_ref(), now);
    for chunk in rows.chunks(BATCH) {
        let tx = crate::platform::db::write(db).await?;
        upsert(&tx, chunk).await?;
        tx.commit().await?;
    }
    let tx = crate::platform::db::write(db).await?;
    // Rows this run did not write belong to contacts that have no insight any more (an
    // erased order history, a model retired) or were deleted.
    let mut gone = contact_insight::Entity::delete_many()
        .filter(contact_insight::Column::WorkspaceId.eq(workspace_id))
        .filter(contact_insight::Column::ComputedAt.lt(now));
    if let Some(ids) = contacts {
        gone = gone.filter(contact_insight::Column::ContactId.is_in(ids.iter().copied()));
    }
    gone.exec(&tx).await?;
    for chunk in changes.chunks(BATCH) {
        insight_change::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(
        workspace_id,
        contacts = rows.len(),
        changes = changes.len(),
        "insights refreshed"
    );
    Ok(rows.len())
}

/// How many recommended products are stored per contact.
pub const RECOMMENDED_KEPT: usize = 10;

/// The products to offer each contact who bought something, when a recommendations
/// model is active.
async fn recommended(
    db: &DatabaseConnection,
    workspace_id: i64,
    b: &Behaviour,
    asked: Option<&std::collections::HashSet<i64>>,
) -> Result<HashMap<i64, Vec<i64>>> {
    let Some((_, model)) =
        registry::active::<RecommendationModel>(db, workspace_id, ModelKind::Recommendations)
            .await?
    else {
        return Ok(HashMap::new());
    };
    let buyers: Vec<i64> = b
        .orders
        .keys()
        .copied()
        .filter(|id| asked.is_none_or(|a| a.contains(id)))
        .collect();
    let mut out = HashMap::new();
    for chunk in buyers.chunks(5000) {
        for (contact, owned) in recommendations::owned_by(db, workspace_id, chunk).await? {
            let offers: Vec<i64> = model
                .recommend(&owned, RECOMMENDED_KEPT)
                .into_iter()
                .map(|r| r.product_id)
                .collect();
            if !offers.is_empty() {
                out.insert(contact, offers);
            }
        }
    }
    Ok(out)
}

/// What the models say about one contact.
struct Figures<'a> {
    value: Option<&'a CustomerValue>,
    churn_score: Option<f64>,
    recommended: Option<&'a Vec<i64>>,
}

fn insight(
    workspace_id: i64,
    contact_id: i64,
    f: Figures<'_>,
    now: DateTime<Utc>,
) -> Option<contact_insight::Model> {
    let value = f.value;
    let churn = churn_risk(value, f.churn_score);
    if value.is_none() && churn.is_none() && f.recommended.is_none() {
        return None;
    }
    let rfm = value.map(|v| v.rfm);
    Some(contact_insight::Model {
        contact_id,
        workspace_id,
        churn_risk: churn.map(|c| c.risk),
        churn_level: churn.map(|c| c.level.as_str().to_string()),
        churn_method: churn.map(|c| c.method.as_str().to_string()),
        rfm_recency: rfm.map(|r| i16::from(r.recency)),
        rfm_frequency: rfm.map(|r| i16::from(r.frequency)),
        rfm_monetary: rfm.map(|r| i16::from(r.monetary)),
        rfm_segment: rfm.map(|r| RfmSegment::from(r.segment()).as_str().to_string()),
        probability_alive: value.map(|v| v.probability_alive),
        expected_purchases: value.map(|v| v.expected_purchases),
        expected_value: value.and_then(|v| v.expected_value),
        recommended: f.recommended.map(|ids| serde_json::json!(ids)),
        computed_at: now,
    })
}

/// (churn level, RFM segment) stored now, by contact.
type Levels = HashMap<i64, (Option<String>, Option<String>)>;

async fn stored(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    contacts: Option<&[i64]>,
) -> Result<Levels> {
    let mut q = contact_insight::Entity::find()
        .select_only()
        .column(contact_insight::Column::ContactId)
        .column(contact_insight::Column::ChurnLevel)
        .column(contact_insight::Column::RfmSegment)
        .filter(contact_insight::Column::WorkspaceId.eq(workspace_id));
    if let Some(ids) = contacts {
        q = q.filter(contact_insight::Column::ContactId.is_in(ids.iter().copied()));
    }
    Ok(q.into_tuple::<(i64, Option<String>, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, level, segment)| (id, (level, segment)))
        .collect())
}

/// The level and segment changes between what is stored and the new rows; a contact
/// whose row goes away changes to none.
fn changes(
    workspace_id: i64,
    previous: &Levels,
    rows: &[contact_insight::Model],
    asked: Option<&std::collections::HashSet<i64>>,
    now: DateTime<Utc>,
) -> Vec<insight_change::ActiveModel> {
    let change = |contact_id: i64, field: &str, from: &Option<String>, to: &Option<String>| {
        (from != to).then(|| insight_change::ActiveModel {
            workspace_id: Set(workspace_id),
            contact_id: Set(contact_id),
            field: Set(field.to_string()),
            previous: Set(from.clone()),
            value: Set(to.clone()),
            changed_at: Set(now),
            ..Default::default()
        })
    };
    let none = (None, None);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in rows {
        seen.insert(r.contact_id);
        let (level, segment) = previous.get(&r.contact_id).unwrap_or(&none);
        out.extend(change(
            r.contact_id,
            InsightField::ChurnLevel.as_str(),
            level,
            &r.churn_level,
        ));
        out.extend(change(
            r.contact_id,
            InsightField::RfmSegment.as_str(),
            segment,
            &r.rfm_segment,
        ));
    }
    for (&id, (level, segment)) in previous {
        if seen.contains(&id) || asked.is_some_and(|ids| !ids.contains(&id)) {
            continue;
        }
        out.extend(change(id, InsightField::ChurnLevel.as_str(), level, &None));
        out.extend(change(
            id,
            InsightField::RfmSegment.as_str(),
            segment,
            &None,
        ));
    }
    out
}

async fn upsert(db: &impl ConnectionTrait, rows: &[contact_insight::Model]) -> Result<()> {
    use contact_insight::Column as C;
    let models = rows.iter().cloned().map(|r| contact_insight::ActiveModel {
        contact_id: Set(r.contact_id),
        workspace_id: Set(r.workspace_id),
        churn_risk: Set(r.churn_risk),
        churn_level: Set(r.churn_level),
        churn_method: Set(r.churn_method),
        rfm_recency: Set(r.rfm_recency),
        rfm_frequency: Set(r.rfm_frequency),
        rfm_monetary: Set(r.rfm_monetary),
        rfm_segment: Set(r.rfm_segment),
        probability_alive: Set(r.probability_alive),
        expected_purchases: Set(r.expected_purchases),
        expected_value: Set(r.expected_value),
        recommended: Set(r.recommended),
        computed_at: Set(r.computed_at),
    });
    contact_insight::Entity::insert_many(models)
        .on_conflict(
            OnConflict::column(C::ContactId)
                .update_columns([
                    C::ChurnRisk,
                    C::ChurnLevel,
                    C::ChurnMethod,
                    C::RfmRecency,
                    C::RfmFrequency,
                    C::RfmMonetary,
                    C::RfmSegment,
                    C::ProbabilityAlive,
                    C::ExpectedPurchases,
                    C::ExpectedValue,
                    C::Recommended,
                    C::ComputedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Deletes the stored insights and their changes of the given contacts (erasure).
pub async fn erase(db: &impl ConnectionTrait, contacts: &[i64]) -> Result<()> {
    contact_insight::Entity::delete_many()
        .filter(contact_insight::Column::ContactId.is_in(contacts.iter().copied()))
        .exec(db)
        .await?;
    insight_change::Entity::delete_many()
        .filter(insight_change::Column::ContactId.is_in(contacts.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// The stored spelling of a customer's RFM segment.
impl From<rapport_models::rfm::Segment> for RfmSegment {
    fn from(s: rapport_models::rfm::Segment) -> Self {
        use rapport_models::rfm::Segment;
        match s {
            Segment::Champions => RfmSegment::Champions,
            Segment::Loyal => RfmSegment::Loyal,
            Segment::NewCustomers => RfmSegment::NewCustomers,
            Segment::PotentialLoyalists => RfmSegment::PotentialLoyalists,
            Segment::AtRisk => RfmSegment::AtRisk,
            Segment::Hibernating => RfmSegment::Hibernating,
            Segment::Lost => RfmSegment::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, level: Option<&str>, segment: Option<&str>) -> contact_insight::Model {
        contact_insight::Model {
            contact_id: id,
            workspace_id: 1,
            churn_risk: None,
            churn_level: level.map(String::from),
            churn_method: None,
            rfm_recency: None,
            rfm_frequency: None,
            rfm_monetary: None,
            rfm_segment: segment.map(String::from),
            probability_alive: None,
            expected_purchases: None,
            expected_value: None,
            recommended: None,
            computed_at: Utc::now(),
        }
    }

    #[test]
    fn only_what_changed_is_logged() {
        let previous: Levels = [
            (1, (Some("low".into()), Some("loyal".into()))),
            (2, (Some("high".into()), None)),
            (3, (Some("medium".into()), None)),
        ]
        .into();
        let rows = [
            row(1, Some("low"), Some("at_risk")),
            row(2, Some("high"), None),
            row(4, Some("high"), None),
        ];
        let logged: Vec<(i64, String, Option<String>, Option<String>)> =
            changes(1, &previous, &rows, None, Utc::now())
                .into_iter()
                .map(|c| {
                    (
                        c.contact_id.unwrap(),
                        c.field.unwrap(),
                        c.previous.unwrap(),
                        c.value.unwrap(),
                    )
                })
                .collect();
        assert_eq!(
            logged,
            [
                (
                    1,
                    "rfm_segment".into(),
                    Some("loyal".into()),
                    Some("at_risk".into())
                ),
                (4, "churn_level".into(), None, Some("high".into())),
                (3, "churn_level".into(), Some("medium".into()), None),
            ]
        );
        // A partial run leaves contacts it was not asked about alone.
        assert_eq!(
            changes(1, &previous, &rows[..1], Some(&[1].into()), Utc::now()).len(),
            1
        );
    }

    #[test]
    fn one_time_buyers_take_the_classifier() {
        assert_eq!(churn_risk(None, None), None);
        let c = churn_risk(None, Some(80.0)).unwrap();
        assert_eq!(
            (c.level, c.method),
            (RiskLevel::High, ChurnMethod::EngagementClassifier)
        );
        assert!((c.risk - 0.8).abs() < 1e-12);
        assert_eq!(RiskLevel::of(0.29), RiskLevel::Low);
        assert_eq!(RiskLevel::of(0.3), RiskLevel::Medium);
    }
}
