use candle_core::Tensor;
use sadtalker_checkpoint::Weights;
use sadtalker_gpu::GpuTensor;
use sadtalker_ops::BatchNormStats;

use crate::on_device::OnDevice;
use crate::{Activations, Param, Result};

/// `torch.nn.BatchNorm1d/2d/3d` (and SadTalker's `SynchronizedBatchNorm2d/3d`, which is
/// the same at inference) in eval mode: `weight`, `bias`, `running_mean`, `running_var`.
#[derive(Clone, Debug)]
pub struct BatchNorm {
    stats: BatchNormStats,
    eps: f64,
    /// The folded per-channel `(alpha, beta)` in a GPU's memory.
    on_device: OnDevice<(GpuTensor, GpuTensor)>,
}

impl BatchNorm {
    /// PyTorch's default `eps`.
    pub const EPS: f64 = 1e-5;

    /// `nn.BatchNormNd(num_features, eps, affine=True)`.
    pub fn load(w: &Weights, num_features: usize, eps: f64) -> Result<Self> {
        Self::load_with(w, num_features, eps, true)
    }

    /// `nn.BatchNormNd(num_features, eps, affine)`.
    pub fn load_with(w: &Weights, num_features: usize, eps: f64, affine: bool) -> Result<Self> {
        let c = [num_features];
        let stats = BatchNormStats {
            running_mean: w.get(&c, "running_mean")?,
            running_var: w.get(&c, "running_var")?,
            weight: if affine { Some(w.get(&c, "weight")?) } else { None },
            bias: if affine { Some(w.get(&c, "bias")?) } else { None },
        };
        Ok(Self {
            stats,
            eps,
            on_device: OnDevice::default(),
        })
    }

    /// The layer's forward pass (channels on axis 1), on the host or the GPU tensor `x` is
    /// (see [`Activations`]).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        x.batch_norm(self)
    }

    /// [`forward`](Self::forward) of a host tensor.
    pub(crate) fn forward_host(&self, x: &Tensor) -> Result<Tensor> {
        Ok(sadtalker_ops::batch_norm(x, &self.stats, self.eps)?)
    }

    /// [`forward`](Self::forward) of a GPU tensor: the host's folded coefficients (uploaded on
    /// the first call on that device) applied by one kernel: the host's values to an ulp.
    pub(crate) fn forward_device(&self, x: &GpuTensor) -> Result<GpuTensor> {
        let dev = x.device();
        let c = self.stats.running_mean.dim(0)?;
        let (alpha, beta) = self.on_device.get(dev, || {
            let (a, b) = self.stats.coefficients(c, self.eps)?;
            Ok((
                GpuTensor::from_slice(dev, &a, &[c])?,
                GpuTensor::from_slice(dev, &b, &[c])?,
            ))
        })?;
        Ok(sadtalker_gpu::channel_affine(x, &alpha, &beta)?)
    }
}

/// `torch.nn.InstanceNorm2d/3d` without running statistics (PyTorch's default
/// `track_running_stats=False`): `weight` and `bias` only when `affine=True`.
#[derive(Clone, Debug)]
pub struct InstanceNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

impl InstanceNorm {
    /// `nn.InstanceNormNd(num_features, eps, affine)`; loads nothing when not affine.
    pub fn load(w: &Weights, num_features: usize, eps: f64, affine: bool) -> Result<Self> {
        let (weight, bias) = if affine {
            (
                Some(w.get(&[num_features], "weight")?),
                Some(w.get(&[num_features], "bias")?),
            )
        } else {
            (None, None)
        };
        Ok(Self { weight, bias, eps })
    }

    /// `self(x) * (1 + γ) + β` with γ and β the two halves of `gamma_beta` `(N, 2C, ...)`, in one
    /// pass (SPADE's modulation), on the host or the GPU tensor `x` is (see [`Activations`]).
    pub fn forward_modulated<T: Activations>(&self, x: &T, gamma_beta: &T) -> Result<T> {
        x.instance_norm_modulated(self, gamma_beta)
    }

    /// [`forward_modulated`](Self::forward_modulated) of host tensors
    /// (`sadtalker_ops::instance_norm_modulate` for a parameter-free layer).
    pub(crate) fn forward_modulated_host(&self, x: &Tensor, gamma_beta: &Tensor) -> Result<Tensor> {
        if self.weight.is_some() || self.bias.is_some() {
            let c = x.dim(1)?;
            let norm = self.forward(x)?;
            let (gamma, beta) = (gamma_beta.narrow(1, 0, c)?, gamma_beta.narrow(1, c, c)?);
            return Ok(((norm * (gamma + 1.0)?)? + beta)?);
        }
        Ok(sadtalker_ops::instance_norm_modulate(x, gamma_beta, self.eps)?)
    }

    /// [`forward_modulated`](Self::forward_modulated) of GPU tensors: one kernel, the affine
    /// parameters (if any) uploaded for the call.
    pub(crate) fn forward_modulated_device(&self, x: &GpuTensor, gamma_beta: &GpuTensor) -> Result<GpuTensor> {
        let up = |t: &Option<Tensor>| t.as_ref().map(|t| GpuTensor::from_tensor(x.device(), t)).transpose();
        let (w, b) = (up(&self.weight)?, up(&self.bias)?);
        Ok(sadtalker_gpu::instance_norm_modulate(
            x,
            w.as_ref(),
            b.as_ref(),
            gamma_beta,
            self.eps,
        )?)
    }

    /// The layer's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(sadtalker_ops::instance_norm(
            x,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )?)
    }
}

/// `nn.GroupNorm(num_groups, num_channels, eps, affine=True)`: each sample's channels in
/// `num_groups` runs, each normalised by its own statistics, then the per-channel `weight` and
/// `bias` (kept as [`Param`]s: uploaded to a GPU once).
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub(crate) weight: Param,
    pub(crate) bias: Param,
    pub(crate) num_groups: usize,
    pub(crate) eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` (`num_channels` each); `num_channels` must split into `num_groups`.
    pub fn load(w: &Weights, num_groups: usize, num_channels: usize, eps: f64) -> Result<Self> {
        if num_groups == 0 || !num_channels.is_multiple_of(num_groups) {
            return Err(sadtalker_ops::OpError::Shape {
                op: "group_norm",
                msg: format!("{num_channels} channels cannot be split into {num_groups} groups"),
            }
            .into());
        }
        Ok(Self {
            weight: Param::new(w.get(&[num_channels], "weight")?),
            bias: Param::new(w.get(&[num_channels], "bias")?),
            num_groups,
            eps,
        })
    }

    /// The layer's forward pass, on the device `x` is on.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        x.group_norm(self)
    }
}
