//! `sadtalker batch`: many jobs with the models loaded once.
//!
//! - **Jobs** ([`load_jobs`]): a CSV file with a header (`image,audio`, then optional per-job option
//!   columns), a JSON list of objects with the same keys, or two folders whose files pair by name. Paths
//!   are relative to the CSV/JSON file.
//! - **Report** (`DIR/report.jsonl`, one JSON object per finished job, appended and flushed as each job
//!   ends): status, output, frames, seconds per stage, the error with its stage, kind, code and hint.
//! - **Resume**: each job has a key (SHA-256 of its input files' contents and its options); with
//!   `resume`, a job whose key has an `ok` record and whose video still exists is skipped, and so is one
//!   that failed on its inputs (same contents, same failure); other failures are retried.
//! - **Shards** (`--shard I/N`): job `k` belongs to shard `k mod N`; each shard writes
//!   `DIR/report.shard-I-of-N.jsonl`, and [`merge`] joins them into `DIR/report.jsonl`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::error::{ErrorKind, PipelineError, hint};
use crate::generate::{generate, timestamp};
use crate::models::Models;
use crate::options::GenerateOptions;
use crate::progress::Progress;

/// Why a batch could not start (a job list that cannot be used, an unwritable output folder).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The job list is unusable.
    #[error("{}: {reason}", path.display())]
    Jobs {
        /// The CSV/JSON file or folder.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad `--shard` value.
    #[error("--shard {0}: give I/N with 0 <= I < N, e.g. 0/4 (Kubernetes: $JOB_COMPLETION_INDEX/N)")]
    Shard(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_owned(),
        source,
    }
}

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

/// A shard selection `I/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0 <= index < count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = BatchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BatchError::Shard(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether job `index` belongs to this shard.
    pub fn takes(&self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// The shard's report file name.
    pub fn report_name(&self) -> String {
        format!("report.shard-{}-of-{}.jsonl", self.index, self.count)
    }
}

/// The per-job option columns a job list may have (besides `image` and `audio`), with underscores or
/// dashes.
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
    "landmarks",
    "face_index",
    "face_threshold",
    "fallback",
    "use_blink",
];

fn normalise_key(k: &str) -> String {
    match k.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "source_image" => "image".to_owned(),
        "driven_audio" => "audio".to_owned(),
        other => other.to_owned(),
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "job".into())
}

/// Reads the jobs. `base` holds the options common to all jobs (the command line); each row overrides
/// what it sets. Outputs go to `out_dir/<name>.mp4`.
pub fn load_jobs(source: &JobSource, base: &GenerateOptions, out_dir: &Path) -> Result<Vec<Job>, BatchError> {
    let rows: Vec<(Map<String, Value>, PathBuf)> = match source {
        JobSource::File(path) => {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
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
        let options = job_options(&row, &dir, base);
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

/// The options of one row: `base` with the row's values.
fn job_options(row: &Map<String, Value>, dir: &Path, base: &GenerateOptions) -> Result<GenerateOptions, String> {
    let mut o = base.clone();
    let text = |k: &str| -> Option<String> {
        row.get(k).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let path = |k: &str| text(k).map(|s| dir.join(s));
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
                "1" | "true" | "yes" | "y" => Ok(true),
                "0" | "false" | "no" | "n" => Ok(false),
                _ => Err(format!("{k} `{s}` is not true/false")),
            })
            .transpose()
    };
    let angles = |k: &str| -> Result<Option<Vec<f64>>, String> {
        match row.get(k) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| format!("{k}: not a number: {v}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => text(k)
                .map(|s| {
                    s.split(|c: char| c.is_whitespace() || c == ';' || c == ',')
                        .filter(|t| !t.is_empty())
                        .map(|t| t.parse::<f64>().map_err(|_| format!("{k}: `{t}` is not a number")))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose(),
        }
    };
    o.source_image = path("image").ok_or("no image")?;
    o.driven_audio = path("audio").ok_or("no audio")?;
    if let Some(p) = path("ref_eyeblink") {
        o.ref_eyeblink = Some(p);
    }
    if let Some(p) = path("ref_pose") {
        o.ref_pose = Some(p);
    }
    if let Some(p) = path("landmarks") {
        o.landmarks = Some(p);
    }
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
        o.enhancer = Some(s);
    }
    if let Some(s) = text("fallback") {
        o.fallback = match s.to_ascii_lowercase().as_str() {
            "none" => crate::Fallback::None,
            "still" => crate::Fallback::Still,
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

/// SHA-256 of a file's contents (hex), or of the error text when it cannot be read (so a missing file
/// still gives a stable key, and the job fails on its own).
fn file_hash(path: &Path) -> String {
    let mut h = Sha256::new();
    match File::open(path) {
        Ok(mut f) => {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(e) => {
                        h.update(format!("unreadable: {e}").as_bytes());
                        break;
                    }
                }
            }
        }
        Err(e) => h.update(format!("missing: {}", e.kind()).as_bytes()),
    }
    format!("{:x}", h.finalize())
}

/// The resume key of a job: its input files' contents and every option that changes the video (not
/// where it is written).
pub fn job_key(opts: &GenerateOptions) -> String {
    let mut o = opts.clone();
    let hashed = |p: &Path| PathBuf::from(format!("sha256:{}", file_hash(p)));
    o.source_image = hashed(&opts.source_image);
    o.driven_audio = hashed(&opts.driven_audio);
    o.ref_eyeblink = opts.ref_eyeblink.as_deref().map(hashed);
    o.ref_pose = opts.ref_pose.as_deref().map(hashed);
    o.landmarks = opts.landmarks.as_deref().map(hashed);
    o.output = None;
    o.result_dir = PathBuf::new();
    o.frames_dir = None;
    o.verbose = false;
    let canonical = serde_json::to_string(&o).unwrap_or_default();
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// The video was written.
    Ok,
    /// The still fallback was written (`fallback still`).
    Degraded,
    /// No video.
    Failed,
    /// Done by an earlier run (resume): not run again.
    Skipped,
}

/// A failed job's error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// The stage that failed (absent for an unusable row).
    pub stage: Option<String>,
    /// bad_input, model or internal.
    pub kind: ErrorKind,
    /// The problem code (`no_face`, `audio_too_short`, ...).
    pub code: String,
    /// The message.
    pub message: String,
    /// What to try.
    pub hint: String,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Position in the job list.
    pub job: usize,
    /// Output name.
    pub name: String,
    /// Resume key.
    pub key: String,
    /// The portrait.
    pub image: Option<PathBuf>,
    /// The speech.
    pub audio: Option<PathBuf>,
    /// How it ended.
    pub status: JobStatus,
    /// The video, when one was written.
    pub output: Option<PathBuf>,
    /// Frames written.
    pub frames: Option<u64>,
    /// Wall-clock seconds of the job.
    pub seconds: f64,
    /// Seconds per stage.
    #[serde(default)]
    pub stages: BTreeMap<String, f64>,
    /// The failure (failed jobs) or the degradation reason.
    pub error: Option<JobError>,
    /// Warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The shard that ran it.
    pub shard: Option<Shard>,
    /// When it finished (UTC, `YYYY_MM_DD_HH.MM.SS`).
    pub finished: String,
}

/// What a batch run did.
#[derive(Clone, Debug, Default)]
pub struct BatchSummary {
    /// A record per job of this run (skipped jobs included, with their earlier record's data).
    pub records: Vec<JobRecord>,
    /// The report file.
    pub report: PathBuf,
}

impl BatchSummary {
    /// Jobs with this status.
    pub fn count(&self, status: JobStatus) -> usize {
        self.records.iter().filter(|r| r.status == status).count()
    }
}

/// Options of a batch run.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Output folder (videos and the report).
    pub out_dir: PathBuf,
    /// Skip jobs an earlier run finished.
    pub resume: bool,
    /// Run only this shard's jobs.
    pub shard: Option<Shard>,
}

/// The report path of a run.
pub fn report_path(opts: &BatchOptions) -> PathBuf {
    opts.out_dir.join(match opts.shard {
        Some(s) => s.report_name(),
        None => "report.jsonl".to_owned(),
    })
}

/// Reads a report; unreadable lines are skipped (a line cut by a crash).
pub fn read_report(path: &Path) -> Result<Vec<JobRecord>, BatchError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(io(path))?;
        if let Ok(r) = serde_json::from_str::<JobRecord>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Called before and after each job: `(position in this run, jobs in this run, job, record when done)`.
pub type JobObserver<'a> = dyn FnMut(usize, usize, &Job, Option<&JobRecord>) + 'a;

/// Runs the jobs (this shard's, those not done yet), appending a record per finished job to the report.
/// One job's failure does not stop the others.
pub fn run_batch(
    models: &Models,
    jobs: &[Job],
    opts: &BatchOptions,
    progress: &mut dyn Progress,
    observe: &mut JobObserver<'_>,
) -> Result<BatchSummary, BatchError> {
    std::fs::create_dir_all(&opts.out_dir).map_err(io(&opts.out_dir))?;
    let report = report_path(opts);
    let done: HashMap<String, JobRecord> = if opts.resume {
        read_report(&report)?
            .into_iter()
            // Done: a video that still exists, or a bad-input failure (the key holds the inputs'
            // contents and the options, so the same key fails the same way; a fixed input is a new key).
            // Model and internal failures and degraded videos are retried.
            .filter(|r| match r.status {
                JobStatus::Ok => r.output.as_ref().is_some_and(|p| p.is_file()),
                JobStatus::Failed => r.error.as_ref().is_some_and(|e| e.kind == ErrorKind::BadInput),
                _ => false,
            })
            .map(|r| (r.key.clone(), r))
            .collect()
    } else {
        HashMap::new()
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(opts.resume)
        .truncate(!opts.resume)
        .open(&report)
        .map_err(io(&report))?;
    let mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| opts.shard.is_none_or(|s| s.takes(j.index)))
        .collect();
    let mut summary = BatchSummary {
        records: Vec::new(),
        report: report.clone(),
    };
    for (pos, job) in mine.iter().enumerate() {
        observe(pos, mine.len(), job, None);
        let key = match &job.options {
            Ok(o) => job_key(o),
            Err(e) => format!(
                "{:x}",
                Sha256::digest(format!("unusable row {}: {e}", job.index).as_bytes())
            ),
        };
        if let Some(prev) = done.get(&key) {
            let mut r = prev.clone();
            r.status = JobStatus::Skipped;
            observe(pos, mine.len(), job, Some(&r));
            summary.records.push(r);
            continue;
        }
        let started = Instant::now();
        let mut record = JobRecord {
            job: job.index,
            name: job.name.clone(),
            key,
            image: job.options.as_ref().ok().map(|o| o.source_image.clone()),
            audio: job.options.as_ref().ok().map(|o| o.driven_audio.clone()),
            status: JobStatus::Failed,
            output: None,
            frames: None,
            seconds: 0.0,
            stages: BTreeMap::new(),
            error: None,
            warnings: Vec::new(),
            shard: opts.shard,
            finished: String::new(),
        };
        match &job.options {
            Err(e) => {
                record.error = Some(JobError {
                    stage: None,
                    kind: ErrorKind::BadInput,
                    code: "bad_option".into(),
                    message: e.clone(),
                    hint: "fix the job's row in the job list".into(),
                })
            }
            Ok(o) => match generate(models, o, progress) {
                Ok(rep) => {
                    record.status = if rep.degraded.is_some() {
                        JobStatus::Degraded
                    } else {
                        JobStatus::Ok
                    };
                    record.output = Some(rep.output.clone());
                    record.frames = Some(rep.frames);
                    record.stages = rep.seconds.clone();
                    record.warnings = rep.warnings.clone();
                    record.error = rep.degraded.as_ref().map(|d| JobError {
                        stage: Some(d.stage.as_str().to_owned()),
                        kind: d.kind,
                        code: d.code.clone(),
                        message: d.reason.clone(),
                        hint: hint(&d.code).to_owned(),
                    });
                }
                Err(e) => record.error = Some(job_error(&e)),
            },
        }
        record.seconds = started.elapsed().as_secs_f64();
        record.finished = timestamp(SystemTime::now());
        let mut line = serde_json::to_string(&record).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string());
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io(&report))?;
        file.flush().map_err(io(&report))?;
        observe(pos, mine.len(), job, Some(&record));
        summary.records.push(record);
    }
    Ok(summary)
}

fn job_error(e: &PipelineError) -> JobError {
    JobError {
        stage: Some(e.stage.as_str().to_owned()),
        kind: e.kind(),
        code: e.code().to_owned(),
        message: e.to_string(),
        hint: hint(e.code()).to_owned(),
    }
}

/// The last record of each job, in job order.
pub fn latest_per_job(records: impl IntoIterator<Item = JobRecord>) -> Vec<JobRecord> {
    let mut by_job: BTreeMap<usize, JobRecord> = BTreeMap::new();
    for r in records {
        by_job.insert(r.job, r);
    }
    by_job.into_values().collect()
}

/// What [`merge`] did.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The merged report.
    pub report: PathBuf,
    /// The last record of every job, in job order.
    pub records: Vec<JobRecord>,
    /// Shard reports read.
    pub shards: Vec<PathBuf>,
    /// Shards of `0..N` with no report (their jobs are absent).
    pub missing_shards: Vec<usize>,
}

/// Joins `dir/report.shard-I-of-N.jsonl` into `dir/report.jsonl` (the last record of each job, in job
/// order), written through a temporary file.
pub fn merge(dir: &Path) -> Result<Merged, BatchError> {
    let mut shards: Vec<(usize, usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(rest) = name
            .strip_prefix("report.shard-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            && let Some((i, n)) = rest.split_once("-of-")
            && let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>())
        {
            shards.push((i, n, p));
        }
    }
    if shards.is_empty() {
        return Err(BatchError::Jobs {
            path: dir.to_owned(),
            reason: "no shard reports (report.shard-I-of-N.jsonl) here; run `sadtalker batch ... --shard I/N --out \
                     DIR` first"
                .into(),
        });
    }
    let counts: HashSet<usize> = shards.iter().map(|s| s.1).collect();
    if counts.len() > 1 {
        return Err(BatchError::Jobs {
            path: dir.to_owned(),
            reason: format!("shard reports of different splits ({counts:?} shards); keep one split per folder"),
        });
    }
    shards.sort();
    let n = shards[0].1;
    let present: HashSet<usize> = shards.iter().map(|s| s.0).collect();
    let missing_shards = (0..n).filter(|i| !present.contains(i)).collect();
    let mut all = Vec::new();
    for (_, _, p) in &shards {
        all.extend(read_report(p)?);
    }
    let records = latest_per_job(all);
    let report = dir.join("report.jsonl");
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    for r in &records {
        let line = serde_json::to_string(r).unwrap_or_default();
        writeln!(tmp, "{line}").map_err(io(&report))?;
    }
    tmp.persist(&report).map_err(|e| io(&report)(e.error))?;
    Ok(Merged {
        report,
        records,
        shards: shards.into_iter().map(|s| s.2).collect(),
        missing_shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_jobs_deterministically() {
        let s: Shard = "1/3".parse().unwrap();
        let taken: Vec<usize> = (0..10).filter(|&i| s.takes(i)).collect();
        assert_eq!(taken, vec![1, 4, 7]);
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let all: usize = (0..3)
            .map(|i| (0..10).filter(|&k| Shard { index: i, count: 3 }.takes(k)).count())
            .sum();
        assert_eq!(all, 10);
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

    #[test]
    fn keys_follow_contents_and_options_not_output() {
        let dir = tempfile::tempdir().unwrap();
        let (img, wav) = (dir.path().join("a.png"), dir.path().join("a.wav"));
        std::fs::write(&img, b"image").unwrap();
        std::fs::write(&wav, b"audio").unwrap();
        let o = GenerateOptions {
            source_image: img.clone(),
            driven_audio: wav.clone(),
            ..GenerateOptions::default()
        };
        let k = job_key(&o);
        let moved = GenerateOptions {
            output: Some(dir.path().join("elsewhere.mp4")),
            ..o.clone()
        };
        assert_eq!(job_key(&moved), k);
        let other = GenerateOptions {
            pose_style: 2,
            ..o.clone()
        };
        assert_ne!(job_key(&other), k);
        std::fs::write(&img, b"image2").unwrap();
        assert_ne!(job_key(&o), k);
    }
}
