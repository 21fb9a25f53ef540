//! Reference videos in codecs and containers other than H.264 MP4: decoded through an `ffmpeg`
//! subprocess when one is available, refused with the codec and the conversion command when not.
//!
//! The clips are made at test time by ffmpeg (64 × 64, 10 frames of `testsrc`): MPEG-4 Part 2 in MP4
//! (as the official example videos), HEVC in MP4, VP9 in WebM, AV1 in Matroska, MPEG-4 Part 2 in AVI
//! and H.264 in Matroska. Each test prints a NOTICE and passes when ffmpeg is not installed on a dev
//! machine; under `CI=true` a missing ffmpeg fails (`.ci/run` installs it). The subprocess mechanics
//! (bounds, early drop, a failing decoder) are also checked with a stand-in shell script.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, psnr};
use sadtalker_video::{Frame, MAX_EXTERNAL_SIDE, Mp4Writer, VideoError, VideoReader, VideoSettings, read_video_with};

const W: u32 = 64;
const H: u32 = 64;
const N: usize = 10;

/// The `ffmpeg` on the PATH (tests that need it call `have("ffmpeg")` first).
fn ffmpeg() -> PathBuf {
    sadtalker_video::find_ffmpeg().expect("ffmpeg on the PATH")
}

/// Encodes `N` frames of ffmpeg's `testsrc` with `codec` into `dir/name`.
fn make_clip(dir: &Path, name: &str, codec_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={W}x{H}:rate=25"))
        .args(["-frames:v", &N.to_string(), "-pix_fmt", "yuv420p"])
        .args(codec_args)
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not write {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// ffmpeg's own decode of `path` to rgb24, frame by frame.
fn ffmpeg_frames(path: &Path) -> Vec<Vec<u8>> {
    let raw = common::ffmpeg_decode(path, &["-f", "rawvideo", "-pix_fmt", "rgb24"]);
    raw.chunks((W * H * 3) as usize).map(<[u8]>::to_vec).collect()
}

/// The source frames themselves (`testsrc` as rgb24), to check the colours are right.
fn source_frames() -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={W}x{H}:rate=25"))
        .args(["-frames:v", &N.to_string(), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success());
    out.stdout.chunks((W * H * 3) as usize).map(<[u8]>::to_vec).collect()
}

/// (file name, encoder arguments, what the message without ffmpeg must name)
fn cases() -> Vec<(&'static str, Vec<&'static str>, &'static str)> {
    vec![
        ("mpeg4.mp4", vec!["-c:v", "mpeg4", "-q:v", "2"], "MPEG-4 Part 2"),
        (
            "hevc.mp4",
            vec![
                "-c:v",
                "libx265",
                "-tag:v",
                "hvc1",
                "-x265-params",
                "log-level=error",
                "-crf",
                "18",
            ],
            "H.265/HEVC",
        ),
        (
            "vp9.webm",
            vec!["-c:v", "libvpx-vp9", "-crf", "20", "-b:v", "0"],
            "VP9 in a WebM container",
        ),
        (
            "av1.mkv",
            vec!["-c:v", "libaom-av1", "-cpu-used", "8", "-crf", "20"],
            "AV1 in a Matroska container",
        ),
        ("mpeg4.avi", vec!["-c:v", "mpeg4", "-q:v", "2"], "an AVI file"),
        (
            "h264.mkv",
            vec!["-c:v", "libx264", "-crf", "18"],
            "H.264 in a Matroska container",
        ),
    ]
}

#[test]
fn every_common_codec_decodes_through_ffmpeg_and_is_refused_clearly_without_it() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let source = source_frames();
    assert_eq!(source.len(), N);
    for (name, args, what) in cases() {
        let path = make_clip(dir.path(), name, &args);

        // With ffmpeg: every frame, exactly as ffmpeg itself converts it, close to the source.
        let video = read_video_with(&path, Some(&ffmpeg())).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(video.frames.len(), N, "{name}");
        assert!((video.fps - 25.0).abs() < 1e-6, "{name}: fps {}", video.fps);
        let note = video.external.as_deref().unwrap_or_default();
        assert!(note.contains("decoded through ffmpeg"), "{name}: note {note:?}");
        let theirs = ffmpeg_frames(&path);
        assert_eq!(theirs.len(), N, "{name}");
        for (i, f) in video.frames.iter().enumerate() {
            assert_eq!(f.dimensions(), (W, H), "{name} frame {i}");
            assert_eq!(f.as_raw(), &theirs[i], "{name} frame {i}: not ffmpeg's own decode");
            // testsrc's sharp colour bars lose much in 4:2:0 at 64 × 64 (~20 dB); swapped channels or a
            // misaligned frame would give well under 12.
            let db = psnr(f.as_raw(), &source[i]);
            assert!(db > 15.0, "{name} frame {i}: {db:.1} dB against the source");
            if i == 0 {
                println!("{name}: frame 0 at {db:.1} dB against the source");
            }
        }

        // Without ffmpeg: the codec named, and the one command that converts the file.
        let e = read_video_with(&path, None).expect_err(name);
        assert!(matches!(e, VideoError::NeedsFfmpeg { .. }), "{name}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(what), "{name}: `{what}` not in: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
        let command = sadtalker_video::convert_command(&path);
        assert!(msg.contains(&command), "{name}: {msg}");
        assert!(
            command.starts_with("ffmpeg -i ") && command.contains("-c:v libx264"),
            "{command}"
        );
    }
}

#[test]
fn h264_mp4_stays_in_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ours.mp4");
    let mut w = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    for t in 0..3 {
        let rgb = common::synth_frame(W, H, t);
        w.write_frame(Frame {
            width: W,
            height: H,
            rgb: &rgb,
        })
        .expect("frame");
    }
    w.finish().expect("finish");
    // No ffmpeg needed, none used.
    let r = VideoReader::open_with(&path, None).expect("in process");
    assert!(matches!(r, VideoReader::Mp4(_)));
    assert!(r.external_note().is_none());
    let bogus = Path::new("/nonexistent/ffmpeg");
    let v = read_video_with(&path, Some(bogus)).expect("ffmpeg is not even tried");
    assert_eq!(v.frames.len(), 3);
    assert!(v.external.is_none());
}

#[test]
fn text_and_missing_files_are_not_sent_to_ffmpeg_as_videos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("gone.mp4");
    let e = read_video_with(&missing, None).expect_err("missing");
    assert!(matches!(e, VideoError::Read { .. }), "{e}");
    if !have("ffmpeg") {
        return;
    }
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video at all").expect("write");
    let e = read_video_with(&text, Some(&ffmpeg())).expect_err("text");
    let msg = e.to_string();
    assert!(msg.contains("notes.mp4"), "{msg}");
}

/// A stand-in `ffmpeg`: prints a stream listing for `-i FILE` alone and, when asked for rawvideo,
/// runs `decode` (a shell snippet writing to stdout).
#[cfg(unix)]
fn fake_ffmpeg(dir: &Path, listing: &str, decode: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("ffmpeg");
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in\n  *rawvideo*) {decode} ;;\n  *) printf '%s\\n' '{listing}' >&2; exit 1 ;;\nesac\n"
    );
    std::fs::write(&path, script).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[cfg(unix)]
fn hevc_file(dir: &Path) -> PathBuf {
    // Any non-MP4 content makes the reader turn to ffmpeg.
    let p = dir.join("clip.mkv");
    std::fs::write(&p, [0x1A, 0x45, 0xDF, 0xA3, 0x42, 0x86]).expect("write");
    p
}

#[cfg(unix)]
#[test]
fn the_subprocess_is_bounded_streamed_and_killed_when_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clip = hevc_file(dir.path());
    let stream = |size: &str| format!("  Stream #0:0: Video: hevc (Main), yuv420p(tv), {size}, 25 fps, 25 tbr");

    // A frame size beyond the bound is refused before anything is allocated or decoded.
    let big = MAX_EXTERNAL_SIDE + 1;
    let ff = fake_ffmpeg(dir.path(), &stream(&format!("{big}x{big}")), "cat /dev/zero");
    let e = VideoReader::open_with(&clip, Some(&ff)).err().expect("too large");
    let msg = e.to_string();
    assert!(
        msg.contains("clip.mkv") && msg.contains("hevc") && msg.contains("8192"),
        "{msg}"
    );

    // An endless stream: frames come one at a time, and dropping the reader kills ffmpeg (else the
    // drop would wait forever on `cat /dev/zero`).
    let ff = fake_ffmpeg(dir.path(), &stream("16x8"), "exec cat /dev/zero");
    let mut r = VideoReader::open_with(&clip, Some(&ff)).expect("opens");
    assert_eq!((r.info().width, r.info().height), (16, 8));
    for _ in 0..5 {
        let f = r.next_frame().expect("frame").expect("more frames");
        assert_eq!(f.dimensions(), (16, 8));
    }
    drop(r);

    // A decoder that fails part-way: the error names the file, the codec and ffmpeg's message.
    let ff = fake_ffmpeg(
        dir.path(),
        &stream("16x8"),
        "head -c 384 /dev/zero; echo 'Invalid data found when processing input' >&2; exit 1",
    );
    let mut r = VideoReader::open_with(&clip, Some(&ff)).expect("opens");
    assert!(r.next_frame().expect("first frame").is_some());
    let e = r.next_frame().expect_err("fails");
    let msg = e.to_string();
    assert!(
        msg.contains("clip.mkv") && msg.contains("hevc") && msg.contains("Invalid data found"),
        "{msg}"
    );

    // Output that stops inside a frame is an error too, never a short frame.
    let ff = fake_ffmpeg(dir.path(), &stream("16x8"), "head -c 500 /dev/zero");
    let mut r = VideoReader::open_with(&clip, Some(&ff)).expect("opens");
    assert!(r.next_frame().expect("first frame").is_some());
    let msg = r.next_frame().expect_err("partial").to_string();
    assert!(msg.contains("ended inside frame 1"), "{msg}");

    // No video stream at all.
    let ff = fake_ffmpeg(dir.path(), "  Stream #0:0: Audio: mp3, 44100 Hz", "true");
    let msg = VideoReader::open_with(&clip, Some(&ff))
        .err()
        .expect("no video")
        .to_string();
    assert!(msg.contains("no video stream"), "{msg}");
}
