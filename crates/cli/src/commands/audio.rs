//! `sadtalker audio`: the speech front end on its own, for checking what the models will hear.

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use sadtalker_audio::frames::{frame_aligned, mel_windows};
use sadtalker_audio::{AudioError, HPARAMS, LoadOptions, MelSpectrogram, load_speech};
use serde_json::json;

use crate::exit::{Failure, Kind};

#[derive(Subcommand)]
pub enum AudioCmd {
    /// Decode a speech file and write its mel spectrogram (what Audio2Coeff hears) for debugging.
    ///
    /// The audio is decoded (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC), averaged to mono, resampled to
    /// 16 kHz and cut to whole 25 fps video frames, as the reference does. Writes the spectrogram
    /// `frames × 80` (or with --windows the per-video-frame windows `T × 80 × 16`) as float32 to a
    /// .npy or .safetensors file, chosen by the output's extension.
    Mel(MelArgs),
}

#[derive(Args)]
pub struct MelArgs {
    /// The speech file.
    audio: PathBuf,
    /// Output file: .npy or .safetensors (an existing file is replaced).
    #[arg(short, long, value_name = "OUT.npy|OUT.safetensors")]
    output: PathBuf,
    /// Write the per-video-frame windows (`indiv_mels`, T × 80 × 16) instead of the spectrogram.
    #[arg(long)]
    windows: bool,
    /// Refuse audio longer than this many seconds.
    #[arg(long, default_value_t = sadtalker_audio::decode::DEFAULT_MAX_SECONDS)]
    max_seconds: f64,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

impl From<AudioError> for Failure {
    fn from(e: AudioError) -> Self {
        let kind = match e {
            AudioError::Resample { .. } => Kind::Internal,
            _ => Kind::BadInput,
        };
        Failure::new(kind, e)
    }
}

pub fn run(cmd: AudioCmd) -> Result<(), Failure> {
    match cmd {
        AudioCmd::Mel(args) => mel(args),
    }
}

enum OutputFormat {
    Npy,
    Safetensors,
}

fn mel(args: MelArgs) -> Result<(), Failure> {
    let format = match args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => OutputFormat::Npy,
        Some("safetensors") => OutputFormat::Safetensors,
        _ => {
            return Err(Failure::new(
                Kind::BadInput,
                anyhow::anyhow!("{}: the output must end in .npy or .safetensors", args.output.display()),
            ));
        }
    };
    let speech = load_speech(
        &args.audio,
        &LoadOptions {
            max_seconds: args.max_seconds,
        },
    )?;
    for w in &speech.warnings {
        eprintln!("warning: {}: {w}", args.audio.display());
    }
    let (wav, num_frames) = frame_aligned(&speech.samples);
    let mel = MelSpectrogram::new(&HPARAMS).compute(&wav);
    let (name, shape, data) = if args.windows {
        let w = mel_windows(&mel, num_frames);
        ("indiv_mels", vec![w.num_frames, w.bands, 16], w.data)
    } else {
        ("mel", vec![mel.frames, mel.bands], mel.data)
    };
    let bytes = match format {
        OutputFormat::Npy => npy_f32(&shape, &data),
        OutputFormat::Safetensors => {
            let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &raw)
                .map_err(|e| Failure::new(Kind::Internal, anyhow::anyhow!("{e}")))?;
            let meta = HashMap::from([
                ("source".to_string(), args.audio.display().to_string()),
                ("video_frames".to_string(), num_frames.to_string()),
            ]);
            safetensors::tensor::serialize([(name, view)], Some(meta))
                .map_err(|e| Failure::new(Kind::Internal, anyhow::anyhow!("{e}")))?
        }
    };
    write_atomic(&args.output, &bytes).map_err(|e| {
        Failure::new(
            Kind::BadInput,
            anyhow::anyhow!("cannot write {}: {e}", args.output.display()),
        )
    })?;
    let src = &speech.source;
    if args.json {
        let doc = json!({
            "audio": args.audio,
            "output": args.output,
            "tensor": name,
            "shape": shape,
            "codec": src.codec,
            "sample_rate": src.sample_rate,
            "channels": src.channels,
            "seconds": speech.seconds(),
            "video_frames": num_frames,
            "priming_removed": src.priming_removed,
            "padding_removed": src.padding_removed,
            "warnings": speech.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else {
        println!(
            "{}: {} {} Hz × {} ch, {:.3} s → {} video frames at 25 fps; wrote `{name}` {:?} to {}",
            args.audio.display(),
            src.codec,
            src.sample_rate,
            src.channels,
            speech.seconds(),
            num_frames,
            shape,
            args.output.display()
        );
    }
    Ok(())
}

/// A float32 C-order `.npy` (format 1.0: magic, header dict padded to 64 bytes, data).
fn npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

use sadtalker_fsio::write_atomic;
