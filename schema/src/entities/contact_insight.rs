//! `contact_insights` table: what the customer-value and churn models say about one
//! contact, stored at each rescoring so segments can filter on it.
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "contact_insights")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: i64,
    pub workspace_id: i64,
    /// 0–1.
    pub churn_risk: Option<f64>,
    /// `low`, `medium` or `high`.
    pub churn_level: Option<String>,
    /// `bg_nbd` or `engagement_classifier`.
    pub churn_method: Option<String>,
    /// RFM scores, 1 (worst) to 5 (best).
    pub rfm_recency: Option<i16>,
    pub rfm_frequency: Option<i16>,
    pub rfm_monetary: Option<i16>,
    /// The named RFM segment (`champions`, `at_risk`, ...).
    pub rfm_segment: Option<String>,
    /// P(still buying), by BG/NBD.
    pub probability_alive: Option<f64>,
    /// Expected purchases over the next 52 weeks.
    pub expected_purchases: Option<f64>,
    /// Expected spend over the next 52 weeks, in major units.
    pub expected_value: Option<f64>,
    /// Product ids the recommendations model offers, best first, none already bought.
    pub recommended: Option<Json>,
    pub computed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
