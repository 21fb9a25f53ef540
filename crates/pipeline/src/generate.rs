//! `inference.py` as one function: portrait + speech → talking-head MP4.
//!
//! extract (`CropAndExtract.generate`) → mel + blinks (`get_data`) → Audio2Coeff → renderer windows
//! (`get_facerender_data`) → face renderer, frame by frame → aspect resize (and paste-back in the
//! `full` modes) → H.264 + AAC MP4. Frames stream from the renderer to the encoder; nothing holds the
//! whole video. With `--fallback still`, a failure after the inputs were read writes the portrait held
//! for the speech instead, tagged as degraded, and the report says which stage failed and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use image::RgbImage;
use sadtalker_audio::{LoadOptions, PyRandom, SAMPLE_RATE, Speech, load_speech};
use sadtalker_audio2coeff::speech::speech_input;
use sadtalker_audio2coeff::{Audio2CoeffInput, Audio2CoeffOptions, NoiseSource, SeededNoise};
use sadtalker_coeffs::facerender::FaceRenderInput;
use sadtalker_coeffs::file::{COEFF_KEY, FirstFrameFile, write_motion};
use sadtalker_coeffs::{CoeffTable, MOTION_DIM, MotionCoeff};
use sadtalker_ops::Precision;
use sadtalker_preprocess::Landmarks68;
use sadtalker_preprocess::extract::{ExtractOptions, Extracted, LandmarkSource, PictureLandmarks};
use sadtalker_preprocess::imgproc::cv_resize_linear;
use sadtalker_preprocess::paste::paste_back;
use sadtalker_render::FaceRenderer;
use sadtalker_video::{Audio, Mp4Writer, VideoSettings, write_still_video};
use serde::{Deserialize, Serialize};

use crate::compute::Compute;
use crate::error::{AtStage, Cause, ErrorKind, PipelineError, Problem, Stage, io_err};
use crate::frames::{facerender_input, prepare_source, render_frames, source_picture};
use crate::models::{ModelSource, Models};
use crate::options::{Fallback, GenerateOptions};
use crate::progress::Progress;
use crate::source_cache::{PortraitKey, PreparedPortrait};

/// A degraded result: which stage failed and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Degraded {
    /// The stage that failed.
    pub stage: Stage,
    /// Its kind.
    pub kind: ErrorKind,
    /// The problem (see [`PipelineError::code`]).
    pub code: Problem,
    /// The error message.
    pub reason: String,
}

/// A model file a job used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsed {
    /// What it is (`recon`, `audio2coeff`, `face renderer`, `mapping`, ...).
    pub role: String,
    /// Where it is.
    pub path: PathBuf,
}

/// What a finished job produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The video written.
    pub output: PathBuf,
    /// Frames in the video.
    pub frames: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Video duration (frames / fps).
    pub video_seconds: f64,
    /// Duration of the speech.
    pub audio_seconds: f64,
    /// Wall-clock seconds per stage (stages that ran), and `total`.
    pub seconds: BTreeMap<String, f64>,
    /// Set when the video is the still fallback.
    pub degraded: Option<Degraded>,
    /// Things worth knowing (silent audio, a custom checkpoint, a landmark fallback).
    pub warnings: Vec<String>,
    /// The model files used.
    pub models: Vec<ModelUsed>,
    /// Where the intermediate files are (`--verbose`).
    pub intermediates: Option<PathBuf>,
    /// The portrait was prepared by an earlier job of this process ([`crate::source_cache`]): no
    /// preprocessing ran and the renderer's source was reused.
    #[serde(default)]
    pub source_cached: bool,
    /// The precision the face renderer's convolutions ran at (fp32 when bf16 was asked for on a
    /// CPU without it; `warnings` then says so).
    #[serde(default)]
    pub precision: Precision,
    /// Where the convolutions ran: `cpu`, or the GPU's API (`vulkan`, `metal`, `dx12`).
    #[serde(default = "cpu")]
    pub device: String,
    /// The CPU's kernel level (`cpu (avx512)`) or the GPU adapter's name.
    #[serde(default)]
    pub device_name: String,
}

fn cpu() -> String {
    "cpu".to_owned()
}

/// Receives each final frame (index, picture) before it is encoded.
pub type FrameTap<'a> = &'a mut dyn FnMut(usize, &RgbImage);
/// Receives the motion coefficients and the blink ratios.
pub type CoeffTap<'a> = &'a mut dyn FnMut(&[MotionCoeff], &[f32]);

/// Optional taps into a run, for tests and tools.
#[derive(Default)]
pub struct Hooks<'a> {
    /// The head-motion latents (default: [`SeededNoise`] of the seed). Parity tests replay the
    /// reference's own `torch.randn` draws.
    pub noise: Option<&'a mut dyn NoiseSource>,
    /// Each final frame (after resize and paste-back), just before it is encoded.
    pub on_frame: Option<FrameTap<'a>>,
    /// The motion coefficients (frames × 70) and the blink ratios, once known.
    pub on_coeffs: Option<CoeffTap<'a>>,
}

/// Accumulates stage times.
#[derive(Default)]
struct Timer {
    seconds: BTreeMap<String, f64>,
}

impl Timer {
    fn add(&mut self, stage: Stage, d: Duration) {
        *self.seconds.entry(stage.as_str().to_owned()).or_default() += d.as_secs_f64();
    }

    fn time<T>(&mut self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(stage, t.elapsed());
        out
    }
}

/// The inputs, read and checked before any model is loaded.
struct Inputs {
    image: RgbImage,
    speech: Speech,
    landmarks: Option<Landmarks68>,
    ref_eyeblink: Option<RefInput>,
    ref_pose: Option<RefInput>,
    /// One line per reference video decoded through ffmpeg, shown once.
    notes: Vec<String>,
}

/// A `--ref-eyeblink` / `--ref-pose` input: coefficients already, or video frames to extract.
enum RefInput {
    Coeffs(CoeffTable),
    Frames(Vec<RgbImage>),
}

/// Runs one job (see the module docs).
pub fn generate(models: &Models, opts: &GenerateOptions, progress: &mut dyn Progress) -> Result<Report, PipelineError> {
    generate_with(models, opts, progress, Hooks::default())
}

/// [`generate`] with taps.
pub fn generate_with(
    models: &Models,
    opts: &GenerateOptions,
    progress: &mut dyn Progress,
    hooks: Hooks<'_>,
) -> Result<Report, PipelineError> {
    let started = Instant::now();
    let mut timer = Timer::default();
    progress.stage(Stage::Inputs, None);
    check_cancel(&*progress, Stage::Inputs)?;
    let t = Instant::now();
    opts.validate(models.sizes())?;
    crate::outputs::check_output_locations(opts)?;
    let inputs = read_inputs(opts)?;
    check_video_size(opts, &inputs.image)?;
    // Held to the end: it removes the reserved name's placeholder unless the video (or the still
    // fallback) was renamed over it.
    let (output, _reservation) = output_path(opts)?;
    timer.add(Stage::Inputs, t.elapsed());
    let mut warnings: Vec<String> = inputs
        .speech
        .warnings
        .iter()
        .map(|w| format!("{}: {w}", opts.driven_audio.display()))
        .collect();
    let compute = Compute::resolve(opts.device, opts.precision)?;
    warnings.extend(compute.warnings().cloned());
    for w in &warnings {
        progress.note(&format!("warning: {w}"));
    }
    for n in &inputs.notes {
        progress.note(n);
    }

    let mut source_cached = false;
    let result = run_stages(
        models,
        opts,
        &compute,
        &inputs,
        &output,
        progress,
        hooks,
        &mut timer,
        &mut warnings,
        &mut source_cached,
    );
    // The frames' buffers are free now; a serve or batch process need not hold them between jobs.
    sadtalker_ops::memory::release_free_memory();
    warnings.extend(models.take_warnings());
    // A report (and so `--json`) must say when the video is not from the model files.
    if !matches!(models.source(), ModelSource::Store(_)) {
        warnings.push("built-in deterministic test weights, not the model files: the video shows noise".into());
    }
    let models_used = models
        .files_used()
        .into_iter()
        .map(|(role, path)| ModelUsed { role, path })
        .collect();
    let (summary, degraded, intermediates) = match result {
        Ok((summary, intermediates)) => (summary, None, intermediates),
        // A cancelled run is stopped, not degraded: no fallback video.
        Err(e) if opts.fallback == Fallback::Still && !e.is_cancelled() => {
            let reason = e.to_string();
            progress.note(&format!(
                "{} failed; writing the still fallback video (--fallback still)",
                e.stage
            ));
            let t = Instant::now();
            let audio = Audio::mono(&inputs.speech.samples, SAMPLE_RATE);
            let still = write_still_video(
                &output,
                &inputs.image,
                audio,
                &format!("{} failed: {reason}", e.stage),
                VideoSettings::default(),
            );
            timer.add(Stage::Encode, t.elapsed());
            match still {
                Ok(summary) => (
                    summary,
                    Some(Degraded {
                        stage: e.stage,
                        kind: e.kind(),
                        code: e.code(),
                        reason,
                    }),
                    None,
                ),
                // The fallback could not be written either (e.g. the folder is read-only): the
                // original failure is the one to report.
                Err(_) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    timer
        .seconds
        .insert("total".to_owned(), started.elapsed().as_secs_f64());
    Ok(Report {
        output,
        frames: summary.frames,
        width: summary.width,
        height: summary.height,
        fps: summary.fps,
        video_seconds: summary.duration_secs,
        audio_seconds: inputs.speech.seconds(),
        seconds: timer.seconds,
        degraded,
        warnings,
        models: models_used,
        intermediates,
        source_cached,
        precision: compute.precision.ran,
        device: compute.device.kind.to_owned(),
        device_name: compute.device.name.clone(),
    })
}

/// The largest `--landmarks` file read (68 points need a few KB, even with comments and long decimals).
const MAX_LANDMARKS_BYTES: u64 = 1 << 20;

/// In the modes that paste the face back into the portrait, the video has the portrait's size (twice
/// it with an enhancer), known before any model runs: a size the encoder cannot take is refused now,
/// not after the whole render. (In the other modes frames are `--size` wide.)
fn check_video_size(opts: &GenerateOptions, image: &RgbImage) -> Result<(), PipelineError> {
    if !opts.preprocess.pastes_back() {
        return Ok(());
    }
    let factor = if opts.enhancer.is_some() { 2 } else { 1 };
    let (w, h) = (
        image.width().saturating_mul(factor),
        image.height().saturating_mul(factor),
    );
    sadtalker_video::check_frame_size(w, h).map_err(|e| {
        let (fw, fh) = sadtalker_video::fit_frame_size(image.width(), image.height());
        let (fw, fh) = (fw / factor, fh / factor);
        PipelineError::input(
            Stage::Inputs,
            format!(
                "--source-image {}: with --preprocess {} the video is the portrait's size{}, {w}x{h}: {e}. \
                 Resize the portrait to at most {fw}x{fh}, or use --preprocess crop (frames of --size)",
                opts.source_image.display(),
                opts.preprocess.as_str(),
                if factor == 2 { " ×2 (--enhancer)" } else { "" },
            ),
        )
    })
}

/// At most `limit` bytes of text from `path`: `Err(None)` when there is more, `Err(Some(_))` when it
/// cannot be read (or is not UTF-8).
fn read_bounded_text(path: &Path, limit: u64) -> Result<String, Option<std::io::Error>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_string(&mut text))
        .map_err(Some)?;
    if text.len() as u64 > limit {
        return Err(None);
    }
    Ok(text)
}

/// Reads the portrait, the speech, the landmarks and the reference inputs: every bad input fails here,
/// before minutes of model loading.
fn read_inputs(opts: &GenerateOptions) -> Result<Inputs, PipelineError> {
    let image = sadtalker_preprocess::io::load_rgb(&opts.source_image).at(Stage::Inputs)?;
    let speech = load_speech(
        &opts.driven_audio,
        &LoadOptions {
            max_seconds: opts.max_seconds,
        },
    )
    .at(Stage::Inputs)?;
    let landmarks = match &opts.landmarks {
        Some(path) => {
            // 68 lines of two numbers: a few KB. Read through a bound (not by the file's stated length,
            // which is 0 for a device or a pipe), so that a wrong file is refused instead of read whole.
            let text = read_bounded_text(path, MAX_LANDMARKS_BYTES).map_err(|e| match e {
                Some(e) => PipelineError::new(Stage::Inputs, io_err(path)(e)),
                None => PipelineError::input(
                    Stage::Inputs,
                    format!(
                        "--landmarks {}: over {MAX_LANDMARKS_BYTES} bytes; a landmarks file is 68 lines of `x y` (a few KB)",
                        path.display()
                    ),
                ),
            })?;
            Some(
                Landmarks68::parse(&text)
                    .map_err(|e| PipelineError::input(Stage::Inputs, format!("--landmarks {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let notes = std::cell::RefCell::new(Vec::new());
    let read_ref = |path: &Option<PathBuf>, what: &str| -> Result<Option<RefInput>, PipelineError> {
        let Some(path) = path else { return Ok(None) };
        let is_mat = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mat"));
        if is_mat {
            let table = CoeffTable::read(path, COEFF_KEY).at(Stage::Inputs)?;
            if table.rows == 0 || table.width < MOTION_DIM {
                return Err(PipelineError::input(
                    Stage::Inputs,
                    format!(
                        "{what} {}: `coeff_3dmm` is {}×{}; at least one row of 70 coefficients is needed",
                        path.display(),
                        table.rows,
                        table.width
                    ),
                ));
            }
            return Ok(Some(RefInput::Coeffs(table)));
        }
        let video = sadtalker_video::read_video(path).at(Stage::Inputs)?;
        if let Some(note) = &video.external {
            notes.borrow_mut().push(format!("{what} {}: {note}", path.display()));
        }
        if video.frames.is_empty() {
            return Err(PipelineError::input(
                Stage::Inputs,
                format!("{what} {}: the video has no frames", path.display()),
            ));
        }
        Ok(Some(RefInput::Frames(video.frames)))
    };
    let ref_eyeblink = read_ref(&opts.ref_eyeblink, "--ref-eyeblink")?;
    // The reference extracts a shared reference video once.
    let ref_pose = if opts.ref_pose.is_some() && opts.ref_pose == opts.ref_eyeblink {
        None
    } else {
        read_ref(&opts.ref_pose, "--ref-pose")?
    };
    Ok(Inputs {
        image,
        speech,
        landmarks,
        ref_eyeblink,
        ref_pose,
        notes: notes.into_inner(),
    })
}

/// `-o`, else `<result_dir>/<YYYY_MM_DD_HH.MM.SS>.mp4` in local time as the reference names it (`_2`,
/// `_3`, … when the name is taken). Creates the folder.
///
/// A time-stamped name is reserved by creating it exclusively ([`sadtalker_fsio::reserve_unique`]), so
/// that concurrent runs in one folder never pick the same name; the finished video is renamed over the
/// placeholder, and the returned reservation removes the placeholder if the job ends without a video.
fn output_path(opts: &GenerateOptions) -> Result<(PathBuf, Option<sadtalker_fsio::Reservation>), PipelineError> {
    let Some(path) = &opts.output else {
        let dir = &opts.result_dir;
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::new(Stage::Inputs, io_err(dir)(e)))?;
        let stamp = local_timestamp(SystemTime::now());
        let reserved = sadtalker_fsio::reserve_unique(dir, &stamp, "mp4")
            .map_err(|e| PipelineError::new(Stage::Inputs, io_err(dir)(e)))?;
        // A file just created exclusively cannot be one of the inputs.
        return Ok((reserved.path().to_owned(), Some(reserved)));
    };
    // A folder at `path` was refused by `outputs::check_output_locations`.
    check_output_is_not_an_input(path, opts)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::new(Stage::Inputs, io_err(dir)(e)))?;
    }
    Ok((path.clone(), None))
}

/// Refuses an output that would replace one of the job's inputs (the same file by identity, not by
/// name: links and `..` included) or that exists and is not a regular file (a device node, a pipe).
fn check_output_is_not_an_input(path: &Path, opts: &GenerateOptions) -> Result<(), PipelineError> {
    let inputs = [
        ("--source-image", Some(&opts.source_image)),
        ("--driven-audio", Some(&opts.driven_audio)),
        ("--landmarks", opts.landmarks.as_ref()),
        ("--ref-eyeblink", opts.ref_eyeblink.as_ref()),
        ("--ref-pose", opts.ref_pose.as_ref()),
    ];
    for (flag, input) in inputs {
        if let Some(input) = input
            && same_file::is_same_file(path, input).unwrap_or(false)
        {
            return Err(PipelineError::input(
                Stage::Inputs,
                format!(
                    "-o {}: is the {flag} file; the video would replace it. Give another output name",
                    path.display()
                ),
            ));
        }
    }
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        return Err(PipelineError::input(
            Stage::Inputs,
            format!(
                "-o {}: exists and is not a regular file (a device, pipe or socket); give a file name ending in .mp4",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// `strftime("%Y_%m_%d_%H.%M.%S")` of `t` in UTC (batch reports: comparable across machines).
pub fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format(STAMP_FORMAT)
        .to_string()
}

/// The same of `t` in local time, as the reference's `time.strftime` names its results.
pub fn local_timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format(STAMP_FORMAT)
        .to_string()
}

const STAMP_FORMAT: &str = "%Y_%m_%d_%H.%M.%S";

/// Everything after the inputs; its failures can degrade to the still video.
#[allow(clippy::too_many_arguments, reason = "one call site; the pieces of one job")]
fn run_stages(
    models: &Models,
    opts: &GenerateOptions,
    compute: &Compute,
    inputs: &Inputs,
    output: &Path,
    progress: &mut dyn Progress,
    hooks: Hooks<'_>,
    timer: &mut Timer,
    warnings: &mut Vec<String>,
    source_cached: &mut bool,
) -> Result<(sadtalker_video::WriteSummary, Option<PathBuf>), PipelineError> {
    // Models.
    progress.stage(Stage::Models, None);
    check_cancel(&*progress, Stage::Models)?;
    let t = Instant::now();
    models.ensure_files(opts, progress)?;
    let refs_need_detection = matches!(inputs.ref_eyeblink, Some(RefInput::Frames(_)))
        || matches!(inputs.ref_pose, Some(RefInput::Frames(_)));
    // A portrait prepared by an earlier job of this process needs no extractor, unless a reference
    // video does.
    let portrait_key = PortraitKey::new(&inputs.image, opts, inputs.landmarks.as_ref());
    let cached = models.source_cache().get(&portrait_key);
    let extractor = if cached.is_none() || refs_need_detection {
        Some(models.extractor(opts, inputs.landmarks.is_none() || refs_need_detection)?)
    } else {
        None
    };
    let a2c = models.audio2coeff(opts)?;
    let renderer = models.renderer(opts)?;
    let mut enhancer = match &opts.enhancer {
        Some(_) => Some(models.enhancer(opts)?),
        None => None,
    };
    timer.add(Stage::Models, t.elapsed());

    // Preprocess: the portrait, then the reference videos.
    progress.stage(Stage::Preprocess, None);
    check_cancel(&*progress, Stage::Preprocess)?;
    let t = Instant::now();
    let portrait = match (cached, &extractor) {
        (Some(p), _) => {
            progress.note("the portrait was prepared by an earlier job: crop, coefficients and source reused");
            Portrait::Cached(p)
        }
        (None, Some(extractor)) => {
            let landmarks = match &inputs.landmarks {
                Some(lm) => LandmarkSource::Given(Box::new(lm.clone())),
                None => LandmarkSource::Detect {
                    face_index: opts.face_index,
                    threshold: opts.face_threshold,
                },
            };
            // On the job's device, as the reference runs CropAndExtract on its.
            Portrait::Fresh(Box::new(
                compute
                    .run_fp32(|| {
                        extractor.extract(
                            std::slice::from_ref(&inputs.image),
                            &ExtractOptions {
                                mode: opts.preprocess,
                                pic_size: opts.size,
                                landmarks,
                            },
                        )
                    })
                    .at(Stage::Preprocess)?,
            ))
        }
        (None, None) => {
            return Err(PipelineError::new(
                Stage::Preprocess,
                Cause::Internal("no extractor for an unprepared portrait".into()),
            ));
        }
    };
    *source_cached = matches!(portrait, Portrait::Cached(_));
    let extracted = portrait.extracted();
    if extracted
        .picture_landmarks
        .iter()
        .any(|p| matches!(p, PictureLandmarks::StandardFace | PictureLandmarks::Previous(_)))
    {
        let w = "no face was found on the cut picture; the standard face's landmarks were used for the alignment \
                 (as the reference does)"
            .to_owned();
        progress.note(&format!("warning: {w}"));
        warnings.push(w);
    }
    let extract_ref =
        |r: &Option<RefInput>, flag: &str, path: &Option<PathBuf>| -> Result<Option<CoeffTable>, PipelineError> {
            match r {
                None => Ok(None),
                Some(RefInput::Coeffs(t)) => Ok(Some(t.clone())),
                Some(RefInput::Frames(frames)) => {
                    let extractor = extractor.as_ref().ok_or_else(|| {
                        PipelineError::new(
                            Stage::Preprocess,
                            Cause::Internal("no extractor for a reference video".into()),
                        )
                    })?;
                    // As the reference: the video's frames cut where its first frame's face is, 256 px.
                    let ex = compute
                        .run_fp32(|| {
                            extractor.extract(
                                frames,
                                &ExtractOptions {
                                    mode: opts.preprocess,
                                    pic_size: 256,
                                    landmarks: LandmarkSource::Detect {
                                        face_index: 0,
                                        threshold: opts.face_threshold,
                                    },
                                },
                            )
                        })
                        // The extractor speaks of "the source image"; here it is the reference video.
                        .map_err(|e| match e {
                            sadtalker_preprocess::PreprocessError::NoFace { best, threshold, .. } => {
                                sadtalker_preprocess::PreprocessError::NoFace {
                                    what: format!(
                                        "the first frame of the {flag} video {}",
                                        path.as_deref().unwrap_or(Path::new("?")).display()
                                    ),
                                    best,
                                    threshold,
                                }
                            }
                            other => other,
                        })
                        .at(Stage::Preprocess)?;
                    Ok(Some(CoeffTable::from_first_frame(&ex.coeffs)))
                }
            }
        };
    let ref_eyeblink = extract_ref(&inputs.ref_eyeblink, "--ref-eyeblink", &opts.ref_eyeblink)?;
    let ref_pose = if opts.ref_pose.is_some() && opts.ref_pose == opts.ref_eyeblink {
        ref_eyeblink.clone()
    } else {
        extract_ref(&inputs.ref_pose, "--ref-pose", &opts.ref_pose)?
    };
    timer.add(Stage::Preprocess, t.elapsed());
    let first_row = extracted
        .coeffs
        .first()
        .ok_or_else(|| PipelineError::new(Stage::Preprocess, Cause::Internal("no first-frame coefficients".into())))?;
    let first_frame = first_row.motion();
    let first_table = CoeffTable::from_first_frame(std::slice::from_ref(first_row));

    // Audio: mel spectrogram and blinks (`get_data`; Python's `random` seeded as `random.seed(seed)`).
    progress.stage(Stage::Audio, None);
    check_cancel(&*progress, Stage::Audio)?;
    let speech_in = timer.time(Stage::Audio, || {
        speech_input(&inputs.speech.samples, opts.use_blink, &mut PyRandom::seed(opts.seed))
    });
    let frames = speech_in.blink_ratio.len();

    // Audio2Coeff.
    progress.stage(Stage::Audio2Coeff, Some(2 * frames as u64));
    check_cancel(&*progress, Stage::Audio2Coeff)?;
    let t = Instant::now();
    let mut seeded = SeededNoise::new(opts.seed);
    let noise: &mut dyn NoiseSource = match hooks.noise {
        Some(n) => n,
        None => &mut seeded,
    };
    let a2c_out = a2c
        .generate(
            &Audio2CoeffInput {
                mels: &speech_in.windows,
                first_frame,
                blink_ratio: &speech_in.blink_ratio,
                ref_eyeblink: ref_eyeblink.as_ref(),
            },
            &Audio2CoeffOptions {
                pose_style: opts.pose_style,
                ref_pose,
                ..Default::default()
            },
            noise,
            &mut |stage, done, _total| {
                let offset = match stage {
                    sadtalker_audio2coeff::Stage::Expression => 0,
                    sadtalker_audio2coeff::Stage::Pose => frames,
                };
                progress.advance((offset + done) as u64);
            },
        )
        .at(Stage::Audio2Coeff)?;
    timer.add(Stage::Audio2Coeff, t.elapsed());
    if let Some(f) = hooks.on_coeffs {
        f(&a2c_out.coeffs, &speech_in.blink_ratio);
    }
    let generated = CoeffTable::from_motion(&a2c_out.coeffs);

    let intermediates = if opts.verbose {
        Some(write_intermediates(opts, output, extracted, &a2c_out.coeffs)?)
    } else {
        None
    };

    // The renderer's windows and source.
    let input = facerender_input(&first_table, &generated, opts)?;

    progress.stage(Stage::Render, Some(input.frame_num as u64));
    check_cancel(&*progress, Stage::Render)?;
    let t = Instant::now();
    let portrait = match portrait {
        // The key covers everything the source window is made from; compared anyway, as it is cheap.
        Portrait::Cached(p) if p.source_semantics == input.source_semantics => p,
        Portrait::Cached(p) => Arc::new(prepare_portrait(&renderer, p.extracted.clone(), &input, opts, compute)?),
        Portrait::Fresh(extracted) => {
            let p = Arc::new(prepare_portrait(&renderer, *extracted, &input, opts, compute)?);
            models.source_cache().insert(portrait_key, p.clone());
            p
        }
    };
    let extracted = &portrait.extracted;
    let prepared = &portrait.source;
    timer.add(Stage::Render, t.elapsed());

    // `AnimateFromCoeff.generate`: the square frame resized to the crop's aspect,
    // `(size, int(size * h / w))`, then (full modes) pasted into the portrait.
    let [ow, oh] = extracted.crop_info.original_size;
    let aspect_h = if ow > 0 {
        (f64::from(opts.size) * oh as f64 / ow as f64) as u32
    } else {
        opts.size
    };
    let settings = VideoSettings {
        frames_dir: opts.frames_dir.clone(),
        ..VideoSettings::default()
    };
    let mut writer = Mp4Writer::create(output, settings, Some(Audio::mono(&inputs.speech.samples, SAMPLE_RATE)))
        .at(Stage::Encode)?;
    let mut paste_time = Duration::ZERO;
    let mut enhance_time = Duration::ZERO;
    let mut encode_time = Duration::ZERO;
    let mut on_frame = hooks.on_frame;
    let paste = opts.preprocess.pastes_back();
    let loop_times = render_frames(&renderer, prepared, &input, opts.batch_size, compute, |i, frame| {
        let t = Instant::now();
        let mut frame = frame;
        if aspect_h != frame.height() || opts.size != frame.width() {
            frame = cv_resize_linear(&frame, opts.size, aspect_h.max(1));
        }
        if paste {
            frame = paste_back(&inputs.image, &frame, &extracted.crop_info).at(Stage::PasteBack)?;
        }
        paste_time += t.elapsed();
        if let Some(enh) = enhancer.as_mut() {
            // gfpgan's `enhance(..., paste_back=True)` on the final (pasted) frame, as the reference's
            // `enhancer_generator_with_len` does: faces restored, the frame upscaled ×2. One frame at a time.
            let t = Instant::now();
            frame = compute.run_fp32(|| enh.enhance(&frame)).at(Stage::Enhance)?.image;
            enhance_time += t.elapsed();
        }
        if let Some(f) = on_frame.as_mut() {
            f(i, &frame);
        }
        let t = Instant::now();
        writer.write_image(&frame).at(Stage::Encode)?;
        encode_time += t.elapsed();
        progress.advance(i as u64 + 1);
        check_cancel(&*progress, Stage::Render)?;
        Ok::<(), PipelineError>(())
    })?;
    timer.add(Stage::Render, loop_times.render);
    if paste {
        timer.add(Stage::PasteBack, paste_time);
    }
    if enhancer.is_some() {
        timer.add(Stage::Enhance, enhance_time);
    }
    let t = Instant::now();
    let summary = writer.finish().at(Stage::Encode)?;
    timer.add(Stage::Encode, encode_time + t.elapsed());
    Ok((summary, intermediates))
}

/// The portrait of a job: prepared by an earlier one, or extracted now (its source is prepared at the
/// render stage, once the renderer's windows are known).
enum Portrait {
    Cached(Arc<PreparedPortrait>),
    Fresh(Box<Extracted>),
}

impl Portrait {
    fn extracted(&self) -> &Extracted {
        match self {
            Portrait::Cached(p) => &p.extracted,
            Portrait::Fresh(e) => e,
        }
    }
}

/// The renderer's source for `extracted`'s picture and `input`'s source window.
fn prepare_portrait(
    renderer: &FaceRenderer,
    extracted: Extracted,
    input: &FaceRenderInput,
    opts: &GenerateOptions,
    compute: &Compute,
) -> Result<PreparedPortrait, PipelineError> {
    let picture = source_picture(&extracted.picture, opts.size)?;
    let source = prepare_source(renderer, &picture, input, compute).at(Stage::Render)?;
    Ok(PreparedPortrait {
        extracted,
        source,
        source_semantics: input.source_semantics.clone(),
    })
}

/// Fails with [`Cause::Cancelled`] when the caller asked the run to stop.
fn check_cancel(progress: &dyn Progress, stage: Stage) -> Result<(), PipelineError> {
    if progress.cancelled() {
        Err(PipelineError::cancelled(stage))
    } else {
        Ok(())
    }
}

/// Renderer errors inside the frame loop belong to the render stage.
impl From<sadtalker_render::RenderError> for PipelineError {
    fn from(e: sadtalker_render::RenderError) -> Self {
        PipelineError::new(Stage::Render, e)
    }
}

/// `--verbose`: what the reference keeps in its result folder, beside the video: the first-frame
/// `.mat` and cut picture (`first_frame_dir/`), the crop record, and the motion coefficients
/// (`<image>##<audio>.mat`).
fn write_intermediates(
    opts: &GenerateOptions,
    output: &Path,
    extracted: &Extracted,
    coeffs: &[MotionCoeff],
) -> Result<PathBuf, PipelineError> {
    let dir = output.with_extension("");
    let first_dir = dir.join("first_frame_dir");
    std::fs::create_dir_all(&first_dir).map_err(|e| PipelineError::new(Stage::Encode, io_err(&first_dir)(e)))?;
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "source".into())
    };
    let (pic, audio) = (stem(&opts.source_image), stem(&opts.driven_audio));
    FirstFrameFile {
        coeff: extracted.coeffs.clone(),
        full: Some(extracted.full),
    }
    .write(first_dir.join(format!("{pic}.mat")))
    .at(Stage::Encode)?;
    sadtalker_preprocess::io::save_png(&extracted.picture, &first_dir.join(format!("{pic}.png"))).at(Stage::Encode)?;
    let record = serde_json::to_string_pretty(&extracted.crop_info)
        .map_err(|e| PipelineError::new(Stage::Encode, Cause::Internal(e.to_string())))?;
    let record_path = first_dir.join(format!("{pic}_crop.json"));
    std::fs::write(&record_path, record).map_err(|e| PipelineError::new(Stage::Encode, io_err(&record_path)(e)))?;
    write_motion(dir.join(format!("{pic}##{audio}.mat")), coeffs).at(Stage::Encode)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn landmark_files_are_read_through_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("lm.txt");
        std::fs::write(&small, "1 2\n").unwrap();
        assert_eq!(read_bounded_text(&small, 4).unwrap(), "1 2\n");
        assert!(matches!(read_bounded_text(&small, 3), Err(None)), "one byte over");
        // A device states no length: the bound still holds.
        assert!(matches!(read_bounded_text(Path::new("/dev/zero"), 1 << 20), Err(None)));
        assert!(matches!(
            read_bounded_text(&dir.path().join("missing"), 10),
            Err(Some(_))
        ));
    }

    #[test]
    fn timestamps_match_strftime() {
        let t = |s: u64| timestamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(0), "1970_01_01_00.00.00");
        // 2024-02-29 13:05:09 UTC (a leap day).
        assert_eq!(t(1_709_211_909), "2024_02_29_13.05.09");
        // 2000-03-01 00:00:00 UTC.
        assert_eq!(t(951_868_800), "2000_03_01_00.00.00");
        assert_eq!(t(4_102_444_799), "2099_12_31_23.59.59");
    }
}
