//! Feature tables and the encoding every built-in classifier shares.
//!
//! A [`FeatureTable`] holds raw columns, numeric or text, with gaps. An [`Encoder`] is
//! fitted on the training rows only (so nothing about the test rows leaks into training):
//! numeric gaps are filled with the training median, text becomes one-hot columns over
//! the levels seen in training (plus a "missing" and an "other" level), and every encoded
//! column is then standardised by its training mean and deviation. Standardising the
//! one-hot columns too means a coefficient times an encoded value reads as "how far this
//! row pushes the score from an average row", which is what the reasons report.

use serde::{Deserialize, Serialize};

use crate::error::{Invalid, Result};

/// One raw column: numbers or text, `None` where the value is missing.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// A numeric feature.
    Numeric(Vec<Option<f64>>),
    /// A categorical feature.
    Text(Vec<Option<String>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Text(v) => v.len(),
        }
    }
}

/// Named raw columns of equal length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureTable {
    names: Vec<String>,
    columns: Vec<Column>,
    rows: usize,
}

impl FeatureTable {
    /// An empty table with `rows` rows and no columns yet.
    pub fn with_rows(rows: usize) -> Self {
        FeatureTable {
            names: Vec::new(),
            columns: Vec::new(),
            rows,
        }
    }

    /// Adds a column; it must have one value per row and a name not used yet.
    pub fn push(&mut self, name: impl Into<String>, column: Column) -> Result<()> {
        let name = name.into();
        if column.len() != self.rows {
            return Err(Invalid::new(
                name,
                format!("has {} values for {} rows", column.len(), self.rows),
            ));
        }
        if self.names.contains(&name) {
            return Err(Invalid::new(name, "appears twice"));
        }
        self.names.push(name);
        self.columns.push(column);
        Ok(())
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The column names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The columns, in the order of [`FeatureTable::names`].
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// This table's columns in the order of `layout` (name, numeric or not), as a model
    /// fitted on that layout reads them: columns the layout does not name are left out
    /// (a model trained before a feature was added scores on as it was trained), and a
    /// missing column or one of another kind is named.
    pub fn aligned(&self, layout: &[(&str, bool)]) -> Result<std::borrow::Cow<'_, FeatureTable>> {
        let kind_of = |column: &Column| matches!(column, Column::Numeric(_));
        if layout
            .iter()
            .map(|&(name, _)| name)
            .eq(self.names.iter().map(String::as_str))
        {
            for (&(name, numeric), column) in layout.iter().zip(&self.columns) {
                if kind_of(column) != numeric {
                    return Err(Invalid::new(
                        name.to_string(),
                        format!("the model expected a {} column here", kind_name(numeric)),
                    ));
                }
            }
            return Ok(std::borrow::Cow::Borrowed(self));
        }
        let mut out = FeatureTable::with_rows(self.rows);
        for &(name, numeric) in layout {
            let Some(i) = self.names.iter().position(|n| n == name) else {
                return Err(Invalid::new(
                    "features",
                    format!("the model was trained on a column '{name}' the data lacks"),
                ));
            };
            if kind_of(&self.columns[i]) != numeric {
                return Err(Invalid::new(
                    name.to_string(),
                    format!("the model expected a {} column here", kind_name(numeric)),
                ));
            }
            out.names.push(self.names[i].clone());
            out.columns.push(self.columns[i].clone());
        }
        Ok(std::borrow::Cow::Owned(out))
    }
}

/// The most levels one text column may contribute; rarer values share the "other" level
/// so a free-text column cannot blow up the model.
const MAX_LEVELS: usize = 30;
const MISSING_LEVEL: &str = "(missing)";
const OTHER_LEVEL: &str = "(other)";

/// How one raw column is encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeatureEncoding {
    /// A number, gaps filled with the training median.
    Numeric {
        /// The raw column's name.
        name: String,
        /// The fill value for gaps.
        median: f64,
    },
    /// One column per level.
    OneHot {
        /// The raw column's name.
        name: String,
        /// The levels seen in training, most frequent first.
        levels: Vec<String>,
    },
}

impl FeatureEncoding {
    /// The raw column's name.
    pub fn name(&self) -> &str {
        match self {
            FeatureEncoding::Numeric { name, .. } | FeatureEncoding::OneHot { name, .. } => name,
        }
    }

    fn width(&self) -> usize {
        match self {
            FeatureEncoding::Numeric { .. } => 1,
            // The named levels plus "missing" and "other".
            FeatureEncoding::OneHot { levels, .. } => levels.len() + 2,
        }
    }
}

/// An encoding fitted on training rows; it can be stored and applied to new rows later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// One entry per raw column, in table order.
    pub features: Vec<FeatureEncoding>,
    /// Training mean of each encoded column.
    pub means: Vec<f64>,
    /// Training standard deviation of each encoded column (1 where it was constant).
    pub scales: Vec<f64>,
}

/// Encoded rows: a dense row-major matrix of standardised values.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// `rows × width` values.
    pub matrix: ndarray::Array2<f64>,
    /// How many raw values were missing and filled in.
    pub imputed: usize,
}

impl Encoder {
    /// Fits the encoding on the rows listed in `train`.
    pub fn fit(table: &FeatureTable, train: &[usize]) -> Result<Encoder> {
        if train.is_empty() {
            return Err(Invalid::new("rows", "there are no training rows"));
        }
        let features: Vec<FeatureEncoding> = table
            .names
            .iter()
            .zip(&table.columns)
            .map(|(name, column)| match column {
                Column::Numeric(values) => {
                    let mut seen: Vec<f64> = train.iter().filter_map(|&i| values[i]).collect();
                    FeatureEncoding::Numeric {
                        name: name.clone(),
                        median: median(&mut seen).unwrap_or(0.0),
                    }
                }
                Column::Text(values) => FeatureEncoding::OneHot {
                    name: name.clone(),
                    levels: frequent_levels(
                        train.iter().filter_map(|&i| values[i].as_deref()),
                        MAX_LEVELS,
                    ),
                },
            })
            .collect();
        let mut encoder = Encoder {
            means: Vec::new(),
            scales: Vec::new(),
            features,
        };
        let raw = encoder.raw(table, train).matrix;
        let n = raw.nrows() as f64;
        for column in raw.columns() {
            let mean = column.sum() / n;
            let var = column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            encoder.means.push(mean);
            encoder
                .scales
                .push(if var > 1e-24 { var.sqrt() } else { 1.0 });
        }
        Ok(encoder)
    }

    /// The names of the encoded columns (`industry=Software` for a one-hot level).
    pub fn column_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for f in &self.features {
            match f {
                FeatureEncoding::Numeric { name, .. } => names.push(name.clone()),
                FeatureEncoding::OneHot { name, levels } => {
                    for level in levels
                        .iter()
                        .map(String::as_str)
                        .chain([MISSING_LEVEL, OTHER_LEVEL])
                    {
                        names.push(format!("{name}={level}"));
                    }
                }
            }
        }
        names
    }

    /// For each encoded column, the index of the raw feature it came from.
    pub fn column_sources(&self) -> Vec<usize> {
        self.features
            .iter()
            .enumerate()
            .flat_map(|(i, f)| std::iter::repeat_n(i, f.width()))
            .collect()
    }

    /// Encodes and standardises the listed rows. The table must have the columns the
    /// encoder was fitted on, of the same kinds; columns it was not fitted on are left
    /// out (a model trained before a feature was added scores on as it was trained).
    pub fn encode(&self, table: &FeatureTable, rows: &[usize]) -> Result<Encoded> {
        let layout: Vec<(&str, bool)> = self
            .features
            .iter()
            .map(|f| (f.name(), matches!(f, FeatureEncoding::Numeric { .. })))
            .collect();
        let table = table.aligned(&layout)?;
        let mut encoded = self.raw(&table, rows);
        for (j, mut column) in encoded.matrix.columns_mut().into_iter().enumerate() {
            let (mean, scale) = (self.means[j], self.scales[j]);
            column.mapv_inplace(|v| (v - mean) / scale);
        }
        Ok(encoded)
    }

    /// Encodes without standardising.
    fn raw(&self, table: &FeatureTable, rows: &[usize]) -> Encoded {
        let width: usize = self.features.iter().map(FeatureEncoding::width).sum();
        let mut matrix = ndarray::Array2::<f64>::zeros((rows.len(), width));
        let mut imputed = 0;
        let mut offset = 0;
        for (f, column) in self.features.iter().zip(&table.columns) {
            match (f, column) {
                (FeatureEncoding::Numeric { median, .. }, Column::Numeric(values)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        matrix[[r, offset]] = values[i].unwrap_or_else(|| {
                            imputed += 1;
                            *median
                        });
                    }
                }
                (FeatureEncoding::OneHot { levels, .. }, Column::Text(values)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        let slot = match values[i].as_deref() {
                            None => {
                                imputed += 1;
                                levels.len()
                            }
                            Some(v) => levels
                                .iter()
                                .position(|l| l == v)
                                .unwrap_or(levels.len() + 1),
                        };
                        matrix[[r, offset + slot]] = 1.0;
                    }
                }
                // `FeatureTable::aligned` rules this out before any public caller gets here.
                _ => unreachable!("column kinds were checked against the encoder"),
            }
            offset += f.width();
        }
        Encoded { matrix, imputed }
    }
}

/// The median of the values (sorted in place), `None` when there are none.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

fn kind_name(numeric: bool) -> &'static str {
    if numeric { "numeric" } else { "text" }
}

/// The distinct values, most frequent first, at most `limit` of them.
pub(super) fn frequent_levels<'a>(
    values: impl Iterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
    // Ties broken by name so the encoding does not depend on hash order.
    levels.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    levels
        .into_iter()
        .take(limit)
        .map(|(l, _)| l.to_string())
        .collect()
}

#[cfg(test)]
mod projection_tests {
    use super::*;

    #[test]
    fn columns_added_after_training_are_left_out_and_missing_ones_named() {
        let mut train = FeatureTable::with_rows(3);
        train
            .push("a", Column::Numeric(vec![Some(1.0), Some(2.0), Some(3.0)]))
            .unwrap();
        let encoder = Encoder::fit(&train, &[0, 1, 2]).unwrap();
        let mut wider = FeatureTable::with_rows(1);
        wider.push("new", Column::Numeric(vec![Some(9.0)])).unwrap();
        wider.push("a", Column::Numeric(vec![Some(2.0)])).unwrap();
        let encoded = encoder.encode(&wider, &[0]).unwrap();
        assert_eq!(encoded.matrix.shape(), &[1, 1]);
        let mut other = FeatureTable::with_rows(1);
        other.push("b", Column::Numeric(vec![Some(2.0)])).unwrap();
        assert!(encoder.encode(&other, &[0]).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FeatureTable {
        let mut t = FeatureTable::with_rows(4);
        t.push(
            "visits",
            Column::Numeric(vec![Some(1.0), None, Some(3.0), Some(10.0)]),
        )
        .unwrap();
        t.push(
            "industry",
            Column::Text(vec![
                Some("Retail".into()),
                Some("Software".into()),
                Some("Software".into()),
                None,
            ]),
        )
        .unwrap();
        t
    }

    #[test]
    fn imputes_from_training_rows_only_and_standardises() {
        let t = table();
        let enc = Encoder::fit(&t, &[0, 1, 2]).unwrap();
        assert_eq!(
            enc.features[0],
            FeatureEncoding::Numeric {
                name: "visits".into(),
                median: 2.0
            }
        );
        assert_eq!(
            enc.column_names(),
            [
                "visits",
                "industry=Software",
                "industry=Retail",
                "industry=(missing)",
                "industry=(other)"
            ]
        );
        let e = enc.encode(&t, &[0, 1, 2]).unwrap();
        assert_eq!(e.imputed, 1);
        for column in e.matrix.columns() {
            assert!(column.sum().abs() < 1e-9, "training columns are centred");
        }
        // Row 3 is missing its industry; its 10 visits are far above the training mean.
        let test = enc.encode(&t, &[3]).unwrap();
        assert_eq!(test.imputed, 1);
        assert!(test.matrix[[0, 0]] > 5.0);
    }

    #[test]
    fn rejects_a_table_of_another_shape() {
        let enc = Encoder::fit(&table(), &[0, 1]).unwrap();
        // Columns in another order are read by their names.
        let mut reordered = FeatureTable::with_rows(1);
        reordered
            .push("industry", Column::Text(vec![None]))
            .unwrap();
        reordered
            .push("visits", Column::Numeric(vec![None]))
            .unwrap();
        assert!(enc.encode(&reordered, &[0]).is_ok());
        // A column of another kind is refused.
        let mut other = FeatureTable::with_rows(1);
        other.push("industry", Column::Numeric(vec![None])).unwrap();
        other.push("visits", Column::Numeric(vec![None])).unwrap();
        assert!(enc.encode(&other, &[0]).is_err());
        assert!(
            FeatureTable::with_rows(2)
                .push("x", Column::Numeric(vec![None]))
                .is_err()
        );
    }
}
