//! Parity with the reference (goldens from `tools/reference/gen_audio_goldens.py` on the
//! fixtures of `tools/reference/make_audio_fixtures.sh`), and the refusals of bad input.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};
use sadtalker_audio::frames::{frame_aligned, mel_windows};
use sadtalker_audio::{AudioError, AudioWarning, LoadOptions, load_speech, melspectrogram};
use sadtalker_parity::{Golden, assert_close, diff, fixtures_dir};
use sha2::{Digest, Sha256};

fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(data.to_vec(), shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> (Vec<f32>, Vec<usize>) {
    (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.dims().to_vec())
}

fn audio_path(name: &str) -> std::path::PathBuf {
    fixtures_dir().join("audio").join(name)
}

fn sha256_f32(v: &[f32]) -> String {
    let mut h = Sha256::new();
    for x in v {
        h.update(x.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every format decodes to the reference's length; the 16 kHz WAV bit for bit, the others within
/// the resampler/decoder difference; and the mel of what we load matches the reference's.
#[test]
fn formats_decode_like_librosa() {
    let golden = Golden::open("goldens/audio/load.safetensors");
    let mut seen = 0;
    for case in golden.cases() {
        let file = case.params["file"].as_str().unwrap().to_string();
        let speech = load_speech(fixtures_dir().join(&file), &LoadOptions::default()).unwrap();
        let ref_len = case.params["len"].as_u64().unwrap() as usize;
        let start = case.params["segment_start"].as_u64().unwrap() as usize;
        let seg = case.tensor("segment");
        let n = seg.dims()[0];
        let ours = tensor(&speech.samples[start..start + n], &[n]);
        let d = diff(&ours, &seg).unwrap();
        let (r, _) = flat(&seg);
        let err: f64 = speech.samples[start..start + n]
            .iter()
            .zip(&r)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let sig: f64 = r.iter().map(|b| f64::from(*b).powi(2)).sum();
        println!(
            "{file}: codec {}, {} Hz × {} ch, priming removed {}, padding removed {}; len {} (reference {ref_len}); \
             waveform vs librosa: max_abs {:.2e}, SNR {:.1} dB",
            speech.source.codec,
            speech.source.sample_rate,
            speech.source.channels,
            speech.source.priming_removed,
            speech.source.padding_removed,
            speech.samples.len(),
            d.max_abs,
            10.0 * (sig / err.max(1e-30)).log10()
        );
        let (wav, frames) = frame_aligned(&speech.samples);
        assert_eq!(
            frames,
            case.params["num_frames"].as_u64().unwrap() as usize,
            "{file}: video frames"
        );
        let mel = melspectrogram(&wav);
        let mel_ref = case.tensor("mel");
        let mel_ours = tensor(&mel.data, &[mel.frames, mel.bands]);
        if file.ends_with("speech_16k.wav") {
            assert_eq!(speech.samples.len(), ref_len);
            assert_eq!(
                sha256_f32(&speech.samples),
                case.params["sha256"].as_str().unwrap(),
                "not bit-exact"
            );
            let d = assert_close(&format!("{file} mel"), &mel_ours, &mel_ref, 1e-4 / 4.0);
            assert!(d.max_abs <= 1e-4, "{file}: mel max_abs {}", d.max_abs);
        } else {
            // M4A: the reference (audioread/ffmpeg) keeps the AAC end padding; we drop it.
            if !file.ends_with(".m4a") {
                assert_eq!(speech.samples.len(), ref_len, "{file}: length");
            }
            // Our resampler vs soxr (~65 dB SNR), plus the decoder's difference for lossy codecs.
            assert!(d.max_abs < 2e-3, "{file}: waveform max_abs {}", d.max_abs);
            // M4A: the reference keeps the AAC end padding (342 samples here), which changes the
            // resampled signal at the very end, so its last two mel frames are not compared.
            let frames = if file.ends_with(".m4a") {
                mel.frames - 2
            } else {
                mel.frames
            };
            let (a, _) = flat(&mel_ours.narrow(0, 0, frames).unwrap());
            let (b, _) = flat(&mel_ref.narrow(0, 0, frames).unwrap());
            let max_abs = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            let mean_abs = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
            println!("{file}: mel vs reference ({frames} frames): max_abs {max_abs:.2e}, mean_abs {mean_abs:.2e}");
            assert!(
                max_abs < 1e-2 && mean_abs < 2e-4,
                "{file}: mel max_abs {max_abs} mean_abs {mean_abs}"
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn mel_matches_reference_on_the_same_waveform() {
    let golden = Golden::open("goldens/audio/mel.safetensors");
    for case in golden.cases() {
        let (input, _) = flat(&case.tensor("input"));
        let mel = melspectrogram(&input);
        let ours = tensor(&mel.data, &[mel.frames, mel.bands]);
        let d = assert_close(case.name(), &ours, &case.tensor("output"), 1e-4 / 4.0);
        assert!(d.max_abs <= 1e-4, "{}: {}", case.name(), d.max_abs);
    }
}

#[test]
fn windows_of_all_frames_follow_the_reference_indexing() {
    // Every window of the 16 kHz clip is a gather of mel frames int(80 (i-2)/25) .. +16.
    let speech = load_speech(audio_path("speech_16k.wav"), &LoadOptions::default()).unwrap();
    let (wav, frames) = frame_aligned(&speech.samples);
    let mel = melspectrogram(&wav);
    let w = mel_windows(&mel, frames);
    assert_eq!(w.shape(), [1, 125, 1, 80, 16]);
    assert_eq!(mel.frames, 401);
    // Last frame: start int(80 * 122 / 25) = 390, frames 390..406 clamped to 400.
    let last = w.window(124);
    assert_eq!(last[15], mel.frame(400)[0]);
    assert_eq!(last[10], mel.frame(400)[0]);
    assert_eq!(last[0], mel.frame(390)[0]);
}

#[test]
fn bad_input_is_refused_clearly() {
    let load = |name: &str| load_speech(audio_path(name), &LoadOptions::default());
    let e = load("not_audio.wav").unwrap_err();
    assert!(matches!(e, AudioError::UnrecognizedFormat { .. }), "{e}");
    let e = load("truncated.m4a").unwrap_err();
    assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
    let e = load("badcodec.wav").unwrap_err();
    assert!(matches!(e, AudioError::UnsupportedCodec { .. }), "{e}");
    let e = load("opus_unsupported.ogg").unwrap_err();
    assert!(
        matches!(&e, AudioError::UnsupportedCodec { codec, .. } if codec == "Opus"),
        "{e}"
    );
    let e = load("empty.wav").unwrap_err();
    assert!(matches!(e, AudioError::Empty { .. }), "{e}");
    let e = load("tiny_16k.wav").unwrap_err();
    assert!(matches!(e, AudioError::TooShort { .. }), "{e}");
    assert!(e.to_string().contains("0.020 s"), "{e}");
    let e = load("missing.wav").unwrap_err();
    assert!(matches!(e, AudioError::Open { .. }), "{e}");
    let e = load_speech(audio_path("speech_22k.flac"), &LoadOptions { max_seconds: 2.0 }).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { .. }), "{e}");

    let cut = load("truncated.flac").unwrap();
    assert!(
        matches!(cut.warnings.as_slice(), [AudioWarning::Truncated { .. }]),
        "{:?}",
        cut.warnings
    );

    let silent = load("silence_16k.wav").unwrap();
    assert!(
        matches!(silent.warnings.as_slice(), [AudioWarning::Silent { .. }]),
        "{:?}",
        silent.warnings
    );
    assert!(load("speech_16k.wav").unwrap().warnings.is_empty());
}
