//! The audio given to the writer, and the audio encoders behind the MP4 audio track.
//!
//! With the `aac` feature (default) the track is AAC-LC via the Fraunhofer FDK AAC library; without
//! it, lossless FLAC in MP4. Both play in browsers and ffmpeg; see README.md for why AAC is a feature.

use crate::error::{Result, VideoError};
use crate::mp4::mux::AudioCodecConfig;

/// Decoded audio to put in the video: interleaved `f32` samples in [-1, 1] (values outside are clipped).
#[derive(Clone, Copy, Debug)]
pub struct Audio<'a> {
    /// Interleaved samples (`L R L R …` for stereo); length is a multiple of `channels`.
    pub samples: &'a [f32],
    /// Sample rate in Hz: one of 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000.
    pub sample_rate: u32,
    /// 1 (mono) or 2 (stereo).
    pub channels: u16,
}

/// The sample rates AAC (and our MP4 sample entry, whose rate field is 16-bit) can carry.
pub const SUPPORTED_SAMPLE_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

impl<'a> Audio<'a> {
    /// Mono audio.
    pub fn mono(samples: &'a [f32], sample_rate: u32) -> Self {
        Self {
            samples,
            sample_rate,
            channels: 1,
        }
    }

    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Checks that the audio can be encoded; the error says what to change.
    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED_SAMPLE_RATES.contains(&self.sample_rate) {
            return Err(VideoError::UnsupportedAudio(format!(
                "sample rate {} Hz; resample to 16000, 44100 or 48000 Hz (supported: {SUPPORTED_SAMPLE_RATES:?})",
                self.sample_rate
            )));
        }
        if !(1..=2).contains(&self.channels) {
            return Err(VideoError::UnsupportedAudio(format!(
                "{} channels; only mono and stereo are supported, downmix first",
                self.channels
            )));
        }
        if !self.samples.len().is_multiple_of(usize::from(self.channels)) {
            return Err(VideoError::UnsupportedAudio(format!(
                "{} samples is not a whole number of {}-channel frames",
                self.samples.len(),
                self.channels
            )));
        }
        if let Some(i) = self.samples.iter().position(|s| !s.is_finite()) {
            return Err(VideoError::UnsupportedAudio(format!(
                "sample {i} is {} (not a finite number)",
                self.samples[i]
            )));
        }
        Ok(())
    }
}

/// Converts a float sample to 16-bit PCM, clipping.
pub(crate) fn to_i16(s: f32) -> i16 {
    (s.clamp(-1.0, 1.0) * 32767.0).round() as i16
}

/// An audio encoder producing MP4 audio samples (access units) from 16-bit interleaved PCM.
pub(crate) trait AudioEncoder: Send {
    /// Sample frames per access unit.
    fn frame_len(&self) -> u32;
    /// Samples at the start of the decoded stream that precede the input (encoder delay).
    fn priming(&self) -> u32;
    /// The sample description the MP4 track needs; called once all input was given (FLAC's STREAMINFO
    /// carries totals).
    fn codec_config(&self) -> AudioCodecConfig;
    /// Short codec name for summaries.
    fn name(&self) -> &'static str;
    /// Feeds interleaved PCM; appends completed access units to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<Vec<u8>>) -> Result<()>;
    /// Completes the stream: after this, `out` holds access units covering every sample given plus the
    /// priming, padded with silence to a whole access unit.
    fn finish(&mut self, out: &mut Vec<Vec<u8>>) -> Result<()>;
}

/// The codec of the MP4 audio track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC-LC (needs the `aac` cargo feature, on by default): what every player expects.
    Aac,
    /// Lossless FLAC in MP4: patent-free, pure Rust; plays in Chromium, Firefox, Safari, ffmpeg, VLC.
    Flac,
}

impl Default for AudioCodec {
    /// AAC when compiled in, FLAC otherwise.
    fn default() -> Self {
        if cfg!(feature = "aac") {
            AudioCodec::Aac
        } else {
            AudioCodec::Flac
        }
    }
}

impl AudioCodec {
    /// Lower-case name: `aac` or `flac`.
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Flac => "flac",
        }
    }
}

/// Creates the encoder for `codec`.
pub(crate) fn new_encoder(codec: AudioCodec, sample_rate: u32, channels: u16) -> Result<Box<dyn AudioEncoder>> {
    match codec {
        #[cfg(feature = "aac")]
        AudioCodec::Aac => Ok(Box::new(aac::AacEncoder::new(sample_rate, channels)?)),
        #[cfg(not(feature = "aac"))]
        AudioCodec::Aac => Err(VideoError::UnsupportedAudio(
            "AAC was not compiled in (cargo feature `aac` of sadtalker-video); use FLAC".into(),
        )),
        AudioCodec::Flac => Ok(Box::new(flac::FlacEncoder::new(sample_rate, channels)?)),
    }
}

#[cfg(feature = "aac")]
pub(crate) mod aac {
    //! AAC-LC through FDK AAC.

    use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

    use super::AudioEncoder;
    use crate::error::{Result, VideoError};
    use crate::mp4::mux::AudioCodecConfig;

    /// AAC-LC encoder (raw access units, no ADTS headers: MP4 carries the config in `esds`).
    pub(crate) struct AacEncoder {
        encoder: Encoder,
        channels: usize,
        frame_len: u32,
        priming: u32,
        asc: Vec<u8>,
        bitrate: u32,
        max_out: usize,
        /// Sample frames fed so far.
        fed: u64,
        /// Access units produced so far.
        produced: u64,
        out_buf: Vec<u8>,
    }

    fn failed(e: fdk_aac::enc::EncoderError) -> VideoError {
        VideoError::AudioEncoder(format!("FDK AAC: {e}"))
    }

    impl AacEncoder {
        pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
            // 64 kbit/s per channel is transparent for speech; lower rates cannot carry that much, so cap
            // at ~4 bits per sample (FDK rejects rates above what the sample rate allows).
            let bitrate = (64_000 * u32::from(channels)).min(sample_rate * 4 * u32::from(channels));
            let encoder = Encoder::new(EncoderParams {
                bit_rate: BitRate::Cbr(bitrate),
                sample_rate,
                transport: Transport::Raw,
                channels: if channels == 2 {
                    ChannelMode::Stereo
                } else {
                    ChannelMode::Mono
                },
                audio_object_type: AudioObjectType::Mpeg4LowComplexity,
            })
            .map_err(failed)?;
            let info = encoder.info().map_err(failed)?;
            let asc = info.confBuf[..info.confSize as usize].to_vec();
            Ok(Self {
                encoder,
                channels: usize::from(channels),
                frame_len: info.frameLength,
                priming: info.nDelay,
                asc,
                bitrate,
                max_out: info.maxOutBufBytes as usize,
                fed: 0,
                produced: 0,
                out_buf: vec![0; (info.maxOutBufBytes as usize).max(8192)],
            })
        }
    }

    impl AudioEncoder for AacEncoder {
        fn frame_len(&self) -> u32 {
            self.frame_len
        }

        fn priming(&self) -> u32 {
            self.priming
        }

        fn codec_config(&self) -> AudioCodecConfig {
            AudioCodecConfig::Aac {
                audio_specific_config: self.asc.clone(),
                avg_bitrate: self.bitrate,
                max_frame_bytes: self.max_out as u32,
            }
        }

        fn name(&self) -> &'static str {
            "aac"
        }

        fn encode(&mut self, pcm: &[i16], out: &mut Vec<Vec<u8>>) -> Result<()> {
            let mut rest = pcm;
            // FDK takes what fits in its internal buffer and emits at most one access unit per call, so
            // call until all input is consumed. A call that consumes nothing and emits nothing would
            // loop forever; treat it as an encoder fault.
            while !rest.is_empty() {
                let info = self.encoder.encode(rest, &mut self.out_buf).map_err(failed)?;
                if info.output_size > 0 {
                    out.push(self.out_buf[..info.output_size].to_vec());
                    self.produced += 1;
                }
                if info.input_consumed == 0 && info.output_size == 0 {
                    return Err(VideoError::AudioEncoder("FDK AAC accepted no input".into()));
                }
                rest = &rest[info.input_consumed.min(rest.len())..];
            }
            self.fed += (pcm.len() / self.channels) as u64;
            Ok(())
        }

        fn finish(&mut self, out: &mut Vec<Vec<u8>>) -> Result<()> {
            // The binding cannot signal end-of-stream (numInSamples = -1), so push silence until the
            // access units cover priming + input; the edit list hides the padding.
            let needed = (u64::from(self.priming) + self.fed).div_ceil(u64::from(self.frame_len));
            let silence = vec![0i16; self.frame_len as usize * self.channels];
            // Bound the loop: FDK's lookahead is a few frames at most.
            let mut guard = 0;
            while self.produced < needed {
                let fed = self.fed;
                self.encode(&silence, out)?;
                self.fed = fed;
                guard += 1;
                if guard > 64 {
                    return Err(VideoError::AudioEncoder("FDK AAC did not drain its delay line".into()));
                }
            }
            Ok(())
        }
    }
}

pub(crate) mod flac {
    //! Lossless FLAC through `flacenc` (pure Rust), framed for MP4 as ffmpeg and browsers expect:
    //! one FLAC frame per MP4 sample, STREAMINFO in the `dfLa` box.

    use flacenc::bitsink::ByteSink;
    use flacenc::component::{BitRepr, StreamInfo};
    use flacenc::error::Verify;
    use flacenc::source::{Fill, FrameBuf};

    use super::AudioEncoder;
    use crate::error::{Result, VideoError};
    use crate::mp4::mux::AudioCodecConfig;

    /// Samples per FLAC frame (and MP4 sample): 64 ms at 16 kHz.
    const BLOCK: usize = 1024;
    const BITS: usize = 16;

    pub(crate) struct FlacEncoder {
        config: flacenc::error::Verified<flacenc::config::Encoder>,
        stream_info: StreamInfo,
        frame_buf: FrameBuf,
        channels: usize,
        /// Interleaved samples waiting for a full block.
        pending: Vec<i32>,
        frames: usize,
        total_samples: usize,
    }

    fn failed(e: impl std::fmt::Debug) -> VideoError {
        VideoError::AudioEncoder(format!("FLAC: {e:?}"))
    }

    impl FlacEncoder {
        pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
            let channels = usize::from(channels);
            let mut config = flacenc::config::Encoder::default();
            config.block_size = BLOCK;
            config.multithread = false;
            let config = config.into_verified().map_err(|(_, e)| failed(e))?;
            let mut stream_info = StreamInfo::new(sample_rate as usize, channels, BITS).map_err(failed)?;
            stream_info.set_block_sizes(BLOCK, BLOCK).map_err(failed)?;
            let frame_buf = FrameBuf::with_size(channels, BLOCK).map_err(failed)?;
            Ok(Self {
                config,
                stream_info,
                frame_buf,
                channels,
                pending: Vec::new(),
                frames: 0,
                total_samples: 0,
            })
        }

        fn encode_block(&mut self, block: &[i32], out: &mut Vec<Vec<u8>>) -> Result<()> {
            self.frame_buf.fill_interleaved(block).map_err(failed)?;
            let frame = flacenc::encode_fixed_size_frame(&self.config, &self.frame_buf, self.frames, &self.stream_info)
                .map_err(failed)?;
            self.stream_info.update_frame_info(&frame);
            let mut sink = ByteSink::new();
            frame.write(&mut sink).map_err(failed)?;
            out.push(sink.into_inner());
            self.frames += 1;
            self.total_samples += BLOCK;
            Ok(())
        }
    }

    impl AudioEncoder for FlacEncoder {
        fn frame_len(&self) -> u32 {
            BLOCK as u32
        }

        fn priming(&self) -> u32 {
            0
        }

        fn codec_config(&self) -> AudioCodecConfig {
            let mut info = self.stream_info.clone();
            info.set_total_samples(self.total_samples);
            let mut sink = ByteSink::new();
            // A StreamInfo built by `new` always serialises; an empty block would make the track unplayable,
            // which the tests (ffprobe, browser) would catch.
            let _ = info.write(&mut sink);
            AudioCodecConfig::Flac {
                streaminfo: sink.into_inner(),
            }
        }

        fn name(&self) -> &'static str {
            "flac"
        }

        fn encode(&mut self, pcm: &[i16], out: &mut Vec<Vec<u8>>) -> Result<()> {
            self.pending.extend(pcm.iter().map(|&s| i32::from(s)));
            let block_len = BLOCK * self.channels;
            let full = self.pending.len() / block_len * block_len;
            let pending = std::mem::take(&mut self.pending);
            for block in pending[..full].chunks(block_len) {
                self.encode_block(block, out)?;
            }
            self.pending = pending[full..].to_vec();
            Ok(())
        }

        fn finish(&mut self, out: &mut Vec<Vec<u8>>) -> Result<()> {
            // Pad the last block with silence to a whole frame; the edit list ends presentation before it.
            if !self.pending.is_empty() {
                let mut block = std::mem::take(&mut self.pending);
                block.resize(BLOCK * self.channels, 0);
                self.encode_block(&block, out)?;
            }
            Ok(())
        }
    }
}
