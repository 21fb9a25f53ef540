//! The crop modes: `Preprocesser.align_face` / `Preprocesser.crop` of the reference's
//! `utils/croper.py` and the mode handling of `CropAndExtract.generate` (`utils/preprocess.py`).
//!
//! The arithmetic follows the reference's numpy dtypes step by step (the landmarks are float32, the
//! oriented rectangle float64), because the crop box comes out of `floor`/`ceil`/`int` of these
//! values and a last-bit difference would move it by a pixel.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::imgproc::{cv_resize_linear, slice};
use crate::landmarks::Landmarks68;
use crate::{PreprocessError, Result};

/// How the portrait is cut before 3DMM extraction (`--preprocess`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreprocessMode {
    /// The face's oriented square (the default).
    Crop,
    /// The larger box around it, with a border.
    ExtCrop,
    /// The whole image, squeezed to a square.
    Resize,
    /// As `crop`; the renderer's output is pasted back into the full image.
    Full,
    /// As `extcrop`; pasted back into the full image.
    ExtFull,
}

impl PreprocessMode {
    /// The name the reference uses (`--preprocess` value).
    pub fn as_str(self) -> &'static str {
        match self {
            PreprocessMode::Crop => "crop",
            PreprocessMode::ExtCrop => "extcrop",
            PreprocessMode::Resize => "resize",
            PreprocessMode::Full => "full",
            PreprocessMode::ExtFull => "extfull",
        }
    }

    /// Whether the face is located and cut out (every mode but `resize`).
    pub fn crops(self) -> bool {
        self != PreprocessMode::Resize
    }

    /// The reference's `still=True`: the outer box is kept, not the inner quad (`ext*` modes).
    pub fn extended(self) -> bool {
        matches!(self, PreprocessMode::ExtCrop | PreprocessMode::ExtFull)
    }

    /// Whether the result is pasted back into the full frame (`full`, `extfull`).
    pub fn pastes_back(self) -> bool {
        matches!(self, PreprocessMode::Full | PreprocessMode::ExtFull)
    }
}

impl std::str::FromStr for PreprocessMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        // The reference tests substrings ('crop' in mode, 'ext' in mode, 'full' in mode); the five
        // names it documents are accepted, case-insensitively.
        match s.to_ascii_lowercase().as_str() {
            "crop" => Ok(PreprocessMode::Crop),
            "extcrop" => Ok(PreprocessMode::ExtCrop),
            "resize" => Ok(PreprocessMode::Resize),
            "full" => Ok(PreprocessMode::Full),
            "extfull" => Ok(PreprocessMode::ExtFull),
            other => Err(format!(
                "unknown preprocess mode `{other}` (one of: crop, extcrop, resize, full, extfull)"
            )),
        }
    }
}

/// What `Preprocesser.align_face` returns: the (possibly shrunk) working size, the crop box in it
/// and the face quad's bounds relative to the crop box.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    /// `rsize`: the size the frame is resized to before cutting (the image size unless the face is
    /// so large that the reference shrinks it).
    pub rsize: [u32; 2],
    /// `crop`: `(left, top, right, bottom)` of the box around the face quad plus a border, in the
    /// resized frame.
    pub crop: [i64; 4],
    /// `quad`: `(lx, ly, rx, ry)` bounds of the face quad, relative to `crop` (floats, as the
    /// reference keeps them; they are truncated with `int()` where used).
    pub quad: [f64; 4],
}

fn mean_f32(lm: &Landmarks68, range: std::ops::Range<usize>) -> [f32; 2] {
    // numpy's float32 mean over axis 0: a sequential float32 sum, then one division.
    let n = range.len() as f32;
    let mut s = [0f32; 2];
    for p in &lm.0[range] {
        s[0] += p[0];
        s[1] += p[1];
    }
    [s[0] / n, s[1] / n]
}

fn hypot32(v: [f32; 2]) -> f32 {
    v[0].hypot(v[1])
}

/// `Preprocesser.align_face(img, lm, output_size)` for an image of `width × height`: the FFHQ-style
/// oriented crop rectangle from the eyes and mouth, its bounding box plus a border, and the quad's
/// bounds inside that box. Landmarks without an eye-to-eye or eye-to-mouth extent, or placing the
/// face absurdly far away, are an error.
pub fn align_face(width: u32, height: u32, lm: &Landmarks68, output_size: u32) -> Result<FaceBox> {
    let p = &lm.0;
    let eye_left = mean_f32(lm, 36..42);
    let eye_right = mean_f32(lm, 42..48);
    let eye_avg = [(eye_left[0] + eye_right[0]) * 0.5, (eye_left[1] + eye_right[1]) * 0.5];
    let eye_to_eye = [eye_right[0] - eye_left[0], eye_right[1] - eye_left[1]];
    let (mouth_left, mouth_right) = (p[48], p[54]);
    let mouth_avg = [
        (mouth_left[0] + mouth_right[0]) * 0.5,
        (mouth_left[1] + mouth_right[1]) * 0.5,
    ];
    let eye_to_mouth = [mouth_avg[0] - eye_avg[0], mouth_avg[1] - eye_avg[1]];

    // `eye_to_eye - flipud(eye_to_mouth) * [-1, 1]`: the int list promotes to float64.
    let mut x = [
        f64::from(eye_to_eye[0]) + f64::from(eye_to_mouth[1]),
        f64::from(eye_to_eye[1]) - f64::from(eye_to_mouth[0]),
    ];
    let norm = x[0].hypot(x[1]);
    x = [x[0] / norm, x[1] / norm];
    let scale = (hypot32(eye_to_eye) * 2.0).max(hypot32(eye_to_mouth) * 1.8f32);
    x = [x[0] * f64::from(scale), x[1] * f64::from(scale)];
    let y = [-x[1], x[0]];
    let c = [
        eye_avg[0] + eye_to_mouth[0] * 0.1f32,
        eye_avg[1] + eye_to_mouth[1] * 0.1f32,
    ];
    let c = [f64::from(c[0]), f64::from(c[1])];
    let mut quad = [
        [c[0] - x[0] - y[0], c[1] - x[1] - y[1]],
        [c[0] - x[0] + y[0], c[1] - x[1] + y[1]],
        [c[0] + x[0] + y[0], c[1] + x[1] + y[1]],
        [c[0] + x[0] - y[0], c[1] + x[1] - y[1]],
    ];
    let mut qsize = x[0].hypot(x[1]) * 2.0;
    // Integer conversions below need sane magnitudes (the reference would crash or cut nothing).
    const FAR: f64 = 1e7;
    if !(qsize.is_finite() && qsize > 0.0) || quad.iter().flatten().any(|v| !v.is_finite() || v.abs() > FAR) {
        return Err(PreprocessError::Landmarks(format!(
            "the landmarks do not describe a face (eye distance {:.3} px, eye-to-mouth {:.3} px, face size \
             {qsize:.3} px); check their order (68-point iBUG layout) and units (pixels)",
            hypot32(eye_to_eye),
            hypot32(eye_to_mouth)
        )));
    }

    // Shrink: only the size matters (the reference resizes a PIL copy it then discards).
    let shrink = (qsize / f64::from(output_size) * 0.5).floor() as i64;
    let (mut sw, mut sh) = (i64::from(width), i64::from(height));
    if shrink > 1 {
        let s = shrink as f64;
        sw = (f64::from(width) / s).round_ties_even() as i64;
        sh = (f64::from(height) / s).round_ties_even() as i64;
        for q in &mut quad {
            q[0] /= s;
            q[1] /= s;
        }
        qsize /= s;
    }

    // Crop.
    let border = ((qsize * 0.1).round_ties_even() as i64).max(3);
    let min_x = quad.iter().map(|q| q[0]).fold(f64::INFINITY, f64::min);
    let min_y = quad.iter().map(|q| q[1]).fold(f64::INFINITY, f64::min);
    let max_x = quad.iter().map(|q| q[0]).fold(f64::NEG_INFINITY, f64::max);
    let max_y = quad.iter().map(|q| q[1]).fold(f64::NEG_INFINITY, f64::max);
    let crop = [
        (min_x.floor() as i64 - border).max(0),
        (min_y.floor() as i64 - border).max(0),
        (max_x.ceil() as i64 + border).min(sw),
        (max_y.ceil() as i64 + border).min(sh),
    ];
    if crop[2] - crop[0] < sw || crop[3] - crop[1] < sh {
        for q in &mut quad {
            q[0] -= crop[0] as f64;
            q[1] -= crop[1] as f64;
        }
    }
    // Transform: the quad's bounds (the reference compares y with the width: kept as is).
    let q: Vec<f64> = quad.iter().flat_map(|p| [p[0] + 0.5, p[1] + 0.5]).collect();
    let lx = q[0].min(q[2]).max(0.0);
    let ly = q[1].min(q[7]).max(0.0);
    let rx = q[4].max(q[6]).min(sw as f64);
    let ry = q[3].max(q[5]).min(sw as f64);
    Ok(FaceBox {
        rsize: [sw as u32, sh as u32],
        crop,
        quad: [lx, ly, rx, ry],
    })
}

/// Python's `int(v)` on a float: truncation toward zero.
fn py_int(v: f64) -> i64 {
    v.trunc() as i64
}

/// numpy's `a[start:stop]` bounds on an axis of length `len`: negative indices count from the end,
/// then both are clamped to `[0, len]`.
fn py_slice(start: i64, stop: i64, len: i64) -> (i64, i64) {
    let norm = |i: i64| if i < 0 { (i + len).max(0) } else { i.min(len) };
    let (a, b) = (norm(start), norm(stop));
    (a, b.max(a))
}

/// The reference's `crop_info`: `((w, h), crop, quad)`, what paste-back needs, plus the sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropInfo {
    /// The preprocessing mode.
    pub mode: PreprocessMode,
    /// Size of the source image (after EXIF orientation).
    pub source_size: [u32; 2],
    /// `crop_info[0]`: size of the face quad's box in the source, `(ox2 - ox1, oy2 - oy1)` (the whole
    /// image in `resize` mode).
    pub original_size: [i64; 2],
    /// `crop_info[1]`: the crop box `(left, top, right, bottom)` in the working frame (`None` in
    /// `resize` mode).
    pub crop: Option<[i64; 4]>,
    /// `crop_info[2]`: the quad bounds `(lx, ly, rx, ry)` relative to `crop` (`None` in `resize` mode).
    pub quad: Option<[f64; 4]>,
    /// Size of the working frame the boxes refer to (the source size unless the face was so large
    /// that the reference shrank the frame).
    pub rsize: [u32; 2],
    /// Size of the picture cut out of the working frame, before it is resized to `pic_size`.
    pub cut_size: [u32; 2],
    /// Side of the square picture the networks get (256 or 512).
    pub pic_size: u32,
}

impl CropInfo {
    /// Where the cut picture's top-left corner lies in the working frame.
    pub fn cut_origin(&self) -> [i64; 2] {
        match (self.crop, self.quad) {
            (Some(c), Some(q)) if !self.mode.extended() => [c[0] + py_int(q[0]), c[1] + py_int(q[1])],
            (Some(c), _) => [c[0], c[1]],
            _ => [0, 0],
        }
    }

    /// The paste-back box `(x1, y1, x2, y2)` in the source frame, as `paste_pic` computes it: the crop
    /// box for the extended modes, the quad box otherwise, the whole frame in `resize` mode.
    pub fn paste_box(&self) -> [i64; 4] {
        match (self.crop, self.quad) {
            (Some(c), Some(q)) => {
                if self.mode.extended() {
                    c
                } else {
                    let (lx, ly, rx, ry) = (py_int(q[0]), py_int(q[1]), py_int(q[2]), py_int(q[3]));
                    [c[0] + lx, c[1] + ly, c[0] + rx, c[1] + ry]
                }
            }
            _ => [0, 0, i64::from(self.source_size[0]), i64::from(self.source_size[1])],
        }
    }

    /// Maps a point of the source image into the `pic_size` picture, pixel centre to pixel centre
    /// (through the working-frame resize, the cut and the resize to `pic_size`).
    pub fn source_to_pic(&self, p: [f32; 2]) -> [f32; 2] {
        let sx = f64::from(self.rsize[0]) / f64::from(self.source_size[0]);
        let sy = f64::from(self.rsize[1]) / f64::from(self.source_size[1]);
        let o = self.cut_origin();
        let kx = f64::from(self.pic_size) / f64::from(self.cut_size[0]);
        let ky = f64::from(self.pic_size) / f64::from(self.cut_size[1]);
        let x = ((f64::from(p[0]) + 0.5) * sx - 0.5 - o[0] as f64 + 0.5) * kx - 0.5;
        let y = ((f64::from(p[1]) + 0.5) * sy - 0.5 - o[1] as f64 + 0.5) * ky - 0.5;
        [x as f32, y as f32]
    }
}

/// `CropAndExtract.generate`'s first step for one frame: cut the frame as `mode` says (with
/// `Preprocesser.crop(frames, still, xsize=512)` given the source landmarks) and resize the cut
/// to `pic_size × pic_size` with `cv2.resize`. Returns the picture and the crop information.
///
/// `lm` is needed by every mode but `resize`.
pub fn crop_and_resize(
    frame: &RgbImage,
    lm: Option<&Landmarks68>,
    mode: PreprocessMode,
    pic_size: u32,
) -> Result<(RgbImage, CropInfo)> {
    let (w, h) = frame.dimensions();
    let (cut, info) = if mode.crops() {
        let lm = lm
            .ok_or_else(|| PreprocessError::Geometry(format!("--preprocess {} needs face landmarks", mode.as_str())))?;
        let fb = align_face(w, h, lm, 512)?;
        if fb.rsize[0] == 0 || fb.rsize[1] == 0 {
            return Err(PreprocessError::Geometry(
                "the face is too large for the image (empty working frame)".into(),
            ));
        }
        let resized = cv_resize_linear(frame, fb.rsize[0], fb.rsize[1]);
        let [clx, cly, crx, cry] = fb.crop;
        let (rw, rh) = (i64::from(fb.rsize[0]), i64::from(fb.rsize[1]));
        let (x0, x1) = py_slice(clx, crx, rw);
        let (y0, y1) = py_slice(cly, cry, rh);
        let mut cut = slice(&resized, x0, y0, x1, y1);
        let [lx, ly, rx, ry] = fb.quad.map(py_int);
        if !mode.extended() {
            let (a, b) = py_slice(lx, rx, i64::from(cut.width()));
            let (c, d) = py_slice(ly, ry, i64::from(cut.height()));
            cut = slice(&cut, a, c, b, d);
        }
        let info = CropInfo {
            mode,
            source_size: [w, h],
            original_size: [rx - lx, ry - ly],
            crop: Some(fb.crop),
            quad: Some(fb.quad),
            rsize: fb.rsize,
            cut_size: [cut.width(), cut.height()],
            pic_size,
        };
        (cut, info)
    } else {
        let info = CropInfo {
            mode,
            source_size: [w, h],
            original_size: [i64::from(w), i64::from(h)],
            crop: None,
            quad: None,
            rsize: [w, h],
            cut_size: [w, h],
            pic_size,
        };
        (frame.clone(), info)
    };
    if cut.width() == 0 || cut.height() == 0 {
        return Err(PreprocessError::Geometry(format!(
            "the face box lies outside the image (crop {:?}, quad {:?} in a {}×{} frame): nothing to cut; \
             try --preprocess resize",
            info.crop, info.quad, w, h
        )));
    }
    Ok((cv_resize_linear(&cut, pic_size, pic_size), info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_slices() {
        assert_eq!(py_slice(2, 5, 10), (2, 5));
        assert_eq!(py_slice(2, 50, 10), (2, 10));
        assert_eq!(py_slice(-3, 10, 10), (7, 10));
        assert_eq!(py_slice(6, 3, 10), (6, 6));
        assert_eq!(py_slice(-30, -2, 10), (0, 8));
    }

    #[test]
    fn modes_parse_and_classify() {
        for m in ["crop", "extcrop", "resize", "full", "extfull"] {
            let mode: PreprocessMode = m.parse().unwrap();
            assert_eq!(mode.as_str(), m);
        }
        assert!("ExtFull".parse::<PreprocessMode>().unwrap().pastes_back());
        assert!("extcrop".parse::<PreprocessMode>().unwrap().extended());
        assert!(!"resize".parse::<PreprocessMode>().unwrap().crops());
        assert!("square".parse::<PreprocessMode>().is_err());
    }
}
