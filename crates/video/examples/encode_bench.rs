//! Encode speed and peak memory of the MP4 writer on a synthetic talking-head-sized clip.
//!
//! `cargo run --release -p sadtalker-video --example encode_bench -- [SECONDS] [SIZE] [OUT.mp4]`
//! (defaults: 60 s, 512×512, a temporary file). Prints frames/s, the process's peak resident memory
//! (VmHWM, Linux) before and after encoding, and the file size. Memory should not grow with SECONDS.

use std::time::Instant;

use sadtalker_video::{Audio, Frame, Mp4Writer, VideoSettings};

/// Peak resident set size in KiB (Linux `VmHWM`), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A frame with smooth gradients, a moving disc and fine texture: roughly the detail of a face video.
fn synth_frame(buf: &mut [u8], size: u32, t: u32) {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u32 = args.first().map_or(Ok(60), |s| s.parse())?;
    let size: u32 = args.get(1).map_or(Ok(512), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let out = args
        .get(2)
        .map_or_else(|| dir.path().join("bench.mp4"), std::path::PathBuf::from);

    let sr = 16_000u32;
    let audio: Vec<f32> = (0..seconds * sr)
        .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / sr as f32).sin())
        .collect();
    let frames = u64::from(seconds) * 25;
    let mut buf = vec![0u8; (size * size * 3) as usize];
    let rss_before = peak_rss_kib();

    let start = Instant::now();
    let mut writer = Mp4Writer::create(&out, VideoSettings::default(), Some(Audio::mono(&audio, sr)))?;
    let mut synth_time = 0.0;
    for t in 0..frames {
        let s = Instant::now();
        synth_frame(&mut buf, size, t as u32);
        synth_time += s.elapsed().as_secs_f64();
        writer.write_frame(Frame {
            width: size,
            height: size,
            rgb: &buf,
        })?;
    }
    let summary = writer.finish()?;
    let total = start.elapsed().as_secs_f64();
    let encode = total - synth_time;

    println!(
        "clip: {seconds} s, {size}x{size}, {frames} frames, audio {sr} Hz mono ({})",
        sadtalker_video::AudioCodec::default().name()
    );
    println!(
        "encode: {:.1} frames/s ({:.2} s for {frames} frames, frame synthesis excluded)",
        frames as f64 / encode,
        encode
    );
    println!("realtime factor: {:.1}x", f64::from(seconds) / encode);
    println!(
        "file: {} bytes ({:.0} kbit/s)",
        summary.bytes,
        summary.bytes as f64 * 8.0 / f64::from(seconds) / 1000.0
    );
    println!(
        "peak RSS: {} KiB before encoding (input audio + frame buffer), {} KiB after",
        rss_before.map_or("?".into(), |v| v.to_string()),
        peak_rss_kib().map_or("?".into(), |v| v.to_string())
    );
    Ok(())
}
