//! Conditions on a contact's custom attributes: as JSON text for any attribute, or by
//! type — number, date, yes/no, options — for the attributes a workspace declared as
//! typed fields ([`crate::crm::fields`]), read from their typed copies.

use rapport_schema as s;
use sea_orm::sea_query::{BinOper, Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, Condition};
use serde::Deserialize;

use super::scalars::*;

/// Conditions on a number with a fractional part.
type NumberFilter = OrderedFilter<f64>;

/// Conditions on the options a multi-select (or enum) field holds.
#[derive(Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionsFilter {
    /// Holds at least one of these.
    pub has_any: Option<Vec<String>>,
    /// Holds every one of these.
    pub has_all: Option<Vec<String>>,
    /// Holds none of these.
    pub has_none: Option<Vec<String>>,
}

/// A condition on one custom attribute: exactly one of `value` (as text, numbers and
/// booleans as JSON writes them: `5`, `true`), `number`, `date`, `boolean` or `options`,
/// the typed ones for declared fields only. A typed comparison matches only contacts
/// that hold a value; `isNull: true` matches those that hold none.
#[derive(Deserialize, Clone, Debug)]
#[serde(try_from = "RawAttributeFilter")]
pub struct AttributeFilter {
    /// The attribute's name.
    pub key: AttributeKey,
    /// The condition.
    pub condition: AttributeCondition,
}

/// What an [`AttributeFilter`] compares.
#[derive(Clone, Debug)]
pub enum AttributeCondition {
    /// The JSON value as text; a missing attribute is null.
    Text(StringFilter),
    /// A number field.
    Number(NumberFilter),
    /// A date field.
    Date(DateFilter),
    /// A yes/no field.
    Boolean(bool),
    /// An enum or multi-select field's options.
    Options(OptionsFilter),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawAttributeFilter {
    key: AttributeKey,
    value: Option<StringFilter>,
    number: Option<NumberFilter>,
    date: Option<DateFilter>,
    boolean: Option<bool>,
    options: Option<OptionsFilter>,
}

impl TryFrom<RawAttributeFilter> for AttributeFilter {
    type Error = String;
    fn try_from(r: RawAttributeFilter) -> Result<Self, String> {
        let mut given = Vec::new();
        if let Some(f) = r.value {
            given.push(AttributeCondition::Text(f));
        }
        if let Some(f) = r.number {
            given.push(AttributeCondition::Number(f));
        }
        if let Some(f) = r.date {
            given.push(AttributeCondition::Date(f));
        }
        if let Some(b) = r.boolean {
            given.push(AttributeCondition::Boolean(b));
        }
        if let Some(f) = r.options {
            given.push(AttributeCondition::Options(f));
        }
        if given.len() != 1 {
            return Err(
                "an attribute condition has exactly one of value, number, date, boolean or options"
                    .into(),
            );
        }
        Ok(AttributeFilter {
            key: r.key,
            condition: given.remove(0),
        })
    }
}

impl AttributeFilter {
    /// How many subqueries the condition compiles to (a JSON member read counts one).
    pub fn reads(&self) -> usize {
        match &self.condition {
            AttributeCondition::Text(_) | AttributeCondition::Boolean(_) => 1,
            AttributeCondition::Number(f) => 1 + usize::from(f.is_null.is_some()),
            AttributeCondition::Date(f) => 1 + usize::from(f.is_null.is_some()),
            AttributeCondition::Options(f) => {
                usize::from(f.has_any.is_some())
                    + f.has_all.as_ref().map_or(0, Vec::len)
                    + usize::from(f.has_none.is_some())
            }
        }
    }

    pub(super) fn condition(&self, ws: i64) -> Condition {
        use s::contact_field_value::Column as V;
        let key = self.key.as_str();
        match &self.condition {
            AttributeCondition::Text(f) => {
                // `->>` reads a JSON member as SQL on both databases (SQLite 3.38+,
                // PostgreSQL jsonb); the cast makes SQLite's numbers text like PostgreSQL's.
                let member = Expr::col(s::contact::Column::Attributes.as_column_ref())
                    .binary(BinOper::Custom("->>"), Expr::val(key));
                f.condition(member.cast_as("TEXT"))
            }
            AttributeCondition::Number(f) => ordered(ws, key, f, V::NumberValue),
            AttributeCondition::Date(f) => {
                // Stored as `YYYY-MM-DD` text, which sorts as the dates do.
                let day = |d: &chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
                let days = |l: &Option<Vec<chrono::NaiveDate>>| {
                    l.as_ref().map(|l| l.iter().map(day).collect())
                };
                let text = OrderedFilter::<String> {
                    eq: f.eq.as_ref().map(day),
                    ne: f.ne.as_ref().map(day),
                    in_list: days(&f.in_list),
                    not_in: days(&f.not_in),
                    gt: f.gt.as_ref().map(day),
                    gte: f.gte.as_ref().map(day),
                    lt: f.lt.as_ref().map(day),
                    lte: f.lte.as_ref().map(day),
                    is_null: f.is_null,
                };
                ordered(ws, key, &text, V::TextValue)
            }
            AttributeCondition::Boolean(b) => holding(ws, key, |q| {
                q.and_where(Expr::col(V::NumberValue.as_column_ref()).eq(f64::from(u8::from(*b))));
            }),
            AttributeCondition::Options(f) => {
                let with = |options: &Vec<String>| {
                    let options = options.clone();
                    holding(ws, key, move |q| {
                        q.and_where(Expr::col(V::TextValue.as_column_ref()).is_in(options));
                    })
                };
                let mut c = Condition::all();
                if let Some(l) = &f.has_any {
                    c = c.add(with(l));
                }
                for o in f.has_all.iter().flatten() {
                    c = c.add(with(&vec![o.clone()]));
                }
                if let Some(l) = &f.has_none {
                    c = c.add(with(l).not());
                }
                c
            }
        }
    }
}

/// Contacts holding a value of the declared field `key` that meets `extra`.
fn holding(ws: i64, key: &str, extra: impl FnOnce(&mut SelectStatement)) -> Condition {
    use s::contact_field_value::Column as V;
    use s::custom_field::Column as F;
    let field = Query::select()
        .column(F::Id)
        .from(s::custom_field::Entity)
        .and_where(Expr::col(F::WorkspaceId.as_column_ref()).eq(ws))
        .and_where(Expr::col(F::Key.as_column_ref()).eq(key))
        .to_owned();
    let mut q = Query::select();
    q.column(V::ContactId)
        .from(s::contact_field_value::Entity)
        .and_where(Expr::col(V::WorkspaceId.as_column_ref()).eq(ws))
        .and_where(V::FieldId.in_subquery(field));
    extra(&mut q);
    Condition::all().add(s::contact::Column::Id.in_subquery(q))
}

/// An ordered comparison on one typed column; `isNull` asks whether a value is held.
fn ordered<T: Clone + Into<sea_orm::Value>>(
    ws: i64,
    key: &str,
    f: &OrderedFilter<T>,
    column: s::contact_field_value::Column,
) -> Condition {
    let mut c = Condition::all();
    match f.is_null {
        Some(true) => c = c.add(holding(ws, key, |_| {}).not()),
        Some(false) => c = c.add(holding(ws, key, |_| {})),
        None => {}
    }
    let compared = OrderedFilter {
        is_null: None,
        ..f.clone()
    };
    if !compared.is_empty() {
        c = c.add(holding(ws, key, |q| {
            q.cond_where(compared.condition(Expr::col(column.as_column_ref())));
        }));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exactly_one_comparison_per_attribute() {
        let parse = |v: serde_json::Value| serde_json::from_value::<AttributeFilter>(v);
        assert!(matches!(
            parse(json!({"key": "seats", "number": {"gte": 10}}))
                .unwrap()
                .condition,
            AttributeCondition::Number(_)
        ));
        assert!(matches!(
            parse(json!({"key": "plan", "value": {"eq": "pro"}}))
                .unwrap()
                .condition,
            AttributeCondition::Text(_)
        ));
        assert!(parse(json!({"key": "seats"})).is_err());
        assert!(
            parse(json!({"key": "seats", "number": {"gte": 1}, "value": {"eq": "1"}})).is_err()
        );
        assert!(parse(json!({"key": "seats", "numbr": {"gte": 1}})).is_err());
    }
}
