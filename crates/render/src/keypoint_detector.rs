//! `KPDetector` (`facerender/modules/keypoint_detector.py`): canonical 3-D keypoints of the
//! source image (no Jacobians: `estimate_jacobian` is off in SadTalker).

use candle_core::Tensor;
use sadtalker_nn::{Activations, Conv3d, ConvParams, Weights};
use sadtalker_ops::motion::coordinate_grid;
use sadtalker_ops::softmax_last_dim;

use crate::Result;
use crate::blocks::{AntiAliasInterpolation2d, KpHourglass};
use crate::config::FaceRenderConfig;
use crate::keypoints::Keypoints;

/// `KPDetector`.
pub struct KpDetector {
    predictor: KpHourglass,
    kp: Conv3d,
    down: AntiAliasInterpolation2d,
    temperature: f64,
}

impl KpDetector {
    pub fn load(w: &Weights, cfg: &FaceRenderConfig) -> Result<Self> {
        let k = &cfg.kp;
        let predictor = KpHourglass::load(
            &w.pp("predictor"),
            k.block_expansion,
            cfg.image_channel,
            k.reshape_channel,
            k.reshape_depth,
            k.num_blocks,
            k.max_features,
        )?;
        let kp = Conv3d::load(
            &w.pp("kp"),
            predictor.out_filters,
            cfg.num_kp,
            [3, 3, 3],
            ConvParams::padding(1),
            true,
        )?;
        Ok(Self {
            predictor,
            kp,
            down: AntiAliasInterpolation2d::load(&w.pp("down"), cfg.image_channel, k.scale_factor)?,
            temperature: k.temperature,
        })
    }

    /// Keypoints of each image of `(B, 3, H, W)` in [0, 1]. On the thread's GPU the image goes
    /// up once and the heatmaps' logits come back: the hourglass runs there.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<Keypoints> {
        let prediction = self.predict(x)?.to_host()?;
        let (b, k, d, h, w) = prediction.dims5()?;
        // `heatmap / temperature`, dividing as PyTorch does (candle's scalar division
        // multiplies by the reciprocal, which rounds differently).
        let t = self.temperature as f32;
        let logits: Vec<f32> = prediction
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v / t)
            .collect();
        let heatmap = softmax_last_dim(&Tensor::from_vec(logits, (b, k, d * h * w), prediction.device())?)?;
        Ok(gaussian2kp(&heatmap.to_vec3::<f32>()?, d, h, w))
    }

    /// `down`, the hourglass and the `kp` head: the keypoints' heatmap logits `(B, K, D, H, W)`.
    fn predict<T: Activations>(&self, x: &T) -> Result<T> {
        let x = self.down.forward(x)?;
        let feature_map = self.predictor.forward(&x)?;
        Ok(self.kp.forward(&feature_map)?)
    }
}

/// `gaussian2kp`: each keypoint is the heatmap's expectation of the coordinate grid.
fn gaussian2kp(heatmap: &[Vec<Vec<f32>>], d: usize, h: usize, w: usize) -> Keypoints {
    let grid = coordinate_grid(d, h, w);
    let value = heatmap
        .iter()
        .map(|per_kp| {
            per_kp
                .iter()
                .map(|hm| {
                    let mut acc = [0f64; 3];
                    for (p, g) in hm.iter().zip(&grid) {
                        for a in 0..3 {
                            acc[a] += (p * g[a]) as f64;
                        }
                    }
                    acc.map(|v| v as f32)
                })
                .collect()
        })
        .collect();
    Keypoints { value }
}
