//! The streaming MP4 writer: RGB frames in, H.264 + audio MP4 out.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::RgbImage;
use sadtalker_fsio::AtomicFile;

use crate::audio::{Audio, AudioCodec, AudioEncoder, new_encoder, to_i16};
use crate::error::{Result, VideoError};
use crate::frames::FrameDumper;
use crate::h264::{H264Encoder, coded_size};
use crate::mp4::mux::{AudioTrackConfig, Mp4Muxer, Tags, Track, VideoTrackConfig};

/// Frame rate of SadTalker's videos.
pub const DEFAULT_FPS: u32 = 25;

/// Default H.264 quantiser. On a real 512×512 portrait with motion it gives 39.9 dB PSNR at ~350 kbit/s,
/// the fidelity of the reference's output (imageio's libx264 at CRF 25: 39.1 dB at ~210 kbit/s;
/// OpenH264's Constrained Baseline needs more bits for the same quality). Lower is better and larger.
pub const DEFAULT_QP: u8 = 20;

/// Settings of an [`Mp4Writer`].
#[derive(Clone, Debug)]
pub struct VideoSettings {
    /// Frames per second (25 for SadTalker).
    pub fps: u32,
    /// H.264 quantiser 0 (best, largest) … 51 (worst, smallest); see [`DEFAULT_QP`].
    pub qp: u8,
    /// Free text stored as the file's `comment` tag (ffprobe `format_tags`), e.g. the degraded marker.
    pub comment: Option<String>,
    /// Also write every frame as `DIR/000000.png`, `000001.png`, … (created if missing).
    pub frames_dir: Option<PathBuf>,
    /// Codec of the audio track (AAC by default when compiled in).
    pub audio_codec: AudioCodec,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            fps: DEFAULT_FPS,
            qp: DEFAULT_QP,
            comment: None,
            frames_dir: None,
            audio_codec: AudioCodec::default(),
        }
    }
}

/// A borrowed RGB24 frame (tightly packed, row-major, `width * height * 3` bytes).
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel data, `R G B` per pixel.
    pub rgb: &'a [u8],
}

impl<'a> From<&'a RgbImage> for Frame<'a> {
    fn from(image: &'a RgbImage) -> Self {
        Self {
            width: image.width(),
            height: image.height(),
            rgb: image.as_raw(),
        }
    }
}

/// What a finished video contains.
#[derive(Clone, Debug)]
pub struct WriteSummary {
    /// The file written.
    pub path: PathBuf,
    /// Frames written.
    pub frames: u64,
    /// Frame size as given.
    pub width: u32,
    /// Frame size as given.
    pub height: u32,
    /// Size coded in the file: odd sizes gain one edge-repeated column/row (H.264 4:2:0 needs even sizes).
    pub coded_width: u32,
    /// See `coded_width`.
    pub coded_height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Duration of the video (frames / fps), which the audio track matches exactly.
    pub duration_secs: f64,
    /// The audio track, if any.
    pub audio: Option<AudioSummary>,
    /// File size in bytes.
    pub bytes: u64,
}

/// How the audio was fitted to the video.
#[derive(Clone, Debug)]
pub struct AudioSummary {
    /// `aac` or `flac`.
    pub codec: &'static str,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
    /// Encoder delay removed by the MP4 edit list, in samples.
    pub priming_samples: u32,
    /// Sample frames of silence added because the audio ended before the last frame.
    pub padded_samples: u64,
    /// Sample frames cut because the audio went on after the last frame.
    pub trimmed_samples: u64,
}

/// Audio track state while writing.
struct AudioTrack<'a> {
    audio: Audio<'a>,
    encoder: Box<dyn AudioEncoder>,
    /// Sample frames fed to the encoder (input, then silence).
    fed: u64,
    /// Reused conversion buffer.
    pcm: Vec<i16>,
    /// Access units waiting to be written.
    units: Vec<Vec<u8>>,
}

/// Writes an MP4 (H.264 video, AAC or FLAC audio) frame by frame.
///
/// The file appears at the target path only when [`Mp4Writer::finish`] succeeds: until then it is a
/// hidden temporary file in the same directory, removed if the writer is dropped or fails.
///
/// **Length policy** (as the reference, which cuts the audio at `frames / 25` seconds): the frames
/// define the duration. Audio that goes on after the last frame is cut; audio that ends earlier is
/// padded with silence; the [`WriteSummary`] reports both. To cover the whole audio, write
/// [`frames_for_audio`] frames.
pub struct Mp4Writer<'a> {
    path: PathBuf,
    settings: VideoSettings,
    temp: Option<AtomicFile>,
    muxer: Option<Mp4Muxer<BufWriter<File>>>,
    encoder: Option<H264Encoder>,
    size: Option<(u32, u32)>,
    frames: u64,
    audio: Option<AudioTrack<'a>>,
    dumper: Option<FrameDumper>,
    /// Set when a write failed: the stream is then incomplete and must not be finished.
    failed: bool,
}

/// Frames needed to show `audio` from start to end at `fps`, rounded down as the reference does
/// (`int(len(wav) / (sr / fps))`), but at least one.
pub fn frames_for_audio(audio: &Audio<'_>, fps: u32) -> u64 {
    ((audio.frames() as u64 * u64::from(fps)) / u64::from(audio.sample_rate.max(1))).max(1)
}

impl<'a> Mp4Writer<'a> {
    /// Starts a video at `path` (written on [`finish`](Self::finish)), with `audio` as its sound track.
    ///
    /// Fails at once, leaving nothing behind, if the audio or settings are invalid or the directory
    /// cannot be written.
    pub fn create(path: impl AsRef<Path>, settings: VideoSettings, audio: Option<Audio<'a>>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if settings.fps == 0 || settings.fps > 240 {
            return Err(VideoError::InvalidSetting(format!(
                "fps {} (allowed 1..=240)",
                settings.fps
            )));
        }
        if settings.qp > 51 {
            return Err(VideoError::InvalidSetting(format!(
                "qp {} (allowed 0..=51, default {DEFAULT_QP})",
                settings.qp
            )));
        }
        let audio = match audio {
            Some(audio) => {
                audio.validate()?;
                let encoder = new_encoder(settings.audio_codec, audio.sample_rate, audio.channels)?;
                Some(AudioTrack {
                    audio,
                    encoder,
                    fed: 0,
                    pcm: Vec::new(),
                    units: Vec::new(),
                })
            }
            None => None,
        };
        let write_err = |source| VideoError::Write {
            path: path.clone(),
            source,
        };
        if path.is_dir() {
            return Err(write_err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "the output path is a directory; give a file name ending in .mp4",
            )));
        }
        let temp = AtomicFile::create(&path).map_err(write_err)?;
        let file = temp.file().try_clone().map_err(write_err)?;
        let muxer = Mp4Muxer::new(BufWriter::with_capacity(1 << 20, file)).map_err(write_err)?;
        let dumper = match &settings.frames_dir {
            Some(dir) => Some(FrameDumper::new(dir)?),
            None => None,
        };
        Ok(Self {
            path,
            settings,
            temp: Some(temp),
            muxer: Some(muxer),
            encoder: None,
            size: None,
            frames: 0,
            audio,
            dumper,
            failed: false,
        })
    }

    /// Number of frames written so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// Appends an [`RgbImage`] frame.
    pub fn write_image(&mut self, image: &RgbImage) -> Result<()> {
        self.write_frame(Frame::from(image))
    }

    /// Appends a frame. All frames must have the size of the first.
    pub fn write_frame(&mut self, frame: Frame<'_>) -> Result<()> {
        if self.failed {
            return Err(VideoError::InvalidSetting(
                "the writer failed earlier; start a new video".into(),
            ));
        }
        let result = self.write_frame_inner(frame);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn write_frame_inner(&mut self, frame: Frame<'_>) -> Result<()> {
        let index = self.frames;
        let expected = frame.width as usize * frame.height as usize * 3;
        if frame.rgb.len() != expected {
            return Err(VideoError::FrameBufferLength {
                index,
                width: frame.width,
                height: frame.height,
                len: frame.rgb.len(),
                expected,
            });
        }
        match self.size {
            None => {
                coded_size(frame.width, frame.height)?;
                self.encoder = Some(H264Encoder::new(
                    frame.width,
                    frame.height,
                    self.settings.fps,
                    self.settings.qp,
                )?);
                self.size = Some((frame.width, frame.height));
            }
            Some((width, height)) if (width, height) != (frame.width, frame.height) => {
                return Err(VideoError::FrameSizeMismatch {
                    index,
                    width,
                    height,
                    got_width: frame.width,
                    got_height: frame.height,
                });
            }
            Some(_) => {}
        }
        let (Some(encoder), Some(muxer)) = (self.encoder.as_mut(), self.muxer.as_mut()) else {
            return Err(VideoError::InvalidSetting("the writer was already finished".into()));
        };
        let picture = encoder.encode(frame.rgb, frame.width, frame.height)?;
        // MP4 stores NAL units with 4-byte big-endian length prefixes.
        let lengths: Vec<[u8; 4]> = picture.nals.iter().map(|n| (n.len() as u32).to_be_bytes()).collect();
        let parts: Vec<&[u8]> = picture
            .nals
            .iter()
            .zip(&lengths)
            .flat_map(|(n, l)| [&l[..], &n[..]])
            .collect();
        let write_err = |source| VideoError::Write {
            path: self.path.clone(),
            source,
        };
        muxer.end_chunk();
        muxer
            .write_sample(Track::Video, &parts, TICKS_PER_FRAME, picture.keyframe)
            .map_err(write_err)?;
        self.frames += 1;
        if let Some(dumper) = &self.dumper {
            dumper.write(index, frame)?;
        }
        // Keep the audio level with the video: encode up to the end of this frame, write what came out.
        if let Some(track) = self.audio.as_mut() {
            let target = self.frames * u64::from(track.audio.sample_rate) / u64::from(self.settings.fps);
            feed_audio(track, target)?;
            write_units(muxer, track).map_err(write_err)?;
        }
        Ok(())
    }

    /// Completes the file and moves it to the target path.
    pub fn finish(mut self) -> Result<WriteSummary> {
        if self.failed {
            return Err(VideoError::InvalidSetting(
                "the writer failed earlier; nothing was written".into(),
            ));
        }
        let write_err = |source| VideoError::Write {
            path: self.path.clone(),
            source,
        };
        let (Some((width, height)), Some(encoder)) = (self.size, self.encoder.take()) else {
            return Err(VideoError::NoFrames);
        };
        let (Some(mut muxer), Some(temp)) = (self.muxer.take(), self.temp.take()) else {
            return Err(VideoError::InvalidSetting("the writer was already finished".into()));
        };
        let fps = self.settings.fps;
        let mut audio_config = None;
        let mut audio_summary = None;
        if let Some(track) = self.audio.as_mut() {
            let presented = self.frames * u64::from(track.audio.sample_rate) / u64::from(fps);
            feed_audio(track, presented)?;
            track.encoder.finish(&mut track.units)?;
            write_units(&mut muxer, track).map_err(write_err)?;
            let available = track.audio.frames() as u64;
            audio_config = Some(AudioTrackConfig {
                codec: track.encoder.codec_config(),
                sample_rate: track.audio.sample_rate,
                channels: track.audio.channels,
                priming: track.encoder.priming(),
                presented,
            });
            audio_summary = Some(AudioSummary {
                codec: track.encoder.name(),
                sample_rate: track.audio.sample_rate,
                channels: track.audio.channels,
                priming_samples: track.encoder.priming(),
                padded_samples: presented.saturating_sub(available),
                trimmed_samples: available.saturating_sub(presented),
            });
        }
        let (Some(sps), Some(pps)) = (encoder.sps.clone(), encoder.pps.clone()) else {
            return Err(VideoError::H264 {
                stage: "encoding".into(),
                message: "the encoder produced no parameter sets (SPS/PPS)".into(),
            });
        };
        let (coded_width, coded_height) = coded_size(width, height)?;
        let video_config = VideoTrackConfig {
            width: coded_width,
            height: coded_height,
            timescale: fps * TICKS_PER_FRAME,
            sps,
            pps,
        };
        let tags = Tags {
            comment: self.settings.comment.clone(),
            encoder: Some(concat!("sadtalker-video ", env!("CARGO_PKG_VERSION")).to_string()),
        };
        let out = muxer
            .finish(&video_config, audio_config.as_ref(), &tags)
            .map_err(write_err)?;
        let file = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        let bytes = file.metadata().map_err(write_err)?.len();
        drop(file);
        temp.commit().map_err(write_err)?;
        Ok(WriteSummary {
            path: self.path.clone(),
            frames: self.frames,
            width,
            height,
            coded_width,
            coded_height,
            fps,
            duration_secs: self.frames as f64 / f64::from(fps),
            audio: audio_summary,
            bytes,
        })
    }
}

/// Ticks per frame in the video track's timescale, which is `fps * 512` (12 800 at 25 fps, as ffmpeg
/// picks): fine enough for any player, and every frame lasts exactly one tick count.
const TICKS_PER_FRAME: u32 = 512;

/// Feeds the audio encoder up to sample frame `target`: input samples while there are any, then silence.
fn feed_audio(track: &mut AudioTrack<'_>, target: u64) -> Result<()> {
    if target <= track.fed {
        return Ok(());
    }
    let channels = usize::from(track.audio.channels);
    let available = track.audio.frames() as u64;
    let (start, end) = (track.fed.min(available) as usize, target.min(available) as usize);
    track.pcm.clear();
    track.pcm.extend(
        track.audio.samples[start * channels..end * channels]
            .iter()
            .map(|&s| to_i16(s)),
    );
    let silent = (target - track.fed) as usize - (end - start);
    track.pcm.resize(track.pcm.len() + silent * channels, 0);
    track.encoder.encode(&track.pcm, &mut track.units)?;
    track.fed = target;
    Ok(())
}

/// Writes the pending audio access units as one chunk.
fn write_units(muxer: &mut Mp4Muxer<BufWriter<File>>, track: &mut AudioTrack<'_>) -> std::io::Result<()> {
    if track.units.is_empty() {
        return Ok(());
    }
    muxer.end_chunk();
    let duration = track.encoder.frame_len();
    for unit in track.units.drain(..) {
        muxer.write_sample(Track::Audio, &[&unit], duration, true)?;
    }
    Ok(())
}
