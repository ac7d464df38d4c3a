//! Lead scoring: the probability that a contact who has not bought yet converts (a won
//! deal or a first order) within the next window, 90 days by default.
//!
//! Training looks back one window: features are computed as of `now − window` for the
//! contacts that existed then and had not converted, and the label is whether they
//! converted by `now`. Scoring computes the same features as of now. Engagement features
//! are sums of exponentially decaying weights (half-life [`HALF_LIFE_DAYS`]), so a lead
//! that went quiet cools down without anyone retraining.

use chrono::Duration;
use sea_orm::DatabaseConnection;

use super::behaviour::{
    Behaviour, FieldFeature, FieldValue, Instant, MAIL_FEATURES, Person, Touch, days,
};
use super::registry::{self, GradeRule, StoredModel, Trained, TrainingRun};
use crate::clock;
use crate::error::Result;
use crate::intelligence::models::classifier::{
    Algorithm, Classifier, DEFAULT_MIN_POSITIVES, Split,
};
use crate::intelligence::models::features::{Column, FeatureTable};
use crate::values::{LifecycleStage, ModelKind};
use rapport_schema::model_version;

/// How long after the features a conversion counts, in days.
pub const DEFAULT_WINDOW_DAYS: i64 = 90;
/// Engagement loses half its weight in this many days.
pub const HALF_LIFE_DAYS: f64 = 21.0;

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// The label window in days.
    pub window_days: i64,
    /// Fewer positive (or negative) examples than this and training is refused.
    pub min_positives: usize,
    /// How scores become grades.
    pub grades: GradeRule,
    /// Which classifier the lead score, win probability and churn models fit.
    pub algorithm: Algorithm,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            window_days: DEFAULT_WINDOW_DAYS,
            min_positives: DEFAULT_MIN_POSITIVES,
            grades: GradeRule::Quartiles,
            algorithm: Algorithm::Auto,
        }
    }
}

/// Trains a new version from the workspace's history, records it, and rescores every
/// open lead when it became active.
pub async fn train(
    db: &DatabaseConnection,
    workspace_id: i64,
    options: &TrainOptions,
) -> Result<model_version::Model> {
    let now = clock::now();
    let window_from = now - Duration::days(options.window_days);
    let behaviour = Behaviour::load(db, workspace_id).await?;
    let (from, to) = (window_from.timestamp(), now.timestamp());
    let rows: Vec<&Person> = behaviour
        .people
        .iter()
        .filter(|p| p.created_at < from)
        .filter(|p| behaviour.converted_at.get(&p.id).is_none_or(|&c| c > from))
        .collect();
    let labels: Vec<bool> = rows
        .iter()
        .map(|p| behaviour.converted_at.get(&p.id).is_some_and(|&c| c <= to))
        .collect();
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    // Every number, boolean and enum field the workspace declares, as a feature.
    let fields: Vec<FieldFeature> = behaviour.fields.keys().cloned().collect();
    let table = features(&behaviour, &rows, from, &fields, &behaviour.fields);
    let trained = if positives.min(negatives) < options.min_positives {
        Trained::Refused {
            message: format!(
                "too little data: {positives} of {} leads converted in the last {} days; \
                 at least {} converting and {} not converting are needed",
                rows.len(),
                options.window_days,
                options.min_positives,
                options.min_positives
            ),
        }
    } else {
        let split = Split::stratified(&labels);
        let (classifier, report) =
            super::cpu_bound(|| Classifier::train(&table, &labels, &split, options.algorithm))?;
        let model = StoredModel {
            classifier,
            // Quartiles are taken over each scoring run's population, so grades stay
            // relative to today's leads rather than to the training window's.
            grades: options.grades.clone(),
        };
        Trained::classifier(model, &report)
    };
    let version = registry::record(
        db,
        workspace_id,
        TrainingRun {
            kind: ModelKind::LeadScore,
            features: table.names().to_vec(),
            rows: rows.len(),
            positives,
            window_from,
            window_to: now,
            trained,
        },
    )
    .await?;
    tracing::info!(
        workspace_id,
        version = version.version,
        status = %version.status,
        "lead score model trained"
    );
    if version.status == crate::values::ModelStatus::Active.as_str() {
        rescore_with(db, workspace_id, &behaviour, None).await?;
    }
    Ok(version)
}

/// Scores every contact who has not converted with the active version; returns how many
/// were scored (0 when no version is active).
pub async fn rescore(db: &DatabaseConnection, workspace_id: i64) -> Result<usize> {
    rescore_contacts(db, workspace_id, None).await
}

/// Rescores the given contacts (all when `None`). Contacts who converted since their last
/// score lose it: they are customers now, not leads.
pub async fn rescore_contacts(
    db: &DatabaseConnection,
    workspace_id: i64,
    contacts: Option<&[i64]>,
) -> Result<usize> {
    if registry::active::<serde_json::Value>(db, workspace_id, ModelKind::LeadScore)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let behaviour = Behaviour::load_for(db, workspace_id, contacts).await?;
    rescore_with(db, workspace_id, &behaviour, contacts).await
}

/// Rescores from already loaded behaviour (which must cover `contacts`).
pub async fn rescore_with(
    db: &DatabaseConnection,
    workspace_id: i64,
    behaviour: &Behaviour,
    contacts: Option<&[i64]>,
) -> Result<usize> {
    let Some((version, model)) =
        registry::active::<StoredModel>(db, workspace_id, ModelKind::LeadScore).await?
    else {
        return Ok(0);
    };
    let now = clock::now().timestamp();
    let leads: Vec<&Person> = behaviour
        .people
        .iter()
        .filter(|p| !behaviour.converted_at.contains_key(&p.id))
        .filter(|p| {
            !matches!(
                LifecycleStage::from_db(&p.lifecycle),
                LifecycleStage::Customer | LifecycleStage::Churned
            )
        })
        .collect();
    // The fields the version was trained on, whatever is declared now (a field deleted
    // since reads as missing, and is filled as training filled gaps); read afresh when
    // the loaded ones are not those.
    let fields = trained_fields(&model.classifier);
    let reloaded;
    let values = if fields.iter().all(|f| behaviour.fields.contains_key(f)) {
        &behaviour.fields
    } else {
        let keys: Vec<String> = fields.iter().map(|f| f.key.clone()).collect();
        reloaded = super::behaviour::load_fields(db, workspace_id, contacts, Some(&keys)).await?;
        &reloaded
    };
    let table = features(behaviour, &leads, now, &fields, values);
    let predictions = model.classifier.predict(&table)?;
    let ids: Vec<i64> = leads.iter().map(|p| p.id).collect();
    // A partial run grades against everyone's current scores, not just its own few.
    let others = match contacts {
        Some(ids) => registry::population(db, workspace_id, ModelKind::LeadScore, ids).await?,
        None => Vec::new(),
    };
    let new = registry::graded(&ids, predictions, &model.grades, &others);
    match contacts {
        None => {
            registry::replace_scores(db, workspace_id, ModelKind::LeadScore, version.id, &new)
                .await?
        }
        Some(asked) => {
            let converted: Vec<i64> = asked
                .iter()
                .copied()
                .filter(|id| !ids.contains(id))
                .collect();
            registry::forget_scores(db, ModelKind::LeadScore, &converted).await?;
            registry::store_scores(db, workspace_id, ModelKind::LeadScore, version.id, &new)
                .await?;
        }
    }
    tracing::info!(workspace_id, scored = new.len(), "leads rescored");
    Ok(new.len())
}

/// The leads of a past moment and what became of them: the population a score is
/// measured on.
#[derive(Clone, Debug)]
pub struct Population {
    /// Contacts that existed at the moment and had not converted, by id.
    pub contacts: Vec<i64>,
    /// Whether each converted within the horizon after the moment.
    pub converted: Vec<bool>,
    /// The active version, and its probability for each contact as of the moment; `None`
    /// when no version is active.
    pub built_in: Option<(model_version::Model, Vec<f64>)>,
}

/// The leads as they stood at `as_of` — created before it, not converted by it — with
/// whether each converted (a won deal or a first order) within `horizon_days` after it,
/// and the active version's probabilities from features as of then, the same population
/// and label training uses. At most `limit` contacts, spread evenly over the ids so a
/// sample covers old and new contacts alike.
pub async fn population(
    db: &DatabaseConnection,
    workspace_id: i64,
    as_of: chrono::DateTime<chrono::Utc>,
    horizon_days: i64,
    limit: usize,
) -> Result<Population> {
    let behaviour = Behaviour::load(db, workspace_id).await?;
    let from = as_of.timestamp();
    let to = (as_of + Duration::days(horizon_days)).timestamp();
    let mut leads: Vec<&Person> = behaviour
        .people
        .iter()
        .filter(|p| p.created_at < from)
        .filter(|p| behaviour.converted_at.get(&p.id).is_none_or(|&c| c > from))
        .collect();
    leads.sort_by_key(|p| p.id);
    if leads.len() > limit {
        let step = leads.len() as f64 / limit.max(1) as f64;
        leads = (0..limit)
            .map(|i| leads[(i as f64 * step) as usize])
            .collect();
    }
    let converted = leads
        .iter()
        .map(|p| behaviour.converted_at.get(&p.id).is_some_and(|&c| c <= to))
        .collect();
    let built_in =
        match registry::active::<StoredModel>(db, workspace_id, ModelKind::LeadScore).await? {
            None => None,
            Some((version, model)) => {
                let fields = trained_fields(&model.classifier);
                let keys: Vec<String> = fields.iter().map(|f| f.key.clone()).collect();
                let values = if fields.iter().all(|f| behaviour.fields.contains_key(f)) {
                    behaviour.fields.clone()
                } else {
                    super::behaviour::load_fields(db, workspace_id, None, Some(&keys)).await?
                };
                let table = features(&behaviour, &leads, from, &fields, &values);
                let predicted = super::cpu_bound(|| model.classifier.predict(&table))?;
                let probabilities = predicted.into_iter().map(|p| p.probability).collect();
                Some((version, probabilities))
            }
        };
    Ok(Population {
        contacts: leads.iter().map(|p| p.id).collect(),
        converted,
        built_in,
    })
}

/// Appends the email features ([`MAIL_FEATURES`]) of `people` as of `as_of`.
pub(super) fn push_mail_features(
    table: &mut FeatureTable,
    behaviour: &Behaviour,
    people: &[&Person],
    as_of: Instant,
    decay: impl Fn(Instant) -> f64,
) {
    let rows: Vec<[f64; 4]> = people
        .iter()
        .map(|p| behaviour.mail_features(p.id, as_of, &decay))
        .collect();
    for (i, name) in MAIL_FEATURES.into_iter().enumerate() {
        let column = Column::Numeric(rows.iter().map(|r| Some(r[i])).collect());
        table
            .push(name, column)
            .expect("one value per person, and the names are the model's own");
    }
}

/// The name of a typed field's feature column.
pub const FIELD_PREFIX: &str = "field.";

/// The typed fields a trained classifier reads, from its feature names.
pub fn trained_fields(classifier: &Classifier) -> Vec<FieldFeature> {
    classifier
        .layout()
        .into_iter()
        .filter_map(|(name, numeric)| {
            let key = name.strip_prefix(FIELD_PREFIX)?.to_string();
            Some(FieldFeature { key, numeric })
        })
        .collect()
}

/// The raw features of each person as of `as_of` (nothing after it is read), with a
/// column `field.<key>` for each of `fields`, read from `values`.
pub fn features(
    behaviour: &Behaviour,
    people: &[&Person],
    as_of: Instant,
    fields: &[FieldFeature],
    values: &std::collections::BTreeMap<FieldFeature, std::collections::HashMap<i64, FieldValue>>,
) -> FeatureTable {
    let decay = |at: Instant| (-days(at, as_of) * std::f64::consts::LN_2 / HALF_LIFE_DAYS).exp();
    let mut engagement = vec![Some(0.0); people.len()];
    let mut meetings = engagement.clone();
    let mut calls = engagement.clone();
    let mut replies = engagement.clone();
    let mut page_views = engagement.clone();
    let mut forms = engagement.clone();
    let mut recent = engagement.clone();
    let mut since_last = vec![None; people.len()];
    for (i, p) in people.iter().enumerate() {
        let mut last: Option<Instant> = None;
        for &(touch, at) in behaviour.touches.get(&p.id).into_iter().flatten() {
            if at >= as_of {
                continue;
            }
            let w = decay(at);
            *engagement[i].as_mut().expect("initialised") += w;
            let slot = match touch {
                Touch::Meeting => Some(&mut meetings),
                Touch::Call => Some(&mut calls),
                Touch::Inbound => Some(&mut replies),
                Touch::PageView => Some(&mut page_views),
                Touch::Form => Some(&mut forms),
                Touch::Other | Touch::Event => None,
            };
            if let Some(slot) = slot {
                *slot[i].as_mut().expect("initialised") += w;
            }
            if !matches!(touch, Touch::PageView | Touch::Form | Touch::Event) {
                if days(at, as_of) <= 90.0 {
                    *recent[i].as_mut().expect("initialised") += 1.0;
                }
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
        since_last[i] = last.map(|l| days(l, as_of));
    }
    let firm = |p: &Person| p.company_id.and_then(|c| behaviour.firms.get(&c));
    let text =
        |f: &dyn Fn(&Person) -> Option<String>| Column::Text(people.iter().map(|p| f(p)).collect());
    let number =
        |f: &dyn Fn(&Person) -> Option<f64>| Column::Numeric(people.iter().map(|p| f(p)).collect());
    let columns = [
        ("source", text(&|p| p.source.clone())),
        (
            "industry",
            text(&|p| firm(p).and_then(|f| f.industry.clone())),
        ),
        (
            "country",
            text(&|p| firm(p).and_then(|f| f.country.clone())),
        ),
        (
            "company_size_log",
            number(&|p| {
                firm(p)
                    .and_then(|f| f.size)
                    .map(|s| f64::from(s.max(0)).ln_1p())
            }),
        ),
        (
            "has_phone",
            number(&|p| Some(f64::from(u8::from(p.has_phone)))),
        ),
        ("tags", number(&|p| Some(p.tags as f64))),
        (
            "days_since_created",
            number(&|p| Some(days(p.created_at, as_of).max(0.0))),
        ),
        ("engagement", Column::Numeric(engagement)),
        ("meetings", Column::Numeric(meetings)),
        ("calls", Column::Numeric(calls)),
        ("replies", Column::Numeric(replies)),
        ("page_views", Column::Numeric(page_views)),
        ("forms", Column::Numeric(forms)),
        ("touches_90d", Column::Numeric(recent)),
        ("days_since_last_touch", Column::Numeric(since_last)),
        (
            "deals_opened",
            number(&|p| {
                let opened = behaviour.deals_opened.get(&p.id);
                Some(opened.into_iter().flatten().filter(|&&c| c < as_of).count() as f64)
            }),
        ),
    ];
    let mut table = FeatureTable::with_rows(people.len());
    for (name, column) in columns {
        table
            .push(name, column)
            .expect("every column has one value per person");
    }
    push_mail_features(&mut table, behaviour, people, as_of, decay);
    for field in fields {
        let held = values.get(field);
        let value = |p: &Person| held.and_then(|v| v.get(&p.id));
        let column = if field.numeric {
            number(&|p| match value(p) {
                Some(FieldValue::Number(n)) => Some(*n),
                _ => None,
            })
        } else {
            text(&|p| match value(p) {
                Some(FieldValue::Option(o)) => Some(o.clone()),
                _ => None,
            })
        };
        table
            .push(format!("{FIELD_PREFIX}{}", field.key), column)
            .expect("field keys are unique and every column has one value per person");
    }
    table
}
