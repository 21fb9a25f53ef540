//! gfpgan's `utils.py`: `GFPGANer` as SadTalker's `face_enhancer.py` builds and calls it, frame by frame:
//! `GFPGANer(model_path='GFPGANv1.4.pth', upscale=2, arch='clean', channel_multiplier=2, bg_upsampler=None)`
//! (`--enhancer gfpgan`) or `GFPGANer(model_path='RestoreFormer.pth', upscale=2, arch='RestoreFormer')`
//! (`--enhancer RestoreFormer`), and `enhance(img, has_aligned=False, only_center_face=False,
//! paste_back=True)` (the background upsampler is RealESRGAN only on CUDA in the reference; on CPU, as
//! here, it is `None`).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_checkpoint::Weights;
use sadtalker_nn::Activations;
use sadtalker_preprocess::detect::{CONF_THRESHOLD, Detection, RetinaFace};

use crate::cv::Affine;
use crate::face_restoration_helper::{FaceRestoreHelper, PasteFace};
use crate::gfpganv1_clean_arch::{GFPGANv1Clean, GfpganConfig};
use crate::noise::GaussianNoise;
use crate::parsenet::{ParseNet, ParseNetConfig};
use crate::realesrgan::RealESRGANer;
use crate::restoreformer_arch::{RestoreFormer, RestoreFormerConfig};
use crate::{EnhanceError, Result};

/// Which face restorer GFPGANer runs (its `arch`): SadTalker's `--enhancer gfpgan` or `RestoreFormer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnhancerArch {
    /// GFPGAN v1.4 (`arch='clean'`), `GFPGANv1.4.pth`.
    Gfpgan,
    /// RestoreFormer (`arch='RestoreFormer'`), `RestoreFormer.pth`.
    RestoreFormer,
}

impl EnhancerArch {
    /// The arch for a reference `--enhancer` value (`gfpgan`, `RestoreFormer`; case-insensitive).
    pub fn from_option(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "gfpgan" => Some(Self::Gfpgan),
            "restoreformer" => Some(Self::RestoreFormer),
            _ => None,
        }
    }

    /// The restorer's weights file, as the model store names it.
    pub fn restorer_file(self) -> &'static str {
        match self {
            Self::Gfpgan => "GFPGANv1.4.pth",
            Self::RestoreFormer => "RestoreFormer.pth",
        }
    }

    /// The three files (restorer, parser, detector) in [`EnhancerFiles`] order.
    pub fn file_names(self) -> [&'static str; 3] {
        [self.restorer_file(), EnhancerFiles::NAMES[1], EnhancerFiles::NAMES[2]]
    }

    /// The model store feature that installs its files (`sadtalker models fetch --for FEATURE`).
    pub fn feature(self) -> &'static str {
        match self {
            Self::Gfpgan => "enhancer",
            Self::RestoreFormer => "restoreformer",
        }
    }

    /// A readable name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Gfpgan => "GFPGAN v1.4",
            Self::RestoreFormer => "RestoreFormer",
        }
    }
}

/// The face restorer inside GFPGANer (the reference keeps either in `GFPGANer.gfpgan`).
#[derive(Debug)]
pub enum Restorer {
    /// `GFPGANv1Clean`.
    Gfpgan(Box<GFPGANv1Clean>),
    /// `RestoreFormer`.
    RestoreFormer(Box<RestoreFormer>),
}

impl Restorer {
    /// `self.gfpgan(face, return_rgb=False, weight=0.5)[0]` on a normalised `(1, 3, 512, 512)` face;
    /// GFPGAN draws its StyleGAN noise from `noise`, RestoreFormer uses none. On the thread's GPU
    /// (`sadtalker_gpu::context`) either keeps its activations there, from the face up to the
    /// restored face.
    pub fn forward(&self, x: &Tensor, noise: &mut dyn crate::NoiseSource) -> Result<Tensor> {
        match sadtalker_gpu::context::current() {
            Some(dev) => {
                let x = sadtalker_gpu::GpuTensor::from_tensor(&dev, x).map_err(sadtalker_nn::NnError::from)?;
                let y = match self {
                    Self::Gfpgan(g) => g.forward(&x, noise)?,
                    Self::RestoreFormer(r) => r.forward(&x)?,
                };
                Ok(y.to_host()?)
            }
            None => match self {
                Self::Gfpgan(g) => g.forward(x, noise),
                Self::RestoreFormer(r) => r.forward(x),
            },
        }
    }

    /// Which one it is.
    pub fn arch(&self) -> EnhancerArch {
        match self {
            Self::Gfpgan(_) => EnhancerArch::Gfpgan,
            Self::RestoreFormer(_) => EnhancerArch::RestoreFormer,
        }
    }
}

/// The model files the enhancer needs (the store's `enhancer` or `restoreformer` feature).
#[derive(Clone, Debug)]
pub struct EnhancerFiles {
    /// The restorer's weights: `GFPGANv1.4.pth`, or `RestoreFormer.pth` for [`EnhancerArch::RestoreFormer`]
    /// (the field keeps the reference's name, `GFPGANer.gfpgan`, which holds either network).
    pub gfpgan: PathBuf,
    /// `parsing_parsenet.pth`.
    pub parsenet: PathBuf,
    /// `detection_Resnet50_Final.pth`.
    pub detector: PathBuf,
}

impl EnhancerFiles {
    /// The file names, as the model store knows them.
    pub const NAMES: [&'static str; 3] = ["GFPGANv1.4.pth", "parsing_parsenet.pth", "detection_Resnet50_Final.pth"];
}

/// One enhanced frame.
#[derive(Clone, Debug)]
pub struct EnhancedFrame {
    /// The frame at twice the size, with the faces restored.
    pub image: RgbImage,
    /// Faces the detector found (above its threshold).
    pub faces_detected: usize,
    /// Faces restored and pasted (detections with eyes ≥ 5 px apart and a usable alignment).
    pub faces_restored: usize,
    /// The alignment of each restored face (the crop's affine matrix), in order.
    pub affines: Vec<Affine>,
}

/// GFPGANer's input: `img2tensor(face / 255.)` normalised to `[-1, 1]`, `(1, 3, s, s)`. The division is in
/// double, then the value is cast to `f32`, as numpy and basicsr do.
pub fn face_to_tensor(face: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (face.width() as usize, face.height() as usize);
    let raw = face.as_raw();
    let mut data = vec![0f32; 3 * w * h];
    for c in 0..3 {
        for (i, o) in data[c * w * h..(c + 1) * w * h].iter_mut().enumerate() {
            let v = (f64::from(raw[i * 3 + c]) / 255.0) as f32;
            *o = (v - 0.5) / 0.5;
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
}

/// The parser's input (facexlib's `paste_faces_to_input_image`): `face.astype('float32') / 255.` (a float
/// division) normalised to `[-1, 1]`, `(1, 3, s, s)`.
pub fn face_to_parse_tensor(face: &RgbImage, device: &Device) -> Result<Tensor> {
    let (w, h) = (face.width() as usize, face.height() as usize);
    let raw = face.as_raw();
    let mut data = vec![0f32; 3 * w * h];
    for c in 0..3 {
        for (i, o) in data[c * w * h..(c + 1) * w * h].iter_mut().enumerate() {
            let v = f32::from(raw[i * 3 + c]) / 255.0;
            *o = (v - 0.5) / 0.5;
        }
    }
    Ok(Tensor::from_vec(data, (1, 3, h, w), device)?)
}

/// basicsr's `tensor2img(output, min_max=(-1, 1))` for one `(1, 3, s, s)` image: clamp, to `[0, 1]`,
/// `× 255`, rounded half to even, 8 bits.
pub fn tensor_to_face(t: &Tensor) -> Result<RgbImage> {
    let (_, c, h, w) = t.dims4()?;
    if c != 3 {
        return Err(EnhanceError::BadFrame(format!(
            "the restorer returned {c} channels, expected 3"
        )));
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    let plane = h * w;
    let mut out = vec![0u8; plane * 3];
    for ch in 0..3 {
        for p in 0..plane {
            let x = v[ch * plane + p].clamp(-1.0, 1.0);
            let x = (x + 1.0) / 2.0;
            out[p * 3 + ch] = (x * 255.0).round_ties_even() as u8;
        }
    }
    RgbImage::from_raw(w as u32, h as u32, out)
        .ok_or_else(|| EnhanceError::BadFrame("the restored face has an inconsistent size".into()))
}

/// `GFPGANer.enhance` with its parts passed in: the detections, the restorer (aligned face → restored
/// face) and the parser (restored face → class per pixel). [`GFPGANer::enhance`] calls it with the
/// networks; tests call it with stand-ins.
pub fn enhance_with(
    helper: &FaceRestoreHelper,
    image: &RgbImage,
    detections: &[Detection],
    restore: &mut dyn FnMut(usize, &RgbImage) -> Result<RgbImage>,
    parse: &mut dyn FnMut(&RgbImage) -> Result<Vec<u8>>,
) -> Result<EnhancedFrame> {
    enhance_with_background(helper, image, detections, None, restore, parse)
}

/// [`enhance_with`] with the background upsampler's frame (`bg_img = bg_upsampler.enhance(img)`) under
/// the faces; `None`: the frame Lanczos-upscaled, as without a `bg_upsampler`.
pub fn enhance_with_background(
    helper: &FaceRestoreHelper,
    image: &RgbImage,
    detections: &[Detection],
    background: Option<&RgbImage>,
    restore: &mut dyn FnMut(usize, &RgbImage) -> Result<RgbImage>,
    parse: &mut dyn FnMut(&RgbImage) -> Result<Vec<u8>>,
) -> Result<EnhancedFrame> {
    let mut affines = Vec::new();
    let mut restored = Vec::new();
    for lm in helper.get_face_landmarks_5(detections) {
        let Some(affine) = helper.affine_matrix(&lm) else {
            continue;
        };
        let crop = helper.align_warp_face(image, &affine);
        let face = restore(affines.len(), &crop)?;
        let labels = parse(&face)?;
        affines.push(affine);
        restored.push((face, labels));
    }
    let faces: Vec<PasteFace<'_>> = restored
        .iter()
        .zip(&affines)
        .map(|((face, labels), a)| PasteFace {
            restored: face,
            inverse_affine: helper.get_inverse_affine(a),
            parse: labels,
        })
        .collect();
    let out = helper.paste_faces_to_upsampled(image, &faces, background)?;
    Ok(EnhancedFrame {
        image: out,
        faces_detected: detections.len(),
        faces_restored: affines.len(),
        affines,
    })
}

/// `GFPGANer` with GFPGAN v1.4 or RestoreFormer, facexlib's ParseNet and RetinaFace, upscale 2.
#[derive(Debug)]
pub struct GFPGANer {
    /// The restorer.
    pub restorer: Restorer,
    /// Geometry and pasting.
    pub face_helper: FaceRestoreHelper,
    parser: ParseNet,
    detector: RetinaFace,
    bg_upsampler: Option<RealESRGANer>,
    device: Device,
    seed: u64,
    frame: u64,
}

impl GFPGANer {
    /// Builds the enhancer from its networks; the StyleGAN noise comes from `seed` (and the frame and face
    /// numbers), so a run is reproducible.
    pub fn new(gfpgan: GFPGANv1Clean, parser: ParseNet, detector: RetinaFace, device: &Device, seed: u64) -> Self {
        Self::with_restorer(Restorer::Gfpgan(Box::new(gfpgan)), parser, detector, device, seed)
    }

    /// [`GFPGANer::new`] with either restorer.
    pub fn with_restorer(
        restorer: Restorer,
        parser: ParseNet,
        detector: RetinaFace,
        device: &Device,
        seed: u64,
    ) -> Self {
        Self {
            restorer,
            face_helper: FaceRestoreHelper::new(2),
            parser,
            detector,
            bg_upsampler: None,
            device: device.clone(),
            seed,
            frame: 0,
        }
    }

    /// Loads GFPGANv1.4.pth (`params_ema`), parsing_parsenet.pth and detection_Resnet50_Final.pth.
    pub fn load(files: &EnhancerFiles, device: &Device, seed: u64) -> Result<Self> {
        Self::load_arch(EnhancerArch::Gfpgan, files, device, seed)
    }

    /// Loads the restorer of `arch` (GFPGANv1.4.pth or RestoreFormer.pth, `params_ema` else `params`, as
    /// GFPGANer does), parsing_parsenet.pth and detection_Resnet50_Final.pth. Errors name the file and the
    /// `sadtalker models fetch --for …` that installs it.
    pub fn load_arch(arch: EnhancerArch, files: &EnhancerFiles, device: &Device, seed: u64) -> Result<Self> {
        let feature = arch.feature();
        let named = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e| EnhanceError::ModelFile {
                what,
                path,
                feature,
                error: Box::new(e),
            }
        };
        let open = |p: &Path| Weights::from_file(p, device).map_err(EnhanceError::from);
        let restorer = match arch {
            EnhancerArch::Gfpgan => open(&files.gfpgan)
                .and_then(|w| GFPGANv1Clean::load_from_checkpoint(&w, &GfpganConfig::v1_4()))
                .map(|g| Restorer::Gfpgan(Box::new(g))),
            EnhancerArch::RestoreFormer => open(&files.gfpgan)
                .and_then(|w| RestoreFormer::load_from_checkpoint(&w, &RestoreFormerConfig::official()))
                .map(|r| Restorer::RestoreFormer(Box::new(r))),
        }
        .map_err(named(arch.label(), &files.gfpgan))?;
        let parser = open(&files.parsenet)
            .and_then(|w| ParseNet::load_from_checkpoint(&w, &ParseNetConfig::facexlib()))
            .map_err(named("ParseNet", &files.parsenet))?;
        let detector = open(&files.detector)
            .and_then(|w| Ok(RetinaFace::load_from_checkpoint(&w)?))
            .map_err(named("RetinaFace", &files.detector))?;
        Ok(Self::with_restorer(restorer, parser, detector, device, seed))
    }

    /// Sets the background upsampler (`bg_upsampler`, `--background_enhancer realesrgan`): the frame is
    /// upscaled by it, not by Lanczos, and the faces pasted over it.
    pub fn set_bg_upsampler(&mut self, upsampler: Option<RealESRGANer>) {
        self.bg_upsampler = upsampler;
    }

    /// Frames enhanced so far (the next frame's number in the noise seed).
    pub fn frames_done(&self) -> u64 {
        self.frame
    }

    /// The faces RetinaFace finds in `image` (threshold 0.97, by descending score), as facexlib's
    /// `detect_faces` on the BGR frame.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        Ok(self
            .detector
            .detect_faces(image, true, CONF_THRESHOLD, &self.device)?
            .faces)
    }

    /// Restores one aligned 512×512 face (GFPGAN's noise: the run seed, `frame`, `face`).
    pub fn restore_face(&self, crop: &RgbImage, frame: u64, face: usize) -> Result<RgbImage> {
        let x = face_to_tensor(crop, &self.device)?;
        let mut noise = GaussianNoise::for_face(self.seed, frame, face, &self.device);
        let y = self.restorer.forward(&x, &mut noise)?;
        tensor_to_face(&y)
    }

    /// ParseNet's classes for one restored face.
    pub fn parse_face(&self, face: &RgbImage) -> Result<Vec<u8>> {
        let size = self.parser.config().in_size as u32;
        if face.dimensions() != (size, size) {
            return Err(EnhanceError::BadFrame(format!(
                "the parser takes {size}×{size} faces, got {}×{}",
                face.width(),
                face.height()
            )));
        }
        self.parser.parse(&face_to_parse_tensor(face, &self.device)?)
    }

    /// `enhance(img, has_aligned=False, only_center_face=False, paste_back=True)` on one RGB frame: the
    /// frame at twice the size with every face restored. A frame without a usable face comes back
    /// upscaled (Lanczos), as in the reference, with `faces_restored == 0`.
    pub fn enhance(&mut self, image: &RgbImage) -> Result<EnhancedFrame> {
        if image.width() == 0 || image.height() == 0 {
            return Err(EnhanceError::BadFrame("the frame is empty".into()));
        }
        let frame = self.frame;
        let detections = self.detect(image)?;
        let this = &*self;
        let background = match &this.bg_upsampler {
            Some(up) => Some(up.enhance(image)?),
            None => None,
        };
        let out = enhance_with_background(
            &this.face_helper,
            image,
            &detections,
            background.as_ref(),
            &mut |k, crop| this.restore_face(crop, frame, k),
            &mut |face| this.parse_face(face),
        )?;
        self.frame += 1;
        Ok(out)
    }
}
