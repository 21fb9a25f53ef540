//! The manifest: which model files exist, their exact size and SHA-256, where they live in the
//! reference layout, where to download them, and which features need them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The manifest compiled into the binary: every official SadTalker model file
/// (generated from `shared/reference/official-models.tsv` by `tools/reference/models_manifest.py`).
const OFFICIAL_MANIFEST: &str = include_str!("../manifest.json");

/// A list of model files (the JSON format is documented in the crate docs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Format version; only 1 exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// The files, in display order.
    pub files: Vec<ModelFile>,
    /// Where the manifest came from (a path, or "built-in"); for messages only.
    #[serde(skip)]
    pub source: String,
}

fn default_version() -> u32 {
    1
}

/// One model file of a manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelFile {
    /// File name, unique in the manifest (e.g. `SadTalker_V0.0.2_256.safetensors`).
    pub name: String,
    /// Relative path in the reference layout (`checkpoints/…` or `gfpgan/weights/…`); the store
    /// keeps the file at the same relative path. Its last component is `name`.
    pub path: String,
    /// Exact size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Download URLs in preferred order (may be empty: then only a `--mirror` or an import provides it).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Features that need this file (`256`, `512`, `face`, `enhancer`, `restoreformer`, `realesrgan`, `legacy`, or
    /// any name a custom manifest chooses).
    #[serde(default)]
    pub features: Vec<String>,
}

impl ModelFile {
    /// The path relative to a reference-layout root (or the store root).
    pub fn rel_path(&self) -> PathBuf {
        self.path.split('/').collect()
    }

    /// Whether `feature` needs this file.
    pub fn needed_by(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// The features of the built-in manifest, for callers that want a typed name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Generation at 256 px: the 256 generator, the mapping nets, face detection + landmarks.
    S256,
    /// Generation at 512 px: the 512 generator, the mapping nets, face detection + landmarks.
    S512,
    /// Face detection (RetinaFace ResNet-50) and landmarks (FAN WFLW) alone.
    Face,
    /// The GFPGAN face enhancer (GFPGANv1.4, face parser, detector).
    Enhancer,
    /// The RestoreFormer face enhancer.
    RestoreFormer,
    /// The Real-ESRGAN x2 background enhancer (`--background-enhancer realesrgan`).
    RealEsrgan,
    /// The pre-v0.0.2-rc checkpoint set (`auido2exp`, `auido2pose`, `epoch_20`, `facevid2vid`).
    Legacy,
}

impl Feature {
    /// Every typed feature.
    pub const ALL: [Feature; 7] = [
        Feature::S256,
        Feature::S512,
        Feature::Face,
        Feature::Enhancer,
        Feature::RestoreFormer,
        Feature::RealEsrgan,
        Feature::Legacy,
    ];

    /// The name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::S256 => "256",
            Feature::S512 => "512",
            Feature::Face => "face",
            Feature::Enhancer => "enhancer",
            Feature::RestoreFormer => "restoreformer",
            Feature::RealEsrgan => "realesrgan",
            Feature::Legacy => "legacy",
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Feature {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Feature::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = Feature::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown feature `{s}` (one of: {})", names.join(", "))
        })
    }
}

impl Manifest {
    /// The manifest compiled into the binary.
    pub fn official() -> Manifest {
        match Manifest::from_json(OFFICIAL_MANIFEST, "built-in manifest") {
            Ok(m) => m,
            // The embedded JSON is checked by the crate's tests; a failure here is a build defect.
            Err(e) => panic!("the built-in model manifest is invalid: {e}"),
        }
    }

    /// Reads and validates a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::Io {
            what: format!("reading manifest {}", path.display()),
            source: e,
        })?;
        Manifest::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a manifest; `source` names it in error messages.
    pub fn from_json(text: &str, source: &str) -> Result<Manifest, StoreError> {
        let bad = |reason: String| StoreError::BadManifest {
            source_name: source.to_string(),
            reason,
        };
        let mut manifest: Manifest = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        manifest.source = source.to_string();
        if manifest.version != 1 {
            return Err(bad(format!(
                "unsupported version {} (this build reads version 1)",
                manifest.version
            )));
        }
        let mut names = BTreeSet::new();
        for file in &mut manifest.files {
            file.sha256 = file.sha256.to_ascii_lowercase();
            if file.name.is_empty() || file.name.contains(['/', '\\']) || file.name.starts_with('.') {
                return Err(bad(format!("`{}` is not a plain file name", file.name)));
            }
            if !names.insert(file.name.clone()) {
                return Err(bad(format!("`{}` is listed twice", file.name)));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("`{}`: sha256 must be 64 hex digits", file.name)));
            }
            let rel = Path::new(&file.path);
            let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
            if !safe || rel.file_name().and_then(|n| n.to_str()) != Some(file.name.as_str()) {
                return Err(bad(format!(
                    "`{}`: path `{}` must be relative, without `..`, and end with the file name",
                    file.name, file.path
                )));
            }
            for url in &file.urls {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad(format!("`{}`: URL `{url}` is not http(s)", file.name)));
                }
            }
        }
        Ok(manifest)
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ModelFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The entries `feature` needs (empty when no file names that feature).
    pub fn for_feature(&self, feature: &str) -> Vec<&ModelFile> {
        self.files.iter().filter(|f| f.needed_by(feature)).collect()
    }

    /// Every feature named in the manifest, sorted.
    pub fn features(&self) -> BTreeSet<&str> {
        self.files
            .iter()
            .flat_map(|f| f.features.iter().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_manifest_is_valid_and_complete() {
        let m = Manifest::official();
        // The reference's 13 files and the background enhancer's.
        assert_eq!(m.files.len(), 14);
        for feature in Feature::ALL {
            assert!(!m.for_feature(feature.as_str()).is_empty(), "{feature} has no files");
        }
        let names = |f: Feature| -> Vec<&str> { m.for_feature(f.as_str()).iter().map(|e| e.name.as_str()).collect() };
        assert!(names(Feature::S256).contains(&"SadTalker_V0.0.2_256.safetensors"));
        assert!(!names(Feature::S256).contains(&"SadTalker_V0.0.2_512.safetensors"));
        assert!(names(Feature::S512).contains(&"mapping_00229-model.pth.tar"));
        assert_eq!(
            names(Feature::Face),
            ["detection_Resnet50_Final.pth", "alignment_WFLW_4HG.pth"]
        );
        assert!(names(Feature::Enhancer).contains(&"GFPGANv1.4.pth"));
        assert!(names(Feature::Enhancer).contains(&"parsing_parsenet.pth"));
        assert_eq!(names(Feature::RealEsrgan), ["RealESRGAN_x2plus.pth"]);
    }

    /// The embedded JSON must say what the reference TSV says (checked where shared/ is beside the repo).
    #[test]
    fn manifest_matches_reference_tsv() {
        let tsv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/official-models.tsv");
        let Ok(text) = std::fs::read_to_string(&tsv) else {
            eprintln!("skipped: {} not found", tsv.display());
            return;
        };
        let m = Manifest::official();
        let mut rows = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "bad TSV row {line}");
            let entry = m
                .get(cols[0])
                .unwrap_or_else(|| panic!("{} missing from manifest.json", cols[0]));
            assert_eq!(entry.size.to_string(), cols[1], "{}", cols[0]);
            assert_eq!(entry.sha256, cols[2], "{}", cols[0]);
            assert_eq!(entry.path, cols[3], "{}", cols[0]);
            assert_eq!(
                entry.urls,
                cols[4].split_whitespace().collect::<Vec<_>>(),
                "{}",
                cols[0]
            );
            rows += 1;
        }
        // Besides the TSV's files, only the background enhancer's (tools/reference/models_manifest.py EXTRA).
        let extra: Vec<&str> = m
            .files
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| !text.lines().any(|l| l.split('\t').next() == Some(*n)))
            .collect();
        assert_eq!(extra, ["RealESRGAN_x2plus.pth"]);
        assert_eq!(rows + extra.len(), m.files.len());
    }

    #[test]
    fn rejects_unsafe_or_inconsistent_entries() {
        let entry = |name: &str, path: &str, sha: &str| {
            format!(r#"{{"files":[{{"name":"{name}","path":"{path}","size":1,"sha256":"{sha}","urls":[]}}]}}"#)
        };
        let good = "a".repeat(64);
        assert!(Manifest::from_json(&entry("x.pth", "checkpoints/x.pth", &good), "t").is_ok());
        for (name, path, sha) in [
            ("x.pth", "../x.pth", good.as_str()),
            ("x.pth", "/abs/x.pth", good.as_str()),
            ("x.pth", "checkpoints/y.pth", good.as_str()),
            ("x.pth", "checkpoints/x.pth", "abc"),
            ("a/b", "a/b", good.as_str()),
        ] {
            let err = Manifest::from_json(&entry(name, path, sha), "t").expect_err(path);
            assert!(err.to_string().contains("manifest t"), "{err}");
        }
    }
}
