//! `sadtalker audio2coeff`: the reference's Audio2Coeff step on its own (`get_data` +
//! `Audio2Coeff.generate`): speech + the source image's coefficients → the per-frame motion
//! coefficients (`coeff_3dmm`, frames × 70) the face renderer animates.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use clap::Args;
use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressStyle};
use sadtalker_audio::{LoadOptions, PyRandom, load_speech};
use sadtalker_audio2coeff::audio2coeff::{LEGACY_AUDIO2EXP, LEGACY_AUDIO2POSE, safetensors_name};
use sadtalker_audio2coeff::speech::speech_input;
use sadtalker_audio2coeff::{
    Audio2Coeff, Audio2CoeffError, Audio2CoeffFiles, Audio2CoeffInput, Audio2CoeffOptions, SeededNoise, Stage,
};
use sadtalker_coeffs::file::{COEFF_KEY, write_motion};
use sadtalker_coeffs::{CoeffError, CoeffTable, MOTION_DIM, MotionCoeff};
use sadtalker_store::ModelStore;
use serde_json::json;

use crate::commands::models::StoreArgs;
use crate::exit::{Failure, Kind};

#[derive(Args)]
pub struct Audio2CoeffArgs {
    /// The speech (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC); one video frame per 40 ms.
    #[arg(long, value_name = "AUDIO")]
    driven_audio: PathBuf,
    /// The source image's coefficient file (`sadtalker extract`'s `<name>.mat`, `coeff_3dmm` ≥ 70
    /// columns): its expression and head pose are where the animation starts.
    #[arg(long, value_name = "FIRST.mat")]
    first_coeff: PathBuf,
    /// Output `.mat` (`coeff_3dmm`, frames × 70 float32, as the reference writes it).
    #[arg(short, long, value_name = "OUT.mat")]
    output: PathBuf,
    /// Head-motion style, 0 to 45 (the CVAE's class).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pose_style: u32,
    /// Accepted for the reference's command line: it changes nothing here (the reference passes
    /// `still` to `get_data`, which ignores it); still mode acts at face-render time.
    #[arg(long)]
    still: bool,
    /// Coefficients of a reference video (`sadtalker extract --video`) whose eye blinks (its
    /// expression) replace the random blinks.
    #[arg(long, value_name = "COEFFS.mat")]
    ref_eyeblink: Option<PathBuf>,
    /// Coefficients of a reference video whose head motion is added to the predicted pose.
    #[arg(long, value_name = "COEFFS.mat")]
    ref_pose: Option<PathBuf>,
    /// Seed of the random eye blinks (Python's `random.seed(N)`: the reference's blinks with the same
    /// seed) and of the head-motion latents: the same seed gives the same coefficients.
    #[arg(long, default_value_t = 0, value_name = "N")]
    seed: u64,
    /// No random eye blinks (the reference web UI's `use_blink=False`).
    #[arg(long)]
    no_blink: bool,
    /// Which combined checkpoint to take the networks from: SadTalker_V0.0.2_<size>.safetensors
    /// (else the other size, else the legacy auido2exp/auido2pose .pth pair).
    #[arg(long, default_value_t = 256, value_parser = clap::builder::PossibleValuesParser::new(["256", "512"])
        .map(|s| s.parse::<u32>().unwrap_or(256)))]
    size: u32,
    #[command(flatten)]
    store: StoreArgs,
    /// Refuse audio longer than this many seconds.
    #[arg(long, default_value_t = sadtalker_audio::decode::DEFAULT_MAX_SECONDS, value_name = "S")]
    max_seconds: f64,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

impl From<Audio2CoeffError> for Failure {
    fn from(e: Audio2CoeffError) -> Self {
        let kind = match &e {
            Audio2CoeffError::Nn(e) if e.is_weights() => Kind::Model,
            Audio2CoeffError::NoCheckpoint { .. } => Kind::Model,
            Audio2CoeffError::UnexpectedTensors { .. } => Kind::Model,
            Audio2CoeffError::Input(_) | Audio2CoeffError::Splice(_) => Kind::BadInput,
            _ => Kind::Internal,
        };
        Failure::new(kind, e)
    }
}

fn read_table(path: &Path, what: &str) -> Result<CoeffTable, Failure> {
    CoeffTable::read(path, COEFF_KEY).map_err(|e: CoeffError| {
        Failure::new(
            Kind::BadInput,
            anyhow::Error::new(e).context(format!("{what} {}", path.display())),
        )
    })
}

/// The Audio2Coeff weights: the combined checkpoint of `size`, else the other size, else the
/// legacy pair, each looked up in `--checkpoint-dir` and the model store.
fn locate(store: &ModelStore, size: u32) -> Result<Audio2CoeffFiles, Failure> {
    let other = if size == 512 { 256 } else { 512 };
    let mut first_err = None;
    for name in [safetensors_name(size), safetensors_name(other)] {
        match store.locate(&name) {
            Ok(found) => {
                if name != safetensors_name(size) {
                    eprintln!("note: {} not found; using {name}", safetensors_name(size));
                }
                return Ok(Audio2CoeffFiles::Safetensors(found.path));
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let (Ok(exp), Ok(pose)) = (store.locate(LEGACY_AUDIO2EXP), store.locate(LEGACY_AUDIO2POSE)) {
        return Ok(Audio2CoeffFiles::Legacy {
            audio2exp: exp.path,
            audio2pose: pose.path,
        });
    }
    Err(first_err.map_or_else(
        || Failure::new(Kind::Model, anyhow::anyhow!("no model files")),
        Failure::from,
    ))
}

pub fn run(args: Audio2CoeffArgs) -> Result<(), Failure> {
    let started = Instant::now();
    // Inputs first: a bad input should fail before the models load.
    let first = read_table(&args.first_coeff, "--first-coeff")?;
    if first.width < MOTION_DIM {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow::anyhow!(
                "--first-coeff {}: `coeff_3dmm` has {} columns; at least 70 (expression, angles, translation) are \
                 needed (is it a first-frame file from `sadtalker extract`?)",
                args.first_coeff.display(),
                first.width
            ),
        ));
    }
    let first_frame = MotionCoeff::from_slice(&first.row(0)[..MOTION_DIM])
        .map_err(|e| Failure::new(Kind::Internal, anyhow::anyhow!("{e}")))?;
    let ref_eyeblink = args
        .ref_eyeblink
        .as_deref()
        .map(|p| read_table(p, "--ref-eyeblink"))
        .transpose()?;
    let ref_pose = args
        .ref_pose
        .as_deref()
        .map(|p| read_table(p, "--ref-pose"))
        .transpose()?;
    sadtalker_coeffs::splice::check_pose_style(args.pose_style)
        .map_err(|e| Failure::new(Kind::BadInput, anyhow::anyhow!("--pose-style: {e}")))?;
    let speech = load_speech(
        &args.driven_audio,
        &LoadOptions {
            max_seconds: args.max_seconds,
        },
    )?;
    for w in &speech.warnings {
        eprintln!("warning: {}: {w}", args.driven_audio.display());
    }
    let mut blink_rng = PyRandom::seed(args.seed);
    let speech_in = speech_input(&speech.samples, !args.no_blink, &mut blink_rng);
    let frames = speech_in.blink_ratio.len();

    let store = args.store.open()?;
    let files = locate(&store, args.size)?;
    let net = Audio2Coeff::load(&files, &Device::Cpu)?;
    let loaded = started.elapsed();

    let show = !(args.quiet || args.json);
    let bar = if show {
        let b = ProgressBar::new(2 * frames as u64);
        b.set_style(
            ProgressStyle::with_template("Audio2Coeff {msg:10} {bar:30} {percent:>3}%  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let input = Audio2CoeffInput {
        mels: &speech_in.windows,
        first_frame,
        blink_ratio: &speech_in.blink_ratio,
        ref_eyeblink: ref_eyeblink.as_ref(),
    };
    let opts = Audio2CoeffOptions {
        pose_style: args.pose_style,
        ref_pose,
        ..Default::default()
    };
    let mut noise = SeededNoise::new(args.seed);
    let out = net.generate(&input, &opts, &mut noise, &mut |stage, done, _total| {
        let (msg, offset) = match stage {
            Stage::Expression => ("expression", 0),
            Stage::Pose => ("pose", frames),
        };
        bar.set_message(msg);
        bar.set_position((offset + done) as u64);
    })?;
    bar.finish_and_clear();
    write_motion(&args.output, &out.coeffs).map_err(|e| {
        Failure::new(
            Kind::BadInput,
            anyhow::Error::new(e).context(format!("writing {}", args.output.display())),
        )
    })?;

    let checkpoint = match &files {
        Audio2CoeffFiles::Safetensors(p) => vec![p.clone()],
        Audio2CoeffFiles::Legacy { audio2exp, audio2pose } => vec![audio2exp.clone(), audio2pose.clone()],
    };
    let blinks = speech_in.blink_ratio.iter().filter(|&&r| r >= 1.0).count();
    if args.json {
        let doc = json!({
            "output": args.output,
            "frames": frames,
            "fps": 25,
            "seconds": speech.seconds(),
            "pose_style": args.pose_style,
            "seed": args.seed,
            "blinks": if ref_eyeblink.is_some() { 0 } else { blinks },
            "ref_eyeblink": args.ref_eyeblink,
            "ref_pose": args.ref_pose,
            "checkpoint": checkpoint,
            "load_seconds": loaded.as_secs_f64(),
            "total_seconds": started.elapsed().as_secs_f64(),
            "warnings": speech.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else {
        println!(
            "{}: {frames} frames ({:.2} s at 25 fps), pose style {}, seed {} → {} (coeff_3dmm {frames}×70) in {:.1} s",
            args.driven_audio.display(),
            speech.seconds(),
            args.pose_style,
            args.seed,
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
