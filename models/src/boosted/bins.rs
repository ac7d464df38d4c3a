//! Raw columns as small bin numbers, the only form the trees see.
//!
//! Numbers are cut at up to 254 training quantiles (every distinct value gets a bin of
//! its own when there are fewer), text keeps its most frequent training levels, and a
//! missing value has a bin of its own in both. A split can then send missing values
//! whichever way fits the data, rather than pretending they were the median, and a
//! histogram of one column is a fixed array of 256 slots.

use serde::{Deserialize, Serialize};

use crate::error::{Invalid, Result};
use crate::features::{Column, FeatureTable, frequent_levels};

/// The bin of a missing value, in every column.
pub const MISSING: u8 = 255;
/// Slots in one column's histogram: every bin a value can take, missing included.
pub const SLOTS: usize = 256;
/// Cut points of one numeric column at most, so values fall in bins `0..=254`.
const MAX_THRESHOLDS: usize = 254;
/// Levels of one text column at most; the rest share the "other" bin just after them.
const MAX_LEVELS: usize = 254;

/// How one raw column is binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum BinnedColumn {
    /// A number: bin `b` holds the values in `(thresholds[b-1], thresholds[b]]`.
    Numeric {
        /// The raw column's name.
        name: String,
        /// Ascending cut points.
        thresholds: Vec<f64>,
    },
    /// Text: bin `i` is `levels[i]`, bin `levels.len()` every other value.
    Categorical {
        /// The raw column's name.
        name: String,
        /// The levels seen in training, most frequent first.
        levels: Vec<String>,
    },
}

impl BinnedColumn {
    /// The raw column's name.
    pub fn name(&self) -> &str {
        match self {
            BinnedColumn::Numeric { name, .. } | BinnedColumn::Categorical { name, .. } => name,
        }
    }

    /// Whether a split on this column is a set of levels rather than a threshold.
    pub fn is_categorical(&self) -> bool {
        matches!(self, BinnedColumn::Categorical { .. })
    }

    /// The bins a present value can fall in (`0..count`).
    pub fn count(&self) -> usize {
        match self {
            BinnedColumn::Numeric { thresholds, .. } => thresholds.len() + 1,
            BinnedColumn::Categorical { levels, .. } => levels.len() + 1,
        }
    }
}

/// The binning of every raw column, fitted on training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binner {
    /// One entry per raw column, in table order.
    pub columns: Vec<BinnedColumn>,
}

/// Binned rows, column by column (`columns[feature][row]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Binned {
    /// One vector of bins per raw column.
    pub columns: Vec<Vec<u8>>,
    /// How many rows.
    pub rows: usize,
}

impl Binner {
    /// Fits the cut points and levels on the rows listed in `train`.
    pub fn fit(table: &FeatureTable, train: &[usize]) -> Result<Binner> {
        if train.is_empty() {
            return Err(Invalid::new("rows", "there are no training rows"));
        }
        let columns = table
            .names()
            .iter()
            .zip(table.columns())
            .map(|(name, column)| match column {
                Column::Numeric(values) => {
                    let mut seen: Vec<f64> = train.iter().filter_map(|&i| values[i]).collect();
                    BinnedColumn::Numeric {
                        name: name.clone(),
                        thresholds: thresholds(&mut seen),
                    }
                }
                Column::Text(values) => BinnedColumn::Categorical {
                    name: name.clone(),
                    levels: frequent_levels(
                        train.iter().filter_map(|&i| values[i].as_deref()),
                        MAX_LEVELS,
                    ),
                },
            })
            .collect();
        Ok(Binner { columns })
    }

    /// The raw columns' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(BinnedColumn::name).collect()
    }

    /// Bins the listed rows; the table is read by column name, as the encoder reads it.
    pub fn bin(&self, table: &FeatureTable, rows: &[usize]) -> Result<Binned> {
        let layout: Vec<(&str, bool)> = self
            .columns
            .iter()
            .map(|c| (c.name(), !c.is_categorical()))
            .collect();
        let table = table.aligned(&layout)?;
        let columns = self
            .columns
            .iter()
            .zip(table.columns())
            .map(|(binning, column)| match (binning, column) {
                (BinnedColumn::Numeric { thresholds, .. }, Column::Numeric(values)) => rows
                    .iter()
                    .map(|&i| match values[i] {
                        // `partition_point` counts the cut points below the value.
                        Some(v) => thresholds.partition_point(|&t| t < v) as u8,
                        None => MISSING,
                    })
                    .collect(),
                (BinnedColumn::Categorical { levels, .. }, Column::Text(values)) => {
                    let index: std::collections::HashMap<&str, u8> = levels
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (l.as_str(), i as u8))
                        .collect();
                    let other = levels.len() as u8;
                    rows.iter()
                        .map(|&i| match values[i].as_deref() {
                            Some(v) => index.get(v).copied().unwrap_or(other),
                            None => MISSING,
                        })
                        .collect()
                }
                _ => unreachable!("`aligned` checked the column kinds"),
            })
            .collect();
        Ok(Binned {
            columns,
            rows: rows.len(),
        })
    }
}

/// Cut points for a numeric column: midpoints between distinct values when there are few,
/// otherwise [`MAX_THRESHOLDS`] quantiles (fewer where values repeat).
fn thresholds(values: &mut [f64]) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    let mut distinct: Vec<f64> = Vec::new();
    for &v in values.iter() {
        if distinct.last() != Some(&v) {
            distinct.push(v);
        }
    }
    if distinct.len() <= MAX_THRESHOLDS + 1 {
        return distinct.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    }
    let n = values.len();
    let mut cuts: Vec<f64> = (1..=MAX_THRESHOLDS)
        .map(|k| values[(k * n / (MAX_THRESHOLDS + 1)).min(n - 1)])
        .collect();
    cuts.dedup();
    // The largest value needs a bin above the last cut.
    if cuts.last() == values.last() {
        cuts.pop();
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_gaps_their_own() {
        let mut t = FeatureTable::with_rows(5);
        t.push(
            "visits",
            Column::Numeric(vec![Some(1.0), Some(3.0), None, Some(3.0), Some(7.0)]),
        )
        .unwrap();
        t.push(
            "plan",
            Column::Text(vec![
                Some("pro".into()),
                Some("free".into()),
                Some("pro".into()),
                None,
                Some("team".into()),
            ]),
        )
        .unwrap();
        let binner = Binner::fit(&t, &[0, 1, 2, 3]).unwrap();
        let binned = binner.bin(&t, &[0, 1, 2, 3, 4]).unwrap();
        // 7 was not among the training rows: it falls in the top bin, with 3.
        assert_eq!(binned.columns[0], [0, 1, MISSING, 1, 1]);
        // "team" was not seen in training: it is "other", just after the two levels.
        assert_eq!(binned.columns[1], [0, 1, 0, MISSING, 2]);
    }

    #[test]
    fn many_values_are_cut_at_quantiles() {
        let mut values: Vec<f64> = (0..10_000).map(|i| f64::from(i % 1000)).collect();
        let cuts = thresholds(&mut values);
        assert!(
            cuts.len() <= MAX_THRESHOLDS && cuts.len() > 200,
            "{}",
            cuts.len()
        );
        assert!(cuts.windows(2).all(|w| w[0] < w[1]));
        assert!(*cuts.last().unwrap() < 999.0);
    }
}
