//! MATLAB v5 `.mat` files: read and write, interchangeable with `scipy.io.loadmat` / `savemat`.
//!
//! SadTalker keeps every coefficient sequence in a `.mat` file written by `scipy.io.savemat`
//! (`coeff_3dmm`, `full_3dmm`), and users bring files from MATLAB too. This module reads the
//! level-5 format (either byte order, uncompressed or zlib-compressed `miCOMPRESSED` elements, the
//! type narrowing MATLAB applies when saving) and writes it exactly as scipy does (uncompressed,
//! little-endian, one `miMATRIX` element per variable), so a written file matches scipy's output
//! byte for byte after the 116-byte description text.
//!
//! Hand-written on purpose: of the crates that exist, `matfile` only reads (and pulls `nom` and
//! `libflate`), while `matrw` and `mat5` are young single-author 0.1 releases. The subset needed
//! here (real numeric, logical and char arrays; everything else carried through untouched) is
//! small, and the only dependency it needs is `miniz_oxide` for zlib, already in the tree.
//!
//! Arrays are held in MATLAB's column-major order; [`MatArray::from_rows_f32`] and
//! [`MatArray::to_rows_f32`] convert from/to the row-major layout numpy uses for 2-D data.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A failure reading or writing a `.mat` file.
#[derive(Debug, Error)]
pub enum MatError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not a MATLAB level-5 file at all.
    #[error("{source_name}: not a MATLAB .mat file ({detail})")]
    NotMat {
        /// Where the bytes came from.
        source_name: String,
        /// What was wrong with the header.
        detail: String,
    },
    /// A MATLAB v7.3 file (HDF5 container), which this reader does not support.
    #[error(
        "{source_name}: MATLAB v7.3 (HDF5) .mat files are not supported; re-save it with \
         `save(..., '-v7')` in MATLAB or `scipy.io.savemat` in Python"
    )]
    V73 {
        /// Where the bytes came from.
        source_name: String,
    },
    /// The file's structure is damaged or truncated.
    #[error("{source_name}: corrupt .mat file at byte {offset}: {detail}")]
    Corrupt {
        /// Where the bytes came from.
        source_name: String,
        /// Byte offset (in the file, or in the decompressed element) where parsing failed.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
    /// A value that cannot be represented in a `.mat` file (e.g. a dimension over 2³¹−1).
    #[error("cannot write variable `{name}`: {detail}")]
    Unwritable {
        /// The variable.
        name: String,
        /// Why.
        detail: String,
    },
}

/// MATLAB array classes (`mxCLASS`), as stored in the array flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatClass {
    /// Cell array.
    Cell,
    /// Structure.
    Struct,
    /// Object.
    Object,
    /// Character array.
    Char,
    /// Sparse matrix.
    Sparse,
    /// 64-bit float.
    Double,
    /// 32-bit float.
    Single,
    /// Signed 8-bit integer.
    Int8,
    /// Unsigned 8-bit integer.
    UInt8,
    /// Signed 16-bit integer.
    Int16,
    /// Unsigned 16-bit integer.
    UInt16,
    /// Signed 32-bit integer.
    Int32,
    /// Unsigned 32-bit integer.
    UInt32,
    /// Signed 64-bit integer.
    Int64,
    /// Unsigned 64-bit integer.
    UInt64,
    /// Function handle.
    Function,
    /// MATLAB "opaque" class (e.g. `string`, `table`).
    Opaque,
    /// A class number this reader does not know.
    Unknown(u8),
}

impl MatClass {
    fn from_code(code: u8) -> MatClass {
        use MatClass::*;
        match code {
            1 => Cell,
            2 => Struct,
            3 => Object,
            4 => Char,
            5 => Sparse,
            6 => Double,
            7 => Single,
            8 => Int8,
            9 => UInt8,
            10 => Int16,
            11 => UInt16,
            12 => Int32,
            13 => UInt32,
            14 => Int64,
            15 => UInt64,
            16 => Function,
            17 => Opaque,
            other => Unknown(other),
        }
    }

    fn code(self) -> u8 {
        use MatClass::*;
        match self {
            Cell => 1,
            Struct => 2,
            Object => 3,
            Char => 4,
            Sparse => 5,
            Double => 6,
            Single => 7,
            Int8 => 8,
            UInt8 => 9,
            Int16 => 10,
            UInt16 => 11,
            Int32 => 12,
            UInt32 => 13,
            Int64 => 14,
            UInt64 => 15,
            Function => 16,
            Opaque => 17,
            Unknown(c) => c,
        }
    }

    /// MATLAB's name for the class (`double`, `single`, `char`, ...).
    pub fn name(self) -> &'static str {
        use MatClass::*;
        match self {
            Cell => "cell",
            Struct => "struct",
            Object => "object",
            Char => "char",
            Sparse => "sparse",
            Double => "double",
            Single => "single",
            Int8 => "int8",
            UInt8 => "uint8",
            Int16 => "int16",
            UInt16 => "uint16",
            Int32 => "int32",
            UInt32 => "uint32",
            Int64 => "int64",
            UInt64 => "uint64",
            Function => "function_handle",
            Opaque => "opaque",
            Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for MatClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of a numeric or char array, in column-major order, typed by class.
#[derive(Clone, Debug, PartialEq)]
pub enum MatData {
    /// `double`.
    Double(Vec<f64>),
    /// `single`.
    Single(Vec<f32>),
    /// `int8`.
    Int8(Vec<i8>),
    /// `uint8` (also `logical`, see [`MatArray::logical`]).
    UInt8(Vec<u8>),
    /// `int16`.
    Int16(Vec<i16>),
    /// `uint16`.
    UInt16(Vec<u16>),
    /// `int32`.
    Int32(Vec<i32>),
    /// `uint32`.
    UInt32(Vec<u32>),
    /// `int64`.
    Int64(Vec<i64>),
    /// `uint64`.
    UInt64(Vec<u64>),
    /// `char`: UTF-16 code units, column-major like every other class.
    Char(Vec<u16>),
}

macro_rules! for_each_numeric {
    ($data:expr, $v:ident => $body:expr, $cv:pat => $char_body:expr) => {
        match $data {
            MatData::Double($v) => $body,
            MatData::Single($v) => $body,
            MatData::Int8($v) => $body,
            MatData::UInt8($v) => $body,
            MatData::Int16($v) => $body,
            MatData::UInt16($v) => $body,
            MatData::Int32($v) => $body,
            MatData::UInt32($v) => $body,
            MatData::Int64($v) => $body,
            MatData::UInt64($v) => $body,
            MatData::Char($cv) => $char_body,
        }
    };
}

impl MatData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        for_each_numeric!(self, v => v.len(), v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The MATLAB class these elements belong to.
    pub fn class(&self) -> MatClass {
        match self {
            MatData::Double(_) => MatClass::Double,
            MatData::Single(_) => MatClass::Single,
            MatData::Int8(_) => MatClass::Int8,
            MatData::UInt8(_) => MatClass::UInt8,
            MatData::Int16(_) => MatClass::Int16,
            MatData::UInt16(_) => MatClass::UInt16,
            MatData::Int32(_) => MatClass::Int32,
            MatData::UInt32(_) => MatClass::UInt32,
            MatData::Int64(_) => MatClass::Int64,
            MatData::UInt64(_) => MatClass::UInt64,
            MatData::Char(_) => MatClass::Char,
        }
    }

    /// The numeric elements as `f64` (column-major); `None` for char data.
    #[allow(clippy::unnecessary_cast, reason = "one macro arm per class, f64 included")]
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        for_each_numeric!(self, v => Some(v.iter().map(|&x| x as f64).collect()), _ => None)
    }

    /// The numeric elements as `f32` (column-major); `None` for char data.
    #[allow(clippy::unnecessary_cast, reason = "one macro arm per class, f32 included")]
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        for_each_numeric!(self, v => Some(v.iter().map(|&x| x as f32).collect()), _ => None)
    }
}

/// A real numeric, logical or char array.
#[derive(Clone, Debug, PartialEq)]
pub struct MatArray {
    /// Dimensions, MATLAB order (at least two).
    pub dims: Vec<usize>,
    /// Elements, column-major.
    pub data: MatData,
    /// MATLAB `logical` (stored as `uint8`).
    pub logical: bool,
}

impl MatArray {
    /// A 2-D `single` array from row-major data (`rows × cols`, numpy's C order).
    ///
    /// # Panics
    /// If `data.len() != rows * cols` (a programming error, not an input error).
    pub fn from_rows_f32(rows: usize, cols: usize, data: &[f32]) -> MatArray {
        MatArray {
            dims: vec![rows, cols],
            data: MatData::Single(row_to_col_major(rows, cols, data)),
            logical: false,
        }
    }

    /// A 2-D `double` array from row-major data (`rows × cols`).
    ///
    /// # Panics
    /// If `data.len() != rows * cols`.
    pub fn from_rows_f64(rows: usize, cols: usize, data: &[f64]) -> MatArray {
        MatArray {
            dims: vec![rows, cols],
            data: MatData::Double(row_to_col_major(rows, cols, data)),
            logical: false,
        }
    }

    /// A `1 × n` char array, as `savemat` writes a Python `str`.
    pub fn from_text(text: &str) -> MatArray {
        let units: Vec<u16> = text.encode_utf16().collect();
        MatArray {
            dims: vec![1, units.len()],
            data: MatData::Char(units),
            logical: false,
        }
    }

    /// The class (`logical` arrays report [`MatClass::UInt8`]; see [`MatArray::logical`]).
    pub fn class(&self) -> MatClass {
        self.data.class()
    }

    /// Shape as `loadmat` reports it (MATLAB's dims).
    pub fn shape(&self) -> &[usize] {
        &self.dims
    }

    /// A 2-D numeric array as `(rows, cols, row-major f32 data)`; `None` for char data or when
    /// the array has more than two non-singleton trailing dimensions.
    pub fn to_rows_f32(&self) -> Option<(usize, usize, Vec<f32>)> {
        let (rows, cols) = self.dims2()?;
        let col_major = self.data.to_f32()?;
        Some((rows, cols, col_to_row_major(rows, cols, &col_major)))
    }

    /// Like [`MatArray::to_rows_f32`] in `f64`.
    pub fn to_rows_f64(&self) -> Option<(usize, usize, Vec<f64>)> {
        let (rows, cols) = self.dims2()?;
        let col_major = self.data.to_f64()?;
        Some((rows, cols, col_to_row_major(rows, cols, &col_major)))
    }

    /// The text of a char array (rows concatenated), if this is one.
    pub fn as_string(&self) -> Option<String> {
        match &self.data {
            MatData::Char(units) => {
                let (rows, cols) = self.dims2()?;
                let row_major = col_to_row_major(rows, cols, units);
                Some(String::from_utf16_lossy(&row_major))
            }
            _ => None,
        }
    }

    fn dims2(&self) -> Option<(usize, usize)> {
        match self.dims.as_slice() {
            [] => Some((0, 0)),
            [n] => Some((1, *n)),
            [r, c, rest @ ..] if rest.iter().all(|&d| d == 1) => Some((*r, *c)),
            _ => None,
        }
    }
}

fn row_to_col_major<T: Copy>(rows: usize, cols: usize, data: &[T]) -> Vec<T> {
    assert_eq!(data.len(), rows * cols, "row-major data does not match {rows}×{cols}");
    let mut out = Vec::with_capacity(data.len());
    for c in 0..cols {
        for r in 0..rows {
            out.push(data[r * cols + c]);
        }
    }
    out
}

fn col_to_row_major<T: Copy>(rows: usize, cols: usize, data: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    for r in 0..rows {
        for c in 0..cols {
            out.push(data[c * rows + r]);
        }
    }
    out
}

/// A variable's value.
#[derive(Clone, Debug, PartialEq)]
pub enum MatValue {
    /// A real numeric, logical or char array.
    Array(MatArray),
    /// Any other class (cell, struct, sparse, complex, object, ...): kept as the raw,
    /// uncompressed `miMATRIX` element so that rewriting the file preserves it unchanged.
    Other {
        /// The class from the array flags.
        class: MatClass,
        /// Whether the array is complex.
        complex: bool,
        /// Dimensions, when they could be read.
        dims: Vec<usize>,
        /// The whole little-endian `miMATRIX` element (tag included, padded to 8 bytes), or
        /// `None` when it came from a big-endian file and so cannot be re-emitted verbatim.
        element: Option<Vec<u8>>,
    },
}

/// One named variable of a `.mat` file.
#[derive(Clone, Debug, PartialEq)]
pub struct MatVariable {
    /// The variable name.
    pub name: String,
    /// Its value.
    pub value: MatValue,
    /// MATLAB's "global" flag.
    pub global: bool,
}

/// The variables of a MATLAB level-5 `.mat` file, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatFile {
    /// The descriptive text of the header (e.g. `MATLAB 5.0 MAT-file Platform: posix, ...`).
    pub header_text: String,
    /// The variables.
    pub variables: Vec<MatVariable>,
}

/// The header text this crate writes. scipy writes `... Created on: <date>`; the text is free-form
/// (readers only check the version and byte-order fields), and a fixed text keeps our output
/// byte-for-byte reproducible.
pub const WRITER_HEADER_TEXT: &str = "MATLAB 5.0 MAT-file Platform: posix, Created by: sadtalker (Rust)";

impl MatFile {
    /// An empty file.
    pub fn new() -> MatFile {
        MatFile::default()
    }

    /// Reads a `.mat` file (at most [`MAX_FILE_BYTES`]).
    pub fn read(path: impl AsRef<Path>) -> Result<MatFile, MatError> {
        let path = path.as_ref();
        let io = |source| MatError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Checked before reading: the whole file is held in memory while it is parsed.
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(MatError::NotMat {
                source_name: path.display().to_string(),
                detail: format!(
                    "{len} bytes, over the {} MiB this reader accepts; coefficient files are a few MB",
                    MAX_FILE_BYTES >> 20
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        MatFile::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a `.mat` file held in memory; `source_name` names it in errors.
    pub fn from_bytes(bytes: &[u8], source_name: &str) -> Result<MatFile, MatError> {
        Parser::new(source_name).parse_file(bytes)
    }

    /// The variable named `name`.
    pub fn get(&self, name: &str) -> Option<&MatVariable> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The array named `name`, if it exists and is a plain array.
    pub fn array(&self, name: &str) -> Option<&MatArray> {
        match &self.get(name)?.value {
            MatValue::Array(a) => Some(a),
            MatValue::Other { .. } => None,
        }
    }

    /// Sets `name` to `array`, replacing a variable of that name in place or appending.
    pub fn set(&mut self, name: &str, array: MatArray) {
        let value = MatValue::Array(array);
        match self.variables.iter_mut().find(|v| v.name == name) {
            Some(var) => var.value = value,
            None => self.variables.push(MatVariable {
                name: name.to_string(),
                value,
                global: false,
            }),
        }
    }

    /// Removes the variable `name`, returning it.
    pub fn remove(&mut self, name: &str) -> Option<MatVariable> {
        let idx = self.variables.iter().position(|v| v.name == name)?;
        Some(self.variables.remove(idx))
    }

    /// Serialises the file as scipy's `savemat` does (little-endian, uncompressed).
    pub fn to_bytes(&self) -> Result<Vec<u8>, MatError> {
        let mut out = Vec::with_capacity(256);
        let mut text = WRITER_HEADER_TEXT.as_bytes().to_vec();
        text.resize(116, 0);
        out.extend_from_slice(&text);
        out.extend_from_slice(&[0u8; 8]); // subsystem data offset: none
        out.extend_from_slice(&0x0100u16.to_le_bytes()); // version
        out.extend_from_slice(b"IM"); // little-endian marker
        for var in &self.variables {
            write_variable(&mut out, var)?;
        }
        Ok(out)
    }

    /// Writes the file atomically: to a temporary file beside `path`, renamed on success, so a
    /// failure never leaves a partial file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), MatError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        write_atomic(path, &bytes).map_err(|source| MatError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

pub(crate) use sadtalker_fsio::write_atomic;

// ---------------------------------------------------------------------------------------------
// Reading

/// MAT data types (`miXXX`).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;
const MI_UTF8: u32 = 16;
const MI_UTF16: u32 = 17;
const MI_UTF32: u32 = 18;

const FLAG_COMPLEX: u32 = 0x0800;
const FLAG_GLOBAL: u32 = 0x0400;
const FLAG_LOGICAL: u32 = 0x0200;

/// Most bytes all of a file's compressed elements may inflate to together. Coefficient tables are
/// small (ten minutes of 257-column `coeff_3dmm` are 31 MB); this keeps a zlib bomb from
/// allocating gigabytes while leaving room for any real file.
pub const MAX_INFLATED_BYTES: usize = 256 << 20;
/// Deflate cannot expand data more than 1032:1, so an element declaring more than that many times
/// its compressed size lies.
const DEFLATE_MAX_RATIO: usize = 1032;
/// Largest `.mat` file read (ten minutes of 257-column coefficients are 31 MB uncompressed).
pub const MAX_FILE_BYTES: u64 = 512 << 20;
/// Most elements one numeric variable may have (256 MiB as `double`).
pub const MAX_ELEMENTS: usize = 32 << 20;

struct Parser<'n> {
    source_name: &'n str,
    big_endian: bool,
    /// Bytes inflated so far, against [`MAX_INFLATED_BYTES`].
    inflated: usize,
}

/// A cursor over one buffer (the file, or one decompressed element), with the offset of that
/// buffer's start in the file for error messages.
struct Cursor<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'n> Parser<'n> {
    fn new(source_name: &'n str) -> Self {
        Parser {
            source_name,
            big_endian: false,
            inflated: 0,
        }
    }

    fn corrupt(&self, offset: usize, detail: impl Into<String>) -> MatError {
        MatError::Corrupt {
            source_name: self.source_name.to_string(),
            offset,
            detail: detail.into(),
        }
    }

    fn u32_at(&self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    }

    fn parse_file(mut self, bytes: &[u8]) -> Result<MatFile, MatError> {
        if bytes.len() < 128 {
            return Err(self.not_mat(bytes, "shorter than the 128-byte header"));
        }
        let (version, endian) = (&bytes[124..126], &bytes[126..128]);
        self.big_endian = match endian {
            b"IM" => false,
            b"MI" => true,
            _ => return Err(self.not_mat(bytes, "no byte-order marker at bytes 126..128")),
        };
        let version = if self.big_endian {
            u16::from_be_bytes([version[0], version[1]])
        } else {
            u16::from_le_bytes([version[0], version[1]])
        };
        if version == 0x0200 || bytes.starts_with(b"MATLAB 7.3") {
            return Err(MatError::V73 {
                source_name: self.source_name.to_string(),
            });
        }
        if version != 0x0100 {
            return Err(self.not_mat(bytes, &format!("unknown version 0x{version:04x}")));
        }
        let text_end = bytes[..116].iter().position(|&b| b == 0).unwrap_or(116);
        let header_text = String::from_utf8_lossy(&bytes[..text_end]).trim_end().to_string();

        let mut variables = Vec::new();
        let mut cur = Cursor { buf: bytes, pos: 128 };
        while cur.buf.len() - cur.pos >= 8 {
            let start = cur.pos;
            let (mi, size, payload_at) = self.tag(&cur)?;
            let end = payload_at
                .checked_add(size)
                .filter(|&e| e <= cur.buf.len())
                .ok_or_else(|| self.corrupt(start, format!("element of {size} bytes runs past the end of the file")))?;
            let payload = &cur.buf[payload_at..end];
            match mi {
                MI_MATRIX => {
                    if let Some(v) = self.parse_matrix(payload, start, start)? {
                        variables.push(v);
                    }
                }
                MI_COMPRESSED => {
                    let inner = self.inflate(payload, start)?;
                    let icur = Cursor { buf: &inner, pos: 0 };
                    let (imi, isize, iat) = self.tag(&icur)?;
                    if imi != MI_MATRIX {
                        return Err(
                            self.corrupt(start, format!("compressed element holds data type {imi}, not a matrix"))
                        );
                    }
                    let iend = iat
                        .checked_add(isize)
                        .filter(|&e| e <= inner.len())
                        .ok_or_else(|| self.corrupt(start, "compressed matrix is truncated"))?;
                    if let Some(v) = self.parse_matrix(&inner[iat..iend], start, 0)? {
                        variables.push(v);
                    }
                }
                // Top-level elements of other types carry no variable; skip them like scipy.
                _ => {}
            }
            // Uncompressed elements are 8-byte aligned; compressed ones are not padded.
            cur.pos = if mi == MI_COMPRESSED {
                end
            } else {
                align8(end).min(cur.buf.len())
            };
        }
        Ok(MatFile { header_text, variables })
    }

    /// Inflates a `miCOMPRESSED` payload, at most to the size its inner tag declares; the
    /// declared size itself is bounded by deflate's maximum ratio over the compressed length and
    /// by what is left of [`MAX_INFLATED_BYTES`], both checked before the output is allocated.
    fn inflate(&mut self, payload: &[u8], start: usize) -> Result<Vec<u8>, MatError> {
        use miniz_oxide::inflate::{TINFLStatus, decompress_to_vec_zlib_with_limit};
        let fail = |s: &Self, status: TINFLStatus| {
            s.corrupt(start, format!("compressed element does not inflate: {status:?}"))
        };
        // The inner tag first: its size says how much the element may inflate to.
        let head = match decompress_to_vec_zlib_with_limit(payload, 8) {
            Ok(all) => all,
            Err(e) if e.status == TINFLStatus::HasMoreOutput => e.output,
            Err(e) => return Err(fail(self, e.status)),
        };
        let (_, size, at) = self
            .tag(&Cursor { buf: &head, pos: 0 })
            .map_err(|_| self.corrupt(start, "compressed element holds no complete tag"))?;
        let declared = at.saturating_add(size);
        let left = MAX_INFLATED_BYTES - self.inflated;
        let bound = payload.len().saturating_mul(DEFLATE_MAX_RATIO).min(left);
        if declared > bound {
            return Err(self.corrupt(
                start,
                format!(
                    "compressed element declares {declared} bytes; {} compressed bytes cannot hold that many, or it \
                     is over the {MAX_INFLATED_BYTES}-byte limit of this reader",
                    payload.len()
                ),
            ));
        }
        // Writers may pad the inflated element to 8 bytes; anything past that is not part of it.
        let limit = align8(declared).saturating_add(8);
        let inner = match decompress_to_vec_zlib_with_limit(payload, limit) {
            Ok(v) => v,
            Err(e) if e.status == TINFLStatus::HasMoreOutput => {
                return Err(self.corrupt(
                    start,
                    format!("compressed element inflates to more than the {declared} bytes its tag declares"),
                ));
            }
            Err(e) => return Err(fail(self, e.status)),
        };
        self.inflated = self.inflated.saturating_add(inner.len()).min(MAX_INFLATED_BYTES);
        Ok(inner)
    }

    fn not_mat(&self, bytes: &[u8], detail: &str) -> MatError {
        if bytes.starts_with(b"MATLAB 7.3") {
            return MatError::V73 {
                source_name: self.source_name.to_string(),
            };
        }
        let detail = if bytes.starts_with(b"\x89HDF") {
            "an HDF5 file".to_string()
        } else {
            detail.to_string()
        };
        MatError::NotMat {
            source_name: self.source_name.to_string(),
            detail,
        }
    }

    /// Reads a tag at the cursor: `(data type, byte count, payload offset)`. Handles the
    /// "small data element" form, where type and size share the first word.
    fn tag(&self, cur: &Cursor<'_>) -> Result<(u32, usize, usize), MatError> {
        let at = cur.pos;
        if cur.buf.len() < at + 8 {
            return Err(self.corrupt(at, "truncated element tag"));
        }
        let first = self.u32_at(&cur.buf[at..]);
        if first >> 16 != 0 {
            // Small element: 2 bytes type, 2 bytes size, data in the next 4 bytes.
            let (mi, size) = (first & 0xffff, (first >> 16) as usize);
            if size > 4 {
                return Err(self.corrupt(at, format!("small data element claims {size} bytes")));
            }
            Ok((mi, size, at + 4))
        } else {
            let size = self.u32_at(&cur.buf[at + 4..]) as usize;
            Ok((first, size, at + 8))
        }
    }

    /// Reads one sub-element of a matrix: `(type, payload)`, advancing past its padding.
    fn sub<'b>(&self, cur: &mut Cursor<'b>, base: usize) -> Result<(u32, &'b [u8]), MatError> {
        let (mi, size, at) = self.tag(cur).map_err(|e| self.rebase(e, base))?;
        let end = at
            .checked_add(size)
            .filter(|&e| e <= cur.buf.len())
            .ok_or_else(|| self.corrupt(base + cur.pos, format!("sub-element of {size} bytes is truncated")))?;
        let small = at == cur.pos + 4;
        cur.pos = if small {
            cur.pos + 8
        } else {
            align8(end).min(cur.buf.len())
        };
        Ok((mi, &cur.buf[at..end]))
    }

    fn rebase(&self, e: MatError, base: usize) -> MatError {
        match e {
            MatError::Corrupt { offset, detail, .. } => self.corrupt(base + offset, detail),
            other => other,
        }
    }

    /// Parses the payload of a top-level `miMATRIX` element. `file_offset` locates the element
    /// in the file (for errors); `payload` excludes the 8-byte tag. Returns `None` for an empty
    /// element (MATLAB writes those only inside cells).
    fn parse_matrix(&self, payload: &[u8], file_offset: usize, base: usize) -> Result<Option<MatVariable>, MatError> {
        if payload.is_empty() {
            return Ok(None);
        }
        let mut cur = Cursor { buf: payload, pos: 0 };
        let (mi, flags) = self.sub(&mut cur, base)?;
        if mi != MI_UINT32 || flags.len() != 8 {
            return Err(self.corrupt(file_offset, "matrix without array flags"));
        }
        let flags_word = self.u32_at(flags);
        let class = MatClass::from_code((flags_word & 0xff) as u8);
        let complex = flags_word & FLAG_COMPLEX != 0;
        let global = flags_word & FLAG_GLOBAL != 0;
        let logical = flags_word & FLAG_LOGICAL != 0;

        let (mi, dims_raw) = self.sub(&mut cur, base)?;
        if mi != MI_INT32 || dims_raw.len() % 4 != 0 {
            return Err(self.corrupt(file_offset, "matrix without a dimensions array"));
        }
        let dims: Vec<usize> = dims_raw
            .chunks_exact(4)
            .map(|c| self.u32_at(c) as i32)
            .map(|d| usize::try_from(d).map_err(|_| self.corrupt(file_offset, format!("negative dimension {d}"))))
            .collect::<Result<_, _>>()?;

        let (mi, name_raw) = self.sub(&mut cur, base)?;
        if mi != MI_INT8 && mi != MI_UINT8 {
            return Err(self.corrupt(file_offset, "matrix without a name"));
        }
        let name = String::from_utf8_lossy(name_raw).into_owned();

        let numeric = matches!(
            class,
            MatClass::Double
                | MatClass::Single
                | MatClass::Int8
                | MatClass::UInt8
                | MatClass::Int16
                | MatClass::UInt16
                | MatClass::Int32
                | MatClass::UInt32
                | MatClass::Int64
                | MatClass::UInt64
        );
        if complex || !(numeric || class == MatClass::Char) {
            // Keep the element so that a rewrite preserves it (re-tagged as an uncompressed matrix).
            let element = (!self.big_endian).then(|| {
                let mut e = Vec::with_capacity(payload.len() + 16);
                e.extend_from_slice(&MI_MATRIX.to_le_bytes());
                e.extend_from_slice(&(align8(payload.len()) as u32).to_le_bytes());
                e.extend_from_slice(payload);
                e.resize(align8(e.len()), 0);
                e
            });
            return Ok(Some(MatVariable {
                name,
                value: MatValue::Other {
                    class,
                    complex,
                    dims,
                    element,
                },
                global,
            }));
        }

        let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let count = count.ok_or_else(|| self.corrupt(file_offset, "dimensions overflow"))?;
        let (mi, raw) = if cur.pos < cur.buf.len() {
            self.sub(&mut cur, base)?
        } else {
            (MI_DOUBLE, &[][..])
        };
        // Checked before decoding: widening a stored `uint8` to `double` multiplies its size by 16.
        if count > MAX_ELEMENTS {
            return Err(self.corrupt(
                file_offset,
                format!("variable `{name}` has {count} elements, over this reader's limit of {MAX_ELEMENTS}"),
            ));
        }
        if class != MatClass::Char
            && let Some(width) = stored_width(mi)
            && raw.len().is_multiple_of(width)
            && raw.len() / width != count
        {
            return Err(self.corrupt(
                file_offset,
                format!(
                    "variable `{name}` has {} elements, its dimensions {dims:?} need {count}",
                    raw.len() / width
                ),
            ));
        }
        let data = self
            .decode_data(class, mi, raw)
            .map_err(|d| self.corrupt(file_offset, format!("variable `{name}`: {d}")))?;
        if data.len() != count {
            return Err(self.corrupt(
                file_offset,
                format!(
                    "variable `{name}` has {} elements, its dimensions {dims:?} need {count}",
                    data.len()
                ),
            ));
        }
        Ok(Some(MatVariable {
            name,
            value: MatValue::Array(MatArray { dims, data, logical }),
            global,
        }))
    }

    /// Decodes stored elements of type `mi` into the array's class. MATLAB narrows the stored
    /// type when values fit (a `double` of small integers is stored as `miUINT8`), so every
    /// combination converts, by value, like MATLAB's reader.
    fn decode_data(&self, class: MatClass, mi: u32, raw: &[u8]) -> Result<MatData, String> {
        let values = self.stored_values(mi, raw)?;
        Ok(match class {
            MatClass::Double => MatData::Double(values.convert()),
            MatClass::Single => MatData::Single(values.convert()),
            MatClass::Int8 => MatData::Int8(values.convert()),
            MatClass::UInt8 => MatData::UInt8(values.convert()),
            MatClass::Int16 => MatData::Int16(values.convert()),
            MatClass::UInt16 => MatData::UInt16(values.convert()),
            MatClass::Int32 => MatData::Int32(values.convert()),
            MatClass::UInt32 => MatData::UInt32(values.convert()),
            MatClass::Int64 => MatData::Int64(values.convert()),
            MatClass::UInt64 => MatData::UInt64(values.convert()),
            MatClass::Char => MatData::Char(match mi {
                MI_UTF8 => String::from_utf8_lossy(raw).encode_utf16().collect(),
                MI_UTF32 => raw
                    .chunks_exact(4)
                    .map(|c| char::from_u32(self.u32_at(c)).unwrap_or('\u{fffd}'))
                    .collect::<String>()
                    .encode_utf16()
                    .collect(),
                // miUTF16 and MATLAB's plain miUINT16 code units, or bytes.
                _ => values.convert(),
            }),
            other => return Err(format!("class {other} is not numeric")),
        })
    }

    fn stored_values(&self, mi: u32, raw: &[u8]) -> Result<Stored, String> {
        let be = self.big_endian;
        Ok(match mi {
            MI_INT8 => Stored::I(read_vec::<i8, 1>(raw, be)?.into_iter().map(i64::from).collect()),
            MI_UINT8 | MI_UTF8 => Stored::U(raw.iter().map(|&b| b as u64).collect()),
            MI_INT16 => Stored::I(read_vec::<i16, 2>(raw, be)?.into_iter().map(i64::from).collect()),
            MI_UINT16 | MI_UTF16 => Stored::U(read_vec::<u16, 2>(raw, be)?.into_iter().map(u64::from).collect()),
            MI_INT32 => Stored::I(read_vec::<i32, 4>(raw, be)?.into_iter().map(i64::from).collect()),
            MI_UINT32 | MI_UTF32 => Stored::U(read_vec::<u32, 4>(raw, be)?.into_iter().map(u64::from).collect()),
            MI_INT64 => Stored::I(read_vec::<i64, 8>(raw, be)?),
            MI_UINT64 => Stored::U(read_vec::<u64, 8>(raw, be)?),
            MI_SINGLE => Stored::F32(read_vec::<f32, 4>(raw, be)?),
            MI_DOUBLE => Stored::F64(read_vec::<f64, 8>(raw, be)?),
            other => return Err(format!("unsupported stored data type {other}")),
        })
    }
}

trait FromBytes<const N: usize>: Sized {
    fn from_le(a: [u8; N]) -> Self;
    fn from_be(a: [u8; N]) -> Self;
}

macro_rules! from_bytes {
    ($($t:ty => $n:expr),*) => {$(
        impl FromBytes<$n> for $t {
            fn from_le(a: [u8; $n]) -> Self { <$t>::from_le_bytes(a) }
            fn from_be(a: [u8; $n]) -> Self { <$t>::from_be_bytes(a) }
        }
    )*};
}
from_bytes!(i8 => 1, i16 => 2, u16 => 2, i32 => 4, u32 => 4, f32 => 4, i64 => 8, u64 => 8, f64 => 8);

fn read_vec<T: FromBytes<N>, const N: usize>(raw: &[u8], be: bool) -> Result<Vec<T>, String> {
    if !raw.len().is_multiple_of(N) {
        return Err(format!("{} data bytes are not a multiple of {N}", raw.len()));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            if be { T::from_be(a) } else { T::from_le(a) }
        })
        .collect())
}

/// Stored values, widened losslessly to one of four kinds before conversion to the class.
enum Stored {
    I(Vec<i64>),
    U(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

trait FromStored: Copy {
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
}

macro_rules! from_stored {
    ($($t:ty),*) => {$(
        impl FromStored for $t {
            fn from_i64(v: i64) -> Self { v as $t }
            fn from_u64(v: u64) -> Self { v as $t }
            fn from_f32(v: f32) -> Self { v as $t }
            fn from_f64(v: f64) -> Self { v as $t }
        }
    )*};
}
from_stored!(f64, f32, i8, u8, i16, u16, i32, u32, i64, u64);

impl Stored {
    fn convert<T: FromStored>(&self) -> Vec<T> {
        match self {
            Stored::I(v) => v.iter().map(|&x| T::from_i64(x)).collect(),
            Stored::U(v) => v.iter().map(|&x| T::from_u64(x)).collect(),
            Stored::F32(v) => v.iter().map(|&x| T::from_f32(x)).collect(),
            Stored::F64(v) => v.iter().map(|&x| T::from_f64(x)).collect(),
        }
    }
}

/// Bytes per stored element of a numeric data type, `None` for types the reader refuses anyway.
fn stored_width(mi: u32) -> Option<usize> {
    match mi {
        MI_INT8 | MI_UINT8 | MI_UTF8 => Some(1),
        MI_INT16 | MI_UINT16 | MI_UTF16 => Some(2),
        MI_INT32 | MI_UINT32 | MI_UTF32 | MI_SINGLE => Some(4),
        MI_INT64 | MI_UINT64 | MI_DOUBLE => Some(8),
        _ => None,
    }
}

fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

// ---------------------------------------------------------------------------------------------
// Writing (scipy.io.savemat's layout)

fn write_variable(out: &mut Vec<u8>, var: &MatVariable) -> Result<(), MatError> {
    let array = match &var.value {
        MatValue::Array(a) => a,
        MatValue::Other { element: Some(e), .. } => {
            out.extend_from_slice(e);
            return Ok(());
        }
        MatValue::Other {
            element: None, class, ..
        } => {
            return Err(MatError::Unwritable {
                name: var.name.clone(),
                detail: format!("a {class} array read from a big-endian file cannot be carried over"),
            });
        }
    };
    let unwritable = |detail: String| MatError::Unwritable {
        name: var.name.clone(),
        detail,
    };
    let count: usize = array.dims.iter().product();
    if count != array.data.len() {
        return Err(unwritable(format!(
            "{} elements do not fill dimensions {:?}",
            array.data.len(),
            array.dims
        )));
    }
    let mut body = Vec::new();
    // Array flags.
    let mut flags = u32::from(array.class().code());
    if array.logical {
        flags |= FLAG_LOGICAL;
    }
    if var.global {
        flags |= FLAG_GLOBAL;
    }
    let mut flag_bytes = flags.to_le_bytes().to_vec();
    flag_bytes.extend_from_slice(&0u32.to_le_bytes());
    write_element(&mut body, MI_UINT32, &flag_bytes, false);
    // Dimensions (at least two, like MATLAB).
    let mut dims = array.dims.clone();
    while dims.len() < 2 {
        dims.push(1);
    }
    let mut dim_bytes = Vec::new();
    for d in dims {
        let d = i32::try_from(d).map_err(|_| unwritable(format!("dimension {d} exceeds 2^31-1")))?;
        dim_bytes.extend_from_slice(&d.to_le_bytes());
    }
    write_element(&mut body, MI_INT32, &dim_bytes, false);
    write_element(&mut body, MI_INT8, var.name.as_bytes(), true);
    // Real part, stored in the class's own type (scipy never narrows).
    let (mi, bytes) = match &array.data {
        MatData::Double(v) => (MI_DOUBLE, le_bytes(v, |x| x.to_le_bytes())),
        MatData::Single(v) => (MI_SINGLE, le_bytes(v, |x| x.to_le_bytes())),
        MatData::Int8(v) => (MI_INT8, le_bytes(v, |x| x.to_le_bytes())),
        MatData::UInt8(v) => (MI_UINT8, v.clone()),
        MatData::Int16(v) => (MI_INT16, le_bytes(v, |x| x.to_le_bytes())),
        MatData::UInt16(v) => (MI_UINT16, le_bytes(v, |x| x.to_le_bytes())),
        MatData::Int32(v) => (MI_INT32, le_bytes(v, |x| x.to_le_bytes())),
        MatData::UInt32(v) => (MI_UINT32, le_bytes(v, |x| x.to_le_bytes())),
        MatData::Int64(v) => (MI_INT64, le_bytes(v, |x| x.to_le_bytes())),
        MatData::UInt64(v) => (MI_UINT64, le_bytes(v, |x| x.to_le_bytes())),
        // scipy writes ASCII text as miUTF8; other text goes out as MATLAB's UTF-16 code units.
        MatData::Char(units) if units.iter().all(|&u| u < 0x80) => (MI_UTF8, units.iter().map(|&u| u as u8).collect()),
        MatData::Char(units) => (MI_UINT16, le_bytes(units, |x| x.to_le_bytes())),
    };
    write_element(&mut body, mi, &bytes, true);

    let size = u32::try_from(body.len()).map_err(|_| unwritable("larger than 4 GiB".to_string()))?;
    out.extend_from_slice(&MI_MATRIX.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(())
}

fn le_bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// Writes one element padded to 8 bytes; `allow_small` uses the 4-byte "small data element"
/// form for payloads of at most 4 bytes, as scipy does for names and data (not for flags/dims).
fn write_element(out: &mut Vec<u8>, mi: u32, payload: &[u8], allow_small: bool) {
    if allow_small && payload.len() <= 4 {
        let word = mi | ((payload.len() as u32) << 16);
        out.extend_from_slice(&word.to_le_bytes());
        let mut data = [0u8; 4];
        data[..payload.len()].copy_from_slice(payload);
        out.extend_from_slice(&data);
        return;
    }
    out.extend_from_slice(&mi.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(align8(out.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_memory() {
        let mut f = MatFile::new();
        f.set("coeff_3dmm", MatArray::from_rows_f32(2, 3, &[0., 1., 2., 3., 4., 5.]));
        f.set("ab", MatArray::from_rows_f64(1, 1, &[1.5]));
        f.set("s", MatArray::from_text("hi"));
        let bytes = f.to_bytes().unwrap();
        let back = MatFile::from_bytes(&bytes, "mem").unwrap();
        assert_eq!(back.variables, f.variables);
        let (r, c, d) = back.array("coeff_3dmm").unwrap().to_rows_f32().unwrap();
        assert_eq!((r, c, d), (2, 3, vec![0., 1., 2., 3., 4., 5.]));
        assert_eq!(back.array("s").unwrap().as_string().unwrap(), "hi");
    }

    #[test]
    fn column_major_storage() {
        let a = MatArray::from_rows_f32(2, 3, &[0., 1., 2., 3., 4., 5.]);
        assert_eq!(a.data, MatData::Single(vec![0., 3., 1., 4., 2., 5.]));
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(matches!(
            MatFile::from_bytes(b"hello", "x"),
            Err(MatError::NotMat { .. })
        ));
        let mut f = MatFile::new();
        f.set("a", MatArray::from_rows_f32(4, 4, &[1.0; 16]));
        let bytes = f.to_bytes().unwrap();
        let err = MatFile::from_bytes(&bytes[..bytes.len() - 9], "t").unwrap_err();
        assert!(matches!(err, MatError::Corrupt { .. }), "{err}");
        let mut v73 = bytes.clone();
        v73[124..126].copy_from_slice(&0x0200u16.to_le_bytes());
        assert!(matches!(MatFile::from_bytes(&v73, "t"), Err(MatError::V73 { .. })));
    }
}

/// Crafted compressed elements (built by the tests): zlib bombs are refused before inflating.
#[cfg(test)]
mod bounded_inflation {
    use super::*;

    /// A level-5 file holding one `miCOMPRESSED` element made of `inner` (tag and data).
    fn compressed_file(inner: &[u8]) -> Vec<u8> {
        let mut f = b"MATLAB 5.0 MAT-file, crafted".to_vec();
        f.resize(116, b' ');
        f.resize(124, 0);
        f.extend_from_slice(&0x0100u16.to_le_bytes());
        f.extend_from_slice(b"IM");
        let z = miniz_oxide::deflate::compress_to_vec_zlib(inner, 6);
        f.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
        f.extend_from_slice(&(z.len() as u32).to_le_bytes());
        f.extend_from_slice(&z);
        f
    }

    fn inner(declared: u32, zeros: usize) -> Vec<u8> {
        let mut v = MI_MATRIX.to_le_bytes().to_vec();
        v.extend_from_slice(&declared.to_le_bytes());
        v.resize(8 + zeros, 0);
        v
    }

    fn corrupt_detail(bytes: &[u8]) -> String {
        match MatFile::from_bytes(bytes, "bomb.mat") {
            Err(MatError::Corrupt {
                source_name, detail, ..
            }) => {
                assert_eq!(source_name, "bomb.mat");
                detail
            }
            other => panic!("expected a corrupt-file error, got {other:?}"),
        }
    }

    /// A file over the size bound is refused before it is read into memory.
    #[test]
    fn huge_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("huge.mat");
        // Sparse: nothing is written.
        std::fs::File::create(&path)
            .and_then(|f| f.set_len(MAX_FILE_BYTES + 1))
            .expect("sparse file");
        match MatFile::read(&path) {
            Err(MatError::NotMat { source_name, detail }) => {
                assert!(source_name.ends_with("huge.mat"), "{source_name}");
                assert!(detail.contains("over the 512 MiB"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// An element declaring 4 GB in 64 KiB of zlib is refused on its tag, before inflating (it
    /// used to inflate whatever the stream held: 4 GB from a 4 MB file).
    #[test]
    fn declared_size_is_bounded_by_the_compressed_size() {
        let file = compressed_file(&inner(0xffff_fff0, 64 << 20));
        assert!(file.len() < 128 << 10, "{}", file.len());
        let detail = corrupt_detail(&file);
        assert!(detail.contains("declares 4294967288 bytes"), "{detail}");
    }

    /// A stream that inflates past the size its tag declares is cut there and refused.
    #[test]
    fn inflation_stops_at_the_declared_size() {
        let detail = corrupt_detail(&compressed_file(&inner(1024, 64 << 20)));
        assert!(detail.contains("inflates to more than the 1032 bytes"), "{detail}");
    }
}
