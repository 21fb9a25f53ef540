//! Reading the source image as the reference's `cv2.imread(path)` + `cvtColor(BGR2RGB)` sees it:
//! 8-bit RGB, EXIF orientation applied, alpha dropped, grey replicated, 16-bit scaled to 8.
//! PNG, JPEG, WebP, BMP and TIFF are read (all of them formats `cv2.imread` reads), chosen by
//! content, never by extension.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::{PreprocessError, Result};

/// Largest accepted side in pixels. The detector runs on the image at its own size (as the
/// reference does), and its ResNet-50 needs about 1 GB of activations per 2 megapixels; 4096 keeps a
/// photo from a phone (4032 × 3024) and bounds memory at a few GB.
pub const MAX_SIDE: u32 = 4096;

/// File-name extensions of the portrait formats [`load_rgb`] reads, lower case, for callers that
/// pick images out of a folder (the format itself is always taken from the content).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

/// The formats [`load_rgb`] decodes, as named in its messages.
const READ_FORMATS: &str = "PNG, JPEG, WebP, BMP or TIFF";

/// Reads a PNG, JPEG, WebP, BMP or TIFF (by content, not extension) as 8-bit RGB, honouring the EXIF orientation
/// as `cv2.imread` does. Grey images are replicated to three channels, alpha is dropped (not
/// composited: OpenCV's `IMREAD_COLOR` drops it too), 16-bit samples are scaled to 8 bits.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bad = |reason: String| PreprocessError::ImageRead {
        path: path.to_path_buf(),
        reason,
    };
    // The format comes from the content (as OpenCV does), never from the extension.
    let mut head = [0u8; 16];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
        f.read(&mut head).map_err(|e| bad(format!("cannot read it ({e})")))?
    };
    let format = match image::guess_format(&head[..n]) {
        Ok(
            f @ (image::ImageFormat::Png
            | image::ImageFormat::Jpeg
            | image::ImageFormat::WebP
            | image::ImageFormat::Bmp
            | image::ImageFormat::Tiff),
        ) => f,
        Ok(other) => {
            return Err(bad(format!(
                "a {other:?} image; only {READ_FORMATS} images are read: convert it, e.g. `ffmpeg -i IN out.png`"
            )));
        }
        Err(_) => {
            return Err(bad(format!(
                "not a {READ_FORMATS} image (unrecognised content); convert it, e.g. `ffmpeg -i IN out.png`"
            )));
        }
    };
    // The JPEG decoder fills a cut-short file with grey and reports success (as libjpeg does, with a
    // warning nobody sees): a half-grey portrait would be animated as if whole. Refuse it instead.
    if format == image::ImageFormat::Jpeg {
        let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
        match jpeg_is_complete(std::io::BufReader::new(file)) {
            Ok(true) => {}
            Ok(false) => {
                return Err(bad(
                    "corrupt or truncated JPEG: the file ends before its image data does (an incomplete \
                     download or copy?); get the whole file again"
                        .into(),
                ));
            }
            Err(e) => return Err(bad(format!("cannot read it ({e})"))),
        }
    }
    let mut reader = ImageReader::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
    reader.set_format(format);
    let mut decoder = reader.into_decoder().map_err(|e| bad(decode_reason(&e)))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(bad("the image is empty (0 pixels)".into()));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(PreprocessError::ImageTooLarge {
            path: path.to_path_buf(),
            width: w,
            height: h,
            max: MAX_SIDE,
        });
    }
    // A missing or unreadable EXIF block means "no rotation", as for OpenCV.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| bad(decode_reason(&e)))?;
    img.apply_orientation(orientation);
    Ok(to_rgb8(img))
}

/// Whether a JPEG stream runs to its end-of-image marker: the marker segments are skipped by their
/// lengths (so an EXIF thumbnail's own markers are not mistaken for the image's), the entropy-coded
/// data of each scan is scanned for the next marker. `false` when the file ends first.
pub fn jpeg_is_complete(r: impl std::io::BufRead) -> std::io::Result<bool> {
    let mut bytes = r.bytes();
    let mut next = move || bytes.next().transpose();
    // SOI.
    if (next()?, next()?) != (Some(0xff), Some(0xd8)) {
        return Ok(false);
    }
    loop {
        let Some(b) = next()? else { return Ok(false) };
        // Entropy-coded data (after a scan header) and stray bytes between segments: skipped.
        if b != 0xff {
            continue;
        }
        // One or more 0xff fill bytes, then the marker code.
        let mut code = 0xff;
        while code == 0xff {
            let Some(c) = next()? else { return Ok(false) };
            code = c;
        }
        match code {
            // Stuffed zero and restart markers belong to the entropy-coded data.
            0x00 | 0xd0..=0xd7 => continue,
            0xd9 => return Ok(true),
            // Markers without a length.
            0x01 | 0xd8 => continue,
            _ => {
                let (Some(hi), Some(lo)) = (next()?, next()?) else {
                    return Ok(false);
                };
                let len = (usize::from(hi) << 8) | usize::from(lo);
                for _ in 0..len.saturating_sub(2) {
                    if next()?.is_none() {
                        return Ok(false);
                    }
                }
            }
        }
    }
}

fn decode_reason(e: &image::ImageError) -> String {
    match e {
        image::ImageError::Unsupported(u) => format!("unsupported image ({u}); convert it to 8-bit PNG or JPEG"),
        image::ImageError::Limits(l) => format!("too large to decode ({l})"),
        other => format!("corrupt or truncated image ({other})"),
    }
}

/// 8-bit RGB as OpenCV's `IMREAD_COLOR` gives it: 16-bit samples scaled by 1/256 with rounding
/// (OpenCV's `convertTo(CV_8U, 1/256.)`), grey replicated, alpha dropped.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    let sixteen = |v: u16| ((f64::from(v) / 256.0).round_ties_even()).min(255.0) as u8;
    match img {
        DynamicImage::ImageRgb8(i) => i,
        DynamicImage::ImageLuma16(i) => RgbImage::from_fn(i.width(), i.height(), |x, y| {
            image::Rgb([sixteen(i.get_pixel(x, y).0[0]); 3])
        }),
        DynamicImage::ImageLumaA16(i) => RgbImage::from_fn(i.width(), i.height(), |x, y| {
            image::Rgb([sixteen(i.get_pixel(x, y).0[0]); 3])
        }),
        DynamicImage::ImageRgb16(i) => RgbImage::from_fn(i.width(), i.height(), |x, y| {
            let p = i.get_pixel(x, y).0;
            image::Rgb([sixteen(p[0]), sixteen(p[1]), sixteen(p[2])])
        }),
        DynamicImage::ImageRgba16(i) => RgbImage::from_fn(i.width(), i.height(), |x, y| {
            let p = i.get_pixel(x, y).0;
            image::Rgb([sixteen(p[0]), sixteen(p[1]), sixteen(p[2])])
        }),
        other => other.to_rgb8(),
    }
}

/// Writes `img` as a PNG at `path` (the caller renames it into place).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| PreprocessError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
}
