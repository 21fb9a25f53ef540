//! The face renderer's frame loop (the reference's `make_animation` + `img_as_ubyte`): coefficient
//! windows in, 8-bit frames out, one batch at a time, each frame handed to the caller as soon as it
//! exists — no list of all frames is ever held. `sadtalker render` and `sadtalker generate` share it,
//! and the steps before it: the renderer's windows from the coefficients ([`facerender_input`]) and the
//! source picture at the render size ([`source_picture`]).

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_coeffs::CoeffTable;
use sadtalker_coeffs::facerender::{FaceRenderInput, FaceRenderOptions, SEMANTIC_WINDOW, get_facerender_data};
use sadtalker_render::image::{RgbF32, frame_to_rgb8};
use sadtalker_render::{DrivingFrame, FaceRenderer, PreparedSource, RenderError};

use crate::compute::Compute;
use crate::error::{AtStage, PipelineError, Stage};
use crate::options::GenerateOptions;

/// The renderer's coefficient windows (`get_facerender_data`) for the portrait's first-frame
/// coefficients and the generated motion, with the options of `opts` (batch size, expression scale,
/// still, the 73-input mapping of the `full` modes, head-angle waypoints).
pub fn facerender_input(
    first: &CoeffTable,
    generated: &CoeffTable,
    opts: &GenerateOptions,
) -> Result<FaceRenderInput, PipelineError> {
    get_facerender_data(
        first,
        generated,
        &FaceRenderOptions {
            batch_size: opts.batch_size,
            expression_scale: opts.expression_scale,
            still_mode: opts.still,
            full: opts.full(),
            yaw: opts.input_yaw.clone(),
            pitch: opts.input_pitch.clone(),
            roll: opts.input_roll.clone(),
        },
    )
    .at(Stage::Render)
}

/// The (cropped) portrait as the renderer's source: `size × size`, resized as the reference's
/// `skimage.transform.resize` does.
pub fn source_picture(picture: &RgbImage, size: u32) -> Result<RgbF32, PipelineError> {
    let size = size as usize;
    Ok(
        RgbF32::from_rgb8(picture.width() as usize, picture.height() as usize, picture.as_raw())
            .at(Stage::Render)?
            .resize_like_skimage(size, size),
    )
}

/// The driving frames of output frames `start .. start + n`.
pub fn driving_frames(input: &FaceRenderInput, start: usize, n: usize) -> Result<Vec<DrivingFrame>, RenderError> {
    let angle = |p: &Option<sadtalker_coeffs::camera::CameraPath>, i: usize| p.as_ref().map(|p| p.values[i]);
    (start..start + n)
        .map(|i| {
            Ok(DrivingFrame {
                semantics: Tensor::from_vec(
                    input.target_window(i).to_vec(),
                    (input.channels, SEMANTIC_WINDOW),
                    &Device::Cpu,
                )?,
                yaw: angle(&input.yaw, i),
                pitch: angle(&input.pitch, i),
                roll: angle(&input.roll, i),
            })
        })
        .collect()
}

/// The renderer's source-only work for `source` (already `size × size`) and the source window of
/// `input`, on `compute`'s device in fp32.
pub fn prepare_source(
    renderer: &FaceRenderer,
    source: &RgbF32,
    input: &FaceRenderInput,
    compute: &Compute,
) -> Result<PreparedSource, RenderError> {
    let semantics = Tensor::from_vec(
        input.source_semantics.clone(),
        (input.channels, SEMANTIC_WINDOW),
        &Device::Cpu,
    )?;
    let source = source.to_tensor()?;
    compute.run_fp32(|| renderer.prepare(&source, &semantics))
}

/// Time spent in the loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopTimes {
    /// In the networks (and the conversion to bytes).
    pub render: Duration,
    /// In the caller's `on_frame`.
    pub sink: Duration,
}

/// Renders the `input.frame_num` frames, `batch_size` per network call, calling
/// `on_frame(index, frame)` in order. The reference pads the last batch by repeating the last window
/// and drops the padded frames; here the last call renders only the frames that are kept (each frame
/// of a batch is computed independently, so the kept frames are the same).
///
/// The network calls run on `compute`'s device at its precision ([`Compute::run`]; the renderer keeps
/// its mapping network in fp32 whatever it is); `on_frame` (paste-back, enhancer, encoder) and the source
/// preparation before this loop stay fp32: the portrait's keypoints and feature volume are made once,
/// so bf16 would save little there and cost fidelity in every frame.
pub fn render_frames<E: From<RenderError>>(
    renderer: &FaceRenderer,
    prepared: &PreparedSource,
    input: &FaceRenderInput,
    batch_size: usize,
    compute: &Compute,
    mut on_frame: impl FnMut(usize, RgbImage) -> Result<(), E>,
) -> Result<LoopTimes, E> {
    let batch_size = batch_size.max(1);
    let mut times = LoopTimes::default();
    for start in (0..input.frame_num).step_by(batch_size) {
        let t = Instant::now();
        let n = batch_size.min(input.frame_num - start);
        let frames = driving_frames(input, start, n)?;
        let batch = compute.run(|| renderer.render(prepared, &frames))?;
        let mut images = Vec::with_capacity(n);
        for k in 0..n {
            let (w, h, rgb) = frame_to_rgb8(&batch.get(k).map_err(RenderError::from)?)?;
            let img = RgbImage::from_raw(w as u32, h as u32, rgb)
                .ok_or_else(|| RenderError::Input("frame buffer size mismatch".into()))?;
            images.push(img);
        }
        times.render += t.elapsed();
        for (k, img) in images.into_iter().enumerate() {
            let t = Instant::now();
            on_frame(start + k, img)?;
            times.sink += t.elapsed();
        }
    }
    Ok(times)
}
