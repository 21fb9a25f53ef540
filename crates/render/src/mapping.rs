//! `MappingNet` (`facerender/modules/mapping.py`): 3DMM coefficient windows → head pose
//! bins, translation and keypoint expression deltas.

use candle_core::Tensor;
use sadtalker_nn::{Conv1d, ConvParams, Linear, Weights};
use sadtalker_ops::{adaptive_avg_pool, leaky_relu};

use crate::config::MappingConfig;
use crate::keypoints::HeadPose;
use crate::{RenderError, Result};

/// `MappingNet`.
pub struct MappingNet {
    first: Conv1d,
    encoders: Vec<Conv1d>,
    fc_roll: Linear,
    fc_pitch: Linear,
    fc_yaw: Linear,
    fc_t: Linear,
    fc_exp: Linear,
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
        Ok(Self {
            first: Conv1d::load(&w.pp("first").pp(0), cfg.coeff_nc, d, [7], ConvParams::default(), true)?,
            encoders,
            fc_roll: Linear::load(&w.pp("fc_roll"), d, cfg.num_bins, true)?,
            fc_pitch: Linear::load(&w.pp("fc_pitch"), d, cfg.num_bins, true)?,
            fc_yaw: Linear::load(&w.pp("fc_yaw"), d, cfg.num_bins, true)?,
            fc_t: Linear::load(&w.pp("fc_t"), d, 3, true)?,
            fc_exp: Linear::load(&w.pp("fc_exp"), d, 3 * cfg.num_kp, true)?,
            cfg: cfg.clone(),
        })
    }

    /// `input_3dmm`: `(B, coeff_nc, T)` windows (T = 27 in the reference).
    pub fn forward(&self, input_3dmm: &Tensor) -> Result<Vec<HeadPose>> {
        let (_, c, t) = input_3dmm.dims3()?;
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
            let len = out.dim(2)?;
            let skip = out.narrow(2, 3, len - 6)?;
            out = (enc.forward(&leaky_relu(&out, 0.1)?)? + skip)?;
        }
        let out = adaptive_avg_pool(&out, &[1])?.flatten_from(1)?;
        let rows = |l: &Linear| -> Result<Vec<Vec<f32>>> { Ok(l.forward(&out)?.to_vec2::<f32>()?) };
        let (yaw, pitch, roll) = (rows(&self.fc_yaw)?, rows(&self.fc_pitch)?, rows(&self.fc_roll)?);
        let (t, exp) = (rows(&self.fc_t)?, rows(&self.fc_exp)?);
        Ok((0..yaw.len())
            .map(|b| HeadPose {
                yaw: yaw[b].clone(),
                pitch: pitch[b].clone(),
                roll: roll[b].clone(),
                t: [t[b][0], t[b][1], t[b][2]],
                exp: exp[b].clone(),
                yaw_in: None,
                pitch_in: None,
                roll_in: None,
            })
            .collect())
    }
}
