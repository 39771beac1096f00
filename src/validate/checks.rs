//! The row checks: for each row of a batch leaving the window, the first reason it cannot be
//! scored (null or non-finite key and score columns, duplicate keys, the model's input
//! problems, non-finite predictions and targets), in the order of [`Reason::ALL`].

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use crate::contract::{parse_problem, Reason};
use crate::error::Result;

/// Where the checked columns are in the batches reaching the sink.
#[derive(Debug, Clone)]
pub struct RowChecks {
    /// generation_id.
    pub gid: usize,
    /// segment_index.
    pub seg: usize,
    /// cumulative_score (DOUBLE).
    pub cum: usize,
    /// base_score, when the user gave a column.
    pub base: Option<usize>,
    /// target_score.
    pub target: usize,
    /// predicted_score.
    pub pred: usize,
    /// input_problem (`reward_model_input_problem`), when the query produces it.
    pub problem: Option<usize>,
}

fn non_finite_rows(a: &ArrayRef) -> Result<Vec<usize>> {
    let a = cast(a, &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    if a.values().iter().all(|v| v.is_finite()) {
        return Ok(Vec::new());
    }
    Ok((0..a.len())
        .filter(|&i| a.is_valid(i) && !a.value(i).is_finite())
        .collect())
}

fn null_rows(a: &ArrayRef) -> Vec<usize> {
    match a.logical_nulls() {
        Some(n) if n.null_count() > 0 => (0..a.len()).filter(|&i| n.is_null(i)).collect(),
        _ => Vec::new(),
    }
}

impl RowChecks {
    /// Each row's reason, or `None` when every row is valid. The first check that fails sets
    /// a row's reason. Duplicates are found between neighbouring rows, so a batch must hold a
    /// generation's rows together and in order.
    pub fn reasons(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<Reason>>>> {
        let n = batch.num_rows();
        let mut out: Option<Vec<Option<Reason>>> = None;
        let mut mark = |rows: &[usize], r: Reason| {
            if rows.is_empty() {
                return;
            }
            let v = out.get_or_insert_with(|| vec![None; n]);
            for &i in rows {
                v[i].get_or_insert(r);
            }
        };
        let col = |i: usize| batch.column(i);
        mark(&null_rows(col(self.gid)), Reason::NullGenerationId);
        mark(&null_rows(col(self.seg)), Reason::NullSegmentIndex);
        mark(&null_rows(col(self.cum)), Reason::NullCumulativeScore);
        mark(&non_finite_rows(col(self.cum))?, Reason::NonFiniteCumulativeScore);
        if let Some(b) = self.base {
            mark(&null_rows(col(b)), Reason::NullBaseScore);
            mark(&non_finite_rows(col(b))?, Reason::NonFiniteBaseScore);
        }
        if n > 1 {
            let (g, s) = (col(self.gid), col(self.seg));
            let new_gid = distinct(&g.slice(1, n - 1), &g.slice(0, n - 1))?;
            let new_seg = distinct(&s.slice(1, n - 1), &s.slice(0, n - 1))?;
            let dup: Vec<usize> = (0..n - 1)
                .filter(|&i| !new_gid.value(i) && !new_seg.value(i) && s.is_valid(i))
                .flat_map(|i| [i, i + 1])
                .collect();
            mark(&dup, Reason::DuplicateSegment);
        }
        let no_score = null_rows(col(self.pred));
        if !no_score.is_empty() {
            match self.problem {
                Some(p) => {
                    let problems = cast(col(p), &DataType::Utf8)?;
                    let problems = problems.as_string::<i32>();
                    for &i in &no_score {
                        let r = problems
                            .is_valid(i)
                            .then(|| parse_problem(problems.value(i)).0)
                            .flatten()
                            .unwrap_or(Reason::UnscorableInput);
                        mark(&[i], r);
                    }
                }
                None => mark(&no_score, Reason::UnscorableInput),
            }
        }
        mark(&non_finite_rows(col(self.pred))?, Reason::NonFinitePrediction);
        mark(&null_rows(col(self.target)), Reason::NonFiniteTarget);
        mark(&non_finite_rows(col(self.target))?, Reason::NonFiniteTarget);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn reasons_in_check_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("generation_id", DataType::Utf8, true),
            Field::new("segment_index", DataType::Int64, true),
            Field::new("cumulative_score", DataType::Float64, true),
            Field::new("target_score", DataType::Float64, true),
            Field::new("predicted_score", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    Some("a"),
                    Some("a"),
                    None,
                    Some("b"),
                ])),
                Arc::new(Int64Array::from(vec![Some(0), Some(0), Some(1), Some(0), None])),
                Arc::new(Float64Array::from(vec![
                    Some(0.5),
                    Some(f64::NAN),
                    Some(0.1),
                    Some(0.0),
                    Some(1.0),
                ])),
                Arc::new(Float64Array::from(vec![0.5, f64::NAN, f64::NAN, 0.0, 1.0])),
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    Some(0.2),
                    Some(f64::INFINITY),
                    None,
                    Some(0.0),
                ])),
            ],
        )
        .unwrap();
        let checks = RowChecks {
            gid: 0,
            seg: 1,
            cum: 2,
            base: None,
            target: 3,
            pred: 4,
            problem: None,
        };
        assert_eq!(
            checks.reasons(&b).unwrap().unwrap(),
            vec![
                Some(Reason::DuplicateSegment),
                Some(Reason::NonFiniteCumulativeScore),
                Some(Reason::NonFinitePrediction),
                Some(Reason::NullGenerationId),
                Some(Reason::NullSegmentIndex),
            ]
        );
        let fine = b.slice(0, 1);
        assert_eq!(checks.reasons(&fine).unwrap(), None);
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(*r));
        }
    }
}
