//! The writer and reader through the public API, without external tools: round trips, length policy,
//! bad input, and the degraded still video.

mod common;

use std::path::Path;

use common::{burst_audio, dir_entries, psnr, synth_frame};
use image::RgbImage;
use sadtalker_video::{
    Audio, AudioCodec, DEGRADED_PREFIX, Frame, Mp4Reader, Mp4Writer, VideoError, VideoSettings, frames_for_audio,
    read_video, write_still_video,
};

const SR: u32 = 16_000;

/// Writes `n` synthetic frames of `w`×`h` with `audio` to `path`.
fn write_clip(path: &Path, w: u32, h: u32, n: u32, audio: Option<Audio<'_>>, settings: VideoSettings) -> Vec<Vec<u8>> {
    let mut writer = Mp4Writer::create(path, settings, audio).expect("create");
    let frames: Vec<Vec<u8>> = (0..n).map(|t| synth_frame(w, h, t)).collect();
    for f in &frames {
        writer
            .write_frame(Frame {
                width: w,
                height: h,
                rgb: f,
            })
            .expect("write frame");
    }
    let summary = writer.finish().expect("finish");
    assert_eq!(summary.frames, u64::from(n));
    frames
}

#[test]
fn frames_come_back_through_our_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clip.mp4");
    let audio = burst_audio(SR as usize * 2, 1, SR);
    let (w, h, n) = (128, 96, 50);
    let input = write_clip(&path, w, h, n, Some(Audio::mono(&audio, SR)), VideoSettings::default());

    let mut reader = Mp4Reader::open(&path).expect("open");
    let info = reader.info().clone();
    assert_eq!((info.width, info.height, info.frame_count), (w, h, n as usize));
    assert_eq!(info.fps, 25.0);
    assert!((info.duration_secs - 2.0).abs() < 1e-9);
    assert!(info.has_audio);
    let mut worst = f64::INFINITY;
    let mut sum = 0.0;
    let mut count = 0;
    while let Some(frame) = reader.next_frame().expect("decode") {
        assert_eq!(frame.dimensions(), (w, h));
        let p = psnr(frame.as_raw(), &input[count]);
        worst = worst.min(p);
        sum += p;
        count += 1;
    }
    assert_eq!(count, n as usize, "decoded frame count");
    println!(
        "our reader, default qp: PSNR mean {:.2} dB, worst frame {worst:.2} dB",
        sum / f64::from(n)
    );
    // Constant QP 24 on this content gives ~39 dB; 33 dB leaves room for encoder changes but still
    // catches colour-conversion or frame-order mistakes (which land well below 25 dB).
    assert!(worst > 33.0, "worst frame PSNR {worst:.2} dB");
}

#[test]
fn quality_setting_trades_size_for_fidelity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    for qp in [16u8, 32] {
        let path = dir.path().join(format!("q{qp}.mp4"));
        let settings = VideoSettings {
            qp,
            ..VideoSettings::default()
        };
        let input = write_clip(&path, 64, 64, 10, None, settings);
        let video = read_video(&path).expect("read");
        let p: f64 = video
            .frames
            .iter()
            .zip(&input)
            .map(|(f, i)| psnr(f.as_raw(), i))
            .sum::<f64>()
            / 10.0;
        let size = std::fs::metadata(&path).expect("size").len();
        println!("qp {qp}: PSNR {p:.2} dB, {size} bytes");
        results.push((p, size));
    }
    assert!(
        results[0].0 > results[1].0 + 3.0,
        "lower qp must be clearly better: {results:?}"
    );
    assert!(results[0].1 > results[1].1, "lower qp must be larger: {results:?}");
}

#[test]
fn odd_sizes_are_padded_by_repeating_the_edge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("odd.mp4");
    let (w, h) = (33, 17);
    let mut writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    let frame = synth_frame(w, h, 0);
    writer
        .write_frame(Frame {
            width: w,
            height: h,
            rgb: &frame,
        })
        .expect("frame");
    let summary = writer.finish().expect("finish");
    assert_eq!((summary.width, summary.height), (33, 17));
    assert_eq!((summary.coded_width, summary.coded_height), (34, 18));
    let video = read_video(&path).expect("read");
    let back = &video.frames[0];
    assert_eq!(back.dimensions(), (34, 18));
    // The original region survives; the extra column matches the last original column.
    let original = RgbImage::from_raw(w, h, frame).expect("image");
    let cropped = image::imageops::crop_imm(back, 0, 0, w, h).to_image();
    let p = psnr(cropped.as_raw(), original.as_raw());
    assert!(p > 30.0, "odd-size frame PSNR {p:.2} dB");
    for y in 0..h {
        let (a, b) = (back.get_pixel(w, y).0, back.get_pixel(w - 1, y).0);
        assert!(
            a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 24),
            "row {y}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn audio_length_is_fitted_to_the_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 1.5 s of audio under 25 frames (1 s): the last 0.5 s is cut.
    let long = burst_audio(SR as usize * 3 / 2, 1, SR);
    let mut w = Mp4Writer::create(
        dir.path().join("long.mp4"),
        VideoSettings::default(),
        Some(Audio::mono(&long, SR)),
    )
    .expect("create");
    for t in 0..25 {
        w.write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &synth_frame(32, 32, t),
        })
        .expect("frame");
    }
    let s = w.finish().expect("finish");
    let a = s.audio.expect("audio summary");
    assert_eq!((a.trimmed_samples, a.padded_samples), (u64::from(SR) / 2, 0));
    assert_eq!(s.duration_secs, 1.0);

    // 0.5 s of audio under 25 frames: 0.5 s of silence is added.
    let short = burst_audio(SR as usize / 2, 1, SR);
    let mut w = Mp4Writer::create(
        dir.path().join("short.mp4"),
        VideoSettings::default(),
        Some(Audio::mono(&short, SR)),
    )
    .expect("create");
    for t in 0..25 {
        w.write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &synth_frame(32, 32, t),
        })
        .expect("frame");
    }
    let s = w.finish().expect("finish");
    let a = s.audio.expect("audio summary");
    assert_eq!((a.trimmed_samples, a.padded_samples), (0, u64::from(SR) / 2));

    // The helper gives the frame count that covers the audio as the reference does (rounded down).
    assert_eq!(frames_for_audio(&Audio::mono(&long, SR), 25), 37);
    assert_eq!(frames_for_audio(&Audio::mono(&short, SR), 25), 12);
    assert_eq!(frames_for_audio(&Audio::mono(&[], SR), 25), 1);
}

#[test]
fn zero_frames_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.mp4");
    let writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    let err = writer.finish().expect_err("no frames");
    assert!(matches!(err, VideoError::NoFrames), "{err}");
    assert!(err.to_string().contains("at least one frame"), "{err}");
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );
}

#[test]
fn mismatched_frame_size_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mixed.mp4");
    let mut writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    writer
        .write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &synth_frame(32, 32, 0),
        })
        .expect("first");
    let err = writer
        .write_frame(Frame {
            width: 48,
            height: 32,
            rgb: &synth_frame(48, 32, 1),
        })
        .expect_err("size");
    let msg = err.to_string();
    assert!(msg.contains("frame 1 is 48x32 but the video is 32x32"), "{msg}");
    // The writer refuses to go on, and finishing does not produce a file.
    assert!(
        writer
            .write_frame(Frame {
                width: 32,
                height: 32,
                rgb: &synth_frame(32, 32, 2)
            })
            .is_err()
    );
    assert!(writer.finish().is_err());
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );
}

#[test]
fn bad_buffers_and_settings_are_rejected_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.mp4");
    let mut writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    let err = writer
        .write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &[0; 10],
        })
        .expect_err("short buffer");
    assert!(
        err.to_string().contains("holds 10 bytes but 32x32 RGB needs 3072"),
        "{err}"
    );
    drop(writer);

    let mut writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    let err = writer
        .write_frame(Frame {
            width: 8,
            height: 8,
            rgb: &[0; 192],
        })
        .expect_err("tiny");
    assert!(err.to_string().contains("16x16"), "{err}");
    drop(writer);

    let settings = VideoSettings {
        qp: 60,
        ..VideoSettings::default()
    };
    let err = Mp4Writer::create(&path, settings, None).err().expect("qp");
    assert!(err.to_string().contains("qp 60"), "{err}");

    let audio = [0.0f32; 100];
    for (a, needle) in [
        (
            Audio {
                samples: &audio,
                sample_rate: 12_345,
                channels: 1,
            },
            "sample rate 12345",
        ),
        (
            Audio {
                samples: &audio,
                sample_rate: SR,
                channels: 3,
            },
            "3 channels",
        ),
        (
            Audio {
                samples: &audio[..99],
                sample_rate: SR,
                channels: 2,
            },
            "99 samples",
        ),
        (
            Audio {
                samples: &[0.0, f32::NAN],
                sample_rate: SR,
                channels: 1,
            },
            "sample 1 is NaN",
        ),
    ] {
        let err = Mp4Writer::create(&path, VideoSettings::default(), Some(a))
            .err()
            .expect("bad audio");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );
}

#[test]
fn unwritable_output_paths_fail_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no/such/dir/out.mp4");
    let err = Mp4Writer::create(&missing, VideoSettings::default(), None)
        .err()
        .expect("missing dir");
    assert!(matches!(err, VideoError::Write { .. }), "{err}");
    assert!(err.to_string().contains("no/such/dir/out.mp4"), "{err}");

    let err = Mp4Writer::create(dir.path(), VideoSettings::default(), None)
        .err()
        .expect("a directory");
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn a_failed_write_keeps_the_previous_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.mp4");
    std::fs::write(&path, b"previous").expect("seed");
    let mut writer = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    writer
        .write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &synth_frame(32, 32, 0),
        })
        .expect("frame");
    drop(writer); // abandoned, e.g. a later stage failed
    assert_eq!(std::fs::read(&path).expect("read"), b"previous");
    assert_eq!(dir_entries(dir.path()), ["out.mp4"]);
}

#[test]
fn frames_dir_receives_exact_pngs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames_dir = dir.path().join("frames");
    let settings = VideoSettings {
        frames_dir: Some(frames_dir.clone()),
        ..VideoSettings::default()
    };
    let input = write_clip(&dir.path().join("clip.mp4"), 40, 30, 3, None, settings);
    assert_eq!(dir_entries(&frames_dir), ["000000.png", "000001.png", "000002.png"]);
    for (i, original) in input.iter().enumerate() {
        let png = image::open(frames_dir.join(format!("{i:06}.png")))
            .expect("png")
            .to_rgb8();
        assert_eq!(png.dimensions(), (40, 30));
        assert_eq!(png.as_raw(), original, "PNG {i} must be lossless");
    }
}

#[test]
fn still_video_holds_the_portrait_for_the_audio_and_is_marked_degraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("still.mp4");
    let portrait = RgbImage::from_raw(64, 80, synth_frame(64, 80, 0)).expect("image");
    // 1.23 s of audio: 31 frames (rounded up, no audio is cut).
    let audio = burst_audio(SR as usize * 123 / 100, 1, SR);
    let reason = "face renderer failed: out of memory";
    let s = write_still_video(
        &path,
        &portrait,
        Audio::mono(&audio, SR),
        reason,
        VideoSettings::default(),
    )
    .expect("still video");
    assert_eq!(s.frames, 31);
    let a = s.audio.expect("audio");
    assert_eq!(a.trimmed_samples, 0);
    assert!(a.padded_samples < u64::from(SR) / 25, "padding under one frame");

    let video = read_video(&path).expect("read");
    assert_eq!(video.frames.len(), 31);
    for f in &video.frames {
        let p = psnr(f.as_raw(), portrait.as_raw());
        assert!(p > 30.0, "still frame PSNR {p:.2} dB");
    }
    // The marker is in the file's metadata (ffprobe's view of it is checked in the ffmpeg tests).
    let bytes = std::fs::read(&path).expect("read");
    let marker = format!("{DEGRADED_PREFIX}{reason}");
    assert!(
        bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "marker missing"
    );
}

#[test]
fn flac_audio_track_is_written_when_chosen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flac.mp4");
    let audio = burst_audio(SR as usize, 2, SR);
    let settings = VideoSettings {
        audio_codec: AudioCodec::Flac,
        ..VideoSettings::default()
    };
    let mut w = Mp4Writer::create(
        &path,
        settings,
        Some(Audio {
            samples: &audio,
            sample_rate: SR,
            channels: 2,
        }),
    )
    .expect("create");
    for t in 0..25 {
        w.write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &synth_frame(32, 32, t),
        })
        .expect("frame");
    }
    let s = w.finish().expect("finish");
    let a = s.audio.expect("audio");
    assert_eq!((a.codec, a.priming_samples), ("flac", 0));
    assert!(read_video(&path).expect("read").frames.len() == 25);
}

#[test]
fn reader_names_the_problem_and_how_to_convert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |name: &str, bytes: &[u8], needle: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let err = Mp4Reader::open(&path).err().expect("must fail");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{name}: {msg}");
        assert!(
            msg.contains("ffmpeg -i INPUT -c:v libx264"),
            "{name}: no conversion hint in: {msg}"
        );
    };
    check(
        "clip.webm",
        &[0x1a, 0x45, 0xdf, 0xa3, 0, 0, 0, 0, 0, 0, 0, 0],
        "Matroska/WebM",
    );
    check("clip.avi", b"RIFF\0\0\0\0AVI LIST", "AVI");
    check("noise.mp4", &[7u8; 64], "not an MP4/MOV file");

    // A real file of ours, then damaged in two ways.
    let good = dir.path().join("good.mp4");
    write_clip(&good, 32, 32, 5, None, VideoSettings::default());
    let bytes = std::fs::read(&good).expect("read");
    // Cut before the index (which is at the end): unfinished file.
    check("cut.mp4", &bytes[..bytes.len() / 2], "unfinished recording");
    // Same file claiming to be HEVC.
    let mut hevc = bytes.clone();
    // The sample entry is the last "avc1" in the file (the index comes last; "avc1" also appears in `ftyp`).
    let at = hevc.windows(4).rposition(|w| w == b"avc1").expect("avc1");
    hevc[at..at + 4].copy_from_slice(b"hvc1");
    check("hevc.mp4", &hevc, "H.265/HEVC ('hvc1')");

    let missing = Mp4Reader::open(dir.path().join("missing.mp4")).err().expect("missing");
    assert!(missing.to_string().contains("missing.mp4"), "{missing}");
}

/// A damaged index never panics or allocates wildly: a single-byte corruption anywhere in `moov` either
/// still opens (and decodes or fails cleanly) or is refused with an error.
#[test]
fn damaged_index_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.mp4");
    let audio = burst_audio(SR as usize / 5, 1, SR);
    write_clip(
        &good,
        32,
        32,
        5,
        Some(Audio::mono(&audio, SR)),
        VideoSettings::default(),
    );
    let bytes = std::fs::read(&good).expect("read");
    let moov = bytes.windows(4).rposition(|w| w == b"moov").expect("moov") - 4;
    let path = dir.path().join("bad.mp4");
    let (mut opened, mut refused) = (0, 0);
    for i in moov..bytes.len() {
        // One of three corruptions per byte (all three for every byte takes too long for a unit test).
        {
            let value = [0x00, 0xff, bytes[i] ^ 0x01][i % 3];
            let mut damaged = bytes.clone();
            damaged[i] = value;
            std::fs::write(&path, &damaged).expect("write");
            match Mp4Reader::open(&path) {
                Ok(mut reader) => {
                    opened += 1;
                    // Decoding may succeed or fail; it must not panic.
                    for _ in 0..3 {
                        match reader.next_frame() {
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    println!("corrupted index: {opened} opened, {refused} refused");
    assert!(refused > 0 && opened > 0);
}

/// The writer can be moved to another thread (e.g. an encoding thread fed by a channel).
#[test]
fn writer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Mp4Writer<'static>>();
    assert_send::<Mp4Reader>();
}
