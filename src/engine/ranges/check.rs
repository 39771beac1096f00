//! The check each key range's partition makes as rows pass ([`super::KeyRangeExec`]): keys in
//! order across its batches, the first key inside the partition's range.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::cmp::{gt_eq, lt};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;

use crate::error::Error;

/// The order keys are declared in: ascending, nulls last.
pub(super) const ASCENDING: SortOptions = SortOptions {
    descending: false,
    nulls_first: false,
};

/// Checks that rows come in key order (ascending, nulls last; equal keys allowed) across a
/// partition's batches, and that the first key lies in the partition's range.
pub(super) struct KeyCheck {
    columns: Vec<usize>,
    converter: RowConverter,
    /// The last row seen: its key as a row, and as text.
    last: Option<(OwnedRow, Vec<String>)>,
    range: KeyRange,
}

impl KeyCheck {
    pub(super) fn new(
        schema: &SchemaRef,
        columns: Vec<usize>,
        range: KeyRange,
    ) -> datafusion::error::Result<Self> {
        let fields = columns
            .iter()
            .map(|&i| SortField::new_with_options(schema.field(i).data_type().clone(), ASCENDING))
            .collect();
        Ok(KeyCheck {
            columns,
            converter: RowConverter::new(fields)?,
            last: None,
            range,
        })
    }

    pub(super) fn check(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let cols: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let text = |row: usize| -> Vec<String> {
            cols.iter()
                .map(|c| array_value_to_string(c, row).unwrap_or_else(|_| "?".into()))
                .collect()
        };
        let rows = self
            .converter
            .convert_columns(&cols)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let before = |i: usize| match (i, &self.last) {
            (0, Some((last, _))) => Some(last.row()),
            (0, None) => None,
            _ => Some(rows.row(i - 1)),
        };
        if let Some(i) = (0..n).find(|&i| before(i).is_some_and(|b| b > rows.row(i))) {
            let prev = match (i, &self.last) {
                (0, Some((_, t))) => t.clone(),
                _ => text(i - 1),
            };
            let (row, key) = (text(i), |v: &[String], k: usize| {
                v.get(k).cloned().unwrap_or_default()
            });
            return Err(Error::NotSorted {
                generation_id: key(&row, 0),
                segment_index: key(&row, 1),
                prev_generation_id: key(&prev, 0),
                prev_segment_index: key(&prev, 1),
            });
        }
        // In order: the range holds every row when it holds the first and the last.
        if let Some(row) = self
            .range
            .outside(batch, self.columns[0])
            .map_err(|e| Error::Internal(e.to_string()))?
        {
            return Err(Error::OutsideKeyRange {
                generation_id: text(row)[0].clone(),
                range: self.range.to_string(),
            });
        }
        self.last = Some((rows.row(n - 1).owned(), text(n - 1)));
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
