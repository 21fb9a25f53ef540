//! H.264 through OpenH264: RGB frames to MP4-ready samples, and MP4 samples back to RGB.

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    Complexity, Encoder, EncoderConfig, FrameType, IntraFramePeriod, RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::{YUVSlices, YUVSource};
use openh264_sys2::{ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, SEncParamExt};

use crate::color::{Yuv420, yuv420_to_rgb};
use crate::error::{Result, VideoError};

/// NAL unit types we treat specially.
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// Largest frame OpenH264 encodes (level 5.2), in either orientation.
const MAX_LONG_SIDE: u32 = 3840;
const MAX_SHORT_SIDE: u32 = 2160;

/// One encoded picture: its NAL units (without start codes, SPS/PPS removed) and whether it is an IDR.
pub(crate) struct EncodedPicture {
    pub nals: Vec<Vec<u8>>,
    pub keyframe: bool,
}

/// Wraps the OpenH264 encoder with the settings this crate uses and the RGB→YUV step.
pub(crate) struct H264Encoder {
    encoder: Encoder,
    yuv: Yuv420,
    /// Parameter sets, captured from the first IDR picture.
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
    frames: u64,
}

/// The largest `(width, height)` with the aspect of `width`×`height` that the encoder takes (the size
/// itself when it fits; frames under 16 pixels grow to 16).
pub fn fit_frame_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let (long, short) = if w >= h { (w, h) } else { (h, w) };
    let shrink = (f64::from(MAX_LONG_SIDE) / long)
        .min(f64::from(MAX_SHORT_SIDE) / short)
        .min(1.0);
    let grow = (16.0 / short).max(1.0);
    let scale = shrink * grow;
    let side = |v: f64, max: u32| ((v * scale).floor() as u32).clamp(16, max);
    if w >= h {
        (side(w, MAX_LONG_SIDE), side(h, MAX_SHORT_SIDE))
    } else {
        (side(w, MAX_SHORT_SIDE), side(h, MAX_LONG_SIDE))
    }
}

/// Whether a `width`×`height` frame can be encoded (the error says why not).
pub fn check_frame_size(width: u32, height: u32) -> Result<()> {
    coded_size(width, height).map(|_| ())
}

/// The even picture size a `width`×`height` frame is coded at (odd sizes gain one edge-repeated row/column).
pub(crate) fn coded_size(width: u32, height: u32) -> Result<(u32, u32)> {
    let unsupported = |reason| VideoError::UnsupportedFrameSize { width, height, reason };
    if width < 16 || height < 16 {
        return Err(unsupported("the smallest encodable frame is 16x16"));
    }
    let (long, short) = (width.max(height), width.min(height));
    if long > MAX_LONG_SIDE || short > MAX_SHORT_SIDE {
        return Err(unsupported(
            "the H.264 encoder (level 5.2) is limited to 3840x2160 in either orientation",
        ));
    }
    Ok((width.next_multiple_of(2), height.next_multiple_of(2)))
}

impl H264Encoder {
    /// An encoder for frames of `width`×`height` (already validated by [`coded_size`]) at `fps`, with
    /// constant quantiser `qp` (0 best … 51 worst).
    pub fn new(width: u32, height: u32, fps: u32, qp: u8) -> Result<Self> {
        let (cw, ch) = coded_size(width, height)?;
        let setup_err = |message: String| VideoError::H264 {
            stage: "encoder setup".into(),
            message,
        };
        let config = EncoderConfig::new()
            // Constant QP: a quality setting that does not depend on content or length (like x264's CRF in
            // spirit), and no rate control that could drop frames or inflate the declared level.
            .rate_control_mode(RateControlMode::Off)
            .skip_frames(false)
            .adaptive_quantization(false)
            .max_frame_rate(openh264::encoder::FrameRate::from_hz(fps as f32))
            .usage_type(UsageType::CameraVideoRealTime)
            .complexity(Complexity::High)
            // A keyframe every 10 s keeps seeking cheap without costing much size (x264's default is 250).
            .intra_frame_period(IntraFramePeriod::from_num_frames(fps * 10))
            .scene_change_detect(false)
            .background_detection(false)
            .vui(VuiConfig::bt601())
            .num_threads(1);
        let mut encoder =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| setup_err(e.to_string()))?;
        let yuv = Yuv420::new(cw as usize, ch as usize);
        // With rate control off OpenH264 codes at `sSpatialLayers[0].iDLayerQp`, which the binding's config
        // cannot set and which only exists once the encoder is initialised (on its first picture). So:
        // initialise with a throw-away picture, set the QP, and restart the stream at an IDR picture. The
        // throw-away output is never written.
        {
            let (w, h) = (yuv.width, yuv.height);
            let blank = YUVSlices::new((&yuv.y, &yuv.u, &yuv.v), (w, h), (w, w / 2, w / 2));
            encoder.encode(&blank).map_err(|e| setup_err(e.to_string()))?;
        }
        // SAFETY: `get_option`/`set_option` with ENCODER_OPTION_SVC_ENCODE_PARAM_EXT read/write exactly one
        // `SEncParamExt`, which `params` is; the encoder is initialised (it has encoded a picture).
        let status = unsafe {
            let raw = encoder.raw_api();
            let mut params = SEncParamExt::default();
            let got = raw.get_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, (&raw mut params).cast());
            params.sSpatialLayers[0].iDLayerQp = i32::from(qp);
            let set = raw.set_option(ENCODER_OPTION_SVC_ENCODE_PARAM_EXT, (&raw mut params).cast());
            (got, set)
        };
        if status != (0, 0) {
            return Err(setup_err(format!("could not set the quantiser (status {status:?})")));
        }
        encoder.force_intra_frame();
        Ok(Self {
            encoder,
            yuv,
            sps: None,
            pps: None,
            frames: 0,
        })
    }

    /// Encodes one RGB24 frame of the size given at construction.
    pub fn encode(&mut self, rgb: &[u8], width: u32, height: u32) -> Result<EncodedPicture> {
        self.yuv.fill_from_rgb(rgb, width as usize, height as usize);
        let (w, h) = (self.yuv.width, self.yuv.height);
        let source = YUVSlices::new((&self.yuv.y, &self.yuv.u, &self.yuv.v), (w, h), (w, w / 2, w / 2));
        let index = self.frames;
        let failed = |message: String| VideoError::H264 {
            stage: format!("encoding of frame {index}"),
            message,
        };
        let stream = self.encoder.encode(&source).map_err(|e| failed(e.to_string()))?;
        let frame_type = stream.frame_type();
        if matches!(frame_type, FrameType::Skip | FrameType::Invalid) {
            return Err(failed(format!("the encoder returned no picture ({frame_type:?})")));
        }
        let mut picture = EncodedPicture {
            nals: Vec::new(),
            keyframe: frame_type == FrameType::IDR,
        };
        for l in 0..stream.num_layers() {
            let Some(layer) = stream.layer(l) else { continue };
            for n in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(n) else { continue };
                let nal = strip_start_code(nal);
                match nal.first().map(|b| b & 0x1f) {
                    // Parameter sets go into the MP4 sample description (`avcC`), not the samples; with a
                    // constant-id strategy every repeat is identical to the first.
                    Some(NAL_SPS) => {
                        self.sps.get_or_insert_with(|| nal.to_vec());
                    }
                    Some(NAL_PPS) => {
                        self.pps.get_or_insert_with(|| nal.to_vec());
                    }
                    Some(_) => picture.nals.push(nal.to_vec()),
                    None => {}
                }
            }
        }
        if picture.nals.is_empty() {
            return Err(failed("the encoder returned no slice data".into()));
        }
        self.frames += 1;
        Ok(picture)
    }
}

/// Removes a leading Annex B start code (`00 00 01` or `00 00 00 01`).
fn strip_start_code(nal: &[u8]) -> &[u8] {
    if nal.starts_with(&[0, 0, 0, 1]) {
        &nal[4..]
    } else if nal.starts_with(&[0, 0, 1]) {
        &nal[3..]
    } else {
        nal
    }
}

/// A decoded RGB frame.
pub(crate) struct DecodedFrame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Wraps the OpenH264 decoder: MP4 samples (length-prefixed NAL units) in, RGB frames out.
pub(crate) struct H264Decoder {
    decoder: Decoder,
    nal_length_size: usize,
    /// Reused Annex B buffer.
    annexb: Vec<u8>,
}

impl H264Decoder {
    /// A decoder primed with the parameter sets of an `avcC` record.
    pub fn new(parameter_sets: &[Vec<u8>], nal_length_size: usize) -> Result<Self> {
        let failed = |e: openh264::Error| VideoError::H264 {
            stage: "decoder setup".into(),
            message: e.to_string(),
        };
        // No flushing after each packet: pictures held back for B-frame reordering must stay in the decoder's
        // buffer until their turn (flushing early returns them out of order); `flush` drains them at the end.
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config).map_err(failed)?;
        let mut headers = Vec::new();
        for ps in parameter_sets {
            headers.extend_from_slice(&[0, 0, 0, 1]);
            headers.extend_from_slice(ps);
        }
        if !headers.is_empty() {
            decoder.decode(&headers).map_err(failed)?;
        }
        Ok(Self {
            decoder,
            nal_length_size,
            annexb: Vec::new(),
        })
    }

    /// Decodes one MP4 sample; returns a frame when the decoder has one ready (it may lag when the
    /// stream reorders pictures, see [`H264Decoder::flush`]).
    pub fn decode_sample(&mut self, sample: &[u8], index: usize) -> Result<Option<DecodedFrame>> {
        self.annexb.clear();
        let mut rest = sample;
        while !rest.is_empty() {
            if rest.len() < self.nal_length_size {
                return Err(corrupt(index, "truncated NAL length field"));
            }
            let len = rest[..self.nal_length_size]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[self.nal_length_size..];
            if len > rest.len() {
                return Err(corrupt(index, "a NAL unit runs past the end of its sample"));
            }
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(&rest[..len]);
            rest = &rest[len..];
        }
        let decoded = self.decoder.decode(&self.annexb).map_err(|e| VideoError::H264 {
            stage: format!("decoding of sample {index}"),
            message: e.to_string(),
        })?;
        Ok(decoded.map(|yuv| to_rgb(&yuv)))
    }

    /// Returns the pictures still held back for reordering, in display order.
    pub fn flush(&mut self) -> Result<Vec<DecodedFrame>> {
        let frames = self.decoder.flush_remaining().map_err(|e| VideoError::H264 {
            stage: "decoding (flush)".into(),
            message: e.to_string(),
        })?;
        Ok(frames.iter().map(to_rgb).collect())
    }
}

fn corrupt(index: usize, what: &str) -> VideoError {
    VideoError::H264 {
        stage: format!("decoding of sample {index}"),
        message: format!("damaged sample: {what}"),
    }
}

fn to_rgb(yuv: &impl YUVSource) -> DecodedFrame {
    let (w, h) = yuv.dimensions();
    let mut rgb = vec![0u8; w * h * 3];
    yuv420_to_rgb((yuv.y(), yuv.u(), yuv.v()), yuv.strides(), w, h, &mut rgb);
    DecodedFrame {
        width: w as u32,
        height: h as u32,
        rgb,
    }
}
