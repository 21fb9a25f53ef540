//! `sadtalker doctor`: is this machine ready to generate, and if not, what fixes it.
//!
//! - **Checks** ([`check_system`]): the model files of the wanted features (present and hashed through
//!   the store, or which are missing/damaged and the command that installs them), free disk space in the
//!   store and result folders, whether those folders are writable, the CPU's vector extensions and
//!   threads, the GPUs (each opened and self-tested) and the video codecs (a real two-frame H.264 + AAC encode and
//!   decode).
//! - **Self-test** ([`self_test`]): one tiny job through every stage (inputs, models, preprocess, audio,
//!   audio2coeff, render, paste-back, encode) on built-in deterministic weights and a built-in portrait,
//!   in seconds, each stage passed or failed with its time. It proves the code paths work on this machine,
//!   independently of the model files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sadtalker_store::{FileState, ModelStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::error::Stage;
use crate::generate::generate;
use crate::models::Models;
use crate::options::GenerateOptions;
use crate::progress::NoProgress;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth knowing; generation works.
    Warn,
    /// Generation will fail until this is fixed.
    Fail,
}

impl Status {
    /// The label in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One line of the doctor's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked (`models 256`, `disk space`, `result folder`, ...).
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (failed and warned checks).
    pub fix: Option<String>,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// What a stage of the self-test did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    /// The stage.
    pub stage: Stage,
    /// `ok`, `fail`, or absent from the run (`skipped`: an earlier stage failed).
    pub status: StageStatus,
    /// Wall-clock seconds (0 when it did not run).
    pub seconds: f64,
}

/// A self-test stage's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    /// Ran and passed.
    Pass,
    /// Failed (the self-test's error says why).
    Fail,
    /// Not reached (an earlier stage failed) or not part of the test job (the enhancer).
    Skipped,
}

/// The self-test's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfTest {
    /// Every stage passed and the video decodes with the expected frames.
    pub passed: bool,
    /// Per stage, in pipeline order.
    pub stages: Vec<StageResult>,
    /// Frames in the test video.
    pub frames: u64,
    /// Total seconds.
    pub seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// The whole doctor report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The system checks.
    pub checks: Vec<Check>,
    /// The GPUs (and software devices) found, each self-tested.
    pub devices: Vec<DeviceReport>,
    /// The self-test (absent with `--no-self-test`).
    pub self_test: Option<SelfTest>,
}

impl DoctorReport {
    /// Whether nothing failed (warnings allowed).
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail) && self.self_test.as_ref().is_none_or(|s| s.passed)
    }

    /// Whether a model check failed (the CLI then exits with the model code).
    pub fn models_failed(&self) -> bool {
        self.checks
            .iter()
            .any(|c| c.status == Status::Fail && c.name.starts_with("models"))
    }
}

/// What [`check_system`] looks at.
pub struct DoctorOptions<'a> {
    /// The store (or why it could not be opened: reported as a failed check).
    pub store: Result<&'a ModelStore, String>,
    /// Features whose files must be there (default `256`); the manifest's other features are reported
    /// as optional.
    pub required: Vec<String>,
    /// The folder videos go to (`--result-dir`).
    pub result_dir: PathBuf,
    /// Hash files not hashed yet (the first run reads every model file once: seconds per GB).
    pub verify: bool,
    /// The GPUs found ([`list_devices`]).
    pub devices: Vec<DeviceReport>,
}

/// Free space below which the disk check warns: a 10 s 512 video and its temporary files fit easily.
const LOW_SPACE: u64 = 1 << 30;

/// Runs the system checks.
pub fn check_system(opts: &DoctorOptions<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    match &opts.store {
        Ok(store) => {
            checks.extend(model_checks(store, &opts.required, opts.verify));
            checks.push(writable(
                "store folder",
                store.root(),
                "set SADTALKER_HOME to a writable folder",
            ));
            checks.push(disk_space("disk space (store)", store.root()));
        }
        Err(e) => checks.push(Check::new(
            "models",
            Status::Fail,
            format!("the model store cannot be opened: {e}"),
            Some("check SADTALKER_HOME and --manifest".into()),
        )),
    }
    checks.push(writable(
        "result folder",
        &opts.result_dir,
        "choose another --result-dir, or make it writable (chmod u+w)",
    ));
    checks.push(disk_space("disk space (results)", &opts.result_dir));
    checks.push(cpu_check());
    checks.push(gpu_check(&opts.devices));
    checks.push(codec_check());
    checks
}

/// One GPU (or software device) as `doctor` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The adapter's name.
    pub name: String,
    /// The API: `vulkan`, `metal`, `dx12`.
    pub backend: String,
    /// `discrete`, `integrated`, `virtual`, `software`, `other`.
    pub device_type: String,
    /// PCI vendor and device ids.
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// The driver's name and version string.
    pub driver: String,
    /// Device-local memory, where the API says.
    pub memory_bytes: Option<u64>,
    /// The largest tensor one kernel may bind.
    pub max_binding_bytes: u64,
    /// The tiny device self-test (a leaky ReLU and a 3×3 convolution against the host's result).
    pub self_test: StageStatus,
    /// Why the self-test failed, or the device did not open.
    pub error: Option<String>,
    /// Whether `--device auto` runs on it (the best device, when it is a discrete or Apple GPU and
    /// passes: [`crate::compute::auto_eligible`]).
    pub auto: bool,
}

/// Every device the GPU backend finds, each opened and self-tested, best first.
pub fn list_devices() -> Vec<DeviceReport> {
    sadtalker_gpu::list_devices()
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let tested = match sadtalker_gpu::Device::open_listed(i) {
                Some(Ok(dev)) => dev.self_test(),
                Some(Err(e)) => Err(e),
                None => Err(sadtalker_gpu::GpuError::Device {
                    adapter: d.name.clone(),
                    msg: "disappeared while listing".into(),
                }),
            };
            let passed = tested.is_ok();
            let auto = passed && i == 0 && crate::compute::auto_eligible(&d);
            DeviceReport {
                backend: d.backend.to_owned(),
                device_type: d.device_type.name().to_owned(),
                vendor_id: d.vendor_id,
                device_id: d.device_id,
                driver: format!("{} {}", d.driver, d.driver_info).trim().to_owned(),
                memory_bytes: d.memory_bytes,
                max_binding_bytes: d.max_binding_bytes,
                self_test: if passed { StageStatus::Pass } else { StageStatus::Fail },
                error: tested.err().map(|e| e.to_string()),
                auto,
                name: d.name,
            }
        })
        .collect()
}

/// The devices found, which one `--device auto` takes, and a warning for a broken one.
fn gpu_check(devices: &[DeviceReport]) -> Check {
    if devices.is_empty() {
        return Check::new(
            "gpu",
            Status::Ok,
            "no GPU or Vulkan/Metal driver found: --device auto runs on the CPU",
            None,
        );
    }
    let list: Vec<String> = devices
        .iter()
        .map(|d| {
            let test = match &d.error {
                None => "self-test pass".to_owned(),
                Some(e) => format!("self-test FAILED: {e}"),
            };
            format!("{} [{}, {}] {test}", d.name, d.backend, d.device_type)
        })
        .collect();
    let auto = devices
        .iter()
        .find(|d| d.auto)
        .map_or("the CPU (no discrete or Apple GPU passed)".to_owned(), |d| {
            d.name.clone()
        });
    let detail = format!("{}; --device auto uses {auto}", list.join("; "));
    if devices.iter().any(|d| d.error.is_some()) {
        return Check::new(
            "gpu",
            Status::Warn,
            detail,
            Some(
                "update the GPU driver; meanwhile --device auto runs on the CPU if the failing device is the best one"
                    .into(),
            ),
        );
    }
    Check::new("gpu", Status::Ok, detail, None)
}

/// The model files of each feature: required features fail when incomplete, the others are listed.
fn model_checks(store: &ModelStore, required: &[String], verify: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let features: Vec<String> = store.manifest().features().into_iter().map(str::to_owned).collect();
    for r in required {
        if !features.contains(r) {
            checks.push(Check::new(
                format!("models {r}"),
                Status::Fail,
                format!("the manifest has no feature `{r}` (features: {})", features.join(", ")),
                None,
            ));
        }
    }
    for feature in &features {
        let is_required = required.contains(feature);
        let Ok(entries) = store.entries_for(feature) else {
            continue;
        };
        let mut missing = Vec::new();
        let mut damaged = Vec::new();
        let mut unhashed = Vec::new();
        let mut custom = Vec::new();
        for entry in &entries {
            let status = store.status_of(entry);
            match status.state {
                FileState::Missing | FileState::Partial(_) => missing.push(entry.name.clone()),
                FileState::WrongSize(n) => damaged.push(format!(
                    "{} ({} bytes, the official file has {})",
                    status.path.as_deref().unwrap_or(Path::new(&entry.name)).display(),
                    n,
                    entry.size
                )),
                FileState::Present if !verify => unhashed.push(entry.name.clone()),
                FileState::Present | FileState::Verified | FileState::HashMismatch => {
                    // `locate` hashes a file once (recorded) and tells a damaged store file from a
                    // custom checkpoint in a --checkpoint-dir.
                    match store.locate(&entry.name) {
                        Ok(l) if !l.official => custom.push(l.path.display().to_string()),
                        Ok(_) => {}
                        Err(StoreError::Damaged { path, reason, .. }) => {
                            damaged.push(format!("{} ({reason})", path.display()))
                        }
                        Err(e) => damaged.push(format!("{}: {e}", entry.name)),
                    }
                }
            }
        }
        let name = format!("models {feature}");
        let fail = if is_required { Status::Fail } else { Status::Warn };
        if !damaged.is_empty() {
            let names: Vec<&str> = entries
                .iter()
                .filter(|e| damaged.iter().any(|d| d.contains(&e.name)))
                .map(|e| e.name.as_str())
                .collect();
            checks.push(Check::new(
                name,
                fail,
                format!("damaged: {}", damaged.join("; ")),
                Some(format!(
                    "sadtalker models verify (moves damaged store files aside), then sadtalker models fetch {}",
                    names.join(" ")
                )),
            ));
        } else if !missing.is_empty() {
            if is_required {
                checks.push(Check::new(
                    name,
                    Status::Fail,
                    format!("missing: {} (looked in {})", missing.join(", "), store.root().display()),
                    Some(format!(
                        "sadtalker models fetch --for {feature}   (offline: copy the files to this machine and run \
                         sadtalker models import DIR, or pass --checkpoint-dir)"
                    )),
                ));
            } else {
                checks.push(Check::new(
                    name,
                    Status::Ok,
                    format!("optional, not installed ({} file(s))", missing.len()),
                    Some(format!("sadtalker models fetch --for {feature}")),
                ));
            }
        } else {
            let mut detail = format!("{} file(s) present", entries.len());
            if !unhashed.is_empty() {
                detail.push_str(&format!(", {} not hashed yet", unhashed.len()));
            } else {
                detail.push_str(", verified");
            }
            if !custom.is_empty() {
                detail.push_str(&format!("; custom (not the official hash): {}", custom.join(", ")));
            }
            checks.push(Check::new(
                name,
                if custom.is_empty() { Status::Ok } else { Status::Warn },
                detail,
                None,
            ));
        }
    }
    checks
}

/// Whether `dir` (created if absent) accepts a new file, and whether its permissions say read-only
/// (root writes through those, other users do not).
fn writable(name: &str, dir: &Path, fix: &str) -> Check {
    if let Err(e) = std::fs::create_dir_all(dir) {
        return Check::new(
            name,
            Status::Fail,
            format!("{} cannot be created: {e}", dir.display()),
            Some(fix.into()),
        );
    }
    let readonly = std::fs::metadata(dir).is_ok_and(|m| m.permissions().readonly());
    match tempfile::NamedTempFile::new_in(dir) {
        Err(e) => Check::new(
            name,
            Status::Fail,
            format!(
                "{} is not writable{}: {e}",
                dir.display(),
                if readonly { " (read-only)" } else { "" }
            ),
            Some(fix.into()),
        ),
        Ok(_) if readonly => Check::new(
            name,
            Status::Warn,
            format!(
                "{} is read-only (no write permission bits); this user (root) can still write there, others cannot",
                dir.display()
            ),
            Some(fix.into()),
        ),
        Ok(_) => Check::new(name, Status::Ok, format!("{} is writable", dir.display()), None),
    }
}

fn disk_space(name: &str, dir: &Path) -> Check {
    match (sadtalker_store::disk_space_probe())(dir) {
        Ok(free) => {
            let gb = free as f64 / 1e9;
            if free < LOW_SPACE {
                Check::new(
                    name,
                    Status::Warn,
                    format!("{gb:.2} GB free at {}", dir.display()),
                    Some("free some space: the models need ~2.5 GB and each video its size again while written".into()),
                )
            } else {
                Check::new(name, Status::Ok, format!("{gb:.1} GB free at {}", dir.display()), None)
            }
        }
        Err(e) => Check::new(
            name,
            Status::Warn,
            format!("cannot read the free space of {}: {e}", dir.display()),
            None,
        ),
    }
}

/// The vector extensions the convolution kernels use, the kernel level chosen (and any cap set
/// by `SADTALKER_ISA`), whether bf16 can run, and the threads available.
fn cpu_check() -> Check {
    use sadtalker_ops::isa;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let level = match (std::env::var("SADTALKER_ISA").ok(), isa::env_ceiling()) {
        (Some(v), Some(_)) => format!("kernels {} (capped by SADTALKER_ISA={v})", isa::active()),
        (Some(v), None) => {
            return Check::new(
                "cpu",
                Status::Warn,
                format!("SADTALKER_ISA={v:?} is not a kernel level; kernels {}", isa::active()),
                Some("set SADTALKER_ISA to avx512, avx2 or generic, or unset it".into()),
            );
        }
        (None, _) => format!("kernels {}", isa::active()),
    };
    let bf16 = match sadtalker_ops::precision::bf16_unavailable() {
        None => "--precision bf16 available (AMX)".to_owned(),
        Some(_) => "--precision bf16 runs fp32 here (no AMX)".to_owned(),
    };
    let level = format!("{level}; {bf16}");
    #[cfg(target_arch = "x86_64")]
    {
        let feats = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ];
        let list: Vec<String> = feats
            .iter()
            .map(|(n, on)| format!("{n} {}", if *on { "yes" } else { "no" }))
            .collect();
        let detail = format!("x86_64, {}; {level}; {threads} thread(s)", list.join(", "));
        if !feats[0].1 || !feats[1].1 {
            return Check::new(
                "cpu",
                Status::Warn,
                detail,
                Some("without AVX2/FMA the networks run on the slow scalar paths (several times slower)".into()),
            );
        }
        Check::new("cpu", Status::Ok, detail, None)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Check::new(
            "cpu",
            Status::Ok,
            format!("{}; {level}; {threads} thread(s)", std::env::consts::ARCH),
            None,
        )
    }
}

/// Encodes two frames with audio and reads them back: the codecs this build writes and reads.
fn codec_check() -> Check {
    let codec = sadtalker_video::AudioCodec::default().name();
    let run = || -> Result<u64, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
        let path = dir.path().join("codec.mp4");
        let samples = vec![0f32; 16_000 / 10];
        let mut w = sadtalker_video::Mp4Writer::create(
            &path,
            sadtalker_video::VideoSettings::default(),
            Some(sadtalker_video::Audio::mono(&samples, 16_000)),
        )
        .map_err(|e| e.to_string())?;
        let frame = image::RgbImage::from_pixel(32, 32, image::Rgb([90, 120, 200]));
        for _ in 0..2 {
            w.write_image(&frame).map_err(|e| e.to_string())?;
        }
        w.finish().map_err(|e| e.to_string())?;
        let back = sadtalker_video::read_video(&path).map_err(|e| e.to_string())?;
        Ok(back.frames.len() as u64)
    };
    match run() {
        Ok(n) if n >= 2 => Check::new(
            "codecs",
            Status::Ok,
            format!("H.264 encode + decode (openh264), {codec} audio: a test clip written and read back"),
            None,
        ),
        Ok(n) => Check::new(
            "codecs",
            Status::Fail,
            format!("the test clip read back with {n} frame(s) instead of 2"),
            Some("this is a bug: please report it".into()),
        ),
        Err(e) => Check::new(
            "codecs",
            Status::Fail,
            format!("H.264/{codec} test clip failed: {e}"),
            Some("this is a bug: please report it".into()),
        ),
    }
}

/// The self-test's portrait (scikit-image's astronaut, public domain, 256 px) and its 68 landmarks:
/// deterministic weights find no face, so the landmarks are given.
const PORTRAIT: &[u8] = include_bytes!("../../../fixtures/preprocess/astronaut.png");
const PORTRAIT_LANDMARKS: &str = include_str!("../../../fixtures/pipeline/astronaut_lm.txt");

/// Writes 16-bit mono PCM WAV (the self-test's speech: a few frames of a voiced-like tone).
fn write_wav(path: &Path, samples: &[f32], rate: u32) -> std::io::Result<()> {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + samples.len() * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, b)
}

/// Runs one tiny job (`full` preprocessing, so paste-back runs too; 5 frames; the reduced 64-pixel
/// face renderer) with `models` (normally [`Models::self_test`]), then decodes the video.
pub fn self_test(models: &Models) -> SelfTest {
    let started = Instant::now();
    let result = (|| -> Result<(crate::Report, PathBuf, tempfile::TempDir), crate::PipelineError> {
        let dir = tempfile::tempdir().map_err(|e| {
            crate::PipelineError::new(
                Stage::Inputs,
                crate::Cause::Internal(format!("no temporary folder: {e}")),
            )
        })?;
        let io = |p: &Path| {
            let p = p.to_owned();
            move |e: std::io::Error| crate::PipelineError::new(Stage::Inputs, crate::Cause::Io { path: p, source: e })
        };
        let image = dir.path().join("portrait.png");
        std::fs::write(&image, PORTRAIT).map_err(io(&image))?;
        let lm = dir.path().join("portrait_lm.txt");
        std::fs::write(&lm, PORTRAIT_LANDMARKS).map_err(io(&lm))?;
        let wav = dir.path().join("speech.wav");
        // 0.2 s: 5 video frames. A 220 Hz tone with a slow envelope (not silence: the mel path sees energy).
        let samples: Vec<f32> = (0..3200)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (std::f32::consts::TAU * 220.0 * t).sin() * (std::f32::consts::PI * t / 0.2).sin()
            })
            .collect();
        write_wav(&wav, &samples, 16_000).map_err(io(&wav))?;
        let output = dir.path().join("selftest.mp4");
        let opts = GenerateOptions {
            source_image: image,
            driven_audio: wav,
            landmarks: Some(lm),
            output: Some(output.clone()),
            size: models.sizes()[0],
            preprocess: sadtalker_preprocess::PreprocessMode::Full,
            ..GenerateOptions::default()
        };
        let report = generate(models, &opts, &mut NoProgress)?;
        Ok((report, output, dir))
    })();
    let mut stages = Vec::new();
    let (passed, frames, error) = match result {
        Ok((report, output, _dir)) => {
            let decoded = sadtalker_video::read_video(&output);
            for stage in Stage::ALL {
                let seconds = report.seconds.get(stage.as_str()).copied();
                stages.push(StageResult {
                    stage,
                    status: if seconds.is_some() {
                        StageStatus::Pass
                    } else {
                        StageStatus::Skipped
                    },
                    seconds: seconds.unwrap_or(0.0),
                });
            }
            match decoded {
                Ok(v) if v.frames.len() as u64 == report.frames && report.frames > 0 => (true, report.frames, None),
                Ok(v) => (
                    false,
                    report.frames,
                    Some(format!(
                        "the test video decodes to {} frames, {} were written",
                        v.frames.len(),
                        report.frames
                    )),
                ),
                Err(e) => (
                    false,
                    report.frames,
                    Some(format!("the test video cannot be read back: {e}")),
                ),
            }
        }
        Err(e) => {
            let mut reached = true;
            for stage in Stage::ALL {
                let status = if stage == e.stage {
                    reached = false;
                    StageStatus::Fail
                } else if reached && stage != Stage::Enhance {
                    StageStatus::Pass
                } else {
                    StageStatus::Skipped
                };
                stages.push(StageResult {
                    stage,
                    status,
                    seconds: 0.0,
                });
            }
            (false, 0, Some(e.to_string()))
        }
    };
    SelfTest {
        passed,
        stages,
        frames,
        seconds: started.elapsed().as_secs_f64(),
        error,
    }
}

/// The self-test with its own built-in networks ([`Models::self_test`]).
pub fn run_self_test() -> SelfTest {
    self_test(&Models::self_test())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]
    use super::*;
    use sadtalker_store::{Manifest, StoreOptions};
    use sha2::{Digest, Sha256};

    /// A store with a two-file custom manifest (feature `256`), both files installed.
    fn store(dir: &Path) -> (ModelStore, Vec<PathBuf>) {
        let root = dir.join("store");
        let mut files = Vec::new();
        let mut entries = Vec::new();
        for (name, body) in [("a.safetensors", &b"first model"[..]), ("b.pth", &b"second model"[..])] {
            let rel = format!("checkpoints/{name}");
            let path = root.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body).unwrap();
            entries.push(serde_json::json!({
                "name": name, "path": rel, "size": body.len(),
                "sha256": format!("{:x}", Sha256::digest(body)), "features": ["256"],
            }));
            files.push(path);
        }
        let manifest = Manifest::from_json(&serde_json::json!({ "files": entries }).to_string(), "test").unwrap();
        let opts = StoreOptions {
            root: Some(root),
            manifest: Some(manifest),
            offline: true,
            ..StoreOptions::default()
        };
        (ModelStore::open(opts).unwrap(), files)
    }

    fn models_check(store: &ModelStore, result_dir: &Path) -> Check {
        let checks = check_system(&DoctorOptions {
            store: Ok(store),
            required: vec!["256".into()],
            result_dir: result_dir.to_owned(),
            verify: true,
            devices: Vec::new(),
        });
        checks.into_iter().find(|c| c.name == "models 256").unwrap()
    }

    fn device(name: &str, device_type: &str, error: Option<&str>, auto: bool) -> DeviceReport {
        DeviceReport {
            name: name.into(),
            backend: "vulkan".into(),
            device_type: device_type.into(),
            vendor_id: 0,
            device_id: 0,
            driver: String::new(),
            memory_bytes: None,
            max_binding_bytes: 1 << 30,
            self_test: if error.is_some() {
                StageStatus::Fail
            } else {
                StageStatus::Pass
            },
            error: error.map(str::to_owned),
            auto,
        }
    }

    #[test]
    fn the_gpu_check_names_what_auto_uses_and_warns_on_a_broken_device() {
        let none = gpu_check(&[]);
        assert_eq!(none.status, Status::Ok);
        assert!(none.detail.contains("CPU"), "{none:?}");
        let soft = gpu_check(&[device("llvmpipe", "software", None, false)]);
        assert_eq!(soft.status, Status::Ok);
        assert!(soft.detail.contains("auto uses the CPU"), "{soft:?}");
        let broken = gpu_check(&[
            device("Bad GPU", "discrete", Some("self-test failed"), false),
            device("Good GPU", "integrated", None, true),
        ]);
        assert_eq!(broken.status, Status::Warn, "{broken:?}");
        assert!(broken.detail.contains("auto uses Good GPU"), "{broken:?}");
        assert!(broken.fix.is_some());
    }

    #[test]
    fn every_device_found_is_listed_and_self_tested() {
        let listed = list_devices();
        assert_eq!(listed.len(), sadtalker_gpu::list_devices().len());
        for d in &listed {
            assert_eq!(d.self_test == StageStatus::Pass, d.error.is_none(), "{d:?}");
            assert!(!(d.auto && d.device_type == "software"), "{d:?}");
        }
        // `.ci/run` installs lavapipe: CI must see at least that device, and it works.
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            assert!(
                listed.iter().any(|d| d.device_type == "software" && d.error.is_none()),
                "CI=true but no working software Vulkan device: {listed:?}"
            );
        }
    }

    #[test]
    fn model_files_missing_damaged_and_fine() {
        let dir = tempfile::tempdir().unwrap();
        let (store, files) = store(dir.path());
        let ok = models_check(&store, dir.path());
        assert_eq!(ok.status, Status::Ok, "{ok:?}");
        assert!(ok.detail.contains("verified"), "{ok:?}");

        // Same size, other bytes: only the hash can tell.
        std::fs::write(&files[1], b"second mode!").unwrap();
        let bad = models_check(&store, dir.path());
        assert_eq!(bad.status, Status::Fail, "{bad:?}");
        assert!(
            bad.detail.contains("b.pth") && bad.detail.contains("damaged"),
            "{bad:?}"
        );
        assert!(
            bad.fix.as_deref().unwrap().contains("sadtalker models fetch b.pth"),
            "{bad:?}"
        );

        std::fs::remove_file(&files[1]).unwrap();
        let gone = models_check(&store, dir.path());
        assert_eq!(gone.status, Status::Fail, "{gone:?}");
        assert!(gone.detail.contains("missing: b.pth"), "{gone:?}");
        assert!(
            gone.fix
                .as_deref()
                .unwrap()
                .contains("sadtalker models fetch --for 256"),
            "{gone:?}"
        );
    }

    #[test]
    fn an_unwritable_result_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        // A folder cannot be made under a file, whoever runs the test (root ignores permission bits).
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let c = writable("result folder", &file.join("out"), "choose another --result-dir");
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("cannot be created"), "{c:?}");
        assert_eq!(c.fix.as_deref(), Some("choose another --result-dir"));
    }

    #[test]
    fn codecs_and_cpu_checks_run() {
        assert_eq!(codec_check().status, Status::Ok, "{:?}", codec_check());
        let cpu = cpu_check();
        assert!(
            cpu.detail.contains("thread") && cpu.detail.contains("kernels"),
            "{}",
            cpu.detail
        );
    }

    #[test]
    fn self_test_passes_every_stage() {
        let t = run_self_test();
        assert!(t.passed, "{t:?}");
        assert_eq!(t.frames, 5);
        for s in &t.stages {
            let expected = if s.stage == Stage::Enhance {
                StageStatus::Skipped
            } else {
                StageStatus::Pass
            };
            assert_eq!(s.status, expected, "{s:?}");
        }
    }
}
