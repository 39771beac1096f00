//! Token-id list columns: why the model cannot take a row (`code: detail`), model batches cut
//! by length under a row and a padded-position budget, and the padded `[batch, seq]` tensors.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, UInt64Type};

use crate::contract::{problem_text, Reason};
use crate::error::{Error, Result};
use crate::model::onnx::Embedding;
use crate::model::udf::UDF_NAME;

/// The detail of a null token list's problem.
pub(crate) const NULL_LIST: &str = "the token list is null";

/// Splits rows sorted by length, longest first, into consecutive batches of at most
/// `max_rows` rows and at most `max_tokens` padded positions (rows x the batch's first, longest,
/// length). A row longer than `max_tokens` forms a batch of its own.
pub fn plan_batches(
    lengths_desc: &[usize],
    max_rows: usize,
    max_tokens: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lengths_desc.len() {
        let longest = lengths_desc[start].max(1);
        let by_tokens = (max_tokens / longest).max(1);
        let end = (start + max_rows.max(1).min(by_tokens)).min(lengths_desc.len());
        out.push(start..end);
        start = end;
    }
    out
}

/// `range` of rows sorted by length (`lengths_desc`) cut where the length changes: batches of
/// one length each, so that no row is padded (for a model that takes no attention mask).
pub(crate) fn one_length_batches(
    lengths_desc: &[usize],
    range: std::ops::Range<usize>,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = start
            + lengths_desc[start..range.end]
                .iter()
                .take_while(|&&l| l == lengths_desc[start])
                .count();
        out.push(start..end);
        start = end;
    }
    out
}

/// Token ids of some rows, padded with 0 to the longest, and their attention mask; both
/// row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    /// Token ids, padded with 0.
    pub ids: Vec<i64>,
    /// 1 on real tokens, 0 on padding.
    pub mask: Vec<i64>,
    /// Rows.
    pub batch: usize,
    /// Longest row (at least 1).
    pub seq: usize,
    /// Real tokens.
    pub tokens: usize,
    /// Each row's real length.
    pub lengths: Vec<usize>,
}

impl PaddedBatch {
    /// Token sequences padded with 0 to the longest (or to `seq`, a model's fixed sequence
    /// length, when given), with their attention mask.
    pub fn from_sequences(seqs: &[&[i64]], seq: Option<usize>) -> PaddedBatch {
        let batch = seqs.len();
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let seq = seq.unwrap_or(longest).max(longest);
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        for (b, s) in seqs.iter().enumerate() {
            ids[b * seq..b * seq + s.len()].copy_from_slice(s);
            mask[b * seq..b * seq + s.len()].fill(1);
        }
        PaddedBatch {
            ids,
            mask,
            batch,
            seq,
            tokens: seqs.iter().map(|s| s.len()).sum(),
            lengths: seqs.iter().map(|s| s.len()).collect(),
        }
    }

    /// The batch filled to `rows` rows by repeating its own, in order (row i is row i mod
    /// `batch`): for a model whose batch dimension is fixed, or for a one-row batch, which
    /// ONNX Runtime rounds differently. The first `batch` rows of the output are the batch's.
    pub(crate) fn filled_to(&self, rows: usize) -> PaddedBatch {
        let lengths: Vec<usize> = self.lengths.iter().copied().cycle().take(rows).collect();
        PaddedBatch {
            ids: cycle_rows(&self.ids, self.seq, rows),
            mask: cycle_rows(&self.mask, self.seq, rows),
            batch: rows,
            seq: self.seq,
            tokens: lengths.iter().sum(),
            lengths,
        }
    }
}

/// `rows` rows of `width` values, repeating the rows of `v` in order.
pub(crate) fn cycle_rows(v: &[i64], width: usize, rows: usize) -> Vec<i64> {
    v.chunks(width.max(1))
        .cycle()
        .take(rows)
        .flatten()
        .copied()
        .collect()
}

/// What a model can take: token ids below its embedding's vocabulary size (when the graph
/// shows one), sequences no longer than its maximum length (when it has one).
#[derive(Debug, Clone, Default)]
pub struct InputLimits {
    /// The token embedding `input_ids` indexes.
    pub vocab: Option<Embedding>,
    /// The longest sequence, in tokens.
    pub max_length: Option<usize>,
}

/// Why a model with these `limits` cannot take each row of a token-id list column
/// (`code: detail`), or null for a row it takes.
pub fn input_problems(
    input_ids: &dyn Array,
    token_type_ids: Option<&dyn Array>,
    limits: &InputLimits,
) -> Result<datafusion::arrow::array::StringArray> {
    let ids = TokenLists::new(input_ids, "input_ids")?;
    let types = token_type_ids
        .map(|a| TokenLists::new(a, "token_type_ids"))
        .transpose()?;
    let valid = ids.ids_valid(limits);
    Ok((0..ids.len())
        .map(|r| ids.problem(r, types.as_ref(), limits, valid))
        .collect())
}

/// The first id past the model's embedding (i64::MAX when it has none).
fn id_limit(vocab: Option<&Embedding>) -> i64 {
    vocab.map_or(i64::MAX, |e| e.vocab.min(i64::MAX as u64) as i64)
}

/// The detail of a `too_long` problem.
pub(crate) fn too_long_detail(len: usize, max: usize) -> String {
    format!("{len} tokens, more than the model's maximum length {max} (--max-length); segscore never cuts a sequence")
}

/// Builds the padded `[batch, seq]` tensors for `rows` of a list column of token ids.
pub fn padded_batch(input_ids: &dyn Array, rows: &[usize]) -> Result<PaddedBatch> {
    Ok(TokenLists::new(input_ids, "input_ids")?.padded(rows, None))
}

/// A list column of integer ids (list or large list of int32, int64 or uint64).
pub(crate) struct TokenLists<'a> {
    len: usize,
    offsets: Offsets<'a>,
    values: Values<'a>,
    list: &'a dyn Array,
    child_nulls: Option<&'a datafusion::arrow::buffer::NullBuffer>,
}

enum Offsets<'a> {
    Small(&'a [i32]),
    Large(&'a [i64]),
}

enum Values<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
    /// Ids as unsigned 64-bit integers: one past int64's range is named by its value.
    U64(&'a [u64]),
}

impl<'a> TokenLists<'a> {
    pub(crate) fn new(array: &'a dyn Array, what: &str) -> Result<Self> {
        fn parts<O: OffsetSizeTrait>(l: &GenericListArray<O>) -> (&[O], &ArrayRef) {
            (l.value_offsets(), l.values())
        }
        let (offsets, values) = match array.data_type() {
            DataType::List(_) => {
                let (o, v) = parts(array.as_list::<i32>());
                (Offsets::Small(o), v)
            }
            DataType::LargeList(_) => {
                let (o, v) = parts(array.as_list::<i64>());
                (Offsets::Large(o), v)
            }
            other => {
                return Err(Error::Usage(format!(
                    "{UDF_NAME}: {what} must be a list of integers, got {other}"
                )))
            }
        };
        let vals = match values.data_type() {
            DataType::Int32 => Values::I32(values.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Values::I64(values.as_primitive::<Int64Type>().values()),
            DataType::UInt64 => Values::U64(values.as_primitive::<UInt64Type>().values()),
            other => {
                return Err(Error::Usage(format!(
                    "{UDF_NAME}: {what} must be a list of integers, got a list of {other}"
                )))
            }
        };
        Ok(TokenLists {
            len: array.len(),
            offsets,
            values: vals,
            list: array,
            child_nulls: values.nulls().filter(|n| n.null_count() > 0),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn range(&self, row: usize) -> (usize, usize) {
        match self.offsets {
            Offsets::Small(o) => (o[row] as usize, o[row + 1] as usize),
            Offsets::Large(o) => (o[row] as usize, o[row + 1] as usize),
        }
    }

    /// Length of the row's list, None when the row is null.
    pub(crate) fn row_len(&self, row: usize) -> Option<usize> {
        if self.list.is_null(row) {
            return None;
        }
        let (a, b) = self.range(row);
        Some(b - a)
    }

    /// Why the model cannot take the row, as `code: detail`; None when it can: the list is
    /// not null, not empty, holds no null, no negative id and no id past the embedding, and
    /// its token type ids (when given) have its length.
    ///
    /// `ids_valid` is [`TokenLists::ids_valid`]'s answer for the column: when true, the ids
    /// need no second look row by row.
    pub(crate) fn problem(
        &self,
        row: usize,
        types: Option<&TokenLists<'_>>,
        limits: &InputLimits,
        ids_valid: bool,
    ) -> Option<String> {
        let vocab = limits.vocab.as_ref();
        let (a, b) = match self.row_len(row) {
            None => return Some(problem_text(Reason::NullInputIds, NULL_LIST)),
            Some(0) => return Some(problem_text(Reason::EmptyInputIds, "the token list is empty")),
            Some(_) => self.range(row),
        };
        if let Some(max) = limits.max_length.filter(|&m| b - a > m) {
            return Some(problem_text(Reason::TooLong, too_long_detail(b - a, max)));
        }
        if !ids_valid {
            if let Some(problem) = self.id_problem(a, b, vocab) {
                return Some(problem);
            }
        }
        if let Some(t) = types {
            if t.row_len(row) != Some(b - a) {
                let detail = format!(
                    "{} token type ids for {} token ids",
                    t.row_len(row).map_or("null".to_string(), |n| n.to_string()),
                    b - a
                );
                return Some(problem_text(Reason::TokenTypeIdsLengthMismatch, detail));
            }
        }
        None
    }

    /// The rows the model takes ([`TokenLists::problem`] finds nothing), in order.
    pub(crate) fn rows_taken(&self, types: Option<&TokenLists<'_>>, limits: &InputLimits) -> Vec<usize> {
        let valid = self.ids_valid(limits);
        (0..self.len)
            .filter(|&r| self.problem(r, types, limits, valid).is_none())
            .collect()
    }

    /// Whether every id the column's lists cover is non-null, not negative and below the
    /// embedding's size: one branch-free pass over the ids, so that each row's check is its
    /// length alone. False sends every row through the full check.
    pub(crate) fn ids_valid(&self, limits: &InputLimits) -> bool {
        if self.child_nulls.is_some() {
            return false;
        }
        let limit = id_limit(limits.vocab.as_ref()) as u64;
        let (first, last) = match self.offsets {
            Offsets::Small(o) => (o[0] as usize, o[self.len] as usize),
            Offsets::Large(o) => (o[0] as usize, o[self.len] as usize),
        };
        // A negative id, as u64, is past any limit.
        match self.values {
            Values::I32(v) => v[first..last].iter().map(|&x| x as i64 as u64).max(),
            Values::I64(v) => v[first..last].iter().map(|&x| x as u64).max(),
            Values::U64(v) => v[first..last].iter().copied().max(),
        }
        .is_none_or(|max| max < limit)
    }

    /// Why ids `a..b` of the values cannot go to the model: a null, a negative id or one past
    /// the embedding.
    fn id_problem(&self, a: usize, b: usize, vocab: Option<&Embedding>) -> Option<String> {
        if let Some(p) = self.child_nulls.and_then(|n| (a..b).find(|&i| n.is_null(i))) {
            let detail = format!("the token id at position {} is null", p - a);
            return Some(problem_text(Reason::NullTokenId, detail));
        }
        let limit = i128::from(id_limit(vocab));
        let bad = |v: i128| v < 0 || v >= limit;
        let first_bad = |ids: &mut dyn Iterator<Item = i128>| ids.enumerate().find(|(_, v)| bad(*v));
        let found = match self.values {
            Values::I32(v) => first_bad(&mut v[a..b].iter().map(|&x| i128::from(x))),
            Values::I64(v) => first_bad(&mut v[a..b].iter().map(|&x| i128::from(x))),
            Values::U64(v) => first_bad(&mut v[a..b].iter().map(|&x| i128::from(x))),
        };
        if let Some((p, id)) = found {
            let why = match vocab {
                Some(e) if id >= 0 => format!(
                    "is not below the vocabulary size {} of the model's embedding `{}`",
                    e.vocab, e.name
                ),
                _ => "is negative".to_string(),
            };
            let detail = format!("token id {id} at position {p} {why}");
            return Some(problem_text(Reason::TokenIdOutOfRange, detail));
        }
        None
    }

    pub(crate) fn padded(&self, rows: &[usize], fixed_seq: Option<usize>) -> PaddedBatch {
        let batch = rows.len();
        let longest = rows
            .iter()
            .map(|&r| self.row_len(r).unwrap_or(0))
            .max()
            .unwrap_or(0)
            .max(1);
        let seq = fixed_seq.unwrap_or(longest).max(longest);
        let mut lengths = Vec::with_capacity(batch);
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut tokens = 0;
        for (b, &r) in rows.iter().enumerate() {
            let n = self.fill(r, &mut ids[b * seq..(b + 1) * seq]);
            mask[b * seq..b * seq + n].fill(1);
            tokens += n;
            lengths.push(n);
        }
        PaddedBatch {
            ids,
            mask,
            batch,
            seq,
            tokens,
            lengths,
        }
    }

    /// Copies the row's ids into `dst` (which is at least as long) and returns how many.
    fn fill(&self, row: usize, dst: &mut [i64]) -> usize {
        let (a, b) = self.range(row);
        match self.values {
            Values::I32(v) => dst.iter_mut().zip(&v[a..b]).for_each(|(d, &s)| *d = s as i64),
            Values::I64(v) => dst[..b - a].copy_from_slice(&v[a..b]),
            // Checked below the embedding's size before they reach a model.
            Values::U64(v) => dst.iter_mut().zip(&v[a..b]).for_each(|(d, &s)| *d = s as i64),
        }
        b - a
    }
}

/// A token-id list column as the model reads it: lists of int32, int64 or uint64 as they are,
/// lists of another integer type (uint16 ids, int8 token types as Hugging Face `datasets`
/// writes them) cast to int64 items (each of which holds them all); a fixed-size list or a list
/// view as a list of the same items. A uint64 id past int64's range stays as it is, so the
/// check names it by its value (a cast to int64 made it a null).
pub(crate) fn widened_ids(a: &ArrayRef) -> Result<ArrayRef> {
    let item = |t: &DataType| Arc::new(Field::new_list_field(t.clone(), true));
    // The item type [`TokenLists`] reads that holds `t`'s values.
    let read_as = |t: &DataType| match t {
        DataType::Int32 | DataType::Int64 | DataType::UInt64 => t.clone(),
        _ => DataType::Int64,
    };
    let to = match a.data_type() {
        DataType::List(f) if f.data_type().is_integer() && read_as(f.data_type()) != *f.data_type() => {
            DataType::List(item(&DataType::Int64))
        }
        DataType::LargeList(f) if f.data_type().is_integer() && read_as(f.data_type()) != *f.data_type() => {
            DataType::LargeList(item(&DataType::Int64))
        }
        // A fixed-size list (Hugging Face datasets' `Sequence(length=N)`) or a list view as a
        // list.
        DataType::FixedSizeList(f, _) | DataType::ListView(f) | DataType::LargeListView(f)
            if f.data_type().is_integer() =>
        {
            DataType::List(item(&read_as(f.data_type())))
        }
        _ => return Ok(Arc::clone(a)),
    };
    Ok(datafusion::arrow::compute::cast(a, &to)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::ListArray;

    #[test]
    fn batches_respect_rows_and_tokens() {
        let lengths = [50, 40, 40, 10, 10, 10, 10, 1];
        let b = plan_batches(&lengths, 3, 100);
        assert_eq!(b, vec![0..2, 2..4, 4..7, 7..8]);
        // A row longer than the budget runs alone.
        assert_eq!(plan_batches(&[500, 2], 8, 100), vec![0..1, 1..2]);
        assert!(plan_batches(&[], 8, 100).is_empty());
        // Cut again where the length changes, for a model with no attention mask.
        assert_eq!(one_length_batches(&lengths, 2..7), vec![2..3, 3..7]);
        assert_eq!(one_length_batches(&lengths, 0..8), vec![0..1, 1..3, 3..7, 7..8]);
        assert!(one_length_batches(&lengths, 4..4).is_empty());
    }

    #[test]
    fn padding_and_mask() {
        let a = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(5), Some(6), Some(7)]),
            None,
            Some(vec![Some(9)]),
        ]);
        let p = padded_batch(&a, &[2, 0]).unwrap();
        assert_eq!((p.batch, p.seq, p.tokens), (2, 3, 4));
        assert_eq!(p.ids, vec![9, 0, 0, 5, 6, 7]);
        assert_eq!(p.mask, vec![1, 0, 0, 1, 1, 1]);
        // Filled to 5 rows, a fixed batch's: the rows repeat in order.
        let f = p.filled_to(5);
        assert_eq!((f.batch, f.seq, f.tokens), (5, 3, 1 + 3 + 1 + 3 + 1));
        assert_eq!(f.ids, [&p.ids[..], &p.ids[..], &p.ids[..3]].concat());
        assert_eq!(f.mask, [&p.mask[..], &p.mask[..], &p.mask[..3]].concat());
        assert_eq!(f.lengths, vec![1, 3, 1, 3, 1]);
    }

    /// The column-wide id check decides exactly as the row-by-row one, and a rejected column
    /// gets each row's own problem.
    #[test]
    fn column_id_check_agrees_with_rows() {
        let limits = InputLimits {
            vocab: Some(Embedding {
                name: "embedding".into(),
                vocab: 10,
            }),
            max_length: Some(3),
        };
        let rows =
            |lists: Vec<Option<Vec<Option<i32>>>>| ListArray::from_iter_primitive::<Int32Type, _, _>(lists);
        let good = rows(vec![
            Some(vec![Some(0), Some(9)]),
            None,
            Some(vec![]),
            Some(vec![Some(1); 4]),
        ]);
        let ids = TokenLists::new(&good, "input_ids").unwrap();
        assert!(ids.ids_valid(&limits));
        // Null, empty and too long are still found row by row.
        assert_eq!(ids.rows_taken(None, &limits), vec![0]);
        let cases = [
            (
                vec![Some(vec![Some(3)]), Some(vec![Some(10)])],
                "token_id_out_of_range",
            ),
            (
                vec![Some(vec![Some(3)]), Some(vec![Some(-1)])],
                "token_id_out_of_range",
            ),
            (vec![Some(vec![Some(3)]), Some(vec![None])], "null_token_id"),
        ];
        for (lists, code) in cases {
            let bad = rows(lists);
            let ids = TokenLists::new(&bad, "input_ids").unwrap();
            assert!(!ids.ids_valid(&limits));
            assert_eq!(ids.rows_taken(None, &limits), vec![0]);
            let problems = input_problems(&bad, None, &limits).unwrap();
            assert!(problems.is_null(0));
            assert!(problems.value(1).starts_with(code), "{}", problems.value(1));
        }
        // Only the ids the rows cover count: a slice leaves the bad row out.
        let bad = rows(vec![
            Some(vec![Some(3)]),
            Some(vec![Some(99)]),
            Some(vec![Some(4)]),
        ]);
        let sliced = bad.slice(2, 1);
        assert!(TokenLists::new(&sliced, "input_ids").unwrap().ids_valid(&limits));
        let sliced = bad.slice(1, 2);
        assert!(!TokenLists::new(&sliced, "input_ids").unwrap().ids_valid(&limits));
        // Uint64 ids are read as they are: one past int64's range is named by its value.
        let wide = ListArray::from_iter_primitive::<UInt64Type, _, _>(vec![
            Some(vec![Some(3), Some(9)]),
            Some(vec![Some(2), Some(u64::MAX)]),
        ]);
        let widened = widened_ids(&(Arc::new(wide) as ArrayRef)).unwrap();
        let ids = TokenLists::new(widened.as_ref(), "input_ids").unwrap();
        assert!(!ids.ids_valid(&limits));
        assert_eq!(ids.rows_taken(None, &limits), vec![0]);
        let problems = input_problems(widened.as_ref(), None, &limits).unwrap();
        assert_eq!(
            problems.value(1),
            "token_id_out_of_range: token id 18446744073709551615 at position 1 is not below the vocabulary size 10 of the model's embedding `embedding`"
        );
        assert_eq!(ids.padded(&[0], None).ids, vec![3, 9]);
    }
}
