//! Conditions on one column: numbers, times, dates, text, ids, closed sets of values.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{Condition, Value};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::values::TextEnum;

/// Conditions on an ordered value: a number, a time, a date, an id.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderedFilter<T> {
    /// Equal to.
    pub eq: Option<T>,
    /// Not equal to, or null.
    pub ne: Option<T>,
    /// One of.
    #[serde(rename = "in")]
    pub in_list: Option<Vec<T>>,
    /// None of, or null.
    pub not_in: Option<Vec<T>>,
    /// Greater than.
    pub gt: Option<T>,
    /// At least.
    pub gte: Option<T>,
    /// Less than.
    pub lt: Option<T>,
    /// At most.
    pub lte: Option<T>,
    /// Null (`true`) or not null (`false`).
    pub is_null: Option<bool>,
}

/// Conditions on a whole number.
pub type IntFilter = OrderedFilter<i64>;
/// Conditions on a point in time.
pub type DateTimeFilter = OrderedFilter<DateTime<Utc>>;
/// Conditions on a calendar date.
pub type DateFilter = OrderedFilter<NaiveDate>;
/// Conditions on a record id (ids grow with creation, so ranges work too).
pub type IdFilter = OrderedFilter<RecordId>;

impl<T: Clone + Into<Value>> OrderedFilter<T> {
    /// The condition on `target` (a column, or an attribute inside one).
    pub fn condition(&self, target: Expr) -> Condition {
        compare(
            target,
            Ops {
                eq: self.eq.clone(),
                ne: self.ne.clone(),
                in_list: self.in_list.clone(),
                not_in: self.not_in.clone(),
                gt: self.gt.clone(),
                gte: self.gte.clone(),
                lt: self.lt.clone(),
                lte: self.lte.clone(),
            },
            self.is_null,
        )
    }
}

impl<T> OrderedFilter<T> {
    /// No operator given: `{}`.
    pub fn is_empty(&self) -> bool {
        self.eq.is_none()
            && self.ne.is_none()
            && self.in_list.is_none()
            && self.not_in.is_none()
            && self.gt.is_none()
            && self.gte.is_none()
            && self.lt.is_none()
            && self.lte.is_none()
            && self.is_null.is_none()
    }
}

impl<T: PartialOrd> OrderedFilter<T> {
    /// Whether a (non-null) value meets every operator, as the SQL condition would judge
    /// it: for aggregates, where "no rows" is the value zero and has no row to test.
    pub fn matches(&self, v: &T) -> bool {
        self.eq.as_ref().is_none_or(|x| v == x)
            && self.ne.as_ref().is_none_or(|x| v != x)
            && self.in_list.as_ref().is_none_or(|l| l.contains(v))
            && self.not_in.as_ref().is_none_or(|l| !l.contains(v))
            && self.gt.as_ref().is_none_or(|x| v > x)
            && self.gte.as_ref().is_none_or(|x| v >= x)
            && self.lt.as_ref().is_none_or(|x| v < x)
            && self.lte.as_ref().is_none_or(|x| v <= x)
            && self.is_null != Some(true)
    }
}

/// The comparison operators of one condition, already in column values.
struct Ops<T> {
    eq: Option<T>,
    ne: Option<T>,
    in_list: Option<Vec<T>>,
    not_in: Option<Vec<T>>,
    gt: Option<T>,
    gte: Option<T>,
    lt: Option<T>,
    lte: Option<T>,
}

impl<T> Default for Ops<T> {
    fn default() -> Self {
        Ops {
            eq: None,
            ne: None,
            in_list: None,
            not_in: None,
            gt: None,
            gte: None,
            lt: None,
            lte: None,
        }
    }
}

/// The comparison operators, shared by every scalar.
fn compare<T: Into<Value>>(target: Expr, ops: Ops<T>, is_null: Option<bool>) -> Condition {
    let mut c = Condition::all();
    if let Some(x) = ops.eq {
        c = c.add(target.clone().eq(x));
    }
    if let Some(x) = ops.ne {
        c = c.add(
            Condition::any()
                .add(target.clone().ne(x))
                .add(target.clone().is_null()),
        );
    }
    if let Some(xs) = ops.in_list {
        c = c.add(target.clone().is_in(xs));
    }
    if let Some(xs) = ops.not_in {
        c = c.add(
            Condition::any()
                .add(target.clone().is_not_in(xs))
                .add(target.clone().is_null()),
        );
    }
    if let Some(x) = ops.gt {
        c = c.add(target.clone().gt(x));
    }
    if let Some(x) = ops.gte {
        c = c.add(target.clone().gte(x));
    }
    if let Some(x) = ops.lt {
        c = c.add(target.clone().lt(x));
    }
    if let Some(x) = ops.lte {
        c = c.add(target.clone().lte(x));
    }
    match is_null {
        Some(true) => c = c.add(target.is_null()),
        Some(false) => c = c.add(target.is_not_null()),
        None => {}
    }
    c
}

/// Conditions on text.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringFilter {
    /// Equal to.
    pub eq: Option<String>,
    /// Not equal to, or null.
    pub ne: Option<String>,
    /// One of.
    #[serde(rename = "in")]
    pub in_list: Option<Vec<String>>,
    /// None of, or null.
    pub not_in: Option<Vec<String>>,
    /// Substring, ignoring ASCII case.
    pub contains: Option<String>,
    /// Prefix, ignoring ASCII case.
    pub starts_with: Option<String>,
    /// After, bytewise.
    pub gt: Option<String>,
    /// At or after, bytewise.
    pub gte: Option<String>,
    /// Before, bytewise.
    pub lt: Option<String>,
    /// At or before, bytewise.
    pub lte: Option<String>,
    /// Null (`true`) or not null (`false`).
    pub is_null: Option<bool>,
}

impl StringFilter {
    /// The condition on `target`.
    pub fn condition(&self, target: Expr) -> Condition {
        let mut c = compare(
            target.clone(),
            Ops {
                eq: self.eq.clone(),
                ne: self.ne.clone(),
                in_list: self.in_list.clone(),
                not_in: self.not_in.clone(),
                gt: self.gt.clone(),
                gte: self.gte.clone(),
                lt: self.lt.clone(),
                lte: self.lte.clone(),
            },
            self.is_null,
        );
        if let Some(x) = &self.contains {
            c = c.add(ilike(
                target.clone(),
                format!("%{}%", escape_like(&x.to_ascii_lowercase())),
            ));
        }
        if let Some(x) = &self.starts_with {
            c = c.add(ilike(
                target,
                format!("{}%", escape_like(&x.to_ascii_lowercase())),
            ));
        }
        c
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn ilike(target: Expr, pattern: String) -> Expr {
    Expr::expr(Func::lower(target)).like(LikeExpr::new(pattern).escape('\\'))
}

/// Conditions on a closed set of values (a lifecycle stage, a deal status), written as
/// the GraphQL enum names (`CUSTOMER`, `WEB_FORM`) or the stored spelling.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(bound(deserialize = "E: TextEnum"))]
pub struct EnumFilter<E> {
    /// Equal to.
    pub eq: Option<EnumValue<E>>,
    /// Not equal to, or null.
    pub ne: Option<EnumValue<E>>,
    /// One of.
    #[serde(rename = "in")]
    pub in_list: Option<Vec<EnumValue<E>>>,
    /// None of, or null.
    pub not_in: Option<Vec<EnumValue<E>>>,
    /// Null (`true`) or not null (`false`).
    pub is_null: Option<bool>,
}

impl<E: TextEnum> EnumFilter<E> {
    /// The condition on `target`, which holds the stored spelling.
    pub fn condition(&self, target: Expr) -> Condition {
        let text = |v: &EnumValue<E>| v.0.as_str().to_string();
        let list = |l: &Option<Vec<EnumValue<E>>>| l.as_ref().map(|l| l.iter().map(text).collect());
        compare(
            target,
            Ops {
                eq: self.eq.as_ref().map(text),
                ne: self.ne.as_ref().map(text),
                in_list: list(&self.in_list),
                not_in: list(&self.not_in),
                ..Ops::default()
            },
            self.is_null,
        )
    }
}

/// One value of a closed set, read from its GraphQL name or stored spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnumValue<E>(pub E);

impl<'de, E: TextEnum> Deserialize<'de> for EnumValue<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        E::ALL
            .iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(raw.trim()))
            .map(|v| EnumValue(*v))
            .ok_or_else(|| {
                let names: Vec<String> = E::ALL.iter().map(|v| v.as_str().to_uppercase()).collect();
                de::Error::custom(format!("'{raw}' is not one of {}", names.join(", ")))
            })
    }
}

/// A record id: a positive whole number, written as a number or as the decimal text of
/// a GraphQL `ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordId(pub i64);

impl From<RecordId> for Value {
    fn from(id: RecordId) -> Value {
        Value::BigInt(Some(id.0))
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Id(PhantomData<RecordId>);
        impl Visitor<'_> for Id {
            type Value = RecordId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a record id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RecordId, E> {
                (v > 0)
                    .then_some(RecordId(v))
                    .ok_or_else(|| E::custom(format!("'{v}' is not a valid id")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RecordId, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom(format!("'{v}' is not a valid id")))
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RecordId, E> {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(RecordId)
                    .ok_or_else(|| E::custom(format!("'{v}' is not a valid id")))
            }
        }
        d.deserialize_any(Id(PhantomData))
    }
}

/// Conditions on a contact's tags.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TagsFilter {
    /// Has this tag.
    pub has: Option<String>,
    /// Has at least one of these tags.
    pub has_any: Option<Vec<String>>,
    /// Has every one of these tags.
    pub has_all: Option<Vec<String>>,
    /// Has none of these tags.
    pub has_none: Option<Vec<String>>,
}

/// The name of a custom attribute: 1 to 64 characters.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct AttributeKey(String);

impl AttributeKey {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AttributeKey {
    type Error = String;
    fn try_from(key: String) -> Result<Self, String> {
        if key.is_empty() || key.chars().count() > 64 {
            return Err("an attribute's name must have 1 to 64 characters".into());
        }
        Ok(AttributeKey(key))
    }
}
