//! The 3DMM reconstruction network: `ReconNetWrapper('resnet50', use_last_fc=False)` of the
//! reference's `face3d/models/networks.py` (Deep3DFaceRecon): a ResNet-50 backbone, global average
//! pooling, and seven 1 × 1 convolutions (`final_layers.0..6`: identity 80, expression 64, texture 80,
//! angles 3, lighting 27, translation xy 2 and z 1) concatenated into the 257-D vector.
//!
//! Weights: `face_3drecon.*` in `SadTalker_V0.0.2_{256,512}.safetensors`, or `net_recon.*` in the
//! legacy `epoch_20.pth` (`{'net_recon': state_dict, ...}`).

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_coeffs::Coeff3dmm;
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, Conv2d, ConvParams, Weights};

use crate::resnet::ResNet50;
use crate::{PreprocessError, Result};

/// Output widths of `final_layers`, in order.
const FINAL_DIMS: [usize; 7] = [80, 64, 80, 3, 27, 2, 1];

/// Where the reconstruction net's tensors live in the checkpoint files it ships in.
pub const PREFIXES: [&str; 2] = ["face_3drecon", "net_recon"];

/// `ReconNetWrapper`.
#[derive(Debug)]
pub struct ReconNet {
    backbone: ResNet50,
    /// `final_layers.0..6` stacked along their outputs into one 2048 → 257 convolution: the
    /// reference concatenates their outputs in this order, and one layer is one read-back on a GPU.
    final_layers: Conv2d,
}

impl ReconNet {
    /// Loads the network from `w`, scoped at the wrapper (holding `backbone.*` and `final_layers.*`).
    pub fn load(w: &Weights) -> Result<Self> {
        // In the module's order: the backbone first.
        let backbone = ResNet50::load(&w.pp("backbone"))?;
        let fl = w.pp("final_layers");
        let final_layers = FINAL_DIMS
            .iter()
            .enumerate()
            .map(|(i, &n)| Ok(Conv2d::load(&fl.pp(i), 2048, n, [1, 1], ConvParams::default(), true)?))
            .collect::<Result<Vec<_>>>()?;
        let final_layers = Conv2d::concat_out(&final_layers.iter().collect::<Vec<_>>())?;
        Ok(Self { backbone, final_layers })
    }

    /// Loads the network from a whole checkpoint file's weights: `face_3drecon.*` (the v0.0.2
    /// safetensors) or `net_recon.*` (legacy `epoch_20.pth`).
    pub fn load_from_checkpoint(root: &Weights) -> Result<Self> {
        let prefix = PREFIXES
            .iter()
            .find(|p| root.contains(&format!("{p}.backbone.conv1.weight")))
            .copied()
            // Neither: load under the official name, so the error names what is missing.
            .unwrap_or(PREFIXES[0]);
        Self::load(&root.pp(prefix))
    }

    /// `forward(x)`: `(N, 3, 224, 224)` RGB in `[0, 1]` → `(N, 257, 1, 1)`, on the device `x` is on.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let f = self.backbone.forward(x)?.layer4;
        // `avgpool` (`AdaptiveAvgPool2d((1, 1))`): one window over the whole map.
        let (h, w) = match *f.dims() {
            [_, _, h, w] => (h, w),
            ref d => {
                return Err(PreprocessError::Internal(format!(
                    "reconstruction net: layer4 is {d:?}"
                )));
            }
        };
        Ok(f.avg_pool([h, w])?.conv(&self.final_layers)?)
    }

    /// The 257-D coefficients of one aligned 224 × 224 face, fed as the reference does
    /// (`uint8 / 255.` in float64, then float32); on the thread's GPU when one is set (the image
    /// goes up, the coefficients come back).
    pub fn coefficients(&self, aligned: &RgbImage, device: &Device) -> Result<Coeff3dmm> {
        let x = image_to_tensor(aligned, device, |v| (f64::from(v) / 255.0) as f32)?;
        let y = match context::current() {
            Some(dev) => self.forward(&GpuTensor::from_tensor(&dev, &x)?)?.to_host()?,
            None => self.forward(&x)?,
        };
        let y = y.flatten_all()?.to_vec1::<f32>()?;
        Coeff3dmm::from_slice(&y).map_err(|e| PreprocessError::Internal(format!("reconstruction net output: {e}")))
    }
}

/// An RGB image as a `(1, 3, H, W)` f32 tensor, each value mapped by `f`.
pub(crate) fn image_to_tensor(img: &RgbImage, device: &Device, f: impl Fn(u8) -> f32) -> Result<Tensor> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mut data = vec![0f32; 3 * w * h];
    for c in 0..3 {
        for (i, o) in data[c * w * h..(c + 1) * w * h].iter_mut().enumerate() {
            *o = f(raw[i * 3 + c]);
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
}
