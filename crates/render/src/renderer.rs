//! The animation loop of `make_animation.py`, with source-only work hoisted out of it.

use candle_core::Tensor;
use sadtalker_checkpoint::Weights;
use sadtalker_gpu::{Device, GpuTensor, context};
use sadtalker_nn::Activations;
use sadtalker_ops::Precision;
use sadtalker_ops::precision;

use crate::config::FaceRenderConfig;
use crate::generator::{GeneratorOutput, OcclusionAwareSpadeGenerator};
use crate::keypoint_detector::KpDetector;
use crate::keypoints::{HeadPose, Keypoints, keypoint_transformation};
use crate::mapping::MappingNet;
use crate::{RenderError, Result};

/// The face renderer: keypoint detector, generator and mapping network.
pub struct FaceRenderer {
    kp_extractor: KpDetector,
    generator: OcclusionAwareSpadeGenerator,
    mapping: MappingNet,
    cfg: FaceRenderConfig,
}

/// Everything about the portrait that stays fixed across frames.
pub struct PreparedSource {
    /// `kp_canonical`: the detector's keypoints of the source image.
    pub kp_canonical: Keypoints,
    /// `kp_source`: the canonical keypoints posed by the source's own coefficients.
    pub kp_source: Keypoints,
    /// The generator's encoded source volume `(1, c, D, H, W)`.
    pub feature_3d: Tensor,
    /// The dense motion network's compressed copy of it.
    pub compressed: Tensor,
    /// The two volumes as `prepare` left them on a GPU, so rendering there uploads neither.
    on_device: Option<(Device, GpuTensor, GpuTensor)>,
}

impl PreparedSource {
    /// The source volume and its compressed copy on `dev`: those `prepare` made there, else
    /// uploaded now.
    fn volumes_on(&self, dev: &Device) -> Result<(GpuTensor, GpuTensor)> {
        if let Some((d, f, c)) = &self.on_device
            && d == dev
        {
            return Ok((f.clone(), c.clone()));
        }
        Ok((
            GpuTensor::from_tensor(dev, &self.feature_3d)?,
            GpuTensor::from_tensor(dev, &self.compressed)?,
        ))
    }
}

/// A rendered batch with its intermediate results.
pub struct RenderDetails {
    /// The driving keypoints.
    pub kp_driving: Keypoints,
    /// The frames and the dense motion.
    pub output: GeneratorOutput,
}

/// The driving input of one output frame.
#[derive(Clone, Debug)]
pub struct DrivingFrame {
    /// `(coeff_nc, 27)`: the coefficient window centred on this frame.
    pub semantics: Tensor,
    /// `--input-yaw` etc.: degrees that replace the predicted pose for this frame.
    pub yaw: Option<f32>,
    /// Pitch override in degrees.
    pub pitch: Option<f32>,
    /// Roll override in degrees.
    pub roll: Option<f32>,
}

impl FaceRenderer {
    /// Builds the networks. `facevid` is the root of `SadTalker_V0.0.2_*.safetensors` (it
    /// reads `kp_extractor.*` and `generator.*`); `mapping` is the root of a
    /// `mapping_00*-model.pth.tar` (it reads `mapping.*`).
    pub fn load(facevid: &Weights, mapping: &Weights, cfg: &FaceRenderConfig) -> Result<Self> {
        Ok(Self {
            kp_extractor: KpDetector::load(&facevid.pp("kp_extractor"), cfg)?,
            generator: OcclusionAwareSpadeGenerator::load(&facevid.pp("generator"), cfg)?,
            mapping: MappingNet::load(&mapping.pp("mapping"), &cfg.mapping)?,
            cfg: cfg.clone(),
        })
    }

    /// The configuration the renderer was built with.
    pub fn config(&self) -> &FaceRenderConfig {
        &self.cfg
    }

    /// Source-only work: keypoints, the posed source keypoints and the encoded volume.
    /// `source_image` is `(1, 3, H, W)` in [0, 1]; `source_semantics` `(coeff_nc, 27)`.
    pub fn prepare(&self, source_image: &Tensor, source_semantics: &Tensor) -> Result<PreparedSource> {
        let (n, c, h, w) = source_image.dims4()?;
        if n != 1 || c != self.cfg.image_channel || h != w {
            return Err(RenderError::Input(format!(
                "the source image must be one square RGB image (1, 3, S, S), got {:?}",
                source_image.dims()
            )));
        }
        // On a GPU the image and the coefficients go up once; the keypoint logits, the head
        // pose and the two volumes come back: nothing in between. The host copies serve the CPU
        // path and the other devices; the GPU keeps its own volumes.
        let (kp_canonical, kp_source, feature_3d, compressed, on_device) = match context::current() {
            Some(dev) => {
                let image = GpuTensor::from_tensor(&dev, source_image)?;
                let (kp, posed, f, c) = self.source_work(&image, source_semantics)?;
                (kp, posed, f.to_tensor()?, c.to_tensor()?, Some((dev, f, c)))
            }
            None => {
                let (kp, posed, f, c) = self.source_work(source_image, source_semantics)?;
                (kp, posed, f, c, None)
            }
        };
        Ok(PreparedSource {
            kp_canonical,
            kp_source,
            feature_3d,
            compressed,
            on_device,
        })
    }

    /// `prepare`'s networks where the image is: the canonical keypoints, the source's posed
    /// keypoints, the source volume and its compressed copy.
    fn source_work<T: Activations>(&self, image: &T, semantics: &Tensor) -> Result<(Keypoints, Keypoints, T, T)> {
        let kp_canonical = self.kp_extractor.forward(image)?;
        let he_source = self.head_pose(&T::lift(image, &semantics.unsqueeze(0)?)?)?;
        let kp_source = keypoint_transformation(&kp_canonical, &he_source)?;
        let (feature_3d, compressed) = self.encode(image)?;
        Ok((kp_canonical, kp_source, feature_3d, compressed))
    }

    /// The mapping network's head pose for `(B, coeff_nc, 27)` windows, always in fp32: it is a
    /// few conv1d layers per frame, and the head pose it outputs moves every pixel — in bf16 it
    /// alone cost the 256 frame 7 dB (41.5 dB against fp32's frame instead of 48.6).
    fn head_pose<T: Activations>(&self, semantics: &T) -> Result<Vec<HeadPose>> {
        precision::with(Precision::Fp32, || self.mapping.forward(semantics))
    }

    /// The source volume and its compressed copy for the dense motion, where the image is.
    fn encode<T: Activations>(&self, source_image: &T) -> Result<(T, T)> {
        let feature_3d = self.generator.encode_source(source_image)?;
        let compressed = self.generator.dense_motion_network.compress_feature(&feature_3d)?;
        Ok((feature_3d, compressed))
    }

    /// Renders a batch of frames: `(B, 3, H, W)` in [0, 1]. On a GPU the mapping network takes
    /// up the coefficient windows and gives back the head pose, the generator takes up the
    /// keypoints and gives back the frames: two transfers each way per batch.
    pub fn render(&self, src: &PreparedSource, frames: &[DrivingFrame]) -> Result<Tensor> {
        let kp_driving = self.driving_keypoints(src, frames)?;
        self.decode(
            src,
            &kp_driving,
            |out| Ok(out.prediction),
            |out| Ok(out.prediction.to_tensor()?),
        )
    }

    /// [`render`](Self::render), also returning the intermediate results (for parity checks;
    /// on a GPU they are read back too).
    pub fn render_detailed(&self, src: &PreparedSource, frames: &[DrivingFrame]) -> Result<RenderDetails> {
        let kp_driving = self.driving_keypoints(src, frames)?;
        let output = self.decode(src, &kp_driving, Ok, |out| out.to_host())?;
        Ok(RenderDetails { kp_driving, output })
    }

    /// The generator's decode on the thread's device, its output taken by `host` or `gpu`.
    fn decode<R>(
        &self,
        src: &PreparedSource,
        kp_driving: &Keypoints,
        host: impl FnOnce(GeneratorOutput) -> Result<R>,
        gpu: impl FnOnce(GeneratorOutput<GpuTensor>) -> Result<R>,
    ) -> Result<R> {
        match context::current() {
            Some(dev) => {
                let (feature_3d, compressed) = src.volumes_on(&dev)?;
                gpu(self
                    .generator
                    .decode(&feature_3d, &compressed, kp_driving, &src.kp_source)?)
            }
            None => host(
                self.generator
                    .decode(&src.feature_3d, &src.compressed, kp_driving, &src.kp_source)?,
            ),
        }
    }

    /// The mapping network's head pose for each frame (with the frame's overrides) applied to
    /// the canonical keypoints.
    fn driving_keypoints(&self, src: &PreparedSource, frames: &[DrivingFrame]) -> Result<Keypoints> {
        if frames.is_empty() {
            return Err(RenderError::Input("no frames to render".into()));
        }
        let sem: Vec<Tensor> = frames.iter().map(|f| f.semantics.clone()).collect();
        let sem = Tensor::stack(&sem, 0)?;
        let mut he = match context::current() {
            Some(dev) => self.head_pose(&GpuTensor::from_tensor(&dev, &sem)?)?,
            None => self.head_pose(&sem)?,
        };
        for (h, f) in he.iter_mut().zip(frames) {
            (h.yaw_in, h.pitch_in, h.roll_in) = (f.yaw, f.pitch, f.roll);
        }
        keypoint_transformation(&src.kp_canonical, &he)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::Device;
    use sadtalker_checkpoint::Recipe;
    use sadtalker_gpu::{Transfers, context};
    use sadtalker_nn::Weights;

    use super::{DrivingFrame, FaceRenderer};
    use crate::config::FaceRenderConfig;
    use crate::test_support::{assert_frames_close, counting_gpu, wave};

    /// What crosses between the host and the GPU for a portrait and a batch, end to end: no
    /// network makes a round trip per layer. The frames match the CPU's.
    #[test]
    fn a_batch_crosses_to_the_gpu_once_each_way() {
        let Some((dev, _counting)) = counting_gpu() else {
            return;
        };
        let w = Weights::from_recipe(Recipe::new(3), &Device::Cpu);
        let renderer = FaceRenderer::load(&w, &w, &FaceRenderConfig::reduced(70)).unwrap();
        let image = wave(&[1, 3, 64, 64], 0.5, 0.5);
        let frame = |shift: f64| DrivingFrame {
            semantics: wave(&[70, 27], 0.3, shift),
            yaw: None,
            pitch: None,
            roll: None,
        };
        let semantics = wave(&[70, 27], 0.3, 0.0);
        let frames = [frame(0.05), frame(-0.05)];
        let cpu = renderer
            .render(&renderer.prepare(&image, &semantics).unwrap(), &frames)
            .unwrap();
        context::with(Some(&dev), || {
            // The first pass uploads the weights; the second moves only the activations.
            let src = renderer.prepare(&image, &semantics).unwrap();
            renderer.render(&src, &frames).unwrap();
            let before = dev.transfers();
            let src = renderer.prepare(&image, &semantics).unwrap();
            let prepared = dev.transfers();
            let gpu = renderer.render(&src, &frames).unwrap();
            let (prepare, render) = (prepared - before, dev.transfers() - prepared);
            // prepare: the image and the coefficients up; the keypoint logits, the head pose
            // and both volumes back.
            assert_eq!(
                prepare,
                Transfers {
                    uploads: 2,
                    downloads: 4
                },
                "prepare"
            );
            // render: the coefficient windows and the keypoint table up, the head pose and the
            // frames back.
            assert_eq!(
                render,
                Transfers {
                    uploads: 2,
                    downloads: 2
                },
                "render"
            );
            assert_frames_close(&gpu, &cpu);
        });
    }
}
