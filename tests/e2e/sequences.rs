//! Drip sequences end to end: definitions over GraphQL, the job queue's workers moving
//! contacts along on an injected clock that the tests move days ahead, a real SMTP server
//! (aiosmtpd) receiving, and links in the received mail followed back.

use std::collections::{HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use rapport_engine::clock::Clock;
use rapport_tests::{Backend, SmtpServer, TestApp, both_backends, header, links};
use serde_json::{Value, json};

both_backends!(
    three_email_nurture_branches_on_opened,
    triggers_of_each_kind_enroll,
    exits_on_unsubscribe_reply_and_goal,
    frequency_cap_and_quiet_hours_in_two_timezones,
    versions_and_migration_mid_sequence,
    saving_checks_the_graph,
    enroll_step_reentry_pause_and_archive,
);

/// Contacts with marketing consent (`{prefix}{i}@seq.example`), in `timezone`.
async fn people(app: &TestApp, key: &str, prefix: &str, n: usize, timezone: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = app
            .ok(
                key,
                "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
                json!({"i": {"firstName": format!("{prefix}{i}"), "email": format!("{prefix}{i}@seq.example"), "timezone": timezone}}),
            )
            .await["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        app.ok(
            key,
            "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED, source: \"signup\"}) { id } }",
            json!({"c": id}),
        )
        .await;
        ids.push(id);
    }
    ids
}

async fn template(app: &TestApp, key: &str, name: &str) {
    app.ok(
        key,
        "mutation($i: EmailTemplateInput!) { createEmailTemplate(input: $i) { id } }",
        json!({"i": {
            "name": name,
            "subject": format!("{name} for {{{{ contact.first_name }}}}"),
            "html": format!("<html><body><p>{name}</p><p><a href=\"https://shop.example/{name}\">More</a></p><p><a href=\"{{{{ unsubscribe_url }}}}\">Unsubscribe</a></p></body></html>"),
            "text": format!("{name}\nUnsubscribe: {{{{ unsubscribe_url }}}}"),
        }}),
    )
    .await;
}

async fn create(app: &TestApp, key: &str, definition: Value) -> String {
    let made = app
        .ok(
            key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id status version } }",
            json!({"d": definition}),
        )
        .await;
    assert_eq!(made["createSequence"]["status"], "DRAFT");
    let id = made["createSequence"]["id"].as_str().unwrap().to_string();
    let active = app
        .ok(
            key,
            "mutation($id: ID!) { activateSequence(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(active["activateSequence"]["status"], "ACTIVE");
    id
}

async fn enroll(app: &TestApp, key: &str, sequence: &str, contacts: &[String]) -> Value {
    app.ok(
        key,
        "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { enrollments { id contactId currentStep } skipped { contactId reason } } }",
        json!({"s": sequence, "c": contacts}),
    )
    .await["enrollInSequence"]
        .clone()
}

const ENROLLMENTS: &str = "query($s: ID!) { sequence(id: $s) { enrollments(first: 1000) { id contactId status currentStep exitReason trigger nextRunAt messages { step state sentAt openedAt } history { step outcome detail } } } }";

/// The sequence's enrollments by contact id, once `done` holds for them all.
async fn wait_enrollments(
    app: &TestApp,
    key: &str,
    sequence: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> HashMap<String, Value> {
    wait_for(app, key, sequence, what, 1, done).await
}

/// [`wait_enrollments`], once there are at least `count`.
async fn wait_for(
    app: &TestApp,
    key: &str,
    sequence: &str,
    what: &str,
    count: usize,
    done: impl Fn(&Value) -> bool,
) -> HashMap<String, Value> {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    loop {
        let read = || async {
            let data = app.ok(key, ENROLLMENTS, json!({"s": sequence})).await;
            data["sequence"]["enrollments"].as_array().unwrap().clone()
        };
        let seen = |all: &Vec<Value>| all.len() >= count && all.iter().all(&done);
        // An enrollment and its history are read by separate statements, so one read can
        // pair a row from before a step committed with the history from after it. Once the
        // condition is seen, everything it saw has committed: a second read is whole.
        let first = read().await;
        if seen(&first) {
            let all = read().await;
            if seen(&all) {
                return all
                    .into_iter()
                    .map(|e| (e["contactId"].as_str().unwrap().to_string(), e))
                    .collect();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still waiting for {what}: {}",
            Value::Array(first)
        );
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

fn sent(e: &Value) -> usize {
    e["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "SENT")
        .count()
}

/// Subjects of the email `address` received, sorted (the order is the enrollment's
/// history's to check).
fn subjects_to(smtp: &SmtpServer, address: &str) -> Vec<String> {
    let mut out: Vec<String> = smtp
        .received()
        .iter()
        .filter(|m| header(m, "To").as_deref() == Some(address))
        .map(|m| header(m, "Subject").unwrap_or_default())
        .collect();
    out.sort();
    out
}

fn nurture() -> Value {
    json!({
        "name": "Onboarding",
        "fromEmail": "hello@shop.example",
        "fromName": "Shop",
        "start": "welcome",
        "steps": [
            {"id": "welcome", "kind": "sendEmail", "template": "welcome", "next": "wait-3d"},
            {"id": "wait-3d", "kind": "wait", "duration": "3d", "next": "opened?"},
            {"id": "opened?", "kind": "branch", "if": {"opened": "welcome"}, "then": "tips", "else": "nudge"},
            {"id": "tips", "kind": "sendEmail", "template": "tips", "next": "wait-4d"},
            {"id": "nudge", "kind": "sendEmail", "template": "nudge", "next": "wait-4d"},
            {"id": "wait-4d", "kind": "wait", "duration": "4d", "next": "last"},
            {"id": "last", "kind": "sendEmail", "template": "last", "next": "tag"},
            {"id": "tag", "kind": "updateContact", "addTags": ["nurtured"], "next": "call"},
            {"id": "call", "kind": "createTask", "title": "Call {{ contact.first_name }}", "dueInDays": 2}
        ]
    })
}

/// Three emails over 14 simulated days: the one who opened the welcome gets tips, the
/// other a nudge; both finish tagged with a task for their owner, each email once.
async fn three_email_nurture_branches_on_opened(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Nurture").await;
    for t in ["welcome", "tips", "nudge", "last"] {
        template(&app, &key, t).await;
    }
    let seq = create(&app, &key, nurture()).await;
    let ids = people(&app, &key, "n", 2, "Europe/Berlin").await;
    let _workers = app.workers(&smtp.url);
    let out = enroll(&app, &key, &seq, &ids).await;
    assert_eq!(out["enrollments"].as_array().unwrap().len(), 2);
    let again = enroll(&app, &key, &seq, &ids[..1]).await;
    assert_eq!(again["skipped"][0]["reason"], "already enrolled");

    let first = wait_enrollments(&app, &key, &seq, "the welcome email", |e| {
        e["currentStep"] == "wait-3d"
    })
    .await;
    assert!(first.values().all(|e| sent(e) == 1), "{first:?}");
    // n0 opens the welcome email (the pixel in the mail as received).
    let mail = smtp.received();
    let welcome_n0 = mail
        .iter()
        .find(|m| header(m, "To").as_deref() == Some("n0@seq.example"))
        .unwrap();
    assert_eq!(header(welcome_n0, "Subject").unwrap(), "welcome for n0");
    assert!(header(welcome_n0, "List-Unsubscribe").is_some());
    let pixel = links(welcome_n0, &format!("{}/t/o/", app.base));
    assert_eq!(pixel.len(), 1);
    assert_eq!(app.get(&pixel[0]).await.0, 200);

    // Nothing happens before the wait is over.
    app.clock.advance(Duration::days(2));
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 2);

    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    wait_enrollments(&app, &key, &seq, "the second email", |e| {
        e["currentStep"] == "wait-4d"
    })
    .await;
    app.clock.advance(Duration::days(4) + Duration::minutes(1));
    let done = wait_enrollments(&app, &key, &seq, "the end", |e| e["status"] == "COMPLETED").await;
    // Fourteen days in all: nothing more arrives.
    app.clock.advance(Duration::days(7));
    tokio::time::sleep(StdDuration::from_millis(500)).await;

    assert_eq!(
        subjects_to(&smtp, "n0@seq.example"),
        ["last for n0", "tips for n0", "welcome for n0"]
    );
    assert_eq!(
        subjects_to(&smtp, "n1@seq.example"),
        ["last for n1", "nudge for n1", "welcome for n1"]
    );
    let message_ids: HashSet<String> = smtp
        .received()
        .iter()
        .map(|m| header(m, "Message-ID").unwrap())
        .collect();
    assert_eq!(message_ids.len(), 6, "six distinct emails");
    for e in done.values() {
        assert_eq!(e["exitReason"], "end of sequence");
        assert_eq!(sent(e), 3);
        let steps: Vec<&str> = e["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["outcome"] == "entered")
            .map(|h| h["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps.len(), 8, "{steps:?}");
    }
    let n0 = app
        .ok(
            &key,
            "query($id: ID!) { contact(id: $id) { tags tasks { edges { node { title dueAt } } } sequenceEnrollments { status } } }",
            json!({"id": ids[0]}),
        )
        .await;
    assert_eq!(n0["contact"]["tags"], json!(["nurtured"]));
    let tasks = n0["contact"]["tasks"]["edges"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "one task: {n0}");
    assert_eq!(tasks[0]["node"]["title"], "Call n0");
    assert_eq!(
        n0["contact"]["sequenceEnrollments"][0]["status"],
        "COMPLETED"
    );

    let stats = app
        .ok(
            &key,
            "query($id: ID!) { sequence(id: $id) { stats { step kind entered completed current emailsSent opens clicks exits { reason count } } } }",
            json!({"id": seq}),
        )
        .await;
    let by_step: HashMap<&str, &Value> = stats["sequence"]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s))
        .collect();
    assert_eq!(by_step["welcome"]["entered"], 2);
    assert_eq!(by_step["welcome"]["completed"], 2);
    assert_eq!(by_step["welcome"]["emailsSent"], 2);
    assert_eq!(by_step["welcome"]["opens"], 1);
    assert_eq!(by_step["tips"]["emailsSent"], 1);
    assert_eq!(by_step["nudge"]["emailsSent"], 1);
    assert_eq!(by_step["opened?"]["kind"], "branch");
    assert_eq!(by_step["last"]["emailsSent"], 2);
    assert_eq!(by_step["call"]["entered"], 2);
    assert_eq!(by_step["call"]["current"], 0);
}

/// Every kind of trigger enrolls the contact it is about, once, and only for what
/// happens after the sequence was activated.
async fn triggers_of_each_kind_enroll(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Triggers").await;
    let ids = people(&app, &key, "t", 6, "UTC").await;
    let pipeline = app
        .ok(
            &key,
            "{ pipelines { edges { node { id stages { id name } } } } }",
            json!({}),
        )
        .await;
    let stages = pipeline["pipelines"]["edges"][0]["node"]["stages"].clone();
    let won_stage = stages[1]["id"].as_str().unwrap().to_string();
    let segment = app
        .ok(
            &key,
            "mutation { createSegment(input: {name: \"VIPs\", filter: {tags: {has: \"vip\"}}}) { id } }",
            json!({}),
        )
        .await["createSegment"]["id"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    // An event before any sequence is active never enrolls.
    app.ok(
        &key,
        "mutation($c: ID!) { trackEvent(contactId: $c, type: \"form_submitted\") { id } }",
        json!({"c": ids[0]}),
    )
    .await;
    let renewal = (app.clock.now() + Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let seq = create(
        &app,
        &key,
        json!({
            "name": "Everything",
            "fromEmail": "hello@shop.example",
            "allowReentry": false,
            "triggers": [
                {"kind": "event", "eventType": "form_submitted"},
                {"kind": "lifecycle", "to": "customer"},
                {"kind": "dealStage", "stageId": won_stage.parse::<i64>().unwrap()},
                {"kind": "segment", "segmentId": segment},
                {"kind": "dateAttribute", "attribute": "renewal_date", "daysBefore": 30}
            ],
            "start": "mark",
            "steps": [
                {"id": "mark", "kind": "updateContact", "addTags": ["sequenced"], "next": "hold"},
                {"id": "hold", "kind": "wait", "duration": "30d"}
            ]
        }),
    )
    .await;
    let _workers = app.workers(&smtp.url);
    app.ok(
        &key,
        "mutation($c: ID!) { trackEvent(contactId: $c, type: \"form_submitted\") { id } }",
        json!({"c": ids[0]}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { trackEvent(contactId: $c, type: \"form_submitted\") { id } }",
        json!({"c": ids[0]}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { updateContact(id: $c, input: {lifecycleStage: CUSTOMER}) { id } }",
        json!({"c": ids[1]}),
    )
    .await;
    let deal = app
        .ok(
            &key,
            "mutation($c: ID!) { createDeal(input: {name: \"Big\", contactId: $c, amount: 100, currency: \"EUR\"}) { id } }",
            json!({"c": ids[2]}),
        )
        .await["createDeal"]["id"]
        .clone();
    app.ok(
        &key,
        "mutation($d: ID!, $s: ID!) { moveDealToStage(dealId: $d, stageId: $s) { id } }",
        json!({"d": deal, "s": won_stage}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { updateContact(id: $c, input: {tags: [\"vip\"]}) { id } }",
        json!({"c": ids[3]}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!, $a: JSON!) { updateContact(id: $c, input: {attributes: $a}) { id } }",
        json!({"c": ids[4], "a": {"renewal_date": renewal}}),
    )
    .await;
    let all = wait_for(&app, &key, &seq, "five triggered enrollments", 5, |e| {
        e["currentStep"] == "hold"
    })
    .await;
    let triggers: HashMap<&str, &str> = all
        .iter()
        .map(|(c, e)| (c.as_str(), e["trigger"].as_str().unwrap()))
        .collect();
    assert_eq!(triggers.len(), 5, "each once, nobody else: {triggers:?}");
    assert_eq!(triggers[ids[0].as_str()], "event:form_submitted");
    assert_eq!(triggers[ids[1].as_str()], "lifecycle:customer");
    assert_eq!(triggers[ids[2].as_str()], format!("deal_stage:{won_stage}"));
    assert_eq!(triggers[ids[3].as_str()], format!("segment:{segment}"));
    assert_eq!(
        triggers[ids[4].as_str()],
        format!("date:renewal_date-30d:{renewal}")
    );
    assert!(!triggers.contains_key(ids[5].as_str()));
    let tagged = app
        .ok(
            &key,
            "{ contacts(filter: {tags: {has: \"sequenced\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(tagged["contacts"]["totalCount"], 5);
}

/// Unsubscribing through the email's link, replying, and reaching the goal each end the
/// enrollment before its next email.
async fn exits_on_unsubscribe_reply_and_goal(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Exits").await;
    template(&app, &key, "one").await;
    template(&app, &key, "two").await;
    let seq = create(
        &app,
        &key,
        json!({
            "name": "Two step",
            "fromEmail": "hello@shop.example",
            "goal": {"tag": "converted"},
            "start": "one",
            "steps": [
                {"id": "one", "kind": "sendEmail", "template": "one", "next": "wait"},
                {"id": "wait", "kind": "wait", "duration": "2d", "next": "two"},
                {"id": "two", "kind": "sendEmail", "template": "two"}
            ]
        }),
    )
    .await;
    let ids = people(&app, &key, "x", 4, "UTC").await;
    let _workers = app.workers(&smtp.url);
    enroll(&app, &key, &seq, &ids).await;
    wait_enrollments(&app, &key, &seq, "the first email", |e| {
        e["currentStep"] == "wait"
    })
    .await;
    let mail = smtp.received();
    let to_x0 = mail
        .iter()
        .find(|m| header(m, "To").as_deref() == Some("x0@seq.example"))
        .unwrap();
    let unsubscribe = header(to_x0, "List-Unsubscribe").unwrap();
    let resp = reqwest::Client::new()
        .post(unsubscribe.trim_matches(|c| c == '<' || c == '>'))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.ok(
        &key,
        "mutation($c: ID!) { createActivity(input: {kind: EMAIL, direction: INBOUND, subject: \"Re: one\", contactId: $c}) { id } }",
        json!({"c": ids[1]}),
    )
    .await;
    app.ok(
        &key,
        "mutation($c: ID!) { updateContact(id: $c, input: {tags: [\"converted\"]}) { id } }",
        json!({"c": ids[2]}),
    )
    .await;
    app.clock.advance(Duration::days(2) + Duration::minutes(1));
    let done = wait_enrollments(&app, &key, &seq, "the ends", |e| e["status"] != "ACTIVE").await;
    assert_eq!(done[&ids[0]]["status"], "EXITED");
    assert_eq!(done[&ids[0]]["exitReason"], "unsubscribed");
    assert_eq!(done[&ids[1]]["exitReason"], "replied");
    assert_eq!(done[&ids[2]]["exitReason"], "goal reached");
    assert_eq!(done[&ids[3]]["status"], "COMPLETED");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(sent(&done[id]), if i == 3 { 2 } else { 1 }, "{}", done[id]);
    }
    assert_eq!(smtp.received().len(), 5);
    let stats = app
        .ok(
            &key,
            "query($id: ID!) { sequence(id: $id) { stats { step exits { reason count } } } }",
            json!({"id": seq}),
        )
        .await;
    let wait = stats["sequence"]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "wait")
        .unwrap()
        .clone();
    assert_eq!(
        wait["exits"],
        json!([
            {"reason": "goal reached", "count": 1},
            {"reason": "replied", "count": 1},
            {"reason": "unsubscribed", "count": 1}
        ])
    );
}

/// Quiet hours hold in each contact's own zone, and a third email in a week waits for
/// the cap's window to free a place.
async fn frequency_cap_and_quiet_hours_in_two_timezones(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Limits").await;
    for t in ["a", "b", "c"] {
        template(&app, &key, t).await;
    }
    // 03:00 UTC is evening in New York (quiet) and noon in Tokyo; 23:00–02:00 UTC is
    // daytime in both.
    let day = app.clock.now().date_naive() + Duration::days(1);
    let at = |d: i64, h: u32| {
        (day + Duration::days(d))
            .and_hms_opt(h, 0, 0)
            .unwrap()
            .and_utc()
    };
    let three = at(0, 3);
    app.clock.set(three);
    let seq = create(
        &app,
        &key,
        json!({
            "name": "Limited",
            "fromEmail": "hello@shop.example",
            "quietHours": {"start": "21:00", "end": "08:00"},
            "frequencyCap": {"max": 2, "days": 7},
            "start": "a",
            "steps": [
                {"id": "a", "kind": "sendEmail", "template": "a", "next": "w1"},
                {"id": "w1", "kind": "wait", "duration": "1d", "next": "b"},
                {"id": "b", "kind": "sendEmail", "template": "b", "next": "w2"},
                {"id": "w2", "kind": "wait", "duration": "1d", "next": "c"},
                {"id": "c", "kind": "sendEmail", "template": "c"}
            ]
        }),
    )
    .await;
    let ny = people(&app, &key, "ny", 1, "America/New_York").await;
    let tokyo = people(&app, &key, "tk", 1, "Asia/Tokyo").await;
    let _workers = app.workers(&smtp.url);
    enroll(&app, &key, &seq, &[ny[0].clone(), tokyo[0].clone()]).await;
    let deferred_by = |e: &Value, why: &str| {
        e["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["outcome"] == "deferred" && h["detail"] == why)
    };
    let first = wait_for(
        &app,
        &key,
        &seq,
        "Tokyo's email and New York's deferral",
        2,
        |e| e["currentStep"] == "w1" || deferred_by(e, "quiet hours"),
    )
    .await;
    assert_eq!(first[&tokyo[0]]["currentStep"], "w1");
    let ny_now = &first[&ny[0]];
    assert_eq!(ny_now["currentStep"], "a");
    assert_eq!(sent(ny_now), 0);
    // 08:00 in New York: 13:00 UTC in winter, 12:00 in summer.
    let wake: chrono::DateTime<Utc> = ny_now["nextRunAt"].as_str().unwrap().parse().unwrap();
    assert!(wake == at(0, 13) || wake == at(0, 12), "{wake}");
    assert!(subjects_to(&smtp, "ny0@seq.example").is_empty());

    app.clock.set(wake + Duration::minutes(1));
    wait_enrollments(&app, &key, &seq, "New York's morning email", |e| {
        e["currentStep"] == "w1"
    })
    .await;
    assert_eq!(subjects_to(&smtp, "ny0@seq.example"), ["a for ny0"]);

    // b goes out to both in the hours both are awake; then c meets the cap (2 a week).
    app.clock.set(at(2, 0));
    wait_enrollments(&app, &key, &seq, "the second emails", |e| {
        e["currentStep"] == "w2"
    })
    .await;
    app.clock.set(at(3, 0));
    let capped = wait_enrollments(&app, &key, &seq, "the cap", |e| {
        deferred_by(e, "frequency cap")
    })
    .await;
    for e in capped.values() {
        assert_eq!(e["currentStep"], "c");
        assert_eq!(sent(e), 2);
    }
    let tk_wake: chrono::DateTime<Utc> = capped[&tokyo[0]]["nextRunAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        tk_wake,
        three + Duration::days(7) + Duration::seconds(1),
        "a week after a"
    );
    app.clock.set(at(8, 0));
    let done = wait_enrollments(&app, &key, &seq, "the third emails", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    assert!(done.values().all(|e| sent(e) == 3));
    assert_eq!(
        subjects_to(&smtp, "tk0@seq.example"),
        ["a for tk0", "b for tk0", "c for tk0"]
    );
    assert_eq!(
        subjects_to(&smtp, "ny0@seq.example"),
        ["a for ny0", "b for ny0", "c for ny0"]
    );
}

/// Editing an active sequence makes a version; contacts finish on theirs unless moved,
/// and moving needs a place for every step.
async fn versions_and_migration_mid_sequence(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Versions").await;
    for t in ["a", "b", "c"] {
        template(&app, &key, t).await;
    }
    let v1 = json!({
        "name": "Evolving",
        "fromEmail": "hello@shop.example",
        "start": "a",
        "steps": [
            {"id": "a", "kind": "sendEmail", "template": "a", "next": "wait"},
            {"id": "wait", "kind": "wait", "duration": "2d", "next": "b"},
            {"id": "b", "kind": "sendEmail", "template": "b"}
        ]
    });
    let seq = create(&app, &key, v1.clone()).await;
    let ids = people(&app, &key, "v", 3, "UTC").await;
    let _workers = app.workers(&smtp.url);
    enroll(&app, &key, &seq, &ids[..2]).await;
    wait_enrollments(&app, &key, &seq, "v1's first email", |e| {
        e["currentStep"] == "wait"
    })
    .await;

    let mut v2 = v1.clone();
    v2["steps"][2] = json!({"id": "c", "kind": "sendEmail", "template": "c"});
    v2["steps"][1]["next"] = json!("c");
    let updated = app
        .ok(
            &key,
            "mutation($id: ID!, $d: JSON!) { updateSequence(id: $id, definition: $d) { version status versions { version } } }",
            json!({"id": seq, "d": v2}),
        )
        .await;
    assert_eq!(updated["updateSequence"]["version"], 2);
    assert_eq!(updated["updateSequence"]["status"], "ACTIVE");
    enroll(&app, &key, &seq, &ids[2..]).await;
    wait_enrollments(&app, &key, &seq, "v2's first email", |e| {
        e["currentStep"] == "wait"
    })
    .await;

    // Nobody is moved unless asked; asking about a version that never was is an error.
    let (code, message) = app
        .err(
            &key,
            "mutation($s: ID!) { migrateSequenceEnrollments(sequenceId: $s, fromVersion: 7) }",
            json!({"s": seq}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("version 7"), "{message}");
    app.clock.advance(Duration::days(2) + Duration::minutes(1));
    let done = wait_enrollments(&app, &key, &seq, "everyone done", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(
        subjects_to(&smtp, "v0@seq.example"),
        ["a for v0", "b for v0"],
        "v1 to the end"
    );
    assert_eq!(
        subjects_to(&smtp, "v2@seq.example"),
        ["a for v2", "c for v2"],
        "v2 from the start"
    );
    assert_eq!(done.len(), 3);

    // A third version drops "wait": moving contacts at "wait" needs a map.
    let later = people(&app, &key, "late", 1, "UTC").await;
    enroll(&app, &key, &seq, &later).await;
    wait_enrollments(&app, &key, &seq, "late's first email", |e| {
        e["status"] == "COMPLETED" || e["currentStep"] == "wait"
    })
    .await;
    let mut v3 = v2.clone();
    v3["steps"][1] = json!({"id": "pause", "kind": "wait", "duration": "1d", "next": "c"});
    v3["steps"][0]["next"] = json!("pause");
    app.ok(
        &key,
        "mutation($id: ID!, $d: JSON!) { updateSequence(id: $id, definition: $d) { version } }",
        json!({"id": seq, "d": v3}),
    )
    .await;
    let (code, message) = app
        .err(
            &key,
            "mutation($s: ID!) { migrateSequenceEnrollments(sequenceId: $s) }",
            json!({"s": seq}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    assert!(message.contains("'wait'"), "{message}");
    let moved = app
        .ok(
            &key,
            "mutation($s: ID!, $m: JSON!) { migrateSequenceEnrollments(sequenceId: $s, stepMap: $m) }",
            json!({"s": seq, "m": {"wait": "pause"}}),
        )
        .await;
    assert_eq!(moved["migrateSequenceEnrollments"], 1);
    let late = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { sequenceEnrollments { currentStep status } } }",
            json!({"c": later[0]}),
        )
        .await;
    assert_eq!(
        late["contact"]["sequenceEnrollments"][0]["currentStep"],
        "pause"
    );
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    wait_enrollments(&app, &key, &seq, "late done", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(
        subjects_to(&smtp, "late0@seq.example"),
        ["a for late0", "c for late0"]
    );

    // Export and import round-trip the current version.
    let exported = app
        .ok(
            &key,
            "query($id: ID!) { exportSequence(id: $id) }",
            json!({"id": seq}),
        )
        .await["exportSequence"]
        .as_str()
        .unwrap()
        .to_string();
    let reimported = app
        .ok(
            &key,
            "mutation($j: String!) { importSequence(json: $j) { id version } }",
            json!({"j": exported}),
        )
        .await;
    assert_eq!(reimported["importSequence"]["id"], seq);
    assert_eq!(reimported["importSequence"]["version"], 4);
    let old = app
        .ok(
            &key,
            "query($id: ID!) { exportSequence(id: $id, version: 1) }",
            json!({"id": seq}),
        )
        .await;
    let old: Value = serde_json::from_str(old["exportSequence"].as_str().unwrap()).unwrap();
    assert_eq!(old["steps"][2]["id"], "b");
}

/// A definition that could not run is refused with the step named; enrolling needs an
/// active sequence, contacts of the workspace, and write access.
async fn saving_checks_the_graph(app: TestApp) {
    let key = app.workspace("Checks").await;
    template(&app, &key, "a").await;
    let base = json!({
        "name": "Checked",
        "fromEmail": "hello@shop.example",
        "start": "a",
        "steps": [
            {"id": "a", "kind": "sendEmail", "template": "a", "next": "w"},
            {"id": "w", "kind": "wait", "duration": "1d", "next": "if"},
            {"id": "if", "kind": "branch", "if": {"opened": "a"}, "then": "yes", "else": "no"},
            {"id": "yes", "kind": "exit"},
            {"id": "no", "kind": "exit", "reason": "cold"}
        ]
    });
    let refused = |change: &dyn Fn(&mut Value)| {
        let mut d = base.clone();
        change(&mut d);
        d
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            refused(&|d| {
                d["steps"][2].as_object_mut().unwrap().remove("else");
            }),
            "step 'if': a branch needs an else",
        ),
        (
            refused(&|d| {
                d["steps"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"id": "lost", "kind": "exit"}))
            }),
            "step 'lost' is unreachable",
        ),
        (
            refused(&|d| {
                d["steps"][3] =
                    json!({"id": "yes", "kind": "updateContact", "addTags": ["x"], "next": "if"});
            }),
            "cycle with no wait",
        ),
        (
            refused(&|d| d["steps"][0]["template"] = json!("missing")),
            "step 'a': there is no email template 'missing'",
        ),
        (
            refused(&|d| d["steps"][1]["duration"] = json!("soon")),
            "step 'w': 'soon' is not a duration",
        ),
        (
            refused(&|d| d["steps"][0]["next"] = json!("nowhere")),
            "step 'a' leads to 'nowhere'",
        ),
        (
            refused(&|d| d["steps"][0]["kind"] = json!("teleport")),
            "teleport",
        ),
    ];
    for (definition, expected) in cases {
        let (code, message) = app
            .err(
                &key,
                "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
                json!({"d": definition}),
            )
            .await;
        assert_eq!(code, "VALIDATION", "{message}");
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let (code, _) = app
        .err(
            &key,
            "mutation { importSequence(json: \"{not json\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "VALIDATION");
    let none = app.ok(&key, "{ sequences { id } }", json!({})).await;
    assert_eq!(none["sequences"], json!([]), "nothing refused was stored");

    let made = app
        .ok(
            &key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
            json!({"d": base}),
        )
        .await["createSequence"]["id"]
        .clone();
    let ids = people(&app, &key, "c", 1, "UTC").await;
    let (code, message) = app
        .err(
            &key,
            "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { skipped { reason } } }",
            json!({"s": made, "c": ids}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    assert!(message.contains("activate"), "{message}");
    let (code, _) = app
        .err(
            &key,
            "mutation($d: JSON!) { createSequence(definition: $d) { id } }",
            json!({"d": base}),
        )
        .await;
    assert_eq!(code, "CONFLICT", "names are unique");
    app.ok(
        &key,
        "mutation($id: ID!) { activateSequence(id: $id) { status } }",
        json!({"id": made}),
    )
    .await;
    let other = app.workspace("Elsewhere").await;
    let foreign = people(&app, &other, "f", 1, "UTC").await;
    let (code, _) = app
        .err(
            &key,
            "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { skipped { reason } } }",
            json!({"s": made, "c": foreign}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = app
        .err(
            &other,
            "query($id: ID!) { sequence(id: $id) { id } }",
            json!({"id": made}),
        )
        .await;
    assert_eq!(
        code, "NOT_FOUND",
        "another workspace's sequence is not found"
    );
    let reader = app
        .ok(
            &key,
            "mutation { createApiKey(name: \"r\", scopes: [READ]) { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = app
        .err(
            &reader,
            "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { skipped { reason } } }",
            json!({"s": made, "c": ids}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
}

/// One sequence hands contacts to another; re-entry and the enrollment limit decide who may
/// enter again; a paused sequence holds its contacts, an archived one lets them go.
async fn enroll_step_reentry_pause_and_archive(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Hand-off").await;
    let second = create(
        &app,
        &key,
        json!({
            "name": "Second",
            "fromEmail": "hello@shop.example",
            "allowReentry": true,
            "maxEnrollments": 2,
            "start": "hello",
            "steps": [{"id": "hello", "kind": "updateContact", "addTags": ["second"]}]
        }),
    )
    .await;
    let first = create(
        &app,
        &key,
        json!({
            "name": "First",
            "fromEmail": "hello@shop.example",
            "start": "hand-off",
            "steps": [
                {"id": "hand-off", "kind": "enroll", "sequence": "Second", "next": "wait"},
                {"id": "wait", "kind": "wait", "duration": "1d"}
            ]
        }),
    )
    .await;
    let ids = people(&app, &key, "h", 2, "UTC").await;
    let _workers = app.workers(&smtp.url);
    enroll(&app, &key, &first, &ids[..1]).await;
    wait_enrollments(&app, &key, &first, "the hand-off", |e| {
        e["currentStep"] == "wait"
    })
    .await;
    let handed = wait_enrollments(&app, &key, &second, "the second sequence", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    assert_eq!(handed[&ids[0]]["trigger"], format!("sequence:{first}"));
    let tags = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { tags } }",
            json!({"c": ids[0]}),
        )
        .await;
    assert_eq!(tags["contact"]["tags"], json!(["second"]));

    // Re-entry is on in Second, up to two enrollments; off in First.
    let again = enroll(&app, &key, &second, &ids[..1]).await;
    assert_eq!(again["enrollments"].as_array().unwrap().len(), 1);
    wait_for(&app, &key, &second, "the second run", 2, |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    let third = enroll(&app, &key, &second, &ids[..1]).await;
    assert_eq!(third["skipped"][0]["reason"], "enrolled too many times");
    let busy = enroll(&app, &key, &first, &ids[..1]).await;
    assert_eq!(busy["skipped"][0]["reason"], "already enrolled");

    // Paused, nothing moves and nobody enters; resumed, it goes on.
    let paused = app
        .ok(
            &key,
            "mutation($id: ID!) { pauseSequence(id: $id) { status } }",
            json!({"id": first}),
        )
        .await;
    assert_eq!(paused["pauseSequence"]["status"], "PAUSED");
    app.clock.advance(Duration::days(2));
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    let held = app.ok(&key, ENROLLMENTS, json!({"s": first})).await;
    assert_eq!(held["sequence"]["enrollments"][0]["status"], "ACTIVE");
    let (code, _) = app
        .err(
            &key,
            "mutation($s: ID!, $c: [ID!]!) { enrollInSequence(sequenceId: $s, contactIds: $c) { skipped { reason } } }",
            json!({"s": first, "c": [ids[1]]}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    app.ok(
        &key,
        "mutation($id: ID!) { activateSequence(id: $id) { status } }",
        json!({"id": first}),
    )
    .await;
    wait_enrollments(&app, &key, &first, "the resumed run", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    let done = enroll(&app, &key, &first, &ids[..1]).await;
    assert_eq!(
        done["skipped"][0]["reason"],
        "was enrolled before and re-entry is off"
    );

    // Archived, the contacts still in it leave, and it no longer changes.
    enroll(&app, &key, &first, &ids[1..]).await;
    wait_for(&app, &key, &first, "the new contact waiting", 2, |e| {
        e["status"] == "COMPLETED" || e["currentStep"] == "wait"
    })
    .await;
    app.ok(
        &key,
        "mutation($id: ID!) { archiveSequence(id: $id) { status } }",
        json!({"id": first}),
    )
    .await;
    let gone = app
        .ok(
            &key,
            "query($c: ID!) { contact(id: $c) { sequenceEnrollments { status exitReason } } }",
            json!({"c": ids[1]}),
        )
        .await;
    let first_run = gone["contact"]["sequenceEnrollments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "EXITED")
        .cloned()
        .unwrap_or_else(|| panic!("{gone}"));
    assert_eq!(first_run["exitReason"], "sequence archived");
    let (code, _) = app
        .err(
            &key,
            "mutation($id: ID!, $d: JSON!) { updateSequence(id: $id, definition: $d) { id } }",
            json!({"id": first, "d": {"name": "First", "fromEmail": "a@b.example", "start": "x", "steps": [{"id": "x", "kind": "exit"}]}}),
        )
        .await;
    assert_eq!(code, "CONFLICT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_never_repeats_a_step_sqlite() {
    killed_worker_never_repeats_a_step(TestApp::spawn(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_never_repeats_a_step_postgres() {
    killed_worker_never_repeats_a_step(TestApp::spawn(Backend::Postgres).await).await;
}

/// A `rapport worker` process is SIGKILLed while contacts are between steps; two fresh
/// workers take over. Nobody gets any email twice and every task exists once.
async fn killed_worker_never_repeats_a_step(app: TestApp) {
    let smtp = SmtpServer::start();
    let key = app.workspace("Crash").await;
    template(&app, &key, "first").await;
    template(&app, &key, "second").await;
    let seq = create(
        &app,
        &key,
        json!({
            "name": "Crashing",
            "fromEmail": "hello@shop.example",
            "start": "first",
            "steps": [
                {"id": "first", "kind": "sendEmail", "template": "first", "next": "task"},
                {"id": "task", "kind": "createTask", "title": "Follow up", "next": "pause"},
                {"id": "pause", "kind": "wait", "duration": "1s", "next": "second"},
                {"id": "second", "kind": "sendEmail", "template": "second"}
            ]
        }),
    )
    .await;
    let n = 150;
    let contacts = app
        .ok(
            &key,
            "mutation($c: [ContactInput!]!) { bulkUpsertContacts(contacts: $c) { contact { id } } }",
            json!({"c": (0..n).map(|i| json!({"firstName": format!("k{i}"), "email": format!("k{i}@seq.example")})).collect::<Vec<_>>()}),
        )
        .await;
    let ids: Vec<String> = contacts["bulkUpsertContacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contact"]["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        app.ok(
            &key,
            "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED}) { id } }",
            json!({"c": id}),
        )
        .await;
    }
    let mut first = app.worker_process(&smtp.url);
    enroll(&app, &key, &seq, &ids).await;
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    while smtp.received().len() < 30 {
        assert!(std::time::Instant::now() < deadline, "no email arrived");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL the worker");
    first.wait().unwrap();
    let at_kill = smtp.received().len();
    assert!(at_kill < 2 * n, "the kill came before the end ({at_kill})");
    let mut second = app.worker_process(&smtp.url);
    let mut third = app.worker_process(&smtp.url);
    let done = wait_enrollments(&app, &key, &seq, "everyone through", |e| {
        e["status"] == "COMPLETED"
    })
    .await;
    for w in [&mut second, &mut third] {
        let _ = std::process::Command::new("kill")
            .arg(w.id().to_string())
            .status();
        assert!(w.wait().unwrap().success());
    }
    assert_eq!(done.len(), n);
    let received = smtp.received();
    let keys: Vec<(String, String)> = received
        .iter()
        .map(|m| (header(m, "To").unwrap(), header(m, "Subject").unwrap()))
        .collect();
    let unique: HashSet<&(String, String)> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "somebody got an email twice");
    let recorded: usize = done.values().map(sent).sum();
    let interrupted: usize = done
        .values()
        .flat_map(|e| e["messages"].as_array().unwrap().clone())
        .filter(|m| m["state"] == "UNKNOWN")
        .count();
    let mut states: HashMap<String, usize> = HashMap::new();
    for m in done
        .values()
        .flat_map(|e| e["messages"].as_array().unwrap().clone())
    {
        *states
            .entry(m["state"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    eprintln!(
        "killed after {at_kill} received; {recorded} recorded sent, {interrupted} interrupted, {} received; {states:?}",
        received.len()
    );
    assert!(
        received.len() >= recorded && received.len() <= recorded + interrupted,
        "{states:?}"
    );
    let tasks = app.ok(&key, "{ tasks { totalCount } }", json!({})).await;
    assert_eq!(
        tasks["tasks"]["totalCount"], n,
        "one task per contact, never two"
    );
}
