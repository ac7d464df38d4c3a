//! How a plugin's current scores spread over the workspace: what its author looks at to
//! see whether the score separates anyone at all.

use rapport_schema::{plugin_record_score, plugin_score};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::error::Result;

/// Scores of one plugin: how many, their mean, and counts in ten 10-point buckets
/// (`buckets[0]` is 0–10, `buckets[9]` is 90–100 inclusive).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Distribution {
    /// Records (contacts, or deals or companies for plugins of those) with a current score.
    pub count: u64,
    /// Their mean score, when there is any.
    pub mean: Option<f64>,
    /// Counts per 10-point bucket.
    pub buckets: [u64; 10],
}

/// The bucket as SQL both databases evaluate alike (PostgreSQL rounds a float cast to an
/// integer where SQLite truncates, so no cast).
fn bucket_sql() -> String {
    let mut sql = String::from("CASE");
    for b in (1..10).rev() {
        sql.push_str(&format!(" WHEN score >= {} THEN {b}", b * 10));
    }
    sql.push_str(" ELSE 0 END");
    sql
}

/// The distribution of `plugin_id`'s current scores in the workspace.
pub async fn of(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    plugin_id: i64,
) -> Result<Distribution> {
    // A plugin's scores live in one of the two tables, by its subject; reading both
    // costs an indexed empty scan and needs no lookup of the subject.
    macro_rules! grouped {
        ($table:ident) => {
            $table::Entity::find()
                .filter($table::Column::WorkspaceId.eq(workspace_id))
                .filter($table::Column::PluginId.eq(plugin_id))
                .select_only()
                .column_as(Expr::cust(bucket_sql()), "bucket")
                .column_as(Expr::cust("COUNT(*)"), "n")
                .column_as(Expr::cust("SUM(score)"), "total")
                .group_by(Expr::cust(bucket_sql()))
                .into_tuple::<(i32, i64, f64)>()
                .all(db)
                .await?
        };
    }
    let mut rows = grouped!(plugin_score);
    rows.extend(grouped!(plugin_record_score));
    let mut out = Distribution::default();
    let mut total = 0.0;
    for (bucket, n, sum) in rows {
        out.buckets[bucket.clamp(0, 9) as usize] += n as u64;
        out.count += n as u64;
        total += sum;
    }
    out.mean = (out.count > 0).then(|| total / out.count as f64);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::bucket_sql;

    #[test]
    fn buckets_are_ten_points_wide_with_a_hundred_in_the_last() {
        let sql = bucket_sql();
        assert!(sql.starts_with("CASE WHEN score >= 90 THEN 9"));
        assert!(sql.ends_with("WHEN score >= 10 THEN 1 ELSE 0 END"));
    }
}
