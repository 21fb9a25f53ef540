//! [`Activations`]: the tensors between layers, on the host or on a GPU, so that one network
//! `forward` (written once, like its PyTorch module) runs on either.
//!
//! Why a trait rather than candle's device enum: candle has no wgpu device, and our GPU tensors
//! ([`GpuTensor`]) carry their own kernels. A block generic over `T: Activations` keeps its
//! activations where its input is: on a GPU, nothing crosses to the host between its layers.

use candle_core::Tensor;
use sadtalker_gpu::GpuTensor;
use sadtalker_ops::Resize;

use crate::{BatchNorm, Conv, GroupNorm, InstanceNorm, Param, Result};

/// The operations the networks apply between layers, and the layers themselves, for one kind
/// of tensor. Each mirrors a `torch` call; both kinds compute the same values (the GPU within
/// float rounding, see `sadtalker_gpu`).
pub trait Activations: Sized + Clone {
    /// The dimensions, PyTorch order.
    fn dims(&self) -> &[usize];
    /// `F.relu`.
    fn relu(&self) -> Result<Self>;
    /// `F.leaky_relu(x, negative_slope)`.
    fn leaky_relu(&self, negative_slope: f32) -> Result<Self>;
    /// `torch.sigmoid`.
    fn sigmoid(&self) -> Result<Self>;
    /// `x + other`, same shapes.
    fn add(&self, other: &Self) -> Result<Self>;
    /// `x * mask`, `mask` `(N, 1, ...)` broadcast over the channels of `x` `(N, C, ...)`.
    fn mul_one_channel(&self, mask: &Self) -> Result<Self>;
    /// `x.reshape(shape)` (as many elements).
    fn reshape(&self, shape: &[usize]) -> Result<Self>;
    /// `F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners)` of a 5-D
    /// `x`; an `x` of batch 1 is shared by every grid (`x.repeat(N, 1, 1, 1, 1)` first).
    fn grid_sample(&self, grid: &Self, align_corners: bool) -> Result<Self>;
    /// `F.interpolate(x, size|scale_factor, mode='nearest')`.
    fn interpolate_nearest(&self, resize: &Resize) -> Result<Self>;
    /// `F.avg_pool{N}d(x, kernel)`: stride = kernel, no padding (`N` = 2 or 3).
    fn avg_pool<const N: usize>(&self, kernel: [usize; N]) -> Result<Self>;
    /// `F.max_pool2d(x, kernel, stride, padding)` of a 4-D `x` (padding reads as minus infinity).
    fn max_pool2d(&self, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self>;
    /// `torch.cat(parts, dim=1)`.
    fn cat_channels(parts: &[&Self]) -> Result<Self>;
    /// `layer(x)` for a convolution.
    fn conv<const N: usize>(&self, layer: &Conv<N>) -> Result<Self>;
    /// `norm(x)` for a batch norm in eval mode.
    fn batch_norm(&self, norm: &BatchNorm) -> Result<Self>;
    /// `norm(x) * (1 + γ) + β` (SPADE), γ | β stacked along the channels of `gamma_beta`.
    fn instance_norm_modulated(&self, norm: &InstanceNorm, gamma_beta: &Self) -> Result<Self>;
    /// `x * other`, same shapes.
    fn mul(&self, other: &Self) -> Result<Self>;
    /// `x * s` for a scalar.
    fn scale(&self, s: f32) -> Result<Self>;
    /// `x * s.view(N, C, 1, ...)`: `s` `(N, C)` scales each sample's channels.
    fn scale_channels(&self, s: &Self) -> Result<Self>;
    /// `x + b.view(1, C, 1, ...)`: `b` `(C)` is a bias per channel.
    fn shift_channels(&self, b: &Self) -> Result<Self>;
    /// `x + m`, `m` `(N, 1, ...)` broadcast over the channels of `x` `(N, C, ...)`.
    fn add_one_channel(&self, m: &Self) -> Result<Self>;
    /// `x.narrow(dim, start, len)`, as a tensor of its own.
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self>;
    /// `F.interpolate(x, size|scale_factor, mode='bilinear', align_corners)` of a 4-D `x`.
    fn interpolate_bilinear(&self, resize: &Resize, align_corners: bool) -> Result<Self>;
    /// A host tensor brought to where `like` is (a copy on a GPU, the tensor itself on the host):
    /// for inputs made on the host between layers (style scales, noise).
    fn lift(like: &Self, t: &Tensor) -> Result<Self>;
    /// A fixed parameter where `like` is (on a GPU, uploaded once and kept): see [`Param::on`].
    fn param(like: &Self, p: &Param) -> Result<Self>;
    /// The values on the host (read back from a GPU).
    fn to_host(&self) -> Result<Tensor>;
    /// `norm(x)` for a group norm.
    fn group_norm(&self, norm: &GroupNorm) -> Result<Self>;
    /// `F.pad(x, (left, right, top, bottom))` with zeros, on the last two axes.
    fn pad2d(&self, pad: [usize; 4]) -> Result<Self>;
    /// `(x > t)` as 1.0 / 0.0 values (a NaN gives 0): the mask of `torch.where(x > t, a, 0)`.
    fn greater(&self, t: f32) -> Result<Self>;
    /// RestoreFormer's multi-head attention of `q` over `k` and `v` (all `(b, c, h, w)`): see
    /// `sadtalker_ops::attention`.
    fn attention(q: &Self, k: &Self, v: &Self, heads: usize) -> Result<Self>;
}

/// `v` `(N, C)` or `(C)` viewed as `(N | 1, C, 1, ...)` to broadcast over a rank-`rank` tensor.
fn channel_view(v: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = v.dims().to_vec();
    if shape.len() == 1 {
        shape.insert(0, 1);
    }
    shape.resize(rank.max(2), 1);
    Ok(v.reshape(shape)?)
}

impl Activations for Tensor {
    fn dims(&self) -> &[usize] {
        Tensor::dims(self)
    }
    fn relu(&self) -> Result<Self> {
        Ok(Tensor::relu(self)?)
    }
    fn leaky_relu(&self, negative_slope: f32) -> Result<Self> {
        Ok(sadtalker_ops::leaky_relu(self, negative_slope)?)
    }
    fn sigmoid(&self) -> Result<Self> {
        Ok(sadtalker_ops::sigmoid(self)?)
    }
    fn add(&self, other: &Self) -> Result<Self> {
        Ok((self + other)?)
    }
    fn mul_one_channel(&self, mask: &Self) -> Result<Self> {
        Ok(self.broadcast_mul(mask)?)
    }
    fn reshape(&self, shape: &[usize]) -> Result<Self> {
        Ok(Tensor::reshape(self, shape)?)
    }
    fn grid_sample(&self, grid: &Self, align_corners: bool) -> Result<Self> {
        let n = grid.dim(0)?;
        if self.dim(0)? == 1 && n != 1 {
            let input = self.repeat((n, 1, 1, 1, 1))?;
            return Ok(sadtalker_ops::grid_sample(&input, grid, align_corners)?);
        }
        Ok(sadtalker_ops::grid_sample(self, grid, align_corners)?)
    }
    fn interpolate_nearest(&self, resize: &Resize) -> Result<Self> {
        Ok(sadtalker_ops::interpolate_nearest(self, resize)?)
    }
    fn avg_pool<const N: usize>(&self, kernel: [usize; N]) -> Result<Self> {
        // One pooling entry point per rank on the host; `N` picks it.
        let k: &[usize] = &kernel;
        Ok(match *k {
            [h, w] => sadtalker_ops::avg_pool2d(self, [h, w], [h, w], [0; 2], true)?,
            [d, h, w] => sadtalker_ops::avg_pool3d(self, [d, h, w], [d, h, w], [0; 3], true)?,
            _ => {
                return Err(sadtalker_ops::OpError::Shape {
                    op: "avg_pool",
                    msg: format!("no {N}-D pooling"),
                }
                .into());
            }
        })
    }
    fn max_pool2d(&self, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self> {
        Ok(sadtalker_ops::max_pool2d(self, kernel, stride, padding)?)
    }
    fn cat_channels(parts: &[&Self]) -> Result<Self> {
        Ok(Tensor::cat(parts, 1)?)
    }
    fn conv<const N: usize>(&self, layer: &Conv<N>) -> Result<Self> {
        layer.forward_host(self)
    }
    fn batch_norm(&self, norm: &BatchNorm) -> Result<Self> {
        norm.forward_host(self)
    }
    fn instance_norm_modulated(&self, norm: &InstanceNorm, gamma_beta: &Self) -> Result<Self> {
        norm.forward_modulated_host(self, gamma_beta)
    }
    fn mul(&self, other: &Self) -> Result<Self> {
        Ok((self * other)?)
    }
    fn scale(&self, s: f32) -> Result<Self> {
        Ok((self * f64::from(s))?)
    }
    fn scale_channels(&self, s: &Self) -> Result<Self> {
        Ok(self.broadcast_mul(&channel_view(s, self.rank())?)?)
    }
    fn shift_channels(&self, b: &Self) -> Result<Self> {
        Ok(self.broadcast_add(&channel_view(b, self.rank())?)?)
    }
    fn add_one_channel(&self, m: &Self) -> Result<Self> {
        Ok(self.broadcast_add(m)?)
    }
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        Ok(Tensor::narrow(self, dim, start, len)?)
    }
    fn interpolate_bilinear(&self, resize: &Resize, align_corners: bool) -> Result<Self> {
        Ok(sadtalker_ops::interpolate_bilinear(self, resize, align_corners)?)
    }
    fn lift(_: &Self, t: &Tensor) -> Result<Self> {
        Ok(t.clone())
    }
    fn param(_: &Self, p: &Param) -> Result<Self> {
        Ok(p.value().clone())
    }
    fn to_host(&self) -> Result<Tensor> {
        Ok(self.clone())
    }
    fn group_norm(&self, norm: &GroupNorm) -> Result<Self> {
        Ok(sadtalker_ops::group_norm(
            self,
            norm.num_groups,
            Some(norm.weight.value()),
            Some(norm.bias.value()),
            norm.eps,
        )?)
    }
    fn pad2d(&self, [left, right, top, bottom]: [usize; 4]) -> Result<Self> {
        let r = self.rank();
        if r < 2 {
            return Err(sadtalker_ops::OpError::Shape {
                op: "pad",
                msg: format!("expected at least two axes, got {:?}", self.dims()),
            }
            .into());
        }
        Ok(self
            .pad_with_zeros(r - 1, left, right)?
            .pad_with_zeros(r - 2, top, bottom)?)
    }
    fn greater(&self, t: f32) -> Result<Self> {
        Ok(self.gt(f64::from(t))?.to_dtype(candle_core::DType::F32)?)
    }
    fn attention(q: &Self, k: &Self, v: &Self, heads: usize) -> Result<Self> {
        Ok(sadtalker_ops::attention(q, k, v, heads)?)
    }
}

impl Activations for GpuTensor {
    fn dims(&self) -> &[usize] {
        GpuTensor::dims(self)
    }
    fn relu(&self) -> Result<Self> {
        Ok(sadtalker_gpu::relu(self)?)
    }
    fn leaky_relu(&self, negative_slope: f32) -> Result<Self> {
        Ok(sadtalker_gpu::leaky_relu(self, negative_slope)?)
    }
    fn sigmoid(&self) -> Result<Self> {
        Ok(sadtalker_gpu::sigmoid(self)?)
    }
    fn add(&self, other: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::add(self, other)?)
    }
    fn mul_one_channel(&self, mask: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::mul_one_channel(self, mask)?)
    }
    fn reshape(&self, shape: &[usize]) -> Result<Self> {
        Ok(GpuTensor::reshape(self, shape)?)
    }
    fn grid_sample(&self, grid: &Self, align_corners: bool) -> Result<Self> {
        Ok(sadtalker_gpu::grid_sample(self, grid, align_corners)?)
    }
    fn interpolate_nearest(&self, resize: &Resize) -> Result<Self> {
        Ok(sadtalker_gpu::interpolate_nearest(self, resize)?)
    }
    fn avg_pool<const N: usize>(&self, kernel: [usize; N]) -> Result<Self> {
        Ok(sadtalker_gpu::avg_pool(self, kernel, kernel)?)
    }
    fn max_pool2d(&self, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Self> {
        Ok(sadtalker_gpu::max_pool2d(self, kernel, stride, padding)?)
    }
    fn cat_channels(parts: &[&Self]) -> Result<Self> {
        Ok(sadtalker_gpu::cat_channels(parts)?)
    }
    fn conv<const N: usize>(&self, layer: &Conv<N>) -> Result<Self> {
        layer.forward_device(self)
    }
    fn batch_norm(&self, norm: &BatchNorm) -> Result<Self> {
        norm.forward_device(self)
    }
    fn instance_norm_modulated(&self, norm: &InstanceNorm, gamma_beta: &Self) -> Result<Self> {
        norm.forward_modulated_device(self, gamma_beta)
    }
    fn mul(&self, other: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::mul(self, other)?)
    }
    fn scale(&self, s: f32) -> Result<Self> {
        Ok(sadtalker_gpu::scale(self, s)?)
    }
    fn scale_channels(&self, s: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::scale_channels(self, s)?)
    }
    fn shift_channels(&self, b: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::shift_channels(self, b)?)
    }
    fn add_one_channel(&self, m: &Self) -> Result<Self> {
        Ok(sadtalker_gpu::add_one_channel(self, m)?)
    }
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        Ok(sadtalker_gpu::narrow(self, dim, start, len)?)
    }
    fn interpolate_bilinear(&self, resize: &Resize, align_corners: bool) -> Result<Self> {
        Ok(sadtalker_gpu::interpolate_bilinear(self, resize, align_corners)?)
    }
    fn lift(like: &Self, t: &Tensor) -> Result<Self> {
        Ok(GpuTensor::from_tensor(like.device(), t)?)
    }
    fn param(like: &Self, p: &Param) -> Result<Self> {
        p.on_device(like.device())
    }
    fn to_host(&self) -> Result<Tensor> {
        Ok(self.to_tensor()?)
    }
    fn group_norm(&self, norm: &GroupNorm) -> Result<Self> {
        let (w, b) = (norm.weight.on(self)?, norm.bias.on(self)?);
        Ok(sadtalker_gpu::group_norm(
            self,
            norm.num_groups,
            Some(&w),
            Some(&b),
            norm.eps,
        )?)
    }
    fn pad2d(&self, pad: [usize; 4]) -> Result<Self> {
        Ok(sadtalker_gpu::pad2d(self, pad)?)
    }
    fn greater(&self, t: f32) -> Result<Self> {
        Ok(sadtalker_gpu::greater(self, t)?)
    }
    fn attention(q: &Self, k: &Self, v: &Self, heads: usize) -> Result<Self> {
        Ok(sadtalker_gpu::attention(q, k, v, heads)?)
    }
}
