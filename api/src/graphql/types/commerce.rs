//! Products, orders and order lines.

use super::*;

/// Something the business sells.
pub struct Product(pub s::product::Model);

#[Object]
impl Product {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    /// Products most often in the same orders, by lift (needs a trained recommender).
    async fn frequently_bought_together(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5)] first: i32,
    ) -> Result<Vec<BoughtTogether>> {
        Ok(intelligence::bought_together(ctx, self.0.id, first)
            .await?
            .into_iter()
            .map(BoughtTogether)
            .collect())
    }
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// The product's page.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }
    /// Unit price in major units.
    async fn price(&self) -> f64 {
        major(self.0.price_minor, &self.0.currency)
    }
    async fn price_minor(&self) -> i64 {
        self.0.price_minor
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
}

/// A purchase.
pub struct Order(pub s::order::Model);

#[Object]
impl Order {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    async fn status(&self) -> OrderStatus {
        OrderStatus::from_db(&self.0.status)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Sum of the lines in major units.
    async fn total(&self) -> f64 {
        major(self.0.total_minor, &self.0.currency)
    }
    async fn total_minor(&self) -> i64 {
        self.0.total_minor
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }
    async fn contact(&self, ctx: &Context<'_>) -> Result<Option<Contact>> {
        Ok(load::<s::contact::Entity>(ctx, Some(self.0.contact_id))
            .await?
            .map(Contact))
    }
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        let ws = principal(ctx)?.workspace_id;
        let select = scoped::<s::order_line::Entity>(ws, Deleted::Exclude);
        let rows = all_children(
            ctx,
            self.0.id,
            s::order_line::Column::OrderId,
            select,
            vec![],
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|l| OrderLine(l, self.0.currency.clone()))
            .collect())
    }
}

/// One line of an order (with the order's currency).
pub struct OrderLine(pub s::order_line::Model, pub String);

#[Object]
impl OrderLine {
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }
    async fn quantity(&self) -> i32 {
        self.0.quantity
    }
    async fn unit_price(&self) -> f64 {
        major(self.0.unit_price_minor, &self.1)
    }
    async fn unit_price_minor(&self) -> i64 {
        self.0.unit_price_minor
    }
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(load::<s::product::Entity>(ctx, self.0.product_id)
            .await?
            .map(Product))
    }
}

/// A product offered to a contact.
pub struct ProductRecommendation {
    pub recommendation: recommendations::Recommendation,
}

#[Object]
impl ProductRecommendation {
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(
            load::<s::product::Entity>(ctx, Some(self.recommendation.product_id))
                .await?
                .map(Product),
        )
    }
    /// Summed cosine similarity to the contact's purchases.
    async fn score(&self) -> f64 {
        self.recommendation.score
    }
    /// The purchases that led to it.
    async fn because(&self, ctx: &Context<'_>) -> Result<Vec<Product>> {
        let mut out = Vec::new();
        for id in &self.recommendation.because {
            if let Some(p) = load::<s::product::Entity>(ctx, Some(*id)).await? {
                out.push(Product(p));
            }
        }
        Ok(out)
    }
}

/// A product often in the same orders as another.
pub struct BoughtTogether(pub recommendations::Neighbour);

#[Object]
impl BoughtTogether {
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(load::<s::product::Entity>(ctx, Some(self.0.product_id))
            .await?
            .map(Product))
    }
    /// Orders with both.
    async fn together(&self) -> i32 {
        self.0.together as i32
    }
    async fn cosine(&self) -> f64 {
        self.0.cosine
    }
    /// How many times likelier the other product is in an order that has this one.
    async fn lift(&self) -> f64 {
        self.0.lift
    }
}
