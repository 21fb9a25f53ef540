//! `MappingNet` (`facerender/modules/mapping.py`): 3DMM coefficient windows → head pose
//! bins, translation and keypoint expression deltas.

use candle_core::Tensor;
use sadtalker_nn::{Activations, Conv1d, ConvParams, Weights};

use crate::config::MappingConfig;
use crate::keypoints::HeadPose;
use crate::{RenderError, Result};

/// `MappingNet`.
pub struct MappingNet {
    first: Conv1d,
    encoders: Vec<Conv1d>,
    /// `fc_yaw`, `fc_pitch`, `fc_roll`, `fc_t`, `fc_exp` (`nn.Linear` on the pooled descriptor)
    /// as one 1-wide convolution, their outputs stacked in that order: one layer, and on a GPU
    /// one read-back for all five.
    heads: Conv1d,
    cfg: MappingConfig,
}

impl MappingNet {
    pub fn load(w: &Weights, cfg: &MappingConfig) -> Result<Self> {
        let d = cfg.descriptor_nc;
        let encoders = (0..cfg.layer)
            .map(|i| {
                // nn.Sequential(LeakyReLU, Conv1d): the conv is item 1.
                Conv1d::load(
                    &w.pp(format!("encoder{i}")).pp(1),
                    d,
                    d,
                    [3],
                    ConvParams::default().with_dilation(3),
                    true,
                )
            })
            .collect::<sadtalker_nn::Result<_>>()?;
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (name, out) in Self::heads(cfg) {
            let fc = w.pp(name);
            weights.push(fc.get(&[out, d], "weight")?.unsqueeze(2)?);
            biases.push(fc.get(&[out], "bias")?);
        }
        let heads = Conv1d::from_tensors(
            Tensor::cat(&weights, 0)?,
            Some(Tensor::cat(&biases, 0)?),
            ConvParams::default(),
        )?;
        Ok(Self {
            first: Conv1d::load(&w.pp("first").pp(0), cfg.coeff_nc, d, [7], ConvParams::default(), true)?,
            encoders,
            heads,
            cfg: cfg.clone(),
        })
    }

    /// The `nn.Linear` heads, in the order [`heads`](Self::heads) stacks them, with their widths.
    fn heads(cfg: &MappingConfig) -> [(&'static str, usize); 5] {
        let bins = cfg.num_bins;
        [
            ("fc_yaw", bins),
            ("fc_pitch", bins),
            ("fc_roll", bins),
            ("fc_t", 3),
            ("fc_exp", 3 * cfg.num_kp),
        ]
    }

    /// `input_3dmm`: `(B, coeff_nc, T)` windows (T = 27 in the reference), on the host or a
    /// GPU; only the head pose comes back.
    pub fn forward<T: Activations>(&self, input_3dmm: &T) -> Result<Vec<HeadPose>> {
        let &[b, c, t] = input_3dmm.dims() else {
            return Err(RenderError::Input(format!(
                "the mapping network takes (batch, coefficients, frames) windows, got {:?}",
                input_3dmm.dims()
            )));
        };
        if c != self.cfg.coeff_nc {
            return Err(RenderError::Input(format!(
                "the mapping network takes {}-wide coefficients, got {c} (use the {} mapping file, or convert with `sadtalker coeffs adapt --to {}`)",
                self.cfg.coeff_nc,
                if c == 73 {
                    "73-input mapping_00109"
                } else {
                    "70-input mapping_00229"
                },
                self.cfg.coeff_nc
            )));
        }
        if t < 7 + 6 * self.cfg.layer {
            return Err(RenderError::Input(format!(
                "coefficient window of {t} frames is too short"
            )));
        }
        let mut out = self.first.forward(input_3dmm)?;
        for enc in &self.encoders {
            let len = out.dims()[2];
            let skip = out.narrow(2, 3, len - 6)?;
            out = enc.forward(&out.leaky_relu(0.1)?)?.add(&skip)?;
        }
        // `AdaptiveAvgPool1d(1)`: one pool over the whole time axis, as a (1, T) 2-D pool.
        let (d, len) = (out.dims()[1], out.dims()[2]);
        let pooled = out.reshape(&[b, d, 1, len])?.avg_pool([1, len])?.reshape(&[b, d, 1])?;
        let rows = self.heads.forward(&pooled)?.to_host()?.squeeze(2)?.to_vec2::<f32>()?;
        let widths = Self::heads(&self.cfg).map(|(_, w)| w);
        Ok(rows
            .iter()
            .map(|row| {
                let mut parts = widths.iter().scan(0, |at, &w| {
                    *at += w;
                    Some(row[*at - w..*at].to_vec())
                });
                let mut next = || parts.next().unwrap_or_default();
                let (yaw, pitch, roll, t, exp) = (next(), next(), next(), next(), next());
                HeadPose {
                    yaw,
                    pitch,
                    roll,
                    t: [t[0], t[1], t[2]],
                    exp,
                    yaw_in: None,
                    pitch_in: None,
                    roll_in: None,
                }
            })
            .collect())
    }
}
