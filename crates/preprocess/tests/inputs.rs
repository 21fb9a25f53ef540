//! Bad and unusual inputs: image formats (grey, RGBA, 16-bit, EXIF rotation, corrupt, huge), no
//! face, several faces, degenerate landmarks. Each gives a specific outcome.

mod common;

use candle_core::Device;
use image::{ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_preprocess::detect::{Detection, RetinaFace, rank_faces};
use sadtalker_preprocess::extract::{ExtractOptions, Extractor, LandmarkSource, select_face};
use sadtalker_preprocess::io::{MAX_SIDE, load_rgb};
use sadtalker_preprocess::landmarks::Fan;
use sadtalker_preprocess::recon::ReconNet;
use sadtalker_preprocess::{Landmarks68, PreprocessError, PreprocessMode};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn grey_rgba_and_16_bit_images_become_8_bit_rgb() {
    let d = tmp();
    let grey = d.path().join("grey.png");
    ImageBuffer::from_fn(5, 4, |x, y| Luma([(x * 40 + y) as u8]))
        .save(&grey)
        .expect("save");
    let img = load_rgb(&grey).expect("grey");
    assert_eq!(img.dimensions(), (5, 4));
    assert_eq!(img.get_pixel(3, 2), &Rgb([122, 122, 122]));

    let rgba = d.path().join("rgba.png");
    ImageBuffer::from_fn(3, 3, |x, _| Rgba([10 * x as u8, 20, 30, 0]))
        .save(&rgba)
        .expect("save");
    // Alpha is dropped, not composited (OpenCV's IMREAD_COLOR).
    assert_eq!(load_rgb(&rgba).expect("rgba").get_pixel(2, 0), &Rgb([20, 20, 30]));

    let deep = d.path().join("deep.png");
    ImageBuffer::from_fn(2, 1, |x, _| Rgb([if x == 0 { 65535u16 } else { 384 }, 128, 0]))
        .save(&deep)
        .expect("save");
    let img = load_rgb(&deep).expect("16-bit");
    // v / 256 rounded half to even: 65535 → 255 (saturated), 384 → 2 (1.5 → 2), 128 → 0 (0.5 → 0).
    assert_eq!(img.get_pixel(0, 0), &Rgb([255, 0, 0]));
    assert_eq!(img.get_pixel(1, 0), &Rgb([2, 0, 0]));
}

/// A JPEG with an EXIF APP1 segment carrying only the orientation tag.
fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(img)
        .expect("encode");
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one IFD entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_honoured() {
    let d = tmp();
    // 40 × 20, left half black, right half white.
    let img = RgbImage::from_fn(
        40,
        20,
        |x, _| if x < 20 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) },
    );
    let path = d.path().join("rotated.jpg");
    std::fs::write(&path, jpeg_with_orientation(&img, 6)).expect("write");
    let loaded = load_rgb(&path).expect("jpeg");
    // Orientation 6: rotate 90° clockwise for display: 20 wide, 40 high, the white half at the bottom.
    assert_eq!(loaded.dimensions(), (20, 40));
    assert!(loaded.get_pixel(10, 5).0[0] < 30, "top should be black");
    assert!(loaded.get_pixel(10, 35).0[0] > 225, "bottom should be white");
    let plain = d.path().join("plain.jpg");
    std::fs::write(&plain, jpeg_with_orientation(&img, 1)).expect("write");
    assert_eq!(load_rgb(&plain).expect("jpeg").dimensions(), (40, 20));
}

#[test]
fn unreadable_and_huge_images_are_rejected_with_reasons() {
    let d = tmp();
    let text = d.path().join("notes.png");
    std::fs::write(&text, "not an image at all").expect("write");
    let e = load_rgb(&text).expect_err("text");
    assert!(matches!(e, PreprocessError::ImageRead { .. }), "{e}");
    assert!(e.to_string().contains("not a PNG, JPEG, WebP, BMP or TIFF"), "{e}");

    let png = d.path().join("cut.png");
    let full = common::png("preprocess/astronaut.png");
    full.save(&png).expect("save");
    let bytes = std::fs::read(&png).expect("read");
    std::fs::write(&png, &bytes[..bytes.len() / 2]).expect("truncate");
    let e = load_rgb(&png).expect_err("truncated");
    assert!(e.to_string().contains("corrupt or truncated"), "{e}");

    let missing = load_rgb(&d.path().join("nope.png")).expect_err("missing");
    assert!(missing.to_string().contains("cannot open"), "{missing}");

    let huge = d.path().join("huge.png");
    ImageBuffer::from_pixel(MAX_SIDE + 1, 2, Luma([0u8]))
        .save(&huge)
        .expect("save");
    let e = load_rgb(&huge).expect_err("huge");
    assert!(
        matches!(e, PreprocessError::ImageTooLarge { width, .. } if width == MAX_SIDE + 1),
        "{e}"
    );
    assert!(e.to_string().contains("4096"), "{e}");
}

fn det(bbox: [f32; 4], score: f32) -> Detection {
    Detection {
        bbox,
        score,
        landmarks: [0.0; 10],
    }
}

#[test]
fn several_faces_are_ranked_and_indexed() {
    // The reference takes the most confident; the larger face wins here unless it is much less sure.
    let small_sure = det([0.0, 0.0, 10.0, 10.0], 0.999);
    let large = det([50.0, 50.0, 90.0, 100.0], 0.98);
    let ranked = rank_faces(&[small_sure, large]);
    assert_eq!(ranked[0], large);
    assert_eq!(select_face(&ranked, 1).expect("second"), small_sure);
    let e = select_face(&ranked, 2).expect_err("third");
    assert!(matches!(e, PreprocessError::FaceIndex { index: 2, found: 2 }));
    assert!(e.to_string().contains("only 2 face(s)"), "{e}");
}

fn recon() -> ReconNet {
    ReconNet::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &Device::Cpu)).expect("recon")
}

#[test]
fn no_face_says_what_was_seen_and_what_to_try() {
    // Random detector weights find no face: the error gives the best score and the remedies.
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let nets = (
        RetinaFace::load_from_checkpoint(&w).expect("detector"),
        Fan::load_from_checkpoint(&w).expect("fan"),
    );
    let ex = Extractor::new(recon(), Some(nets), Device::Cpu);
    let img = sadtalker_preprocess::imgproc::cv_resize_linear(&common::png("preprocess/astronaut.png"), 96, 96);
    let e = ex.extract(&[img], &ExtractOptions::default()).expect_err("no face");
    let PreprocessError::NoFace { best, threshold, .. } = &e else {
        panic!("expected NoFace, got {e}");
    };
    assert!(*best < *threshold && *best > 0.0);
    let msg = e.to_string();
    for hint in [
        "best face score",
        "--preprocess full",
        "--face-threshold",
        "--landmarks",
    ] {
        assert!(msg.contains(hint), "`{hint}` missing from: {msg}");
    }
}

#[test]
fn degenerate_or_misplaced_landmarks_fail_cleanly() {
    let ex = Extractor::new(recon(), None, Device::Cpu);
    let img = common::png("preprocess/astronaut.png");
    // All points equal: no orientation, the crop is empty.
    let same = Landmarks68([[100.0, 100.0]; 68]);
    let opts = |lm: Landmarks68, mode| ExtractOptions {
        mode,
        pic_size: 256,
        landmarks: LandmarkSource::Given(Box::new(lm)),
    };
    let e = ex
        .extract(std::slice::from_ref(&img), &opts(same.clone(), PreprocessMode::Crop))
        .expect_err("degenerate");
    assert!(
        matches!(e, PreprocessError::Geometry(_) | PreprocessError::Landmarks(_)),
        "{e}"
    );
    // A face far outside the image.
    let mut far = common::points(
        &sadtalker_parity::Golden::open("goldens/preprocess/e2e.safetensors")
            .cases()
            .next()
            .expect("case")
            .params,
        "lm",
    );
    for p in &mut far {
        p[0] += 5000.0;
    }
    let far = Landmarks68::from_points(&far).expect("68");
    let e = ex
        .extract(std::slice::from_ref(&img), &opts(far, PreprocessMode::Crop))
        .expect_err("outside");
    assert!(e.to_string().contains("outside the image"), "{e}");
    // Text parsing.
    assert!(Landmarks68::parse("1 2 3").is_err());
    assert!(Landmarks68::parse(&"0.5 x\n".repeat(68)).is_err());
    let lm = Landmarks68::parse(&same.to_text()).expect("round trip");
    assert_eq!(lm, same);
}

/// A small picture with distinct values everywhere, to check decoders pixel for pixel.
fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7 + y) as u8, (y * 11 + 3) as u8, (x * y) as u8]))
}

/// Lossless WebP, with an EXIF block when `exif` is given.
fn webp(img: &RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let mut enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
    if let Some(exif) = exif {
        enc.set_exif_metadata(exif).expect("exif");
    }
    enc.write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .expect("encode webp");
    out
}

/// The TIFF-structured EXIF block of [`jpeg_with_orientation`] (without the `Exif\0\0` prefix).
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff
}

#[test]
fn webp_bmp_and_tiff_portraits_read_exactly_by_content() {
    let d = tmp();
    let img = pattern(23, 17);
    let cases: [(&str, Vec<u8>); 3] = [
        ("webp", webp(&img, None)),
        ("bmp", {
            let mut b = std::io::Cursor::new(Vec::new());
            img.write_to(&mut b, image::ImageFormat::Bmp).expect("bmp");
            b.into_inner()
        }),
        ("tiff", {
            let mut b = std::io::Cursor::new(Vec::new());
            img.write_to(&mut b, image::ImageFormat::Tiff).expect("tiff");
            b.into_inner()
        }),
    ];
    for (ext, bytes) in cases {
        // Named by its own extension, and misnamed `.png`: the content decides.
        for name in [format!("portrait.{ext}"), format!("{ext}-really.png")] {
            let path = d.path().join(&name);
            std::fs::write(&path, &bytes).expect("write");
            let got = load_rgb(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, img, "{name}: lossless {ext} must read back exactly");
        }
    }
    // Grey and RGBA variants become RGB as for PNG.
    let grey = d.path().join("grey.tif");
    ImageBuffer::from_fn(4, 3, |x, y| Luma([(x * 50 + y) as u8]))
        .save_with_format(&grey, image::ImageFormat::Tiff)
        .expect("save");
    assert_eq!(
        load_rgb(&grey).expect("grey tiff").get_pixel(3, 2),
        &Rgb([152, 152, 152])
    );
    let rgba = d.path().join("rgba.webp");
    ImageBuffer::from_fn(3, 3, |x, _| Rgba([10 * x as u8, 20, 30, 0]))
        .save_with_format(&rgba, image::ImageFormat::WebP)
        .expect("save");
    assert_eq!(load_rgb(&rgba).expect("rgba webp").get_pixel(2, 0), &Rgb([20, 20, 30]));
}

#[test]
fn webp_exif_orientation_is_honoured() {
    let d = tmp();
    let img = RgbImage::from_fn(
        40,
        20,
        |x, _| if x < 20 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) },
    );
    let path = d.path().join("rotated.webp");
    std::fs::write(&path, webp(&img, Some(exif_orientation(6)))).expect("write");
    let loaded = load_rgb(&path).expect("webp");
    assert_eq!(loaded.dimensions(), (20, 40));
    assert_eq!(loaded.get_pixel(10, 5), &Rgb([0, 0, 0]), "top should be black");
    assert_eq!(
        loaded.get_pixel(10, 35),
        &Rgb([255, 255, 255]),
        "bottom should be white"
    );
}

#[test]
fn other_image_formats_are_refused_naming_the_format_and_the_fix() {
    let d = tmp();
    let gif = d.path().join("anim.gif");
    // A GIF header is recognised by content but not read.
    std::fs::write(&gif, b"GIF89a\x01\0\x01\0\0\0\0;").expect("write");
    let e = load_rgb(&gif).expect_err("gif");
    let msg = e.to_string();
    assert!(msg.contains("Gif") && msg.contains("WebP, BMP or TIFF"), "{msg}");
    assert!(msg.contains("ffmpeg -i IN out.png"), "{msg}");
    // A truncated WebP is corrupt, not unsupported.
    let bytes = webp(&pattern(30, 30), None);
    let cut = d.path().join("cut.webp");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let e = load_rgb(&cut).expect_err("cut webp");
    assert!(e.to_string().contains("corrupt or truncated"), "{e}");
}

/// A JPEG cut short (here to 10 % of its bytes, as an interrupted download leaves it) is refused
/// naming the file: the decoder would fill the missing part with grey and report success.
#[test]
fn truncated_jpeg_is_refused() {
    let d = tmp();
    let whole = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/astronaut.jpg")).expect("example");
    let cut = d.path().join("cut.jpg");
    std::fs::write(&cut, &whole[..whole.len() / 10]).expect("write");
    // Not `expect_err`: on failure it would print the whole (grey-filled) picture.
    let Err(e) = load_rgb(&cut) else {
        panic!("a JPEG cut to 10 % was accepted (decoded with grey fill)");
    };
    assert!(matches!(e, PreprocessError::ImageRead { .. }), "{e}");
    assert!(
        e.to_string().contains("cut.jpg") && e.to_string().contains("truncated"),
        "{e}"
    );
    // Nine tenths is still truncated; the whole file, and one with bytes after its end marker (as
    // some cameras append), load.
    std::fs::write(&cut, &whole[..whole.len() * 9 / 10]).expect("write");
    assert!(load_rgb(&cut).is_err());
    let trailer = d.path().join("trailer.jpg");
    std::fs::write(&trailer, [whole.as_slice(), b"\0\0vendor trailer"].concat()).expect("write");
    assert!(load_rgb(&trailer).is_ok());
    // An EXIF thumbnail (a whole JPEG inside APP1) does not count as the image's end.
    let img = RgbImage::from_fn(40, 20, |x, y| Rgb([(x * 6) as u8, (y * 12) as u8, 90]));
    let main = jpeg_with_orientation(&img, 1);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&jpeg_with_orientation(&RgbImage::new(8, 8), 1));
    let mut with_exif = main[..2].to_vec();
    with_exif.extend_from_slice(&[0xFF, 0xE1]);
    with_exif.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(&app1);
    with_exif.extend_from_slice(&main[2..]);
    let path = d.path().join("exif.jpg");
    std::fs::write(&path, &with_exif).expect("write");
    assert!(load_rgb(&path).is_ok());
    std::fs::write(&path, &with_exif[..with_exif.len() - 2]).expect("write");
    assert!(load_rgb(&path).is_err(), "no end marker");
}
