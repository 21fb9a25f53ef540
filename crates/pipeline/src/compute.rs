//! Where and how precisely a job's networks run: `--device` and `--precision`, resolved once per
//! job into a [`Compute`] that the frame loop, `generate`, `render`, `batch` and `serve` share.

use sadtalker_gpu::{DeviceKind, DeviceType, context};
use sadtalker_ops::Precision;

use crate::error::{Cause, PipelineError, Stage};
use crate::options::DeviceChoice;

/// The precision a job asking for `asked` renders at, and the warning to give when that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrecisionUsed {
    /// What the convolutions run at.
    pub ran: Precision,
    /// Set when `ran` is not what was asked for, saying why.
    pub warning: Option<String>,
}

/// [`PrecisionUsed`] for `asked` on this machine's CPU.
pub fn precision_used(asked: Precision) -> PrecisionUsed {
    let ran = sadtalker_ops::precision::effective(asked);
    let warning = (ran != asked).then(|| {
        let why = sadtalker_ops::precision::bf16_unavailable().unwrap_or("it is not available here");
        format!("--precision {asked}: {why}; the frames are rendered in {ran}")
    });
    PrecisionUsed { ran, warning }
}

/// The device a job's convolutions run on.
#[derive(Clone, Debug)]
pub struct DeviceUsed {
    /// `cpu`, or the GPU's API: `vulkan`, `metal`, `dx12`.
    pub kind: &'static str,
    /// The CPU's kernel level (`cpu (avx512)`) or the GPU adapter's name.
    pub name: String,
    /// The open GPU; `None` on the CPU.
    pub gpu: Option<sadtalker_gpu::Device>,
    /// Why `--device auto` did not take the GPU it found (it is broken), for the job's warnings.
    pub warning: Option<String>,
}

impl DeviceUsed {
    /// The CPU.
    pub fn cpu() -> DeviceUsed {
        DeviceUsed {
            kind: "cpu",
            name: format!("cpu ({})", sadtalker_ops::isa::active().name()),
            gpu: None,
            warning: None,
        }
    }

    fn gpu(dev: sadtalker_gpu::Device) -> DeviceUsed {
        DeviceUsed {
            kind: dev.info().backend,
            name: dev.info().name.clone(),
            gpu: Some(dev),
            warning: None,
        }
    }
}

/// Whether `--device auto` may take `d`: a discrete GPU, or an Apple GPU through Metal. Never a
/// software device (lavapipe runs shaders on the same CPU, far slower than its kernels), and not,
/// until measured, other integrated GPUs: with the other ops still on the CPU, a weak iGPU could be
/// slower than the CPU path. They run when named (`--device vulkan`).
pub fn auto_eligible(d: &sadtalker_gpu::DeviceInfo) -> bool {
    d.device_type == DeviceType::Discrete || d.backend == "metal" && d.device_type != DeviceType::Software
}

/// Opens the device `choice` names (once per process; later jobs share it). A named GPU that is
/// missing or broken is an error saying what to install; `auto` takes the best device when it is
/// [`auto_eligible`], opens and passes the self-test, and otherwise the CPU.
pub fn device_used(choice: DeviceChoice) -> Result<DeviceUsed, PipelineError> {
    let named = |kind| {
        context::shared(kind)
            .map(DeviceUsed::gpu)
            .map_err(|e| PipelineError::new(Stage::Inputs, Cause::Device(e)))
    };
    match choice {
        DeviceChoice::Cpu => Ok(DeviceUsed::cpu()),
        DeviceChoice::Cuda => named(DeviceKind::Cuda),
        DeviceChoice::Vulkan => named(DeviceKind::Vulkan),
        DeviceChoice::Metal => named(DeviceKind::Metal),
        DeviceChoice::Auto => {
            let Some(best) = auto_candidate() else {
                return Ok(DeviceUsed::cpu());
            };
            match context::shared(DeviceKind::Auto) {
                Ok(dev) => Ok(DeviceUsed::gpu(dev)),
                Err(e) => Ok(DeviceUsed {
                    warning: Some(format!(
                        "--device auto: {} cannot be used ({e}); running on the CPU",
                        best
                    )),
                    ..DeviceUsed::cpu()
                }),
            }
        }
    }
}

/// The name of the GPU `--device auto` would take, if any. Enumerating adapters loads drivers
/// (tens of ms, more with several ICDs), so it is done once per process, not once per job.
fn auto_candidate() -> Option<&'static str> {
    static BEST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BEST.get_or_init(|| {
        sadtalker_gpu::list_devices()
            .into_iter()
            .next()
            .filter(auto_eligible)
            .map(|d| d.name)
    })
    .as_deref()
}

/// A job's device and precision.
#[derive(Clone, Debug)]
pub struct Compute {
    /// Where the convolutions run.
    pub device: DeviceUsed,
    /// Their precision.
    pub precision: PrecisionUsed,
}

impl Compute {
    /// Resolves `--device` and `--precision`. The GPU kernels are fp32: bf16 asked for on a GPU
    /// runs fp32 there, with a warning.
    pub fn resolve(device: DeviceChoice, precision: Precision) -> Result<Compute, PipelineError> {
        let device = device_used(device)?;
        let precision = if device.gpu.is_some() && precision != Precision::Fp32 {
            PrecisionUsed {
                ran: Precision::Fp32,
                warning: Some(format!(
                    "--precision {precision}: the GPU kernels run fp32 only so far; the frames are rendered in fp32"
                )),
            }
        } else {
            precision_used(precision)
        };
        Ok(Compute { device, precision })
    }

    /// The CPU in fp32 (what the reference's `--cpu` runs).
    pub fn cpu() -> Compute {
        Compute {
            device: DeviceUsed::cpu(),
            precision: precision_used(Precision::Fp32),
        }
    }

    /// The warnings to report: a device or precision that differs from what was asked for.
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.device.warning.iter().chain(&self.precision.warning)
    }

    /// Runs `f` (network calls) on this device at this precision.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        context::with(self.device.gpu.as_ref(), || {
            sadtalker_ops::precision::with(self.precision.ran, f)
        })
    }

    /// Runs `f` on this device in fp32 (source preparation, made once per portrait).
    pub fn run_fp32<R>(&self, f: impl FnOnce() -> R) -> R {
        context::with(self.device.gpu.as_ref(), || {
            sadtalker_ops::precision::with(Precision::Fp32, f)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]
    use super::*;

    #[test]
    fn the_cpu_is_named_with_its_kernel_level() {
        let d = device_used(DeviceChoice::Cpu).unwrap();
        assert_eq!(d.kind, "cpu");
        assert!(d.name.starts_with("cpu ("), "{}", d.name);
        assert!(d.gpu.is_none() && d.warning.is_none());
    }

    #[test]
    fn cuda_is_refused_with_a_remedy() {
        let e = device_used(DeviceChoice::Cuda).unwrap_err();
        assert_eq!(e.code(), crate::Problem::DeviceUnavailable);
        let msg = e.to_string();
        assert!(msg.contains("cuda") && msg.contains("--device"), "{msg}");
    }

    #[test]
    fn auto_takes_only_a_discrete_or_apple_gpu() {
        let d = device_used(DeviceChoice::Auto).unwrap();
        if auto_candidate().is_none() {
            assert_eq!(d.kind, "cpu", "{d:?}");
        }
        let info = |device_type, backend| sadtalker_gpu::DeviceInfo {
            name: "x".into(),
            backend,
            device_type,
            vendor_id: 0,
            device_id: 0,
            driver: String::new(),
            driver_info: String::new(),
            memory_bytes: None,
            max_buffer_bytes: 0,
            max_binding_bytes: 0,
        };
        assert!(auto_eligible(&info(DeviceType::Discrete, "vulkan")));
        assert!(auto_eligible(&info(DeviceType::Integrated, "metal")));
        assert!(!auto_eligible(&info(DeviceType::Integrated, "vulkan")));
        assert!(!auto_eligible(&info(DeviceType::Software, "vulkan")));
        assert!(!auto_eligible(&info(DeviceType::Software, "metal")));
    }

    #[test]
    fn device_names_parse_and_print_alike() {
        for c in [
            DeviceChoice::Auto,
            DeviceChoice::Cpu,
            DeviceChoice::Cuda,
            DeviceChoice::Vulkan,
            DeviceChoice::Metal,
        ] {
            assert_eq!(c.name().parse::<DeviceChoice>(), Ok(c));
        }
        assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("vulkan"));
    }
}
