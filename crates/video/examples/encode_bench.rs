//! Encode/decode speed, peak memory and fidelity of the MP4 writer on a talking-head-sized clip.
//!
//! `cargo run --release -p sadtalker-video --example encode_bench -- [SECONDS] [SIZE] [OUT.mp4] [IMAGE]`
//! (defaults: 60 s, 512×512, a temporary file, synthetic frames). With IMAGE (PNG/JPEG), frames are a
//! SIZE×SIZE window drifting slowly over the image, like a head moving in a portrait.
//!
//! Prints encode frames/s (frame generation excluded), the process's peak resident memory (VmHWM,
//! Linux) before and after encoding, the file size, then decodes the file with our reader and reports
//! decode frames/s and PSNR against the input frames. Memory must not grow with SECONDS: compare runs.

use std::time::Instant;

use image::RgbImage;
use sadtalker_video::{Audio, Frame, Mp4Reader, Mp4Writer, VideoSettings};

/// Peak resident set size in KiB (Linux `VmHWM`), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Produces frame `t`.
enum Source {
    Synthetic(u32),
    Image(RgbImage, u32),
}

impl Source {
    fn frame(&self, t: u32, buf: &mut Vec<u8>) {
        match self {
            Source::Synthetic(size) => synth_frame(buf, *size, t),
            Source::Image(img, size) => {
                // Drift up to 40 px and back, at most 1 px per frame.
                let phase = |period: u32| {
                    let p = t % period;
                    if p < period / 2 { p } else { period - p }
                };
                let (x, y) = (
                    phase(80).min(img.width() - size),
                    (phase(60) / 2).min(img.height() - size),
                );
                buf.clear();
                buf.extend_from_slice(image::imageops::crop_imm(img, x, y, *size, *size).to_image().as_raw());
            }
        }
    }
}

/// A frame with smooth gradients, a moving disc and fine texture.
fn synth_frame(buf: &mut Vec<u8>, size: u32, t: u32) {
    buf.resize((size * size * 3) as usize, 0);
    let s = size as f32;
    let (cx, cy) = (
        s * (0.5 + 0.1 * (t as f32 * 0.07).sin()),
        s * (0.5 + 0.05 * (t as f32 * 0.11).cos()),
    );
    for y in 0..size {
        for x in 0..size {
            let i = ((y * size + x) * 3) as usize;
            let (fx, fy) = (x as f32, y as f32);
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() / s;
            let skin = if d < 0.3 { 1.0 - d / 0.3 } else { 0.0 };
            let texture = ((x * 7 + y * 13 + t) % 17) as f32;
            buf[i] = (60.0 + 150.0 * skin + fx / s * 40.0 + texture) as u8;
            buf[i + 1] = (80.0 + 100.0 * skin + fy / s * 50.0) as u8;
            buf[i + 2] = (120.0 - 60.0 * skin + texture) as u8;
        }
    }
}

fn mse(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u32 = args.first().map_or(Ok(60), |s| s.parse())?;
    let size: u32 = args.get(1).map_or(Ok(512), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let out = args
        .get(2)
        .map_or_else(|| dir.path().join("bench.mp4"), std::path::PathBuf::from);
    let source = match args.get(3) {
        Some(path) => {
            let img = image::open(path)?.to_rgb8();
            // Make sure a SIZE window plus the drift fits.
            let scale = (f64::from(size + 40) / f64::from(img.width().min(img.height()))).max(1.0);
            let (w, h) = (
                (f64::from(img.width()) * scale) as u32,
                (f64::from(img.height()) * scale) as u32,
            );
            Source::Image(
                image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle),
                size,
            )
        }
        None => Source::Synthetic(size),
    };

    let sr = 16_000u32;
    let audio: Vec<f32> = (0..seconds * sr)
        .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / sr as f32).sin())
        .collect();
    let frames = seconds * 25;
    let mut buf = Vec::new();
    let rss_before = peak_rss_kib();

    let start = Instant::now();
    let mut writer = Mp4Writer::create(&out, VideoSettings::default(), Some(Audio::mono(&audio, sr)))?;
    let mut gen_time = 0.0;
    for t in 0..frames {
        let s = Instant::now();
        source.frame(t, &mut buf);
        gen_time += s.elapsed().as_secs_f64();
        writer.write_frame(Frame {
            width: size,
            height: size,
            rgb: &buf,
        })?;
    }
    let summary = writer.finish()?;
    let encode = start.elapsed().as_secs_f64() - gen_time;
    let rss_after = peak_rss_kib();

    let codec = sadtalker_video::AudioCodec::default().name();
    let kind = if args.get(3).is_some() {
        "image crop"
    } else {
        "synthetic"
    };
    println!("clip: {seconds} s, {size}x{size} ({kind}), {frames} frames, audio {sr} Hz mono ({codec})");
    println!(
        "encode: {:.1} frames/s ({encode:.2} s, {:.1}x real time; frame generation excluded)",
        f64::from(frames) / encode,
        f64::from(seconds) / encode
    );
    println!(
        "file: {} bytes ({:.0} kbit/s)",
        summary.bytes,
        summary.bytes as f64 * 8.0 / f64::from(seconds) / 1000.0
    );
    let kib = |v: Option<u64>| v.map_or("?".into(), |v| v.to_string());
    println!(
        "peak RSS: {} KiB before encoding (input audio allocated), {} KiB after",
        kib(rss_before),
        kib(rss_after)
    );

    let start = Instant::now();
    let mut reader = Mp4Reader::open(&out)?;
    let mut decode_time = 0.0;
    let (mut total_mse, mut worst, mut n) = (0.0, 0.0f64, 0u32);
    loop {
        let s = Instant::now();
        let Some(frame) = reader.next_frame()? else { break };
        decode_time += s.elapsed().as_secs_f64();
        source.frame(n, &mut buf);
        let m = mse(frame.as_raw(), &buf);
        total_mse += m;
        worst = worst.max(m);
        n += 1;
    }
    let psnr = |m: f64| 10.0 * (255.0f64 * 255.0 / m).log10();
    println!(
        "decode (our reader): {n} frames, {:.1} frames/s; PSNR vs input {:.2} dB overall, worst frame {:.2} dB",
        f64::from(n) / decode_time,
        psnr(total_mse / f64::from(n.max(1))),
        psnr(worst)
    );
    let _ = start;
    Ok(())
}
