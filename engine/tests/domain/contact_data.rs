//! The one list of a contact's data (`contact_data::STORES`) against the migrated schema,
//! and erasure against that list, on an in-memory SQLite database.

use std::collections::BTreeSet;

use rapport_engine::contact_data::{self, OnErase, STORES};
use rapport_engine::crm::{activities, contacts, workspaces};
use rapport_engine::platform::auth::Principal;
use rapport_engine::values::{ActivityKind, Patch};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::database;

/// Columns that name a contact, whatever their table.
const CONTACT_COLUMNS: [&str; 4] = ["contact_id", "survivor_id", "merged_id", "merged_into_id"];

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("text"))
        .collect()
}

async fn execute(db: &DatabaseConnection, sql: String) {
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        sql.clone(),
    ))
    .await
    .expect(&sql);
}

/// A plugin (id 1) and its version (id 1) in the workspace, for run records to point at.
async fn plugin_version_rows(db: &DatabaseConnection, ws: i64) {
    let at = "'2026-01-01 00:00:00'";
    execute(
        db,
        format!(
            "INSERT INTO plugins (workspace_id, name, enabled, consecutive_failures, \
             failure_threshold, created_at, updated_at) VALUES ({ws}, 'p', 1, 0, 5, {at}, {at})"
        ),
    )
    .await;
    execute(
        db,
        format!(
            "INSERT INTO plugin_versions (workspace_id, plugin_id, version, declared_name, \
             declared_version, scores, recommends, wasm_sha256, input_query, input_cost, config, \
             limits, created_at) VALUES ({ws}, 1, 1, 'p', '1', 1, 0, 'x', '{{}}', 0, '{{}}', '{{}}', {at})"
        ),
    )
    .await;
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

#[tokio::test]
async fn every_column_that_names_a_contact_is_a_listed_store() {
    let db = database().await;
    let mut in_schema = BTreeSet::new();
    for table in strings(
        &db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .await
    {
        let columns = strings(
            &db,
            &format!("SELECT name FROM pragma_table_info('{table}')"),
        )
        .await;
        for column in columns {
            if CONTACT_COLUMNS.contains(&column.as_str()) {
                in_schema.insert((table.clone(), column));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = STORES
        .iter()
        .map(|s| (s.table.to_string(), s.column.to_string()))
        .collect();
    let missing: Vec<_> = in_schema.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&in_schema).collect();
    assert!(
        missing.is_empty(),
        "tables that point at a contact but are not in contact_data::STORES: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "STORES lists columns the schema does not have: {stale:?}"
    );
}

#[tokio::test]
async fn erasure_leaves_no_row_in_any_store() {
    let db = database().await;
    let ws = workspaces::create(&db, "Erasure").await.expect("workspace");
    let who = Principal::owner(ws.workspace.id);
    let contact = contacts::create(
        &db,
        &who,
        contacts::ContactInput {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            email: Patch::Set("ada@example.com".into()),
            tags: Some(vec!["vip".into()]),
            ..Default::default()
        },
    )
    .await
    .expect("contact");
    let other = contacts::create(
        &db,
        &who,
        contacts::ContactInput {
            first_name: Some("Grace".into()),
            email: Patch::Set("grace@example.com".into()),
            ..Default::default()
        },
    )
    .await
    .expect("other contact");
    for id in [contact.id, other.id] {
        activities::create(
            &db,
            &who,
            activities::ActivityInput {
                kind: Some(ActivityKind::Call),
                subject: Patch::Set("Intro call".into()),
                contact_id: Patch::Set(id),
                ..Default::default()
            },
        )
        .await
        .expect("activity");
    }

    contact_data::erase(&db, &who, contact.id)
        .await
        .expect("erase");

    for store in STORES {
        let left = count(
            &db,
            &format!(
                "SELECT COUNT(*) FROM {} WHERE {} = {}",
                store.table, store.column, contact.id
            ),
        )
        .await;
        assert_eq!(
            left, 0,
            "{}.{} still points at the erased contact",
            store.table, store.column
        );
        assert!(matches!(store.on_erase, OnErase::Delete | OnErase::Unlink));
    }
    let kept = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM activities WHERE contact_id = {}",
            other.id
        ),
    )
    .await;
    assert_eq!(kept, 1, "another contact's activity was erased too");
    let suppressed = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM suppressions WHERE reason = '{}'",
            rapport_engine::values::SuppressionReason::Erased.as_str()
        ),
    )
    .await;
    assert_eq!(
        suppressed, 1,
        "the erased address is suppressed (as a hash)"
    );
}

#[tokio::test]
async fn a_batch_finds_only_the_contacts_still_here_and_of_its_workspace() {
    // A plugin batch stores scores and runs only for what this returns (in the same
    // transaction, the rows locked on PostgreSQL): an erased contact gets nothing.
    let db = database().await;
    let who = crate::owner(&db, "Here").await;
    let other = crate::owner(&db, "Elsewhere").await;
    let kept = crate::contact(&db, &who, "kept@here.example").await;
    let erased = crate::contact(&db, &who, "erased@here.example").await;
    let foreign = crate::contact(&db, &other, "foreign@elsewhere.example").await;
    contact_data::erase(&db, &who, erased).await.unwrap();
    let here = contacts::lock_present(&db, who.workspace_id, vec![kept, erased, foreign])
        .await
        .unwrap();
    assert_eq!(here.into_iter().collect::<Vec<_>>(), [kept]);
}

#[tokio::test]
async fn erasure_takes_the_person_out_of_other_contacts_recorded_inputs() {
    let db = database().await;
    let who = crate::owner(&db, "Mentions").await;
    let colleague = crate::contact(&db, &who, "colleague@here.example").await;
    let erased = crate::contact(&db, &who, "leaving@here.example").await;
    let ws = who.workspace_id;
    let exec = |sql: String| execute(&db, sql);
    let at = "'2026-01-01 00:00:00'";
    plugin_version_rows(&db, ws).await;
    let run = |input: &str| {
        format!(
            "INSERT INTO plugin_runs (workspace_id, plugin_id, version_id, contact_id, export, \
             input_sha256, input_bytes, input, config, as_of, log, log_dropped, fuel_used, \
             micros, failed, at) VALUES ({ws}, 1, 1, {colleague}, 'score', 'h', 1, '{input}', \
             '{{}}', 'now', '[]', 0, 0, 0, 0, {at})"
        )
    };
    exec(run(r#"{"company":{"contacts":["leaving@here.example"]}}"#)).await;
    exec(run(r#"{"company":{"contacts":["someone@else.example"]}}"#)).await;
    contact_data::erase(&db, &who, erased).await.unwrap();
    let inputs = strings(
        &db,
        "SELECT COALESCE(input, '(gone)') FROM plugin_runs ORDER BY id",
    )
    .await;
    assert_eq!(
        inputs,
        [
            "(gone)",
            r#"{"company":{"contacts":["someone@else.example"]}}"#
        ]
    );
}

#[tokio::test]
async fn an_export_refuses_plugin_run_records_over_its_budget_before_loading_them() {
    let db = database().await;
    let who = crate::owner(&db, "Runs").await;
    let person = crate::contact(&db, &who, "runs@here.example").await;
    let ws = who.workspace_id;
    let exec = |sql: String| execute(&db, sql);
    let at = "'2026-01-01 00:00:00'";
    plugin_version_rows(&db, ws).await;
    let run = |mib: u32| {
        format!(
            "INSERT INTO plugin_runs (workspace_id, plugin_id, version_id, contact_id, export, \
             input_sha256, input_bytes, input, config, as_of, log, log_dropped, fuel_used, \
             micros, failed, at) VALUES ({ws}, 1, 1, {person}, 'score', 'h', {}, \
             printf('%.*c', {}, 'x'), '{{}}', 'now', '[]', 0, 0, 0, 1, {at})",
            mib << 20,
            mib << 20
        )
    };
    exec(run(1)).await;
    let out = contact_data::export(&db, &who, person).await.unwrap();
    assert_eq!(out["stores"]["plugin_runs"].as_array().unwrap().len(), 1);
    for _ in 0..64 {
        exec(run(1)).await;
    }
    let err = contact_data::export(&db, &who, person)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("plugin run records"), "{err}");
}
