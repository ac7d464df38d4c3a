//! CSV import on SQLite: rows checked as the API checks them, upserted by email, refused
//! rows in the reject file with their reason and the rest imported; a dry run writes
//! nothing and counts what would be created and updated.

use std::collections::HashMap;

use rapport_engine::integrations::bulk::{self, Report, Target};
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
    let would = bulk::import_contacts(
        &db,
        &who,
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
    let done = bulk::import_contacts(
        &db,
        &who,
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
    let e = bulk::import_contacts(
        &db,
        &who,
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
