//! `CropAndExtract.generate` (the reference's `utils/preprocess.py`): crop the frames as the mode
//! says, find the landmarks on the cut picture, align each picture to the standard face and run the
//! reconstruction net; the first frame's 257-D vector and one 73-D row per frame come out.

use candle_core::Device;
use image::RgbImage;
use sadtalker_coeffs::{Coeff3dmm, CropParams, FirstFrameCoeff};

use crate::align::{Aligned, align_img, lm3d_std};
use crate::crop::{CropInfo, PreprocessMode, crop_and_resize};
use crate::detect::{CONF_THRESHOLD, Detection, RetinaFace, rank_faces};
use crate::imgproc::slice;
use crate::landmarks::{Fan, Landmarks68, landmark_98_to_68};
use crate::recon::ReconNet;
use crate::{PreprocessError, Result};

/// Where the face landmarks come from.
#[derive(Clone, Debug)]
pub enum LandmarkSource {
    /// Detect the face (RetinaFace) and its landmarks (FAN), as the reference does: once on the
    /// source frame (for the crop), once on each cut picture (for the alignment).
    Detect {
        /// Which face, in the order largest × most confident first (0: the best).
        face_index: usize,
        /// Face probability threshold (the reference's 0.97).
        threshold: f32,
    },
    /// 68 landmarks given in the first source frame's pixels. They place the crop, and are mapped
    /// through the crop into the picture for the alignment, instead of detecting twice.
    Given(Box<Landmarks68>),
}

impl Default for LandmarkSource {
    fn default() -> Self {
        LandmarkSource::Detect {
            face_index: 0,
            threshold: CONF_THRESHOLD,
        }
    }
}

/// What to extract.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// The crop mode (`--preprocess`).
    pub mode: PreprocessMode,
    /// Side of the cut picture (`--size`: 256 or 512).
    pub pic_size: u32,
    /// Where the landmarks come from.
    pub landmarks: LandmarkSource,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            mode: PreprocessMode::Crop,
            pic_size: 256,
            landmarks: LandmarkSource::default(),
        }
    }
}

/// The face chosen on the source frame.
#[derive(Clone, Debug)]
pub struct FaceChoice {
    /// Every face found (after NMS), in the order `--face-index` counts.
    pub faces: Vec<Detection>,
    /// The index used.
    pub index: usize,
}

/// Where a picture's landmarks came from.
#[derive(Clone, Debug, PartialEq)]
pub enum PictureLandmarks {
    /// Detected on the picture.
    Detected(Landmarks68),
    /// The given source landmarks, mapped into the picture.
    Mapped(Landmarks68),
    /// No face on this picture: the previous frame's landmarks (the reference's rule for videos).
    Previous(Landmarks68),
    /// No face and no previous frame: the reference aligns the standard face's five points.
    StandardFace,
}

impl PictureLandmarks {
    /// The 68 landmarks, when there are any.
    pub fn landmarks(&self) -> Option<&Landmarks68> {
        match self {
            PictureLandmarks::Detected(l) | PictureLandmarks::Mapped(l) | PictureLandmarks::Previous(l) => Some(l),
            PictureLandmarks::StandardFace => None,
        }
    }
}

/// Everything `CropAndExtract.generate` computes.
#[derive(Clone, Debug)]
pub struct Extracted {
    /// The cut picture, `pic_size` square, that the reference writes as `<name>.png` (the last
    /// frame's, as the reference's loop leaves it).
    pub picture: RgbImage,
    /// The crop record (for paste-back).
    pub crop_info: CropInfo,
    /// The source frame's landmarks (`None` in `resize` mode with detection, which needs none).
    pub source_landmarks: Option<Landmarks68>,
    /// The face chosen on the source frame, when detected.
    pub face: Option<FaceChoice>,
    /// Per frame: the landmarks on its picture.
    pub picture_landmarks: Vec<PictureLandmarks>,
    /// The first frame's alignment.
    pub aligned: Aligned,
    /// The first frame's 257-D coefficients (`full_3dmm`).
    pub full: Coeff3dmm,
    /// One 73-D row per frame (`coeff_3dmm`).
    pub coeffs: Vec<FirstFrameCoeff>,
}

/// `get_landmark`'s second half: the face box cut out of `img`, FAN's 98 points on it, mapped to
/// 68 and moved back into `img`'s pixels by the box's integer corner.
///
/// The reference slices `img[int(y1):int(y2), int(x1):int(x2)]` with Python's negative-index rule,
/// which for a box poking out of the top or left makes an empty crop and then fails; the box is
/// clamped to the image here instead (same result for every box inside the image).
pub fn landmarks_in_box(
    fan: &Fan,
    img: &RgbImage,
    bbox: &[f32; 4],
    device: &Device,
    what: &str,
) -> Result<Landmarks68> {
    let b = bbox.map(|v| f64::from(v).trunc() as i64);
    let (x0, y0) = (b[0].max(0), b[1].max(0));
    let crop = slice(img, x0, y0, b[2], b[3]);
    if crop.width() == 0 || crop.height() == 0 {
        return Err(PreprocessError::Geometry(format!(
            "the face box {bbox:?} found in {what} lies outside the image"
        )));
    }
    let (lm98, _) = fan.get_landmarks(&crop, device)?;
    let mut lm = landmark_98_to_68(&lm98);
    for p in &mut lm.0 {
        p[0] += x0 as f32;
        p[1] += y0 as f32;
    }
    Ok(lm)
}

/// Face `index` of `ranked` (see [`rank_faces`]), or an error saying how many there are.
pub fn select_face(ranked: &[Detection], index: usize) -> Result<Detection> {
    ranked.get(index).copied().ok_or(PreprocessError::FaceIndex {
        index,
        found: ranked.len(),
    })
}

/// The preprocessing networks.
pub struct Extractor {
    recon: ReconNet,
    detector: Option<RetinaFace>,
    fan: Option<Fan>,
    device: Device,
}

impl Extractor {
    /// The reconstruction net, and the detector + landmark net when landmarks are to be detected.
    pub fn new(recon: ReconNet, face_nets: Option<(RetinaFace, Fan)>, device: Device) -> Self {
        let (detector, fan) = match face_nets {
            Some((d, f)) => (Some(d), Some(f)),
            None => (None, None),
        };
        Self {
            recon,
            detector,
            fan,
            device,
        }
    }

    fn face_nets(&self) -> Result<(&RetinaFace, &Fan)> {
        match (&self.detector, &self.fan) {
            (Some(d), Some(f)) => Ok((d, f)),
            _ => Err(PreprocessError::Internal(
                "landmark detection needs the face detector and the landmark network; load them or give \
                 --landmarks"
                    .into(),
            )),
        }
    }

    /// `KeypointExtractor`'s detection + landmarks on one image: the faces found, and the chosen
    /// face's 68 landmarks (in the image's pixels). `swap_rb`: convert to BGR for the detector (the
    /// reference does for its second pass, on PIL pictures, not for its first, on the numpy frame).
    pub fn detect_landmarks(
        &self,
        img: &RgbImage,
        swap_rb: bool,
        face_index: usize,
        threshold: f32,
        what: &str,
    ) -> Result<(Landmarks68, FaceChoice)> {
        let (det, fan) = self.face_nets()?;
        let outcome = det.detect_faces(img, swap_rb, threshold, &self.device)?;
        if outcome.faces.is_empty() {
            return Err(PreprocessError::NoFace {
                what: what.to_string(),
                best: outcome.best_score,
                threshold,
            });
        }
        let faces = rank_faces(&outcome.faces);
        let face = select_face(&faces, face_index)?;
        let lm = landmarks_in_box(fan, img, &face.bbox, &self.device, what)?;
        Ok((
            lm,
            FaceChoice {
                faces,
                index: face_index,
            },
        ))
    }

    /// `CropAndExtract.generate(frames, mode, pic_size)`: a still image is one frame; a video is all
    /// its frames (cut where the first frame's face is).
    pub fn extract(&self, frames: &[RgbImage], opts: &ExtractOptions) -> Result<Extracted> {
        let first = frames
            .first()
            .ok_or_else(|| PreprocessError::Geometry("no frames to extract from".into()))?;
        if opts.pic_size == 0 {
            return Err(PreprocessError::Geometry("the picture size must be positive".into()));
        }
        // 1. The source landmarks (not needed by `resize` unless given).
        let (source_landmarks, face) = match (&opts.landmarks, opts.mode.crops()) {
            (LandmarkSource::Given(lm), _) => (Some(lm.as_ref().clone()), None),
            (LandmarkSource::Detect { face_index, threshold }, true) => {
                let (lm, choice) = self.detect_landmarks(first, false, *face_index, *threshold, "the source image")?;
                (Some(lm), Some(choice))
            }
            (LandmarkSource::Detect { .. }, false) => (None, None),
        };
        // 2. Cut every frame the same way and resize it to the picture size.
        let mut pictures = Vec::with_capacity(frames.len());
        let mut crop_info = None;
        for f in frames {
            if f.dimensions() != first.dimensions() {
                return Err(PreprocessError::Geometry(format!(
                    "frame size changes from {}×{} to {}×{} within the video",
                    first.width(),
                    first.height(),
                    f.width(),
                    f.height()
                )));
            }
            let (pic, info) = crop_and_resize(f, source_landmarks.as_ref(), opts.mode, opts.pic_size)?;
            crop_info.get_or_insert(info);
            pictures.push(pic);
        }
        let crop_info = crop_info.ok_or_else(|| PreprocessError::Internal("no crop".into()))?;
        // 3. Landmarks on each picture, 4. alignment and reconstruction.
        let lm3d = lm3d_std();
        let mut picture_landmarks: Vec<PictureLandmarks> = Vec::with_capacity(pictures.len());
        let mut coeffs = Vec::with_capacity(pictures.len());
        let mut first_result: Option<(Aligned, Coeff3dmm)> = None;
        for pic in &pictures {
            let found = match &opts.landmarks {
                LandmarkSource::Given(lm) => {
                    PictureLandmarks::Mapped(Landmarks68(lm.0.map(|p| crop_info.source_to_pic(p))))
                }
                LandmarkSource::Detect { threshold, .. } => {
                    match self.detect_landmarks(pic, true, 0, *threshold, "the cut picture") {
                        Ok((lm, _)) => PictureLandmarks::Detected(lm),
                        Err(PreprocessError::NoFace { .. } | PreprocessError::Geometry(_)) => {
                            match picture_landmarks.last().and_then(|p| p.landmarks()) {
                                Some(prev) => PictureLandmarks::Previous(prev.clone()),
                                None => PictureLandmarks::StandardFace,
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let (w, h) = (pic.width() as f32, pic.height() as f32);
            let points: Vec<[f32; 2]> = match found.landmarks() {
                // y up: `lm1[:, -1] = H - 1 - lm1[:, -1]`.
                Some(lm) => lm.0.iter().map(|p| [p[0], (h - 1.0) - p[1]]).collect(),
                // `(lm3d_std[:, :2] + 1) / 2` scaled to the picture, not flipped.
                None => lm3d
                    .iter()
                    .map(|p| [(p[0] + 1.0) / 2.0 * w, (p[1] + 1.0) / 2.0 * h])
                    .collect(),
            };
            let aligned = align_img(pic, &points, &lm3d)?;
            let full = self.recon.coefficients(&aligned.image, &self.device)?;
            let t = aligned.trans_params;
            coeffs.push(full.first_frame(CropParams([t[2] as f32, t[3] as f32, t[4] as f32])));
            if first_result.is_none() {
                first_result = Some((aligned, full));
            }
            picture_landmarks.push(found);
        }
        let (aligned, full) = first_result.ok_or_else(|| PreprocessError::Internal("no frames".into()))?;
        let picture = pictures
            .pop()
            .ok_or_else(|| PreprocessError::Internal("no pictures".into()))?;
        Ok(Extracted {
            picture,
            crop_info,
            source_landmarks,
            face,
            picture_landmarks,
            aligned,
            full,
            coeffs,
        })
    }
}
