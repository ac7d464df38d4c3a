//! Typed custom fields on the graph: declaring what a contact attribute holds, so writes
//! are checked and filters compare by type.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use rapport_engine::crm::fields;
use sea_orm::DatabaseConnection;

use crate::error::OrGraphql;
use crate::graphql::enums::FieldKind;
use crate::graphql::ids::{parse_id, to_id};
use crate::graphql::types::principal;

/// A field as a client declares it.
#[derive(InputObject, Default)]
pub struct CustomFieldInput {
    /// The attribute it types (`seats`): letters, digits and `_`; fixed once declared.
    pub key: Option<String>,
    /// How people read it.
    pub label: Option<String>,
    /// What it holds; fixed once declared.
    pub kind: Option<FieldKind>,
    /// The options of an ENUM or MULTI_SELECT field (replaces the list; an option a
    /// contact holds cannot be removed).
    pub options: Option<Vec<String>>,
}

impl From<CustomFieldInput> for fields::FieldInput {
    fn from(i: CustomFieldInput) -> Self {
        fields::FieldInput {
            key: i.key,
            label: i.label,
            kind: i.kind.map(Into::into),
            options: i.options,
        }
    }
}

/// What one contact attribute holds in this workspace.
pub struct CustomField(pub fields::Field);

#[Object]
impl CustomField {
    async fn id(&self) -> ID {
        to_id(self.0.row.id)
    }
    /// The attribute's name (`contact.attributes.<key>`).
    async fn key(&self) -> &str {
        &self.0.row.key
    }
    async fn label(&self) -> &str {
        &self.0.row.label
    }
    async fn kind(&self) -> FieldKind {
        self.0.kind.into()
    }
    /// The options of an enum or multi-select field.
    async fn options(&self) -> &[String] {
        &self.0.options
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.row.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.row.updated_at
    }
}

/// Reading fields.
#[derive(Default)]
pub struct FieldQuery;

#[Object]
impl FieldQuery {
    /// Every declared field, by key.
    async fn custom_fields(&self, ctx: &Context<'_>) -> Result<Vec<CustomField>> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(fields::list(db, who)
            .await
            .gql()?
            .into_iter()
            .map(CustomField)
            .collect())
    }
}

/// Declaring fields (admin).
#[derive(Default)]
pub struct FieldMutation;

#[Object]
impl FieldMutation {
    /// Declares what an attribute holds. Refused while some contact holds a value of it
    /// that does not fit (how many, and one of them, are named); the values that fit are
    /// then compared by type.
    async fn create_custom_field(
        &self,
        ctx: &Context<'_>,
        input: CustomFieldInput,
    ) -> Result<CustomField> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(CustomField(
            fields::create(db, who, input.into()).await.gql()?,
        ))
    }
    /// Changes a field's label or options.
    async fn update_custom_field(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: CustomFieldInput,
    ) -> Result<CustomField> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        Ok(CustomField(
            fields::update(db, who, parse_id("id", &id)?, input.into())
                .await
                .gql()?,
        ))
    }
    /// Removes a declaration: the attribute stays on every contact as free-form JSON.
    async fn delete_custom_field(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let who = principal(ctx)?;
        let db = ctx.data_unchecked::<DatabaseConnection>();
        fields::delete(db, who, parse_id("id", &id)?).await.gql()?;
        Ok(id)
    }
}
