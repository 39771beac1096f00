//! Loss: residuals, losses and their gradients as plain functions over Arrow arrays, and
//! streaming moments that merge across partitions into the run's regression metrics.

use datafusion::arrow::array::Float64Array;
use serde::{Deserialize, Serialize};

pub use crate::contract::OUTPUT_COLUMNS;

/// The regression loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum Loss {
    /// (p - t)^2, gradient 2 (p - t).
    Squared,
    /// |p - t|, gradient sign(p - t) (0 at 0).
    Absolute,
    /// 0.5 r^2 where |r| <= delta, else delta (|r| - 0.5 delta); gradient r clipped to ±delta.
    Huber {
        /// Where the loss turns from quadratic to linear.
        delta: f64,
    },
}

impl Loss {
    /// The loss's name as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Squared => "squared",
            Loss::Absolute => "absolute",
            Loss::Huber { .. } => "huber",
        }
    }

    /// A description including parameters, e.g. `huber(delta=1)`.
    pub fn describe(&self) -> String {
        match self {
            Loss::Huber { delta } => format!("huber(delta={delta})"),
            other => other.name().to_string(),
        }
    }

    /// Parses `squared|absolute|huber` with the Huber delta.
    pub fn parse(name: &str, huber_delta: f64) -> Result<Self, String> {
        match name {
            "squared" => Ok(Loss::Squared),
            "absolute" => Ok(Loss::Absolute),
            "huber" if huber_delta.is_finite() && huber_delta > 0.0 => Ok(Loss::Huber { delta: huber_delta }),
            "huber" => Err(format!(
                "--huber-delta must be a positive number, got {huber_delta}"
            )),
            other => Err(format!(
                "unknown loss `{other}` (expected squared, absolute or huber)"
            )),
        }
    }

    /// Loss and d loss / d prediction for residual `r = p - t`.
    #[inline]
    pub fn value_and_grad(&self, r: f64) -> (f64, f64) {
        match *self {
            Loss::Squared => (r * r, 2.0 * r),
            Loss::Absolute => (
                r.abs(),
                if r > 0.0 {
                    1.0
                } else if r < 0.0 {
                    -1.0
                } else {
                    0.0
                },
            ),
            Loss::Huber { delta } => {
                if r.abs() <= delta {
                    (0.5 * r * r, r)
                } else {
                    (delta * (r.abs() - 0.5 * delta), delta * r.signum())
                }
            }
        }
    }
}

/// The columns derived from predictions and targets.
#[derive(Debug, Clone)]
pub struct LossColumns {
    /// predicted - target
    pub residual: Float64Array,
    /// residual^2
    pub squared_error: Float64Array,
    /// |residual|
    pub abs_error: Float64Array,
    /// the chosen loss
    pub loss: Float64Array,
    /// d loss / d predicted
    pub loss_grad: Float64Array,
}

/// Computes the loss columns. Both inputs must be null-free and of equal length (the job
/// validates rows before).
pub fn loss_columns(loss: Loss, predicted: &Float64Array, target: &Float64Array) -> LossColumns {
    debug_assert_eq!(predicted.len(), target.len());
    let n = predicted.len();
    let (p, t) = (predicted.values(), target.values());
    let mut residual = Vec::with_capacity(n);
    let mut sq = Vec::with_capacity(n);
    let mut abs = Vec::with_capacity(n);
    let mut l = Vec::with_capacity(n);
    let mut g = Vec::with_capacity(n);
    for i in 0..n {
        let r = p[i] - t[i];
        let (lv, gv) = loss.value_and_grad(r);
        residual.push(r);
        sq.push(r * r);
        abs.push(r.abs());
        l.push(lv);
        g.push(gv);
    }
    LossColumns {
        residual: Float64Array::from(residual),
        squared_error: Float64Array::from(sq),
        abs_error: Float64Array::from(abs),
        loss: Float64Array::from(l),
        loss_grad: Float64Array::from(g),
    }
}

/// Streaming first and second moments of targets, predictions and residuals (Welford, merged
/// with Chan et al.'s formula), enough for every regression metric of the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    /// Rows.
    pub n: u64,
    mean_t: f64,
    mean_p: f64,
    mean_r: f64,
    m2_t: f64,
    m2_p: f64,
    m2_r: f64,
    c_tp: f64,
    sum_sq: f64,
    sum_abs: f64,
    sum_loss: f64,
}

impl Moments {
    /// Adds one row.
    #[inline]
    pub fn push(&mut self, target: f64, predicted: f64, loss: f64) {
        self.n += 1;
        let n = self.n as f64;
        let r = predicted - target;
        let dt = target - self.mean_t;
        self.mean_t += dt / n;
        let dp = predicted - self.mean_p;
        self.mean_p += dp / n;
        let dr = r - self.mean_r;
        self.mean_r += dr / n;
        self.m2_t += dt * (target - self.mean_t);
        self.m2_p += dp * (predicted - self.mean_p);
        self.m2_r += dr * (r - self.mean_r);
        self.c_tp += dt * (predicted - self.mean_p);
        self.sum_sq += r * r;
        self.sum_abs += r.abs();
        self.sum_loss += loss;
    }

    /// Adds every row of a batch.
    pub fn push_arrays(&mut self, target: &Float64Array, predicted: &Float64Array, loss: &Float64Array) {
        for ((t, p), l) in target.values().iter().zip(predicted.values()).zip(loss.values()) {
            self.push(*t, *p, *l);
        }
    }

    /// Merges another set of rows into this one.
    pub fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let f = na * nb / n;
        let dt = o.mean_t - self.mean_t;
        let dp = o.mean_p - self.mean_p;
        let dr = o.mean_r - self.mean_r;
        self.m2_t += o.m2_t + dt * dt * f;
        self.m2_p += o.m2_p + dp * dp * f;
        self.m2_r += o.m2_r + dr * dr * f;
        self.c_tp += o.c_tp + dt * dp * f;
        self.mean_t += dt * nb / n;
        self.mean_p += dp * nb / n;
        self.mean_r += dr * nb / n;
        self.sum_sq += o.sum_sq;
        self.sum_abs += o.sum_abs;
        self.sum_loss += o.sum_loss;
        self.n += o.n;
    }

    /// The regression metrics. Undefined values (no rows; r2 and pearson with constant
    /// targets or predictions) are None.
    pub fn metrics(&self) -> RegressionMetrics {
        let n = self.n as f64;
        let some = |v: f64| {
            if self.n > 0 && v.is_finite() {
                Some(v)
            } else {
                None
            }
        };
        let mse = some(self.sum_sq / n);
        RegressionMetrics {
            mse,
            rmse: mse.map(f64::sqrt),
            mae: some(self.sum_abs / n),
            bias: some(self.mean_r),
            residual_variance: some(self.m2_r / n),
            r2: if self.m2_t > 0.0 {
                some(1.0 - self.sum_sq / self.m2_t)
            } else {
                None
            },
            pearson: if self.m2_t > 0.0 && self.m2_p > 0.0 {
                some((self.c_tp / (self.m2_t * self.m2_p).sqrt()).clamp(-1.0, 1.0))
            } else {
                None
            },
            mean_loss: some(self.sum_loss / n),
        }
    }
}

/// Regression metrics over a set of rows; None where undefined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Mean squared error.
    pub mse: Option<f64>,
    /// Root mean squared error.
    pub rmse: Option<f64>,
    /// Mean absolute error.
    pub mae: Option<f64>,
    /// Mean residual (predicted - target).
    pub bias: Option<f64>,
    /// Population variance of the residuals; mse = bias^2 + residual_variance.
    pub residual_variance: Option<f64>,
    /// 1 - SSE / SST (targets about their mean).
    pub r2: Option<f64>,
    /// Pearson correlation of predictions and targets.
    pub pearson: Option<f64>,
    /// Mean of the chosen loss.
    pub mean_loss: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_loss_example_squared_errors() {
        // DESIGN.md: targets 0.9, 0.1, -0.6; predictions 0.8, 0.5, -0.7.
        let t = Float64Array::from(vec![0.9, 0.1, -0.6]);
        let p = Float64Array::from(vec![0.8, 0.5, -0.7]);
        let c = loss_columns(Loss::Squared, &p, &t);
        let expect = [0.01, 0.16, 0.01];
        for (i, e) in expect.iter().enumerate() {
            assert!((c.squared_error.value(i) - e).abs() < 1e-12);
            assert!((c.loss.value(i) - e).abs() < 1e-12);
            assert!((c.loss_grad.value(i) - 2.0 * c.residual.value(i)).abs() < 1e-15);
        }
    }

    #[test]
    fn huber_and_absolute() {
        let h = Loss::Huber { delta: 1.0 };
        assert_eq!(h.value_and_grad(0.5), (0.125, 0.5));
        assert_eq!(h.value_and_grad(-3.0), (2.5, -1.0));
        assert_eq!(Loss::Absolute.value_and_grad(-2.0), (2.0, -1.0));
        assert_eq!(Loss::Absolute.value_and_grad(0.0), (0.0, 0.0));
        assert!(Loss::parse("huber", 0.0).is_err());
        assert!(Loss::parse("hinge", 1.0).is_err());
    }

    #[test]
    fn merged_moments_equal_one_pass() {
        let t: Vec<f64> = (0..101).map(|i| ((i * 37) % 17) as f64 * 0.1 - 0.5).collect();
        let p: Vec<f64> = (0..101).map(|i| ((i * 11) % 13) as f64 * 0.07 + 0.2).collect();
        let mut all = Moments::default();
        let (mut a, mut b) = (Moments::default(), Moments::default());
        for i in 0..t.len() {
            all.push(t[i], p[i], 0.0);
            if i % 3 == 0 {
                a.push(t[i], p[i], 0.0)
            } else {
                b.push(t[i], p[i], 0.0)
            }
        }
        a.merge(&b);
        let (x, y) = (all.metrics(), a.metrics());
        for (u, v) in [
            (x.mse, y.mse),
            (x.bias, y.bias),
            (x.residual_variance, y.residual_variance),
            (x.r2, y.r2),
            (x.pearson, y.pearson),
        ] {
            assert!((u.unwrap() - v.unwrap()).abs() < 1e-12);
        }
        let m = x;
        assert!((m.mse.unwrap() - (m.bias.unwrap().powi(2) + m.residual_variance.unwrap())).abs() < 1e-12);
    }

    #[test]
    fn undefined_metrics_are_none() {
        let mut m = Moments::default();
        assert_eq!(m.metrics().mse, None);
        m.push(1.0, 2.0, 1.0);
        let r = m.metrics();
        assert_eq!(r.mse, Some(1.0));
        assert_eq!(r.r2, None);
        assert_eq!(r.pearson, None);
    }
}
