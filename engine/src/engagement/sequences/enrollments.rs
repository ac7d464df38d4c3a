//! Enrollments: enrolling contacts (re-entry and enrollment limits), ending them, moving
//! them onto the current version with a step map, listing them with their history, and
//! the sequences' part of merging and erasing contacts.

use super::*;

/// What an enroll call did.
#[derive(Clone, Debug, Default)]
pub struct Enrolled {
    /// New enrollments.
    pub enrollments: Vec<sequence_enrollment::Model>,
    /// Contacts not enrolled, with why.
    pub skipped: Vec<(i64, String)>,
}

/// Enrolls contacts by hand (write scope); ids from another workspace are not found.
pub async fn enroll(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    sequence_id: i64,
    contact_ids: &[i64],
) -> Result<Enrolled> {
    who.require(Scope::Write)?;
    if contact_ids.len() > ENROLL_LIMIT {
        return Err(EngineError::invalid(
            "contactIds",
            format!("at most {ENROLL_LIMIT} contacts per call"),
        ));
    }
    let ws = who.workspace_id;
    let unique: Vec<i64> = {
        let mut seen = HashSet::new();
        contact_ids
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect()
    };
    if who.owner_bound {
        for &c in &unique {
            records::ensure_may_change::<contact::Entity>(db, who, c).await?;
        }
    }
    let found: HashSet<i64> = records::scoped::<contact::Entity>(ws, Deleted::Exclude)
        .select_only()
        .column(contact::Column::Id)
        .filter(contact::Column::Id.is_in(unique.clone()))
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    if let Some(missing) = unique.iter().find(|id| !found.contains(id)) {
        return Err(EngineError::not_found("Contact", missing));
    }
    let s = get(db, ws, sequence_id).await?;
    if status(&s.sequence) != SequenceStatus::Active {
        return Err(EngineError::Conflict(format!(
            "sequence {sequence_id} is {}; activate it to enroll contacts",
            status(&s.sequence)
        )));
    }
    let tx = crate::platform::db::write(db).await?;
    let out = enroll_in(&tx, &s, &unique, "manual", clock.now()).await?;
    tx.commit().await?;
    Ok(out)
}

#[derive(FromQueryResult)]
struct PastEnrollment {
    contact_id: i64,
    status: String,
}

/// Enrolls contacts in an active sequence (the caller checked it is active and the
/// contacts are the workspace's), honouring re-entry and the enrollment limit.
pub(crate) async fn enroll_in(
    db: &impl ConnectionTrait,
    s: &Sequence,
    contact_ids: &[i64],
    trigger: &str,
    now: DateTime<Utc>,
) -> Result<Enrolled> {
    let d = &s.definition;
    let mut past: HashMap<i64, (usize, bool)> = HashMap::new();
    for chunk in contact_ids.chunks(5000) {
        let rows = PastEnrollment::find_by_statement(
            sequence_enrollment::Entity::find()
                .select_only()
                .column(sequence_enrollment::Column::ContactId)
                .column(sequence_enrollment::Column::Status)
                .filter(sequence_enrollment::Column::SequenceId.eq(s.sequence.id))
                .filter(sequence_enrollment::Column::ContactId.is_in(chunk.iter().copied()))
                .build(db.get_database_backend()),
        )
        .all(db)
        .await?;
        for r in rows {
            let e = past.entry(r.contact_id).or_default();
            e.0 += 1;
            e.1 |= r.status == EnrollmentStatus::Active.as_str();
        }
    }
    let mut out = Enrolled::default();
    let mut fresh = Vec::new();
    let mut over_limit = Vec::new();
    for &c in contact_ids {
        let (count, active) = past.get(&c).copied().unwrap_or_default();
        if active {
            out.skipped.push((c, "already enrolled".into()));
        } else if count > 0 && !d.allow_reentry {
            out.skipped
                .push((c, "was enrolled before and re-entry is off".into()));
        } else if d.max_enrollments.is_some_and(|m| count >= m as usize) {
            out.skipped.push((c, "enrolled too many times".into()));
            over_limit.push(c);
        } else {
            fresh.push(c);
        }
    }
    let start = &d.start;
    let row = |c: i64, st: EnrollmentStatus, reason: Option<&str>| {
        let active = st == EnrollmentStatus::Active;
        sequence_enrollment::ActiveModel {
            workspace_id: Set(s.sequence.workspace_id),
            sequence_id: Set(s.sequence.id),
            version_id: Set(s.version.id),
            contact_id: Set(c),
            status: Set(st.as_str().into()),
            step_key: Set(start.clone()),
            position: Set(0),
            step_entered_at: Set(now),
            // A start that waits is worked out by the first run, in the contact's zone.
            next_run_at: Set(active.then_some(now)),
            claimed_at: Set(None),
            trigger: Set(trigger.into()),
            exit_reason: Set(reason.map(String::from)),
            enrolled_at: Set(now),
            finished_at: Set((!active).then_some(now)),
            updated_at: Set(now),
            ..Default::default()
        }
    };
    for chunk in fresh.chunks(1000) {
        sequence_enrollment::Entity::insert_many(
            chunk
                .iter()
                .map(|&c| row(c, EnrollmentStatus::Active, None)),
        )
        .exec_without_returning(db)
        .await?;
    }
    for chunk in over_limit.chunks(1000) {
        sequence_enrollment::Entity::insert_many(
            chunk
                .iter()
                .map(|&c| row(c, EnrollmentStatus::Exited, Some("enrolled too many times"))),
        )
        .exec_without_returning(db)
        .await?;
    }
    let mut created = Vec::new();
    for chunk in fresh.chunks(5000) {
        created.extend(
            sequence_enrollment::Entity::find()
                .filter(sequence_enrollment::Column::SequenceId.eq(s.sequence.id))
                .filter(sequence_enrollment::Column::ContactId.is_in(chunk.iter().copied()))
                .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
                .filter(sequence_enrollment::Column::EnrolledAt.eq(now))
                .all(db)
                .await?,
        );
    }
    for chunk in created.chunks(1000) {
        sequence_step_event::Entity::insert_many(
            chunk
                .iter()
                .map(|e| step_event(e, &e.step_key, "entered", Some(trigger.to_string()), now)),
        )
        .exec_without_returning(db)
        .await?;
    }
    tell(
        db,
        s.sequence.workspace_id,
        &created,
        WebhookEventType::EnrollmentStarted,
    )
    .await?;
    out.enrollments = created;
    Ok(out)
}

/// Tells webhooks about enrollments that started or ended, ordered with each contact's
/// other events; one look for listeners, none of the work when nobody listens.
pub(crate) async fn tell(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    enrollments: &[sequence_enrollment::Model],
    event: WebhookEventType,
) -> Result<()> {
    use crate::platform::outbox;
    if enrollments.is_empty() {
        return Ok(());
    }
    let endpoints = outbox::listeners(db, workspace_id, event).await?;
    if endpoints.is_empty() {
        return Ok(());
    }
    let now = crate::clock::now();
    for e in enrollments {
        let subject = outbox::Subject::contact(e.contact_id);
        let data = json!({ "object": outbox::object("SequenceEnrollment", e) });
        outbox::emit_to(db, workspace_id, event, subject, data, &endpoints, now).await?;
    }
    Ok(())
}

/// An update that ends the active enrollments the caller's filters pick, with a status
/// and reason, releasing their claims.
pub(crate) fn ending(
    status: EnrollmentStatus,
    reason: &str,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<sequence_enrollment::Entity> {
    sequence_enrollment::Entity::update_many()
        .col_expr(
            sequence_enrollment::Column::Status,
            Expr::value(status.as_str()),
        )
        .col_expr(sequence_enrollment::Column::ExitReason, Expr::value(reason))
        .col_expr(sequence_enrollment::Column::FinishedAt, Expr::value(now))
        .col_expr(
            sequence_enrollment::Column::NextRunAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            sequence_enrollment::Column::ClaimedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(sequence_enrollment::Column::UpdatedAt, Expr::value(now))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
}

pub(crate) fn step_event(
    e: &sequence_enrollment::Model,
    step: &str,
    outcome: &str,
    detail: Option<String>,
    at: DateTime<Utc>,
) -> sequence_step_event::ActiveModel {
    sequence_step_event::ActiveModel {
        workspace_id: Set(e.workspace_id),
        sequence_id: Set(e.sequence_id),
        version_id: Set(e.version_id),
        enrollment_id: Set(e.id),
        step_key: Set(step.into()),
        outcome: Set(outcome.into()),
        detail: Set(detail),
        at: Set(at),
        ..Default::default()
    }
}

/// Moves active enrollments of a sequence from older versions onto its current one (or
/// only those on `from_version`). A contact keeps its step when the new version has it;
/// `step_map` says where the others go. Nothing moves when some step has nowhere to go.
pub async fn migrate(
    db: &DatabaseConnection,
    who: &Principal,
    clock: &dyn Clock,
    sequence_id: i64,
    from_version: Option<i32>,
    step_map: &HashMap<String, String>,
) -> Result<u64> {
    who.require(Scope::Write)?;
    let ws = who.workspace_id;
    let target = get(db, ws, sequence_id).await?;
    let all = versions(db, ws, sequence_id).await?;
    let sources: Vec<i64> = all
        .iter()
        .filter(|v| v.id != target.version.id)
        .filter(|v| from_version.is_none_or(|f| f == v.version))
        .map(|v| v.id)
        .collect();
    if let Some(f) = from_version
        && sources.is_empty()
    {
        return Err(EngineError::invalid(
            "fromVersion",
            format!("version {f} is not an older version of this sequence"),
        ));
    }
    for (from, to) in step_map {
        if target.definition.step(to).is_none() {
            return Err(EngineError::invalid(
                "stepMap",
                format!("'{from}' maps to '{to}', which the current version does not have"),
            ));
        }
    }
    let tx = crate::platform::db::write(db).await?;
    let steps: Vec<String> = sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::StepKey)
        .distinct()
        .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
        .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
        .filter(sequence_enrollment::Column::VersionId.is_in(sources.clone()))
        .into_tuple()
        .all(&tx)
        .await?;
    let mut moved = 0;
    for step in steps {
        let to = match step_map.get(&step) {
            Some(t) => t.clone(),
            None if target.definition.step(&step).is_some() => step.clone(),
            None => {
                return Err(EngineError::invalid(
                    "stepMap",
                    format!(
                        "contacts are at step '{step}', which version {} does not have; map it to one of its steps",
                        target.version.version
                    ),
                ));
            }
        };
        moved += sequence_enrollment::Entity::update_many()
            .col_expr(
                sequence_enrollment::Column::VersionId,
                Expr::value(target.version.id),
            )
            .col_expr(sequence_enrollment::Column::StepKey, Expr::value(to))
            // Due now, so the next run works out the step's timing on the new version.
            .col_expr(
                sequence_enrollment::Column::NextRunAt,
                Expr::value(clock.now()),
            )
            .filter(sequence_enrollment::Column::SequenceId.eq(sequence_id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
            .filter(sequence_enrollment::Column::VersionId.is_in(sources.clone()))
            .filter(sequence_enrollment::Column::StepKey.eq(step))
            .exec(&tx)
            .await?
            .rows_affected;
    }
    tx.commit().await?;
    Ok(moved)
}

/// Which enrollments to list.
#[derive(Clone, Debug, Default)]
pub struct EnrollmentFilter {
    /// Of this sequence.
    pub sequence_id: Option<i64>,
    /// Of this contact.
    pub contact_id: Option<i64>,
    /// In this state.
    pub status: Option<EnrollmentStatus>,
}

/// Enrollments of the workspace, newest first, at most `limit`.
pub async fn enrollments(
    db: &impl ConnectionTrait,
    ws: i64,
    filter: &EnrollmentFilter,
    limit: u64,
) -> Result<Vec<sequence_enrollment::Model>> {
    let mut q =
        sequence_enrollment::Entity::find().filter(sequence_enrollment::Column::WorkspaceId.eq(ws));
    if let Some(s) = filter.sequence_id {
        q = q.filter(sequence_enrollment::Column::SequenceId.eq(s));
    }
    if let Some(c) = filter.contact_id {
        q = q.filter(sequence_enrollment::Column::ContactId.eq(c));
    }
    if let Some(st) = filter.status {
        q = q.filter(sequence_enrollment::Column::Status.eq(st.as_str()));
    }
    Ok(q.order_by_desc(sequence_enrollment::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// What happened at each step of enrollments, in order.
pub async fn history_of(
    db: &impl ConnectionTrait,
    ws: i64,
    enrollment_ids: &[i64],
) -> Result<Vec<sequence_step_event::Model>> {
    Ok(sequence_step_event::Entity::find()
        .filter(sequence_step_event::Column::WorkspaceId.eq(ws))
        .filter(sequence_step_event::Column::EnrollmentId.is_in(enrollment_ids.iter().copied()))
        .order_by_asc(sequence_step_event::Column::Id)
        .all(db)
        .await?)
}

/// After a merge: the merged contact's lifecycle history and sequence email belong to
/// the survivor; its enrollments end (the survivor has its own).
pub(crate) async fn merge_contacts(db: &impl ConnectionTrait, from: i64, to: i64) -> Result<()> {
    rapport_schema::lifecycle_change::Entity::update_many()
        .col_expr(
            rapport_schema::lifecycle_change::Column::ContactId,
            Expr::value(to),
        )
        .filter(rapport_schema::lifecycle_change::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    sequence_message::Entity::update_many()
        .col_expr(sequence_message::Column::ContactId, Expr::value(to))
        .filter(sequence_message::Column::ContactId.eq(from))
        .exec(db)
        .await?;
    let now = crate::clock::now();
    ending(
        EnrollmentStatus::Exited,
        &format!("merged into contact {to}"),
        now,
    )
    .filter(sequence_enrollment::Column::ContactId.eq(from))
    .exec(db)
    .await?;
    Ok(())
}

/// Right to erasure: the contacts' enrollments, their history and email, and their
/// lifecycle history go.
pub(crate) async fn erase_contacts(db: &impl ConnectionTrait, people: &[i64]) -> Result<()> {
    let ids = people.iter().copied();
    rapport_schema::lifecycle_change::Entity::delete_many()
        .filter(rapport_schema::lifecycle_change::Column::ContactId.is_in(ids.clone()))
        .exec(db)
        .await?;
    let enrollments: Vec<i64> = sequence_enrollment::Entity::find()
        .select_only()
        .column(sequence_enrollment::Column::Id)
        .filter(sequence_enrollment::Column::ContactId.is_in(ids.clone()))
        .into_tuple()
        .all(db)
        .await?;
    sequence_step_event::Entity::delete_many()
        .filter(sequence_step_event::Column::EnrollmentId.is_in(enrollments.clone()))
        .exec(db)
        .await?;
    sequence_message::Entity::delete_many()
        .filter(sequence_message::Column::ContactId.is_in(ids))
        .exec(db)
        .await?;
    sequence_enrollment::Entity::delete_many()
        .filter(sequence_enrollment::Column::Id.is_in(enrollments))
        .exec(db)
        .await?;
    Ok(())
}
