//! The score output: what shape of score a model gives, and reading scores out of it.
//!
//! - one score per sequence: `[batch]`, `[batch, 1]` or `[batch, 1, 1]` (a
//!   sequence-classification reward model);
//! - one score per token: `[batch, seq]` or `[batch, seq, 1]` (a process or segment reward
//!   model, a value head), read at a chosen position of each row;
//! - `C` scores per token, `[batch, seq, C]`: class logits (a PRM's two-class head), turned
//!   into the softmax probability of the class `--score-label` names;
//! - `C` scores per sequence, `[batch, C]` with `C` fixed (a sequence classifier exported with
//!   two or more labels), read the same way.

use ort::value::{TensorElementType, ValueType};

use crate::model::signature::ScoreType;

/// What the score output gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One score per sequence.
    Sequence,
    /// One score per token.
    Token,
    /// `classes` logits per token; the score is the softmax probability of `label`.
    TokenClasses {
        /// Classes per token.
        classes: usize,
        /// The class scored.
        label: usize,
    },
    /// `classes` logits per sequence; the score is the softmax probability of `label`.
    SequenceClasses {
        /// Classes per sequence.
        classes: usize,
        /// The class scored.
        label: usize,
    },
}

impl OutputKind {
    /// Whether the model scores every token (a one-pass model, if it is causal).
    pub fn per_token(self) -> bool {
        matches!(self, OutputKind::Token | OutputKind::TokenClasses { .. })
    }

    /// Whether an output of this shape, from a call on `batch` rows of `seq` positions, is
    /// what this kind gives.
    pub fn fits(self, shape: &[i64], batch: usize, seq: usize) -> bool {
        let (b, s) = (batch as i64, seq as i64);
        match (self, shape) {
            (OutputKind::Sequence, [x] | [x, 1] | [x, 1, 1]) => *x == b,
            (OutputKind::Token, [x, y] | [x, y, 1]) => *x == b && *y == s,
            (OutputKind::TokenClasses { classes, .. }, [x, y, c]) => {
                *x == b && *y == s && *c == classes as i64
            }
            (OutputKind::SequenceClasses { classes, .. }, [x, c]) => *x == b && *c == classes as i64,
            _ => false,
        }
    }

    /// The class `--score-label` picked, for an output of classes.
    pub fn label(self) -> Option<usize> {
        match self {
            OutputKind::TokenClasses { label, .. } | OutputKind::SequenceClasses { label, .. } => Some(label),
            _ => None,
        }
    }

    /// The name in summaries.
    pub fn describe(self) -> String {
        match self {
            OutputKind::Sequence => "per sequence".into(),
            OutputKind::Token => "per token".into(),
            OutputKind::TokenClasses { classes, label } => {
                format!("per token, softmax of {classes} classes, class {label}")
            }
            OutputKind::SequenceClasses { classes, label } => {
                format!("per sequence, softmax of {classes} classes, class {label}")
            }
        }
    }
}

/// Whether output `name` of type `dtype` can be the score: its element type (float16, bfloat16,
/// float32 or float64) and what its declared shape says ([`declared_kind`]). The error names
/// the output and says why not.
pub(crate) fn score_output(
    name: &str,
    dtype: &ValueType,
    input_seq: (i64, &str),
    score_label: Option<usize>,
) -> Result<(ScoreType, Option<OutputKind>), String> {
    let ty = match dtype {
        ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float16 => ScoreType::F16,
            TensorElementType::Bfloat16 => ScoreType::BF16,
            TensorElementType::Float32 => ScoreType::F32,
            TensorElementType::Float64 => ScoreType::F64,
            other => {
                return Err(format!(
                    "output `{name}` has element type {other}; a score must be float16, bfloat16, float32 or float64"
                ))
            }
        },
        other => return Err(format!("output `{name}` is {other}, expected a tensor")),
    };
    Ok((ty, declared_kind(name, dtype, input_seq, score_label)?))
}

/// What the declared output type says, before any call: `Ok(Some(kind))` when it is clear,
/// `Ok(None)` when only a call can tell (`[batch, N]` with N unknown), an error naming the
/// output when it cannot be a score. `input_seq` is `input_ids`' sequence dimension (its size,
/// or -1, and its symbol), `score_label` the `--score-label` given.
pub fn declared_kind(
    name: &str,
    dtype: &ValueType,
    input_seq: (i64, &str),
    score_label: Option<usize>,
) -> Result<Option<OutputKind>, String> {
    let ValueType::Tensor {
        shape,
        dimension_symbols,
        ..
    } = dtype
    else {
        return Err(format!("output `{name}` is {dtype}, expected a tensor"));
    };
    let symbol = |i: usize| dimension_symbols.get(i).map(String::as_str).unwrap_or("");
    let same_as_seq = |i: usize| {
        (shape[i] > 1 && shape[i] == input_seq.0) || (!input_seq.1.is_empty() && symbol(i) == input_seq.1)
    };
    let kind = match shape.len() {
        1 => Some(OutputKind::Sequence),
        2 if shape[1] == 1 => Some(OutputKind::Sequence),
        // One position, one value: a score per row whatever the call's length.
        3 if shape[1] == 1 && shape[2] == 1 => Some(OutputKind::Sequence),
        2 if same_as_seq(1) => Some(OutputKind::Token),
        2 if shape[1] == -1 => None,
        2 if shape[1] > 1 => Some(classes_kind(name, shape[1] as usize, score_label, false)?),
        3 if shape[2] == 1 => Some(OutputKind::Token),
        3 if shape[2] > 1 => Some(classes_kind(name, shape[2] as usize, score_label, true)?),
        3 => None,
        _ => {
            return Err(format!(
                "output `{name}` has shape {shape}; a score output is [batch], [batch, 1], [batch, 1, 1], [batch, C], [batch, seq], [batch, seq, 1] or [batch, seq, C]"
            ))
        }
    };
    check_label(name, kind, score_label)?;
    Ok(kind)
}

/// The kind an actual output shape shows, for a call on `batch` rows of `seq` positions. With
/// `--score-label`, `[batch, C]` is `C` classes per sequence where `C` is not `seq`.
pub fn kind_of_shape(
    name: &str,
    shape: &[i64],
    batch: usize,
    seq: usize,
    score_label: Option<usize>,
) -> Result<OutputKind, String> {
    let (b, s) = (batch as i64, seq as i64);
    let kind = match shape {
        [x] | [x, 1] | [x, 1, 1] if *x == b => OutputKind::Sequence,
        [x, y] | [x, y, 1] if *x == b && *y == s => OutputKind::Token,
        [x, c] if *x == b && *c > 1 && score_label.is_some() => {
            classes_kind(name, *c as usize, score_label, false)?
        }
        [x, y, c] if *x == b && *y == s && *c > 1 => classes_kind(name, *c as usize, score_label, true)?,
        other => {
            return Err(format!(
                "output `{name}` has shape {other:?} for a batch of {batch} rows of {seq} positions; expected one score per row or per token"
            ))
        }
    };
    check_label(name, Some(kind), score_label)?;
    Ok(kind)
}

/// `classes` logits per token (`per_token`) or per sequence: the kind `--score-label` picks a
/// class of, or why not.
fn classes_kind(
    name: &str,
    classes: usize,
    score_label: Option<usize>,
    per_token: bool,
) -> Result<OutputKind, String> {
    let (per, shape) = match per_token {
        true => ("token", format!("[batch, seq, {classes}]")),
        false => ("sequence", format!("[batch, {classes}]")),
    };
    match score_label {
        Some(label) if label < classes && per_token => Ok(OutputKind::TokenClasses { classes, label }),
        Some(label) if label < classes => Ok(OutputKind::SequenceClasses { classes, label }),
        Some(label) => Err(format!(
            "--score-label {label}: output `{name}` has {classes} classes per {per} (0 to {})",
            classes - 1
        )),
        None => Err(format!(
            "output `{name}` gives {classes} classes per {per} ({shape}); choose the class to score with --score-label K (the softmax probability of class K)"
        )),
    }
}

fn check_label(name: &str, kind: Option<OutputKind>, score_label: Option<usize>) -> Result<(), String> {
    match (kind, score_label) {
        (Some(OutputKind::Sequence | OutputKind::Token), Some(label)) => Err(format!(
            "--score-label {label} is for an output of classes ([batch, C] or [batch, seq, C]); output `{name}` gives one score per {}",
            if kind == Some(OutputKind::Sequence) { "sequence" } else { "token" }
        )),
        _ => Ok(()),
    }
}

/// Reads scores out of an output of `kind` with the given actual `shape` and `data`: for row
/// `r` and each position in `reads[r]`, the score there (a per-sequence output gives its one
/// score for each read).
pub fn read_scores(kind: OutputKind, shape: &[i64], data: &[f64], reads: &[Vec<usize>]) -> Vec<Vec<f64>> {
    let seq = seq_of(shape);
    reads
        .iter()
        .enumerate()
        .map(|(r, at)| at.iter().map(|&p| score_at(kind, seq, data, r, p)).collect())
        .collect()
}

/// Each row's score at its last token (row `r` has `lengths[r]` tokens; an empty row reads
/// position 0): a per-sequence output's one score per row.
pub fn read_last(kind: OutputKind, shape: &[i64], data: &[f64], lengths: &[usize]) -> Vec<f64> {
    let seq = seq_of(shape);
    lengths
        .iter()
        .enumerate()
        .map(|(r, &n)| score_at(kind, seq, data, r, n.max(1) - 1))
        .collect()
}

/// Positions per row of an output of this shape.
fn seq_of(shape: &[i64]) -> usize {
    shape.get(1).copied().unwrap_or(1).max(1) as usize
}

/// Row `r`'s score at position `p`, of an output with `seq` positions per row.
fn score_at(kind: OutputKind, seq: usize, data: &[f64], r: usize, p: usize) -> f64 {
    match kind {
        OutputKind::Sequence => data[r],
        OutputKind::SequenceClasses { classes, label } => {
            softmax_at(&data[r * classes..(r + 1) * classes], label)
        }
        OutputKind::Token => data[r * seq + p],
        OutputKind::TokenClasses { classes, label } => {
            let start = (r * seq + p) * classes;
            softmax_at(&data[start..start + classes], label)
        }
    }
}

/// The softmax probability of class `k` of `logits`.
pub fn softmax_at(logits: &[f64], k: usize) -> f64 {
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|&l| (l - max).exp()).sum();
    (logits[k] - max).exp() / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_classify_and_scores_are_read_where_asked() {
        assert_eq!(kind_of_shape("s", &[2], 2, 3, None), Ok(OutputKind::Sequence));
        assert_eq!(kind_of_shape("s", &[2, 1], 2, 3, None), Ok(OutputKind::Sequence));
        assert_eq!(kind_of_shape("s", &[2, 3], 2, 3, None), Ok(OutputKind::Token));
        assert_eq!(kind_of_shape("s", &[2, 3, 1], 2, 3, None), Ok(OutputKind::Token));
        assert_eq!(
            kind_of_shape("s", &[2, 1, 1], 2, 3, None),
            Ok(OutputKind::Sequence)
        );
        assert!(OutputKind::Sequence.fits(&[2, 1, 1], 2, 5) && !OutputKind::Sequence.fits(&[2, 1, 2], 2, 5));
        let two = kind_of_shape("s", &[2, 3, 2], 2, 3, Some(1)).unwrap();
        assert_eq!(two, OutputKind::TokenClasses { classes: 2, label: 1 });
        assert!(kind_of_shape("s", &[2, 3, 2], 2, 3, None)
            .unwrap_err()
            .contains("--score-label"));
        assert!(kind_of_shape("s", &[2, 3], 2, 3, Some(1))
            .unwrap_err()
            .contains("--score-label 1"));
        assert!(kind_of_shape("s", &[4], 2, 3, None).is_err());
        // Classes per sequence: [batch, C], with --score-label.
        let seq_two = kind_of_shape("s", &[2, 4], 2, 3, Some(3)).unwrap();
        assert_eq!(seq_two, OutputKind::SequenceClasses { classes: 4, label: 3 });
        assert!(!seq_two.per_token());
        assert!(kind_of_shape("s", &[2, 4], 2, 3, None).is_err());
        assert!(kind_of_shape("s", &[2, 4], 2, 3, Some(4))
            .unwrap_err()
            .contains("4 classes per sequence (0 to 3)"));
        // What fits a kind: a call of one token gives [batch, 1] per token too.
        assert!(OutputKind::Token.fits(&[2, 1], 2, 1));
        assert!(OutputKind::Token.fits(&[2, 3, 1], 2, 3));
        assert!(!OutputKind::Token.fits(&[2, 1], 2, 3));
        assert!(OutputKind::Sequence.fits(&[2, 1], 2, 1) && OutputKind::Sequence.fits(&[2], 2, 7));
        assert!(!OutputKind::Sequence.fits(&[2, 3], 2, 3));
        assert!(OutputKind::SequenceClasses { classes: 2, label: 0 }.fits(&[2, 2], 2, 2));
        assert!(!OutputKind::SequenceClasses { classes: 2, label: 0 }.fits(&[2, 3], 2, 3));
        assert!(OutputKind::TokenClasses { classes: 2, label: 0 }.fits(&[2, 1, 2], 2, 1));
        assert!(!OutputKind::TokenClasses { classes: 2, label: 0 }.fits(&[2, 1, 3], 2, 1));
        let two_seq = OutputKind::SequenceClasses { classes: 2, label: 1 };
        let p = read_last(two_seq, &[2, 2], &[0.0, 0.0, 0.0, 2.0], &[5, 1]);
        assert_eq!(p[0], 0.5);
        assert!((p[1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
        let data = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        assert_eq!(
            read_scores(OutputKind::Token, &[2, 3], &data, &[vec![2, 0], vec![1]]),
            vec![vec![2.0, 0.0], vec![11.0]]
        );
        let logits = [0.0, 1.0, 0.0, 2.0];
        let p = read_scores(two, &[1, 2, 2], &logits, &[vec![1]]);
        assert!((p[0][0] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
        assert_eq!(
            read_last(OutputKind::Token, &[2, 3], &data, &[2, 3]),
            vec![1.0, 12.0]
        );
        assert_eq!(
            read_last(OutputKind::Sequence, &[2, 1], &[4.0, 5.0], &[2, 0]),
            vec![4.0, 5.0]
        );
        assert_eq!(
            read_last(OutputKind::Token, &[2, 3], &data, &[0, 1]),
            vec![0.0, 10.0]
        );
    }
}
