//! The renderer's hyper-parameters: the official `facerender.yaml` / `facerender_still.yaml`
//! values, compiled in (the two files differ only in `mapping_params.coeff_nc`), plus
//! reduced-size variants for fast tests (same code, fewer channels).

/// `model_params` of `facerender.yaml`, the parts inference uses.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceRenderConfig {
    /// `common_params.num_kp`.
    pub num_kp: usize,
    /// `common_params.image_channel`.
    pub image_channel: usize,
    /// `common_params.feature_channel`.
    pub feature_channel: usize,
    /// `kp_detector_params`.
    pub kp: KpDetectorConfig,
    /// `generator_params`.
    pub generator: GeneratorConfig,
    /// `mapping_params`.
    pub mapping: MappingConfig,
    /// Channels of the SPADE decoder (hard-coded in the reference: `ic=256`, `oc=64`,
    /// `label_nc=256`); reduced only in tests.
    pub decoder: DecoderConfig,
}

/// `kp_detector_params`.
#[derive(Clone, Debug, PartialEq)]
pub struct KpDetectorConfig {
    pub temperature: f64,
    pub block_expansion: usize,
    pub max_features: usize,
    pub scale_factor: f64,
    pub num_blocks: usize,
    pub reshape_channel: usize,
    pub reshape_depth: usize,
}

/// `generator_params` (with its `dense_motion_params`).
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    pub block_expansion: usize,
    pub max_features: usize,
    pub num_down_blocks: usize,
    pub reshape_channel: usize,
    pub reshape_depth: usize,
    pub num_resblocks: usize,
    pub dense_motion: DenseMotionConfig,
}

/// `dense_motion_params`.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseMotionConfig {
    pub block_expansion: usize,
    pub max_features: usize,
    pub num_blocks: usize,
    pub reshape_depth: usize,
    pub compress: usize,
}

/// `mapping_params`.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingConfig {
    /// 70 (`facerender.yaml`, crop/resize modes) or 73 (`facerender_still.yaml`, full modes:
    /// the coefficient carries the crop parameters).
    pub coeff_nc: usize,
    pub descriptor_nc: usize,
    pub layer: usize,
    pub num_kp: usize,
    pub num_bins: usize,
}

/// The SPADE decoder's channel counts.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    pub ic: usize,
    pub oc: usize,
    pub label_nc: usize,
}

impl FaceRenderConfig {
    /// `facerender.yaml` (`coeff_nc = 70`) or, with `still_yaml`, `facerender_still.yaml`
    /// (`coeff_nc = 73`), as the reference picks them: the 73-input mapping for the `full`
    /// preprocess modes.
    pub fn official(still_yaml: bool) -> Self {
        Self {
            num_kp: 15,
            image_channel: 3,
            feature_channel: 32,
            kp: KpDetectorConfig {
                temperature: 0.1,
                block_expansion: 32,
                max_features: 1024,
                scale_factor: 0.25,
                num_blocks: 5,
                reshape_channel: 16384,
                reshape_depth: 16,
            },
            generator: GeneratorConfig {
                block_expansion: 64,
                max_features: 512,
                num_down_blocks: 2,
                reshape_channel: 32,
                reshape_depth: 16,
                num_resblocks: 6,
                dense_motion: DenseMotionConfig {
                    block_expansion: 32,
                    max_features: 1024,
                    num_blocks: 5,
                    reshape_depth: 16,
                    compress: 4,
                },
            },
            mapping: MappingConfig {
                coeff_nc: if still_yaml { 73 } else { 70 },
                descriptor_nc: 1024,
                layer: 3,
                num_kp: 15,
                num_bins: 66,
            },
            decoder: DecoderConfig {
                ic: 256,
                oc: 64,
                label_nc: 256,
            },
        }
    }

    /// A reduced-size configuration for tests on 64×64 images: the same structure with
    /// few channels (mirrored by `tools/reference/gen_render_goldens.py`).
    pub fn reduced(coeff_nc: usize) -> Self {
        Self {
            num_kp: 15,
            image_channel: 3,
            feature_channel: 8,
            kp: KpDetectorConfig {
                temperature: 0.1,
                block_expansion: 8,
                max_features: 64,
                scale_factor: 0.25,
                num_blocks: 3,
                reshape_channel: 256,
                reshape_depth: 4,
            },
            generator: GeneratorConfig {
                block_expansion: 8,
                max_features: 64,
                num_down_blocks: 2,
                reshape_channel: 8,
                reshape_depth: 8,
                num_resblocks: 2,
                dense_motion: DenseMotionConfig {
                    block_expansion: 8,
                    max_features: 64,
                    num_blocks: 3,
                    reshape_depth: 8,
                    compress: 2,
                },
            },
            mapping: MappingConfig {
                coeff_nc,
                descriptor_nc: 32,
                layer: 3,
                num_kp: 15,
                num_bins: 66,
            },
            decoder: DecoderConfig {
                ic: 32,
                oc: 8,
                label_nc: 32,
            },
        }
    }
}
