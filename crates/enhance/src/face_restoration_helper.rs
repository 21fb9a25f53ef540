//! facexlib's `utils/face_restoration_helper.py`: `FaceRestoreHelper` as GFPGANer configures it
//! (`upscale_factor` 2, `face_size=512`, `crop_ratio=(1, 1)`, five-point template, no blur padding,
//! `use_parse=True`): landmarks from the detections, alignment to the FFHQ template, the inverse
//! transforms, and pasting the restored faces into the upscaled frame through the parse-based soft mask.
//!
//! Images are RGB here, BGR in the reference; every step is per channel except the crop's border colour,
//! which is the reference's BGR `(135, 133, 132)` in RGB order.

use image::RgbImage;
use rayon::prelude::*;
use sadtalker_preprocess::detect::Detection;

use crate::cv::{self, Affine, GrayF64};
use crate::{EnhanceError, Result};

/// Five landmarks `(x, y)`: eyes, nose, mouth corners, in `f32` as RetinaFace gives them.
pub type Landmarks5 = [[f32; 2]; 5];

/// The standard five landmarks of an FFHQ face at 512×512.
pub const FFHQ_TEMPLATE_512: [[f64; 2]; 5] = [
    [192.98138, 239.94708],
    [318.90277, 240.1936],
    [256.63416, 314.01935],
    [201.26117, 371.41043],
    [313.08905, 371.15118],
];

/// `cv2.warpAffine(..., borderValue=(135, 133, 132))` for the crop: BGR grey, here in RGB order.
const CROP_BORDER_RGB: [u8; 3] = [132, 133, 135];

/// `MASK_COLORMAP`: parse classes that count as face (255) or not (0): background, neck (14), cloth (16),
/// hair (17) and hat (18) are excluded.
const MASK_COLORMAP: [u8; 19] = [
    0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0,
];

/// One restored face to paste.
#[derive(Clone, Copy, Debug)]
pub struct PasteFace<'a> {
    /// The restored face, `face_size` square.
    pub restored: &'a RgbImage,
    /// Its inverse affine as [`FaceRestoreHelper::get_inverse_affine`] gives it (before paste's offset).
    pub inverse_affine: Affine,
    /// ParseNet's class per pixel of the restored face, row-major, `face_size²` values.
    pub parse: &'a [u8],
}

/// `FaceRestoreHelper` (see the module docs).
#[derive(Clone, Debug)]
pub struct FaceRestoreHelper {
    /// The output frame's scale (GFPGANer's `upscale`, 2 in SadTalker).
    pub upscale_factor: u32,
    /// Side of the aligned face (512).
    pub face_size: usize,
    /// The landmark template at `face_size`.
    pub face_template: [[f64; 2]; 5],
    /// Faces whose eyes are closer than this many pixels are skipped (GFPGANer passes 5).
    pub eye_dist_threshold: Option<f32>,
}

impl FaceRestoreHelper {
    /// The helper GFPGANer builds: `FaceRestoreHelper(upscale, face_size=512, crop_ratio=(1, 1))`, with
    /// `get_face_landmarks_5(eye_dist_threshold=5)`.
    pub fn new(upscale_factor: u32) -> Self {
        Self {
            upscale_factor,
            face_size: 512,
            face_template: FFHQ_TEMPLATE_512,
            eye_dist_threshold: Some(5.0),
        }
    }

    /// `get_face_landmarks_5(only_center_face=False, eye_dist_threshold)`: the landmarks of every
    /// detection, in order, except those whose eyes are closer than the threshold.
    pub fn get_face_landmarks_5(&self, detections: &[Detection]) -> Vec<Landmarks5> {
        detections
            .iter()
            .filter(|d| {
                let l = &d.landmarks;
                let (dx, dy) = (l[0] - l[2], l[1] - l[3]);
                // np.linalg.norm in float32; a NaN distance is not below the threshold.
                let eye_dist = (dx * dx + dy * dy).sqrt();
                !self.eye_dist_threshold.is_some_and(|t| eye_dist < t)
            })
            .map(|d| {
                let l = &d.landmarks;
                [[l[0], l[1]], [l[2], l[3]], [l[4], l[5]], [l[6], l[7]], [l[8], l[9]]]
            })
            .collect()
    }

    /// The affine matrix of `align_warp_face`: `cv2.estimateAffinePartial2D(landmark, face_template,
    /// method=cv2.LMEDS)`, or `None` where OpenCV finds none (degenerate landmarks; the reference would
    /// then fail on the frame, here the face is skipped).
    pub fn affine_matrix(&self, landmarks: &Landmarks5) -> Option<Affine> {
        let to: Vec<[f32; 2]> = self.face_template.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        let (m, _) = cv::estimate_affine_partial_2d(landmarks, &to)?;
        m.iter().flatten().all(|v| v.is_finite()).then_some(m)
    }

    /// The warp of `align_warp_face`: the face cut out at `face_size`, grey outside the frame.
    pub fn align_warp_face(&self, image: &RgbImage, affine: &Affine) -> RgbImage {
        let s = self.face_size as u32;
        cv::warp_affine_u8c3(image, affine, s, s, CROP_BORDER_RGB)
    }

    /// `get_inverse_affine`: `cv2.invertAffineTransform(affine) * upscale_factor`.
    pub fn get_inverse_affine(&self, affine: &Affine) -> Affine {
        let up = f64::from(self.upscale_factor);
        let mut inv = cv::invert_affine_transform(affine);
        for row in &mut inv {
            for v in row {
                *v *= up;
            }
        }
        inv
    }

    /// The matrix `paste_faces_to_input_image` warps with: the inverse affine with `0.5 · upscale` added to
    /// its translation ("for more precise back alignment") when upscaling.
    pub fn paste_affine(&self, inverse_affine: &Affine) -> Affine {
        let mut m = *inverse_affine;
        if self.upscale_factor > 1 {
            let extra = 0.5 * f64::from(self.upscale_factor);
            m[0][2] += extra;
            m[1][2] += extra;
        }
        m
    }

    /// The output frame size: `int(h * upscale)`, `int(w * upscale)`.
    pub fn upscaled_size(&self, image: &RgbImage) -> (u32, u32) {
        (
            image.width() * self.upscale_factor,
            image.height() * self.upscale_factor,
        )
    }

    /// The soft paste mask of one face, at `face_size`: the face classes at 255, blurred twice with
    /// `GaussianBlur((101, 101), 11)`, a 10-pixel border zeroed, divided by 255.
    pub fn parse_mask(&self, parse: &[u8]) -> Result<GrayF64> {
        let s = self.face_size;
        if parse.len() != s * s {
            return Err(EnhanceError::BadFrame(format!(
                "the face parse map has {} values, expected {s}×{s}",
                parse.len()
            )));
        }
        let mut mask = GrayF64 {
            width: s,
            height: s,
            data: parse
                .iter()
                .map(|&c| f64::from(*MASK_COLORMAP.get(usize::from(c)).unwrap_or(&0)))
                .collect(),
        };
        mask = cv::gaussian_blur_101_11(&cv::gaussian_blur_101_11(&mask));
        const THRES: usize = 10;
        for y in 0..s {
            for x in 0..s {
                let v = &mut mask.data[y * s + x];
                if y < THRES || y >= s.saturating_sub(THRES) || x < THRES || x >= s.saturating_sub(THRES) {
                    *v = 0.0;
                }
                *v /= 255.0;
            }
        }
        Ok(mask)
    }

    /// `paste_faces_to_input_image(upsample_img=None)`: the frame upscaled with Lanczos, then each face
    /// warped back and blended in `f64`, `mask · face + (1 − mask) · frame`, truncated to 8 bits at the end.
    /// Without faces the upscaled frame is returned as it is.
    pub fn paste_faces_to_input_image(&self, image: &RgbImage, faces: &[PasteFace<'_>]) -> Result<RgbImage> {
        self.paste_faces_to_upsampled(image, faces, None)
    }

    /// `paste_faces_to_input_image(upsample_img=bg)`: the faces pasted over `bg` (the background
    /// upsampler's frame, GFPGANer's `bg_upsampler.enhance(img)`), Lanczos-resized to the upscaled size if
    /// it differs (`cv2.resize` to the same size is a copy); `None` upsamples `image` itself.
    pub fn paste_faces_to_upsampled(
        &self,
        image: &RgbImage,
        faces: &[PasteFace<'_>],
        bg: Option<&RgbImage>,
    ) -> Result<RgbImage> {
        let (w_up, h_up) = self.upscaled_size(image);
        let upsample = match bg {
            Some(bg) if bg.dimensions() == (w_up, h_up) => bg.clone(),
            Some(bg) => cv::resize_lanczos4_u8c3(bg, w_up, h_up),
            None => cv::resize_lanczos4_u8c3(image, w_up, h_up),
        };
        if faces.is_empty() {
            return Ok(upsample);
        }
        let mut acc: Vec<f64> = upsample.as_raw().iter().map(|&v| f64::from(v)).collect();
        for face in faces {
            let s = self.face_size as u32;
            if face.restored.dimensions() != (s, s) {
                return Err(EnhanceError::BadFrame(format!(
                    "a restored face is {}×{}, expected {s}×{s}",
                    face.restored.width(),
                    face.restored.height()
                )));
            }
            let m = self.paste_affine(&face.inverse_affine);
            let inv_restored = cv::warp_affine_u8c3(face.restored, &m, w_up, h_up, [0, 0, 0]);
            // `cv2.resize(mask, restored_face.shape[:2])` is the identity at face_size.
            let mask = self.parse_mask(face.parse)?;
            let soft = cv::warp_affine_f64(&mask, &m, w_up as usize, h_up as usize);
            let restored = inv_restored.as_raw();
            acc.par_chunks_mut(3)
                .zip(soft.data.par_iter())
                .enumerate()
                .for_each(|(p, (px, &mk))| {
                    for (c, v) in px.iter_mut().enumerate() {
                        *v = mk * f64::from(restored[p * 3 + c]) + (1.0 - mk) * *v;
                    }
                });
        }
        // `astype(np.uint8)`: truncation (the blend stays within [0, 255]).
        let out: Vec<u8> = acc.iter().map(|&v| v as u8).collect();
        RgbImage::from_raw(w_up, h_up, out)
            .ok_or_else(|| EnhanceError::BadFrame("the pasted frame has an inconsistent size".into()))
    }
}
