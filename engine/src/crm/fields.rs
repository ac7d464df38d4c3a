//! Typed custom fields: a workspace declares that a contact attribute (`seats`,
//! `renewal_date`, `plan`) holds a number, a date, a yes/no, one option of a list or
//! several. Values are then checked when a contact is written, and copied into
//! `contact_field_values` as typed columns, so filters compare them by type ("100" > "9")
//! with an index instead of as JSON text.
//!
//! Attributes without a definition stay free-form JSON, compared as text, as before.
//! Declaring a field over existing data is refused while any contact holds a value that
//! does not fit, naming how many and one of them: nothing is converted behind anyone's
//! back.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;
use rapport_schema::{contact, contact_field_value, custom_field};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::pagination::{LeadKey, SortDirection};
use crate::values::{FieldKind, Scope, Text};

/// Fields one workspace may declare.
pub const MAX_FIELDS: usize = 200;
/// Options one enum or multi-select field may offer.
pub const MAX_OPTIONS: usize = 100;
/// Characters of a text field's value: it is indexed for comparisons, and PostgreSQL
/// refuses index entries past about 2.7 kB.
pub const MAX_TEXT_CHARS: usize = 500;

/// A field as a client declares it.
#[derive(Clone, Debug, Default)]
pub struct FieldInput {
    /// The attribute it types (`seats`): letters, digits and `_`, 1 to 64.
    pub key: Option<String>,
    /// How people read it (`Seats`).
    pub label: Option<String>,
    /// What it holds; fixed once declared.
    pub kind: Option<FieldKind>,
    /// The options of an enum or multi-select field (replaces the list).
    pub options: Option<Vec<String>>,
}

fn parse_key(raw: &str) -> Result<String> {
    let ok =
        (1..=64).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(raw.to_string())
    } else {
        Err(EngineError::invalid(
            "key",
            "a field's key is 1 to 64 letters, digits or '_' (the attribute's name)",
        ))
    }
}

fn parse_options(kind: FieldKind, raw: Option<Vec<String>>) -> Result<Vec<String>> {
    let listed = matches!(kind, FieldKind::Enum | FieldKind::MultiSelect);
    let raw = raw.unwrap_or_default();
    if !listed {
        if !raw.is_empty() {
            return Err(EngineError::invalid(
                "options",
                "only enum and multi-select fields have options",
            ));
        }
        return Ok(Vec::new());
    }
    if raw.is_empty() || raw.len() > MAX_OPTIONS {
        return Err(EngineError::invalid(
            "options",
            format!("an enum or multi-select field has 1 to {MAX_OPTIONS} options"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, o) in raw.iter().enumerate() {
        let o = Text::parse(&format!("options[{i}]"), o, 100)?.into_string();
        if !seen.insert(o.clone()) {
            return Err(EngineError::invalid(
                format!("options[{i}]"),
                format!("'{o}' is listed twice"),
            ));
        }
        out.push(o);
    }
    Ok(out)
}

/// A declared field, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Its row.
    pub row: custom_field::Model,
    /// What it holds.
    pub kind: FieldKind,
    /// Its options (enum and multi-select).
    pub options: Vec<String>,
}

impl Field {
    fn of(row: custom_field::Model) -> Field {
        let options = serde_json::from_value(row.options.clone()).unwrap_or_default();
        Field {
            kind: FieldKind::from_db(&row.kind),
            options,
            row,
        }
    }

    /// The typed values `value` stands for, or why it does not fit: a number, a date
    /// (`YYYY-MM-DD`), a boolean, one option, a list of distinct options; text for text.
    /// Null is no value.
    pub fn typed(&self, value: &Value) -> std::result::Result<Vec<Typed>, String> {
        if value.is_null() {
            return Ok(Vec::new());
        }
        let option = |v: &Value| -> std::result::Result<String, String> {
            match v.as_str() {
                Some(s) if self.options.iter().any(|o| o == s) => Ok(s.to_string()),
                _ => Err(format!(
                    "must be one of {}",
                    self.options
                        .iter()
                        .map(|o| format!("'{o}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        };
        Ok(match self.kind {
            FieldKind::Text => match value {
                Value::String(s) if s.chars().count() <= MAX_TEXT_CHARS => {
                    vec![Typed::Text(s.clone())]
                }
                Value::String(_) => {
                    return Err(format!(
                        "must be text of at most {MAX_TEXT_CHARS} characters"
                    ));
                }
                _ => return Err("must be text".into()),
            },
            FieldKind::Number => match value.as_f64() {
                Some(n) if n.is_finite() => vec![Typed::Number(n)],
                _ => return Err("must be a number (not text)".into()),
            },
            FieldKind::Date => match value
                .as_str()
                .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d"))
            {
                Some(Ok(d)) => vec![Typed::Text(d.format("%Y-%m-%d").to_string())],
                _ => return Err("must be a date as YYYY-MM-DD".into()),
            },
            FieldKind::Boolean => match value {
                Value::Bool(b) => vec![Typed::Number(f64::from(u8::from(*b)))],
                _ => return Err("must be true or false".into()),
            },
            FieldKind::Enum => vec![Typed::Text(option(value)?)],
            FieldKind::MultiSelect => {
                let Some(list) = value.as_array() else {
                    return Err("must be a list of options".into());
                };
                let mut seen = BTreeSet::new();
                for v in list {
                    seen.insert(option(v)?);
                }
                seen.into_iter().map(Typed::Text).collect()
            }
        })
    }
}

/// A value as `contact_field_values` stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum Typed {
    /// Numbers, and booleans as 1 or 0.
    Number(f64),
    /// Text, dates as `YYYY-MM-DD`, options.
    Text(String),
}

/// The workspace's fields, by key.
pub async fn definitions(db: &impl ConnectionTrait, ws: i64) -> Result<HashMap<String, Field>> {
    Ok(custom_field::Entity::find()
        .filter(custom_field::Column::WorkspaceId.eq(ws))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.key.clone(), Field::of(r)))
        .collect())
}

/// How contacts sort by a typed field: by its number (numbers, booleans) or its text
/// (text, dates, options), contacts without a value last in either direction.
#[derive(Clone, Debug)]
pub enum FieldSort {
    /// Sort keys of type `f64`.
    Number(LeadKey),
    /// Sort keys of type `String`.
    Text(LeadKey),
}

/// The sort key of declared field `key` for a list of contacts (read off the field's
/// typed values, so `9` sorts before `100`). An undeclared key is a `VALIDATION` error:
/// untyped attributes have no order.
pub async fn sort_by(
    db: &impl ConnectionTrait,
    ws: i64,
    key: &str,
    direction: SortDirection,
) -> Result<FieldSort> {
    let field = custom_field::Entity::find()
        .filter(custom_field::Column::WorkspaceId.eq(ws))
        .filter(custom_field::Column::Key.eq(key))
        .one(db)
        .await?
        .ok_or_else(|| {
            EngineError::invalid(
                "orderByAttribute.key",
                format!(
                    "'{}' is not a declared custom field; declare it with a type to sort by it",
                    crate::values::excerpt(key)
                ),
            )
        })?;
    let numeric = matches!(
        FieldKind::from_db(&field.kind),
        FieldKind::Number | FieldKind::Boolean
    );
    let asc = direction == SortDirection::Asc;
    // MIN/MAX: a multi-select has a row per option and sorts by its first (or last).
    let pick = if asc { "MIN" } else { "MAX" };
    let (column, missing) = match (numeric, asc) {
        // The largest finite doubles: a value can only tie with them, and ties fall to ids.
        (true, true) => ("number_value", "1.7976931348623157e308"),
        (true, false) => ("number_value", "-1.7976931348623157e308"),
        (false, true) => ("text_value", "'\u{10FFFF}'"),
        (false, false) => ("text_value", "''"),
    };
    // The field id is a number from our own row: nothing a client wrote reaches the SQL.
    let expr = sea_orm::sea_query::Expr::cust(format!(
        "COALESCE((SELECT {pick}(v.{column}) FROM contact_field_values v \
         WHERE v.contact_id = \"contacts\".\"id\" AND v.field_id = {}), {missing})",
        field.id
    ));
    let lead = LeadKey {
        // The field's id and kind too: a cursor of a field deleted and declared again
        // (perhaps as another kind) is refused, not compared against other values.
        name: format!("attributes.{}#{}:{}", field.key, field.id, field.kind),
        expr,
        direction,
    };
    Ok(if numeric {
        FieldSort::Number(lead)
    } else {
        FieldSort::Text(lead)
    })
}

/// Every field of the workspace, by key.
pub async fn list(db: &impl ConnectionTrait, who: &Principal) -> Result<Vec<Field>> {
    Ok(custom_field::Entity::find()
        .filter(custom_field::Column::WorkspaceId.eq(who.workspace_id))
        .order_by_asc(custom_field::Column::Key)
        .all(db)
        .await?
        .into_iter()
        .map(Field::of)
        .collect())
}

/// Checks a contact's attributes against the declared fields; `field` names the
/// attributes in errors (`attributes`, `contacts[3].attributes`).
pub fn check(
    fields: &HashMap<String, Field>,
    attributes: &serde_json::Map<String, Value>,
    field: &str,
) -> Result<()> {
    for (key, value) in attributes {
        if let Some(f) = fields.get(key)
            && let Err(why) = f.typed(value)
        {
            return Err(EngineError::invalid(format!("{field}.{key}"), why));
        }
    }
    Ok(())
}

/// Rewrites one contact's typed values from its attributes (which passed [`check`]).
pub async fn sync(
    db: &impl ConnectionTrait,
    fields: &HashMap<String, Field>,
    contact: &contact::Model,
) -> Result<()> {
    sync_many(db, fields, &[contact]).await
}

/// [`sync`] for many contacts: one statement clears their values, one writes them all
/// (an import's batch would otherwise cost two round trips a contact).
pub async fn sync_many(
    db: &impl ConnectionTrait,
    fields: &HashMap<String, Field>,
    contacts: &[&contact::Model],
) -> Result<()> {
    if fields.is_empty() || contacts.is_empty() {
        return Ok(());
    }
    contact_field_value::Entity::delete_many()
        .filter(contact_field_value::Column::ContactId.is_in(contacts.iter().map(|c| c.id)))
        .exec(db)
        .await?;
    let mut rows = Vec::new();
    for contact in contacts {
        for (key, value) in contact.attributes.as_object().into_iter().flatten() {
            let Some(f) = fields.get(key) else { continue };
            // Values written before the field was declared were checked when it was.
            for t in f.typed(value).unwrap_or_default() {
                rows.push(value_row(contact.workspace_id, contact.id, f.row.id, t));
            }
        }
    }
    // Bound parameters per statement stay under every backend's limit.
    for chunk in rows.chunks(2000) {
        contact_field_value::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

fn value_row(
    ws: i64,
    contact_id: i64,
    field_id: i64,
    t: Typed,
) -> contact_field_value::ActiveModel {
    let (number, text) = match t {
        Typed::Number(n) => (Some(n), None),
        Typed::Text(s) => (None, Some(s)),
    };
    contact_field_value::ActiveModel {
        workspace_id: Set(ws),
        contact_id: Set(contact_id),
        field_id: Set(field_id),
        number_value: Set(number),
        text_value: Set(text),
        ..Default::default()
    }
}

/// Contacts read per page when checking and copying existing values.
const PAGE: u64 = 1000;

/// The next page of the workspace's contacts after id `after`: (id, attributes).
async fn contacts_after(
    db: &impl ConnectionTrait,
    ws: i64,
    after: i64,
) -> Result<Vec<(i64, Value)>> {
    Ok(contact::Entity::find()
        .select_only()
        .column(contact::Column::Id)
        .column(contact::Column::Attributes)
        .filter(contact::Column::WorkspaceId.eq(ws))
        .filter(contact::Column::Id.gt(after))
        .order_by_asc(contact::Column::Id)
        .limit(PAGE)
        .into_tuple()
        .all(db)
        .await?)
}

/// Every contact's value of `key`, page by page: (contact, value).
async fn existing_values(
    db: &impl ConnectionTrait,
    ws: i64,
    key: &str,
    mut each: impl FnMut(i64, &Value) -> Result<()>,
) -> Result<()> {
    let mut after = 0;
    loop {
        let page = contacts_after(db, ws, after).await?;
        let Some(&(last, _)) = page.last() else {
            return Ok(());
        };
        for (id, attributes) in &page {
            if let Some(v) = attributes.get(key) {
                each(*id, v)?;
            }
        }
        after = last;
    }
}

/// Declares a field (admin). Existing values of the attribute must fit it; they are then
/// copied as typed values.
pub async fn create(db: &DatabaseConnection, who: &Principal, input: FieldInput) -> Result<Field> {
    who.require(Scope::Admin)?;
    // The declaration and the typed copies land together or not at all.
    let tx = crate::platform::db::write(db).await?;
    let field = declare(&tx, who, input).await?;
    tx.commit().await?;
    Ok(field)
}

async fn declare(db: &impl ConnectionTrait, who: &Principal, input: FieldInput) -> Result<Field> {
    let ws = who.workspace_id;
    let key = parse_key(input.key.as_deref().unwrap_or_default())?;
    let label = Text::parse("label", input.label.as_deref().unwrap_or(&key), 100)?.into_string();
    let kind = input
        .kind
        .ok_or_else(|| EngineError::invalid("kind", "is required"))?;
    let options = parse_options(kind, input.options)?;
    let known = definitions(db, ws).await?;
    if known.contains_key(&key) {
        return Err(EngineError::Conflict(format!(
            "a field '{key}' is already declared"
        )));
    }
    if known.len() >= MAX_FIELDS {
        return Err(EngineError::invalid(
            "key",
            format!("at most {MAX_FIELDS} fields per workspace"),
        ));
    }
    let now = clock::now();
    let row = custom_field::ActiveModel {
        workspace_id: Set(ws),
        key: Set(key.clone()),
        label: Set(label),
        kind: Set(kind.as_str().to_string()),
        options: Set(json!(options)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    let field = Field {
        row: custom_field::Model {
            id: 0,
            workspace_id: ws,
            key: key.clone(),
            label: String::new(),
            kind: kind.as_str().to_string(),
            options: json!(options),
            created_at: now,
            updated_at: now,
        },
        kind,
        options,
    };
    let mut misfits = 0usize;
    let mut example = None;
    existing_values(db, ws, &key, |id, v| {
        if let Err(why) = field.typed(v) {
            misfits += 1;
            example.get_or_insert_with(|| format!("contact {id}: {v} {why}"));
        }
        Ok(())
    })
    .await?;
    if let Some(example) = example {
        return Err(EngineError::invalid(
            "kind",
            format!(
                "{misfits} contact(s) hold a value of '{key}' that does not fit a {} field \
                 ({example}); correct or clear them first",
                kind.as_str()
            ),
        ));
    }
    let row = row.insert(db).await?;
    // Copied a page of contacts at a time, so memory stays flat however many there are.
    let field_id = row.id;
    let mut after = 0;
    loop {
        let page = contacts_after(db, ws, after).await?;
        let Some(&(last, _)) = page.last() else {
            break;
        };
        let rows: Vec<contact_field_value::ActiveModel> = page
            .iter()
            .filter_map(|(id, attributes)| Some((*id, attributes.get(&key)?)))
            .flat_map(|(id, v)| {
                field
                    .typed(v)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |t| value_row(ws, id, field_id, t))
            })
            .collect();
        if !rows.is_empty() {
            contact_field_value::Entity::insert_many(rows)
                .exec_without_returning(db)
                .await?;
        }
        after = last;
    }
    Ok(Field::of(row))
}

/// Changes a field's label or options (admin). An option some contact holds cannot be
/// removed; the kind never changes (declare another field).
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: FieldInput,
) -> Result<Field> {
    who.require(Scope::Admin)?;
    let current = custom_field::Entity::find_by_id(id)
        .filter(custom_field::Column::WorkspaceId.eq(who.workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| EngineError::not_found("CustomField", id))?;
    let field = Field::of(current.clone());
    if input.key.as_deref().is_some_and(|k| k != current.key) {
        return Err(EngineError::invalid("key", "a field's key never changes"));
    }
    if input.kind.is_some_and(|k| k != field.kind) {
        return Err(EngineError::invalid(
            "kind",
            "a field's kind never changes; declare another field",
        ));
    }
    let mut am: custom_field::ActiveModel = current.into();
    if let Some(label) = &input.label {
        am.label = Set(Text::parse("label", label, 100)?.into_string());
    }
    if input.options.is_some() {
        let options = parse_options(field.kind, input.options)?;
        let removed: Vec<&String> = field
            .options
            .iter()
            .filter(|o| !options.contains(o))
            .collect();
        if !removed.is_empty() {
            use sea_orm::PaginatorTrait;
            let held = contact_field_value::Entity::find()
                .filter(contact_field_value::Column::FieldId.eq(id))
                .filter(
                    contact_field_value::Column::TextValue
                        .is_in(removed.iter().map(|s| s.as_str())),
                )
                .count(db)
                .await?;
            if held > 0 {
                return Err(EngineError::invalid(
                    "options",
                    format!(
                        "{held} contact value(s) still use a removed option; change them first"
                    ),
                ));
            }
        }
        am.options = Set(json!(options));
    }
    am.updated_at = Set(clock::now());
    Ok(Field::of(am.update(db).await?))
}

/// Removes a field's declaration (admin): its typed values go, the attribute stays as
/// free-form JSON on every contact.
pub async fn delete(db: &DatabaseConnection, who: &Principal, id: i64) -> Result<()> {
    who.require(Scope::Admin)?;
    let tx = crate::platform::db::write(db).await?;
    let found = custom_field::Entity::find_by_id(id)
        .filter(custom_field::Column::WorkspaceId.eq(who.workspace_id))
        .one(&tx)
        .await?
        .ok_or_else(|| EngineError::not_found("CustomField", id))?;
    contact_field_value::Entity::delete_many()
        .filter(contact_field_value::Column::FieldId.eq(found.id))
        .exec(&tx)
        .await?;
    custom_field::Entity::delete_by_id(found.id)
        .exec(&tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldKind, options: &[&str]) -> Field {
        let now = chrono::Utc::now();
        Field {
            row: custom_field::Model {
                id: 1,
                workspace_id: 1,
                key: "k".into(),
                label: "K".into(),
                kind: kind.as_str().into(),
                options: json!(options),
                created_at: now,
                updated_at: now,
            },
            kind,
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn values_fit_their_kind_or_say_why() {
        let number = field(FieldKind::Number, &[]);
        assert_eq!(number.typed(&json!(100)), Ok(vec![Typed::Number(100.0)]));
        assert!(number.typed(&json!("100")).unwrap_err().contains("number"));
        assert_eq!(number.typed(&Value::Null), Ok(vec![]));
        let date = field(FieldKind::Date, &[]);
        assert_eq!(
            date.typed(&json!("2027-03-01")),
            Ok(vec![Typed::Text("2027-03-01".into())])
        );
        assert!(date.typed(&json!("03/01/2027")).is_err());
        let yes = field(FieldKind::Boolean, &[]);
        assert_eq!(yes.typed(&json!(true)), Ok(vec![Typed::Number(1.0)]));
        assert!(yes.typed(&json!("yes")).is_err());
        let plan = field(FieldKind::Enum, &["free", "pro"]);
        assert!(plan.typed(&json!("pro")).is_ok());
        assert!(
            plan.typed(&json!("gold"))
                .unwrap_err()
                .contains("'free', 'pro'")
        );
        let modules = field(FieldKind::MultiSelect, &["crm", "mail", "ai"]);
        assert_eq!(
            modules.typed(&json!(["mail", "crm", "mail"])),
            Ok(vec![Typed::Text("crm".into()), Typed::Text("mail".into())])
        );
        assert!(modules.typed(&json!("crm")).is_err());
    }

    #[test]
    fn keys_and_options_are_checked() {
        assert!(parse_key("renewal_date").is_ok());
        for bad in ["", "has space", "a.b", &"k".repeat(65)] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
        assert!(parse_options(FieldKind::Enum, None).is_err());
        assert!(parse_options(FieldKind::Enum, Some(vec!["a".into(), "a".into()])).is_err());
        assert!(parse_options(FieldKind::Number, Some(vec!["a".into()])).is_err());
        assert_eq!(
            parse_options(FieldKind::Text, None).unwrap(),
            Vec::<String>::new()
        );
    }
}
