//! Training a model as a job through GraphQL over HTTP: the request answers at once, a
//! worker trains, and the training's row moves from queued to done with the version it
//! recorded; one training per model at a time; bad options, read keys and other
//! workspaces are refused. Two processes running the refresh schedule over one database
//! share it: each scheduled retraining happens once.

use rapport_tests::{SmtpServer, TestApp, both_backends};
use serde_json::json;

both_backends!(
    training_is_a_job_with_progress,
    two_processes_share_the_schedule
);

const START: &str = "mutation($k: ModelKind!, $w: Int) { startModelTraining(kind: $k, windowDays: $w) { id kind state stage progress version { id } } }";
const WATCH: &str = "query($id: ID!) { modelTraining(id: $id) { state stage progress error startedAt finishedAt version { kind version status } } }";

async fn training_is_a_job_with_progress(app: TestApp) {
    let key = app.workspace("Trainings").await;
    let size = rapport_engine::demo::DemoSize::for_contacts(60);
    // Data to train on, in its own workspace: its key trains there.
    let demo = rapport_engine::demo::seed(&app.db, "Demo", &size, &|_| {})
        .await
        .expect("demo");
    let demo_key = demo.key.key;

    // Without a worker the request waits, and a second one for the same model is refused.
    let first =
        app.ok(&demo_key, START, json!({"k": "LEAD_SCORE"})).await["startModelTraining"].clone();
    assert_eq!(first["state"], "QUEUED");
    assert_eq!(first["progress"], 0.0);
    assert!(first["version"].is_null());
    let (code, message) = app.err(&demo_key, START, json!({"k": "LEAD_SCORE"})).await;
    assert_eq!(code, "CONFLICT", "{message}");
    // Another model may train meanwhile.
    let churn =
        app.ok(&demo_key, START, json!({"k": "CHURN"})).await["startModelTraining"]["id"].clone();

    // Bad options, read keys and other workspaces.
    let (_, body) = app
        .post(
            Some(&demo_key),
            START,
            json!({"k": "WIN_PROBABILITY", "w": 0}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "windowDays",
        "{body}"
    );
    let read = app.scoped_key(&demo_key, "READ").await;
    let (code, _) = app.err(&read, START, json!({"k": "WIN_PROBABILITY"})).await;
    assert_eq!(code, "FORBIDDEN");
    let (code, _) = app.err(&key, WATCH, json!({"id": first["id"]})).await;
    assert_eq!(code, "NOT_FOUND");

    // A worker takes them; each ends done, naming the version it recorded.
    let smtp = SmtpServer::start();
    let _workers = app.workers(&smtp.url);
    for (id, kind) in [(first["id"].clone(), "LEAD_SCORE"), (churn, "CHURN")] {
        let done = app
            .until(&demo_key, WATCH, json!({"id": id}), 60, |d| {
                matches!(
                    d["modelTraining"]["state"].as_str(),
                    Some("DONE" | "FAILED")
                )
            })
            .await["modelTraining"]
            .clone();
        assert_eq!(done["state"], "DONE", "{done}");
        assert_eq!(done["progress"], 1.0);
        assert_eq!(done["stage"], "finished");
        assert!(
            done["startedAt"].is_string() && done["finishedAt"].is_string(),
            "{done}"
        );
        assert_eq!(done["version"]["kind"], kind, "{done}");
        let models = app
            .ok(
                &demo_key,
                "query($k: ModelKind!) { models(kind: $k) { version } }",
                json!({"k": kind}),
            )
            .await;
        assert!(
            models["models"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["version"] == done["version"]["version"]),
            "{models}"
        );
    }
    // Done, the model may be trained again; the list shows every training, newest first.
    app.ok(&demo_key, START, json!({"k": "LEAD_SCORE"})).await;
    let list = app
        .ok(&demo_key, "{ modelTrainings { kind state } }", json!({}))
        .await["modelTrainings"]
        .clone();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    assert_eq!(list[0]["kind"], "LEAD_SCORE");
}

async fn two_processes_share_the_schedule(app: TestApp) {
    use rapport_engine::intelligence::analytics::schedule::{self, Schedule};
    use rapport_engine::platform::{health::Health, periodic};
    use std::time::Duration;
    let size = rapport_engine::demo::DemoSize::for_contacts(60);
    let demo = rapport_engine::demo::seed(&app.db, "Demo", &size, &|_| {})
        .await
        .expect("demo");
    let key = demo.key.key;
    // Two `serve` processes' schedules, with retraining due two seconds in.
    let schedule = Schedule {
        changes_every: Duration::from_millis(100),
        rescore_every: Duration::from_secs(3600),
        retrain_every: Duration::from_secs(2),
    };
    let mut processes = Vec::new();
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let health = std::sync::Arc::new(Health::default());
        let task = tokio::spawn(schedule::run(
            app.db.clone(),
            schedule,
            health.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        processes.push((stop, task, health));
    }
    let runs = |work: &'static str| {
        let db = app.db.clone();
        async move {
            periodic::slots(&db)
                .await
                .unwrap()
                .into_iter()
                .find(|s| s.work == work)
                .map_or(0, |s| s.runs)
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while runs("retrain").await < 1 {
        assert!(std::time::Instant::now() < deadline, "nobody retrained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (stop, task, health) in processes {
        let _ = stop.send(());
        task.await.expect("the schedule stops");
        assert!(
            health.snapshot().iter().all(|(_, state)| matches!(
                state,
                rapport_engine::platform::health::LoopState::Stopped
            )),
            "{:?}",
            health.snapshot()
        );
    }
    let retrained = runs("retrain").await;
    assert!(runs("changes").await >= 2, "the change scan ran too");
    // Each retraining made one version of each model, whichever process did it.
    for kind in ["LEAD_SCORE", "CHURN"] {
        let versions = app
            .ok(
                &key,
                "query($k: ModelKind!) { models(kind: $k) { version } }",
                json!({"k": kind}),
            )
            .await["models"]
            .as_array()
            .unwrap()
            .len() as i64;
        assert_eq!(versions, retrained, "{kind}: {versions} versions");
    }
}
