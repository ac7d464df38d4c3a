//! CSV imports through GraphQL over HTTP: the headers' suggested mapping, a multipart
//! upload that becomes a job, a dry run confirmed without a second upload, progress
//! counts, the reject file downloaded with the caller's key, companies and deals imported
//! and exported by their keys; read keys, members' scope, other workspaces and oversized
//! uploads are refused.

use rapport_tests::{SmtpServer, TestApp, both_backends};
use serde_json::{Value, json};

both_backends!(an_uploaded_csv_is_a_job_with_progress_and_a_reject_file);

const IMPORT: &str =
    "mutation($kind: ImportKind!, $file: Upload!, $mapping: [ColumnMappingInput!], $dry: Boolean! = false) {
  importCsv(kind: $kind, file: $file, mapping: $mapping, dryRun: $dry) {
    id kind state dryRun fileName fileBytes columns { header target }
  }
}";
const WATCH: &str = "query($id: ID!) { import(id: $id) { id state dryRun total processed created updated failed error rejectsUrl } }";
const CONFIRM: &str = "mutation($id: ID!) { confirmImport(id: $id) { id state dryRun } }";

const PEOPLE: &str = "\
E-mail,First Name,Plan,Tags
ada@example.com,Ada,pro,vip;beta
not an address,Bob,free,
grace@example.com,Grace,,
ada@example.com,Ada L.,,
";

async fn upload(app: &TestApp, key: &str, kind: &str, csv: &str, extra: Value) -> (u16, Value) {
    let mut variables = json!({"kind": kind});
    for (k, v) in extra.as_object().unwrap() {
        variables[k] = v.clone();
    }
    let file = ("people.csv", "text/csv", csv.as_bytes().to_vec());
    app.upload_file(key, IMPORT, variables, "file", file).await
}

async fn finished(app: &TestApp, key: &str, id: &Value) -> Value {
    app.until(key, WATCH, json!({"id": id}), 60, |d| {
        matches!(d["import"]["state"].as_str(), Some("DONE" | "FAILED"))
    })
    .await["import"]
        .clone()
}

async fn an_uploaded_csv_is_a_job_with_progress_and_a_reject_file(app: TestApp) {
    let key = app.workspace("Imports").await;
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);

    // What a form shows before the upload.
    let suggested = app
        .ok(
            &key,
            "{ suggestedImportMapping(kind: CONTACTS, headers: [\"E-mail\", \"First Name\", \"Plan\"]) { header target } }",
            json!({}),
        )
        .await;
    assert_eq!(
        suggested["suggestedImportMapping"],
        json!([
            {"header": "E-mail", "target": "email"},
            {"header": "First Name", "target": "firstName"},
            {"header": "Plan", "target": "attributes.plan"},
        ])
    );

    // A mapping naming a column the file lacks is refused at once, nothing stored.
    let (_, body) = upload(
        &app,
        &key,
        "CONTACTS",
        PEOPLE,
        json!({"mapping": [{"header": "Nope", "target": "email"}]}),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Nope"),
        "{body}"
    );

    // A dry run: counted, nothing written.
    let (status, body) = upload(
        &app,
        &key,
        "CONTACTS",
        PEOPLE,
        json!({"dry": true, "mapping": [{"header": "Plan", "target": "attributes.tier"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started = &body["data"]["importCsv"];
    assert_eq!(started["state"], "QUEUED", "{body}");
    assert_eq!(started["dryRun"], true);
    assert_eq!(started["fileName"], "people.csv");
    assert_eq!(started["fileBytes"], PEOPLE.len());
    assert_eq!(
        started["columns"][2],
        json!({"header": "Plan", "target": "attributes.tier"})
    );
    let dry = finished(&app, &key, &started["id"]).await;
    assert_eq!(dry["state"], "DONE", "{dry}");
    assert_eq!(
        [
            &dry["total"],
            &dry["processed"],
            &dry["created"],
            &dry["updated"],
            &dry["failed"]
        ],
        [4, 4, 2, 1, 1].map(|n| json!(n)).each_ref(),
        "{dry}"
    );
    let count = "{ contacts(first: 1) { totalCount } }";
    assert_eq!(
        app.ok(&key, count, json!({})).await["contacts"]["totalCount"],
        0
    );

    // Confirmed: the same file, for real, once.
    let real = app.ok(&key, CONFIRM, json!({"id": started["id"]})).await["confirmImport"].clone();
    assert_eq!(real["dryRun"], false);
    let real = finished(&app, &key, &real["id"]).await;
    assert_eq!(
        [&real["created"], &real["updated"], &real["failed"]],
        [2, 1, 1].map(|n| json!(n)).each_ref(),
        "{real}"
    );
    assert_eq!(
        app.ok(&key, count, json!({})).await["contacts"]["totalCount"],
        2
    );
    let ada = app
        .ok(
            &key,
            "{ contacts(first: 1, filter: {email: {eq: \"ada@example.com\"}}) { nodes { firstName attributes } } }",
            json!({}),
        )
        .await;
    assert_eq!(ada["contacts"]["nodes"][0]["firstName"], "Ada L.");
    assert_eq!(ada["contacts"]["nodes"][0]["attributes"]["tier"], "pro");
    let (code, _) = app.err(&key, CONFIRM, json!({"id": started["id"]})).await;
    assert_eq!(code, "CONFLICT", "a dry run is confirmed once");

    // The reject file, with the caller's key; a reader may download it, nobody else.
    let url = format!("{}{}", app.base, real["rejectsUrl"].as_str().unwrap());
    let reader = app.scoped_key(&key, "READ").await;
    let client = reqwest::Client::new();
    let got = client.get(&url).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let rejects = got.text().await.unwrap();
    assert!(
        rejects.starts_with("E-mail,First Name,Plan,Tags,error\n"),
        "{rejects}"
    );
    assert!(
        rejects.contains("not an address") && rejects.contains("email"),
        "{rejects}"
    );
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let other = app.workspace("Elsewhere").await;
    let theirs = client.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(theirs.status(), 404);
    let (code, _) = app.err(&other, WATCH, json!({"id": started["id"]})).await;
    assert_eq!(code, "NOT_FOUND");

    // A read key may not import.
    let (_, body) = upload(&app, &reader, "CONTACTS", PEOPLE, json!({})).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );

    // Companies by domain, then deals by external id naming them.
    let companies = "Company,Website,Employees\nAcme,acme.example,1200\nGlobex,globex.example,80\n";
    let (_, body) = upload(&app, &key, "COMPANIES", companies, json!({})).await;
    let done = finished(&app, &key, &body["data"]["importCsv"]["id"]).await;
    assert_eq!(
        [&done["created"], &done["failed"]],
        [2, 0].map(|n| json!(n)).each_ref(),
        "{done}"
    );
    let deals = "Deal ID,Deal name,Value,Deal stage,Company domain\n\
                 D-1,Acme renewal,12000,Proposal,acme.example\n\
                 D-2,Globex pilot,500,Nowhere,globex.example\n";
    let (_, body) = upload(&app, &key, "DEALS", deals, json!({})).await;
    let done = finished(&app, &key, &body["data"]["importCsv"]["id"]).await;
    assert_eq!(
        [&done["created"], &done["failed"]],
        [1, 1].map(|n| json!(n)).each_ref(),
        "{done}"
    );
    let deal = app
        .ok(
            &key,
            "{ deals(first: 5, filter: {externalId: {eq: \"D-1\"}}) { nodes { name amount externalId stage { name } company { domain } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        deal["deals"]["nodes"][0],
        json!({"name": "Acme renewal", "amount": 12000.0, "externalId": "D-1",
               "stage": {"name": "Proposal"}, "company": {"domain": "acme.example"}})
    );

    // Out again: deals and companies export with their lists' filters.
    let exported = client
        .get(format!("{}/export/deals", app.base))
        .query(&[
            ("format", "jsonl"),
            ("filter", &json!({"externalId": {"eq": "D-1"}}).to_string()),
        ])
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{exported}");
    assert_eq!(rows[0]["externalId"], "D-1");
    assert_eq!(rows[0]["amountMinor"], 1_200_000);
    assert!(
        rows[0]["companyId"].is_string(),
        "ids as the API shows them: {exported}"
    );
    let csv = client
        .get(format!("{}/export/companies", app.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("id,name,domain,industry,size,country,ownerId,createdAt,updatedAt\n"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let unknown = client
        .get(format!("{}/export/secrets", app.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

both_backends!(an_upload_over_the_limit_is_refused_before_it_is_read);

async fn an_upload_over_the_limit_is_refused_before_it_is_read(app: TestApp) {
    let small = TestApp::spawn_with(
        app.backend(),
        rapport_api::server::Config {
            limits: rapport_api::server::Limits {
                upload_bytes: 4096,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    let key = small.workspace("Small").await;
    let mut csv = String::from("Email\n");
    while csv.len() < 10_000 {
        csv.push_str("someone@example.com\n");
    }
    let (status, body) = upload(&small, &key, "CONTACTS", &csv, json!({})).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert_eq!(
        small.ok(&key, "{ imports { id } }", json!({})).await["imports"],
        json!([]),
        "nothing stored"
    );
}
