//! Reading H.264 MP4/MOV videos back as RGB frames (for `--ref-eyeblink` / `--ref-pose` videos).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{Result, VideoError};
use crate::external::{FfmpegReader, find_ffmpeg, sniff_container};
use crate::h264::{DecodedFrame, H264Decoder};
use crate::mp4::demux::{DemuxError, VideoTrack, read_video_track};

/// What a video file holds, known before decoding.
#[derive(Clone, Debug)]
pub struct VideoInfo {
    /// Frame size from the sample description.
    pub width: u32,
    /// Frame size from the sample description.
    pub height: u32,
    /// Frames per second (the average for variable-rate files).
    pub fps: f64,
    /// Number of frames (samples in the video track).
    pub frame_count: usize,
    /// Video track duration in seconds.
    pub duration_secs: f64,
    /// Whether the file also has an audio track (not decoded here).
    pub has_audio: bool,
}

/// Decodes the H.264 video track of an MP4/MOV file frame by frame, in display order.
///
/// Colour is converted as BT.601 limited range, as OpenCV's reader (used by the reference) does for
/// untagged video; edit lists and rotation metadata are ignored, as there.
pub struct Mp4Reader {
    path: PathBuf,
    file: BufReader<File>,
    track: VideoTrack,
    decoder: H264Decoder,
    next_sample: usize,
    ready: VecDeque<DecodedFrame>,
    flushed: bool,
    buf: Vec<u8>,
    info: VideoInfo,
}

pub(crate) fn demux_error(path: &Path, e: DemuxError) -> VideoError {
    match e {
        DemuxError::Io(source) => VideoError::Read {
            path: path.to_path_buf(),
            source,
        },
        DemuxError::Invalid(reason) => VideoError::UnreadableMp4 {
            path: path.to_path_buf(),
            reason,
        },
        DemuxError::Codec(codec) => VideoError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec,
        },
    }
}

/// A decoder error while reading a file is the file's fault (the decoder only sees its bytes):
/// name the file, so that it counts as bad input rather than as a bug.
fn damaged(path: &Path, e: VideoError) -> VideoError {
    match e {
        VideoError::H264 { stage, message } => VideoError::DamagedVideo {
            path: path.to_path_buf(),
            detail: format!("{stage}: {message}"),
        },
        other => other,
    }
}

impl Mp4Reader {
    /// Opens `path` and reads its index; fails with a conversion hint when it is not H.264 MP4.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| VideoError::Read {
            path: path.clone(),
            source,
        })?;
        let mut file = BufReader::new(file);
        let track = read_video_track(&mut file).map_err(|e| demux_error(&path, e))?;
        let decoder = H264Decoder::new(&track.parameter_sets, track.nal_length_size).map_err(|e| damaged(&path, e))?;
        let info = VideoInfo {
            width: track.width,
            height: track.height,
            fps: track.fps(),
            frame_count: track.samples.len(),
            duration_secs: track.duration as f64 / f64::from(track.timescale),
            has_audio: track.has_audio,
        };
        Ok(Self {
            path,
            file,
            track,
            decoder,
            next_sample: 0,
            ready: VecDeque::new(),
            flushed: false,
            buf: Vec::new(),
            info,
        })
    }

    /// Size, frame rate and length.
    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The next frame in display order, or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>> {
        while self.ready.is_empty() {
            if let Some(&(offset, size)) = self.track.samples.get(self.next_sample) {
                let index = self.next_sample;
                self.next_sample += 1;
                self.read_sample(offset, size)?;
                let frame = self
                    .decoder
                    .decode_sample(&self.buf, index)
                    .map_err(|e| damaged(&self.path, e))?;
                if let Some(frame) = frame {
                    self.ready.push_back(frame);
                }
            } else if !self.flushed {
                self.flushed = true;
                let frames = self.decoder.flush().map_err(|e| damaged(&self.path, e))?;
                self.ready.extend(frames);
            } else {
                return Ok(None);
            }
        }
        let Some(frame) = self.ready.pop_front() else {
            return Ok(None);
        };
        RgbImage::from_raw(frame.width, frame.height, frame.rgb)
            .map(Some)
            .ok_or_else(|| VideoError::H264 {
                stage: "decoding".into(),
                message: "the decoder returned a picture of inconsistent size".into(),
            })
    }

    fn read_sample(&mut self, offset: u64, size: u32) -> Result<()> {
        let read_err = |source| VideoError::Read {
            path: self.path.clone(),
            source,
        };
        self.buf.resize(size as usize, 0);
        self.file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
        self.file.read_exact(&mut self.buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                VideoError::UnreadableMp4 {
                    path: self.path.clone(),
                    reason: "a video sample lies past the end of the file (truncated download?)".into(),
                }
            } else {
                read_err(e)
            }
        })
    }
}

impl Iterator for Mp4Reader {
    type Item = Result<RgbImage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// A whole decoded video.
#[derive(Clone, Debug)]
pub struct DecodedVideo {
    /// The frames, in display order.
    pub frames: Vec<RgbImage>,
    /// Frames per second.
    pub fps: f64,
    /// Set when the file was decoded through ffmpeg: one line saying so (codec, ffmpeg used), for the
    /// caller to show once.
    pub external: Option<String>,
}

/// At most this many bytes of RGB frames are held by [`read_video`] (8 GiB: 5 minutes of 512 × 512 at
/// 25 fps, or 50 s of 1080p).
pub const MAX_DECODED_BYTES: u64 = 8 << 30;

/// A video reader for any common file: H.264 in MP4/MOV decoded in process ([`Mp4Reader`]), every
/// other codec or container through an `ffmpeg` executable ([`FfmpegReader`]), frames streamed.
pub enum VideoReader {
    /// H.264 MP4/MOV, decoded in process.
    Mp4(Box<Mp4Reader>),
    /// Anything else, decoded by an ffmpeg subprocess.
    Ffmpeg(Box<FfmpegReader>),
}

impl VideoReader {
    /// Opens `path`: in process when it is H.264 MP4/MOV, else through the `ffmpeg` that
    /// [`find_ffmpeg`] finds; without one, [`VideoError::NeedsFfmpeg`] names the codec and the
    /// command that converts the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), find_ffmpeg().as_deref())
    }

    /// [`VideoReader::open`] with an explicit ffmpeg executable (`None`: none available).
    pub fn open_with(path: &Path, ffmpeg: Option<&Path>) -> Result<Self> {
        let (what, ours) = match Mp4Reader::open(path) {
            Ok(r) => return Ok(Self::Mp4(Box::new(r))),
            Err(VideoError::UnsupportedCodec { codec, .. }) => (codec, None),
            Err(VideoError::UnreadableMp4 { reason, .. }) => match sniff_container(path) {
                Some(container) => (container, None),
                // An MP4 our demuxer does not read (fragmented, damaged): ffmpeg may still read it.
                None => (format!("an MP4 we do not read ({reason})"), Some(reason)),
            },
            Err(e) => return Err(e),
        };
        let Some(ffmpeg) = ffmpeg else {
            if let Some(reason) = ours {
                return Err(VideoError::UnreadableMp4 {
                    path: path.to_path_buf(),
                    reason,
                });
            }
            return Err(VideoError::NeedsFfmpeg {
                path: path.to_path_buf(),
                codec: what,
                command: convert_command(path),
            });
        };
        match FfmpegReader::open(ffmpeg, path) {
            Ok(r) => Ok(Self::Ffmpeg(Box::new(r))),
            Err(VideoError::Ffmpeg { reason: theirs, .. }) if ours.is_some() => Err(VideoError::UnreadableMp4 {
                path: path.to_path_buf(),
                reason: format!("{} (ffmpeg cannot read it either: {theirs})", ours.unwrap_or_default()),
            }),
            Err(e) => Err(e),
        }
    }

    /// Size, frame rate and length (for ffmpeg-decoded files `frame_count` is an estimate).
    pub fn info(&self) -> &VideoInfo {
        match self {
            Self::Mp4(r) => r.info(),
            Self::Ffmpeg(r) => r.info(),
        }
    }

    /// The next frame in display order, or `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<RgbImage>> {
        match self {
            Self::Mp4(r) => r.next_frame(),
            Self::Ffmpeg(r) => r.next_frame(),
        }
    }

    /// For an ffmpeg-decoded file, a line saying so (codec, the ffmpeg used); `None` in process.
    pub fn external_note(&self) -> Option<String> {
        match self {
            Self::Mp4(_) => None,
            Self::Ffmpeg(r) => Some(format!("{} video, decoded through ffmpeg", r.codec())),
        }
    }
}

impl Iterator for VideoReader {
    type Item = Result<RgbImage>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// The ffmpeg command line that converts `path` to H.264 MP4 beside it, as shown in messages.
pub fn convert_command(path: &Path) -> String {
    let stem = path.file_stem().map_or_else(|| "video".into(), |s| s.to_string_lossy());
    let out = path.with_file_name(format!("{stem}_h264.mp4"));
    format!(
        "ffmpeg -i {} -c:v libx264 -pix_fmt yuv420p -an {}",
        shell_quote(&path.to_string_lossy()),
        shell_quote(&out.to_string_lossy())
    )
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,=:@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Decodes every frame of a video (what the reference's `load_video_to_cv2` returns): H.264 MP4/MOV
/// in process, other codecs and containers through ffmpeg (see [`VideoReader`]). At most
/// [`MAX_DECODED_BYTES`] of frames are held.
pub fn read_video(path: impl AsRef<Path>) -> Result<DecodedVideo> {
    let path = path.as_ref();
    read_from(path, VideoReader::open(path)?)
}

/// [`read_video`] with an explicit ffmpeg executable (`None`: none available).
pub fn read_video_with(path: &Path, ffmpeg: Option<&Path>) -> Result<DecodedVideo> {
    read_from(path, VideoReader::open_with(path, ffmpeg)?)
}

fn read_from(path: &Path, mut reader: VideoReader) -> Result<DecodedVideo> {
    let info = reader.info().clone();
    let frame_bytes = (u64::from(info.width) * u64::from(info.height) * 3).max(1);
    let max_frames = usize::try_from(MAX_DECODED_BYTES / frame_bytes).unwrap_or(usize::MAX);
    let mut frames = Vec::with_capacity(info.frame_count.min(max_frames).min(4096));
    // Counted on the decoded pictures: the stream's SPS, not the container's header, decides their size.
    let mut held = 0u64;
    while let Some(frame) = reader.next_frame()? {
        held = held.saturating_add(frame.as_raw().len() as u64);
        if frames.len() >= max_frames || held > MAX_DECODED_BYTES {
            return Err(VideoError::TooLarge {
                path: path.to_path_buf(),
                width: info.width,
                height: info.height,
                frames: frames.len(),
                limit_mb: MAX_DECODED_BYTES >> 20,
            });
        }
        frames.push(frame);
    }
    Ok(DecodedVideo {
        frames,
        fps: info.fps,
        external: reader.external_note(),
    })
}
