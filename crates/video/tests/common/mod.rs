//! Shared test helpers: synthetic frames and audio, PSNR, and optional ffmpeg tools.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;
use std::process::Command;

/// A deterministic RGB frame with the kind of content a talking head has: smooth shading, a moving
/// bright disc with soft edges, and mild fine texture. `t` moves it.
pub fn synth_frame(width: u32, height: u32, t: u32) -> Vec<u8> {
    let (w, h) = (width as f32, height as f32);
    let (cx, cy) = (
        w * (0.5 + 0.15 * (t as f32 * 0.21).sin()),
        h * (0.5 + 0.1 * (t as f32 * 0.13).cos()),
    );
    let radius = 0.3 * w.min(h);
    let mut rgb = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32, y as f32);
            let d = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt();
            let disc = (1.0 - (d - radius) / 4.0).clamp(0.0, 1.0);
            let texture = (((x * 7 + y * 13 + t * 3) % 11) as f32 - 5.0) * 1.5;
            rgb.push((40.0 + 170.0 * disc + 30.0 * fx / w + texture).clamp(0.0, 255.0) as u8);
            rgb.push((60.0 + 120.0 * disc + 50.0 * fy / h + texture).clamp(0.0, 255.0) as u8);
            rgb.push((110.0 - 50.0 * disc + 20.0 * (fx + fy) / (w + h) + texture).clamp(0.0, 255.0) as u8);
        }
    }
    rgb
}

/// Peak signal-to-noise ratio of two 8-bit buffers, in dB.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "PSNR of buffers of different sizes");
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// Deterministic noise in [-1, 1].
fn noise(seed: &mut u32) -> f32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    (*seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// Speech-like test audio: low-passed noise bursts separated by silence (a shift of one sample changes
/// its alignment with the original). Channel 1, if any, is channel 0 scaled by -0.5.
pub fn burst_audio(frames: usize, channels: usize, sample_rate: u32) -> Vec<f32> {
    let mut seed = 7u32;
    let burst = sample_rate as usize / 20;
    let k = 1.0 - (-2.0 * std::f32::consts::PI * 2000.0 / sample_rate as f32).exp();
    let mut state = 0.0f32;
    (0..frames)
        .flat_map(|i| {
            let on = (i / burst) % 3 != 2;
            let level = 0.4 + 0.2 * ((i / burst) % 4) as f32;
            state += k * (noise(&mut seed) - state);
            let s = if on { level * state } else { 0.0 };
            (0..channels).map(move |c| if c == 0 { s } else { -0.5 * s })
        })
        .collect()
}

/// The lag (samples) at which `decoded` best matches `input` (channel 0 of each), searched over
/// ±`max_lag`, with the normalised correlation there.
pub fn best_lag(input: &[f32], in_channels: usize, decoded: &[f32], out_channels: usize, max_lag: i64) -> (i64, f64) {
    let a: Vec<f64> = input.iter().step_by(in_channels).map(|&v| f64::from(v)).collect();
    let b: Vec<f64> = decoded.iter().step_by(out_channels).map(|&v| f64::from(v)).collect();
    let n = a.len().min(b.len()) as i64;
    let mut best = (0, f64::MIN);
    for lag in -max_lag..=max_lag {
        let (mut dot, mut ea, mut eb) = (0.0, 0.0, 0.0);
        for i in max_lag..n - max_lag {
            let (x, y) = (a[i as usize], b[(i + lag) as usize]);
            dot += x * y;
            ea += x * x;
            eb += y * y;
        }
        let r = dot / (ea * eb).sqrt().max(1e-12);
        if r > best.1 {
            best = (lag, r);
        }
    }
    best
}

/// True when `tool` (ffmpeg, ffprobe) runs; otherwise prints a notice that the check is skipped.
/// Under `CI=true` a missing tool is a failure, never a skip: `.ci/run` installs ffmpeg, so a CI run
/// without it would pass these cross-checks without running them.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "`{tool}` not found under CI=true: .ci/run must install ffmpeg (apt-get install ffmpeg)"
        );
        println!("NOTICE: `{tool}` not found: skipping this cross-check (install ffmpeg to run it)");
    }
    ok
}

/// Runs ffprobe with `args` on `file` and returns its stdout.
pub fn ffprobe(file: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(file)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key=` in ffprobe's default output for one stream/section.
pub fn field<'a>(probe: &'a str, key: &str) -> Option<&'a str> {
    probe
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Decodes `file` with ffmpeg, returning raw output bytes of the given format arguments.
pub fn ffmpeg_decode(file: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(args)
        .arg("-")
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Names of the files in `dir` (to check that nothing, not even a temporary file, was left).
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
