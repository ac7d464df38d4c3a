//! The console's marketing and developer pages in a real browser (headless Chromium over
//! WebDriver) against a real server, its workers and a real SMTP server, on both
//! databases: a segment and a template built in the browser (the template's error shown
//! on its line, then fixed), an A/B campaign test-sent, sent, and its numbers moving when
//! a received mail's pixel is opened; a sequence drawn in the editor, refused with the
//! unreachable step marked, fixed, activated, and its per-step numbers moving with the
//! clock; a plugin uploaded, its scores on a customer 360, and a rollback. Screenshots go
//! under the target directory's `console-screenshots/`.

use chrono::Duration;
use rapport_tests::browser::Browser;
use rapport_tests::{Backend, TestApp, header, links, repo_file};
use serde_json::json;

use crate::console_demo::{Demo, PASSWORD, db_name, demo, run};

async fn sign_in(b: &Browser, d: &Demo) {
    b.goto(&format!("{}/#/sign-in", d.app.base)).await;
    b.fill("#sign-in-form input[name=email]", &d.admin_email)
        .await;
    b.fill("#sign-in-form input[name=password]", PASSWORD).await;
    b.click_on("#sign-in-form button[type=submit]").await;
    b.find(".shell").await;
}

/// Gives `n` tagged contacts with an address marketing consent; returns their ids.
async fn consenting(app: &TestApp, key: &str, tag: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = app
            .ok(
                key,
                "mutation($i: ContactInput!) { createContact(input: $i) { id } }",
                json!({"i": {"firstName": format!("Reader{i}"), "lastName": "Example", "email": format!("{tag}{i}@readers.example"), "tags": [tag]}}),
            )
            .await["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        app.ok(
            key,
            "mutation($c: ID!) { recordConsent(contactId: $c, input: {purpose: MARKETING, status: GRANTED}) { id } }",
            json!({"c": id}),
        )
        .await;
        ids.push(id);
    }
    ids
}

/// Blurs the focused field, as moving on to the next one does (its `change` fires).
async fn blur(b: &Browser) {
    b.run(
        "document.activeElement && document.activeElement.blur(); return true;",
        json!([]),
    )
    .await;
}

async fn campaigns_from_the_browser(backend: Backend) {
    let Some(d) = demo(backend, 80, false).await else {
        return;
    };
    let (app, key, smtp) = (&d.app, &d.key, &d.smtp);
    let db = db_name(backend);
    consenting(app, key, "spring", 4).await;
    let _workers = app.workers(&smtp.url);
    let b = Browser::start().await;
    let base = &app.base;
    sign_in(&b, &d).await;

    // A segment from rules: tagged "spring"; the live count follows the rule.
    b.goto(&format!("{base}/#/segments/new")).await;
    b.fill("#segment-form input[name=name]", "Spring readers")
        .await;
    b.click_on("#add-rule").await;
    b.choose("#segment-rules select[name=ruleField]", "tag")
        .await;
    b.fill("#segment-rules input[name=ruleValue]", "spring")
        .await;
    b.wait_for_text("Reader0").await;
    assert_eq!(b.text_of("#segment-count").await, "4");
    b.screenshot(&format!("segment-builder-{db}")).await;
    b.click_on("#save-segment").await;
    b.wait_for_text("Segment “Spring readers” saved").await;

    // A template with a typo on its third line: marked there, then fixed.
    b.goto(&format!("{base}/#/templates/new")).await;
    b.find("#template-preview .rendered").await;
    b.fill("#template-form input[name=name]", "Spring offer")
        .await;
    b.fill("#code-subject", "Spring is here, {{ contact.first_name }}")
        .await;
    b.fill(
        "#code-html",
        "<p>Hello {{ contact.first_name }},</p>\n<p>Our spring collection is in.</p>\n<p>See it, {{ contact.frist_name }}</p>\n<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
    )
    .await;
    b.wait_for_text("Line 3: uses unknown variable 'contact.frist_name'")
        .await;
    assert_eq!(b.text_of(".gutter .bad").await, "3");
    b.screenshot(&format!("template-error-{db}")).await;
    b.fill(
        "#code-html",
        "<p>Hello {{ contact.first_name }},</p>\n<p>Our spring collection is in.</p>\n<p>See it, {{ contact.first_name }}</p>\n<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
    )
    .await;
    b.find("#template-preview .rendered").await;
    assert!(b.find_now(".gutter .bad").await.is_none());
    b.click_on("#save-template").await;
    b.wait_for_text("Template “Spring offer” saved").await;
    b.screenshot(&format!("template-editor-{db}")).await;

    // The campaign: two variants from the template, an A/B test, saved as a draft.
    b.goto(&format!("{base}/#/campaigns/new")).await;
    b.fill("#campaign-form input[name=name]", "Spring launch")
        .await;
    let segment_id = app.ok(key, "{ segments { id name } }", json!({})).await["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Spring readers")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.choose("#campaign-form select[name=segmentId]", &segment_id)
        .await;
    b.wait_for_text("4 contacts now, such as").await;
    b.fill("#campaign-form input[name=fromEmail]", "news@shop.example")
        .await;
    let template_id = app
        .ok(key, "{ emailTemplates { id name } }", json!({}))
        .await["emailTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Spring offer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.choose("select[name=variant-0-template]", &template_id)
        .await;
    b.find("[data-variant=\"0\"] .rendered").await;
    b.click_on("#add-variant").await;
    b.fill("#code-v1-subject", "Last chance, {{ contact.first_name }}")
        .await;
    b.fill("#campaign-form input[name=testShare]", "99").await;
    b.fill("#campaign-form input[name=waitMinutes]", "30").await;
    b.click_on("#save-campaign").await;
    b.find("#campaign-reach #will-receive").await;
    assert_eq!(b.text_of("#will-receive").await, "4");
    b.screenshot(&format!("campaign-builder-{db}")).await;

    // A test send reaches the typed address only, one mail per variant.
    // The address starts as the signed-in person's own.
    assert_eq!(
        b.run(
            "return document.querySelector('input[name=testTo]').value;",
            json!([])
        )
        .await,
        json!(d.admin_email)
    );
    b.click_on("#send-test").await;
    b.wait_for_text(&format!("2 test emails sent to {}", d.admin_email))
        .await;
    let tests: Vec<String> = smtp
        .received()
        .iter()
        .filter_map(|m| header(m, "Subject"))
        .filter(|s| s.starts_with("[Test"))
        .collect();
    assert_eq!(tests.len(), 2, "{tests:?}");

    // Send: the results page follows it to the end.
    b.click_on("#send-now").await;
    b.click_on("dialog .dialog-actions button.primary").await;
    b.find("#campaign-progress").await;
    let campaign = app
        .ok(key, "{ campaigns { id name status } }", json!({}))
        .await["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Spring launch")
        .unwrap()["id"]
        .clone();
    // Nearly all of the audience is in the test, split between the variants.
    app.until(
        key,
        "query($id: ID!) { campaign(id: $id) { stats { sent } } }",
        json!({"id": campaign}),
        30,
        |d| d["campaign"]["stats"]["sent"].as_i64() >= Some(1),
    )
    .await;
    // A reader opens a mail: the pixel, as received, reaches this server.
    let mail = smtp
        .received()
        .into_iter()
        .find(|m| header(m, "To").is_some_and(|t| t.ends_with("@readers.example")))
        .expect("a campaign mail");
    // The workers write links to the address they were given (the test server's).
    let pixel = links(&mail, &format!("{base}/t/o/"));
    assert_eq!(pixel.len(), 1, "{mail}");
    assert_eq!(app.get(&pixel[0]).await.0, 200);
    b.find("#variant-table").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let table = b.text_of("#variant-table").await;
        if table.contains("100.0%") || table.contains("50.0%") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the open never showed: {table}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    b.screenshot(&format!("campaign-results-{db}")).await;
}

async fn sequences_from_the_browser(backend: Backend) {
    let Some(d) = demo(backend, 80, false).await else {
        return;
    };
    let (app, key, smtp) = (&d.app, &d.key, &d.smtp);
    let db = db_name(backend);
    let people = consenting(app, key, "drip", 2).await;
    app.ok(
        key,
        "mutation { createEmailTemplate(input: {name: \"Welcome\", subject: \"Welcome {{ contact.first_name }}\", html: \"<p>Hi</p><a href='{{ unsubscribe_url }}'>u</a>\", text: \"Hi {{ unsubscribe_url }}\"}) { id } }",
        json!({}),
    )
    .await;
    let _workers = app.workers(&smtp.url);
    let b = Browser::start().await;
    let base = &app.base;
    sign_in(&b, &d).await;

    // The starter graph has three steps: email, wait, exit.
    b.goto(&format!("{base}/#/sequences/new")).await;
    for step in ["welcome", "wait", "done"] {
        b.find(&format!(".node[data-step={step}]")).await;
    }
    b.fill("#sequence-settings input[name=name]", "Welcome drip")
        .await;
    b.fill(
        "#sequence-settings input[name=fromEmail]",
        "hello@shop.example",
    )
    .await;
    blur(&b).await;
    b.click_on(".node[data-step=welcome]").await;
    b.choose("#step-inspector select[name=template]", "Welcome")
        .await;
    // A fourth step nothing leads to: the save is refused and the step is marked.
    b.click_on("#add-step").await;
    b.find(".node[data-step=step4]").await;
    b.click_on("#save-sequence").await;
    b.find(".node[data-step=step4].invalid").await;
    assert!(
        b.text_of(".node[data-step=step4] .node-error")
            .await
            .contains("unreachable")
    );
    assert!(
        app.ok(key, "{ sequences { name } }", json!({})).await["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["name"] != "Welcome drip"),
        "nothing half-saved"
    );
    b.screenshot(&format!("sequence-error-{db}")).await;
    b.click_on("#remove-step").await;
    b.click_on("#save-sequence").await;
    b.wait_for_text("Sequence saved as a draft").await;
    b.find("#sequence-activate").await;
    b.click_on("#sequence-activate").await;
    b.wait_for_text("Sequence active").await;

    // Enroll two contacts; the graph's numbers follow them through the wait.
    b.fill("input[name=enrollIds]", &people.join(", ")).await;
    b.click_on("#enroll").await;
    b.wait_for_text("2 enrolled").await;
    wait_stats(&b, "welcome", "2 in · 0 now · 2 done").await;
    wait_stats(&b, "wait", "2 in · 2 now · 0 done").await;
    b.screenshot(&format!("sequence-editor-{db}")).await;
    app.clock.advance(Duration::days(3) + Duration::minutes(1));
    wait_stats(&b, "wait", "2 in · 0 now · 2 done").await;
    wait_stats(&b, "done", "2 in").await;
    b.screenshot(&format!("sequence-done-{db}")).await;
}

/// Waits until the graph shows `text` on `step`'s numbers (the page refreshes them).
async fn wait_stats(b: &Browser, step: &str, text: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let shown = b.text_of(&format!("[data-stats={step}]")).await;
        if shown.contains(text) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "step {step} shows {shown:?}, not {text:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

async fn plugins_from_the_browser(backend: Backend) {
    let Some(d) = demo(backend, 80, false).await else {
        return;
    };
    let (app, key) = (&d.app, &d.key);
    let db = db_name(backend);
    let _workers = app.workers(&d.smtp.url);
    let b = Browser::start().await;
    let base = &app.base;
    sign_in(&b, &d).await;
    let wasm = std::path::Path::new(&std::env::var("RAPPORT_TEST_PLUGINS").unwrap_or_else(|_| {
        format!(
            "{}/wasm32-wasip2/release",
            std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())
        )
    }))
    .join("engagement_score.wasm");
    let wasm = wasm
        .canonicalize()
        .expect("scripts/test builds the example plugins");
    let query = repo_file("plugins/examples/engagement-score/query.graphql");

    // Upload twice (two versions), trying the query first.
    for round in 1..=2 {
        b.goto(&format!("{base}/#/plugins/new")).await;
        b.fill("#plugin-form input[name=name]", "engagement").await;
        b.attach("#plugin-form input[name=wasm]", wasm.to_str().unwrap())
            .await;
        b.fill("#code-inputQuery", &query).await;
        b.click_on("#try-query").await;
        b.find("#query-result pre").await;
        b.click_on("#upload-plugin").await;
        b.find("#sample-run").await;
        assert!(
            b.text_of("#sample-run")
                .await
                .contains("sample run on contact")
        );
        assert!(
            b.text_of("#upload-outcome")
                .await
                .contains(&format!("version {round} is active"))
        );
        if round == 1 {
            b.screenshot(&format!("plugin-upload-{db}")).await;
        }
    }
    // Its scores on a customer 360.
    let contact = app
        .ok(key, "{ contacts(first: 1) { nodes { id } } }", json!({}))
        .await["contacts"]["nodes"][0]["id"]
        .clone();
    app.ok(
        key,
        "mutation($ids: [ID!]!) { runPlugins(contactIds: $ids) { scored } }",
        json!({"ids": [contact]}),
    )
    .await;
    b.goto(&format!("{base}/#/contacts/{}", contact.as_str().unwrap()))
        .await;
    b.wait_for_text("engagement").await;
    b.screenshot(&format!("plugin-scores-360-{db}")).await;

    // Roll back to version 1.
    b.goto(&format!("{base}/#/plugins/engagement")).await;
    b.find("#score-distribution").await;
    b.click_on("[data-rollback=\"1\"]").await;
    b.click_on("dialog .dialog-actions button.primary").await;
    b.wait_for_text("Version 1 is active.").await;
    let active = app
        .ok(
            key,
            "{ plugin(name: \"engagement\") { activeVersion { version } events { kind } } }",
            json!({}),
        )
        .await;
    assert_eq!(active["plugin"]["activeVersion"]["version"], 1);
    assert_eq!(active["plugin"]["events"][0]["kind"], "rolled_back");
    b.screenshot(&format!("plugin-page-{db}")).await;
    // Does it predict? The backtest beside the built-in lead score.
    b.click_on("#run-backtest").await;
    b.find("#backtest-result").await;
    b.wait_for_text("This plugin, v1").await;
    b.screenshot(&format!("plugin-backtest-{db}")).await;

    // Train a model now: a job whose progress the page follows to the new version.
    let count = |v: &serde_json::Value| v["models"].as_array().unwrap().len();
    let before = count(
        &app.ok(key, "{ models(kind: LEAD_SCORE) { version } }", json!({}))
            .await,
    );
    b.goto(&format!("{base}/#/plugins")).await;
    b.click_on("[data-train=LEAD_SCORE]").await;
    b.find("#models-table .training").await;
    b.wait_for_text(&format!("Lead score: version {}", before + 1))
        .await;
    let after = count(
        &app.ok(key, "{ models(kind: LEAD_SCORE) { version } }", json!({}))
            .await,
    );
    assert_eq!(after, before + 1);
    b.screenshot(&format!("models-{db}")).await;
}

mod marketing_campaigns {
    use super::run;
    #[test]
    fn sqlite() {
        run(super::campaigns_from_the_browser(
            rapport_tests::Backend::Sqlite,
        ));
    }
    #[test]
    fn postgres() {
        run(super::campaigns_from_the_browser(
            rapport_tests::Backend::Postgres,
        ));
    }
}

mod marketing_sequences {
    use super::run;
    #[test]
    fn sqlite() {
        run(super::sequences_from_the_browser(
            rapport_tests::Backend::Sqlite,
        ));
    }
    #[test]
    fn postgres() {
        run(super::sequences_from_the_browser(
            rapport_tests::Backend::Postgres,
        ));
    }
}

mod developer_plugins {
    use super::run;
    #[test]
    fn sqlite() {
        run(super::plugins_from_the_browser(
            rapport_tests::Backend::Sqlite,
        ));
    }
    #[test]
    fn postgres() {
        run(super::plugins_from_the_browser(
            rapport_tests::Backend::Postgres,
        ));
    }
}
