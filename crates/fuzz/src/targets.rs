//! The fuzz targets: each feeds one input to one decoder the way the program does, through its
//! public entry point (most read a path: the input is written to a file first). An `Err` is the
//! expected answer to a bad input; a panic, an abort or a hang is a bug.

use std::path::Path;

/// One decoder under fuzzing.
pub struct Target {
    /// Name: the test, the `corpus/` and `regressions/` folders.
    pub name: &'static str,
    /// File name the input is written to (its extension is the format hint some readers take).
    pub file_name: &'static str,
    /// Inputs are kept at most this long.
    pub max_len: usize,
    /// Runs the decoder on the file at `path` (holding `data`).
    pub run: fn(path: &Path, data: &[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "image",
        file_name: "portrait.img",
        max_len: 64 << 10,
        run: image,
    },
    Target {
        name: "audio_wav",
        file_name: "speech.wav",
        max_len: 64 << 10,
        run: audio,
    },
    Target {
        name: "audio_m4a",
        file_name: "speech.m4a",
        max_len: 64 << 10,
        run: audio,
    },
    Target {
        name: "video_mp4",
        file_name: "ref.mp4",
        max_len: 64 << 10,
        run: video,
    },
    Target {
        name: "mat",
        file_name: "coeffs.mat",
        max_len: 64 << 10,
        run: mat,
    },
    Target {
        name: "safetensors",
        file_name: "model.safetensors",
        max_len: 16 << 10,
        run: checkpoint,
    },
    Target {
        name: "pickle",
        file_name: "model.pth",
        max_len: 32 << 10,
        run: checkpoint,
    },
    Target {
        name: "landmarks",
        file_name: "landmarks.txt",
        max_len: 16 << 10,
        run: landmarks,
    },
    Target {
        name: "jobs_csv",
        file_name: "jobs.csv",
        max_len: 16 << 10,
        run: jobs,
    },
    Target {
        name: "jobs_json",
        file_name: "jobs.json",
        max_len: 16 << 10,
        run: jobs,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn image(path: &Path, _: &[u8]) {
    let _ = sadtalker_preprocess::io::load_rgb(path);
}

fn audio(path: &Path, _: &[u8]) {
    // A short limit keeps each run fast; the bound under test is that nothing allocates past it.
    let opts = sadtalker_audio::LoadOptions { max_seconds: 30.0 };
    let _ = sadtalker_audio::load_speech(path, &opts);
}

fn video(path: &Path, _: &[u8]) {
    if let Ok(mut reader) = sadtalker_video::Mp4Reader::open(path) {
        // A few frames: enough to reach the decoder with every sample-table quirk.
        for _ in 0..4 {
            match reader.next_frame() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
}

fn mat(_: &Path, data: &[u8]) {
    if let Ok(file) = sadtalker_coeffs::mat::MatFile::from_bytes(data, "fuzz.mat") {
        // What was read must write back (the adapt/passthrough commands do).
        let _ = file.to_bytes();
    }
}

fn checkpoint(path: &Path, _: &[u8]) {
    let Ok(ckpt) = sadtalker_checkpoint::Checkpoint::open(path) else {
        return;
    };
    for t in ckpt.tensors().iter().take(16) {
        let _ = ckpt.read_f32(&t.name);
    }
}

fn landmarks(_: &Path, data: &[u8]) {
    let _ = sadtalker_preprocess::Landmarks68::parse(&String::from_utf8_lossy(data));
}

fn jobs(path: &Path, _: &[u8]) {
    let base = sadtalker_pipeline::GenerateOptions::default();
    let out = path.with_file_name("out");
    let _ = sadtalker_pipeline::batch::load_jobs(
        &sadtalker_pipeline::batch::JobSource::File(path.to_path_buf()),
        &base,
        &out,
    );
}
