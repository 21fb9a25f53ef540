//! `sadtalker batch`: many portrait + speech jobs with the models loaded once, a JSON-lines report, resume
//! and shards; `sadtalker batch merge` joins the shards' reports. A thin layer over
//! `sadtalker_pipeline::batch`.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use sadtalker_pipeline::batch::{
    BatchError, BatchOptions, JobRecord, JobSource, JobStatus, Shard, load_jobs, run_batch,
};
use sadtalker_pipeline::{Fallback, GenerateOptions, JobOverrides};
use sadtalker_preprocess::PreprocessMode;
use serde_json::json;

use crate::commands::generate::{FallbackArg, ModelArgs, SourceCacheArg, StageBar};
use crate::exit::{Failure, Kind};

#[derive(Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Job lists:
  CSV with a header: image,audio[,name,preprocess,still,pose_style,expression_scale,size,batch_size,seed,
    ref_eyeblink,ref_pose,input_yaw,input_pitch,input_roll,enhancer,background_enhancer,landmarks,face_index,
    face_threshold,fallback,use_blink,precision,device]; paths are relative to the CSV file. A JSON list of objects with the same keys.
    Or two folders (IMAGES AUDIO) whose files pair by name (alice.png + alice.wav).
Examples:
  sadtalker batch jobs.csv --out results/
  sadtalker batch portraits/ speeches/ --out results/ --preprocess full --still
  sadtalker batch jobs.csv --out results/ --shard $SLURM_ARRAY_TASK_ID/8 --resume --offline || [ $? -eq 6 ]
  sadtalker batch merge results/    (once every shard is done; README: Scaling out)
Exit codes: 0 every job ok, 6 some jobs failed or were degraded (see DIR/report.jsonl), 2 --out blocked by a
file, 3 unusable job list, 4 model files missing, 130/143 stopped by Ctrl-C/SIGTERM (the finished jobs'
records are kept; rerun with --resume).
Report: one whole line per job (one write under flock), so batches running into one --out at once never
mix their lines; a line cut by a crash is skipped with a warning and removed before the next record."
)]
pub struct BatchArgs {
    #[command(subcommand)]
    cmd: Option<BatchCmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum BatchCmd {
    /// Join the shard reports of DIR (report.shard-I-of-N.jsonl) into DIR/report.jsonl.
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// The output folder the shards wrote to.
    dir: PathBuf,
    /// Print the merged result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RunArgs {
    /// A CSV or JSON job list, or two folders (portraits, speech files) paired by file name.
    #[arg(value_name = "JOBS", num_args = 1..=2, required = true)]
    jobs: Vec<PathBuf>,
    /// Output folder: the videos (<name>.mp4) and report.jsonl.
    #[arg(long, value_name = "DIR", required = true)]
    out: Option<PathBuf>,
    /// Skip jobs an earlier run finished (same input contents and options); retry the rest.
    #[arg(long)]
    resume: bool,
    /// Run only shard I of N (jobs k with k mod N = I), writing DIR/report.shard-I-of-N.jsonl.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Default --preprocess of the jobs (a `preprocess` column overrides it).
    #[arg(long, value_parser = parse_preprocess)]
    preprocess: Option<PreprocessMode>,
    /// Default --still.
    #[arg(long)]
    still: bool,
    /// Default face render size.
    #[arg(long)]
    size: Option<u32>,
    /// Default --pose-style.
    #[arg(long, alias = "pose_style")]
    pose_style: Option<u32>,
    /// Default --expression-scale.
    #[arg(long, alias = "expression_scale")]
    expression_scale: Option<f32>,
    /// Default --batch-size.
    #[arg(long, alias = "batch_size")]
    batch_size: Option<usize>,
    /// Default --precision (fp32 or bf16).
    #[arg(long, value_parser = crate::commands::generate::parse_precision, value_name = "P")]
    precision: Option<sadtalker_pipeline::Precision>,
    /// Default --device (auto, cpu, vulkan, metal, cuda).
    #[arg(long, value_parser = crate::commands::generate::parse_device, value_name = "D")]
    device: Option<sadtalker_pipeline::DeviceChoice>,
    /// Default --seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Default --enhancer.
    #[arg(long)]
    enhancer: Option<String>,
    /// Default --fallback.
    #[arg(long, value_enum)]
    fallback: Option<FallbackArg>,
    #[command(flatten)]
    cache: SourceCacheArg,
    #[command(flatten)]
    models: ModelArgs,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON on stdout (no progress output).
    #[arg(long)]
    json: bool,
}

fn parse_preprocess(s: &str) -> Result<PreprocessMode, String> {
    s.parse()
}

fn batch_failure(e: BatchError) -> Failure {
    let kind = match &e {
        BatchError::Io { .. } | BatchError::Jobs { .. } | BatchError::Shard(_) => Kind::BadInput,
    };
    Failure::new(kind, e)
}

/// Runs `sadtalker batch`.
pub fn run(args: BatchArgs) -> Result<(), Failure> {
    match args.cmd {
        Some(BatchCmd::Merge(m)) => merge(m),
        None => run_jobs(args.run),
    }
}

fn run_jobs(args: RunArgs) -> Result<(), Failure> {
    let out = args
        .out
        .clone()
        .ok_or_else(|| Failure::new(Kind::BadInput, anyhow!("--out DIR is required")))?;
    // Before the job list and the models: a file where the output folder must be.
    sadtalker_pipeline::outputs::check_folder("--out", &out).map_err(crate::commands::generate::blocked_failure)?;
    let shard: Option<Shard> = args
        .shard
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(batch_failure)?;
    let source = match args.jobs.as_slice() {
        [file] if file.is_dir() => {
            return Err(Failure::new(
                Kind::BadInput,
                anyhow!(
                    "{} is a folder: give a CSV/JSON job list, or two folders (portraits, speech files)",
                    file.display()
                ),
            ));
        }
        [file] => JobSource::File(file.clone()),
        [images, audio] => JobSource::Folders {
            images: images.clone(),
            audio: audio.clone(),
        },
        _ => {
            return Err(Failure::new(
                Kind::BadInput,
                anyhow!("give one job list or two folders"),
            ));
        }
    };
    // The command line's per-job values are the jobs' defaults: the same type a CSV row or JSON job fills.
    let defaults = JobOverrides {
        preprocess: args.preprocess,
        still: args.still.then_some(true),
        size: args.size,
        pose_style: args.pose_style,
        expression_scale: args.expression_scale,
        batch_size: args.batch_size,
        precision: args.precision,
        device: args.device,
        seed: args.seed,
        enhancer: args.enhancer.clone(),
        fallback: args.fallback.map(Fallback::from),
        ..JobOverrides::default()
    };
    let base = defaults.apply(&GenerateOptions::default(), Path::new(""));
    let jobs = load_jobs(&source, &base, &out).map_err(batch_failure)?;
    let quiet = args.quiet || args.json;
    let models = args.models.models(quiet)?;
    let models = args.cache.apply(models);
    let mut bar = StageBar::new(!quiet);
    let shown = bar.clone();
    let mut observe = |pos: usize, n: usize, job: &sadtalker_pipeline::batch::Job, rec: Option<&JobRecord>| match rec {
        None => shown.set_prefix(format!("[{}/{}] {}: ", pos + 1, n, job.name)),
        Some(r) => {
            let what = match (&r.status, &r.error) {
                (JobStatus::Ok, _) => format!("ok ({:.1} s)", r.seconds),
                (JobStatus::Skipped, _) => "skipped (done by an earlier run)".to_owned(),
                (s, Some(e)) => format!("{} [{}]: {}", status_name(*s), e.code, first_line(&e.message)),
                (s, None) => status_name(*s).to_owned(),
            };
            shown.println(&format!("[{}/{}] {}: {what}", pos + 1, n, job.name));
        }
    };
    let summary = run_batch(
        &models,
        &jobs,
        &BatchOptions {
            out_dir: out.clone(),
            resume: args.resume,
            shard,
        },
        &mut bar,
        &mut observe,
    );
    bar.finish();
    let summary = summary.map_err(batch_failure)?;
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
    let failed = summary.count(JobStatus::Failed);
    let degraded = summary.count(JobStatus::Degraded);
    let skipped_failed = summary
        .records
        .iter()
        .filter(|r| r.status == JobStatus::Skipped && r.error.is_some())
        .count();
    if args.json {
        let v = json!({
            "report": summary.report,
            "jobs": summary.records.len(),
            "ok": summary.count(JobStatus::Ok),
            "failed": failed,
            "degraded": degraded,
            "skipped": summary.count(JobStatus::Skipped),
            "cancelled": summary.cancelled,
            "warnings": summary.warnings,
            "records": summary.records,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_table(&summary.records);
        println!("report: {}", summary.report.display());
    }
    if summary.cancelled {
        let signal = crate::signals::received().unwrap_or(crate::signals::SIGINT);
        return Err(Failure::new(
            Kind::of_signal(signal),
            anyhow!(
                "stopped after {} job(s): {} has their records; the stopped job left no file behind. Run the \
                 same command with --resume to do the rest",
                summary.records.len(),
                summary.report.display()
            ),
        ));
    }
    partial_exit(
        failed + degraded + skipped_failed,
        summary.records.len(),
        &summary.report,
    )
}

/// The exit status of a finished batch: 0 when every job is fine, else the partial code.
fn partial_exit(bad: usize, total: usize, report: &Path) -> Result<(), Failure> {
    if bad == 0 {
        return Ok(());
    }
    Err(Failure::new(
        Kind::Partial,
        anyhow!(
            "{bad} of {total} job(s) failed or were degraded; see {} (fix the inputs and re-run with --resume: \
             finished jobs are skipped)",
            report.display()
        ),
    ))
}

fn status_name(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Ok => "ok",
        JobStatus::Degraded => "degraded",
        JobStatus::Failed => "failed",
        JobStatus::Skipped => "skipped",
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The summary table, then one troubleshooting hint per error code seen.
fn print_table(records: &[JobRecord]) {
    let width = records.iter().map(|r| r.name.chars().count()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:<8}  {:>6}  {:>8}  problem",
        "job", "status", "frames", "seconds"
    );
    let mut codes: Vec<sadtalker_pipeline::Problem> = Vec::new();
    for r in records {
        let problem = r
            .error
            .as_ref()
            .map(|e| {
                if !codes.contains(&e.code) {
                    codes.push(e.code);
                }
                format!("{}: {}", e.code, first_line(&e.message))
            })
            .unwrap_or_default();
        println!(
            "{:<width$}  {:<8}  {:>6}  {:>8.1}  {problem}",
            r.name,
            status_name(r.status),
            r.frames.map(|f| f.to_string()).unwrap_or_else(|| "-".into()),
            r.seconds
        );
    }
    if !codes.is_empty() {
        println!("troubleshooting:");
        for c in codes {
            println!("  {c}: {}", c.hint());
        }
    }
}

fn merge(args: MergeArgs) -> Result<(), Failure> {
    let merged = sadtalker_pipeline::batch::merge(&args.dir).map_err(batch_failure)?;
    for w in &merged.warnings {
        eprintln!("warning: {w}");
    }
    let bad = merged
        .records
        .iter()
        .filter(|r| r.status == JobStatus::Failed || r.status == JobStatus::Degraded || r.error.is_some())
        .count();
    if args.json {
        let v = json!({
            "report": merged.report,
            "shards": merged.shards,
            "missing_shards": merged.missing_shards,
            "jobs": merged.records.len(),
            "failed_or_degraded": bad,
            "warnings": merged.warnings,
            "records": merged.records,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_table(&merged.records);
        println!(
            "merged {} shard report(s) into {}",
            merged.shards.len(),
            merged.report.display()
        );
    }
    if !merged.missing_shards.is_empty() {
        return Err(Failure::new(
            Kind::Partial,
            anyhow!(
                "no report from shard(s) {:?}: their jobs are not in {} (run them, then merge again)",
                merged.missing_shards,
                merged.report.display()
            ),
        ));
    }
    partial_exit(bad, merged.records.len(), &merged.report)
}
