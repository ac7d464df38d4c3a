//! Per-step statistics of a sequence: entered, completed, exited, and the email steps'
//! delivery, opens and clicks.

use super::*;

/// Counts of one step, over every version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepStats {
    /// The step.
    pub step: String,
    /// Its kind in the current version (empty when only older versions have it).
    pub kind: String,
    /// Times contacts arrived at it.
    pub entered: u64,
    /// Times contacts went on past it.
    pub completed: u64,
    /// Contacts there now.
    pub current: u64,
    /// Emails it sent.
    pub emails_sent: u64,
    /// Of those, opened.
    pub opened: u64,
    /// Of those, clicked.
    pub clicked: u64,
    /// Contacts who left here, by reason.
    pub exits: Vec<(String, u64)>,
}

#[derive(FromQueryResult)]
struct Counted {
    step_key: String,
    label: Option<String>,
    n: i64,
}

/// Per-step counts of a sequence, in the current version's step order (steps only older
/// versions have come last).
pub async fn stats(db: &impl ConnectionTrait, ws: i64, id: i64) -> Result<Vec<StepStats>> {
    let s = get(db, ws, id).await?;
    let backend = db.get_database_backend();
    let counted = |q: sea_orm::Select<sequence_step_event::Entity>| q.build(backend);
    let outcomes = Counted::find_by_statement(counted(
        sequence_step_event::Entity::find()
            .select_only()
            .column(sequence_step_event::Column::StepKey)
            .column_as(sequence_step_event::Column::Outcome, "label")
            .column_as(sequence_step_event::Column::Id.count(), "n")
            .filter(sequence_step_event::Column::SequenceId.eq(id))
            .filter(sequence_step_event::Column::Outcome.is_in(["entered", "completed"]))
            .group_by(sequence_step_event::Column::StepKey)
            .group_by(sequence_step_event::Column::Outcome),
    ))
    .all(db)
    .await?;
    let enrollment_counts = |q: sea_orm::Select<sequence_enrollment::Entity>| q.build(backend);
    let exits = Counted::find_by_statement(enrollment_counts(
        sequence_enrollment::Entity::find()
            .select_only()
            .column(sequence_enrollment::Column::StepKey)
            .column_as(sequence_enrollment::Column::ExitReason, "label")
            .column_as(sequence_enrollment::Column::Id.count(), "n")
            .filter(sequence_enrollment::Column::SequenceId.eq(id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Exited.as_str()))
            .group_by(sequence_enrollment::Column::StepKey)
            .group_by(sequence_enrollment::Column::ExitReason),
    ))
    .all(db)
    .await?;
    let current = Counted::find_by_statement(enrollment_counts(
        sequence_enrollment::Entity::find()
            .select_only()
            .column(sequence_enrollment::Column::StepKey)
            .column_as(Expr::cust("NULL"), "label")
            .column_as(sequence_enrollment::Column::Id.count(), "n")
            .filter(sequence_enrollment::Column::SequenceId.eq(id))
            .filter(sequence_enrollment::Column::Status.eq(EnrollmentStatus::Active.as_str()))
            .group_by(sequence_enrollment::Column::StepKey),
    ))
    .all(db)
    .await?;
    #[derive(FromQueryResult)]
    struct Mail {
        step_key: String,
        sent: i64,
        opened: i64,
        clicked: i64,
    }
    let mail = Mail::find_by_statement(
        sequence_message::Entity::find()
            .select_only()
            .column(sequence_message::Column::StepKey)
            .column_as(
                Expr::cust("SUM(CASE WHEN state = 'sent' THEN 1 ELSE 0 END)"),
                "sent",
            )
            .column_as(
                Expr::cust("SUM(CASE WHEN opened_at IS NOT NULL THEN 1 ELSE 0 END)"),
                "opened",
            )
            .column_as(
                Expr::cust("SUM(CASE WHEN clicked_at IS NOT NULL THEN 1 ELSE 0 END)"),
                "clicked",
            )
            .filter(sequence_message::Column::SequenceId.eq(id))
            .group_by(sequence_message::Column::StepKey)
            .build(backend),
    )
    .all(db)
    .await?;
    let mut by_step: Vec<StepStats> = s
        .definition
        .steps
        .iter()
        .map(|st| StepStats {
            step: st.id.clone(),
            kind: st.action.kind().into(),
            ..Default::default()
        })
        .collect();
    fn slot(by_step: &mut Vec<StepStats>, step: &str) -> usize {
        match by_step.iter().position(|x| x.step == step) {
            Some(i) => i,
            None => {
                by_step.push(StepStats {
                    step: step.into(),
                    ..Default::default()
                });
                by_step.len() - 1
            }
        }
    }
    for c in outcomes {
        let i = slot(&mut by_step, &c.step_key);
        match c.label.as_deref() {
            Some("entered") => by_step[i].entered = c.n as u64,
            _ => by_step[i].completed = c.n as u64,
        }
    }
    for c in exits {
        let i = slot(&mut by_step, &c.step_key);
        by_step[i]
            .exits
            .push((c.label.unwrap_or_default(), c.n as u64));
    }
    for c in current {
        let i = slot(&mut by_step, &c.step_key);
        by_step[i].current = c.n as u64;
    }
    for m in mail {
        let i = slot(&mut by_step, &m.step_key);
        by_step[i].emails_sent = m.sent as u64;
        by_step[i].opened = m.opened as u64;
        by_step[i].clicked = m.clicked as u64;
    }
    for st in &mut by_step {
        st.exits.sort();
    }
    Ok(by_step)
}
