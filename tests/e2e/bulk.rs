//! Contacts in and out in bulk through the real server and the real binary: `rapport
//! import contacts` streams a CSV into a workspace (refused rows in a reject file), and
//! `GET /export/contacts` streams the contacts a filter picks as CSV or JSON lines, page
//! after page, to a reader key only of its own workspace.

use rapport_tests::{TestApp, both_backends, rapport_binary};
use serde_json::{Value, json};

both_backends!(a_csv_goes_in_and_a_filtered_list_comes_out);

async fn a_csv_goes_in_and_a_filtered_list_comes_out(app: TestApp) {
    let key = app.workspace("Bulk").await;
    let ws = app.ok(&key, "{ viewer { workspaceId } }", json!({})).await["viewer"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_string();
    // 2,500 rows: more than one page of the export; every fifth is a VIP, one is broken.
    let dir = std::env::temp_dir().join(format!("rapport-import-{}", rapport_tests::unique_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("contacts-{ws}.csv"));
    let mut csv = String::from("Email,First name,Last name,Tags,Plan\n");
    for i in 0..2500 {
        let tags = if i % 5 == 0 { "vip;import" } else { "import" };
        csv.push_str(&format!(
            "p{i}@bulk.example,P{i},Example,{tags},tier-{}\n",
            i % 3
        ));
    }
    csv.push_str("broken-at-the-end,Broken,,import,\n");
    std::fs::write(&file, csv).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "contacts",
            file.to_str().unwrap(),
            "--workspace",
            &ws,
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(rapport_binary())
            .args(&args)
            .env("RAPPORT_DATABASE_URL", &app.database_url)
            .env("RAPPORT_LOG", "warn")
            .output()
            .expect("rapport import")
    };
    let dry = run(&["--dry-run"]);
    let said = String::from_utf8_lossy(&dry.stderr);
    assert!(dry.status.success(), "{said}");
    assert!(
        said.contains("2501 rows: would create 2500, would update 0, 1 refused"),
        "{said}"
    );
    let count = "{ contacts(first: 1) { totalCount } }";
    assert_eq!(
        app.ok(&key, count, json!({})).await["contacts"]["totalCount"],
        0
    );

    let done = run(&["--map", "Plan=attributes.plan"]);
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{said}");
    assert!(
        said.contains("2501 rows: created 2500, updated 0, 1 refused"),
        "{said}"
    );
    let rejects = std::fs::read_to_string(file.with_extension("rejects.csv")).unwrap();
    assert!(
        rejects.starts_with("Email,First name,Last name,Tags,Plan,error\n"),
        "{rejects}"
    );
    assert!(
        rejects.contains("broken-at-the-end") && rejects.contains("email"),
        "{rejects}"
    );
    assert_eq!(
        app.ok(&key, count, json!({})).await["contacts"]["totalCount"],
        2500
    );
    // Again: the same rows update, nothing doubles.
    let again = run(&[]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("created 0, updated 2500"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Out: a reader key, the API's filter, streamed.
    let reader = app.scoped_key(&key, "READ").await;
    let client = reqwest::Client::new();
    let get = |query: Vec<(&'static str, String)>, key: Option<String>| {
        let mut req = client
            .get(format!("{}/export/contacts", app.base))
            .query(&query);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let vip = json!({"tags": {"has": "vip"}}).to_string();
    let answer = get(vec![("filter", vip.clone())], Some(reader.clone()))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = answer.text().await.unwrap();
    let mut rows = ::csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header[..4], ["id", "email", "firstName", "lastName"]);
    let records: Vec<::csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 500, "every fifth of 2,500");
    assert!(records.iter().all(|r| r[10].contains("vip")));
    let plan = header.iter().position(|h| h == "attributes").unwrap();
    assert!(records[0][plan].contains("tier-"), "{:?}", &records[0]);

    let all = get(vec![("format", "jsonl".into())], Some(reader.clone()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2500, "three pages, each row once");
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, no repeats"
    );

    // Refusals: no key, a bad filter, another workspace's key sees none of it.
    let anonymous = get(vec![], None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let bad = get(
        vec![("filter", "{\"nope\": 1}".into())],
        Some(reader.clone()),
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
    let other = app.workspace("Other").await;
    let theirs = get(vec![], Some(other))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(theirs.lines().count(), 1, "the header only: {theirs}");
    let _ = std::fs::remove_dir_all(&dir);
}
