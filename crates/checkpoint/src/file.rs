//! Opening a checkpoint file and reading its tensors, whatever the container.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};

use crate::error::{CheckpointError, Result};

/// The container a checkpoint was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face safetensors.
    Safetensors,
    /// `torch.save` ZIP archive (PyTorch 1.6 and later).
    TorchZip,
    /// `torch.save` legacy pickle stream (PyTorch 0.1.10 to 1.5).
    TorchLegacy,
    /// `torch.save` TAR archive (before PyTorch 0.1.10).
    TorchTar,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "PyTorch zip",
            Format::TorchLegacy => "PyTorch legacy pickle",
            Format::TorchTar => "PyTorch tar",
        })
    }
}

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 16-bit brain float.
    BF16,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer (e.g. BatchNorm's `num_batches_tracked`).
    I64,
    /// 32-bit signed integer.
    I32,
    /// Any other type, by name.
    Other(&'static str),
}

impl ElementType {
    fn size(self) -> Option<usize> {
        match self {
            ElementType::F32 | ElementType::I32 => Some(4),
            ElementType::F16 | ElementType::BF16 => Some(2),
            ElementType::F64 | ElementType::I64 => Some(8),
            ElementType::Other(_) => None,
        }
    }

    fn from_safetensors(d: Dtype) -> Self {
        match d {
            Dtype::F32 => Self::F32,
            Dtype::F16 => Self::F16,
            Dtype::BF16 => Self::BF16,
            Dtype::F64 => Self::F64,
            Dtype::I64 => Self::I64,
            Dtype::I32 => Self::I32,
            Dtype::BOOL => Self::Other("bool"),
            Dtype::U8 => Self::Other("u8"),
            Dtype::I8 => Self::Other("i8"),
            Dtype::I16 => Self::Other("i16"),
            Dtype::U16 => Self::Other("u16"),
            Dtype::U32 => Self::Other("u32"),
            Dtype::U64 => Self::Other("u64"),
            _ => Self::Other("an exotic type"),
        }
    }

    fn from_torch(d: pytorch_reader::DType) -> Self {
        use pytorch_reader::DType as T;
        match d {
            T::F32 => Self::F32,
            T::F16 => Self::F16,
            T::BF16 => Self::BF16,
            T::F64 => Self::F64,
            T::I64 => Self::I64,
            T::I32 => Self::I32,
            T::I16 => Self::Other("i16"),
            T::I8 => Self::Other("i8"),
            T::U64 => Self::Other("u64"),
            T::U32 => Self::Other("u32"),
            T::U16 => Self::Other("u16"),
            T::U8 => Self::Other("u8"),
            T::Bool => Self::Other("bool"),
        }
    }
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElementType::Other(s) => f.write_str(s),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

/// Name, element type and shape of one stored tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Full dotted name.
    pub name: String,
    /// Element type as stored.
    pub dtype: ElementType,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
}

enum Inner {
    Safetensors {
        mmap: Mmap,
        data_start: usize,
        meta: Metadata,
    },
    Torch {
        tensors: HashMap<String, pytorch_reader::Tensor>,
    },
}

/// An open checkpoint file. Opening parses the index only; tensor bytes are read when a
/// tensor is asked for.
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    inner: Inner,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// How a file starts, which is how its format is told.
fn sniff(path: &Path) -> Result<(Option<Format>, Vec<u8>, u64)> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(512);
    f.by_ref().take(512).read_to_end(&mut head).map_err(io)?;
    let fmt = if head.starts_with(b"PK\x03\x04") {
        Some(Format::TorchZip)
    } else if head.len() >= 9 && head[8] == b'{' {
        Some(Format::Safetensors)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::TorchTar)
    } else if head.first() == Some(&0x80) {
        Some(Format::TorchLegacy)
    } else {
        None
    };
    Ok((fmt, head, len))
}

/// Says what a file that is no checkpoint looks like, with the usual cause.
fn describe_foreign(head: &[u8], len: u64) -> String {
    let text = String::from_utf8_lossy(&head[..head.len().min(64)]).to_lowercase();
    if len == 0 {
        "the file is empty (an interrupted download?); download it again".into()
    } else if text.starts_with("version https://git-lfs") {
        "it is a Git LFS pointer, not the file itself; fetch the real file (`git lfs pull`, or `sadtalker models fetch`)".into()
    } else if text.trim_start().starts_with('<') {
        "it is an HTML/XML page (a download that returned an error page?); download it again".into()
    } else if head.starts_with(b"\x1f\x8b") {
        "it is a gzip archive; unpack it first".into()
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "unknown format (starts with {}); expected safetensors or a PyTorch .pth file",
            hex.join(" ")
        )
    }
}

impl Checkpoint {
    /// Opens a checkpoint, telling its format from its first bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (format, head, len) = sniff(path)?;
        let Some(format) = format else {
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_owned(),
                what: describe_foreign(&head, len),
            });
        };
        let inner = match format {
            Format::Safetensors => open_safetensors(path)?,
            _ => {
                let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| torch_error(path, e))?;
                Inner::Torch {
                    tensors: reader.into_tensors(),
                }
            }
        };
        Ok(Self {
            path: path.to_owned(),
            format,
            inner,
        })
    }

    /// The file this checkpoint was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let mut v: Vec<TensorInfo> = match &self.inner {
            Inner::Safetensors { meta, .. } => meta
                .tensors()
                .into_iter()
                .map(|(name, t)| TensorInfo {
                    name,
                    dtype: ElementType::from_safetensors(t.dtype),
                    shape: t.shape.clone(),
                })
                .collect(),
            Inner::Torch { tensors } => tensors.values().map(torch_info).collect(),
        };
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One tensor's description, if the file has it.
    pub fn info(&self, name: &str) -> Option<TensorInfo> {
        match &self.inner {
            Inner::Safetensors { meta, .. } => meta.info(name).map(|t| TensorInfo {
                name: name.to_owned(),
                dtype: ElementType::from_safetensors(t.dtype),
                shape: t.shape.clone(),
            }),
            Inner::Torch { tensors } => tensors.get(name).map(torch_info),
        }
    }

    /// The safetensors `__metadata__` map (empty for other formats).
    pub fn metadata(&self) -> HashMap<String, String> {
        match &self.inner {
            Inner::Safetensors { meta, .. } => meta.metadata().clone().unwrap_or_default(),
            Inner::Torch { .. } => HashMap::new(),
        }
    }

    /// Reads a floating-point tensor as `f32` values in row-major order, with its shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let Some(info) = self.info(name) else {
            return Err(self.missing(name));
        };
        let bytes = self.read_bytes(name)?;
        let expected = info.dtype.size().map(|s| s * info.shape.iter().product::<usize>());
        if expected.is_some_and(|n| n != bytes.len()) {
            return Err(self.corrupt(format!(
                "tensor `{name}` holds {} bytes, its header promises {expected:?}",
                bytes.len()
            )));
        }
        let values = decode_f32(&bytes, info.dtype).ok_or_else(|| CheckpointError::ElementType {
            path: self.path.display().to_string(),
            name: name.to_owned(),
            dtype: info.dtype.to_string(),
        })?;
        Ok((values, info.shape))
    }

    fn read_bytes(&self, name: &str) -> Result<std::borrow::Cow<'_, [u8]>> {
        match &self.inner {
            Inner::Safetensors { mmap, data_start, meta } => {
                let info = meta.info(name).ok_or_else(|| self.missing(name))?;
                let (a, b) = info.data_offsets;
                mmap.get(data_start + a..data_start + b)
                    .map(std::borrow::Cow::Borrowed)
                    .ok_or_else(|| self.corrupt(format!("tensor `{name}` lies past the end of the file")))
            }
            Inner::Torch { tensors } => {
                let t = tensors.get(name).ok_or_else(|| self.missing(name))?;
                t.read().map(std::borrow::Cow::Owned).map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => self.corrupt(e.to_string()),
                    _ => CheckpointError::Io {
                        path: self.path.clone(),
                        source: e,
                    },
                })
            }
        }
    }

    pub(crate) fn missing(&self, name: &str) -> CheckpointError {
        let names: Vec<String> = self.tensors().into_iter().map(|t| t.name).collect();
        CheckpointError::MissingTensor {
            path: self.path.display().to_string(),
            name: name.to_owned(),
            hint: missing_hint(name, &names),
        }
    }

    fn corrupt(&self, detail: String) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }
}

/// Suggests what the file has instead of `name`: its top-level prefixes, or names that
/// share `name`'s last component.
pub(crate) fn missing_hint(name: &str, names: &[String]) -> String {
    if names.is_empty() {
        return "; the file holds no tensors at all".into();
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let parent = name.rsplit_once('.').map_or("", |p| p.0);
    let close: Vec<&str> = names
        .iter()
        .filter(|n| n.ends_with(&format!(".{last}")) && n.contains(parent.rsplit('.').next().unwrap_or("")))
        .map(String::as_str)
        .take(3)
        .collect();
    if !close.is_empty() {
        return format!("; similar names in the file: {}", close.join(", "));
    }
    let mut prefixes: Vec<&str> = names.iter().map(|n| n.split('.').next().unwrap_or(n)).collect();
    prefixes.dedup();
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes.truncate(8);
    format!(
        "; the file's tensors start with: {} (is it the right file, and the right prefix?)",
        prefixes.join(", ")
    )
}

fn open_safetensors(path: &Path) -> Result<Inner> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; a file changed underneath while we read it yields
    // wrong values (as with any reader), not memory unsafety in this process.
    let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
    let (n, meta) = safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
        let detail = match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                format!(
                    "the file has {} bytes, fewer or more than its header describes",
                    mmap.len()
                )
            }
            other => format!("invalid safetensors header ({other})"),
        };
        CheckpointError::Corrupt {
            path: path.to_owned(),
            detail,
        }
    })?;
    Ok(Inner::Safetensors {
        mmap,
        data_start: 8 + n,
        meta,
    })
}

fn torch_error(path: &Path, e: pytorch_reader::PytorchError) -> CheckpointError {
    use pytorch_reader::PytorchError as E;
    match e {
        E::Io(source)
            if source.kind() != std::io::ErrorKind::UnexpectedEof
                && source.kind() != std::io::ErrorKind::InvalidData =>
        {
            CheckpointError::Io {
                path: path.to_owned(),
                source,
            }
        }
        other => CheckpointError::Corrupt {
            path: path.to_owned(),
            detail: other.to_string(),
        },
    }
}

fn torch_info(t: &pytorch_reader::Tensor) -> TensorInfo {
    TensorInfo {
        name: t.name.clone(),
        dtype: ElementType::from_torch(t.dtype()),
        shape: t.shape().to_vec(),
    }
}

/// Little-endian bytes of a float type to `f32` (rounding `f64`); `None` for other types.
fn decode_f32(bytes: &[u8], dtype: ElementType) -> Option<Vec<f32>> {
    Some(match dtype {
        ElementType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        ElementType::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        ElementType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        ElementType::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        _ => return None,
    })
}
