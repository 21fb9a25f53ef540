//! Device discovery and opening: one [`Device`] per process and GPU, shared by every tensor.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{GpuError, Result};

/// Which device `--device` asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// The best device found: discrete, then integrated, then virtual, then software.
    Auto,
    /// An NVIDIA GPU through CUDA (not in this build yet; see [`GpuError::NotInThisBuild`]).
    Cuda,
    /// Any Vulkan device: NVIDIA, AMD, Intel, or Mesa's lavapipe on the CPU.
    Vulkan,
    /// An Apple GPU through Metal.
    Metal,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Auto => "auto",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Vulkan => "vulkan",
            DeviceKind::Metal => "metal",
        })
    }
}

impl FromStr for DeviceKind {
    type Err = String;

    /// Parses `auto`, `cuda`, `vulkan` or `metal` (`cpu` is not a GPU device: the caller
    /// runs `sadtalker_ops` for it).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DeviceKind::Auto),
            "cuda" => Ok(DeviceKind::Cuda),
            "vulkan" => Ok(DeviceKind::Vulkan),
            "metal" => Ok(DeviceKind::Metal),
            _ => Err(format!(
                "unknown GPU device {s:?}: expected auto, cuda, vulkan or metal"
            )),
        }
    }
}

/// What kind of hardware an adapter is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceType {
    /// A GPU with its own memory.
    Discrete,
    /// A GPU sharing the CPU's memory.
    Integrated,
    /// A virtualised GPU (VM passthrough).
    Virtual,
    /// A driver that runs shaders on the CPU (Mesa lavapipe/llvmpipe, SwiftShader, WARP).
    Software,
    /// Anything the driver does not classify.
    Other,
}

impl DeviceType {
    fn from_wgpu(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => DeviceType::Discrete,
            wgpu::DeviceType::IntegratedGpu => DeviceType::Integrated,
            wgpu::DeviceType::VirtualGpu => DeviceType::Virtual,
            wgpu::DeviceType::Cpu => DeviceType::Software,
            wgpu::DeviceType::Other => DeviceType::Other,
        }
    }

    /// A short name for JSON: `discrete`, `integrated`, `virtual`, `software`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Discrete => "discrete",
            DeviceType::Integrated => "integrated",
            DeviceType::Virtual => "virtual",
            DeviceType::Software => "software",
            DeviceType::Other => "other",
        }
    }

    /// Preference of [`DeviceKind::Auto`]: lower is better.
    fn rank(self) -> u8 {
        match self {
            DeviceType::Discrete => 0,
            DeviceType::Integrated => 1,
            DeviceType::Virtual => 2,
            DeviceType::Other => 3,
            DeviceType::Software => 4,
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceType::Discrete => "discrete GPU",
            DeviceType::Integrated => "integrated GPU",
            DeviceType::Virtual => "virtual GPU",
            DeviceType::Software => "software (lavapipe/llvmpipe or another CPU driver)",
            DeviceType::Other => "other",
        })
    }
}

/// One adapter as [`list_devices`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The adapter's name (`NVIDIA GeForce RTX 4090`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// The graphics API: `vulkan`, `metal` or `dx12`.
    pub backend: &'static str,
    /// What kind of hardware it is.
    pub device_type: DeviceType,
    /// PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel; 0x10005 Mesa for lavapipe).
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// The driver's name (`NVIDIA`, `radv`, `llvmpipe`), empty where the API gives none.
    pub driver: String,
    /// The driver's version string (`Mesa 22.3.6 (LLVM 15.0.6)`), empty where none.
    pub driver_info: String,
    /// Device-local memory in bytes (the sum of Vulkan's device-local heaps: for lavapipe and
    /// integrated GPUs, system memory); `None` where the API does not say (Metal, DX12 for now).
    pub memory_bytes: Option<u64>,
    /// The largest buffer the device allows.
    pub max_buffer_bytes: u64,
    /// The largest storage buffer one kernel may bind: bounds any one tensor.
    pub max_binding_bytes: u64,
}

impl DeviceInfo {
    fn from_adapter(a: &wgpu::Adapter) -> Self {
        let i = a.get_info();
        let l = a.limits();
        DeviceInfo {
            name: i.name,
            backend: backend_name(i.backend),
            device_type: DeviceType::from_wgpu(i.device_type),
            vendor_id: i.vendor,
            device_id: i.device,
            driver: i.driver,
            driver_info: i.driver_info,
            memory_bytes: device_memory(a),
            max_buffer_bytes: l.max_buffer_size,
            max_binding_bytes: l.max_storage_buffer_binding_size,
        }
    }
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}, {}]", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() || !self.driver_info.is_empty() {
            write!(f, ", driver {} {}", self.driver, self.driver_info)?;
        }
        if let Some(m) = self.memory_bytes {
            write!(f, ", {} MiB", m >> 20)?;
        }
        write!(f, ", max binding {} MiB", self.max_binding_bytes >> 20)
    }
}

/// Device-local memory of a Vulkan adapter, read through wgpu's hal (wgpu itself has no query).
#[cfg(all(not(target_vendor = "apple"), not(target_arch = "wasm32")))]
fn device_memory(a: &wgpu::Adapter) -> Option<u64> {
    // SAFETY: the hal adapter is only read, and dropped before `a` is used again.
    let hal = unsafe { a.as_hal::<wgpu::hal::api::Vulkan>() }?;
    let instance = hal.shared_instance().raw_instance();
    // SAFETY: the physical device belongs to this instance, which `a` keeps alive.
    let props = unsafe { instance.get_physical_device_memory_properties(hal.raw_physical_device()) };
    let count = (props.memory_heap_count as usize).min(props.memory_heaps.len());
    // VK_MEMORY_HEAP_DEVICE_LOCAL_BIT = 1.
    let local = props.memory_heaps[..count].iter().filter(|h| h.flags.as_raw() & 1 != 0);
    Some(local.map(|h| h.size).sum())
}

#[cfg(not(all(not(target_vendor = "apple"), not(target_arch = "wasm32"))))]
fn device_memory(_: &wgpu::Adapter) -> Option<u64> {
    None
}

fn backend_name(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        wgpu::Backend::Noop => "noop",
    }
}

/// The APIs this crate's kernels run on (GL lacks what compute needs; it is not built).
fn compute_backends() -> wgpu::Backends {
    wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12
}

/// Keeps Mesa's Vulkan device-select layer from looking for a Wayland display on a machine that
/// has none. In Mesa 22 (Debian 12) the layer connects to Wayland whenever the application enables
/// the Wayland surface extension, as wgpu does, and libwayland then prints "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment." on every device probe of a headless server — words that
/// read like a failure of ours. The layer only moves the display's GPU first; [`list_devices`] sorts
/// the devices itself. Sets `NODEVICE_SELECT=1` (the layer's own off switch) unless a Wayland
/// display is there or the variable is already set.
///
/// # Safety
/// Changes the process environment: call it at the start of `main`, before any other thread runs.
pub unsafe fn quiet_headless_vulkan() {
    let headless = ["WAYLAND_DISPLAY", "WAYLAND_SOCKET", "NODEVICE_SELECT"]
        .iter()
        .all(|v| std::env::var_os(v).is_none());
    if headless {
        // SAFETY: the caller guarantees no other thread reads or writes the environment now.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    // wgpu turns on the Vulkan validation layer in debug builds; it is slow and prints a warning
    // where the layer is not installed. `WGPU_VALIDATION=1` still turns it on.
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

fn adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance(backends).enumerate_adapters(backends))
}

/// Every compute-capable adapter on this machine, best first (the order [`DeviceKind::Auto`]
/// chooses in). Empty when no driver is installed.
pub fn list_devices() -> Vec<DeviceInfo> {
    sorted_adapters().iter().map(DeviceInfo::from_adapter).collect()
}

fn sorted_adapters() -> Vec<wgpu::Adapter> {
    let mut v = adapters(compute_backends());
    v.sort_by_key(|a| DeviceType::from_wgpu(a.get_info().device_type).rank());
    v
}

#[cfg(target_os = "windows")]
const VULKAN_LOADER: &str = "vulkan-1.dll";
#[cfg(not(target_os = "windows"))]
const VULKAN_LOADER: &str = "libvulkan.so.1";

/// Whether the Vulkan loader can be loaded, so that "no device" can say which half is missing.
fn vulkan_loader(kind: DeviceKind) -> Result<()> {
    // SAFETY: the Khronos loader's initialisers only set up its own state; wgpu loads the very
    // same library right after this.
    match unsafe { libloading::Library::new(VULKAN_LOADER) } {
        Ok(_) => Ok(()),
        Err(e) => Err(GpuError::VulkanLoaderMissing {
            kind,
            library: VULKAN_LOADER,
            detail: e.to_string(),
        }),
    }
}

const VULKAN_REMEDY: &str = "Install the GPU's Vulkan driver (NVIDIA: the proprietary driver, which includes Vulkan; \
     AMD/Intel: `apt-get install mesa-vulkan-drivers`), or for a software device on the CPU `apt-get install \
     mesa-vulkan-drivers` (lavapipe). `vulkaninfo --summary` (package vulkan-tools) shows what the loader finds; \
     or use --device cpu";

/// An open GPU: the wgpu device and queue, the compiled kernels. Cheap to clone (shared).
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: DeviceInfo,
    pub(crate) max_binding: u64,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
    /// Errors wgpu reports outside an error scope (it would panic without a handler).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Bound where a kernel's optional input (a bias) is absent: a binding cannot be empty.
    pub(crate) dummy: wgpu::Buffer,
    /// Tensors uploaded from and read back to the host, for [`Device::transfers`].
    pub(crate) uploads: AtomicU64,
    pub(crate) downloads: AtomicU64,
    /// Work recorded but not yet submitted (see [`Device::record`]).
    pending: Mutex<Pending>,
}

/// The command encoder ops record into, and how many ops it holds.
#[derive(Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    ops: usize,
}

// By hand: wgpu's encoder has no `Debug`.
impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("ops", &self.ops).finish()
    }
}

/// Ops recorded into one command buffer before it is submitted: a submission costs the driver
/// tens of microseconds, a network pass is hundreds of small ops, and submitting every few dozen
/// still lets the device start while the host records the rest.
const OPS_PER_SUBMIT: usize = 64;

/// How many tensors crossed between the host and a device (see [`Device::transfers`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Tensors uploaded (`GpuTensor::from_slice` / `from_tensor`).
    pub uploads: u64,
    /// Tensors read back (`GpuTensor::to_vec` / `to_tensor`).
    pub downloads: u64,
}

impl std::ops::Sub for Transfers {
    type Output = Transfers;
    fn sub(self, rhs: Transfers) -> Transfers {
        Transfers {
            uploads: self.uploads - rhs.uploads,
            downloads: self.downloads - rhs.downloads,
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device").field("info", &self.inner.info).finish()
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Device {}

impl Device {
    /// Opens the device `kind` names; the error says what is missing and how to get it.
    pub fn open(kind: DeviceKind) -> Result<Device> {
        let apple = cfg!(target_vendor = "apple");
        let backends = match kind {
            DeviceKind::Cuda => {
                return Err(GpuError::NotInThisBuild {
                    kind,
                    what: "the CUDA runtime is not in this build yet (it will load the driver's libcuda at run \
                           time, no CUDA toolkit needed). On an NVIDIA GPU, --device vulkan runs the same kernels \
                           through the NVIDIA driver's Vulkan support; or use --device cpu",
                });
            }
            DeviceKind::Metal if !apple => {
                return Err(GpuError::NotOnPlatform {
                    kind,
                    what: "Metal",
                    os: std::env::consts::OS,
                    remedy: "Metal exists on macOS and iOS only; use --device vulkan (or auto) here",
                });
            }
            DeviceKind::Vulkan if apple => {
                return Err(GpuError::NotOnPlatform {
                    kind,
                    what: "Vulkan",
                    os: std::env::consts::OS,
                    remedy: "this build uses Metal on Apple platforms; use --device metal (or auto)",
                });
            }
            DeviceKind::Metal => wgpu::Backends::METAL,
            DeviceKind::Vulkan => wgpu::Backends::VULKAN,
            DeviceKind::Auto => compute_backends(),
        };
        let mut found = adapters(backends);
        if found.is_empty() {
            if !apple {
                vulkan_loader(kind)?;
            }
            let (backend, remedy) = if apple {
                ("Metal", "This Mac reports no Metal device; or use --device cpu")
            } else {
                ("Vulkan", VULKAN_REMEDY)
            };
            return Err(GpuError::NoDevice { kind, backend, remedy });
        }
        found.sort_by_key(|a| DeviceType::from_wgpu(a.get_info().device_type).rank());
        Device::from_adapter(&found[0])
    }

    /// Opens the `index`-th device of [`list_devices`] (`doctor` self-tests each one); `None`
    /// when there is no such device any more.
    pub fn open_listed(index: usize) -> Option<Result<Device>> {
        sorted_adapters().get(index).map(Device::from_adapter)
    }

    fn from_adapter(adapter: &wgpu::Adapter) -> Result<Device> {
        let info = DeviceInfo::from_adapter(adapter);
        let desc = wgpu::DeviceDescriptor {
            label: Some("sadtalker"),
            required_features: wgpu::Features::empty(),
            // The adapter's own limits: the defaults cap a storage binding at 128 MiB, less than
            // a 512² GFPGAN activation.
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|source| GpuError::RequestDevice {
                adapter: info.name.clone(),
                source,
            })?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(PoisonError::into_inner).push(e.to_string());
        }));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let max_binding = device.limits().max_storage_buffer_binding_size;
        Ok(Device {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                max_binding,
                pipelines: Mutex::new(HashMap::new()),
                uncaptured,
                dummy,
                uploads: AtomicU64::new(0),
                downloads: AtomicU64::new(0),
                pending: Mutex::default(),
            }),
        })
    }

    /// What this device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.inner.info
    }

    /// The tensors moved between the host and this device since it was opened: what tells a
    /// network that keeps its activations on the device from one that round-trips per layer.
    pub fn transfers(&self) -> Transfers {
        Transfers {
            uploads: self.inner.uploads.load(Ordering::Relaxed),
            downloads: self.inner.downloads.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` (which records and submits device work) and returns the first validation or
    /// out-of-memory error it caused, or one reported earlier outside any scope.
    pub(crate) fn checked<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let d = &self.inner.device;
        let oom = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = d.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let e1 = pollster::block_on(val.pop());
        let e2 = pollster::block_on(oom.pop());
        if let Some(e) = e1.or(e2) {
            return Err(self.device_err(e.to_string()));
        }
        self.take_uncaptured()?;
        Ok(out)
    }

    fn take_uncaptured(&self) -> Result<()> {
        let mut errs = self.inner.uncaptured.lock().unwrap_or_else(PoisonError::into_inner);
        if errs.is_empty() {
            return Ok(());
        }
        let msg = errs.join("; ");
        errs.clear();
        Err(self.device_err(msg))
    }

    pub(crate) fn device_err(&self, msg: String) -> GpuError {
        GpuError::Device {
            adapter: self.inner.info.name.clone(),
            msg,
        }
    }

    /// The compute pipeline of WGSL `source` (entry point `main`), compiled on first use.
    pub(crate) fn pipeline(&self, name: &'static str, source: &'static str) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.inner.pipelines.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let d = &self.inner.device;
        let p = self.checked(|| {
            let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        cache.insert(name, p.clone());
        Ok(p)
    }

    /// Records one op's commands (`f` gets the shared encoder), submitting the encoder once it
    /// holds [`OPS_PER_SUBMIT`] ops; [`flush`](Self::flush) submits the rest. The queue runs
    /// command buffers in order, so ops recorded later see the results of earlier ones. A
    /// validation error surfaces in the call that records or submits it.
    pub(crate) fn record(&self, op: &'static str, f: impl FnOnce(&mut wgpu::CommandEncoder)) -> Result<()> {
        self.checked(|| {
            let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let enc = pending.encoder.get_or_insert_with(|| {
                self.inner
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(op) })
            });
            f(enc);
            pending.ops += 1;
            if pending.ops >= OPS_PER_SUBMIT {
                self.submit(&mut pending);
            }
        })
    }

    /// Submits the recorded ops.
    pub(crate) fn flush(&self) -> Result<()> {
        self.checked(|| {
            let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            self.submit(&mut pending);
        })
    }

    fn submit(&self, pending: &mut Pending) {
        if let Some(enc) = pending.encoder.take() {
            self.inner.queue.submit([enc.finish()]);
        }
        pending.ops = 0;
    }

    /// Waits until all recorded work has finished; reports errors it raised.
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| self.device_err(e.to_string()))?;
        self.take_uncaptured()
    }

    /// Runs a tiny leaky-ReLU and a 3×3 convolution and compares them with the host's result;
    /// `doctor` calls it to tell a working driver from one that miscompiles.
    pub fn self_test(&self) -> Result<()> {
        let fail = |msg: String| GpuError::SelfTest {
            adapter: self.inner.info.name.clone(),
            msg,
        };
        let xs: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let x = crate::GpuTensor::from_slice(self, &xs, &[1, 2, 4, 4])?;
        let got = crate::leaky_relu(&x, 0.5)?.to_vec()?;
        for (i, (&g, &v)) in got.iter().zip(&xs).enumerate() {
            let want = if v > 0.0 { v } else { v * 0.5 };
            if g != want {
                return Err(fail(format!("leaky_relu element {i}: got {g}, expected {want}")));
            }
        }
        // A 3×3 all-ones kernel over both channels with padding 1: each output is the sum of
        // the in-bounds neighbourhood, exact in f32 for these small integers.
        let w = crate::GpuTensor::from_slice(self, &[1.0; 18], &[1, 2, 3, 3])?;
        let y = crate::conv2d(&x, &w, None, sadtalker_ops::ConvParams::padding(1))?.to_vec()?;
        for oy in 0..4i32 {
            for ox in 0..4i32 {
                let mut want = 0.0;
                for c in 0..2 {
                    for dy in -1..=1 {
                        for dx in -1..=1 {
                            let (iy, ix) = (oy + dy, ox + dx);
                            if (0..4).contains(&iy) && (0..4).contains(&ix) {
                                want += xs[(c * 16 + iy * 4 + ix) as usize];
                            }
                        }
                    }
                }
                let g = y[(oy * 4 + ox) as usize];
                if g != want {
                    return Err(fail(format!("conv2d output ({oy}, {ox}): got {g}, expected {want}")));
                }
            }
        }
        Ok(())
    }
}
