//! CSV import on SQLite: rows checked as the API checks them, upserted by their key (email,
//! domain, external id), refused rows in the reject file with their reason and the rest
//! imported; a dry run writes nothing and counts what would be created and updated; an
//! import as a job keeps its file, counts and reject file, and a dry run is confirmed once.

use std::collections::HashMap;

use rapport_engine::integrations::bulk::{self, Kind, Report, Target};
use rapport_engine::integrations::imports::{self, ImportState, Upload};
use rapport_engine::platform::queue::Queue;
use rapport_schema::contact;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::{contact, database, owner};

const FILE: &str = "\
E-mail,First Name,Plan,Stage,Tags
ada@example.com,Ada,pro,customer,vip;beta
not an address,Bob,free,,
grace@example.com,Grace,,lead,
ada@example.com,Ada L.,,,
lin@example.com,Lin,,astronaut,
,Nobody,,,
";

#[tokio::test]
async fn rows_are_checked_upserted_and_refused_with_reasons() {
    let db = database().await;
    let who = owner(&db, "Import").await;
    contact(&db, &who, "grace@example.com").await;
    let mut dry = Vec::new();
    let would = bulk::import(
        &db,
        &who,
        Kind::Contacts,
        FILE.as_bytes(),
        &HashMap::new(),
        true,
        &mut dry,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (would.processed, would.created, would.updated, would.failed),
        (6, 1, 2, 3),
        "{would:?}"
    );
    assert_eq!(
        contact::Entity::find().count(&db).await.unwrap(),
        1,
        "a dry run writes nothing"
    );

    let mut rejects = Vec::new();
    let mut seen: Vec<Report> = Vec::new();
    let mut mapping = HashMap::new();
    mapping.insert("Plan".to_string(), Target::Attribute("plan".into()));
    mapping.insert("Stage".to_string(), Target::Field("lifecycleStage"));
    let done = bulk::import(
        &db,
        &who,
        Kind::Contacts,
        FILE.as_bytes(),
        &mapping,
        false,
        &mut rejects,
        |r| seen.push(r.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        (done.processed, done.created, done.updated, done.failed),
        (6, 1, 2, 3),
        "{done:?}"
    );
    assert_eq!(seen.last(), Some(&done));
    let ada = contact::Entity::find()
        .filter(contact::Column::Email.eq("ada@example.com"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ada.first_name, "Ada L.",
        "the later row updated the earlier"
    );
    assert_eq!(ada.lifecycle_stage, "customer");
    assert_eq!(ada.attributes["plan"], "pro");
    assert_eq!(ada.tags, serde_json::json!(["vip", "beta"]));
    let rejects = String::from_utf8(rejects).unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "E-mail,First Name,Plan,Stage,Tags,error");
    assert_eq!(lines.len(), 4, "{rejects}");
    assert!(
        lines[1].starts_with("not an address,Bob") && lines[1].contains("email"),
        "{rejects}"
    );
    assert!(
        lines[2].contains("astronaut") && lines[2].contains("lifecycleStage"),
        "{rejects}"
    );
    assert!(
        lines[3].contains("Nobody") && lines[3].contains("required"),
        "{rejects}"
    );
}

#[tokio::test]
async fn a_file_without_an_email_column_is_refused_before_any_row() {
    let db = database().await;
    let who = owner(&db, "Keyless").await;
    let mut rejects = Vec::new();
    let e = bulk::import(
        &db,
        &who,
        Kind::Contacts,
        "Name,Phone\nAda,123\n".as_bytes(),
        &HashMap::new(),
        false,
        &mut rejects,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("email"), "{e}");
}

const COMPANIES: &str = "\
Company,Website,Employees,Country
Acme,https://www.acme.example/about,1200,US
Acme Europe,acme.example,,DE
Nowhere,,5,FR
Globex,globex.example,many,US
";

const DEALS: &str = "\
Deal ID,Deal name,Value,Pipeline,Deal stage,Contact email,Company domain,Close date
D-1,Acme renewal,\"12,000.50\",Sales,Qualification,ada@example.com,acme.example,2027-03-31
D-2,Globex pilot,500,Sales,Nope,,,
,One-off,100,,,,,
D-1,Acme renewal (bigger),15000,,,,,
D-3,Ghost,1,,,ghost@example.com,,
";

#[tokio::test]
async fn companies_upsert_by_domain_and_deals_by_external_id_with_references_by_name() {
    let db = database().await;
    let who = owner(&db, "Accounts").await;
    contact(&db, &who, "ada@example.com").await;
    let mut rejects = Vec::new();
    let done = bulk::import(
        &db,
        &who,
        Kind::Companies,
        COMPANIES.as_bytes(),
        &HashMap::new(),
        false,
        &mut rejects,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (done.created, done.updated, done.failed),
        (1, 1, 2),
        "the second row updates the first by domain; no domain and a bad size are refused: {}",
        String::from_utf8_lossy(&rejects)
    );
    let acme = rapport_schema::company::Entity::find()
        .filter(rapport_schema::company::Column::Domain.eq("acme.example"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((acme.name.as_str(), acme.size), ("Acme Europe", Some(1200)));

    let mut rejects = Vec::new();
    let done = bulk::import(
        &db,
        &who,
        Kind::Deals,
        DEALS.as_bytes(),
        &HashMap::new(),
        false,
        &mut rejects,
        |_| {},
    )
    .await
    .unwrap();
    let rejects = String::from_utf8(rejects).unwrap();
    assert_eq!(
        (done.created, done.updated, done.failed),
        (2, 1, 2),
        "{rejects}"
    );
    assert!(
        rejects.contains("line 3.stage") && rejects.contains("no stage \"\"Nope\"\""),
        "{rejects}"
    );
    assert!(rejects.contains("ghost@example.com"), "{rejects}");
    let d1 = rapport_schema::deal::Entity::find()
        .filter(rapport_schema::deal::Column::ExternalId.eq("D-1"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d1.name, "Acme renewal (bigger)");
    assert_eq!(d1.amount_minor, 1_500_000);
    assert_eq!(d1.company_id, Some(acme.id), "kept from the first row");
    assert!(d1.contact_id.is_some());
    let qualified = rapport_schema::stage::Entity::find_by_id(d1.stage_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(qualified.name, "Qualification");
}

#[tokio::test]
async fn an_import_job_runs_a_dry_run_then_the_confirmed_file_once() {
    let db = database().await;
    let who = owner(&db, "Jobs").await;
    let queue = Queue::new(&db).unwrap();
    let upload = Upload {
        file_name: "people.csv".into(),
        content: FILE.as_bytes(),
    };
    let mut wrong = HashMap::new();
    wrong.insert("Plan tier".to_string(), Target::Skip);
    let e = imports::start(&db, &queue, &who, Kind::Contacts, upload, &wrong, true)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("Plan tier"),
        "a mapping is checked against the header: {e}"
    );

    let upload = Upload {
        file_name: "people.csv".into(),
        content: FILE.as_bytes(),
    };
    let dry = imports::start(
        &db,
        &queue,
        &who,
        Kind::Contacts,
        upload,
        &HashMap::new(),
        true,
    )
    .await
    .unwrap();
    assert_eq!(ImportState::from_db(&dry.state), ImportState::Queued);
    imports::run(&db, who.workspace_id, dry.id).await.unwrap();
    let dry = imports::get(&db, who.workspace_id, dry.id).await.unwrap();
    assert_eq!(
        ImportState::from_db(&dry.state),
        ImportState::Done,
        "{:?}",
        dry.error
    );
    assert_eq!(
        (
            dry.total,
            dry.processed,
            dry.created,
            dry.updated,
            dry.failed
        ),
        (Some(6), 6, 2, 1, 3)
    );
    assert_eq!(contact::Entity::find().count(&db).await.unwrap(), 0);
    let rejects = imports::rejects_chunk(&db, who.workspace_id, dry.id, 0)
        .await
        .unwrap()
        .expect("a reject file");
    assert!(String::from_utf8(rejects).unwrap().contains("astronaut"));

    let real = imports::confirm(&db, &queue, &who, dry.id, None)
        .await
        .unwrap();
    assert!(!real.dry_run);
    imports::run(&db, who.workspace_id, real.id).await.unwrap();
    imports::run(&db, who.workspace_id, real.id).await.unwrap();
    let real = imports::get(&db, who.workspace_id, real.id).await.unwrap();
    assert_eq!((real.created, real.updated, real.failed), (2, 1, 3));
    assert_eq!(
        contact::Entity::find().count(&db).await.unwrap(),
        2,
        "a job run twice imports once"
    );
    let again = imports::confirm(&db, &queue, &who, dry.id, None)
        .await
        .unwrap_err();
    assert!(
        again.to_string().contains("not a finished dry run")
            || again.to_string().contains("already"),
        "{again}"
    );
    let other = owner(&db, "Other").await;
    assert!(
        imports::rejects_chunk(&db, other.workspace_id, real.id, 0)
            .await
            .is_err(),
        "another workspace's reject file is not found"
    );
}
