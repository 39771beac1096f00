//! The check each key range's partition makes as rows pass ([`super::KeyRangeExec`]): keys in
//! order across its batches, the first key inside the partition's range.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::cmp::{gt_eq, lt};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;

use crate::engine::keys::{cell, KeySequence};
use crate::error::Error;

/// Checks that rows come in key order (ascending, nulls last; equal keys allowed) across a
/// partition's batches, and that the first key lies in the partition's range.
pub(super) struct KeyCheck {
    columns: Vec<usize>,
    keys: KeySequence,
    range: KeyRange,
}

impl KeyCheck {
    pub(super) fn new(schema: &SchemaRef, columns: Vec<usize>, range: KeyRange) -> Result<Self, Error> {
        Ok(KeyCheck {
            keys: KeySequence::new(schema, &columns)?,
            columns,
            range,
        })
    }

    pub(super) fn check(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        if let Some((row, prev)) = self.keys.scan(&cols)?.out_of_order {
            let key = |k: usize| cols.get(k).map(|c| cell(c, row)).unwrap_or_default();
            let prev_key = |k: usize| prev.get(k).cloned().unwrap_or_default();
            return Err(Error::NotSorted {
                generation_id: key(0),
                segment_index: key(1),
                prev_generation_id: prev_key(0),
                prev_segment_index: prev_key(1),
            });
        }
        // In order: the range holds every row when it holds the first and the last.
        if let Some(row) = self
            .range
            .outside(batch, self.columns[0])
            .map_err(|e| Error::Internal(e.to_string()))?
        {
            return Err(Error::OutsideKeyRange {
                generation_id: cell(&cols[0], row),
                range: self.range.to_string(),
            });
        }
        Ok(())
    }
}

/// One partition's range of the first key: `[lower, upper)`, either end open.
#[derive(Debug, Clone)]
pub(super) struct KeyRange {
    pub(super) lower: Option<ScalarValue>,
    pub(super) upper: Option<ScalarValue>,
}

impl KeyRange {
    /// The first row of `batch` (rows in key order) whose generation id (column `gid`) is
    /// outside the range, if any.
    fn outside(&self, batch: &RecordBatch, gid: usize) -> datafusion::error::Result<Option<usize>> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let ids: &ArrayRef = batch.column(gid);
        if let Some(lower) = &self.lower {
            if !gt_eq(&ids.slice(0, 1), &lower.to_scalar()?)?.value(0) {
                return Ok(Some(0));
            }
        }
        if let Some(upper) = &self.upper {
            if !lt(&ids.slice(n - 1, 1), &upper.to_scalar()?)?.value(0) {
                let below = lt(ids, &upper.to_scalar()?)?;
                return Ok(Some(below.true_count()));
            }
        }
        Ok(None)
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match (&self.lower, &self.upper) {
            (Some(l), Some(u)) => write!(f, "from {l} up to (not including) {u}"),
            (Some(l), None) => write!(f, "from {l} on"),
            (None, Some(u)) => write!(f, "below {u}"),
            (None, None) => write!(f, "any"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    #[test]
    fn a_partition_finds_the_first_row_outside_its_range() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        let batch = |ids: Vec<i64>| {
            let schema = Arc::new(Schema::new(vec![Field::new("g", DataType::Int64, false)]));
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids))]).unwrap()
        };
        let r = KeyRange {
            lower: Some(ScalarValue::Int64(Some(10))),
            upper: Some(ScalarValue::Int64(Some(20))),
        };
        assert_eq!(r.outside(&batch(vec![10, 12, 19]), 0).unwrap(), None);
        assert_eq!(r.outside(&batch(vec![9, 12]), 0).unwrap(), Some(0));
        assert_eq!(r.outside(&batch(vec![12, 19, 20, 21]), 0).unwrap(), Some(2));
        assert_eq!(r.to_string(), "from 10 up to (not including) 20");
    }

    #[test]
    fn the_check_finds_rows_out_of_order_across_batches_and_outside_the_range() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("s", DataType::Int64, false),
        ]));
        let batch = |g: Vec<i64>, s: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(g)), Arc::new(Int64Array::from(s))],
            )
            .unwrap()
        };
        let range = KeyRange {
            lower: Some(ScalarValue::Int64(Some(10))),
            upper: Some(ScalarValue::Int64(Some(20))),
        };
        let mut check = KeyCheck::new(&schema, vec![0, 1], range).unwrap();
        check.check(&batch(vec![10, 10, 11], vec![0, 1, 0])).unwrap();
        // Equal keys pass (duplicates are the job's to find); a row before the last one fails.
        check.check(&batch(vec![11, 12], vec![0, 0])).unwrap();
        match check.check(&batch(vec![12, 11], vec![1, 5])) {
            Err(Error::NotSorted {
                generation_id,
                segment_index,
                prev_generation_id,
                prev_segment_index,
            }) => assert_eq!(
                (
                    generation_id,
                    segment_index,
                    prev_generation_id,
                    prev_segment_index
                ),
                ("11".into(), "5".into(), "12".into(), "1".into())
            ),
            other => panic!("{other:?}"),
        }
        let mut check = KeyCheck::new(&schema, vec![0, 1], check.range.clone()).unwrap();
        check.check(&batch(vec![15], vec![0])).unwrap();
        // Across batches: the first row of the next batch is compared with the last.
        assert!(matches!(
            check.check(&batch(vec![14], vec![0])),
            Err(Error::NotSorted { .. })
        ));
        let mut check = KeyCheck::new(&schema, vec![0, 1], check.range.clone()).unwrap();
        match check.check(&batch(vec![19, 20], vec![0, 0])) {
            Err(Error::OutsideKeyRange { generation_id, range }) => {
                assert_eq!(
                    (generation_id.as_str(), range.as_str()),
                    ("20", "from 10 up to (not including) 20")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
