//! Reading H.264 MP4/MOV videos back as RGB frames (for `--ref-eyeblink` / `--ref-pose` videos).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{Result, VideoError};
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
        let decoder = H264Decoder::new(&track.parameter_sets, track.nal_length_size)?;
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
                if let Some(frame) = self.decoder.decode_sample(&self.buf, index)? {
                    self.ready.push_back(frame);
                }
            } else if !self.flushed {
                self.flushed = true;
                self.ready.extend(self.decoder.flush()?);
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
}

/// Decodes every frame of an H.264 MP4/MOV file (what the reference's `load_video_to_cv2` returns).
pub fn read_video(path: impl AsRef<Path>) -> Result<DecodedVideo> {
    let mut reader = Mp4Reader::open(path)?;
    let fps = reader.info().fps;
    let mut frames = Vec::with_capacity(reader.info().frame_count);
    while let Some(frame) = reader.next_frame()? {
        frames.push(frame);
    }
    Ok(DecodedVideo { frames, fps })
}
