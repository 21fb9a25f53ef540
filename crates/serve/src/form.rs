//! A submission's option fields → the job's [`GenerateOptions`]: the batch job list's columns, by the
//! same names (dashes or underscores), merged over the server's base options.

use std::collections::BTreeMap;
use std::path::Path;

use sadtalker_pipeline::{Fallback, GenerateOptions};

/// File parts of a submission (their content is stored under a server-chosen name).
pub const FILE_FIELDS: [&str; 5] = ["image", "audio", "landmarks", "ref_eyeblink", "ref_pose"];

/// Text parts: the batch columns that are not files.
pub const TEXT_FIELDS: [&str; 16] = [
    "name",
    "preprocess",
    "still",
    "pose_style",
    "expression_scale",
    "size",
    "batch_size",
    "seed",
    "input_yaw",
    "input_pitch",
    "input_roll",
    "enhancer",
    "face_index",
    "face_threshold",
    "fallback",
    "use_blink",
];

/// A field name as the batch columns spell it: lower case, underscores.
pub fn normalise(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

/// `base` with the text `fields` and the stored `files` (role → path) of a job.
pub fn options(
    base: &GenerateOptions,
    fields: &BTreeMap<String, String>,
    files: &BTreeMap<String, &Path>,
) -> Result<GenerateOptions, String> {
    let mut o = base.clone();
    // An HTML form sends every field; an empty one means "the server's default".
    let text = |k: &str| fields.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let num = |k: &str| -> Result<Option<f64>, String> {
        text(k)
            .map(|s| s.parse::<f64>().map_err(|_| format!("{k} `{s}` is not a number")))
            .transpose()
    };
    let whole = |k: &str| -> Result<Option<u64>, String> {
        text(k)
            .map(|s| s.parse::<u64>().map_err(|_| format!("{k} `{s}` is not a whole number")))
            .transpose()
    };
    let flag = |k: &str| -> Result<Option<bool>, String> {
        text(k)
            .map(|s| match s.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "y" | "on" => Ok(true),
                "0" | "false" | "no" | "n" | "off" => Ok(false),
                _ => Err(format!("{k} `{s}` is not true/false")),
            })
            .transpose()
    };
    let angles = |k: &str| -> Result<Option<Vec<f64>>, String> {
        text(k)
            .map(|s| {
                s.split(|c: char| c.is_whitespace() || c == ';' || c == ',')
                    .filter(|t| !t.is_empty())
                    .map(|t| t.parse::<f64>().map_err(|_| format!("{k}: `{t}` is not a number")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
    };
    for k in fields.keys() {
        if !TEXT_FIELDS.contains(&k.as_str()) {
            return Err(format!(
                "unknown field `{k}`; the fields are the files {} and the options {}",
                FILE_FIELDS.join(", "),
                TEXT_FIELDS.join(", ")
            ));
        }
    }
    o.source_image = files.get("image").ok_or("no `image` file part")?.to_path_buf();
    o.driven_audio = files.get("audio").ok_or("no `audio` file part")?.to_path_buf();
    o.landmarks = files.get("landmarks").map(|p| p.to_path_buf());
    o.ref_eyeblink = files.get("ref_eyeblink").map(|p| p.to_path_buf());
    o.ref_pose = files.get("ref_pose").map(|p| p.to_path_buf());
    if let Some(s) = text("preprocess") {
        o.preprocess = s.parse()?;
    }
    if let Some(v) = flag("still")? {
        o.still = v;
    }
    if let Some(v) = flag("use_blink")? {
        o.use_blink = v;
    }
    if let Some(v) = whole("pose_style")? {
        o.pose_style = u32::try_from(v).map_err(|_| "pose_style is too large".to_owned())?;
    }
    if let Some(v) = num("expression_scale")? {
        o.expression_scale = v as f32;
    }
    if let Some(v) = whole("size")? {
        o.size = u32::try_from(v).map_err(|_| "size is too large".to_owned())?;
    }
    if let Some(v) = whole("batch_size")? {
        o.batch_size = usize::try_from(v).map_err(|_| "batch_size is too large".to_owned())?;
    }
    if let Some(v) = whole("seed")? {
        o.seed = v;
    }
    if let Some(v) = whole("face_index")? {
        o.face_index = usize::try_from(v).map_err(|_| "face_index is too large".to_owned())?;
    }
    if let Some(v) = num("face_threshold")? {
        o.face_threshold = v as f32;
    }
    if let Some(s) = text("enhancer") {
        o.enhancer = (!s.eq_ignore_ascii_case("none")).then(|| s.to_owned());
    }
    if let Some(s) = text("fallback") {
        o.fallback = match s.to_ascii_lowercase().as_str() {
            "none" => Fallback::None,
            "still" => Fallback::Still,
            other => return Err(format!("fallback `{other}`: none or still")),
        };
    }
    if let Some(v) = angles("input_yaw")? {
        o.input_yaw = Some(v);
    }
    if let Some(v) = angles("input_pitch")? {
        o.input_pitch = Some(v);
    }
    if let Some(v) = angles("input_roll")? {
        o.input_roll = Some(v);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_override_the_base() {
        let fields = BTreeMap::from([
            ("preprocess".to_owned(), "full".to_owned()),
            ("still".to_owned(), "on".to_owned()),
            ("pose_style".to_owned(), "3".to_owned()),
            ("seed".to_owned(), String::new()),
            ("input_yaw".to_owned(), "-10, 10".to_owned()),
        ]);
        let files = BTreeMap::from([
            ("image".to_owned(), Path::new("/j/image.png")),
            ("audio".to_owned(), Path::new("/j/audio.wav")),
        ]);
        let base = GenerateOptions {
            seed: 7,
            ..GenerateOptions::default()
        };
        let o = options(&base, &fields, &files).expect("options");
        assert!(o.still && o.pose_style == 3 && o.seed == 7);
        assert_eq!(o.input_yaw, Some(vec![-10.0, 10.0]));
        assert_eq!(o.source_image, Path::new("/j/image.png"));
        let bad = BTreeMap::from([("colour".to_owned(), "red".to_owned())]);
        assert!(
            options(&base, &bad, &files)
                .expect_err("unknown")
                .contains("unknown field")
        );
        let bad = BTreeMap::from([("seed".to_owned(), "x".to_owned())]);
        assert!(options(&base, &bad, &files).is_err());
    }
}
