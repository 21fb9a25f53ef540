//! torchvision's ResNet-50 (`Bottleneck` with the stride on the 3 × 3 convolution, "ResNet v1.5"),
//! as both the reconstruction network (`face3d/models/networks.py`, a copy of torchvision's) and
//! facexlib's RetinaFace (`torchvision.models.resnet50`) use it. Parameter names are torchvision's:
//! `conv1`, `bn1`, `layer{1..4}.{i}.{conv,bn}{1..3}`, `layer{k}.0.downsample.{0,1}`.

use candle_core::Tensor;
use sadtalker_nn::{Activations, BatchNorm, Conv2d, ConvParams, Weights};

use crate::Result;

/// `Bottleneck(inplanes, planes, stride, downsample)` with `expansion = 4`.
#[derive(Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

impl Bottleneck {
    /// Loads the block under `w` (`layerK.i`).
    pub fn load(w: &Weights, inplanes: usize, planes: usize, stride: usize, downsample: bool) -> Result<Self> {
        let out = planes * 4;
        let downsample = if downsample {
            let d = w.pp("downsample");
            Some((
                Conv2d::load(
                    &d.pp("0"),
                    inplanes,
                    out,
                    [1, 1],
                    ConvParams::default().with_stride(stride),
                    false,
                )?,
                BatchNorm::load(&d.pp("1"), out, BatchNorm::EPS)?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv1: Conv2d::load(&w.pp("conv1"), inplanes, planes, [1, 1], ConvParams::default(), false)?,
            bn1: BatchNorm::load(&w.pp("bn1"), planes, BatchNorm::EPS)?,
            conv2: Conv2d::load(
                &w.pp("conv2"),
                planes,
                planes,
                [3, 3],
                ConvParams::padding(1).with_stride(stride),
                false,
            )?,
            bn2: BatchNorm::load(&w.pp("bn2"), planes, BatchNorm::EPS)?,
            conv3: Conv2d::load(&w.pp("conv3"), planes, out, [1, 1], ConvParams::default(), false)?,
            bn3: BatchNorm::load(&w.pp("bn3"), out, BatchNorm::EPS)?,
            downsample,
        })
    }

    /// The block's forward pass, where `x` is (the host or a GPU).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let out = self.bn2.forward(&self.conv2.forward(&out)?)?.relu()?;
        let out = self.bn3.forward(&self.conv3.forward(&out)?)?;
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?)?,
            None => x.clone(),
        };
        Ok(out.add(&identity)?.relu()?)
    }
}

/// `ResNet(Bottleneck, [3, 4, 6, 3])` without its classifier: the stem and the four stages.
#[derive(Debug)]
pub struct ResNet50 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: [Vec<Bottleneck>; 4],
}

/// The outputs of the last three stages (`layer2` .. `layer4`), where the input was.
pub struct Stages<T = Tensor> {
    /// `layer2` output (stride 8, 512 channels).
    pub layer2: T,
    /// `layer3` output (stride 16, 1024 channels).
    pub layer3: T,
    /// `layer4` output (stride 32, 2048 channels).
    pub layer4: T,
}

impl ResNet50 {
    /// Loads the network under `w` (the module holding `conv1`, `bn1`, `layer1`..`layer4`).
    pub fn load(w: &Weights) -> Result<Self> {
        let blocks = [3usize, 4, 6, 3];
        let mut inplanes = 64;
        let mut layers: [Vec<Bottleneck>; 4] = Default::default();
        for (k, (&n, layer)) in blocks.iter().zip(layers.iter_mut()).enumerate() {
            let planes = 64 << k;
            let stride = if k == 0 { 1 } else { 2 };
            let lw = w.pp(format!("layer{}", k + 1));
            for i in 0..n {
                let (s, ds) = if i == 0 { (stride, true) } else { (1, false) };
                layer.push(Bottleneck::load(&lw.pp(i), inplanes, planes, s, ds)?);
                inplanes = planes * 4;
            }
        }
        Ok(Self {
            conv1: Conv2d::load(
                &w.pp("conv1"),
                3,
                64,
                [7, 7],
                ConvParams::padding(3).with_stride(2),
                false,
            )?,
            bn1: BatchNorm::load(&w.pp("bn1"), 64, BatchNorm::EPS)?,
            layers,
        })
    }

    /// The stem and the four stages; returns the last three stages' outputs (what RetinaFace's
    /// `IntermediateLayerGetter` returns; the reconstruction net uses `layer4`).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<Stages<T>> {
        let x = self.bn1.forward(&self.conv1.forward(x)?)?.relu()?;
        let x = x.max_pool2d([3, 3], [2, 2], [1, 1])?;
        let run = |layer: &[Bottleneck], x: T| -> Result<T> { layer.iter().try_fold(x, |x, block| block.forward(&x)) };
        let layer1 = run(&self.layers[0], x)?;
        let layer2 = run(&self.layers[1], layer1)?;
        let layer3 = run(&self.layers[2], layer2.clone())?;
        let layer4 = run(&self.layers[3], layer3.clone())?;
        Ok(Stages { layer2, layer3, layer4 })
    }
}
