use candle_core::Tensor;
use sadtalker_checkpoint::Weights;
use std::sync::Arc;

use sadtalker_gpu::GpuTensor;
use sadtalker_ops::{ConvParams, ConvPath, ConvWeight, PaddingMode};

use crate::on_device::OnDevice;
use crate::{Activations, Result};

/// `torch.nn.Conv1d/2d/3d` (`N` spatial axes): parameters `weight`
/// `(out, in/groups, *kernel)` and optional `bias` `(out)`.
#[derive(Clone, Debug)]
pub struct Conv<const N: usize> {
    /// Kept in the form the kernel reads (the original filters until a fast layout replaces them).
    weight: Arc<ConvWeight>,
    bias: Option<Tensor>,
    params: ConvParams<N>,
    /// What the padding reads (`padding_mode`).
    padding_mode: PaddingMode,
    /// The weight and bias in a GPU's memory (shared by clones, like `weight`).
    on_device: OnDevice<(GpuTensor, Option<GpuTensor>)>,
}

/// `torch.nn.Conv1d`.
pub type Conv1d = Conv<1>;
/// `torch.nn.Conv2d`.
pub type Conv2d = Conv<2>;
/// `torch.nn.Conv3d`.
pub type Conv3d = Conv<3>;

impl<const N: usize> Conv<N> {
    /// `nn.ConvNd(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)`.
    pub fn load(
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; N],
        params: ConvParams<N>,
        bias: bool,
    ) -> Result<Self> {
        let shape = weight_shape(out_channels, in_channels, kernel, params);
        let weight = ConvWeight::from_vec(&shape, w.values(&shape, "weight")?, ConvPath::Auto)?;
        Self::with_bias(w, weight, bias, params)
    }

    /// `torch.nn.utils.spectral_norm(nn.ConvNd(...))` in eval mode: parameters
    /// `weight_orig`, `weight_u`, `weight_v` (and `bias`); the weight applied is
    /// `weight_orig / σ` with `σ = u · (W v)`, `W` the weight as an `out × rest` matrix.
    /// In eval mode PyTorch runs no power iteration, so the stored `u`, `v` decide σ; it is
    /// computed once here, in f64.
    pub fn load_spectral(
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; N],
        params: ConvParams<N>,
        bias: bool,
    ) -> Result<Self> {
        let shape = weight_shape(out_channels, in_channels, kernel, params);
        let rest: usize = shape[1..].iter().product();
        let mat = w.values(&shape, "weight_orig")?;
        let u = w.get(&[out_channels], "weight_u")?.to_vec1::<f32>()?;
        let v = w.get(&[rest], "weight_v")?.to_vec1::<f32>()?;
        let sigma: f64 = mat
            .chunks_exact(rest)
            .zip(&u)
            .map(|(row, &ui)| ui as f64 * row.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>())
            .sum();
        // PyTorch divides by σ as an f32 scalar tensor; do the same, element by element.
        let sigma = sigma as f32;
        let weight = ConvWeight::from_vec(&shape, mat.iter().map(|x| x / sigma).collect(), ConvPath::Auto)?;
        Self::with_bias(w, weight, bias, params)
    }

    /// The layer with `weight` and, when `bias`, the `bias` parameter (one per output channel).
    fn with_bias(w: &Weights, weight: ConvWeight, bias: bool, params: ConvParams<N>) -> Result<Self> {
        let bias = bias.then(|| w.get(&weight.dims()[..1], "bias")).transpose()?;
        Ok(Self::new(weight, bias, params))
    }

    fn new(weight: ConvWeight, bias: Option<Tensor>, params: ConvParams<N>) -> Self {
        Self {
            weight: Arc::new(weight),
            bias,
            params,
            padding_mode: PaddingMode::Zeros,
            on_device: OnDevice::default(),
        }
    }

    /// The layer with `padding_mode='reflect'`: the same as `nn.ReflectionPad2d(padding)` before
    /// the layer without padding. On a GPU the kernel mirrors the input as it reads it, so no
    /// padded copy is made (at 512² that copy alone can exceed a device's largest buffer).
    pub fn with_reflection_padding(mut self) -> Self {
        self.padding_mode = PaddingMode::Reflect;
        self
    }

    /// One layer computing `parts` side by side: their filters (and biases) concatenated along the
    /// output channels, so that convolutions of one input run as one call — one input transform,
    /// wider output blocks. Each output channel is computed exactly as in its own layer. The parts
    /// must share input channels, kernel and parameters, and all or none have a bias.
    pub fn concat_out(parts: &[&Self]) -> Result<Self> {
        let first = parts.first().ok_or_else(|| shape_error("concat_out: no layers"))?;
        let same = |p: &&Self| {
            p.params == first.params
                && p.padding_mode == first.padding_mode
                && p.weight.dims()[1..] == first.weight.dims()[1..]
                && p.bias.is_some() == first.bias.is_some()
        };
        if !parts.iter().all(same) {
            return Err(shape_error(
                "concat_out: layers differ in input channels, kernel, parameters or bias",
            ));
        }
        let weights = parts
            .iter()
            .map(|p| p.weight.to_tensor())
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let weight = Tensor::cat(&weights, 0)?;
        let bias = parts
            .iter()
            .map(|p| p.bias.clone())
            .collect::<Option<Vec<_>>>()
            .map(|b| Tensor::cat(&b, 0))
            .transpose()?;
        let mut layer = Self::from_tensors(weight, bias, first.params)?;
        layer.padding_mode = first.padding_mode;
        Ok(layer)
    }

    /// A layer from given tensors (e.g. a fixed kernel held as a buffer).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, params: ConvParams<N>) -> Result<Self> {
        Ok(Self::new(ConvWeight::new(&weight)?, bias, params))
    }

    /// The layer's forward pass, on the host or the GPU tensor `x` is (see [`Activations`]).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        x.conv(self)
    }

    /// The forward pass of a host tensor: on the GPU of this thread's [`sadtalker_gpu::context`]
    /// when one is set (input uploaded, output read back), else on the CPU kernels.
    pub(crate) fn forward_host(&self, x: &Tensor) -> Result<Tensor> {
        match sadtalker_gpu::context::current() {
            Some(dev) => Ok(self.forward_device(&GpuTensor::from_tensor(&dev, x)?)?.to_tensor()?),
            None => match self.padding_mode {
                PaddingMode::Zeros => Ok(self.weight.forward(x, self.bias.as_ref(), self.params)?),
                PaddingMode::Reflect => {
                    let p: &[usize] = &self.params.padding;
                    let &[top, left] = p else {
                        return Err(shape_error("reflection padding is 2-D only"));
                    };
                    let padded = sadtalker_ops::reflection_pad2d(x, [left, left, top, top])?;
                    let params = ConvParams {
                        padding: [0; N],
                        ..self.params
                    };
                    Ok(self.weight.forward(&padded, self.bias.as_ref(), params)?)
                }
            },
        }
    }

    /// The forward pass of a tensor on a GPU, with the layer's parameters there (uploaded on
    /// the first call on that device, kept for the next).
    pub(crate) fn forward_device(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let dev = x.device();
        let (weight, bias) = self.on_device.get(dev, || {
            let weight = GpuTensor::from_tensor(dev, &self.weight.to_tensor()?)?;
            let bias = self.bias.as_ref().map(|b| GpuTensor::from_tensor(dev, b)).transpose()?;
            Ok((weight, bias))
        })?;
        Ok(sadtalker_gpu::conv_padded(
            x,
            &weight,
            bias.as_ref(),
            self.params,
            self.padding_mode,
        )?)
    }

    /// The weight tensor (a copy: the layer may keep only its fast layout).
    pub fn weight(&self) -> Result<Tensor> {
        Ok(self.weight.to_tensor()?)
    }
}

/// `torch.nn.ConvTranspose1d/2d/3d`: `weight` `(in, out/groups, *kernel)`, optional `bias`.
#[derive(Clone, Debug)]
pub struct ConvTranspose<const N: usize> {
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvParams<N>,
    output_padding: [usize; N],
}

/// `torch.nn.ConvTranspose2d`.
pub type ConvTranspose2d = ConvTranspose<2>;

impl<const N: usize> ConvTranspose<N> {
    /// `nn.ConvTransposeNd(in_channels, out_channels, kernel_size, stride, padding,
    /// output_padding, groups, bias, dilation)`.
    pub fn load(
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; N],
        params: ConvParams<N>,
        output_padding: [usize; N],
        bias: bool,
    ) -> Result<Self> {
        // ConvTranspose stores (in, out / groups, k…); the bias still has `out_channels` entries.
        let lead = [in_channels, out_channels / params.groups.max(1)];
        let (weight, bias) = weight_and_bias(w, lead, &kernel, bias.then_some(out_channels))?;
        Ok(Self {
            weight,
            bias,
            params,
            output_padding,
        })
    }

    /// The layer's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(sadtalker_ops::conv_transpose(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.params,
            self.output_padding,
        )?)
    }
}

/// `(out, in/groups, *kernel)`.
fn weight_shape<const N: usize>(out: usize, input: usize, kernel: [usize; N], params: ConvParams<N>) -> Vec<usize> {
    let mut shape = vec![out, input / params.groups.max(1)];
    shape.extend_from_slice(&kernel);
    shape
}

/// Loads `weight` of shape `lead ++ kernel` and, when given the output channel count, `bias`.
fn weight_and_bias(
    w: &Weights,
    lead: [usize; 2],
    kernel: &[usize],
    bias_len: Option<usize>,
) -> Result<(Tensor, Option<Tensor>)> {
    let mut shape = lead.to_vec();
    shape.extend_from_slice(kernel);
    let weight = w.get(&shape, "weight")?;
    let bias = bias_len.map(|n| w.get(&[n], "bias")).transpose()?;
    Ok((weight, bias))
}

/// A shape error of this crate's own checks.
fn shape_error(msg: &str) -> crate::NnError {
    crate::NnError::Op(sadtalker_ops::OpError::Shape {
        op: "conv",
        msg: msg.to_string(),
    })
}
