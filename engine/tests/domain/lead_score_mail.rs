//! Email engagement is a signal of the lead score: in a workspace where leads who opened
//! and clicked campaign email went on to buy, the trained model scores a new lead who
//! opened one above a lead who did not, and says why.

use chrono::Duration;
use rapport_engine::clock;
use rapport_engine::intelligence::analytics::{lead_score, registry};
use rapport_engine::values::ModelKind;
use rapport_schema::{campaign, campaign_message, contact, order, segment};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::json;

use super::{contact, database, owner};

/// A sent campaign message to `contact`, opened and clicked `days_ago`.
async fn opened(db: &DatabaseConnection, ws: i64, campaign: i64, contact: i64, days_ago: i64) {
    let at = clock::now() - Duration::days(days_ago);
    campaign_message::ActiveModel {
        workspace_id: Set(ws),
        campaign_id: Set(campaign),
        contact_id: Set(contact),
        variant_id: Set(None),
        state: Set("sent".into()),
        reason: Set(None),
        attempts: Set(1),
        queued_at: Set(at),
        claimed_at: Set(None),
        claimed_by: Set(None),
        sent_at: Set(Some(at)),
        failed_at: Set(None),
        bounced_at: Set(None),
        opened_at: Set(Some(at + Duration::hours(1))),
        clicked_at: Set(Some(at + Duration::hours(2))),
        unsubscribed_at: Set(None),
        opens: Set(1),
        clicks: Set(1),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("campaign message");
}

#[tokio::test]
async fn opening_campaign_email_raises_a_leads_score() {
    let db = database().await;
    let who = owner(&db, "Mail signal").await;
    let ws = who.workspace_id;
    let now = clock::now();
    let everyone = segment::ActiveModel {
        workspace_id: Set(ws),
        name: Set("Everyone".into()),
        description: Set(None),
        filter: Set(json!({})),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let newsletter = campaign::ActiveModel {
        workspace_id: Set(ws),
        name: Set("Newsletter".into()),
        segment_id: Set(everyone.id),
        from_email: Set("news@shop.example".into()),
        status: Set("sent".into()),
        consecutive_failures: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();

    // 120 leads from 200 days ago. Half opened the newsletter before the label window
    // (the last 90 days); two in three of them bought in the window, one in six of the rest.
    let mut leads = Vec::new();
    for i in 0..120 {
        let id = contact(&db, &who, &format!("lead{i}@example.com")).await;
        let opener = i % 2 == 0;
        if opener {
            opened(&db, ws, newsletter.id, id, 120).await;
        }
        let buys = if opener { i % 3 != 0 } else { i % 6 == 1 };
        if buys {
            order::ActiveModel {
                workspace_id: Set(ws),
                contact_id: Set(id),
                placed_at: Set(now - Duration::days(30)),
                status: Set("paid".into()),
                currency: Set("EUR".into()),
                total_minor: Set(5_000),
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        leads.push(id);
    }
    contact::Entity::update_many()
        .col_expr(
            contact::Column::CreatedAt,
            Expr::value(now - Duration::days(200)),
        )
        .filter(contact::Column::Id.is_in(leads))
        .exec(&db)
        .await
        .unwrap();

    let options = lead_score::TrainOptions {
        min_positives: 5,
        ..Default::default()
    };
    let version = lead_score::train(&db, ws, &options).await.unwrap();
    assert_eq!(version.status, "active", "{version:?}");

    // Two new leads alike but for one newsletter opened two days ago.
    let reader = contact(&db, &who, "reader@example.com").await;
    let other = contact(&db, &who, "other@example.com").await;
    opened(&db, ws, newsletter.id, reader, 2).await;
    lead_score::rescore_contacts(&db, ws, Some(&[reader, other]))
        .await
        .unwrap();
    let scores = registry::scores_for(&db, ws, ModelKind::LeadScore, &[reader, other])
        .await
        .unwrap();
    let (r, o) = (&scores[&reader], &scores[&other]);
    assert!(
        r.score > o.score + 10.0,
        "reader {} other {}",
        r.score,
        o.score
    );
    let reasons = r.reasons.to_string();
    assert!(
        reasons.contains("email_opens") || reasons.contains("email_clicks"),
        "{reasons}"
    );
}
