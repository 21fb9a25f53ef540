//! Videos our in-process reader does not decode (MPEG-4 Part 2, HEVC, VP9, AV1, …, or containers
//! other than MP4/MOV such as Matroska/WebM and AVI), decoded by an `ffmpeg` executable run as a
//! subprocess.
//!
//! ffmpeg writes the first video stream as raw `rgb24` frames on a pipe; we read them one at a time
//! (memory: one frame), so a long video is never held by this reader. Size and rate come from
//! ffmpeg's own description of the stream (`ffmpeg -i FILE`), and the frame size is bounded before
//! any buffer is allocated. The conversion to RGB is ffmpeg's swscale with its defaults (BT.601,
//! limited range for untagged video), which is also what OpenCV's FFmpeg backend, the reference's
//! `cv2.VideoCapture`, uses. Rotation metadata is ignored (`-noautorotate`), as by [`crate::Mp4Reader`].
//!
//! The child process is killed when the reader is dropped before the end.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;

use crate::error::{Result, VideoError};
use crate::reader::VideoInfo;

/// Largest frame side accepted from an external decoder (8K video is 7680 wide).
pub const MAX_EXTERNAL_SIDE: u32 = 8192;

/// How much of ffmpeg's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// Finds an `ffmpeg` executable: `$SADTALKER_FFMPEG` if set (an empty value means "none"), else the
/// first `ffmpeg` on the `PATH`.
pub fn find_ffmpeg() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("SADTALKER_FFMPEG") {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    let path = std::env::var_os("PATH")?;
    let name: OsString = if cfg!(windows) {
        "ffmpeg.exe".into()
    } else {
        "ffmpeg".into()
    };
    std::env::split_paths(&path)
        .map(|dir| dir.join(&name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// What ffmpeg says about the first video stream of a file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StreamDescription {
    /// ffmpeg's codec name with its profile, e.g. `mpeg4 (Simple Profile)`.
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// From the container's `Duration:` line, 0 when unknown.
    pub duration_secs: f64,
    pub has_audio: bool,
}

/// Parses the stream listing ffmpeg prints for `ffmpeg -i FILE` (without an output): the first
/// `Stream #…: Video: CODEC …, WxH …, R fps` line, the `Duration:` line and whether an `Audio:` stream
/// exists. `None` when there is no video stream.
pub(crate) fn parse_stream_listing(text: &str) -> Option<StreamDescription> {
    let video = text
        .lines()
        .find(|l| l.trim_start().starts_with("Stream #") && l.contains(": Video: "))?;
    let (_, rest) = video.split_once(": Video: ")?;
    let parts = split_top_level(rest);
    let codec = parts.first()?.trim().to_owned();
    let parse_size = |tok: &str| -> Option<(u32, u32)> {
        let (w, h) = tok.split_once('x')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(w) && digits(h)) {
            return None;
        }
        Some((w.parse().ok()?, h.parse().ok()?))
    };
    let size = parts
        .iter()
        .skip(1)
        .find_map(|p| p.split_whitespace().find_map(parse_size));
    let (width, height) = size?;
    let rate = |unit: &str| {
        parts.iter().find_map(|p| {
            let p = p.trim();
            let v = p.strip_suffix(unit)?.trim();
            let v = v
                .strip_suffix('k')
                .map_or_else(|| v.parse::<f64>().ok(), |k| k.parse::<f64>().ok().map(|x| x * 1e3));
            v.filter(|x| x.is_finite() && *x > 0.0)
        })
    };
    let fps = rate(" fps").or_else(|| rate(" tbr")).unwrap_or(25.0);
    let duration_secs = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Duration: "))
        .and_then(|d| d.split(',').next())
        .and_then(parse_hms)
        .unwrap_or(0.0);
    let has_audio = text
        .lines()
        .any(|l| l.trim_start().starts_with("Stream #") && l.contains(": Audio: "));
    Some(StreamDescription {
        codec,
        width,
        height,
        fps,
        duration_secs,
        has_audio,
    })
}

/// Splits at commas that are not inside parentheses (`h264 (High) (avc1 / 0x31637661), yuv420p(tv,
/// bt709), 64x64` → three parts).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `HH:MM:SS.ss` → seconds.
fn parse_hms(s: &str) -> Option<f64> {
    let mut it = s.trim().split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next()?);
    let v = h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + sec.parse::<f64>().ok()?;
    v.is_finite().then_some(v)
}

/// Decodes the first video stream of a file through an `ffmpeg` subprocess, frame by frame.
pub struct FfmpegReader {
    path: PathBuf,
    codec: String,
    child: Child,
    stdout: ChildStdout,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
    frame_bytes: usize,
    info: VideoInfo,
    frames_read: u64,
    done: bool,
}

impl FfmpegReader {
    /// Asks `ffmpeg` what `path` holds, then starts decoding its first video stream. Errors name the
    /// file (and the codec once known).
    pub fn open(ffmpeg: &Path, path: &Path) -> Result<Self> {
        let failed = |reason: String| VideoError::Ffmpeg {
            path: path.to_path_buf(),
            codec: None,
            reason,
        };
        // The stream listing: `ffmpeg -i FILE` with no output prints it and exits with status 1.
        let probe = Command::new(ffmpeg)
            .args(["-hide_banner", "-nostdin", "-i"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("cannot run {} ({e})", ffmpeg.display())))?;
        let listing = String::from_utf8_lossy(&probe.stderr);
        let Some(desc) = parse_stream_listing(&listing) else {
            let last = listing
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.contains("At least one output file"))
                .unwrap_or("no video stream listed")
                .trim()
                .to_owned();
            return Err(failed(format!("ffmpeg finds no video stream it can read ({last})")));
        };
        let failed = |reason: String| VideoError::Ffmpeg {
            path: path.to_path_buf(),
            codec: Some(desc.codec.clone()),
            reason,
        };
        if desc.width == 0 || desc.height == 0 || desc.width > MAX_EXTERNAL_SIDE || desc.height > MAX_EXTERNAL_SIDE {
            return Err(failed(format!(
                "the frames are {}x{}; at most {MAX_EXTERNAL_SIDE} pixels per side are read",
                desc.width, desc.height
            )));
        }
        let frame_bytes = desc.width as usize * desc.height as usize * 3;
        let mut child = Command::new(ffmpeg)
            .args(["-hide_banner", "-nostdin", "-v", "error", "-noautorotate", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-an", "-sn", "-dn", "-fps_mode", "passthrough"])
            // Fixing the size keeps every frame `frame_bytes` long even if the stream changes size.
            .args(["-s", &format!("{}x{}", desc.width, desc.height)])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(format!("cannot run {} ({e})", ffmpeg.display())))?;
        let (Some(stdout), Some(mut err_pipe)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed("ffmpeg's output pipes could not be opened".into()));
        };
        // stderr is drained on a thread (a full pipe would stall ffmpeg); only its tail is kept.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut tail) = sink.lock() {
                    tail.extend_from_slice(&buf[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            }
        });
        let frame_count = if desc.duration_secs > 0.0 {
            (desc.duration_secs * desc.fps).round().min(1e9) as usize
        } else {
            0
        };
        let info = VideoInfo {
            width: desc.width,
            height: desc.height,
            fps: desc.fps,
            frame_count,
            duration_secs: desc.duration_secs,
            has_audio: desc.has_audio,
        };
        Ok(Self {
            path: path.to_path_buf(),
            codec: desc.codec,
            child,
            stdout,
            stderr,
            stderr_thread: Some(stderr_thread),
            frame_bytes,
            info,
            frames_read: 0,
            done: false,
        })
    }

    /// Size, frame rate and length; `frame_count` is ffmpeg's duration × rate, an estimate.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// ffmpeg's name of the video codec (with its profile), e.g. `hevc (Main)`.
    pub fn codec(&self) -> &str {
        &self.codec
    }

    /// The next frame, or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>> {
        if self.done {
            return Ok(None);
        }
        let mut buf = vec![0u8; self.frame_bytes];
        let mut filled = 0;
        while filled < buf.len() {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(format!("reading ffmpeg's output failed ({e})"))),
            }
        }
        if filled == buf.len() {
            self.frames_read += 1;
            return RgbImage::from_raw(self.info.width, self.info.height, buf)
                .map(Some)
                .ok_or_else(|| self.fail("a frame of inconsistent size".into()));
        }
        // End of the stream: ffmpeg must have exited cleanly after whole frames.
        self.done = true;
        let status = self
            .child
            .wait()
            .map_err(|e| self.fail(format!("waiting for ffmpeg failed ({e})")))?;
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        if !status.success() {
            let tail = self.stderr_tail();
            return Err(self.fail(format!(
                "ffmpeg stopped with {status} after {} frames: {tail}",
                self.frames_read
            )));
        }
        if filled != 0 {
            return Err(self.fail(format!(
                "ffmpeg's output ended inside frame {} ({filled} of {} bytes)",
                self.frames_read, self.frame_bytes
            )));
        }
        if self.frames_read == 0 {
            let tail = self.stderr_tail();
            return Err(self.fail(format!("ffmpeg decoded no frames {tail}").trim_end().to_owned()));
        }
        Ok(None)
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| String::from_utf8_lossy(&t).trim().replace('\n', "; "))
            .unwrap_or_default()
    }

    fn fail(&self, reason: String) -> VideoError {
        VideoError::Ffmpeg {
            path: self.path.clone(),
            codec: Some(self.codec.clone()),
            reason,
        }
    }
}

impl Iterator for FfmpegReader {
    type Item = Result<RgbImage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

impl Drop for FfmpegReader {
    fn drop(&mut self) {
        if !self.done {
            // Stopped early (an error, or the caller had enough frames): do not leave ffmpeg running.
            // The stderr thread ends when the pipe closes; it is not waited for here.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the first bytes of a file say its container is, for messages (`None`: MP4/MOV, or unknown).
pub(crate) fn sniff_container(path: &Path) -> Option<String> {
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut total = 0;
            loop {
                let n = f.read(&mut head[total..])?;
                if n == 0 || total + n == head.len() {
                    break Ok(total + n);
                }
                total += n;
            }
        })
        .ok()?;
    let head = &head[..n];
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        let has = |id: &[u8]| head.windows(id.len()).any(|w| w == id);
        let kind = if has(b"webm") { "WebM" } else { "Matroska" };
        let codec = [
            (&b"V_VP9"[..], "VP9"),
            (b"V_VP8", "VP8"),
            (b"V_AV1", "AV1"),
            (b"V_MPEGH/ISO/HEVC", "H.265/HEVC"),
            (b"V_MPEG4/ISO/AVC", "H.264"),
            (b"V_MPEG4/ISO", "MPEG-4 Part 2"),
        ]
        .into_iter()
        .find(|(id, _)| has(id))
        .map(|(_, name)| name);
        return Some(match codec {
            Some(c) => format!("{c} in a {kind} container"),
            None => format!("a {kind} file"),
        });
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"AVI " {
        return Some("an AVI file".into());
    }
    if head.len() >= 3 && &head[..3] == b"FLV" {
        return Some("an FLV file".into());
    }
    if head.starts_with(b"OggS") {
        return Some("an Ogg file".into());
    }
    if head.len() > 376 && head[0] == 0x47 && head[188] == 0x47 && head[376] == 0x47 {
        return Some("an MPEG transport stream".into());
    }
    if head.starts_with(&[0, 0, 1, 0xBA]) {
        return Some("an MPEG program stream".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_listings_of_several_codecs_parse() {
        let mp4v = "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'a.mp4':\n  Duration: 00:00:08.04, start: 0.000000, bitrate: 1 kb/s\n  \
            Stream #0:0[0x1](und): Video: mpeg4 (Simple Profile) (mp4v / 0x7634706D), yuv420p, 512x512 [SAR 1:1 DAR 1:1], 21 kb/s, 25 fps, 25 tbr, 12800 tbn (default)\n  \
            Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, mono, fltp, 69 kb/s (default)\n\
            At least one output file must be specified\n";
        let d = parse_stream_listing(mp4v).expect("parses");
        assert_eq!(d.codec, "mpeg4 (Simple Profile) (mp4v / 0x7634706D)");
        assert_eq!((d.width, d.height), (512, 512));
        assert_eq!(d.fps, 25.0);
        assert!((d.duration_secs - 8.04).abs() < 1e-9);
        assert!(d.has_audio);
        let webm = "Input #0, matroska,webm, from 'b.webm':\n  Duration: N/A, start: 0.000000\n  \
            Stream #0:0: Video: vp9 (Profile 0), yuv420p(tv, progressive), 64x48, SAR 1:1 DAR 4:3, 29.97 fps, 29.97 tbr, 1k tbn (default)\n";
        let d = parse_stream_listing(webm).expect("parses");
        assert_eq!(d.codec, "vp9 (Profile 0)");
        assert_eq!((d.width, d.height), (64, 48));
        assert!((d.fps - 29.97).abs() < 1e-9);
        assert_eq!(d.duration_secs, 0.0);
        assert!(!d.has_audio);
        let tbr_only = "  Stream #0:0: Video: hevc (Main), yuv420p(tv), 32x32, 12.50 tbr, 1k tbn\n";
        assert_eq!(parse_stream_listing(tbr_only).map(|d| d.fps), Some(12.5));
        assert_eq!(parse_stream_listing("  Stream #0:0: Audio: mp3, 44100 Hz\n"), None);
        assert_eq!(parse_stream_listing("garbage"), None);
    }
}
