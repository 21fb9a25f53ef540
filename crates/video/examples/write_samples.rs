//! Writes a few sample videos into DIR for playback checks in other players (see
//! `tools/video/chromium_check.sh`), and `DIR/expected.txt`: one `FILE DURATION_SECONDS` line each.
//!
//! `cargo run -p sadtalker-video --example write_samples -- DIR`

use std::fmt::Write as _;
use std::path::Path;

use image::RgbImage;
use sadtalker_video::{Audio, AudioCodec, Frame, Mp4Writer, VideoSettings, write_still_video};

fn tone(seconds: f32, sample_rate: u32, channels: usize) -> Vec<f32> {
    let n = (seconds * sample_rate as f32) as usize;
    (0..n)
        .flat_map(|i| {
            let t = i as f32 / sample_rate as f32;
            // A tone that switches on and off every 0.25 s: audible sync marks.
            let s = if ((t * 4.0) as u32).is_multiple_of(2) {
                0.3 * (t * 2.0 * std::f32::consts::PI * 440.0).sin()
            } else {
                0.0
            };
            std::iter::repeat_n(s, channels)
        })
        .collect()
}

fn frame(size: u32, t: u32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            // A bar sweeping across once a second, on a gradient.
            let bar = (x + 256 - (t * size / 25) % size) % size < size / 8;
            rgb.extend_from_slice(&[
                if bar { 240 } else { (x * 255 / size) as u8 },
                (y * 255 / size) as u8,
                96,
            ]);
        }
    }
    rgb
}

fn clip(path: &Path, seconds: f32, sample_rate: u32, channels: u16, codec: AudioCodec) -> f64 {
    let audio = tone(seconds, sample_rate, usize::from(channels));
    let settings = VideoSettings {
        audio_codec: codec,
        ..VideoSettings::default()
    };
    let audio = Audio {
        samples: &audio,
        sample_rate,
        channels,
    };
    let mut w = Mp4Writer::create(path, settings, Some(audio)).expect("create");
    for t in 0..sadtalker_video::frames_for_audio(&audio, 25) as u32 {
        w.write_frame(Frame {
            width: 256,
            height: 256,
            rgb: &frame(256, t),
        })
        .expect("frame");
    }
    w.finish().expect("finish").duration_secs
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: write_samples DIR");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create DIR");
    let mut expected = String::new();
    for (name, seconds, rate, channels, codec) in [
        ("talking.mp4", 3.0, 16_000, 1, AudioCodec::default()),
        ("stereo48k.mp4", 2.0, 48_000, 2, AudioCodec::default()),
        ("flac.mp4", 2.0, 16_000, 1, AudioCodec::Flac),
    ] {
        let d = clip(&dir.join(name), seconds, rate, channels, codec);
        writeln!(expected, "{name} {d}").expect("fmt");
    }
    let portrait = RgbImage::from_raw(200, 240, {
        let f = frame(240, 0);
        // 200x240 crop of a 240x240 frame.
        f.chunks_exact(240 * 3)
            .flat_map(|row| row[..200 * 3].to_vec())
            .collect()
    })
    .expect("portrait");
    let audio = tone(2.5, 44_100, 2);
    let s = write_still_video(
        dir.join("still.mp4"),
        &portrait,
        Audio {
            samples: &audio,
            sample_rate: 44_100,
            channels: 2,
        },
        "sample of the fallback",
        VideoSettings::default(),
    )
    .expect("still");
    writeln!(expected, "still.mp4 {}", s.duration_secs).expect("fmt");
    std::fs::write(dir.join("expected.txt"), &expected).expect("write expected.txt");
    print!("{expected}");
}
