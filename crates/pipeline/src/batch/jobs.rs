//! The job list: a CSV file, a JSON list, or two folders paired by name. Each row's values are a
//! [`JobOverrides`] merged over the command line's options (one parser for every source).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{BatchError, io};
use crate::options::GenerateOptions;
use crate::overrides::{COLUMNS, JobOverrides, normalise_key};

/// Where the jobs come from.
#[derive(Clone, Debug)]
pub enum JobSource {
    /// A `.csv` or `.json` file.
    File(PathBuf),
    /// Portraits and speech files in two folders, paired by file name (without extension).
    Folders {
        /// The portraits.
        images: PathBuf,
        /// The speech files.
        audio: PathBuf,
    },
}

/// One job of a batch.
#[derive(Clone, Debug)]
pub struct Job {
    /// Position in the job list (0-based); decides the shard.
    pub index: usize,
    /// Output name (the video is `<out>/<name>.mp4`), unique in the batch.
    pub name: String,
    /// The options, paths resolved; `Err` when the row's options are unusable (the job then fails
    /// without stopping the others).
    pub options: Result<GenerateOptions, String>,
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into())
}

/// Largest job list read: it is held as text and as parsed rows (several times its size).
pub const MAX_JOB_LIST_BYTES: u64 = 64 << 20;

/// Reads the jobs. `base` holds the options common to all jobs (the command line); each row overrides
/// what it sets. Outputs go to `out_dir/<name>.mp4`.
pub fn load_jobs(source: &JobSource, base: &GenerateOptions, out_dir: &Path) -> Result<Vec<Job>, BatchError> {
    let rows: Vec<(Map<String, Value>, PathBuf)> = match source {
        JobSource::File(path) => {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let len = std::fs::metadata(path).map_err(io(path))?.len();
            if len > MAX_JOB_LIST_BYTES {
                return Err(BatchError::Jobs {
                    path: path.clone(),
                    reason: format!(
                        "the job list is {len} bytes, over the {} MiB this reader accepts (a million jobs fit in \
                         less); is it the right file? Split it into several batches",
                        MAX_JOB_LIST_BYTES >> 20
                    ),
                });
            }
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            let is_json =
                path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) || text.trim_start().starts_with('[');
            let rows = if is_json {
                json_rows(path, &text)?
            } else {
                csv_rows(path, &text)?
            };
            rows.into_iter().map(|r| (r, dir.clone())).collect()
        }
        JobSource::Folders { images, audio } => folder_rows(images, audio)?,
    };
    if rows.is_empty() {
        return Err(BatchError::Jobs {
            path: match source {
                JobSource::File(p) => p.clone(),
                JobSource::Folders { images, .. } => images.clone(),
            },
            reason: "no jobs".into(),
        });
    }
    let mut used: HashSet<String> = HashSet::new();
    let mut jobs = Vec::with_capacity(rows.len());
    for (index, (row, dir)) in rows.into_iter().enumerate() {
        let options = JobOverrides::from_map(&row).and_then(|r| {
            if r.image.is_none() {
                return Err("no image".to_owned());
            }
            if r.audio.is_none() {
                return Err("no audio".to_owned());
            }
            Ok(r.apply(base, &dir))
        });
        let wanted = match row.get("name").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
            Some(n) => sanitize(n),
            None => match &options {
                Ok(o) => {
                    let (i, a) = (stem(&o.source_image), stem(&o.driven_audio));
                    if i == a { i } else { format!("{i}__{a}") }
                }
                Err(_) => format!("job{index}"),
            },
        };
        let mut name = wanted.clone();
        if !used.insert(name.clone()) {
            name = format!("{wanted}_{index}");
            used.insert(name.clone());
        }
        let options = options.map(|mut o| {
            o.output = Some(out_dir.join(format!("{name}.mp4")));
            o
        });
        jobs.push(Job { index, name, options });
    }
    Ok(jobs)
}

/// Output names are file names: keep letters, digits, `-`, `_`, `.`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("job{s}")
    } else {
        s
    }
}

fn check_columns<'a>(path: &Path, keys: impl Iterator<Item = &'a String>) -> Result<(), BatchError> {
    for k in keys {
        if k != "image" && k != "audio" && !COLUMNS.contains(&k.as_str()) {
            return Err(BatchError::Jobs {
                path: path.to_owned(),
                reason: format!(
                    "unknown column `{k}`; the columns are image, audio, {}",
                    COLUMNS.join(", ")
                ),
            });
        }
    }
    Ok(())
}

fn csv_rows(path: &Path, text: &str) -> Result<Vec<Map<String, Value>>, BatchError> {
    let bad = |reason: String| BatchError::Jobs {
        path: path.to_owned(),
        reason,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("cannot read the header: {e}")))?
        .iter()
        .map(normalise_key)
        .collect();
    check_columns(path, header.iter())?;
    for need in ["image", "audio"] {
        if !header.iter().any(|h| h == need) {
            return Err(bad(format!(
                "the header needs an `{need}` column (the first line names the columns: image,audio[,preprocess,...])"
            )));
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let mut row = Map::new();
        for (k, v) in header.iter().zip(record.iter()) {
            if !v.is_empty() {
                row.insert(k.clone(), Value::String(v.to_owned()));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn json_rows(path: &Path, text: &str) -> Result<Vec<Map<String, Value>>, BatchError> {
    let bad = |reason: String| BatchError::Jobs {
        path: path.to_owned(),
        reason,
    };
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let list = v
        .as_array()
        .ok_or_else(|| bad("a JSON job list is a list of objects: [{\"image\": ..., \"audio\": ...}, ...]".into()))?;
    let mut rows = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| bad(format!("item {i} is not an object")))?;
        let row: Map<String, Value> = obj
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (normalise_key(k), v.clone()))
            .collect();
        check_columns(path, row.keys())?;
        rows.push(row);
    }
    Ok(rows)
}

const IMAGE_EXT: &[&str] = sadtalker_preprocess::io::IMAGE_EXTENSIONS;
const AUDIO_EXT: &[&str] = &["wav", "flac", "mp3", "ogg", "m4a", "mp4"];

/// Job rows (column → value) with the folder their relative paths start from.
type Rows = Vec<(Map<String, Value>, PathBuf)>;

fn folder_rows(images: &Path, audio: &Path) -> Result<Rows, BatchError> {
    let list = |dir: &Path, exts: &[&str]| -> Result<BTreeMap<String, PathBuf>, BatchError> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let p = e.map_err(io(dir))?.path();
            let ext = p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
            if p.is_file() && ext.is_some_and(|e| exts.contains(&e.as_str())) {
                out.insert(stem(&p), p);
            }
        }
        Ok(out)
    };
    let imgs = list(images, IMAGE_EXT)?;
    let auds = list(audio, AUDIO_EXT)?;
    let unpaired: Vec<String> = imgs
        .keys()
        .filter(|k| !auds.contains_key(*k))
        .chain(auds.keys().filter(|k| !imgs.contains_key(*k)))
        .cloned()
        .collect();
    if !unpaired.is_empty() {
        return Err(BatchError::Jobs {
            path: images.to_owned(),
            reason: format!(
                "these names have a portrait or a speech file but not both: {}; files pair by name \
                 (alice.png with alice.wav)",
                unpaired.join(", ")
            ),
        });
    }
    Ok(imgs
        .into_iter()
        .map(|(k, img)| {
            let mut row = Map::new();
            row.insert("image".into(), Value::String(img.to_string_lossy().into_owned()));
            row.insert("audio".into(), Value::String(auds[&k].to_string_lossy().into_owned()));
            row.insert("name".into(), Value::String(k));
            (row, PathBuf::new())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_job_list_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("jobs.csv");
        // Sparse: 65 MiB of nothing, without writing it.
        std::fs::File::create(&csv)
            .unwrap()
            .set_len(MAX_JOB_LIST_BYTES + 1)
            .unwrap();
        let e = load_jobs(&JobSource::File(csv), &GenerateOptions::default(), dir.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("jobs.csv") && msg.contains("over the 64 MiB"), "{msg}");
    }

    #[test]
    fn csv_rows_resolve_paths_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("jobs.csv");
        std::fs::write(
            &csv,
            "image,audio,preprocess,still,pose_style,input_yaw,name\n\
             a.png,a.wav,full,yes,3,\"10 -10\",\n\
             b.png,s.wav,,,,,custom name\n\
             a.png,a.wav,,,x,,\n",
        )
        .unwrap();
        let out = dir.path().join("out");
        let jobs = load_jobs(&JobSource::File(csv), &GenerateOptions::default(), &out).unwrap();
        assert_eq!(jobs.len(), 3);
        let o = jobs[0].options.as_ref().unwrap();
        assert_eq!(o.source_image, dir.path().join("a.png"));
        assert_eq!(o.preprocess, sadtalker_preprocess::PreprocessMode::Full);
        assert!(o.still);
        assert_eq!(o.pose_style, 3);
        assert_eq!(o.input_yaw, Some(vec![10.0, -10.0]));
        assert_eq!(jobs[0].name, "a");
        assert_eq!(o.output, Some(out.join("a.mp4")));
        assert_eq!(jobs[1].name, "custom_name");
        assert!(jobs[2].options.as_ref().unwrap_err().contains("pose_style"));
        // Unknown columns are refused (a typo would silently do nothing).
        let csv = dir.path().join("typo.csv");
        std::fs::write(&csv, "image,audio,pose_styel\na.png,a.wav,1\n").unwrap();
        let e = load_jobs(&JobSource::File(csv), &GenerateOptions::default(), &out).unwrap_err();
        assert!(e.to_string().contains("pose_styel"), "{e}");
    }

    #[test]
    fn json_lists_and_folder_pairs() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("jobs.json");
        std::fs::write(
            &j,
            r#"[{"image": "x.png", "audio": "y.wav", "size": 512, "input_roll": [5, -5]},
                {"source_image": "x.png", "driven_audio": "y.wav"}]"#,
        )
        .unwrap();
        let jobs = load_jobs(&JobSource::File(j), &GenerateOptions::default(), dir.path()).unwrap();
        assert_eq!(jobs[0].options.as_ref().unwrap().size, 512);
        assert_eq!(jobs[0].options.as_ref().unwrap().input_roll, Some(vec![5.0, -5.0]));
        // Same output name twice: the second is made unique.
        assert_eq!(jobs[0].name, "x__y");
        assert_eq!(jobs[1].name, "x__y_1");

        let (imgs, auds) = (dir.path().join("i"), dir.path().join("a"));
        std::fs::create_dir_all(&imgs).unwrap();
        std::fs::create_dir_all(&auds).unwrap();
        for f in ["i/bob.png", "i/amy.jpg", "a/amy.wav", "a/bob.mp3", "a/notes.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let src = JobSource::Folders {
            images: imgs.clone(),
            audio: auds.clone(),
        };
        let jobs = load_jobs(&src, &GenerateOptions::default(), dir.path()).unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["amy", "bob"]);
        std::fs::write(dir.path().join("i/carl.png"), b"x").unwrap();
        let e = load_jobs(&src, &GenerateOptions::default(), dir.path()).unwrap_err();
        assert!(e.to_string().contains("carl"), "{e}");
    }
}
