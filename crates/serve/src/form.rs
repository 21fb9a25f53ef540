//! A submission's option fields → the job's [`GenerateOptions`]: exactly the batch job list's columns
//! ([`JobOverrides`], by the same names, dashes or underscores), merged over the server's base options.
//! File-valued options (`landmarks`, `ref_eyeblink`, `ref_pose`) and the inputs come only as uploaded
//! files: a text field can never name a file on the server.

use std::collections::BTreeMap;
use std::path::Path;

use sadtalker_pipeline::{GenerateOptions, JobOverrides};
use serde_json::{Map, Value};

/// File parts of a submission (their content is stored under a server-chosen name).
pub const FILE_FIELDS: [&str; 5] = ["image", "audio", "landmarks", "ref_eyeblink", "ref_pose"];

/// A field name as the batch columns spell it (`pose-style` → `pose_style`, `source_image` → `image`).
pub fn normalise(name: &str) -> String {
    sadtalker_pipeline::normalise_key(name)
}

/// `base` with the text `fields` and the stored `files` (role → path) of a job.
pub fn options(
    base: &GenerateOptions,
    fields: &BTreeMap<String, String>,
    files: &BTreeMap<String, &Path>,
) -> Result<GenerateOptions, String> {
    let map: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let mut ov = JobOverrides::from_map(&map)?;
    let named = ov.paths_given();
    if !named.is_empty() {
        return Err(format!(
            "`{}` must be sent as a file, not as text naming a path",
            named.join("`, `")
        ));
    }
    let file = |k: &str| files.get(k).map(|p| p.to_path_buf());
    ov.image = Some(file("image").ok_or("no `image` file part")?);
    ov.audio = Some(file("audio").ok_or("no `audio` file part")?);
    ov.landmarks = file("landmarks");
    ov.ref_eyeblink = file("ref_eyeblink");
    ov.ref_pose = file("ref_pose");
    // The paths are absolute already; `name` only labels the job.
    let mut o = ov.apply(base, Path::new(""));
    o.landmarks = ov.landmarks.clone();
    o.ref_eyeblink = ov.ref_eyeblink.clone();
    o.ref_pose = ov.ref_pose.clone();
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_override_the_base() {
        let fields = BTreeMap::from([
            ("preprocess".to_owned(), "full".to_owned()),
            ("still".to_owned(), "true".to_owned()),
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
            landmarks: Some("/elsewhere/lm.txt".into()),
            ..GenerateOptions::default()
        };
        let o = options(&base, &fields, &files).expect("options");
        assert!(o.still && o.pose_style == 3 && o.seed == 7);
        assert_eq!(o.input_yaw, Some(vec![-10.0, 10.0]));
        assert_eq!(o.source_image, Path::new("/j/image.png"));
        assert_eq!(o.landmarks, None, "only the job's own files");
        let bad = BTreeMap::from([("colour".to_owned(), "red".to_owned())]);
        assert!(
            options(&base, &bad, &files)
                .expect_err("unknown")
                .contains("unknown option")
        );
        let bad = BTreeMap::from([("seed".to_owned(), "x".to_owned())]);
        assert!(options(&base, &bad, &files).is_err());
        let path = BTreeMap::from([("ref_pose".to_owned(), "/etc/passwd".to_owned())]);
        assert!(options(&base, &path, &files).expect_err("a path").contains("as a file"));
    }
}
