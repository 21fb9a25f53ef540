//! The Wav2Lip audio encoder both networks start from.
//!
//! `audio2exp_models/networks.py` (`SimpleWrapperV2.audio_encoder`) and
//! `audio2pose_models/audio_encoder.py` (`AudioEncoder.audio_encoder`) each define the same
//! `Conv2d` block (convolution, batch norm, optional residual, ReLU) and stack thirteen of them
//! identically; they differ only in their weights. One port serves both so the stack is written
//! down once.

use candle_core::Tensor;
use sadtalker_nn::{BatchNorm, ConvParams, Weights};

use crate::Result;

/// Height and width of one mel window: 80 mel bins × 16 mel frames (0.2 s of audio).
pub const MEL_BINS: usize = 80;
/// Mel frames per window (`syncnet_mel_step_size` in `generate_batch.py`).
pub const MEL_STEPS: usize = 16;
/// Channels of the encoder's output embedding.
pub const AUDIO_EMB: usize = 512;

/// The reference's `Conv2d` block: `conv_block = Sequential(nn.Conv2d, nn.BatchNorm2d)`, then
/// `out += x` when `residual`, then ReLU when `use_act` (always true in both encoders).
#[derive(Clone, Debug)]
pub struct Conv2d {
    conv: sadtalker_nn::Conv2d,
    /// For an unpadded convolution: the weight as a `(cin·k·k, cout)` matrix and the bias, used
    /// when the kernel covers the whole input (`audio_encoder.11`, 3×3 → 1×1). That convolution is
    /// one matrix product over the batch; run image by image it reloads a 4.5 MiB weight for a
    /// single output position each time, which made it the slowest layer of the encoder.
    whole_input: Option<(Tensor, Tensor)>,
    kernel: usize,
    norm: BatchNorm,
    residual: bool,
    use_act: bool,
}

impl Conv2d {
    /// `Conv2d(cin, cout, kernel_size, stride, padding, residual, use_act)`, weights under
    /// `conv_block.0` and `conv_block.1`.
    #[allow(clippy::too_many_arguments)] // mirrors the Python constructor argument for argument
    pub fn load(
        w: &Weights,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: [usize; 2],
        padding: usize,
        residual: bool,
        use_act: bool,
    ) -> Result<Self> {
        let params = ConvParams {
            stride,
            ..ConvParams::padding(padding)
        };
        let block = w.pp("conv_block");
        let conv = sadtalker_nn::Conv2d::load(&block.pp(0), cin, cout, [kernel, kernel], params, true)?;
        let whole_input = if padding == 0 && stride == [1, 1] && kernel > 1 {
            let matrix = conv.weight()?.reshape((cout, ()))?.t()?.contiguous()?;
            Some((matrix, block.pp(0).get(&[cout], "bias")?))
        } else {
            None
        };
        Ok(Self {
            conv,
            whole_input,
            kernel,
            norm: BatchNorm::load(&block.pp(1), cout, BatchNorm::EPS)?,
            residual,
            use_act,
        })
    }

    /// The block's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let conv = match &self.whole_input {
            Some((matrix, bias)) if h == self.kernel && w == self.kernel => x
                .reshape((n, ()))?
                .matmul(matrix)?
                .broadcast_add(bias)?
                .reshape((n, (), 1, 1))?,
            _ => self.conv.forward(x)?,
        };
        let mut out = self.norm.forward(&conv)?;
        if self.residual {
            out = (out + x)?;
        }
        Ok(if self.use_act { out.relu()? } else { out })
    }
}

/// The thirteen-block `nn.Sequential` named `audio_encoder` in both networks:
/// `(N, 1, 80, 16)` mel windows to `(N, 512, 1, 1)` embeddings.
#[derive(Clone, Debug)]
pub struct Wav2LipAudioEncoder {
    blocks: Vec<Conv2d>,
}

impl Wav2LipAudioEncoder {
    /// Loads blocks `0` to `12` under `w`.
    pub fn load(w: &Weights) -> Result<Self> {
        // (cin, cout, kernel, stride, padding, residual), in the reference's order.
        const LAYERS: [(usize, usize, usize, [usize; 2], usize, bool); 13] = [
            (1, 32, 3, [1, 1], 1, false),
            (32, 32, 3, [1, 1], 1, true),
            (32, 32, 3, [1, 1], 1, true),
            (32, 64, 3, [3, 1], 1, false),
            (64, 64, 3, [1, 1], 1, true),
            (64, 64, 3, [1, 1], 1, true),
            (64, 128, 3, [3, 3], 1, false),
            (128, 128, 3, [1, 1], 1, true),
            (128, 128, 3, [1, 1], 1, true),
            (128, 256, 3, [3, 2], 1, false),
            (256, 256, 3, [1, 1], 1, true),
            (256, 512, 3, [1, 1], 0, false),
            (512, 512, 1, [1, 1], 0, false),
        ];
        let blocks = LAYERS
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, stride, pad, residual))| {
                Conv2d::load(&w.pp(i), cin, cout, k, stride, pad, residual, true)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { blocks })
    }

    /// `(N, 1, 80, 16)` → `(N, 512, 1, 1)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        Ok(h)
    }
}
