//! Crafted files (written by the tests) that once aborted the process, slipped past `--max-seconds`,
//! were called "too long" or "digital silence": each is refused with a clear error naming the file.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use sadtalker_audio::{AudioError, LoadOptions, load_speech};
use sadtalker_parity::fixtures_dir;

/// The fixture M4A with its one edit-list entry replaced by `(segment_duration, media_time)`.
fn m4a_with_edit(dir: &Path, segment_duration: u32, media_time: i32) -> PathBuf {
    let mut bytes = std::fs::read(fixtures_dir().join("audio/speech_22k.m4a")).unwrap();
    let at = bytes.windows(4).position(|w| w == b"elst").unwrap();
    // elst v0: type(4) version+flags(4) count(4), then (segment_duration, media_time, rate).
    assert_eq!(bytes[at + 8..at + 12], 1u32.to_be_bytes(), "one edit");
    bytes[at + 12..at + 16].copy_from_slice(&segment_duration.to_be_bytes());
    bytes[at + 16..at + 20].copy_from_slice(&media_time.to_be_bytes());
    let path = dir.join("crafted.m4a");
    std::fs::write(&path, bytes).unwrap();
    path
}

fn wav(dir: &Path, name: &str, format: u16, bits: u16, rate: u32, data: &[u8], declared: u32) -> PathBuf {
    let block = bits / 8;
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&(36u32.saturating_add(declared)).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&declared.to_le_bytes());
    b.extend_from_slice(data);
    let path = dir.join(name);
    std::fs::write(&path, b).unwrap();
    path
}

/// An empty edit of 2^32 − 1 movie ticks (49 days of silence at 1 kHz) used to be allocated as
/// hundreds of gigabytes of zeros, aborting the process; the limit now applies to the edited length.
#[test]
fn huge_empty_edit_is_refused_before_it_allocates() {
    let dir = tempfile::tempdir().unwrap();
    let path = m4a_with_edit(dir.path(), u32::MAX, -1);
    let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { seconds, .. } if seconds > 4e6), "{e}");
    assert!(e.to_string().contains("crafted.m4a"), "{e}");
}

/// `--max-seconds` holds for the audio the edit list makes: 5 s of speech behind 10 s of inserted
/// silence is 15 s, over a 12 s limit (it was checked on the 5 s decoded before the edit).
#[test]
fn max_seconds_applies_after_the_edit_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = m4a_with_edit(dir.path(), 10_000, -1);
    let e = load_speech(&path, &LoadOptions { max_seconds: 12.0 }).unwrap_err();
    assert!(
        matches!(e, AudioError::TooLong { seconds, .. } if (seconds - 15.0).abs() < 0.5),
        "{e}"
    );
    let ok = load_speech(&path, &LoadOptions { max_seconds: 20.0 }).unwrap();
    assert!((ok.seconds() - 15.0).abs() < 0.5, "{}", ok.seconds());
}

/// A WAV whose `data` chunk claims 2 GB but holds 0.1 s is damaged, not "too long".
#[test]
fn wav_claiming_more_than_it_holds_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let pcm: Vec<u8> = (0..1600u32)
        .flat_map(|i| ((i % 200) as i16 * 50).to_le_bytes())
        .collect();
    let path = wav(dir.path(), "cut.wav", 1, 16, 16_000, &pcm, 0x7fff_fff0);
    let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, AudioError::Truncated { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("cut.wav") && msg.contains("truncated"), "{msg}");
    assert!(!msg.contains("limit"), "{msg}");
}

/// NaN and infinite samples are refused when the file is read (they used to pass as "digital
/// silence" and fail only after the whole render).
#[test]
fn non_finite_samples_are_refused_at_input() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..1600).map(|i| if i % 3 == 0 { f32::NAN } else { 0.25 }).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = wav(dir.path(), "nan.wav", 3, 32, 16_000, &data, data.len() as u32);
    let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, AudioError::NonFinite { count: 534, .. }), "{e}");
    assert!(e.to_string().contains("nan.wav"), "{e}");

    let inf: Vec<u8> = (0..1600)
        .flat_map(|i| if i == 800 { f32::INFINITY } else { 0.1 }.to_le_bytes())
        .collect();
    let path = wav(dir.path(), "inf.wav", 3, 32, 16_000, &inf, inf.len() as u32);
    let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e, AudioError::NonFinite { count: 1, first_seconds, .. } if (first_seconds - 0.05).abs() < 1e-6),
        "{e}"
    );
}

/// Found by the fuzzer: a WAV header claiming 2 097 162 001 Hz made the resampler size its filter
/// table for that ratio, a 141 GB allocation that aborted the process. Such rates are refused.
#[test]
fn absurd_sample_rates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pcm = vec![0x80u8; 2000];
    for rate in [2_097_162_001u32, 999, 400_000] {
        let path = wav(dir.path(), "rate.wav", 1, 8, rate, &pcm, pcm.len() as u32);
        let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(e, AudioError::BadSampleRate { rate: r, .. } if r == rate),
            "{rate}: {e}"
        );
        assert!(e.to_string().contains("rate.wav"), "{e}");
    }
    let path = wav(dir.path(), "ok.wav", 1, 8, 8_000, &pcm, pcm.len() as u32);
    assert!(load_speech(&path, &LoadOptions::default()).is_ok());
}

/// Found by the fuzzer: a WAVE_FORMAT_EXTENSIBLE header with 257 channels and a 2-bit channel mask
/// panicked inside symphonia (a shift overflow); it is reported as a damaged file naming it.
#[test]
fn decoder_panic_is_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = b"RIFF".to_vec();
    b.extend_from_slice(&(4u32 + 48 + 8 + 64).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&0xfffeu16.to_le_bytes()); // WAVE_FORMAT_EXTENSIBLE
    b.extend_from_slice(&257u16.to_le_bytes()); // channels
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&(8000u32 * 257 * 2).to_le_bytes());
    b.extend_from_slice(&(257u16 * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(&22u16.to_le_bytes()); // extension size
    b.extend_from_slice(&16u16.to_le_bytes()); // valid bits
    b.extend_from_slice(&3u32.to_le_bytes()); // channel mask: 2 bits for 257 channels
    // KSDATAFORMAT_SUBTYPE_PCM
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&64u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 64]);
    let path = dir.path().join("mask.wav");
    std::fs::write(&path, b).unwrap();
    let e = load_speech(&path, &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, AudioError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("mask.wav"), "{e}");
}
