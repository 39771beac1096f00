//! Key order: checks that rows come in (generation id, segment index) order across a
//! partition's batches, finds duplicates on the way, and counts the generations.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::record_batch::RecordBatch;

use crate::engine::keys::KeySequence;
use crate::error::Result;

/// Checks that rows come in (generation id, segment index) order, across batches, and counts
/// the generations (each starts where the generation id changes).
pub(crate) struct KeyOrder {
    keys: KeySequence,
    last_gid: Option<ArrayRef>,
    pub(crate) generations: u64,
}

pub(crate) enum OrderCheck {
    InOrder,
    /// The first row that comes before its predecessor, and that predecessor's key as text;
    /// with the first row equal to its predecessor before it, if any.
    OutOfOrder {
        row: usize,
        prev_gid: String,
        prev_seg: String,
        duplicate_before: Option<usize>,
    },
    /// The first row equal to its predecessor (and no row out of order in the batch).
    Duplicate {
        row: usize,
    },
}

impl KeyOrder {
    pub(crate) fn new(schema: &Schema, gid: usize, seg: usize) -> Result<Self> {
        Ok(KeyOrder {
            keys: KeySequence::new(schema, &[gid, seg])?,
            last_gid: None,
            generations: 0,
        })
    }

    pub(crate) fn check(&mut self, batch: &RecordBatch, gid: usize, seg: usize) -> Result<OrderCheck> {
        let cols = [Arc::clone(batch.column(gid)), Arc::clone(batch.column(seg))];
        // Quarantine lets duplicates through to its own checks: the scan keeps looking for a
        // row out of order after one.
        let found = self.keys.scan(&cols)?;
        let verdict = match (found.out_of_order, found.duplicate) {
            (Some((row, mut prev)), duplicate_before) => {
                let prev_seg = prev.pop().unwrap_or_default();
                let prev_gid = prev.pop().unwrap_or_default();
                OrderCheck::OutOfOrder {
                    row,
                    prev_gid,
                    prev_seg,
                    duplicate_before,
                }
            }
            (None, Some(row)) => OrderCheck::Duplicate { row },
            (None, None) => OrderCheck::InOrder,
        };
        let n = batch.num_rows();
        if n > 0 {
            let gid = &cols[0];
            let changes = distinct(&gid.slice(1, n - 1), &gid.slice(0, n - 1))?.true_count() as u64;
            let first = match &self.last_gid {
                Some(last) => distinct(last, &gid.slice(0, 1))?.value(0),
                None => true,
            };
            self.generations += changes + u64::from(first);
            self.last_gid = Some(gid.slice(n - 1, 1));
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn a_row_out_of_order_after_a_duplicate_is_still_found() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, false),
            Field::new("s", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b", "a"])),
                Arc::new(Int64Array::from(vec![1, 1, 2, 3])),
            ],
        )
        .unwrap();
        let mut order = KeyOrder::new(&schema, 0, 1).unwrap();
        match order.check(&batch, 0, 1).unwrap() {
            OrderCheck::OutOfOrder {
                row,
                prev_gid,
                prev_seg,
                duplicate_before,
            } => {
                assert_eq!((row, prev_gid.as_str(), prev_seg.as_str()), (3, "b", "2"));
                assert_eq!(duplicate_before, Some(1));
            }
            _ => panic!("the row out of order was missed"),
        }
        // Duplicates alone are reported as such.
        let dup = batch.slice(0, 3);
        let mut order = KeyOrder::new(&schema, 0, 1).unwrap();
        assert!(matches!(
            order.check(&dup, 0, 1).unwrap(),
            OrderCheck::Duplicate { row: 1 }
        ));
    }
}
