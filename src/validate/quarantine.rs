//! Quarantine: regrouping the window's output into whole generations ([`Grouper`]), splitting
//! off the generations with an invalid row ([`split`]), the layout of `rejected/`
//! ([`RejectedLayout`]) and the counts by reason ([`Rejections`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, partition};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::contract::Reason;
use crate::error::{Error, Result};

/// Holds back the last generation of each batch until the next batch shows where it ends,
/// so that the batches it hands on hold whole generations.
#[derive(Debug)]
pub struct Grouper {
    gid: usize,
    carry: Option<RecordBatch>,
}

impl Grouper {
    /// A grouper on the generation-id column `gid`.
    pub fn new(gid: usize) -> Self {
        Grouper { gid, carry: None }
    }

    /// Takes a batch; returns the rows of the generations that are now complete.
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mut ready = Vec::new();
        if batch.num_rows() == 0 {
            return Ok(ready);
        }
        // The batch's runs of one generation id, found once.
        let n = batch.num_rows();
        let runs = partition(&[Arc::clone(batch.column(self.gid))])?.ranges();
        let first_end = runs.first().map_or(n, |r| r.end);
        let last_start = runs.last().map_or(0, |r| r.start);
        let mut start = 0;
        if let Some(carry) = self.carry.take() {
            let new_generation = distinct(
                &carry.column(self.gid).slice(0, 1),
                &batch.column(self.gid).slice(0, 1),
            )?;
            if new_generation.value(0) {
                ready.push(carry);
            } else {
                // Only the carried generation's continuation is copied.
                let joined = concat_batches(&batch.schema(), [&carry, &batch.slice(0, first_end)])?;
                if first_end == n {
                    self.carry = Some(joined);
                    return Ok(ready);
                }
                ready.push(joined);
                start = first_end;
            }
        }
        if last_start > start {
            ready.push(batch.slice(start, last_start - start));
        }
        self.carry = Some(batch.slice(last_start, n - last_start));
        Ok(ready)
    }

    /// The last generation.
    pub fn finish(self) -> Option<RecordBatch> {
        self.carry.filter(|c| c.num_rows() > 0)
    }
}

/// Rejected rows and each one's reason.
pub type Rejected = (RecordBatch, Vec<Reason>);

/// Splits a batch of whole generations into the valid generations' rows and the rejected
/// generations' rows (with each row's reason), counting the rejections.
pub fn split(
    batch: &RecordBatch,
    gid: usize,
    reasons: &[Option<Reason>],
    counts: &mut Rejections,
) -> Result<(RecordBatch, Option<Rejected>)> {
    let mut keep = vec![true; batch.num_rows()];
    let mut rejected_reasons = Vec::new();
    for run in partition(&[Arc::clone(batch.column(gid))])?.ranges() {
        let own = &reasons[run.clone()];
        let first = own
            .iter()
            .flatten()
            .find(|r| !r.derived())
            .or_else(|| own.iter().flatten().next());
        let Some(&generation_reason) = first else {
            continue;
        };
        counts.add_generation(generation_reason);
        // A derived reason is the row's own when nothing else in the generation explains it
        // (a target that overflowed from two finite scores, a replacement query's).
        let explained = !generation_reason.derived();
        for (i, r) in run.clone().zip(own) {
            keep[i] = false;
            let r = match r {
                Some(r) if !r.derived() || !explained => *r,
                _ => Reason::InvalidSegmentInGeneration,
            };
            counts.add_row(r);
            rejected_reasons.push(r);
        }
    }
    if rejected_reasons.is_empty() {
        return Ok((batch.clone(), None));
    }
    let mask = BooleanArray::from(keep);
    let good = filter_record_batch(batch, &mask)?;
    let bad = filter_record_batch(batch, &datafusion::arrow::compute::not(&mask)?)?;
    Ok((good, Some((bad, rejected_reasons))))
}

/// Rejected rows and generations, by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejections {
    /// Rows written to `rejected/`.
    pub rows: u64,
    /// Generations written to `rejected/`.
    pub generations: u64,
    /// Rejected rows by their own reason (`invalid_segment_in_generation` for valid rows of a
    /// rejected generation).
    pub rows_by_reason: BTreeMap<String, u64>,
    /// Rejected generations by the reason of their first invalid segment.
    pub generations_by_reason: BTreeMap<String, u64>,
}

impl Rejections {
    fn add_row(&mut self, r: Reason) {
        self.rows += 1;
        *self.rows_by_reason.entry(r.code().to_string()).or_default() += 1;
    }
    fn add_generation(&mut self, r: Reason) {
        self.generations += 1;
        *self
            .generations_by_reason
            .entry(r.code().to_string())
            .or_default() += 1;
    }
    /// Adds another's counts.
    pub fn merge(&mut self, other: &Rejections) {
        self.rows += other.rows;
        self.generations += other.generations;
        for (k, v) in &other.rows_by_reason {
            *self.rows_by_reason.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.generations_by_reason {
            *self.generations_by_reason.entry(k.clone()).or_default() += v;
        }
    }
    /// `reason n, reason n, ...` by rows, for messages.
    pub fn describe_rows(&self) -> String {
        let mut v: Vec<_> = self.rows_by_reason.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        v.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The rejected rows' layout: the input's own columns (names and types as in the files) that
/// the query's output still holds, then `reason`.
#[derive(Debug, Clone)]
pub struct RejectedLayout {
    /// (column of the query's output, its field in `rejected/`).
    columns: Vec<(usize, Field)>,
    /// The schema of `rejected/` files.
    pub schema: SchemaRef,
}

impl RejectedLayout {
    /// Maps the input files' columns (`input`) to the query output's (`output`), where a role
    /// column has its canonical name (`canonical(name)`).
    pub fn new(input: &Schema, output: &Schema, canonical: impl Fn(&str) -> String) -> Self {
        let mut columns = Vec::new();
        for f in input.fields() {
            if let Ok(i) = output.index_of(&canonical(f.name())) {
                // Categorical columns are written by their values, and a UUID generation id
                // (16 bytes) by its text, as in segments/.
                let read = output.field(i).data_type();
                let t = match f.data_type() {
                    DataType::Dictionary(_, v) => v.as_ref().clone(),
                    DataType::FixedSizeBinary(16) if read.is_string() => read.clone(),
                    t => t.clone(),
                };
                columns.push((i, f.as_ref().clone().with_data_type(t).with_nullable(true)));
            }
        }
        let mut fields: Vec<Field> = columns.iter().map(|(_, f)| f.clone()).collect();
        fields.push(Field::new("reason", DataType::Utf8, false));
        RejectedLayout {
            columns,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The rejected rows as they were in the input, with their reasons.
    pub fn batch(&self, rows: &RecordBatch, reasons: &[Reason]) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        for (i, f) in &self.columns {
            let c = rows.column(*i);
            cols.push(if c.data_type() == f.data_type() {
                Arc::clone(c)
            } else {
                cast_back(c, f.data_type())?
            });
        }
        cols.push(Arc::new(StringArray::from_iter_values(
            reasons.iter().map(|r| r.code()),
        )));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
}

/// A column of the rejected rows cast back to its input type `to`. Token ids the input held
/// in a fixed-size list (read as a list) are cast back from a copy of the rows whose offsets
/// start at 0: arrow 59 reads a sliced list's values from the start of its child
/// (apache/arrow-rs#10975), which gave a generation's rejected rows another's ids.
fn cast_back(c: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if matches!(to, DataType::FixedSizeList(..)) {
        let rows = datafusion::arrow::array::UInt32Array::from_iter_values(0..c.len() as u32);
        let whole = datafusion::arrow::compute::take(c.as_ref(), &rows, None)?;
        return Ok(cast(&whole, to)?);
    }
    Ok(cast(c, to)?)
}

/// The error `--max-invalid-fraction` gives.
pub fn too_many(rejected: &Rejections, input_rows: u64, max_fraction: f64) -> Error {
    Error::TooManyInvalid {
        rejected: rejected.rows,
        input_rows,
        fraction: rejected.rows as f64 / input_rows.max(1) as f64,
        max: max_fraction,
        by_reason: rejected.describe_rows(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, Int64Array};

    fn gen_batch(gids: &[Option<&str>], segs: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("generation_id", DataType::Utf8, true),
            Field::new("segment_index", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(gids.to_vec())),
                Arc::new(Int64Array::from(segs.to_vec())),
            ],
        )
        .unwrap()
    }

    fn gids(b: &RecordBatch) -> Vec<Option<String>> {
        let a = b.column(0).as_string::<i32>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
            .collect()
    }

    #[test]
    fn rejected_ids_cast_back_to_a_fixed_size_list_keep_their_own_values() {
        use datafusion::arrow::array::{Array, FixedSizeListArray, Int64Array, ListArray};
        use datafusion::arrow::datatypes::Int64Type;
        let lists = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3), None]),
            Some(vec![Some(5), Some(6)]),
            None,
        ]);
        let item = Arc::new(Field::new("element", DataType::Int64, true));
        let to = DataType::FixedSizeList(item, 2);
        // The rows of a generation after the first: a slice.
        let sliced: ArrayRef = Arc::new(lists.slice(2, 2));
        let back = cast_back(&sliced, &to).unwrap();
        let back = back.as_any().downcast_ref::<FixedSizeListArray>().unwrap();
        let first = back.value(0);
        let first = first.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(first.values().to_vec(), vec![5, 6]);
        assert!(back.is_null(1));
    }

    #[test]
    fn grouper_hands_on_whole_generations() {
        let mut g = Grouper::new(0);
        let mut out = Vec::new();
        for b in [
            gen_batch(&[Some("a"), Some("a"), Some("b")], &[0, 1, 0]),
            gen_batch(&[Some("b"), Some("b")], &[1, 2]),
            gen_batch(&[], &[]),
            gen_batch(&[Some("b"), Some("c")], &[3, 0]),
            gen_batch(&[Some("d"), None, None], &[0, 0, 1]),
        ] {
            out.extend(g.push(b).unwrap());
        }
        out.extend(g.finish());
        let groups: Vec<Vec<Option<String>>> = out.iter().map(gids).collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            groups,
            vec![
                vec![s("a"), s("a")],
                vec![s("b"), s("b"), s("b"), s("b")],
                vec![s("c")],
                vec![s("d")],
                vec![None, None],
            ]
        );
    }

    #[test]
    fn split_rejects_whole_generations_with_reasons() {
        let b = gen_batch(
            &[
                Some("a"),
                Some("a"),
                Some("b"),
                Some("c"),
                Some("c"),
                Some("d"),
                Some("d"),
            ],
            &[0, 1, 0, 0, 1, 0, 1],
        );
        // d: a target not finite with both scores finite (1e308, then -1e308).
        let reasons = vec![
            None,
            None,
            Some(Reason::EmptyInputIds),
            Some(Reason::NonFiniteTarget),
            Some(Reason::NonFiniteCumulativeScore),
            None,
            Some(Reason::NonFiniteTarget),
        ];
        let mut counts = Rejections::default();
        let (good, bad) = split(&b, 0, &reasons, &mut counts).unwrap();
        assert_eq!(gids(&good), vec![Some("a".into()), Some("a".into())]);
        let (bad, why) = bad.unwrap();
        assert_eq!(gids(&bad), ["b", "c", "c", "d", "d"].map(|g| Some(g.to_string())));
        assert_eq!(
            why,
            vec![
                Reason::EmptyInputIds,
                Reason::InvalidSegmentInGeneration,
                Reason::NonFiniteCumulativeScore,
                Reason::InvalidSegmentInGeneration,
                Reason::NonFiniteTarget,
            ]
        );
        assert_eq!((counts.rows, counts.generations), (5, 3));
        assert_eq!(counts.generations_by_reason["non_finite_cumulative_score"], 1);
        assert_eq!(counts.generations_by_reason["empty_input_ids"], 1);
        assert_eq!(counts.generations_by_reason["non_finite_target"], 1);
        assert_eq!(counts.rows_by_reason["invalid_segment_in_generation"], 2);
        assert_eq!(counts.rows_by_reason["non_finite_target"], 1);
    }
}
