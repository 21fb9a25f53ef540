//! Coefficient tables and the pipeline's coefficient `.mat` files.
//!
//! Preprocessing writes the first-frame file `{coeff_3dmm: (N, 73) float32, full_3dmm: (1, 257)}`;
//! Audio2Coeff writes `{coeff_3dmm: (T, 70) float32}`. [`CoeffTable`] is such a table with its
//! width checked where it is used; [`adapt`] converts a file between the widths.

use std::ops::Range;
use std::path::Path;

use thiserror::Error;

use crate::mat::{MatArray, MatClass, MatError, MatFile};
use crate::types::{
    COEFF_3DMM_DIM, CROP, Coeff3dmm, CropParams, FIRST_FRAME_DIM, FirstFrameCoeff, MOTION_DIM, MotionCoeff, hint,
};

/// The variable holding the coefficient sequence in every SadTalker `.mat` file.
pub const COEFF_KEY: &str = "coeff_3dmm";
/// The variable holding the first frame's full 257-D vector in the first-frame `.mat`.
pub const FULL_KEY: &str = "full_3dmm";

/// A failure reading, checking or converting coefficient files.
#[derive(Debug, Error)]
pub enum CoeffError {
    /// The `.mat` file itself could not be read or written.
    #[error(transparent)]
    Mat(#[from] MatError),
    /// The file has no variable of the expected name.
    #[error(
        "{path}: no `{key}` variable (it has: {found}); SadTalker coefficient files hold `coeff_3dmm` \
         (and `full_3dmm` for a first frame)"
    )]
    MissingKey {
        /// The file.
        path: String,
        /// The variable looked for.
        key: String,
        /// The variables present.
        found: String,
    },
    /// The variable is not a 2-D real numeric array.
    #[error("{path}: `{key}` is {what}, not a 2-D numeric array (frames × coefficients)")]
    NotATable {
        /// The file.
        path: String,
        /// The variable.
        key: String,
        /// What it is instead.
        what: String,
    },
    /// The table has no rows.
    #[error("{path}: `{key}` has no rows (frames)")]
    Empty {
        /// The file.
        path: String,
        /// The variable.
        key: String,
    },
    /// The table has the wrong number of columns for its use.
    #[error("{path}: `{key}` has {got} columns, {use_} needs {expected}{}", hint(*expected_width, *got))]
    Width {
        /// The file.
        path: String,
        /// The variable.
        key: String,
        /// Column count found.
        got: usize,
        /// Column count(s) accepted, in words.
        expected: String,
        /// The main accepted width (for the hint).
        expected_width: usize,
        /// What the table is used for.
        use_: String,
    },
    /// A 257-D table given to the adapter without `--from-full`.
    #[error(
        "{path}: `{key}` holds 257-D full 3DMM vectors, not 70/73-D coefficients; pass --from-full to \
         convert them (the expression, angle and translation columns are kept)"
    )]
    FullWithoutFlag {
        /// The file.
        path: String,
        /// The variable.
        key: String,
    },
    /// `--from-full` was given but the file has no 257-D table.
    #[error("{path}: --from-full needs a 257-column `full_3dmm` or `coeff_3dmm`; this file has {found}")]
    NoFullTable {
        /// The file.
        path: String,
        /// What it has.
        found: String,
    },
    /// Converting to 73 columns needs the crop parameters of the source image.
    #[error(
        "converting {path} to 73 columns needs the source image's crop parameters: pass --crop-from \
         FIRST.mat (the first-frame .mat written by preprocessing, 73 columns)"
    )]
    NoCropSource {
        /// The file being converted.
        path: String,
    },
    /// An unsupported target width.
    #[error("cannot convert to {0} columns: the targets are 70 (motion) and 73 (first-frame with crop)")]
    BadTarget(usize),
}

/// A 2-D table of coefficients: `rows` frames × `width` values, row-major `f32` (numpy's layout
/// of `coeff_3dmm`).
#[derive(Clone, Debug, PartialEq)]
pub struct CoeffTable {
    /// Number of rows (frames).
    pub rows: usize,
    /// Number of columns per row.
    pub width: usize,
    /// `rows × width` values, row-major.
    pub data: Vec<f32>,
}

impl CoeffTable {
    /// A table from row-major data.
    ///
    /// # Panics
    /// If `data.len() != rows * width`.
    pub fn new(rows: usize, width: usize, data: Vec<f32>) -> CoeffTable {
        assert_eq!(
            data.len(),
            rows * width,
            "coefficient table data does not match {rows}×{width}"
        );
        CoeffTable { rows, width, data }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.width..(i + 1) * self.width]
    }

    /// Mutable row `i`.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.width..(i + 1) * self.width]
    }

    /// The rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.width.max(1)).take(self.rows)
    }

    /// Columns `cols` of every row (numpy's `table[:, a:b]`).
    ///
    /// # Panics
    /// If `cols` reaches past the width.
    pub fn columns(&self, cols: Range<usize>) -> CoeffTable {
        assert!(
            cols.end <= self.width,
            "columns {cols:?} of a {}-wide table",
            self.width
        );
        let data = self.iter_rows().flat_map(|r| r[cols.clone()].iter().copied()).collect();
        CoeffTable::new(self.rows, cols.len(), data)
    }

    /// A table of motion coefficients.
    pub fn from_motion(rows: &[MotionCoeff]) -> CoeffTable {
        CoeffTable::new(rows.len(), MOTION_DIM, rows.iter().flat_map(|r| r.0).collect())
    }

    /// A table of first-frame coefficients.
    pub fn from_first_frame(rows: &[FirstFrameCoeff]) -> CoeffTable {
        CoeffTable::new(rows.len(), FIRST_FRAME_DIM, rows.iter().flat_map(|r| r.0).collect())
    }

    /// The rows as motion coefficients (width must be 70).
    pub fn to_motion(&self) -> Option<Vec<MotionCoeff>> {
        self.iter_rows().map(|r| MotionCoeff::from_slice(r).ok()).collect()
    }

    /// The rows as first-frame coefficients (width must be 73).
    pub fn to_first_frame(&self) -> Option<Vec<FirstFrameCoeff>> {
        self.iter_rows().map(|r| FirstFrameCoeff::from_slice(r).ok()).collect()
    }

    /// The rows as full 3DMM vectors (width must be 257).
    pub fn to_full(&self) -> Option<Vec<Coeff3dmm>> {
        self.iter_rows().map(|r| Coeff3dmm::from_slice(r).ok()).collect()
    }

    /// As a `single` `.mat` array (what scipy writes for a float32 table).
    pub fn to_mat_array(&self) -> MatArray {
        MatArray::from_rows_f32(self.rows, self.width, &self.data)
    }

    /// Reads variable `key` of `file` (loaded from `path`, which names it in errors).
    pub fn from_mat(file: &MatFile, key: &str, path: &str) -> Result<CoeffTable, CoeffError> {
        let (rows, width, data) = table_f64(file, key, path)?;
        Ok(CoeffTable::new(
            rows,
            width,
            data.into_iter().map(|v| v as f32).collect(),
        ))
    }

    /// Reads variable `key` of the `.mat` file at `path`.
    pub fn read(path: impl AsRef<Path>, key: &str) -> Result<CoeffTable, CoeffError> {
        let path = path.as_ref();
        let file = MatFile::read(path)?;
        CoeffTable::from_mat(&file, key, &path.display().to_string())
    }

    fn width_error(&self, path: &str, key: &str, expected: usize, use_: &str) -> CoeffError {
        CoeffError::Width {
            path: path.to_string(),
            key: key.to_string(),
            got: self.width,
            expected: expected.to_string(),
            expected_width: expected,
            use_: use_.to_string(),
        }
    }

    /// Checks that the table has at least `min` columns, as the reference's `[:, :min]` slices
    /// assume (they silently return fewer columns otherwise, failing later in a network).
    pub fn require_width_at_least(&self, min: usize, path: &str, key: &str, use_: &str) -> Result<(), CoeffError> {
        if self.width < min {
            let mut e = self.width_error(path, key, min, use_);
            if let CoeffError::Width { expected, .. } = &mut e {
                *expected = format!("at least {min}");
            }
            return Err(e);
        }
        Ok(())
    }
}

fn variable_list(file: &MatFile) -> String {
    if file.variables.is_empty() {
        return "no variables".to_string();
    }
    file.variables
        .iter()
        .map(|v| format!("`{}`", v.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `key` as a non-empty 2-D numeric table in `f64` (exact for `single` and `double`).
fn table_f64(file: &MatFile, key: &str, path: &str) -> Result<(usize, usize, Vec<f64>), CoeffError> {
    let var = file.get(key).ok_or_else(|| CoeffError::MissingKey {
        path: path.to_string(),
        key: key.to_string(),
        found: variable_list(file),
    })?;
    let not_table = |what: String| CoeffError::NotATable {
        path: path.to_string(),
        key: key.to_string(),
        what,
    };
    let array = match &var.value {
        crate::mat::MatValue::Array(a) => a,
        crate::mat::MatValue::Other { class, complex, .. } => {
            return Err(not_table(format!(
                "a {}{class} array",
                if *complex { "complex " } else { "" }
            )));
        }
    };
    let (rows, width, data) = array
        .to_rows_f64()
        .ok_or_else(|| not_table(format!("a {} array of shape {:?}", array.class(), array.dims)))?;
    if rows == 0 {
        return Err(CoeffError::Empty {
            path: path.to_string(),
            key: key.to_string(),
        });
    }
    Ok((rows, width, data))
}

/// The first-frame coefficient file written by preprocessing.
#[derive(Clone, Debug, PartialEq)]
pub struct FirstFrameFile {
    /// `coeff_3dmm`: one 73-D row per frame (one row for a still image).
    pub coeff: Vec<FirstFrameCoeff>,
    /// `full_3dmm`: the first frame's 257-D vector, when present.
    pub full: Option<Coeff3dmm>,
}

impl FirstFrameFile {
    /// Reads and checks a first-frame `.mat` (`coeff_3dmm` must be 73 columns wide).
    pub fn read(path: impl AsRef<Path>) -> Result<FirstFrameFile, CoeffError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = MatFile::read(path)?;
        let table = CoeffTable::from_mat(&file, COEFF_KEY, &name)?;
        let coeff = table
            .to_first_frame()
            .ok_or_else(|| table.width_error(&name, COEFF_KEY, FIRST_FRAME_DIM, "a first-frame coefficient file"))?;
        let full = match file.get(FULL_KEY) {
            None => None,
            Some(_) => {
                let t = CoeffTable::from_mat(&file, FULL_KEY, &name)?;
                let rows = t
                    .to_full()
                    .ok_or_else(|| t.width_error(&name, FULL_KEY, COEFF_3DMM_DIM, "the full 3DMM vector"))?;
                rows.first().copied()
            }
        };
        Ok(FirstFrameFile { coeff, full })
    }

    /// Writes the file as preprocessing does (`coeff_3dmm` float32, `full_3dmm` float32).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), CoeffError> {
        let mut file = MatFile::new();
        file.set(COEFF_KEY, CoeffTable::from_first_frame(&self.coeff).to_mat_array());
        if let Some(full) = &self.full {
            file.set(FULL_KEY, MatArray::from_rows_f32(1, COEFF_3DMM_DIM, &full.0));
        }
        Ok(file.write(path)?)
    }
}

/// Reads the crop parameters of a first-frame `.mat` (row 0, columns 70..73 of `coeff_3dmm`),
/// the values the reference appends in 'full' mode.
pub fn read_crop_params(path: impl AsRef<Path>) -> Result<CropParams, CoeffError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let table = CoeffTable::read(path, COEFF_KEY)?;
    if table.width != FIRST_FRAME_DIM {
        return Err(table.width_error(
            &name,
            COEFF_KEY,
            FIRST_FRAME_DIM,
            "a crop-parameter source (--crop-from)",
        ));
    }
    let mut c = [0f32; 3];
    c.copy_from_slice(&table.row(0)[CROP]);
    Ok(CropParams(c))
}

/// Writes a motion coefficient file as Audio2Coeff does (`{coeff_3dmm: (T, 70) float32}`).
pub fn write_motion(path: impl AsRef<Path>, rows: &[MotionCoeff]) -> Result<(), CoeffError> {
    let mut file = MatFile::new();
    file.set(COEFF_KEY, CoeffTable::from_motion(rows).to_mat_array());
    Ok(file.write(path)?)
}

/// Options of [`adapt`].
#[derive(Clone, Debug, Default)]
pub struct AdaptOptions {
    /// Target width: 70 or 73.
    pub to: usize,
    /// Crop parameters to append when going to 73 columns from 70 or 257.
    pub crop: Option<CropParams>,
    /// Accept a 257-D source (`full_3dmm`, or a 257-wide `coeff_3dmm`).
    pub from_full: bool,
}

/// What [`adapt`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptReport {
    /// The variable converted from.
    pub source_key: String,
    /// Its width.
    pub from: usize,
    /// The width written.
    pub to: usize,
    /// Rows converted.
    pub rows: usize,
    /// The crop parameters appended, if any.
    pub crop: Option<CropParams>,
}

/// Converts the coefficient table of a `.mat` file between the 257-, 73- and 70-column layouts:
/// 73→70 drops the crop parameters, 70→73 appends `crop` to every row (the reference appends the
/// source image's `coeff_3dmm[0, 70:73]`), 257→70/73 (with `from_full`) keeps expression, angles
/// and translation. The result is `coeff_3dmm` of the new width, stored in the input's float
/// class; every other variable is carried over unchanged. `path` names the input in errors.
pub fn adapt(input: &MatFile, path: &str, opts: &AdaptOptions) -> Result<(MatFile, AdaptReport), CoeffError> {
    if opts.to != MOTION_DIM && opts.to != FIRST_FRAME_DIM {
        return Err(CoeffError::BadTarget(opts.to));
    }
    let coeff_width = match input.array(COEFF_KEY) {
        Some(a) => a.dims.get(1).copied(),
        None => None,
    };
    let source_key = if opts.from_full {
        let full_width = input.array(FULL_KEY).and_then(|a| a.dims.get(1).copied());
        if full_width == Some(COEFF_3DMM_DIM) {
            FULL_KEY
        } else if coeff_width == Some(COEFF_3DMM_DIM) {
            COEFF_KEY
        } else {
            return Err(CoeffError::NoFullTable {
                path: path.to_string(),
                found: describe_widths(input),
            });
        }
    } else {
        COEFF_KEY
    };
    let (rows, from, data) = table_f64(input, source_key, path)?;
    let class = match input.array(source_key).map(|a| a.class()) {
        Some(MatClass::Double) => MatClass::Double,
        _ => MatClass::Single,
    };
    let motion_cols: Vec<usize> = match from {
        MOTION_DIM | FIRST_FRAME_DIM => (0..MOTION_DIM).collect(),
        COEFF_3DMM_DIM if opts.from_full => (80..144).chain(224..227).chain(254..257).collect(),
        COEFF_3DMM_DIM => {
            return Err(CoeffError::FullWithoutFlag {
                path: path.to_string(),
                key: source_key.to_string(),
            });
        }
        other => {
            return Err(CoeffError::Width {
                path: path.to_string(),
                key: source_key.to_string(),
                got: other,
                expected: "70, 73 or (with --from-full) 257".to_string(),
                expected_width: opts.to,
                use_: "the adapter".to_string(),
            });
        }
    };
    // Crop parameters for a 73-wide result: a 73-wide source keeps its own per-row values;
    // otherwise the caller's, or (from a first-frame file's full_3dmm) that file's own row 0.
    let crop = if opts.to == FIRST_FRAME_DIM && from != FIRST_FRAME_DIM {
        let own = if source_key == FULL_KEY && coeff_width == Some(FIRST_FRAME_DIM) {
            input
                .array(COEFF_KEY)
                .and_then(|a| a.to_rows_f32())
                .map(|(_, _, d)| CropParams([d[CROP.start], d[CROP.start + 1], d[CROP.start + 2]]))
        } else {
            None
        };
        Some(
            opts.crop
                .or(own)
                .ok_or_else(|| CoeffError::NoCropSource { path: path.to_string() })?,
        )
    } else {
        None
    };
    let mut out = Vec::with_capacity(rows * opts.to);
    for r in 0..rows {
        let row = &data[r * from..(r + 1) * from];
        out.extend(motion_cols.iter().map(|&c| row[c]));
        if opts.to == FIRST_FRAME_DIM {
            match crop {
                Some(c) => out.extend(c.0.iter().map(|&v| f64::from(v))),
                None => out.extend_from_slice(&row[CROP]),
            }
        }
    }
    let array = match class {
        MatClass::Double => MatArray::from_rows_f64(rows, opts.to, &out),
        _ => MatArray::from_rows_f32(rows, opts.to, &out.iter().map(|&v| v as f32).collect::<Vec<_>>()),
    };
    let mut result = input.clone();
    result.set(COEFF_KEY, array);
    let report = AdaptReport {
        source_key: source_key.to_string(),
        from,
        to: opts.to,
        rows,
        crop,
    };
    Ok((result, report))
}

fn describe_widths(file: &MatFile) -> String {
    let parts: Vec<String> = file
        .variables
        .iter()
        .map(|v| match &v.value {
            crate::mat::MatValue::Array(a) => format!("`{}` {:?}", v.name, a.dims),
            crate::mat::MatValue::Other { class, .. } => format!("`{}` ({class})", v.name),
        })
        .collect();
    if parts.is_empty() {
        "no variables".to_string()
    } else {
        parts.join(", ")
    }
}

/// Summary statistics of one column group, for `coeffs show`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupStats {
    /// Group name (`exp`, `angle`, ...).
    pub name: &'static str,
    /// Columns in the group.
    pub columns: Range<usize>,
    /// Minimum over the group.
    pub min: f64,
    /// Maximum over the group.
    pub max: f64,
    /// Mean over the group.
    pub mean: f64,
}

/// The named column groups of a coefficient table of width `width` (none for other widths).
pub fn column_groups(width: usize) -> Vec<(&'static str, Range<usize>)> {
    match width {
        MOTION_DIM => vec![("exp", 0..64), ("angle", 64..67), ("trans", 67..70)],
        FIRST_FRAME_DIM => vec![("exp", 0..64), ("angle", 64..67), ("trans", 67..70), ("crop", 70..73)],
        COEFF_3DMM_DIM => vec![
            ("id", 0..80),
            ("exp", 80..144),
            ("tex", 144..224),
            ("angle", 224..227),
            ("gamma", 227..254),
            ("trans", 254..257),
        ],
        _ => vec![],
    }
}

/// What a table of this width is, in words.
pub fn describe_width(width: usize) -> Option<&'static str> {
    match width {
        MOTION_DIM => Some("motion coefficients (exp 64 + angle 3 + trans 3)"),
        FIRST_FRAME_DIM => Some("first-frame coefficients (exp 64 + angle 3 + trans 3 + crop 3)"),
        COEFF_3DMM_DIM => Some("full 3DMM (id 80 + exp 64 + tex 80 + angle 3 + gamma 27 + trans 3)"),
        _ => None,
    }
}

/// Per-group min/max/mean of a row-major table.
pub fn group_stats(rows: usize, width: usize, data: &[f64]) -> Vec<GroupStats> {
    column_groups(width)
        .into_iter()
        .map(|(name, columns)| {
            let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
            for r in 0..rows {
                for &v in &data[r * width + columns.start..r * width + columns.end] {
                    min = min.min(v);
                    max = max.max(v);
                    sum += v;
                    n += 1;
                }
            }
            GroupStats {
                name,
                columns,
                min,
                max,
                mean: if n > 0 { sum / n as f64 } else { f64::NAN },
            }
        })
        .collect()
}
