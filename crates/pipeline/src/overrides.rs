//! Per-job option values given as data: a batch CSV row, a JSON job object, an HTTP form, or the batch
//! command line's defaults. One all-optional type, filled by serde, merged over a base
//! [`GenerateOptions`]; the merged options then go through the one [`GenerateOptions::validate`].
//!
//! Values may be native JSON (`"pose_style": 3`, `"still": true`, `"input_yaw": [0, 20]`) or text as a
//! CSV cell or form field gives them (`"3"`, `"yes"`, `"0 20"`); an empty text means "not given". Keys are
//! the batch columns, with underscores or dashes (`pose-style`), and `source_image` / `driven_audio` are
//! accepted for `image` / `audio`.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sadtalker_ops::Precision;
use sadtalker_preprocess::PreprocessMode;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::options::{DeviceChoice, Fallback, GenerateOptions};

/// One job's option values, every one optional: what a row sets replaces the base's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobOverrides {
    /// The portrait (relative paths start at the job list's folder).
    #[serde(deserialize_with = "text")]
    pub image: Option<PathBuf>,
    /// The speech.
    #[serde(deserialize_with = "text")]
    pub audio: Option<PathBuf>,
    /// The output's name (`<name>.mp4`; batch only).
    #[serde(deserialize_with = "text")]
    pub name: Option<String>,
    /// `--preprocess`.
    #[serde(deserialize_with = "parsed")]
    pub preprocess: Option<PreprocessMode>,
    /// `--still`.
    #[serde(deserialize_with = "flag")]
    pub still: Option<bool>,
    /// `--pose-style`.
    #[serde(deserialize_with = "whole")]
    pub pose_style: Option<u32>,
    /// `--expression-scale`.
    #[serde(deserialize_with = "number")]
    pub expression_scale: Option<f32>,
    /// `--size`.
    #[serde(deserialize_with = "whole")]
    pub size: Option<u32>,
    /// `--batch-size`.
    #[serde(deserialize_with = "whole")]
    pub batch_size: Option<usize>,
    /// `--seed`.
    #[serde(deserialize_with = "whole")]
    pub seed: Option<u64>,
    /// `--ref-eyeblink`.
    #[serde(deserialize_with = "text")]
    pub ref_eyeblink: Option<PathBuf>,
    /// `--ref-pose`.
    #[serde(deserialize_with = "text")]
    pub ref_pose: Option<PathBuf>,
    /// `--input-yaw`: a list, or text with the angles separated by spaces, commas or semicolons.
    #[serde(deserialize_with = "angles")]
    pub input_yaw: Option<Vec<f64>>,
    /// `--input-pitch`.
    #[serde(deserialize_with = "angles")]
    pub input_pitch: Option<Vec<f64>>,
    /// `--input-roll`.
    #[serde(deserialize_with = "angles")]
    pub input_roll: Option<Vec<f64>>,
    /// `--enhancer`.
    #[serde(deserialize_with = "text")]
    pub enhancer: Option<String>,
    /// `--background-enhancer`.
    #[serde(deserialize_with = "text")]
    pub background_enhancer: Option<String>,
    /// `--landmarks`.
    #[serde(deserialize_with = "text")]
    pub landmarks: Option<PathBuf>,
    /// `--face-index`.
    #[serde(deserialize_with = "whole")]
    pub face_index: Option<usize>,
    /// `--face-threshold`.
    #[serde(deserialize_with = "number")]
    pub face_threshold: Option<f32>,
    /// `--fallback`.
    #[serde(deserialize_with = "parsed")]
    pub fallback: Option<Fallback>,
    /// Random eye blinks (`--no-blink` is `use_blink = false`).
    #[serde(deserialize_with = "flag")]
    pub use_blink: Option<bool>,
    /// `--precision` of the face renderer's convolutions.
    #[serde(deserialize_with = "parsed")]
    pub precision: Option<Precision>,
    /// `--device` of the convolutions.
    #[serde(deserialize_with = "parsed")]
    pub device: Option<DeviceChoice>,
}

/// The keys a job may have (besides `image` and `audio`), in the spelling of the CSV header; a test
/// checks that each is a field of [`JobOverrides`].
pub const COLUMNS: &[&str] = &[
    "name",
    "preprocess",
    "still",
    "pose_style",
    "expression_scale",
    "size",
    "batch_size",
    "seed",
    "ref_eyeblink",
    "ref_pose",
    "input_yaw",
    "input_pitch",
    "input_roll",
    "enhancer",
    "background_enhancer",
    "landmarks",
    "face_index",
    "face_threshold",
    "fallback",
    "use_blink",
    "precision",
    "device",
];

/// A key as [`JobOverrides`] names it: trimmed, lower case, dashes as underscores, the reference's
/// `source_image` / `driven_audio` as `image` / `audio`.
pub fn normalise_key(k: &str) -> String {
    match k.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "source_image" => "image".to_owned(),
        "driven_audio" => "audio".to_owned(),
        other => other.to_owned(),
    }
}

impl JobOverrides {
    /// Reads the values of one job from a key → value map (keys in any accepted spelling; JSON nulls
    /// and empty texts are "not given"). The error names the key and says what it needs.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, String> {
        let mut norm = Map::new();
        for (k, v) in map {
            let key = normalise_key(k);
            if key != "image" && key != "audio" && !COLUMNS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown option `{k}`; the options are image, audio, {}",
                    COLUMNS.join(", ")
                ));
            }
            if norm.insert(key, v.clone()).is_some() {
                return Err(format!("`{k}` is given twice"));
            }
        }
        serde_path_to_error::deserialize(Value::Object(norm)).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    /// The path-valued keys that are set (`image`, `audio`, `ref_eyeblink`, `ref_pose`, `landmarks`): a
    /// server that must not let a client name files on its disk refuses a job that sets any of them.
    pub fn paths_given(&self) -> Vec<&'static str> {
        [
            ("image", self.image.is_some()),
            ("audio", self.audio.is_some()),
            ("ref_eyeblink", self.ref_eyeblink.is_some()),
            ("ref_pose", self.ref_pose.is_some()),
            ("landmarks", self.landmarks.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// `base` with every value this sets; relative paths start at `dir`.
    pub fn apply(&self, base: &GenerateOptions, dir: &Path) -> GenerateOptions {
        let mut o = base.clone();
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| dir.join(p));
        fn set<T: Clone>(slot: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *slot = v.clone();
            }
        }
        fn set_some<T: Clone>(slot: &mut Option<T>, v: Option<T>) {
            if v.is_some() {
                *slot = v;
            }
        }
        set(&mut o.source_image, &path(&self.image));
        set(&mut o.driven_audio, &path(&self.audio));
        set_some(&mut o.ref_eyeblink, path(&self.ref_eyeblink));
        set_some(&mut o.ref_pose, path(&self.ref_pose));
        set_some(&mut o.landmarks, path(&self.landmarks));
        set(&mut o.preprocess, &self.preprocess);
        set(&mut o.still, &self.still);
        set(&mut o.use_blink, &self.use_blink);
        set(&mut o.pose_style, &self.pose_style);
        set(&mut o.expression_scale, &self.expression_scale);
        set(&mut o.size, &self.size);
        set(&mut o.batch_size, &self.batch_size);
        set(&mut o.seed, &self.seed);
        set(&mut o.face_index, &self.face_index);
        set(&mut o.face_threshold, &self.face_threshold);
        set(&mut o.fallback, &self.fallback);
        set(&mut o.precision, &self.precision);
        set(&mut o.device, &self.device);
        set_some(&mut o.enhancer, self.enhancer.clone());
        set_some(&mut o.background_enhancer, self.background_enhancer.clone());
        set_some(&mut o.input_yaw, self.input_yaw.clone());
        set_some(&mut o.input_pitch, self.input_pitch.clone());
        set_some(&mut o.input_roll, self.input_roll.clone());
        o
    }
}

/// A single value, as its text: a JSON string (trimmed; empty = not given), number or boolean.
fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(D::Error::custom(format!("`{other}` is not a single value"))),
    }
}

fn text<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(scalar(d)?.map(T::from))
}

fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    scalar(d)?.map(|s| s.parse().map_err(D::Error::custom)).transpose()
}

fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    scalar(d)?
        .map(|s| {
            let n: u64 = s
                .parse()
                .map_err(|_| D::Error::custom(format!("`{s}` is not a whole number")))?;
            T::try_from(n).map_err(|_| D::Error::custom(format!("`{s}` is too large")))
        })
        .transpose()
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    scalar(d)?
        .map(|s| {
            s.parse::<f32>()
                .map_err(|_| D::Error::custom(format!("`{s}` is not a number")))
        })
        .transpose()
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    scalar(d)?
        .map(|s| match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "on" => Ok(true),
            "0" | "false" | "no" | "n" | "off" => Ok(false),
            _ => Err(D::Error::custom(format!("`{s}` is not true/false"))),
        })
        .transpose()
}

fn angles<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
    let list = match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>(),
        Some(Value::Number(n)) => vec![n.to_string()],
        Some(Value::String(s)) => s
            .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(other) => return Err(D::Error::custom(format!("`{other}` is not a list of angles"))),
    };
    if list.is_empty() {
        return Ok(None);
    }
    list.iter()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| D::Error::custom(format!("`{t}` is not a number")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Result<JobOverrides, String> {
        JobOverrides::from_map(v.as_object().expect("an object"))
    }

    #[test]
    fn text_and_native_values_read_the_same() {
        let a = row(
            json!({"image": "a.png", "audio": "a.wav", "pose_style": "3", "still": "yes",
            "expression_scale": "1.5", "input_yaw": "0 20;-10", "fallback": "Still", "preprocess": "FULL"}),
        )
        .expect("text row");
        let b = row(
            json!({"source-image": "a.png", "driven_audio": "a.wav", "pose-style": 3, "still": true,
            "expression_scale": 1.5, "input_yaw": [0, 20, -10], "fallback": "still", "preprocess": "full"}),
        )
        .expect("native row");
        assert_eq!(a, b);
        assert_eq!(a.pose_style, Some(3));
        assert_eq!(a.input_yaw, Some(vec![0.0, 20.0, -10.0]));
        assert_eq!(a.fallback, Some(Fallback::Still));
        assert_eq!(a.preprocess, Some(PreprocessMode::Full));
    }

    #[test]
    fn empty_values_are_not_given() {
        let r = row(json!({"image": "a.png", "seed": "", "enhancer": "  ", "input_roll": null})).expect("row");
        assert_eq!(r.seed, None);
        assert_eq!(r.enhancer, None);
        assert_eq!(r.input_roll, None);
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let cases = [
            (json!({"pose_style": "x"}), "pose_style: `x` is not a whole number"),
            (json!({"pose_style": -1}), "pose_style: `-1` is not a whole number"),
            (json!({"size": 1e20}), "size: `1e+20` is not a whole number"),
            (
                json!({"pose_style": "99999999999"}),
                "pose_style: `99999999999` is too large",
            ),
            (json!({"still": "maybe"}), "still: `maybe` is not true/false"),
            (
                json!({"expression_scale": "big"}),
                "expression_scale: `big` is not a number",
            ),
            (json!({"input_yaw": "0 up"}), "input_yaw: `up` is not a number"),
            (json!({"fallback": "retry"}), "fallback: "),
            (
                json!({"preprocess": "zoom"}),
                "preprocess: unknown preprocess mode `zoom`",
            ),
            (json!({"colour": "red"}), "unknown option `colour`"),
            (json!({"seed": [1]}), "seed: `[1]` is not a single value"),
            (
                json!({"image": "a", "source_image": "b"}),
                "`source_image` is given twice",
            ),
        ];
        for (v, want) in cases {
            let e = row(v.clone()).expect_err("refused");
            assert!(e.starts_with(want), "{v}: {e:?} does not start with {want:?}");
        }
    }

    #[test]
    fn every_column_is_a_field() {
        for c in COLUMNS {
            let r = row(json!({ *c: "1" }));
            if let Err(e) = r {
                assert!(!e.starts_with("unknown option"), "column {c}: {e}");
            }
        }
        // And every field is a column: a full row serialises to exactly image, audio and COLUMNS.
        let v = serde_json::to_value(JobOverrides::default()).expect("serialises");
        let mut keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want: Vec<&str> = COLUMNS.iter().copied().chain(["image", "audio"]).collect();
        want.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn apply_sets_only_what_is_given_and_joins_relative_paths() {
        let base = GenerateOptions {
            seed: 7,
            still: true,
            ..GenerateOptions::default()
        };
        let r = row(json!({"image": "p/a.png", "audio": "/abs/a.wav", "ref_pose": "v.mp4", "seed": 3})).expect("row");
        let o = r.apply(&base, Path::new("jobs"));
        assert_eq!(o.source_image, Path::new("jobs/p/a.png"));
        assert_eq!(o.driven_audio, Path::new("/abs/a.wav"));
        assert_eq!(o.ref_pose.as_deref(), Some(Path::new("jobs/v.mp4")));
        assert_eq!(o.seed, 3);
        assert!(o.still, "unset values keep the base's");
        assert_eq!(r.paths_given(), ["image", "audio", "ref_pose"]);
        assert_eq!(JobOverrides::default().apply(&base, Path::new("x")), base);
    }
}
