//! The console in a real browser (headless Chromium over WebDriver) against a real server
//! on both databases: sign in, the sales pages, invitations from a real email, what a
//! viewer may not do, lock-out and sign-out. Each check saves a screenshot under the
//! target directory's `console-screenshots/`.

use rapport_tests::browser::Browser;
use rapport_tests::{Backend, component, links, repo_file};
use serde_json::{Value, json};

use crate::console_demo::{PASSWORD, PUBLIC, db_name, demo, run};

async fn sign_in(b: &Browser, base: &str, email: &str, password: &str) {
    b.goto(&format!("{base}/#/sign-in")).await;
    b.fill("#sign-in-form input[name=email]", email).await;
    b.fill("#sign-in-form input[name=password]", password).await;
    b.click_on("#sign-in-form button[type=submit]").await;
}

/// A GraphQL request from inside the page, as the console makes them (cookie + CSRF).
async fn from_page(b: &Browser, query: &str) -> Value {
    b.run(
        "const s = await (await fetch('/auth/session')).json();
         const r = await fetch('/graphql', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrfToken}, body: JSON.stringify({query: arguments[0]})});
         return await r.json();",
        json!([query]),
    )
    .await
}

async fn sales_work_in_the_console(backend: Backend) {
    let Some(d) = demo(backend, 120, true).await else {
        return;
    };
    let (app, key) = (&d.app, &d.key);
    let db = db_name(backend);
    // Next best actions for the 360 page: the example plugin over the first contacts.
    let (_, registered) = app
        .upload(
            key,
            "mutation($name: String!, $q: String!, $wasm: Upload!) { registerPlugin(name: $name, inputQuery: $q, wasm: $wasm) { name } }",
            json!({"name": "next-best-action", "q": repo_file("plugins/examples/next-best-action/query.graphql")}),
            "wasm",
            component("next_best_action"),
        )
        .await;
    assert!(registered["errors"].is_null(), "{registered}");
    // And a plugin of deals, whose score the deal's dialog shows.
    let (_, registered) = app
        .upload(
            key,
            "mutation($name: String!, $q: String!, $wasm: Upload!) { registerPlugin(name: $name, inputQuery: $q, wasm: $wasm) { name } }",
            json!({"name": "deal-risk", "q": repo_file("plugins/examples/deal-risk/query.graphql")}),
            "wasm",
            component("deal_risk"),
        )
        .await;
    assert!(registered["errors"].is_null(), "{registered}");
    let ids: Vec<Value> = app
        .ok(key, "{ contacts(first: 120) { nodes { id } } }", json!({}))
        .await["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    app.ok(
        key,
        "mutation($ids: [ID!]!) { runPlugins(contactIds: $ids) { plugins } }",
        json!({"ids": ids}),
    )
    .await;
    let with_actions = app
        .ok(
            key,
            "{ contacts(first: 120) { nodes { id nextBestActions { id status } } } }",
            json!({}),
        )
        .await;
    let (contact_id, action_id) = with_actions["contacts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| {
            let a = c["nextBestActions"]
                .as_array()?
                .iter()
                .find(|a| a["status"] == "OPEN")?;
            Some((c["id"].as_str()?.to_string(), a["id"].as_str()?.to_string()))
        })
        .expect("the plugin proposes an action for some demo contact");

    let b = Browser::start().await;
    let base = &app.base;
    // Signed out, the console asks to sign in; a wrong password is refused on the form.
    b.goto(&format!("{base}/")).await;
    b.find("#sign-in-form").await;
    b.screenshot(&format!("sign-in-{db}")).await;
    sign_in(&b, base, &d.admin_email, "not my password").await;
    b.wait_for_text("The email or the password is wrong").await;
    sign_in(&b, base, &d.admin_email, PASSWORD).await;

    // Home: the funnel, the forecast, retention and tasks.
    b.find(".funnel-row [data-stage]").await;
    b.wait_for_text("Revenue forecast").await;
    b.find(".heat").await;
    b.screenshot(&format!("home-{db}")).await;
    // Drill-down to the deals behind a number.
    b.click_on(".funnel-row [data-stage=\"0\"]").await;
    b.find("dialog table").await;
    b.screenshot(&format!("home-drill-{db}")).await;
    b.click_on("dialog .dialog-actions button").await;

    // Contacts: filter by stage, the count matches the API, then save the filter.
    b.goto(&format!("{base}/#/contacts")).await;
    b.find("#contacts-table").await;
    b.choose("#contact-filters select[name=stage]", "CUSTOMER")
        .await;
    b.click_on("#contact-filters button[type=submit]").await;
    let expected = app
        .ok(
            key,
            "{ contacts(filter: {and: [{lifecycleStage: {eq: CUSTOMER}}]}) { totalCount } }",
            json!({}),
        )
        .await["contacts"]["totalCount"]
        .as_i64()
        .unwrap();
    b.wait_for_text(&format!("{expected} contacts match")).await;
    b.click_on("#save-segment").await;
    b.fill("dialog input[name=name]", "Customers from the console")
        .await;
    b.click_on("dialog .dialog-actions button.primary").await;
    b.wait_for_text("Segment “Customers from the console” saved")
        .await;
    let segments = app
        .ok(key, "{ segments { name preview { count } } }", json!({}))
        .await;
    let saved = segments["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Customers from the console")
        .expect("saved segment");
    assert_eq!(saved["preview"]["count"].as_i64(), Some(expected));
    b.screenshot(&format!("contacts-{db}")).await;
    // Bulk: tag the first two contacts on the page.
    let boxes = b
        .find_all("#contacts-table tbody input[type=checkbox]")
        .await;
    b.click(&boxes[0]).await;
    b.click(&boxes[1]).await;
    b.fill("#bulk-actions input[name=bulkTag]", "console-picked")
        .await;
    b.click_on("#bulk-tag").await;
    b.wait_for_text("Tagged 2 contacts").await;
    let tagged = app
        .ok(
            key,
            "{ contacts(filter: {tags: {has: \"console-picked\"}}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(tagged["contacts"]["totalCount"], 2);

    // Customer 360: accept a next best action.
    b.goto(&format!("{base}/#/contacts/{contact_id}")).await;
    b.find(&format!("[data-accept=\"{action_id}\"]")).await;
    b.wait_for_text("Timeline").await;
    b.screenshot(&format!("contact-360-{db}")).await;
    b.click_on(&format!("[data-accept=\"{action_id}\"]")).await;
    b.wait_for_text("Accepted").await;
    let after = app
        .ok(
            key,
            "query($id: ID!) { contact(id: $id) { nextBestActions { id status } } }",
            json!({"id": contact_id}),
        )
        .await;
    // An answered action leaves the list of open ones.
    assert!(
        !after["contact"]["nextBestActions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == action_id.as_str() && a["status"] == "OPEN"),
        "{after}"
    );

    // The board: drag the first card of the first column to the second column.
    b.goto(&format!("{base}/#/board")).await;
    let card = b.find(".column:first-child .card").await;
    let deal_id = b
        .run(
            "return document.querySelector('.column:first-child .card').dataset.deal;",
            json!([]),
        )
        .await;
    let deal_id = deal_id.as_str().unwrap().to_string();
    let columns = b.find_all(".column").await;
    b.screenshot(&format!("board-{db}")).await;
    b.drag(&card, &columns[1]).await;
    b.wait_for_text("moved to").await;
    let moved = app
        .ok(key, "query($id: ID!) { deal(id: $id) { stage { id } pipeline { stages { id } } stageHistory { toStage { id } movedBy { email } } } }", json!({"id": deal_id}))
        .await;
    assert_eq!(
        moved["deal"]["stage"]["id"], moved["deal"]["pipeline"]["stages"][1]["id"],
        "{moved}"
    );
    let last = moved["deal"]["stageHistory"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["movedBy"]["email"],
        d.admin_email.as_str(),
        "the move is recorded with who made it"
    );
    // Its history and its risk, in the card's dialog.
    app.ok(
        key,
        "mutation($d: [ID!]) { runPlugins(dealIds: $d, plugin: \"deal-risk\") { scored } }",
        json!({"d": [deal_id]}),
    )
    .await;
    b.click_on(&format!(".card[data-deal=\"{deal_id}\"]")).await;
    b.find("#stage-history li").await;
    b.wait_for_text("by Ada").await;
    b.find("#deal-form .deal-score").await;
    b.screenshot(&format!("deal-history-{db}")).await;
    // Close it as lost with a reason, from the same dialog.
    b.choose("#deal-form select[name=outcome]", "LOST").await;
    b.fill("#deal-form input[name=reason]", "chose a competitor")
        .await;
    b.click_on("dialog .dialog-actions button.danger").await;
    b.wait_for_text("Closed as lost").await;
    let closed = app
        .ok(
            key,
            "query($id: ID!) { deal(id: $id) { status lostReason } }",
            json!({"id": deal_id}),
        )
        .await;
    assert_eq!(
        closed["deal"],
        json!({"status": "LOST", "lostReason": "chose a competitor"})
    );
    // The board redraws after the dialog closes.
    let gone = format!(".card[data-deal=\"{deal_id}\"]");
    for _ in 0..100 {
        if b.find_now(&gone).await.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        b.find_now(&gone).await.is_none(),
        "a closed deal leaves the board"
    );

    // Settings: an API key is shown once, and works.
    b.goto(&format!("{base}/#/settings")).await;
    b.fill("#key-form input[name=name]", "From the console")
        .await;
    b.click_on("#key-form button[type=submit]").await;
    let new_key = b.text(&b.find("#new-key").await).await;
    assert!(new_key.starts_with("rk_"), "{new_key}");
    app.ok(&new_key, "{ viewer { scopes } }", json!({})).await;

    // Sign out: the cookie the browser held no longer works.
    let cookie = b.cookie("rapport_session").await.expect("session cookie");
    let csrf = b
        .run(
            "return (await (await fetch('/auth/session')).json()).csrfToken;",
            json!([]),
        )
        .await;
    b.click_on("#sign-out").await;
    b.find("#sign-in-form").await;
    let stale = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("cookie", format!("rapport_session={cookie}"))
        .header("x-csrf-token", csrf.as_str().unwrap())
        .json(&json!({"query": "{ viewer { scopes } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status().as_u16(), 401);
    drop(d.smtp);
}

async fn invitations_viewers_and_lock_out(backend: Backend) {
    let Some(d) = demo(backend, 120, true).await else {
        return;
    };
    let app = &d.app;
    let db = db_name(backend);
    let b = Browser::start().await;
    let base = &app.base;
    sign_in(&b, base, &d.admin_email, PASSWORD).await;
    b.find(".funnel-row").await;

    // An admin invites a viewer from Settings; the email arrives with a one-time link.
    b.goto(&format!("{base}/#/settings")).await;
    b.find("#people-table").await;
    b.find("#mail-status").await;
    b.wait_for_text("Reachable").await;
    b.fill("#invite-form input[name=email]", "vera@example.com")
        .await;
    b.fill("#invite-form input[name=name]", "Vera Viewer").await;
    b.choose("#invite-form select[name=role]", "VIEWER").await;
    b.click_on("#invite-form button[type=submit]").await;
    b.wait_for_text("An invitation is on its way to vera@example.com")
        .await;
    b.find("#invitations-table").await;
    b.screenshot(&format!("settings-{db}")).await;
    let mut link = None;
    for _ in 0..100 {
        link = d
            .smtp
            .received()
            .iter()
            .filter(|m| m.contains("vera@example.com"))
            .flat_map(|m| links(m, &format!("{PUBLIC}/#/set-password?token=")))
            .next();
        if link.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let link = link.expect("the invitation email with its link");
    let token = link.split("token=").nth(1).unwrap();

    // Vera sets her password from the link and lands in the console, signed in.
    b.click_on("#sign-out").await;
    b.find("#sign-in-form").await;
    b.goto(&format!("{base}/#/set-password?token={token}"))
        .await;
    b.fill(
        "#set-password-form input[name=password]",
        "vera's long password",
    )
    .await;
    b.fill(
        "#set-password-form input[name=again]",
        "vera's long password",
    )
    .await;
    b.click_on("#set-password-form button[type=submit]").await;
    b.wait_for_text("Viewer · vera@example.com").await;

    // A viewer has no controls that change anything, and the API refuses her anyway.
    b.goto(&format!("{base}/#/contacts")).await;
    b.find("#contacts-table").await;
    assert!(b.find_now("#save-segment").await.is_none());
    assert!(b.find_now("#bulk-actions").await.is_none());
    assert!(
        b.find_now("#contacts-table input[type=checkbox]")
            .await
            .is_none()
    );
    b.screenshot(&format!("viewer-contacts-{db}")).await;
    let first = b
        .run(
            "return document.querySelector('#contacts-table tbody a').getAttribute('href');",
            json!([]),
        )
        .await;
    b.goto(&format!("{base}/{}", first.as_str().unwrap())).await;
    b.wait_for_text("Timeline").await;
    assert!(b.find_now("#edit-contact").await.is_none());
    assert!(b.find_now("#erase-contact").await.is_none());
    assert!(b.find_now("[data-accept]").await.is_none());
    b.goto(&format!("{base}/#/settings")).await;
    b.find("#people-table").await;
    assert!(b.find_now("#invite-form").await.is_none());
    assert!(b.find_now("#key-form").await.is_none());
    let refused = from_page(
        &b,
        "mutation { createContact(input: {firstName: \"Nope\"}) { id } }",
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let refused = from_page(
        &b,
        "mutation { inviteUser(email: \"x@example.com\", name: \"X\", role: ADMIN) { emailed } }",
    )
    .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    // Five wrong passwords lock the account; the form says so.
    b.click_on("#sign-out").await;
    b.find("#sign-in-form").await;
    for i in 0..5 {
        sign_in(&b, base, "vera@example.com", &format!("guess number {i}")).await;
        b.find(".form-error").await;
    }
    b.wait_for_text("locked").await;
    sign_in(&b, base, "vera@example.com", "vera's long password").await;
    b.wait_for_text("locked").await;
    b.screenshot(&format!("locked-{db}")).await;
}

mod sales {
    use super::run;
    #[test]
    fn sqlite() {
        run(super::sales_work_in_the_console(
            rapport_tests::Backend::Sqlite,
        ));
    }
    #[test]
    fn postgres() {
        run(super::sales_work_in_the_console(
            rapport_tests::Backend::Postgres,
        ));
    }
}

mod people {
    use super::run;
    #[test]
    fn sqlite() {
        run(super::invitations_viewers_and_lock_out(
            rapport_tests::Backend::Sqlite,
        ));
    }
    #[test]
    fn postgres() {
        run(super::invitations_viewers_and_lock_out(
            rapport_tests::Backend::Postgres,
        ));
    }
}
