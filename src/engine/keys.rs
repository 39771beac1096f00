//! Key order across a partition's batches: rows' keys (ascending, nulls last) compared with the
//! row before, the last row of one batch with the first of the next. One comparison serves the
//! key-range scan's check ([`super::ranges`]) and the job's check of the window's output.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;

use crate::error::Result;

/// The order keys are declared and sorted in: ascending, nulls last.
pub const ASCENDING: SortOptions = SortOptions {
    descending: false,
    nulls_first: false,
};

/// A cell as text for an error message (`?` where it cannot be shown).
pub fn cell(a: &ArrayRef, row: usize) -> String {
    array_value_to_string(a, row).unwrap_or_else(|_| "?".into())
}

/// The keys of the rows seen so far in one partition: compares each batch's rows with the one
/// before, across batches.
pub struct KeySequence {
    converter: RowConverter,
    /// The last row seen: its key as a row, and as text (one string per key column).
    last: Option<(OwnedRow, Vec<String>)>,
}

/// What [`KeySequence::scan`] found in one batch.
#[derive(Debug, Default, PartialEq)]
pub struct KeyScan {
    /// The first row whose key comes before its predecessor's, and that predecessor's key as
    /// text (it may be the last row of the batch before).
    pub out_of_order: Option<(usize, Vec<String>)>,
    /// The first row whose key equals its predecessor's, before any row out of order.
    pub duplicate: Option<usize>,
}

impl KeySequence {
    /// Compares the key columns at `columns` of batches of `schema`, in that order.
    pub fn new(schema: &Schema, columns: &[usize]) -> Result<Self> {
        let fields = columns
            .iter()
            .map(|&i| SortField::new_with_options(schema.field(i).data_type().clone(), ASCENDING))
            .collect();
        Ok(KeySequence {
            converter: RowConverter::new(fields)?,
            last: None,
        })
    }

    /// Scans one batch's key columns (`keys`, in the order given to [`KeySequence::new`]) up to
    /// the first row out of order, and remembers its last row for the next batch.
    pub fn scan(&mut self, keys: &[ArrayRef]) -> Result<KeyScan> {
        let rows = self.converter.convert_columns(keys)?;
        let n = rows.num_rows();
        let mut found = KeyScan::default();
        for i in 0..n {
            let before = match (i, &self.last) {
                (0, None) => continue,
                (0, Some((last, _))) => last.row(),
                _ => rows.row(i - 1),
            };
            match before.cmp(&rows.row(i)) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    found.duplicate = found.duplicate.or(Some(i));
                }
                std::cmp::Ordering::Greater => {
                    let prev = match (i, &self.last) {
                        (0, Some((_, text))) => text.clone(),
                        _ => keys.iter().map(|c| cell(c, i - 1)).collect(),
                    };
                    found.out_of_order = Some((i, prev));
                    break;
                }
            }
        }
        if n > 0 {
            let text = keys.iter().map(|c| cell(c, n - 1)).collect();
            self.last = Some((rows.row(n - 1).owned(), text));
        }
        Ok(found)
    }
}

/// The first (generation_id, segment_index) that `table` holds more than once, as text; None
/// when each is there once.
pub async fn first_duplicate(
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
) -> crate::error::Result<Option<(String, String)>> {
    let dup = super::query::query(
        ctx,
        &format!(
            "SELECT CAST(generation_id AS VARCHAR) AS g, CAST(segment_index AS VARCHAR) AS s FROM {table} \
             GROUP BY generation_id, segment_index HAVING COUNT(*) > 1 LIMIT 1"
        ),
    )
    .await?;
    Ok((dup.num_rows() > 0).then(|| (cell(dup.column(0), 0), cell(dup.column(1), 0))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};
    use std::sync::Arc;

    #[test]
    fn rows_out_of_order_and_duplicates_are_found_within_and_across_batches() {
        let schema = Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("s", DataType::Int64, false),
        ]);
        let keys = |g: Vec<Option<&str>>, s: Vec<i64>| -> Vec<ArrayRef> {
            vec![Arc::new(StringArray::from(g)), Arc::new(Int64Array::from(s))]
        };
        let mut seq = KeySequence::new(&schema, &[0, 1]).unwrap();
        // A duplicate, then a row out of order after it: both found, the scan stops there.
        let found = seq
            .scan(&keys(
                vec![Some("a"), Some("a"), Some("b"), Some("a")],
                vec![1, 1, 2, 3],
            ))
            .unwrap();
        assert_eq!(found.duplicate, Some(1));
        assert_eq!(found.out_of_order, Some((3, vec!["b".into(), "2".into()])));
        // Across batches: the first row is compared with the last row of the batch before.
        let mut seq = KeySequence::new(&schema, &[0, 1]).unwrap();
        let in_order = seq.scan(&keys(vec![Some("a"), Some("b")], vec![0, 0])).unwrap();
        assert_eq!(in_order, KeyScan::default());
        let found = seq.scan(&keys(vec![Some("a")], vec![9])).unwrap();
        assert_eq!(found.out_of_order, Some((0, vec!["b".into(), "0".into()])));
        // Nulls last: a null id after every id is in order, an id after a null is not.
        let mut seq = KeySequence::new(&schema, &[0, 1]).unwrap();
        let found = seq
            .scan(&keys(vec![Some("z"), None, Some("a")], vec![0, 0, 0]))
            .unwrap();
        assert_eq!(found.out_of_order.map(|(row, _)| row), Some(2));
        // An empty batch changes nothing.
        let mut seq = KeySequence::new(&schema, &[0, 1]).unwrap();
        seq.scan(&keys(vec![Some("b")], vec![0])).unwrap();
        seq.scan(&keys(vec![], vec![])).unwrap();
        let found = seq.scan(&keys(vec![Some("b")], vec![0])).unwrap();
        assert_eq!(found.duplicate, Some(0));
    }
}
