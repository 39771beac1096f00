//! Shards: the unit of commitment of a run.
//!
//! A run with N shards processes the generations whose id hashes to shard k (FNV-1a 64 of
//! the id's bytes, modulo N) as its own pass over the input, k = 0..N. Whole generations
//! fall into one shard, so the window's targets are the same as in one pass. A shard's
//! part files are written, synced and renamed first, and then its record
//! (`shards/shard-KKKKK.json`: its files, moments and counts) is written under a temporary
//! name and renamed: that rename commits the shard. `--resume` keeps the committed shards,
//! removes every other file, and runs the rest.
//!
//! The SQL function `segscore_shard(generation_id, n)` says which shard a generation is in.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{exec_err, plan_err, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde::{Deserialize, Serialize};

use crate::loss::Moments;
use crate::metrics::EvalSums;
use crate::validate::Rejections;

/// The SQL name of the shard function.
pub const UDF_NAME: &str = "segscore_shard";

/// Input rows per shard when `--shards` is not given. Each shard is its own pass over the
/// input (it decodes every row to find its own), so more shards cost more reading: this
/// keeps that cost small while a crash loses at most this many rows of work.
pub const AUTO_SHARD_ROWS: u64 = 4_000_000;

/// Shards for `rows` input rows when `--shards` is not given: one per
/// [`AUTO_SHARD_ROWS`] rows (at least 1, at most 4096).
pub fn auto_shards(rows: u64) -> usize {
    rows.div_ceil(AUTO_SHARD_ROWS).clamp(1, 4096) as usize
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The shard of each generation id (string or integer; a null id is in shard 0).
pub fn shards_of(ids: &ArrayRef, n: u64) -> datafusion::error::Result<Int64Array> {
    let n = n.max(1);
    // A categorical id is sharded by its value.
    let decoded;
    let ids = match ids.data_type() {
        DataType::Dictionary(_, v) => {
            decoded = cast(ids, v)?;
            &decoded
        }
        _ => ids,
    };
    let shard = |h: u64| (h % n) as i64;
    Ok(match ids.data_type() {
        t if t.is_integer() => {
            let v = cast(ids, &DataType::Int64)?;
            let v = v.as_primitive::<Int64Type>();
            (0..v.len())
                .map(|i| {
                    Some(if v.is_null(i) {
                        0
                    } else {
                        shard(fnv1a(&v.value(i).to_le_bytes()))
                    })
                })
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
            let v = cast(ids, &DataType::Utf8)?;
            let v = v.as_string::<i32>();
            (0..v.len())
                .map(|i| {
                    Some(if v.is_null(i) {
                        0
                    } else {
                        shard(fnv1a(v.value(i).as_bytes()))
                    })
                })
                .collect()
        }
        other => return exec_err!("{UDF_NAME}: generation ids of type {other} cannot be sharded"),
    })
}

/// The SQL predicate that keeps shard `k` of `n`'s rows of a table whose generation id is the
/// column `generation_id_col`.
pub fn filter_sql(generation_id_col: &str, k: usize, n: usize) -> String {
    format!(
        "{UDF_NAME}(\"{}\", {n}) = {k}",
        generation_id_col.replace('"', "\"\"")
    )
}

/// FNV-1a of a generation id's value and a segment index: the sample's hash.
pub fn sample_hash(gid: &str, seg: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in gid.as_bytes().iter().chain(&seg.to_le_bytes()) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether each row is in the sample of stride `stride` (generation ids as text, so string
/// and integer ids hash alike in Rust and SQL).
pub fn in_sample(gids: &ArrayRef, segs: &ArrayRef, stride: u64) -> datafusion::error::Result<BooleanArray> {
    let g = cast(gids, &DataType::Utf8)?;
    let g = g.as_string::<i32>();
    let s = cast(segs, &DataType::Int64)?;
    let s = s.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    Ok((0..g.len())
        .map(|i| {
            Some(
                stride <= 1
                    || (g.is_valid(i)
                        && s.is_valid(i)
                        && sample_hash(g.value(i), s.value(i)).is_multiple_of(stride)),
            )
        })
        .collect())
}

/// The SQL name of the sample function.
pub const SAMPLE_UDF_NAME: &str = "segscore_sample";

/// `segscore_sample(generation_id, segment_index, stride)`: whether a segment is in the
/// evaluation's overall sample (its key hashes to 0 modulo `stride`; all when stride <= 1).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SampleUdf {
    signature: Signature,
}

impl ScalarUDFImpl for SampleUdf {
    fn name(&self) -> &str {
        SAMPLE_UDF_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        if args.len() != 3 || !args[2].is_integer() {
            return plan_err!("{SAMPLE_UDF_NAME}(generation_id, segment_index, stride) takes a key, an index and an integer");
        }
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let stride = match &args.args[2] {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) => n.max(1) as u64,
                _ => return exec_err!("{SAMPLE_UDF_NAME}: the stride must be an integer"),
            },
            ColumnarValue::Array(_) => return exec_err!("{SAMPLE_UDF_NAME}: the stride must be a constant"),
        };
        let gids = args.args[0].to_array(args.number_rows)?;
        let segs = args.args[1].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(in_sample(&gids, &segs, stride)?)))
    }
}

/// The `segscore_sample` function.
pub fn sample_udf() -> ScalarUDF {
    ScalarUDF::from(SampleUdf {
        signature: Signature::any(3, Volatility::Immutable),
    })
}

/// `segscore_shard(generation_id, n)` as a DataFusion function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ShardUdf {
    signature: Signature,
}

impl ScalarUDFImpl for ShardUdf {
    fn name(&self) -> &str {
        UDF_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        if args.len() != 2 || !args[1].is_integer() {
            return plan_err!("{UDF_NAME}(generation_id, n) takes a key and an integer shard count");
        }
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::error::Result<ColumnarValue> {
        let n = match &args.args[1] {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(Some(n)) if n > 0 => n as u64,
                _ => return exec_err!("{UDF_NAME}: the shard count must be a positive integer"),
            },
            ColumnarValue::Array(_) => return exec_err!("{UDF_NAME}: the shard count must be a constant"),
        };
        let ids = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(shards_of(&ids, n)?)))
    }
}

/// The `segscore_shard` function.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(ShardUdf {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// What a pass produced (a partition of a shard, a shard, the whole run), merged upwards
/// by [`Tally::merge`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tally {
    /// Moments of the valid segments.
    pub moments: Moments,
    /// Generations seen (rejected ones included); None when rows were not in key order.
    pub generations: Option<u64>,
    /// Rejected rows and generations, by reason.
    pub rejections: Rejections,
    /// Part files in `segments/`.
    pub files: Vec<String>,
    /// Part files in `rejected/`.
    pub rejected_files: Vec<String>,
    /// Bytes the sort spilled.
    pub spilled_bytes: u64,
    /// Real tokens fed to the model.
    pub model_tokens: u64,
    /// Padded positions fed to the model.
    pub model_positions: u64,
    /// Nanoseconds inside ONNX Runtime.
    pub model_nanos: u64,
    /// The sums of the evaluation made in the pass; None when it could not be (rows out of
    /// key order): the evaluation then runs by SQL after the shards.
    #[serde(default)]
    pub eval: Option<EvalSums>,
    /// Part files in `generations/` (the evaluation in the pass).
    #[serde(default)]
    pub generation_files: Vec<String>,
    /// Part files of the overall sample (in the work folder).
    #[serde(default)]
    pub sample_files: Vec<String>,
    /// The overall sample's rows as the pass made them, in partition order, where it kept them
    /// in memory instead of writing `sample_files` (never in the record).
    #[serde(skip)]
    pub sample: Vec<RecordBatch>,
    /// Whether the pass kept its sample in memory only, without files (the last shard a run
    /// runs writes none: the evaluation follows at once): `--resume` runs such a shard again.
    #[serde(default)]
    pub sample_unsaved: bool,
    /// Whether the pass's plan sorted the rows (DataFusion sorts files whose statistics
    /// overlap, whatever they declare).
    #[serde(default)]
    pub plan_sorted: bool,
    /// On a cluster: rows read and scored by each executor.
    #[serde(default)]
    pub executors: std::collections::BTreeMap<String, u64>,
    /// Nanoseconds from each partition's first row to its files' close, summed.
    #[serde(default)]
    pub receive_nanos: u64,
}

impl Default for Tally {
    /// Nothing yet: zero generations, counted in key order.
    fn default() -> Self {
        Tally {
            moments: Moments::default(),
            generations: Some(0),
            rejections: Rejections::default(),
            files: Vec::new(),
            rejected_files: Vec::new(),
            spilled_bytes: 0,
            model_tokens: 0,
            model_positions: 0,
            model_nanos: 0,
            eval: Some(EvalSums::default()),
            generation_files: Vec::new(),
            sample_files: Vec::new(),
            sample: Vec::new(),
            sample_unsaved: false,
            plan_sorted: false,
            executors: Default::default(),
            receive_nanos: 0,
        }
    }
}

impl Tally {
    /// Adds `other` (merge in a fixed order for the same floating-point sums).
    pub fn merge(&mut self, other: &Tally) {
        self.moments.merge(&other.moments);
        self.generations = self.generations.zip(other.generations).map(|(a, b)| a + b);
        self.rejections.merge(&other.rejections);
        self.files.extend_from_slice(&other.files);
        self.rejected_files.extend_from_slice(&other.rejected_files);
        self.spilled_bytes += other.spilled_bytes;
        self.model_tokens += other.model_tokens;
        self.model_positions += other.model_positions;
        self.model_nanos += other.model_nanos;
        self.eval = match (self.eval.take(), &other.eval) {
            (Some(mut a), Some(b)) => {
                a.merge(b);
                Some(a)
            }
            _ => None,
        };
        self.generation_files.extend_from_slice(&other.generation_files);
        self.sample_files.extend_from_slice(&other.sample_files);
        self.sample.extend_from_slice(&other.sample);
        self.sample_unsaved |= other.sample_unsaved;
        self.plan_sorted |= other.plan_sorted;
        self.receive_nanos += other.receive_nanos;
        for (name, rows) in &other.executors {
            *self.executors.entry(name.clone()).or_default() += rows;
        }
    }
}

/// A committed shard's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardRecord {
    /// The shard.
    pub shard: usize,
    /// What its pass produced.
    #[serde(flatten)]
    pub tally: Tally,
}

/// The file name of shard `k`'s record.
pub fn record_name(k: usize) -> String {
    format!("shard-{k:05}.json")
}

/// The shard whose record file is named `name`, if it is one.
pub fn record_shard(name: &str) -> Option<usize> {
    let k = name.strip_prefix("shard-")?.strip_suffix(".json")?;
    k.parse().ok().filter(|&k| record_name(k) == name)
}

/// The prefix of shard `k`'s part files.
pub fn part_prefix(k: usize) -> String {
    format!("part-s{k:05}-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let ids: ArrayRef = Arc::new(StringArray::from_iter(
            (0..1000).map(|i| Some(format!("gen-{i}"))),
        ));
        let s = shards_of(&ids, 8).unwrap();
        let mut counts = [0usize; 8];
        for v in s.values() {
            counts[*v as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 80), "{counts:?}");
        let null: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, Some("a")]));
        let s = shards_of(&null, 8).unwrap();
        assert_eq!(s.value(0), 0);
        assert_eq!(s.value(1), (0xaf63dc4c8601ec8cu64 % 8) as i64);
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let s = shards_of(&ints, 3).unwrap();
        assert_eq!(s.value(0), (fnv1a(&1i64.to_le_bytes()) % 3) as i64);
    }

    #[test]
    fn record_names_parse_back() {
        assert_eq!(record_name(7), "shard-00007.json");
        assert_eq!(record_shard(&record_name(7)), Some(7));
        assert_eq!(record_shard(&record_name(123_456)), Some(123_456));
        for other in [
            "shard-7.json",
            "shard-00007.json.tmp",
            ".shard-00007.json",
            "shard--0001.json",
        ] {
            assert_eq!(record_shard(other), None, "{other}");
        }
    }

    #[test]
    fn auto_shard_counts() {
        assert_eq!(auto_shards(0), 1);
        assert_eq!(auto_shards(4_000_000), 1);
        assert_eq!(auto_shards(4_000_001), 2);
        assert_eq!(auto_shards(10_000_000), 3);
    }
}
