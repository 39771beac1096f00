//! Validation: which rows a run cannot score and why, and the quarantine of whole generations.
//!
//! Every row that reaches the sink is checked ([`RowChecks::reasons`]). With
//! `--on-invalid fail` the first invalid row stops the job with an error naming its column,
//! value and key. With `--on-invalid quarantine` the rows arrive grouped by generation
//! ([`Grouper`]); a generation with any invalid row goes whole to `rejected/` (its targets
//! would be wrong), each row with its own reason or `invalid_segment_in_generation`
//! ([`split`]), and the counts by reason go to `summary.json` ([`Rejections`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, partition};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a run does with invalid rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Stop at the first invalid row, naming it; nothing is committed.
    #[default]
    Fail,
    /// Write invalid generations to `rejected/` and score the rest.
    Quarantine,
}

impl std::str::FromStr for OnInvalid {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fail" => Ok(OnInvalid::Fail),
            "quarantine" => Ok(OnInvalid::Quarantine),
            other => Err(format!("unknown --on-invalid `{other}`: use fail or quarantine")),
        }
    }
}

impl OnInvalid {
    /// The flag's value.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInvalid::Fail => "fail",
            OnInvalid::Quarantine => "quarantine",
        }
    }
}

macro_rules! reasons {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// Why a row is invalid. `code()` is the `reason` column of `rejected/`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $variant,)*
        }
        impl Reason {
            /// Every reason, in the order checks run.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
            /// The reason's code.
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)* }
            }
            /// What the check finds.
            pub fn describe(self) -> &'static str {
                match self { $(Reason::$variant => $doc,)* }
            }
            /// The reason with this code.
            pub fn from_code(code: &str) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    NullGenerationId => "null_generation_id", "the generation id is null";
    NullSegmentIndex => "null_segment_index", "the segment index is null";
    NullCumulativeScore => "null_cumulative_score", "the cumulative score is null";
    NonFiniteCumulativeScore => "non_finite_cumulative_score", "the cumulative score is NaN or infinite";
    NullBaseScore => "null_base_score", "the base score (--base-score-col) is null";
    NonFiniteBaseScore => "non_finite_base_score", "the base score (--base-score-col) is NaN or infinite";
    DuplicateSegment => "duplicate_segment", "another row has the same (generation id, segment index)";
    NullInputIds => "null_input_ids", "the token list is null";
    EmptyInputIds => "empty_input_ids", "the token list is empty";
    NullTokenId => "null_token_id", "a token id is null";
    TokenIdOutOfRange => "token_id_out_of_range", "a token id is negative, or not below the vocabulary size of the model's embedding";
    TokenTypeIdsLengthMismatch => "token_type_ids_length_mismatch", "the token type ids are not as many as the token ids";
    UnscorableInput => "unscorable_input", "the model gave no score (a replacement query without reward_model_input_problem)";
    NonFinitePrediction => "non_finite_prediction", "the model's score is NaN or infinite";
    NonFiniteTarget => "non_finite_target", "the target is null, NaN or infinite (from the previous segment's score)";
    InvalidSegmentInGeneration => "invalid_segment_in_generation", "the row is valid, but another segment of its generation is not";
}

impl Reason {
    /// A reason that follows from another row's (a target made from the previous segment's
    /// bad score): the generation is filed under the other row's reason.
    fn derived(self) -> bool {
        matches!(self, Reason::NonFiniteTarget | Reason::InvalidSegmentInGeneration)
    }
}

/// The text `reward_model_input_problem` gives for a row: `code: detail`.
pub fn problem_text(reason: Reason, detail: impl std::fmt::Display) -> String {
    format!("{}: {detail}", reason.code())
}

/// A [`problem_text`] split into its reason (None for a text with no known code) and its
/// detail (the whole text when there is no `: `).
pub fn parse_problem(text: &str) -> (Option<Reason>, &str) {
    let reason = text.split(':').next().and_then(Reason::from_code);
    (reason, text.split_once(": ").map_or(text, |(_, detail)| detail))
}

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
        for (i, r) in run.clone().zip(own) {
            keep[i] = false;
            let r = match r {
                Some(r) if !r.derived() => *r,
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
                columns.push((i, f.as_ref().clone().with_nullable(true)));
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
                cast(c, f.data_type())?
            });
        }
        cols.push(Arc::new(StringArray::from_iter_values(
            reasons.iter().map(|r| r.code()),
        )));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), cols)?)
    }
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
    use datafusion::arrow::array::{Float64Array, Int64Array};

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
            &[Some("a"), Some("a"), Some("b"), Some("c"), Some("c")],
            &[0, 1, 0, 0, 1],
        );
        let reasons = vec![
            None,
            None,
            Some(Reason::EmptyInputIds),
            Some(Reason::NonFiniteTarget),
            Some(Reason::NonFiniteCumulativeScore),
        ];
        let mut counts = Rejections::default();
        let (good, bad) = split(&b, 0, &reasons, &mut counts).unwrap();
        assert_eq!(gids(&good), vec![Some("a".into()), Some("a".into())]);
        let (bad, why) = bad.unwrap();
        assert_eq!(
            gids(&bad),
            vec![Some("b".into()), Some("c".into()), Some("c".into())]
        );
        assert_eq!(
            why,
            vec![
                Reason::EmptyInputIds,
                Reason::InvalidSegmentInGeneration,
                Reason::NonFiniteCumulativeScore
            ]
        );
        assert_eq!((counts.rows, counts.generations), (3, 2));
        assert_eq!(counts.generations_by_reason["non_finite_cumulative_score"], 1);
        assert_eq!(counts.generations_by_reason["empty_input_ids"], 1);
        assert_eq!(counts.rows_by_reason["invalid_segment_in_generation"], 1);
    }

    #[test]
    fn problem_texts_parse_back() {
        for &r in Reason::ALL {
            let text = problem_text(r, "at position 3: odd");
            assert_eq!(text, format!("{}: at position 3: odd", r.code()));
            assert_eq!(parse_problem(&text), (Some(r), "at position 3: odd"));
        }
        assert_eq!(parse_problem("no code here"), (None, "no code here"));
        assert_eq!(parse_problem("unknown_code: x"), (None, "x"));
    }

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
