//! Support for reference-parity tests.
//!
//! Goldens are written by the scripts in `tools/reference/` (run in the reference venv) and
//! committed under `fixtures/`, so tests need no Python. A golden file is a safetensors
//! file holding, per case, tensors named `<case>.<role>` and, in `__metadata__["cases"]`,
//! a JSON list of `{"name": ..., "op": ..., params...}` (see `tools/reference/goldens.py`).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::Checkpoint;
use serde_json::Value;

/// The repository's `fixtures/` directory, or `SADTALKER_FIXTURES` where set (test binaries
/// built on one machine and run from another checkout, as `tools/gpu/run-on-gpu.sh` does).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("SADTALKER_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures"),
    }
}

/// An open golden file.
pub struct Golden {
    ckpt: Checkpoint,
    cases: Vec<Value>,
}

/// One case of a golden file: its parameters and access to its tensors.
pub struct Case<'a> {
    golden: &'a Golden,
    /// The case's parameters (`name`, `op`, and op-specific fields).
    pub params: Value,
}

impl Golden {
    /// Opens `fixtures/<rel>`; panics with the command to regenerate it when absent.
    pub fn open(rel: &str) -> Golden {
        let path = fixtures_dir().join(rel);
        let ckpt = Checkpoint::open(&path)
            .unwrap_or_else(|e| panic!("golden {rel}: {e}\n(regenerate goldens with `bash tools/reference/regen.sh`)"));
        let meta = ckpt.metadata();
        let cases = meta
            .get("cases")
            .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
            .unwrap_or_else(|| panic!("golden {rel}: no `cases` list in its metadata"));
        // A golden without cases would let every parity test over it pass without checking anything.
        assert!(!cases.is_empty(), "golden {rel}: its `cases` list is empty");
        Golden { ckpt, cases }
    }

    /// Every tensor name in the file.
    pub fn tensor_names(&self) -> Vec<String> {
        self.ckpt.tensors().into_iter().map(|t| t.name).collect()
    }

    /// A tensor by its full name, as an f32 CPU tensor.
    pub fn tensor(&self, name: &str) -> Tensor {
        let (v, shape) = self.ckpt.read_f32(name).unwrap_or_else(|e| panic!("{e}"));
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The cases, in file order.
    pub fn cases(&self) -> impl Iterator<Item = Case<'_>> {
        self.cases.iter().map(|p| Case {
            golden: self,
            params: p.clone(),
        })
    }
}

impl Case<'_> {
    /// The case name.
    pub fn name(&self) -> &str {
        self.params["name"].as_str().unwrap_or("?")
    }

    /// The case's op name.
    pub fn op(&self) -> &str {
        self.params["op"].as_str().unwrap_or("?")
    }

    /// Tensor `<case>.<role>` as an f32 CPU tensor.
    pub fn tensor(&self, role: &str) -> Tensor {
        self.try_tensor(role)
            .unwrap_or_else(|| panic!("golden case {}: no tensor `{role}`", self.name()))
    }

    /// Tensor `<case>.<role>` if the case has one (e.g. an optional bias).
    pub fn try_tensor(&self, role: &str) -> Option<Tensor> {
        let name = format!("{}.{role}", self.name());
        self.golden.ckpt.info(&name)?;
        let (v, shape) = self.golden.ckpt.read_f32(&name).unwrap_or_else(|e| panic!("{e}"));
        Some(Tensor::from_vec(v, shape, &Device::Cpu).unwrap_or_else(|e| panic!("{e}")))
    }

    /// A list-of-integers parameter.
    pub fn usizes(&self, key: &str) -> Vec<usize> {
        self.params[key]
            .as_array()
            .unwrap_or_else(|| panic!("golden case {}: parameter `{key}` is not a list", self.name()))
            .iter()
            .map(|v| v.as_u64().unwrap_or_else(|| panic!("{key}: not an integer")) as usize)
            .collect()
    }

    /// A number parameter.
    pub fn f64(&self, key: &str) -> f64 {
        self.params[key]
            .as_f64()
            .unwrap_or_else(|| panic!("golden case {}: parameter `{key}` is not a number", self.name()))
    }

    /// A boolean parameter (false when absent).
    pub fn flag(&self, key: &str) -> bool {
        self.params[key].as_bool().unwrap_or(false)
    }
}

/// How far one tensor is from another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Diff {
    /// Largest absolute difference.
    pub max_abs: f32,
    /// `max_abs` over the largest magnitude in the reference.
    pub rel: f32,
    /// Number of elements compared.
    pub len: usize,
}

/// Compares `ours` with `reference`: shapes must match, and NaN must sit where the
/// reference has NaN (any other NaN counts as an infinite difference).
pub fn diff(ours: &Tensor, reference: &Tensor) -> Result<Diff, String> {
    if ours.dims() != reference.dims() {
        return Err(format!("shape {:?}, reference has {:?}", ours.dims(), reference.dims()));
    }
    let flat = |t: &Tensor| {
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| e.to_string())
    };
    let (a, b) = (flat(ours)?, flat(reference)?);
    let mut max_abs = 0f32;
    let mut scale = 0f32;
    for (&x, &y) in a.iter().zip(&b) {
        if y.is_nan() && x.is_nan() {
            continue;
        }
        let d = if x.is_nan() || y.is_nan() || (x.is_infinite() || y.is_infinite()) && x != y {
            f32::INFINITY
        } else if x == y {
            0.0
        } else {
            (x - y).abs()
        };
        max_abs = max_abs.max(d);
        if y.is_finite() {
            scale = scale.max(y.abs());
        }
    }
    Ok(Diff {
        max_abs,
        rel: if scale > 0.0 { max_abs / scale } else { max_abs },
        len: a.len(),
    })
}

/// Prints the error of `ours` against `reference` and panics when the relative error
/// exceeds `rel_tol`.
pub fn assert_close(label: &str, ours: &Tensor, reference: &Tensor, rel_tol: f32) -> Diff {
    match diff(ours, reference) {
        Ok(d) => {
            println!(
                "{label}: max_abs={:.3e} rel={:.3e} ({} values)",
                d.max_abs, d.rel, d.len
            );
            assert!(
                d.rel <= rel_tol,
                "{label}: relative error {:.3e} exceeds {rel_tol:.1e} (max_abs {:.3e})",
                d.rel,
                d.max_abs
            );
            d
        }
        Err(e) => panic!("{label}: {e}"),
    }
}

/// The reference venv's Python (the one lookup every benchmark and tool uses): `given` (a `--python`
/// option), else `$SADTALKER_REF_PYTHON`, else the venv that `setup-reference-env.sh` builds by default,
/// `~/.cache/sadtalker-reference/bin/python`, if it exists. `None`: no reference here (benchmarks then
/// print our figures alone).
pub fn reference_python(given: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(p) = given {
        return Some(p);
    }
    if let Some(p) = std::env::var_os("SADTALKER_REF_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".cache/sadtalker-reference/bin/python")).filter(|p| p.exists())
}

/// Runs the reference side of a benchmark, `tools/reference/<script> --repeat R [--threads T] EXTRA...`,
/// with `python`, and returns the JSON object on the last line it prints. `None`, with the reason on
/// stderr, when there is no reference to compare with: the bench then prints our timings alone.
pub fn reference_bench(
    python: &std::path::Path,
    script: &str,
    repeat: usize,
    threads: Option<usize>,
    extra: &[&str],
) -> Option<Value> {
    let mut cmd = std::process::Command::new(python);
    cmd.arg(fixtures_dir().join("../tools/reference").join(script))
        .args(["--repeat", &repeat.to_string()]);
    if let Some(t) = threads {
        cmd.args(["--threads", &t.to_string()]);
    }
    cmd.args(extra);
    match cmd.output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok()),
        Ok(o) => {
            eprintln!("reference bench failed: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("no reference ({}: {e}); printing our timings only", python.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn diff_measures_and_rejects() {
        let d = diff(&t(&[1.0, 2.0, -4.0]), &t(&[1.0, 2.5, -4.0])).unwrap();
        assert_eq!(d.max_abs, 0.5);
        assert_eq!(d.rel, 0.125);
        assert!(diff(&t(&[1.0]), &t(&[1.0, 2.0])).is_err());
        assert_eq!(diff(&t(&[f32::NAN]), &t(&[1.0])).unwrap().max_abs, f32::INFINITY);
        assert_eq!(diff(&t(&[f32::NAN]), &t(&[f32::NAN])).unwrap().max_abs, 0.0);
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn assert_close_fails_on_large_error() {
        assert_close("x", &t(&[1.0, 2.0]), &t(&[1.0, 2.1]), 1e-5);
    }
}
