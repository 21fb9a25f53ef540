//! Cross-checks against ffmpeg/ffprobe, the de-facto reference reader: what another implementation sees
//! in our files (streams, frame count, fps, duration, start offsets, decoded audio alignment, PSNR), and
//! whether our reader decodes what ffmpeg/x264 writes.
//!
//! Each test prints a NOTICE and passes when ffmpeg/ffprobe is not installed on a dev machine; under
//! `CI=true` a missing tool fails the test (`.ci/run` installs ffmpeg).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{best_lag, burst_audio, ffmpeg_decode, ffprobe, field, have, psnr, synth_frame};
use image::RgbImage;
use sadtalker_video::{Audio, AudioCodec, Frame, Mp4Reader, Mp4Writer, VideoSettings, read_video, write_still_video};

/// Writes `n` synthetic `w`×`h` frames with `audio`; returns the input frames.
fn write_clip(path: &Path, w: u32, h: u32, n: u32, audio: Audio<'_>, codec: AudioCodec) -> Vec<Vec<u8>> {
    let settings = VideoSettings {
        audio_codec: codec,
        ..VideoSettings::default()
    };
    let mut writer = Mp4Writer::create(path, settings, Some(audio)).expect("create");
    let frames: Vec<Vec<u8>> = (0..n).map(|t| synth_frame(w, h, t)).collect();
    for f in &frames {
        writer
            .write_frame(Frame {
                width: w,
                height: h,
                rgb: f,
            })
            .expect("frame");
    }
    writer.finish().expect("finish");
    frames
}

fn parse(v: Option<&str>) -> f64 {
    v.and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

#[test]
fn ffprobe_sees_h264_and_aac_starting_together() {
    if !have("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clip.mp4");
    let sr = 16_000;
    // 2.0 s of audio, 50 frames at 25 fps.
    let audio = burst_audio(sr as usize * 2, 1, sr);
    write_clip(&path, 128, 96, 50, Audio::mono(&audio, sr), AudioCodec::default());

    let v = ffprobe(&path, &["-select_streams", "v:0", "-count_frames", "-show_streams"]);
    assert_eq!(field(&v, "codec_name"), Some("h264"));
    assert_eq!(field(&v, "pix_fmt"), Some("yuv420p"));
    assert_eq!(field(&v, "r_frame_rate"), Some("25/1"));
    assert_eq!(field(&v, "avg_frame_rate"), Some("25/1"));
    assert_eq!(field(&v, "nb_read_frames"), Some("50"));
    assert_eq!((field(&v, "width"), field(&v, "height")), (Some("128"), Some("96")));
    let a = ffprobe(&path, &["-select_streams", "a:0", "-show_streams"]);
    let expected_audio = if cfg!(feature = "aac") { "aac" } else { "flac" };
    assert_eq!(field(&a, "codec_name"), Some(expected_audio));
    assert_eq!(field(&a, "sample_rate"), Some("16000"));
    assert_eq!(field(&a, "channels"), Some("1"));
    let f = ffprobe(&path, &["-show_format"]);
    assert_eq!(field(&f, "nb_streams"), Some("2"));

    let (v_start, a_start) = (parse(field(&v, "start_time")), parse(field(&a, "start_time")));
    let (v_dur, a_dur, f_dur) = (
        parse(field(&v, "duration")),
        parse(field(&a, "duration")),
        parse(field(&f, "duration")),
    );
    println!(
        "ffprobe: video start {v_start} s, audio start {a_start} s; durations video {v_dur} audio {a_dur} file {f_dur}"
    );
    assert!(
        (v_start - a_start).abs() <= 0.001,
        "A/V start offset {} s",
        a_start - v_start
    );
    assert!(v_start.abs() <= 0.001);
    for d in [v_dur, a_dur, f_dur] {
        assert!((d - 2.0).abs() <= 0.04, "duration {d} s vs audio 2.0 s");
    }
}

#[test]
fn ffmpeg_decoded_audio_is_sample_aligned() {
    if !have("ffmpeg") {
        return;
    }
    let mut codecs = vec![AudioCodec::Flac];
    if cfg!(feature = "aac") {
        codecs.push(AudioCodec::Aac);
    }
    for codec in codecs {
        for (sr, channels) in [(16_000u32, 1usize), (44_100, 2), (48_000, 1)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("clip.mp4");
            let audio = burst_audio(sr as usize, channels, sr);
            write_clip(
                &path,
                64,
                48,
                25,
                Audio {
                    samples: &audio,
                    sample_rate: sr,
                    channels: channels as u16,
                },
                codec,
            );
            let raw = ffmpeg_decode(&path, &["-map", "0:a", "-f", "f32le"]);
            let decoded: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let (lag, r) = best_lag(&audio, channels, &decoded, channels, 1100);
            let frames = decoded.len() / channels;
            println!(
                "ffmpeg, {} {sr} Hz x{channels}: lag {lag} samples, correlation {r:.4}, {frames} samples",
                codec.name()
            );
            assert_eq!(lag, 0, "{} {sr} Hz: audio shifted by {lag} samples", codec.name());
            assert!(
                r > 0.9,
                "{} {sr} Hz: decoded audio unlike the input (r = {r})",
                codec.name()
            );
            // ffmpeg applies the edit list's start exactly; at the end it may keep the last access unit's
            // padding (under 1024 samples).
            assert!(
                (sr as usize..sr as usize + 1024).contains(&frames),
                "{frames} decoded samples"
            );
            if codec == AudioCodec::Flac {
                let exact = audio.iter().zip(&decoded).all(|(a, b)| (a - b).abs() <= 2.0 / 32767.0);
                assert!(exact, "FLAC must be lossless up to 16-bit quantisation");
            }
        }
    }
}

#[test]
fn ffmpeg_decoded_frames_match_the_input() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clip.mp4");
    let sr = 16_000;
    let audio = burst_audio(sr as usize, 1, sr);
    let (w, h) = (128usize, 96usize);
    let input = write_clip(
        &path,
        w as u32,
        h as u32,
        25,
        Audio::mono(&audio, sr),
        AudioCodec::default(),
    );
    let raw = ffmpeg_decode(&path, &["-map", "0:v", "-f", "rawvideo", "-pix_fmt", "rgb24"]);
    assert_eq!(raw.len(), 25 * w * h * 3, "ffmpeg decoded a different number of frames");
    let ours = read_video(&path).expect("our reader");
    let mut sum = 0.0;
    let mut worst = f64::INFINITY;
    for (i, frame) in raw.chunks_exact(w * h * 3).enumerate() {
        let p = psnr(frame, &input[i]);
        sum += p;
        worst = worst.min(p);
        // Both decoders agree closely (they differ only in chroma upsampling and rounding).
        let agreement = psnr(frame, ours.frames[i].as_raw());
        assert!(
            agreement > 38.0,
            "frame {i}: ffmpeg and our reader differ ({agreement:.1} dB)"
        );
    }
    println!(
        "ffmpeg-decoded PSNR vs input: mean {:.2} dB, worst {worst:.2} dB",
        sum / 25.0
    );
    assert!(worst > 33.0, "worst frame {worst:.2} dB");
}

#[test]
fn ffprobe_shows_the_degraded_marker_of_the_still_video() {
    if !have("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("still.mp4");
    let portrait = RgbImage::from_raw(96, 128, synth_frame(96, 128, 0)).expect("image");
    let sr = 44_100;
    let audio = burst_audio(sr as usize * 3 / 2, 2, sr);
    let audio = Audio {
        samples: &audio,
        sample_rate: sr,
        channels: 2,
    };
    write_still_video(
        &path,
        &portrait,
        audio,
        "face renderer failed",
        VideoSettings::default(),
    )
    .expect("still");
    let tags = ffprobe(
        &path,
        &["-show_entries", "format_tags", "-of", "default=noprint_wrappers=1"],
    );
    println!("{tags}");
    assert!(tags.contains("TAG:comment=degraded: face renderer failed"), "{tags}");
    let f = ffprobe(&path, &["-show_format"]);
    let duration = parse(field(&f, "duration"));
    assert!(
        (duration - 1.5).abs() <= 0.04,
        "still video lasts {duration} s, audio 1.5 s"
    );
}

/// Encodes `frames` with ffmpeg (`codec_args`) into `path`; false (with a notice) if the encoder is missing.
fn ffmpeg_encode(frames: &[Vec<u8>], w: u32, h: u32, codec_args: &[&str], path: &Path) -> bool {
    let mut child = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            &format!("{w}x{h}"),
            "-r",
            "25",
        ])
        .args(["-i", "-"])
        .args(codec_args)
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for f in frames {
            if stdin.write_all(f).is_err() {
                break;
            }
        }
    }
    let out = child.wait_with_output().expect("ffmpeg");
    if !out.status.success() {
        println!(
            "NOTICE: ffmpeg could not encode with {codec_args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
    true
}

#[test]
fn our_reader_decodes_x264_high_profile_with_b_frames() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (w, h, n) = (160u32, 120u32, 40u32);
    let frames: Vec<Vec<u8>> = (0..n).map(|t| synth_frame(w, h, t)).collect();
    for (name, args) in [
        (
            "high_bframes.mp4",
            &[
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-bf",
                "3",
                "-g",
                "12",
                "-crf",
                "18",
            ][..],
        ),
        ("main.mov", &["-c:v", "libx264", "-profile:v", "main", "-crf", "18"][..]),
        (
            "baseline_30fps.mp4",
            &["-c:v", "libx264", "-profile:v", "baseline", "-r", "30", "-crf", "18"][..],
        ),
    ] {
        let path = dir.path().join(name);
        if !ffmpeg_encode(&frames, w, h, &[args, &["-pix_fmt", "yuv420p"]].concat(), &path) {
            continue;
        }
        let mut reader = Mp4Reader::open(&path).expect("open x264 file");
        let info = reader.info().clone();
        let mut decoded = Vec::new();
        while let Some(f) = reader.next_frame().expect("decode") {
            decoded.push(f);
        }
        assert_eq!(decoded.len(), info.frame_count, "{name}: frame count");
        if name.contains("30fps") {
            // ffmpeg resampled 25 → 30 fps by duplicating frames; only the rate is checked.
            assert!((info.fps - 30.0).abs() < 1e-6, "{name}: fps {}", info.fps);
            continue;
        }
        assert_eq!(info.fps, 25.0, "{name}");
        assert_eq!(decoded.len(), n as usize, "{name}");
        // Frames come out in display order: each matches its own input far better than any other would.
        let mut worst = f64::INFINITY;
        for (i, f) in decoded.iter().enumerate() {
            assert_eq!(f.dimensions(), (w, h));
            worst = worst.min(psnr(f.as_raw(), &frames[i]));
        }
        println!("{name}: {} frames, worst PSNR vs input {worst:.2} dB", decoded.len());
        assert!(
            worst > 35.0,
            "{name}: worst frame {worst:.2} dB (reordering or colour error?)"
        );
    }
}

#[test]
fn our_reader_rejects_other_codecs_with_a_conversion_hint() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let frames: Vec<Vec<u8>> = (0..5).map(|t| synth_frame(64, 64, t)).collect();
    // MPEG-4 Part 2: what SadTalker's own example reference videos use.
    let path = dir.path().join("mpeg4.mp4");
    if !ffmpeg_encode(&frames, 64, 64, &["-c:v", "mpeg4"], &path) {
        return;
    }
    let err = Mp4Reader::open(&path).err().expect("must be rejected");
    let msg = err.to_string();
    assert!(msg.contains("MPEG-4 Part 2 ('mp4v')"), "{msg}");
    assert!(msg.contains("ffmpeg -i INPUT -c:v libx264"), "{msg}");
}
