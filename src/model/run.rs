//! Running the model: one padded batch on a session of the pool, its inputs bound by name,
//! its score output checked against the kind the model declared and read where asked.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorRef};

use crate::error::{Error, Result};
use crate::model::output;
use crate::model::session::model_name;
use crate::model::signature::{Feed, IdType, ScoreType};
use crate::model::{PaddedBatch, RewardModel};

/// A score output as it came: its shape and its values.
pub(crate) type RawScores = (Vec<i64>, Vec<f64>);

impl RewardModel {
    /// Runs one padded batch and reads each row's scores at `reads[row]`.
    pub(crate) fn run_reads(
        &self,
        padded: &PaddedBatch,
        token_type_ids: Option<&[i64]>,
        reads: &[Vec<usize>],
    ) -> Result<Vec<Vec<f64>>> {
        let (shape, data) = self.run_checked(padded, token_type_ids)?;
        Ok(output::read_scores(self.output_kind, &shape, &data, reads))
    }

    /// Runs one padded batch; its output's shape (checked against the model's kind) and values.
    pub(crate) fn run_checked(
        &self,
        padded: &PaddedBatch,
        token_type_ids: Option<&[i64]>,
    ) -> Result<RawScores> {
        // A model whose batch dimension is fixed takes exactly that many rows (the batches have
        // no more: see `ModelSignature::fixed_batch`). ONNX Runtime's CPU kernels take another path for a
        // one-row batch (matrix-vector products) and round differently; a copy of the row keeps
        // every prediction independent of how rows were batched. Either way the batch's rows
        // are repeated to fill it, and the output's first rows are theirs.
        let rows = match self.signature.fixed_batch {
            Some(n) => n,
            None if padded.batch == 1 => 2,
            None => padded.batch,
        };
        if rows > padded.batch {
            let tt = token_type_ids.map(|t| super::tokens::cycle_rows(t, padded.seq, rows));
            let (shape, data) = self.run_raw(&padded.filled_to(rows), tt.as_deref())?;
            self.check_shape(&shape, rows, padded.seq)?;
            return Ok((shape, data));
        }
        let (shape, data) = self.run_raw(padded, token_type_ids)?;
        self.check_shape(&shape, padded.batch, padded.seq)?;
        Ok((shape, data))
    }

    fn check_shape(&self, shape: &[i64], batch: usize, seq: usize) -> Result<()> {
        // A shape can fit two kinds (`[batch, 1]` for a call of one token is one score per
        // token or per sequence; `[batch, 2]` for one of two tokens, two classes per sequence
        // or a score per token): the model's kind decides, and the shape only has to fit it.
        if self.output_kind.fits(shape, batch, seq) {
            return Ok(());
        }
        match output::kind_of_shape(&self.output_name, shape, batch, seq, self.output_kind.label()) {
            Ok(kind) => Err(Error::ModelBinding {
                model: model_name(&self.path),
                reason: format!(
                    "output `{}` has shape {shape:?} for a batch of {batch} rows of {seq} positions: {} where the model declares {}",
                    self.output_name,
                    kind.describe(),
                    self.output_kind.describe()
                ),
            }),
            Err(reason) => Err(Error::ModelBinding {
                model: model_name(&self.path),
                reason,
            }),
        }
    }

    /// Runs one padded batch; returns the score output's shape and values.
    pub(crate) fn run_raw(&self, padded: &PaddedBatch, token_type_ids: Option<&[i64]>) -> Result<RawScores> {
        let (batch, seq) = (padded.batch, padded.seq);
        let shape = [batch as i64, seq as i64];
        let zeros = match (token_type_ids, self.signature.wants_token_type_ids()) {
            (None, true) => vec![0i64; batch * seq],
            _ => Vec::new(),
        };
        let positions: Vec<i64> = if self.feeds.iter().any(|(_, f, _)| *f == Feed::PositionIds) {
            (0..batch).flat_map(|_| 0..seq as i64).collect()
        } else {
            Vec::new()
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.feeds.len());
        for (name, feed, ty) in &self.feeds {
            let data: &[i64] = match (feed, token_type_ids) {
                (Feed::InputIds, _) => &padded.ids,
                (Feed::AttentionMask, _) => &padded.mask,
                (Feed::TokenTypeIds, Some(tt)) => tt,
                (Feed::TokenTypeIds, None) => &zeros,
                (Feed::PositionIds, _) => &positions,
            };
            let value: SessionInputValue<'_> = match *ty {
                // A view: ONNX Runtime reads the padded buffers in place, no copy.
                IdType::I64 => TensorRef::from_array_view((shape, data))?.into(),
                IdType::I32 => {
                    let narrowed = data
                        .iter()
                        .map(|&v| i32::try_from(v))
                        .collect::<std::result::Result<Vec<i32>, _>>()
                        .map_err(|_| Error::ModelBinding {
                            model: model_name(&self.path),
                            reason: format!("a token id does not fit the int32 input `{name}`"),
                        })?;
                    Tensor::from_array((shape, narrowed))?.into()
                }
                // An attention mask of another type: its 0s and 1s as that type.
                IdType::F32 => {
                    Tensor::from_array((shape, data.iter().map(|&v| v as f32).collect::<Vec<_>>()))?.into()
                }
                IdType::F16 => {
                    let mask: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v as f32)).collect();
                    Tensor::from_array((shape, mask))?.into()
                }
                IdType::Bool => {
                    Tensor::from_array((shape, data.iter().map(|&v| v != 0).collect::<Vec<_>>()))?.into()
                }
            };
            inputs.push((Cow::Borrowed(name.as_str()), value));
        }
        let (out, nanos) = self.with_session(|session| -> Result<(RawScores, u64)> {
            // Timed once the session is ours: waiting for one is not model time.
            let started = std::time::Instant::now();
            let outputs = session.run(inputs)?;
            let value = &outputs[self.output_name.as_str()];
            let out = match self.output_type {
                ScoreType::F16 => {
                    let (s, d) = value.try_extract_tensor::<half::f16>()?;
                    (s.to_vec(), d.iter().map(|v| v.to_f64()).collect())
                }
                ScoreType::BF16 => {
                    let (s, d) = value.try_extract_tensor::<half::bf16>()?;
                    (s.to_vec(), d.iter().map(|v| v.to_f64()).collect())
                }
                ScoreType::F32 => {
                    let (s, d) = value.try_extract_tensor::<f32>()?;
                    (s.to_vec(), d.iter().map(|&v| v as f64).collect())
                }
                ScoreType::F64 => {
                    let (s, d) = value.try_extract_tensor::<f64>()?;
                    (s.to_vec(), d.to_vec())
                }
            };
            Ok((out, started.elapsed().as_nanos() as u64))
        })?;
        let st = &self.stats;
        st.run_nanos.fetch_add(nanos, Ordering::Relaxed);
        st.rows.fetch_add(batch as u64, Ordering::Relaxed);
        st.calls.fetch_add(1, Ordering::Relaxed);
        st.tokens.fetch_add(padded.tokens as u64, Ordering::Relaxed);
        st.positions.fetch_add((batch * seq) as u64, Ordering::Relaxed);
        Ok(out)
    }

    fn with_session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        let n = self.pool.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Some(Ok(mut s)) = self.pool.get((start + i) % n).map(|s| s.try_lock()) {
                return f(&mut s);
            }
        }
        // Every session built is busy: wait for this call's, else (not built yet) the first.
        let session = self.pool.get(start).unwrap_or_else(|| self.pool.first());
        let mut s = session.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }
}
