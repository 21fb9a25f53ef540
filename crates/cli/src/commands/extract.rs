//! `sadtalker extract`: the reference's preprocessing (`CropAndExtract.generate`) on its own: find the
//! face, cut it as `--preprocess` says, and extract the 3DMM coefficients the renderer starts from.
//!
//! Writes `<name>.mat` (`coeff_3dmm` N×73, `full_3dmm` 1×257), `<name>_crop.png` (the cut picture)
//! and `<name>_crop.json` (the crop record paste-back needs, and the landmarks), all or nothing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use sadtalker_coeffs::file::FirstFrameFile;
use sadtalker_pipeline::GenerateOptions;
use sadtalker_preprocess::detect::CONF_THRESHOLD;
use sadtalker_preprocess::extract::{ExtractOptions, Extracted, LandmarkSource, PictureLandmarks};
use sadtalker_preprocess::{Landmarks68, PreprocessError, PreprocessMode, RgbImage};
use serde_json::{Value, json};

use crate::commands::generate::{ModelArgs, pipeline_failure};
use crate::exit::{Failure, Kind};

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["source_image", "video"]))]
pub struct ExtractArgs {
    /// The portrait (PNG, JPEG, WebP, BMP or TIFF; EXIF orientation is honoured; at most 4096 pixels per side).
    #[arg(long, value_name = "IMG")]
    source_image: Option<PathBuf>,
    /// A video (H.264 MP4/MOV) or a folder of frames (PNG/JPEG, in name order) to extract per frame,
    /// as for --ref-eyeblink / --ref-pose: every frame is cut where the first frame's face is.
    #[arg(long, value_name = "VIDEO|DIR")]
    video: Option<PathBuf>,
    /// Output folder (created if needed).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    /// How the face is cut: crop (the face), extcrop (a larger box), resize (the whole image),
    /// full / extfull (as crop / extcrop; the video is later pasted back into the full image).
    #[arg(long, value_name = "MODE", default_value = "crop")]
    preprocess: PreprocessMode,
    /// Side of the cut picture (the renderer's size).
    #[arg(long, default_value_t = 256, value_parser = parse_size)]
    size: u32,
    #[command(flatten)]
    models: ModelArgs,
    /// Which face when several are found: 0 is the largest × most confident.
    #[arg(long, value_name = "N", default_value_t = 0)]
    face_index: usize,
    /// Face probability a detection needs (the reference uses 0.97).
    #[arg(long, value_name = "F", default_value_t = CONF_THRESHOLD)]
    face_threshold: f32,
    /// 68 face landmarks of the (first) source frame, in its pixels, instead of detecting them: a text
    /// file of 136 numbers (x y per point; the reference's `np.savetxt` layout works). The landmarks in
    /// the cut picture are then mapped from these rather than detected again.
    #[arg(long, value_name = "FILE")]
    landmarks: Option<PathBuf>,
    #[arg(long, value_parser = crate::commands::generate::parse_device, default_value = "auto", value_name = "D",
          help = crate::commands::generate::DEVICE_HELP)]
    device: sadtalker_pipeline::DeviceChoice,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

impl From<PreprocessError> for Failure {
    fn from(e: PreprocessError) -> Self {
        let kind = match &e {
            PreprocessError::Nn(e) if e.is_weights() => Kind::Model,
            PreprocessError::ImageRead { .. }
            | PreprocessError::ImageTooLarge { .. }
            | PreprocessError::NoFace { .. }
            | PreprocessError::FaceIndex { .. }
            | PreprocessError::Landmarks(_)
            | PreprocessError::Geometry(_) => Kind::BadInput,
            PreprocessError::Io { .. } => Kind::BadInput,
            _ => Kind::Internal,
        };
        Failure::new(kind, e)
    }
}

/// `--size`: the two renderer sizes.
fn parse_size(s: &str) -> Result<u32, String> {
    match s {
        "256" => Ok(256),
        "512" => Ok(512),
        _ => Err(format!("`{s}`: the size is 256 or 512")),
    }
}

fn bad(msg: String) -> Failure {
    Failure::new(Kind::BadInput, anyhow::anyhow!(msg))
}

pub fn run(args: ExtractArgs) -> Result<(), Failure> {
    let started = Instant::now();
    // Inputs first: a bad input should fail before minutes of model loading.
    let (input, frames) = read_frames(&args)?;
    let given = match &args.landmarks {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| bad(format!("--landmarks {}: {e}", path.display())))?;
            let lm = Landmarks68::parse(&text).map_err(|e| bad(format!("--landmarks {}: {e}", path.display())))?;
            Some(lm)
        }
        None => None,
    };
    let name = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "source".into());

    // Models: the same files and lookup as `generate` (the reconstruction net from the safetensors of
    // this size, else the other size, else the legacy epoch_20.pth; the face nets only when detecting).
    let compute = sadtalker_pipeline::Compute::resolve(args.device, sadtalker_pipeline::Precision::Fp32)
        .map_err(pipeline_failure)?;
    if let Some(w) = &compute.device.warning
        && !args.json
    {
        eprintln!("warning: {w}");
    }
    let models = args.models.models(args.json)?;
    let job = GenerateOptions {
        size: args.size,
        ..GenerateOptions::default()
    };
    let extractor = models.extractor(&job, given.is_none()).map_err(pipeline_failure)?;
    let recon_file = models
        .files_used()
        .into_iter()
        .find_map(|(role, path)| (role == "recon").then_some(path));
    let loaded = started.elapsed();
    let opts = ExtractOptions {
        mode: args.preprocess,
        pic_size: args.size,
        landmarks: match given {
            Some(lm) => LandmarkSource::Given(Box::new(lm)),
            None => LandmarkSource::Detect {
                face_index: args.face_index,
                threshold: args.face_threshold,
            },
        },
    };
    // Detection, landmarks and the 3DMM reconstruction on the device, as in `generate`.
    let out = compute.run_fp32(|| extractor.extract(&frames, &opts))?;
    let extracted = started.elapsed();

    // Outputs, all or nothing.
    std::fs::create_dir_all(&args.output)
        .map_err(|e| bad(format!("-o {}: cannot create the folder: {e}", args.output.display())))?;
    let mat = args.output.join(format!("{name}.mat"));
    let png = args.output.join(format!("{name}_crop.png"));
    let record = args.output.join(format!("{name}_crop.json"));
    let crop_json = crop_record(&out, &input);
    write_all(&mat, &png, &record, &out, &crop_json)?;

    let summary = json!({
        "source": input,
        "frames": frames.len(),
        "mode": args.preprocess.as_str(),
        "size": args.size,
        "mat": mat,
        "picture": png,
        "crop_record": record,
        "recon_weights": recon_file,
        "landmarks": if args.landmarks.is_some() { "given" } else { "detected" },
        "face": crop_json["face"],
        "crop_info": crop_json["crop_info"],
        "trans_params": out.aligned.trans_params,
        "device": compute.device.kind,
        "device_name": compute.device.name,
        "seconds": {"load": loaded.as_secs_f64(), "extract": (extracted - loaded).as_secs_f64()},
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
    } else {
        println!(
            "{} ({} frame(s), --preprocess {})",
            input.display(),
            frames.len(),
            args.preprocess.as_str()
        );
        if let Some(f) = out.face.as_ref().and_then(|c| c.faces.get(c.index)) {
            println!(
                "  face {} of {}: score {:.3}, box {:?}",
                out.face.as_ref().map_or(0, |c| c.index),
                out.face.as_ref().map_or(0, |c| c.faces.len()),
                f.score,
                f.bbox
            );
        }
        let fallbacks = out
            .picture_landmarks
            .iter()
            .filter(|p| matches!(p, PictureLandmarks::StandardFace | PictureLandmarks::Previous(_)))
            .count();
        if fallbacks > 0 {
            println!("  warning: no face found on {fallbacks} cut picture(s); the reference's fallback was used");
        }
        println!("  wrote {}", mat.display());
        println!("  wrote {}", png.display());
        println!("  wrote {}", record.display());
        println!(
            "  {:.1} s (models {:.1} s) on {}",
            extracted.as_secs_f64(),
            loaded.as_secs_f64(),
            compute.device.name
        );
    }
    Ok(())
}

/// Frames from `--source-image` (one) or `--video` (an MP4, or a folder of images).
fn read_frames(args: &ExtractArgs) -> Result<(PathBuf, Vec<RgbImage>), Failure> {
    if let Some(img) = &args.source_image {
        return Ok((img.clone(), vec![sadtalker_preprocess::io::load_rgb(img)?]));
    }
    let Some(video) = &args.video else {
        return Err(bad("give --source-image or --video".into()));
    };
    if video.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(video)
            .map_err(|e| bad(format!("--video {}: {e}", video.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    sadtalker_preprocess::io::IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(bad(format!(
                "--video {}: the folder has no PNG, JPEG, WebP, BMP or TIFF frames",
                video.display()
            )));
        }
        let frames = files
            .iter()
            .map(|f| sadtalker_preprocess::io::load_rgb(f))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((video.clone(), frames));
    }
    let decoded = sadtalker_video::read_video(video)?;
    if decoded.frames.is_empty() {
        return Err(bad(format!("--video {}: no frames", video.display())));
    }
    for f in &decoded.frames {
        if f.width() > sadtalker_preprocess::io::MAX_SIDE || f.height() > sadtalker_preprocess::io::MAX_SIDE {
            return Err(bad(format!(
                "--video {}: frames of {}×{} exceed {} pixels per side",
                video.display(),
                f.width(),
                f.height(),
                sadtalker_preprocess::io::MAX_SIDE
            )));
        }
    }
    Ok((video.clone(), decoded.frames))
}

fn points(lm: &Landmarks68) -> Value {
    json!(lm.0.iter().map(|p| [p[0], p[1]]).collect::<Vec<_>>())
}

/// `<name>_crop.json`: the crop record (also in the reference's `crop_info` tuple layout), the face
/// chosen and the landmarks.
fn crop_record(out: &Extracted, input: &Path) -> Value {
    let info = &out.crop_info;
    let face = out.face.as_ref().map(|c| {
        json!({
            "found": c.faces.len(),
            "index": c.index,
            "faces": c.faces.iter().map(|f| json!({"bbox": f.bbox, "score": f.score, "landmarks5": f.landmarks}))
                .collect::<Vec<_>>(),
        })
    });
    let picture_landmarks: Vec<Value> = out
        .picture_landmarks
        .iter()
        .map(|p| match p {
            PictureLandmarks::Detected(l) => json!({"source": "detected", "points": points(l)}),
            PictureLandmarks::Mapped(l) => json!({"source": "mapped from the given landmarks", "points": points(l)}),
            PictureLandmarks::Previous(l) => json!({"source": "previous frame (no face found)", "points": points(l)}),
            PictureLandmarks::StandardFace => json!({"source": "standard face (no face found)", "points": null}),
        })
        .collect();
    json!({
        "source": input,
        "record": info,
        "crop_info": [info.original_size, info.crop, info.quad],
        "paste_box": info.paste_box(),
        "face": face,
        "source_landmarks": out.source_landmarks.as_ref().map(points),
        "picture_landmarks": picture_landmarks,
        "trans_params": out.aligned.trans_params,
    })
}

/// Writes the three outputs through temporary files in the output folder, renaming them into place
/// only when all are written: a failure leaves nothing behind.
fn write_all(mat: &Path, png: &Path, record: &Path, out: &Extracted, crop_json: &Value) -> Result<(), Failure> {
    let tmp = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
    };
    let (tm, tp, tr) = (tmp(mat), tmp(png), tmp(record));
    let result = (|| -> Result<(), Failure> {
        FirstFrameFile {
            coeff: out.coeffs.clone(),
            full: Some(out.full),
        }
        .write(&tm)
        .map_err(|e| Failure::new(Kind::BadInput, e))?;
        sadtalker_preprocess::io::save_png(&out.picture, &tp)?;
        let text = serde_json::to_string_pretty(crop_json).map_err(|e| Failure::new(Kind::Internal, e))?;
        std::fs::write(&tr, text).map_err(|e| bad(format!("{}: {e}", tr.display())))?;
        let mut renamed: Vec<&Path> = Vec::new();
        for (from, to) in [(&tm, mat), (&tp, png), (&tr, record)] {
            if let Err(e) = std::fs::rename(from, to) {
                // Do not leave a half set: take back what was already moved into place.
                for p in renamed {
                    let _ = std::fs::remove_file(p);
                }
                return Err(bad(format!("{}: {e}", to.display())));
            }
            renamed.push(to);
        }
        Ok(())
    })();
    if result.is_err() {
        for p in [&tm, &tp, &tr] {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}
