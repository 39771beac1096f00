//! The model's signature: its inputs and outputs as ONNX Runtime reports them, and how each
//! input binds to what segscore feeds (`input_ids`, `attention_mask`, `token_type_ids`,
//! `position_ids`).

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

/// What feeds a model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The token ids list column.
    InputIds,
    /// 1 for real tokens, 0 for padding.
    AttentionMask,
    /// The token type ids column, or zeros.
    TokenTypeIds,
    /// Positions 0..seq of each row (right padding: a row's tokens are at 0..len).
    PositionIds,
}

/// One model input and how it is bound.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// The model's input name.
    pub name: String,
    /// Its type as ONNX Runtime reports it, e.g. `Tensor<i64>(-1, -1)`.
    pub type_desc: String,
    /// How segscore feeds it, or why it cannot.
    pub binding: std::result::Result<(Feed, IdType), String>,
}

/// One model output.
#[derive(Debug, Clone)]
pub struct OutputInfo {
    /// The model's output name.
    pub name: String,
    /// Its type as ONNX Runtime reports it.
    pub type_desc: String,
    /// What it gives as a score (`per sequence`, `per token`, ...), or why it cannot be one.
    pub score: std::result::Result<String, String>,
}

/// Element type of an input: an integer for ids; an attention mask may also be a float or a
/// boolean (1.0 / `true` on real tokens), as some exports declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdType {
    /// int64
    I64,
    /// int32
    I32,
    /// float32 (attention_mask only)
    F32,
    /// float16 (attention_mask only)
    F16,
    /// bool (attention_mask only)
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScoreType {
    F16,
    BF16,
    F32,
    F64,
}

/// The model's inputs and outputs, and how its inputs bind.
#[derive(Debug, Clone)]
pub struct ModelSignature {
    /// The inputs, in the model's order.
    pub inputs: Vec<InputInfo>,
    /// The outputs, in the model's order.
    pub outputs: Vec<OutputInfo>,
    /// The rows every call takes, when the inputs fix the batch dimension (`[1, seq]`: a
    /// model exported without a dynamic batch axis, as `torch.onnx.export` does by default).
    pub fixed_batch: Option<usize>,
}

impl ModelSignature {
    pub(crate) fn of(session: &Session) -> Self {
        let inputs = session
            .inputs()
            .iter()
            .map(|o| InputInfo {
                name: o.name().to_string(),
                type_desc: o.dtype().to_string(),
                binding: bind_input(o.name(), o.dtype()),
            })
            .collect();
        let (seq, symbol) = input_seq(session);
        let outputs = session
            .outputs()
            .iter()
            .map(|o| OutputInfo {
                name: o.name().to_string(),
                type_desc: o.dtype().to_string(),
                score: score_use(o.name(), o.dtype(), (seq, &symbol)),
            })
            .collect();
        ModelSignature {
            inputs,
            outputs,
            fixed_batch: fixed_batch(session),
        }
    }

    /// Whether the model asks for `token_type_ids`.
    pub fn wants_token_type_ids(&self) -> bool {
        self.inputs
            .iter()
            .any(|i| matches!(i.binding, Ok((Feed::TokenTypeIds, _))))
    }
}

fn bind_input(name: &str, dtype: &ValueType) -> std::result::Result<(Feed, IdType), String> {
    let feed = match name {
        "input_ids" => Feed::InputIds,
        "attention_mask" => Feed::AttentionMask,
        "token_type_ids" => Feed::TokenTypeIds,
        "position_ids" => Feed::PositionIds,
        _ => {
            return Err(format!(
                "model input `{name}` ({dtype}) has no column to bind to; segscore feeds input_ids, attention_mask, token_type_ids and position_ids"
            ))
        }
    };
    match dtype {
        ValueType::Tensor { ty, shape, .. } => {
            if shape.len() != 2 {
                return Err(format!(
                    "model input `{name}` has shape {shape}, expected rank 2 [batch, seq]"
                ));
            }
            let mask = feed == Feed::AttentionMask;
            match ty {
                TensorElementType::Int64 => Ok((feed, IdType::I64)),
                TensorElementType::Int32 => Ok((feed, IdType::I32)),
                TensorElementType::Float32 if mask => Ok((feed, IdType::F32)),
                TensorElementType::Float16 if mask => Ok((feed, IdType::F16)),
                TensorElementType::Bool if mask => Ok((feed, IdType::Bool)),
                other if mask => Err(format!(
                    "model input `{name}` has element type {other}, expected int64, int32, float32, float16 or bool"
                )),
                other => Err(format!(
                    "model input `{name}` has element type {other}, expected int64 or int32"
                )),
            }
        }
        other => Err(format!("model input `{name}` is {other}, expected a tensor")),
    }
}

/// The batch size the model's inputs fix, if one does: the first dimension of a 2-d input,
/// where it is a size rather than a symbol.
fn fixed_batch(session: &Session) -> Option<usize> {
    session.inputs().iter().find_map(|i| match i.dtype() {
        ValueType::Tensor { shape, .. } if shape.len() == 2 && shape[0] > 0 => Some(shape[0] as usize),
        _ => None,
    })
}

/// `input_ids`' sequence dimension: its size (-1 when dynamic) and its symbol.
pub(crate) fn input_seq(session: &Session) -> (i64, String) {
    session
        .inputs()
        .iter()
        .find(|i| i.name() == "input_ids")
        .and_then(|i| match i.dtype() {
            ValueType::Tensor {
                shape,
                dimension_symbols,
                ..
            } if shape.len() == 2 => Some((shape[1], dimension_symbols.get(1).cloned().unwrap_or_default())),
            _ => None,
        })
        .unwrap_or((-1, String::new()))
}

/// What an output gives as a score, or why it cannot be one (for `segscore inspect`): a
/// `[batch, C]` or `[batch, seq, C]` output is one, with `--score-label`.
fn score_use(name: &str, dtype: &ValueType, input_seq: (i64, &str)) -> std::result::Result<String, String> {
    use crate::model::output::{score_output, OutputKind};
    match score_output(name, dtype, input_seq, None) {
        Ok((_, Some(kind))) => Ok(kind.describe()),
        Ok((_, None)) => Ok("per sequence or per token: the first call tells".into()),
        Err(why) => match score_output(name, dtype, input_seq, Some(0)) {
            Ok((_, Some(OutputKind::TokenClasses { classes, .. }))) => Ok(format!(
                "per token, {classes} classes: --score-label K scores class K"
            )),
            Ok((_, Some(OutputKind::SequenceClasses { classes, .. }))) => Ok(format!(
                "per sequence, {classes} classes: --score-label K scores class K"
            )),
            _ => Err(why),
        },
    }
}
