//! Products and the orders customers place for them.

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::{outbox, records};
use crate::values::{Currency, Money, OrderStatus, Patch, Text, WebUrl, WebhookEventType};
use chrono::{DateTime, Utc};
use rapport_schema::{contact, order, order_line, product};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};

/// Fields of a product as a client sends them; on update, absent fields are kept.
#[derive(Clone, Debug, Default)]
pub struct ProductInput {
    /// Stock-keeping unit, unique in the workspace.
    pub sku: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Category, free text.
    pub category: Patch<String>,
    /// Unit price in major units.
    pub price: Option<f64>,
    /// ISO 4217 currency; USD by default.
    pub currency: Option<String>,
    /// The product's page, for links in email.
    pub url: Patch<String>,
}

/// Creates a product.
pub async fn create_product(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: ProductInput,
) -> Result<product::Model> {
    let now = clock::now();
    let am = product::ActiveModel {
        workspace_id: Set(who.workspace_id),
        created_at: Set(now),
        category: Set(None),
        url: Set(None),
        ..Default::default()
    };
    if input.sku.is_none() || input.name.is_none() {
        return Err(EngineError::invalid(
            if input.sku.is_none() { "sku" } else { "name" },
            "is required",
        ));
    }
    save_product(db, who.workspace_id, am, input, None).await
}

/// Changes the given fields of a product.
pub async fn update_product(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: ProductInput,
) -> Result<product::Model> {
    let current = records::get::<product::Entity>(db, who.workspace_id, id).await?;
    let currency = current.currency.clone();
    save_product(
        db,
        who.workspace_id,
        current.into(),
        input,
        Some((id, currency)),
    )
    .await
}

async fn save_product(
    db: &impl ConnectionTrait,
    ws: i64,
    mut am: product::ActiveModel,
    input: ProductInput,
    existing: Option<(i64, String)>,
) -> Result<product::Model> {
    if let Some(sku) = input.sku {
        let sku = Text::parse("sku", &sku, 64)?.into_string();
        let mut clash = product::Entity::find()
            .filter(product::Column::WorkspaceId.eq(ws))
            .filter(product::Column::Sku.eq(sku.clone()));
        if let Some((id, _)) = &existing {
            clash = clash.filter(product::Column::Id.ne(*id));
        }
        if let Some(other) = clash.one(db).await? {
            return Err(EngineError::Conflict(format!(
                "product {} already has the SKU {sku}",
                other.id
            )));
        }
        am.sku = Set(sku);
    }
    if let Some(n) = input.name {
        am.name = Set(Text::parse("name", &n, 200)?.into_string());
    }
    if let Some(c) = input
        .category
        .parse(|c| Text::parse("category", &c, 100).map(Text::into_string))?
        .into_change()
    {
        am.category = Set(c);
    }
    if let Some(u) = input
        .url
        .parse(|u| WebUrl::parse("url", &u).map(WebUrl::into_string))?
        .into_change()
    {
        am.url = Set(u);
    }
    let old_currency = existing.as_ref().map(|(_, c)| c.as_str()).unwrap_or("USD");
    let currency = Currency::parse(
        "currency",
        input.currency.as_deref().unwrap_or(old_currency),
    )?;
    match input.price {
        Some(p) => am.price_minor = Set(Money::parse("price", p, currency)?.minor),
        None if existing.is_none() => return Err(EngineError::invalid("price", "is required")),
        None if currency.code() != old_currency => {
            return Err(EngineError::invalid(
                "currency",
                "changing the currency needs the price in the new currency",
            ));
        }
        None => {}
    }
    am.currency = Set(currency.code().to_string());
    am.updated_at = Set(clock::now());
    Ok(if existing.is_some() {
        am.update(db).await?
    } else {
        am.insert(db).await?
    })
}

/// One line of a new order.
#[derive(Clone, Debug)]
pub struct OrderLineInput {
    /// The product bought, if it is in the catalogue.
    pub product_id: Option<i64>,
    /// How many (at least 1).
    pub quantity: i32,
    /// Price per unit in major units; the product's price by default.
    pub unit_price: Option<f64>,
}

/// An order as a client sends it.
#[derive(Clone, Debug)]
pub struct OrderInput {
    /// Who bought.
    pub contact_id: i64,
    /// When; now by default.
    pub placed_at: Option<DateTime<Utc>>,
    /// Progress; paid by default.
    pub status: Option<OrderStatus>,
    /// ISO 4217 currency of every line; USD by default.
    pub currency: Option<String>,
    /// What was bought (at least one line).
    pub lines: Vec<OrderLineInput>,
}

/// Records an order with its lines; the total is the sum of the lines.
pub async fn create_order(
    db: &DatabaseConnection,
    who: &Principal,
    input: OrderInput,
) -> Result<order::Model> {
    let ws = who.workspace_id;
    let currency = Currency::parse("currency", input.currency.as_deref().unwrap_or("USD"))?;
    if input.lines.is_empty() {
        return Err(EngineError::invalid(
            "lines",
            "an order needs at least one line",
        ));
    }
    if input.lines.len() > 1000 {
        return Err(EngineError::invalid(
            "lines",
            "at most 1000 lines per order",
        ));
    }
    let tx = crate::platform::db::write(db).await?;
    records::ensure_exists::<contact::Entity>(&tx, ws, input.contact_id).await?;
    let mut lines = Vec::with_capacity(input.lines.len());
    let mut total: i64 = 0;
    for (i, l) in input.lines.iter().enumerate() {
        if l.quantity < 1 {
            return Err(EngineError::invalid(
                format!("lines[{i}].quantity"),
                "must be at least 1",
            ));
        }
        let unit_minor = match (l.unit_price, l.product_id) {
            (Some(p), _) => Money::parse(&format!("lines[{i}].unitPrice"), p, currency)?.minor,
            (None, Some(pid)) => {
                let p = records::get::<product::Entity>(&tx, ws, pid).await?;
                if p.currency != currency.code() {
                    return Err(EngineError::invalid(
                        format!("lines[{i}].unitPrice"),
                        format!(
                            "product {pid} is priced in {}; give the price in {}",
                            p.currency,
                            currency.code()
                        ),
                    ));
                }
                p.price_minor
            }
            (None, None) => {
                return Err(EngineError::invalid(
                    format!("lines[{i}]"),
                    "needs a productId or a unitPrice",
                ));
            }
        };
        if let Some(pid) = l.product_id {
            records::ensure_exists::<product::Entity>(&tx, ws, pid).await?;
        }
        total = unit_minor
            .checked_mul(l.quantity.into())
            .and_then(|v| v.checked_add(total))
            .ok_or_else(|| EngineError::invalid("lines", "the order total is too large"))?;
        lines.push((l.product_id, l.quantity, unit_minor));
    }
    let now = clock::now();
    let saved = order::ActiveModel {
        workspace_id: Set(ws),
        contact_id: Set(input.contact_id),
        placed_at: Set(input.placed_at.unwrap_or(now)),
        status: Set(input
            .status
            .unwrap_or(OrderStatus::Paid)
            .as_str()
            .to_string()),
        currency: Set(currency.code().to_string()),
        total_minor: Set(total),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    order_line::Entity::insert_many(lines.into_iter().map(|(product_id, quantity, unit)| {
        order_line::ActiveModel {
            workspace_id: Set(ws),
            order_id: Set(saved.id),
            product_id: Set(product_id),
            quantity: Set(quantity),
            unit_price_minor: Set(unit),
            ..Default::default()
        }
    }))
    .exec_without_returning(&tx)
    .await?;
    // Ordered with the rest of the contact's events, and forgotten with them on erasure.
    let subject = outbox::Subject::contact(saved.contact_id);
    let data = serde_json::json!({ "object": outbox::object("Order", &saved) });
    outbox::emit(&tx, ws, WebhookEventType::OrderCreated, subject, data).await?;
    tx.commit().await?;
    Ok(saved)
}

/// Changes an order's status (the lines of a placed order do not change).
pub async fn set_order_status(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    status: OrderStatus,
) -> Result<order::Model> {
    let mut am: order::ActiveModel = records::get::<order::Entity>(db, who.workspace_id, id)
        .await?
        .into();
    am.status = Set(status.as_str().to_string());
    am.updated_at = Set(clock::now());
    Ok(am.update(db).await?)
}
