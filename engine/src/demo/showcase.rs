//! The product at work on top of the synthetic data, so a newcomer's first look is a CRM
//! in use: typed custom fields, an email topic, consent, trained models and fresh scores,
//! segments that use them, personalised templates, an A/B campaign sent and answered, a
//! drip sequence with contacts at several steps, and a hosted sign-up form.
//!
//! Everything goes through the same functions the API calls, and the campaign and the
//! sequence run through the steps their jobs run (launch, sends, winner; the step
//! runner on a clock of its own), mailing into a scratch
//! outbox that is removed afterwards. Only the recipients' behaviour is simulated: who
//! opens and clicks, drawn from a seeded generator (warmer leads more often), recorded as
//! a tracking link would record it.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rapport_schema as s;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::clock::{self, Clock, ManualClock};
use crate::crm::fields;
use crate::engagement::capture::forms;
use crate::engagement::outbound::{Context, Outbound};
use crate::engagement::sequences::{self, runner};
use crate::engagement::{audiences, campaigns, templates, topics};
use crate::error::{EngineError, Result};
use crate::intelligence::analytics;
use crate::platform::auth::Principal;
use crate::platform::email::Mailer;
use crate::platform::links::{Action, Claim};
use crate::platform::queue::Queue;
use crate::values::{FieldKind, MessageState, Patch, WinnerMetric};

/// Above this many contacts the showcase is left out: it is for a first look, and
/// benchmarks seed hundreds of thousands of contacts.
pub const SHOWCASE_MAX_CONTACTS: u64 = 20_000;

/// What the showcase made, by id.
#[derive(Clone, Debug)]
pub struct Showcase {
    /// The segments, by name.
    pub segments: Vec<(String, i64)>,
    /// The sent A/B campaign.
    pub campaign_id: i64,
    /// The active sequence.
    pub sequence_id: i64,
    /// The hosted sign-up form's public id.
    pub form_public_id: String,
}

/// Builds the showcase in workspace `ws`, seeded by [`super::seed`].
pub async fn build(db: &DatabaseConnection, ws: i64) -> Result<Showcase> {
    let who = Principal::owner(ws);
    let mut rng = StdRng::seed_from_u64(0x53484f57);

    for (key, label, kind, options) in [
        (
            "plan",
            "Plan",
            FieldKind::Enum,
            Some(vec!["free", "pro", "enterprise"]),
        ),
        ("seats", "Seats", FieldKind::Number, None),
    ] {
        fields::create(
            db,
            &who,
            fields::FieldInput {
                key: Some(key.into()),
                label: Some(label.into()),
                kind: Some(kind),
                options: options.map(|o| o.into_iter().map(String::from).collect()),
            },
        )
        .await?;
    }
    let newsletter = topics::create(
        db,
        &who,
        topics::TopicInput {
            key: Some("newsletter".into()),
            name: Some("Newsletter".into()),
            description: Some("News and offers, about once a month".into()),
        },
    )
    .await?;
    grant_newsletter_consent(db, ws).await?;

    // Models trained on the seeded history, and every contact scored.
    analytics::schedule::retrain_all(db, ws).await;
    analytics::rescore_all(db, ws).await?;

    let mut segments = Vec::new();
    for (name, description, filter) in [
        (
            "Hot leads",
            "Grade A leads still in the pipeline",
            json!({"leadScore": {"grade": {"eq": "A"}}, "lifecycleStage": {"in": ["LEAD", "QUALIFIED", "OPPORTUNITY"]}}),
        ),
        (
            "Customers at risk",
            "Customers the churn model gives a high risk",
            json!({"churnRisk": {"level": {"eq": "HIGH"}}}),
        ),
        (
            "Champions",
            "Recent, frequent, big spenders",
            json!({"rfm": {"segment": {"eq": "CHAMPIONS"}}}),
        ),
        (
            "Newsletter subscribers",
            "Marketing consent granted",
            json!({"consent": [{"purpose": "MARKETING", "status": {"eq": "GRANTED"}}]}),
        ),
        (
            "Big accounts",
            "150 seats or more (a typed number field)",
            json!({"attributes": [{"key": "seats", "number": {"gte": 150}}]}),
        ),
    ] {
        let segment = audiences::create(
            db,
            &who,
            audiences::SegmentInput {
                name: Some(name.into()),
                description: Patch::Set(description.into()),
                filter: Some(filter),
            },
        )
        .await?;
        segments.push((name.to_string(), segment.id));
    }

    for (name, subject, html, text) in [
        (
            "Personal follow-up",
            "{{ contact.first_name }}, a quick note from {{ owner.first_name }}",
            "<p>Hi {{ contact.first_name }},</p><p>Thanks for your interest. Based on what \
             you looked at, you might like:</p><ul>{% for p in recommendations %}<li>{{ p.name }} \
             ({{ p.price }} {{ p.currency }})</li>{% endfor %}</ul><p>Reply to this email and \
             I will set up a call.</p><p>{{ owner.name }}<br>{{ owner.email }}</p>",
            "Hi {{ contact.first_name }},\n\nThanks for your interest. You might like:\n\
             {% for p in recommendations %}- {{ p.name }}\n{% endfor %}\nReply and I will set up \
             a call.\n\n{{ owner.name }}\n{{ owner.email }}\n",
        ),
        (
            "Checking in",
            "Still interested, {{ contact.first_name }}?",
            "<p>Hi {{ contact.first_name }},</p><p>I wanted to check whether you had a \
             chance to look. Happy to answer anything.</p><p>{{ owner.name }}</p>",
            "Hi {{ contact.first_name }},\n\nI wanted to check whether you had a chance to \
             look. Happy to answer anything.\n\n{{ owner.name }}\n",
        ),
        (
            "We miss you",
            "{{ contact.first_name }}, it has been a while",
            "<p>Hi {{ contact.first_name }},</p>{% if last_order %}<p>Your last order was on \
             {{ last_order.placed_at }}.</p>{% endif %}<p>Here is what is new for you:</p>\
             <ul>{% for p in recommendations %}<li>{{ p.name }}</li>{% endfor %}</ul>",
            "Hi {{ contact.first_name }},\n\nHere is what is new for you:\n\
             {% for p in recommendations %}- {{ p.name }}\n{% endfor %}",
        ),
    ] {
        templates::create(
            db,
            &who,
            templates::EmailTemplateInput {
                name: Some(name.into()),
                subject: Some(subject.into()),
                html: Some(html.into()),
                text: Some(text.into()),
            },
        )
        .await?;
    }

    // Unique per build: two databases in one process (tests on SQLite and PostgreSQL)
    // both have a workspace 1, and one build's cleanup must not remove the other's outbox.
    let outbox = std::env::temp_dir().join(format!(
        "rapport-demo-outbox-{}-{ws}-{}",
        std::process::id(),
        crate::platform::auth::random_hex(6)
    ));
    std::fs::create_dir_all(&outbox)
        .map_err(|e| EngineError::internal_from("creating the demo's scratch outbox", e))?;
    let result = async {
        let mailer = Mailer::configure(None, outbox.clone())?;
        let subscribers = segments[3].1;
        let campaign_id = campaign(db, &who, &mailer, subscribers, newsletter.id, &mut rng).await?;
        let sequence_id = sequence(db, &who, &mailer, &mut rng).await?;
        Ok::<_, EngineError>((campaign_id, sequence_id))
    }
    .await;
    let _ = std::fs::remove_dir_all(&outbox);
    let (campaign_id, sequence_id) = result?;

    let form = forms::create(
        db,
        &who,
        forms::FormInput {
            name: "Newsletter sign-up".into(),
            title: Some("Get our newsletter".into()),
            fields: vec!["first_name".into()],
            topic_id: Some(newsletter.id),
            double_opt_in: Some(true),
            success_message: None,
        },
    )
    .await?;
    Ok(Showcase {
        segments,
        campaign_id,
        sequence_id,
        form_public_id: form.public_id,
    })
}

/// Contacts tagged `newsletter` or `vip` signed up for marketing email long ago.
async fn grant_newsletter_consent(db: &DatabaseConnection, ws: i64) -> Result<()> {
    let tagged: Vec<i64> = s::contact_tag::Entity::find()
        .filter(s::contact_tag::Column::WorkspaceId.eq(ws))
        .filter(s::contact_tag::Column::Tag.is_in(["newsletter", "vip"]))
        .select_only()
        .column(s::contact_tag::Column::ContactId)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let at = clock::now() - Duration::days(90);
    let tx = crate::platform::db::write(db).await?;
    for chunk in tagged.chunks(500) {
        let rows = chunk
            .iter()
            .map(|&contact_id| s::consent_event::ActiveModel {
                workspace_id: Set(ws),
                contact_id: Set(contact_id),
                channel: Set("email".into()),
                purpose: Set("marketing".into()),
                status: Set("granted".into()),
                lawful_basis: Set("consent".into()),
                source: Set(Some("newsletter sign-up (demo import)".into())),
                proof_form: Set(Some("Newsletter sign-up".into())),
                recorded_at: Set(at),
                ..Default::default()
            });
        s::consent_event::Entity::insert_many(rows)
            .exec_without_returning(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn context(db: &DatabaseConnection, mailer: &Mailer, clock: Arc<dyn Clock>) -> Result<Context> {
    Ok(Context {
        db: db.clone(),
        queue: Queue::new(db)?,
        outbound: Outbound {
            mailer: mailer.clone(),
            public_url: "http://127.0.0.1:8080".into(),
            failure_limit: 10,
            claim_timeout: StdDuration::from_secs(900),
            worker: format!("demo-{}", std::process::id()),
            dead_after: StdDuration::from_secs(30),
            probe_delay: StdDuration::from_secs(30),
        },
        clock,
        plugins: None,
    })
}

/// Records what recipients did with a campaign's sent messages that have no answer yet:
/// variant B's subject draws more opens, and warm leads open more.
async fn answer_campaign(
    db: &DatabaseConnection,
    ws: i64,
    id: i64,
    b: i64,
    rng: &mut StdRng,
) -> Result<()> {
    let sent = s::campaign_message::Entity::find()
        .filter(s::campaign_message::Column::CampaignId.eq(id))
        .filter(s::campaign_message::Column::State.eq(MessageState::Sent.as_str()))
        .filter(s::campaign_message::Column::OpenedAt.is_null())
        .all(db)
        .await?;
    for m in sent {
        let open = if m.variant_id == Some(b) { 0.46 } else { 0.31 };
        if !rng.random_bool(open) {
            continue;
        }
        let mut claim = Claim {
            ws,
            contact: m.contact_id,
            action: Action::Open,
            purpose: "marketing".into(),
            exp: None,
            msg: Some(m.id),
            seq: None,
            tx: None,
            url: None,
            req: None,
        };
        crate::engagement::track(db, &claim).await?;
        if rng.random_bool(0.3) {
            claim.action = Action::Click;
            claim.url = Some("https://shop.example/spring".into());
            crate::engagement::track(db, &claim).await?;
        }
    }
    Ok(())
}

/// The spring newsletter: an A/B test of two subjects on 30% of the subscribers, the
/// winner by opens sent to the rest, through the campaign's own job steps.
async fn campaign(
    db: &DatabaseConnection,
    who: &Principal,
    mailer: &Mailer,
    segment_id: i64,
    topic_id: i64,
    rng: &mut StdRng,
) -> Result<i64> {
    let ws = who.workspace_id;
    let body = "<p>Hi {{ contact.first_name }},</p><p>Our spring collection is here, with \
                picks for you:</p><ul>{% for p in recommendations %}<li>{{ p.name }}</li>\
                {% endfor %}</ul><p><a href=\"https://shop.example/spring\">See it all</a></p>";
    let text = "Hi {{ contact.first_name }},\n\nOur spring collection is here: \
                https://shop.example/spring\n";
    let variant = |name: &str, subject: &str| campaigns::VariantInput {
        name: Some(name.into()),
        weight: Some(1),
        template_id: None,
        subject: Some(subject.into()),
        html: Some(body.into()),
        text: Some(text.into()),
    };
    let c = campaigns::create(
        db,
        who,
        campaigns::CampaignInput {
            name: Some("Spring newsletter".into()),
            segment_id: Some(segment_id),
            from_email: Some("news@shop.example".into()),
            from_name: Patch::Set("Shop".into()),
            rate_per_second: Patch::Set(500),
            variants: Some(vec![
                variant("A", "Our spring collection is here"),
                variant("B", "{{ contact.first_name }}, we picked these for you"),
            ]),
            ab_test: Patch::Set(campaigns::AbTest {
                test_share: 0.3,
                wait_minutes: 60,
                metric: WinnerMetric::Open,
            }),
            topic_id: Patch::Set(topic_id),
        },
    )
    .await?;
    let id = c.campaign.id;
    let b = c.variants[1].id;
    let ctx = context(db, mailer, clock::system())?;
    campaigns::schedule(db, &ctx.queue, who, id, None).await?;
    // The jobs' own steps, run here one after another rather than by a worker: the
    // launch, the sends of the test, the winner, the sends of the rest. (The jobs the
    // steps queued stay for the server's workers, which find them done already.)
    campaigns::launch(&ctx, ws, id).await?;
    send_queued(&ctx, ws, id).await?;
    answer_campaign(db, ws, id, b, rng).await?;
    campaigns::pick_winner(&ctx, ws, id).await?;
    send_queued(&ctx, ws, id).await?;
    answer_campaign(db, ws, id, b, rng).await?;
    Ok(id)
}

/// Sends the campaign's queued messages, a batch at a time, as its send jobs would.
async fn send_queued(ctx: &Context, ws: i64, id: i64) -> Result<()> {
    loop {
        let queued: Vec<i64> = s::campaign_message::Entity::find()
            .filter(s::campaign_message::Column::CampaignId.eq(id))
            .filter(s::campaign_message::Column::State.eq(MessageState::Queued.as_str()))
            .select_only()
            .column(s::campaign_message::Column::Id)
            .order_by_asc(s::campaign_message::Column::Id)
            .limit(200)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        if queued.is_empty() {
            return Ok(());
        }
        campaigns::send_batch(ctx, ws, id, &queued).await?;
    }
}

/// "Hot lead follow-up": a personal email from the owner, two days, then a call task for
/// those who opened it or a nudge for those who did not, and a last email a week later.
/// Subscribed hot leads enrolled in two waves, five and one day ago, on a clock the step
/// runner runs on, so the enrollments stand at different steps now.
async fn sequence(
    db: &DatabaseConnection,
    who: &Principal,
    mailer: &Mailer,
    rng: &mut StdRng,
) -> Result<i64> {
    let ws = who.workspace_id;
    let manual = ManualClock::new();
    let now = clock::now();
    manual.set(now - Duration::days(5));
    let ctx = context(db, mailer, Arc::new(manual.clone()))?;
    let definition = json!({
        "name": "Hot lead follow-up",
        "fromEmail": "sales@shop.example",
        "fromName": "Shop sales",
        "triggers": [{"kind": "score", "model": "lead_score", "atLeast": 70}],
        "start": "intro",
        "steps": [
            {"id": "intro", "kind": "sendEmail", "template": "Personal follow-up", "next": "wait-2d"},
            {"id": "wait-2d", "kind": "wait", "duration": "2d", "next": "opened?"},
            {"id": "opened?", "kind": "branch", "if": {"opened": "intro"}, "then": "call", "else": "nudge"},
            {"id": "call", "kind": "createTask", "title": "Call {{ contact.first_name }} (opened the follow-up)", "dueInDays": 1, "next": "wait-7d"},
            {"id": "nudge", "kind": "sendEmail", "template": "Checking in", "next": "wait-7d"},
            {"id": "wait-7d", "kind": "wait", "duration": "7d", "next": "last"},
            {"id": "last", "kind": "sendEmail", "template": "We miss you"}
        ]
    });
    let seq = sequences::create(db, who, &manual, &definition).await?;
    let id = seq.sequence.id;
    sequences::activate(db, who, &manual, id).await?;
    // Hot leads who may be emailed, warmest first.
    let hot: Vec<i64> = s::score::Entity::find()
        .filter(s::score::Column::WorkspaceId.eq(ws))
        .filter(s::score::Column::Kind.eq(crate::values::ModelKind::LeadScore.as_str()))
        .filter(s::score::Column::Score.gte(60.0))
        .order_by_desc(s::score::Column::Score)
        .select_only()
        .column(s::score::Column::SubjectId)
        .into_tuple()
        .all(db)
        .await?;
    let consented: std::collections::HashSet<i64> = s::consent_event::Entity::find()
        .filter(s::consent_event::Column::WorkspaceId.eq(ws))
        .filter(s::consent_event::Column::Status.eq("granted"))
        .select_only()
        .column(s::consent_event::Column::ContactId)
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let chosen: Vec<i64> = hot
        .into_iter()
        .filter(|c| consented.contains(c))
        .take(24)
        .collect();
    let (first, second) = chosen.split_at(chosen.len() / 2);
    let run = async |rng: &mut StdRng| -> Result<()> {
        let at = manual.now();
        for (claim_ws, enrollment) in
            runner::claim_due(db, at, StdDuration::from_secs(600), 1000).await?
        {
            runner::advance(&ctx, claim_ws, &[enrollment], Some(at)).await?;
        }
        // Some open the follow-up, as its tracking pixel would tell.
        let unopened = s::sequence_message::Entity::find()
            .filter(s::sequence_message::Column::SequenceId.eq(id))
            .filter(s::sequence_message::Column::State.eq(MessageState::Sent.as_str()))
            .filter(s::sequence_message::Column::OpenedAt.is_null())
            .all(db)
            .await?;
        for m in unopened {
            if rng.random_bool(0.5) {
                let claim = Claim {
                    ws,
                    contact: m.contact_id,
                    action: Action::Open,
                    purpose: "marketing".into(),
                    exp: None,
                    msg: None,
                    seq: Some(m.id),
                    tx: None,
                    url: None,
                    req: None,
                };
                crate::engagement::track(db, &claim).await?;
            }
        }
        Ok(())
    };
    if !first.is_empty() {
        sequences::enroll(db, who, &manual, id, first).await?;
    }
    run(rng).await?;
    manual.set(now - Duration::days(1));
    if !second.is_empty() {
        sequences::enroll(db, who, &manual, id, second).await?;
    }
    run(rng).await?;
    manual.set(now);
    run(rng).await?;
    Ok(id)
}
