//! The output plan: where each output column comes from in the rows the job query produces,
//! the `--keep`/`--drop` choices, the output schema and sort claim, the row checks, and the
//! per-batch work on valid rows (loss columns and moments). Also the fail-mode error for an
//! invalid row, naming its column, value and key.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::file::metadata::SortingColumn;

use crate::contract::{parse_problem, ColumnNames, Reason, EXECUTOR_COLUMN, OUTPUT_COLUMNS};
use crate::engine::keys::cell;
use crate::error::{Error, Result};
use crate::loss::{loss_columns, Loss, Moments};
use crate::pipeline::config::JobConfig;
use crate::validate::{OnInvalid, RejectedLayout, RowChecks};

/// Where each output column comes from, and the checks each batch gets.
#[derive(Debug)]
pub(crate) struct OutputPlan {
    pub(crate) gid: usize,
    pub(crate) seg: usize,
    pub(crate) cum: usize,
    pub(crate) target: usize,
    pub(crate) pred: usize,
    pub(crate) passthrough: Vec<usize>,
    pub(crate) schema: SchemaRef,
    /// The output files' sort order claim: (generation id, segment index) ascending.
    pub(crate) sorting: Option<Vec<SortingColumn>>,
    /// Whether the plan takes the files' order as it is (then a row out of order is
    /// [`crate::error::Error::NotSorted`]: an error with `--sorted`, else a fallback to a sort).
    pub(crate) sorted_declared: bool,
    pub(crate) loss: Loss,
    pub(crate) names: ColumnNames,
    pub(crate) model_output: String,
    pub(crate) checks: RowChecks,
    /// The layout of `rejected/` (quarantine runs only).
    pub(crate) rejected: Option<RejectedLayout>,
    /// On a cluster, the column naming the executor that scored each row (not written).
    pub(crate) executor: Option<usize>,
}

/// The column `reward_model_input_problem(...)` fills in the job query.
const INPUT_PROBLEM: &str = "input_problem";

impl OutputPlan {
    /// The output of a job query of `input` schema; with `whole`, `input` is the query's whole
    /// output, where `--drop` must name a column (the frame planned from it has none of them).
    pub(crate) fn new(
        input: &Schema,
        cfg: &JobConfig,
        model_output: &str,
        sorted_declared: bool,
        files: &Schema,
        whole: bool,
    ) -> Result<Self> {
        if input.fields().is_empty() {
            return Err(Error::Usage(
                "the job query produced no columns: a --query-file must be one SELECT over `generations`"
                    .into(),
            ));
        }
        let find = |name: &str, why: &str| {
            input.index_of(name).map_err(|_| {
                Error::Usage(format!(
                    "the job query must produce a column `{name}` ({why}); it produced: {}",
                    input
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        };
        let gid = find("generation_id", "the generation key")?;
        let seg = find("segment_index", "the segment key")?;
        let cum = find("cumulative_score", "the cumulative score")?;
        let target = find("target_score", "the segment's target")?;
        let pred = find("predicted_score", "the model's score")?;
        // A replacement query's scores must be floats (a string there panicked in the pass).
        for (i, name) in [
            (cum, "cumulative_score"),
            (target, "target_score"),
            (pred, "predicted_score"),
        ] {
            let t = input.field(i).data_type();
            if !t.is_floating() {
                return Err(Error::Usage(format!(
                    "the job query's {name} has type {t}, expected a float"
                )));
            }
        }
        let model_inputs = ["input_ids", "token_type_ids", "prompt"];
        // A role column may be named as in the files (`--drop step` with `--text-col step`):
        // the output knows it by its canonical name (`text`). Errors name it as given.
        let canonical = |names: &[String]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.clone(), cfg.columns.canonical(n)))
                .collect()
        };
        let (keep, drop) = (canonical(&cfg.keep), canonical(&cfg.drop));
        for (k, kc) in &keep {
            if let Some((d, _)) = drop.iter().find(|(_, dc)| dc == kc) {
                return Err(Error::Usage(format!(
                    "--keep {k} and --drop {d}: a column is kept or dropped, not both"
                )));
            }
        }
        for (given, k) in &keep {
            if !model_inputs.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "--keep {given}: only the model-input columns (input_ids, token_type_ids, prompt) are left out by default, so only they can be kept"
                )));
            }
            if input.index_of(k).is_err() {
                return Err(Error::Usage(format!(
                    "--keep {given}: no such column in the query's output"
                )));
            }
        }
        for (given, d) in &drop {
            if ["generation_id", "segment_index", "cumulative_score"].contains(&d.as_str())
                || OUTPUT_COLUMNS.contains(&d.as_str())
            {
                return Err(Error::Usage(format!(
                    "--drop {given}: key, score and result columns cannot be dropped"
                )));
            }
            let in_input = input.index_of(d).is_ok()
                || d == "input_ids"
                || (d == "token_type_ids" && cfg.columns.token_type_ids.is_some());
            if whole && !in_input {
                return Err(Error::Usage(format!("--drop {given}: no such column")));
            }
        }
        let (keep, drop): (Vec<String>, Vec<String>) = (
            keep.into_iter().map(|(_, k)| k).collect(),
            drop.into_iter().map(|(_, d)| d).collect(),
        );
        let mut passthrough = Vec::new();
        let mut fields: Vec<Field> = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            let name = f.name().as_str();
            let skip = i == target
                || i == pred
                || name == INPUT_PROBLEM
                || name == EXECUTOR_COLUMN
                || (name == "base_score" && cfg.columns.base_score.is_none())
                || (model_inputs.contains(&name) && !keep.iter().any(|k| k == name))
                || drop.iter().any(|d| d == name);
            if !skip {
                passthrough.push(i);
                fields.push(f.as_ref().clone());
            }
        }
        fields.extend(
            OUTPUT_COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Float64, false)),
        );
        let schema = Arc::new(Schema::new(fields));
        let descr = ArrowSchemaConverter::new().convert(&schema)?;
        let leaf = |name: &str| {
            descr
                .columns()
                .iter()
                .position(|c| c.path().parts().len() == 1 && c.path().parts()[0] == name)
        };
        let sorting = match (leaf("generation_id"), leaf("segment_index")) {
            (Some(g), Some(s)) => Some(
                [g, s]
                    .iter()
                    .map(|&i| SortingColumn {
                        column_idx: i as i32,
                        descending: false,
                        nulls_first: false,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let checks = RowChecks {
            gid,
            seg,
            cum,
            base: cfg
                .columns
                .base_score
                .as_ref()
                .and_then(|_| input.index_of("base_score").ok()),
            target,
            pred,
            problem: input.index_of(INPUT_PROBLEM).ok(),
        };
        let rejected = (cfg.on_invalid == OnInvalid::Quarantine)
            .then(|| RejectedLayout::new(files, input, |n| cfg.columns.canonical(n)));
        Ok(OutputPlan {
            gid,
            seg,
            cum,
            target,
            pred,
            checks,
            rejected,
            executor: input.index_of(EXECUTOR_COLUMN).ok(),
            passthrough,
            schema,
            sorting,
            sorted_declared,
            loss: cfg.loss,
            names: cfg.columns.clone(),
            model_output: model_output.to_string(),
        })
    }

    /// The input columns this plan reads, in input order: with quarantine, all of them (the
    /// rejected rows keep every column).
    pub(crate) fn needed_columns(&self, input: &Schema) -> Vec<String> {
        if self.rejected.is_some() {
            return input.fields().iter().map(|f| f.name().clone()).collect();
        }
        let mut idx: Vec<usize> = self.passthrough.clone();
        idx.extend([self.gid, self.seg, self.cum, self.target, self.pred]);
        idx.extend(self.checks.problem);
        idx.extend(self.checks.base);
        idx.sort_unstable();
        idx.dedup();
        idx.into_iter().map(|i| input.field(i).name().clone()).collect()
    }

    fn invalid(&self, batch: &RecordBatch, row: usize, column: &str, problem: impl Into<String>) -> Error {
        Error::InvalidValue {
            column: column.to_string(),
            problem: problem.into(),
            generation_id: cell(batch.column(self.gid), row),
            segment_index: cell(batch.column(self.seg), row),
        }
    }

    /// The error `--on-invalid fail` stops with: the row's column, value and key.
    pub(crate) fn invalid_row(&self, batch: &RecordBatch, row: usize, reason: Reason) -> Error {
        let n = &self.names;
        let value = |i: usize| cell(batch.column(i), row);
        let base = n.base_score.as_deref().unwrap_or("base_score");
        match reason {
            Reason::DuplicateSegment => Error::DuplicateSegment {
                generation_id: value(self.gid),
                segment_index: value(self.seg),
            },
            Reason::NullGenerationId => self.invalid(batch, row, &n.generation_id, "null"),
            Reason::NullSegmentIndex => self.invalid(batch, row, &n.segment_index, "null"),
            Reason::NullCumulativeScore => self.invalid(batch, row, &n.cumulative_score, "null"),
            Reason::NonFiniteCumulativeScore => self.invalid(
                batch,
                row,
                &n.cumulative_score,
                format!("non-finite ({})", value(self.cum)),
            ),
            Reason::NullBaseScore => self.invalid(batch, row, base, "null"),
            Reason::NonFiniteBaseScore => {
                let v = self.checks.base.map(value).unwrap_or_default();
                self.invalid(batch, row, base, format!("non-finite ({v})"))
            }
            Reason::NonFinitePrediction => self.invalid(
                batch,
                row,
                &format!("predicted_score (model output `{}`)", self.model_output),
                format!("{} (the model returned a non-finite score)", value(self.pred)),
            ),
            Reason::NonFiniteTarget => self.invalid(
                batch,
                row,
                "target_score",
                format!(
                    "{} (made from the cumulative scores{})",
                    value(self.target),
                    if n.base_score.is_some() {
                        " and the base score"
                    } else {
                        ""
                    }
                ),
            ),
            Reason::TokenTypeIdsLengthMismatch => {
                let col = n.token_type_ids.as_deref().unwrap_or("token_type_ids");
                self.invalid(batch, row, col, self.unusable(batch, row))
            }
            Reason::UnscorableInput => self.invalid(
                batch,
                row,
                &n.input_ids,
                "null, empty or holding a token id the model cannot take, so the model gave no score",
            ),
            Reason::NullText | Reason::EmptyText | Reason::TooLong if n.text.is_some() => {
                let col = n.text.as_deref().unwrap_or("text");
                self.invalid(batch, row, col, self.unusable(batch, row))
            }
            Reason::NullPrompt => {
                let col = n.prompt.as_deref().unwrap_or("prompt");
                self.invalid(batch, row, col, self.unusable(batch, row))
            }
            _ => self.invalid(batch, row, &n.input_ids, self.unusable(batch, row)),
        }
    }

    /// The detail `reward_model_input_problem` gave for a row (a sentence), as the problem of
    /// an [`Error::InvalidValue`]: "unusable: the token list is empty".
    fn unusable(&self, batch: &RecordBatch, row: usize) -> String {
        format!("unusable: {}", self.problem_detail(batch, row))
    }

    /// The detail `reward_model_input_problem` gave for a row (after its `code: `).
    fn problem_detail(&self, batch: &RecordBatch, row: usize) -> String {
        let text = self
            .checks
            .problem
            .map(|p| cell(batch.column(p), row))
            .unwrap_or_default();
        parse_problem(&text).1.to_string()
    }

    /// Adds the loss columns to a batch of valid rows and returns the output batch with its
    /// moments.
    pub(crate) fn finish(&self, batch: &RecordBatch) -> Result<(RecordBatch, Moments)> {
        let target = cast(batch.column(self.target), &DataType::Float64)?;
        let target = target.as_primitive::<Float64Type>();
        let pred = cast(batch.column(self.pred), &DataType::Float64)?;
        let pred = pred.as_primitive::<Float64Type>();
        let lc = loss_columns(self.loss, pred, target);
        let mut moments = Moments::default();
        moments.push_arrays(target, pred, &lc.loss);
        let mut columns: Vec<ArrayRef> = self
            .passthrough
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let target_arr: ArrayRef = Arc::new(Float64Array::new(target.values().clone(), None));
        let pred_arr: ArrayRef = Arc::new(Float64Array::new(pred.values().clone(), None));
        columns.extend([
            target_arr,
            pred_arr,
            Arc::new(lc.residual) as ArrayRef,
            Arc::new(lc.squared_error),
            Arc::new(lc.abs_error),
            Arc::new(lc.loss),
            Arc::new(lc.loss_grad),
        ]);
        let out = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok((out, moments))
    }
}
