//! The README's Slurm job array, run for real: a one-node Slurm cluster (munged, slurmctld, slurmd from
//! Debian's `slurm-wlm` and `munge`) started in a temp folder, the array script read out of README.md and
//! submitted as written, then `sadtalker batch merge`.
//!
//! `sadtalker` on the tasks' PATH is a wrapper that runs this build on the built-in test weights
//! (`--builtin-weights self-test --size 64`, about a second a job) and, on the first attempt of shard 0,
//! kills the binary with SIGKILL while it encodes its second job (a node dying mid-job). Checked: the
//! killed task is FAILED and those whose shard has a bad job (exit 6) COMPLETED; `scontrol requeue` of
//! the failed task and a second submission of a shard resume (finished jobs skipped, not rendered again);
//! the merged report has every job; the videos are byte-identical to one process's run of the same list;
//! eight tasks fetching one model file into one shared store download it once.
//!
//! Needs root (slurmd starts the tasks) and the Slurm and munge programs: under `CI=true` their absence
//! is a failure (`.ci/run` installs them), elsewhere the test says so and passes unrun.

#[path = "../../store/tests/support/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// One row of the job list: name, image, audio, pose_style cell, and the error code when it must fail.
struct Row(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// The jobs, in list order. Shard k of 8 takes jobs k and k + 8: shard 0 runs `j0` then `j8` (the one
/// killed mid-encode); shards 3-6 have one bad job each (failing fast, so that only five jobs render).
const JOBS: &[Row] = &[
    Row("j0", "astro.png", "speech.wav", "", None),
    Row("j1", "astro.png", "speech.wav", "1", None),
    Row("j2", "astro.png", "speech.wav", "2", None),
    Row("bad_image", "broken.png", "speech.wav", "", Some("image_unreadable")),
    Row("bad_audio", "astro.png", "broken.wav", "", Some("audio_unreadable")),
    Row("bad_option", "astro.png", "speech.wav", "x", Some("bad_option")),
    Row("missing", "missing.png", "speech.wav", "", Some("image_unreadable")),
    Row("j7", "astro.png", "speech.wav", "7", None),
    Row("j8", "astro.png", "speech.wav", "8", None),
];
const CRASH_SHARD: &str = "0";
const KILLED_JOB: &str = "j8";
const BAD_SHARD: &str = "3";
const FETCHED: &str = "tiny.safetensors";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn readme() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README.md")
}

/// The README's Slurm array script: the `sh` block that starts with `#!/bin/sh` and has `#SBATCH` lines.
fn readme_array_script(readme: &str) -> String {
    let blocks: Vec<&str> = readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split_once("```").map(|(code, _)| code))
        .filter(|code| code.starts_with("#!/bin/sh\n") && code.contains("\n#SBATCH --array="))
        .collect();
    assert_eq!(blocks.len(), 1, "README.md must have one Slurm array script block");
    blocks[0].to_owned()
}

/// A program on PATH or in the sbin folders (where Debian puts the daemons).
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // The effective uid, without a libc dependency.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The tools, or why the test cannot run: a failure under CI, a notice elsewhere.
fn tools() -> Option<BTreeMap<&'static str, PathBuf>> {
    let names = [
        "munged",
        "slurmctld",
        "slurmd",
        "sbatch",
        "scontrol",
        "squeue",
        "scancel",
        "sinfo",
    ];
    let found: BTreeMap<&str, Option<PathBuf>> = names.iter().map(|n| (*n, find_tool(n))).collect();
    let missing: Vec<&str> = found.iter().filter(|(_, p)| p.is_none()).map(|(n, _)| *n).collect();
    let problem = if !missing.is_empty() {
        Some(format!(
            "{} not found: install Debian's slurm-wlm and munge (.ci/run does)",
            missing.join(", ")
        ))
    } else if !is_root() {
        Some("not root: slurmd must run as root to start the array's tasks".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the Slurm array test cannot run under CI: {p}");
        }
        eprintln!("NOTICE: slurm_array not run: {p}");
        return None;
    }
    Some(found.into_iter().map(|(n, p)| (n, p.expect("checked"))).collect())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The short host name: slurmctld only runs where `SlurmctldHost` names this host.
fn short_hostname() -> String {
    let h = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    h.trim().split('.').next().unwrap_or("localhost").to_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tail(path: &Path, lines: usize) -> String {
    let t = fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let all: Vec<&str> = t.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running one-node cluster. Dropping it cancels every job, stops the daemons and, when the test is
/// failing, prints their logs and the tasks' output.
struct Cluster {
    tools: BTreeMap<&'static str, PathBuf>,
    conf: PathBuf,
    logs: PathBuf,
    /// Folders whose `slurm-*.out` files are shown on failure.
    task_dirs: Vec<PathBuf>,
    daemons: Vec<(&'static str, Child)>,
}

impl Cluster {
    fn start(tools: BTreeMap<&'static str, PathBuf>, root: &Path, task_dirs: Vec<PathBuf>) -> Cluster {
        let (munge, sock_dir, logs) = (root.join("munge"), root.join("munge-socket"), root.join("logs"));
        let (state, spool) = (root.join("state"), root.join("spool"));
        for d in [&munge, &sock_dir, &logs, &state, &spool] {
            fs::create_dir_all(d).expect("mkdir");
        }
        // munged refuses a key others can read and a socket folder others cannot enter.
        fs::set_permissions(&munge, fs::Permissions::from_mode(0o700)).expect("chmod");
        fs::set_permissions(&sock_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let key = munge.join("munge.key");
        let key_bytes: Vec<u8> = server::test_bytes(1024, std::process::id().into());
        fs::write(&key, key_bytes).expect("munge key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
        let socket = sock_dir.join("munge.socket");

        let host = short_hostname();
        let conf = root.join("slurm.conf");
        let (ctld_port, slurmd_port) = (free_port(), free_port());
        let d = |p: &Path| p.display().to_string();
        // One node. Containers have no usable cgroups: linuxproc tracks the tasks, task/none binds nothing.
        // CPUs=64 with config_overrides: the array's 8 tasks x --cpus-per-task=8 (as written) all run at
        // once, as on 8 real nodes. cred_expire=5: a requeued task may start again after 5 s (default 120);
        // sched_interval=1: the scheduler looks at it every second (default 60).
        let conf_text = format!(
            "ClusterName=sadtalker-test\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={slurmd_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={socket},cred_expire=5\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={logs}/slurmctld.pid\n\
             SlurmdPidFile={logs}/slurmd.pid\n\
             SlurmctldLogFile={logs}/slurmctld.log\n\
             SlurmdLogFile={logs}/slurmd.log\n\
             SlurmctldDebug=info\n\
             SlurmdDebug=info\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SwitchType=switch/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SlurmdParameters=config_overrides\n\
             SchedulerType=sched/builtin\n\
             SchedulerParameters=sched_interval=1\n\
             ReturnToService=2\n\
             KillWait=2\n\
             NodeName={host} NodeAddr=127.0.0.1 CPUs=64 State=UNKNOWN\n\
             PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            socket = d(&socket),
            state = d(&state),
            spool = d(&spool),
            logs = d(&logs),
        );
        fs::write(&conf, conf_text).expect("slurm.conf");

        let mut cluster = Cluster {
            tools,
            conf,
            logs,
            task_dirs,
            daemons: Vec::new(),
        };
        let key_arg = d(&key);
        let sock_arg = d(&socket);
        let pid_arg = d(&munge.join("munged.pid"));
        let log_arg = d(&cluster.logs.join("munged.log"));
        let seed_arg = d(&munge.join("munged.seed"));
        cluster.spawn(
            "munged",
            &[
                "--foreground",
                "--key-file",
                &key_arg,
                "--socket",
                &sock_arg,
                "--pid-file",
                &pid_arg,
                "--log-file",
                &log_arg,
                "--seed-file",
                &seed_arg,
            ],
        );
        wait_for("munged's socket", Duration::from_secs(15), || socket.exists());
        let conf_arg = d(&cluster.conf);
        cluster.spawn("slurmctld", &["-D", "-f", &conf_arg]);
        cluster.spawn("slurmd", &["-D", "-f", &conf_arg, "-N", &host]);
        wait_for("the node to be idle", Duration::from_secs(60), || {
            let o = cluster.cmd("sinfo").args(["-h", "-N", "-o", "%T"]).output();
            o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        });
        cluster
    }

    fn spawn(&mut self, name: &'static str, args: &[&str]) {
        let out = fs::File::create(self.logs.join(format!("{name}.out"))).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(&self.tools[name])
            .args(args)
            .env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// A Slurm client command talking to this cluster.
    fn cmd(&self, tool: &str) -> Command {
        let mut c = Command::new(&self.tools[tool]);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `sbatch --parsable --wait ARGS` in `dir` with `env`, within `limit`: (job id, sbatch's exit code).
    fn sbatch_wait(&self, dir: &Path, env: &[(&str, String)], args: &[&str], limit: Duration) -> (String, i32) {
        let mut c = self.cmd("sbatch");
        c.current_dir(dir)
            .args(["--parsable", "--wait"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("run sbatch");
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().expect("sbatch").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let o = child.wait_with_output().expect("sbatch");
                panic!("sbatch --wait {args:?}: not done after {limit:?}: {}", text(&o));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let o = child.wait_with_output().expect("sbatch");
        let id = String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .and_then(|l| l.split(';').next())
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no job id from sbatch {args:?}: {}", text(&o)))
            .to_owned();
        (id, o.status.code().unwrap_or(-1))
    }

    /// The array tasks of job `id`: task id -> (JobState, ExitCode), from `scontrol -o show job`.
    fn tasks(&self, id: &str) -> BTreeMap<String, (String, String)> {
        let o = self
            .cmd("scontrol")
            .args(["-o", "show", "job", id])
            .output()
            .expect("scontrol");
        assert!(o.status.success(), "scontrol show job {id}: {}", text(&o));
        let mut tasks = BTreeMap::new();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or("?")
                    .to_owned()
            };
            tasks.insert(field("ArrayTaskId="), (field("JobState="), field("ExitCode=")));
        }
        tasks
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Cancel what still runs (a failing test may leave tasks behind), then stop the daemons.
        let _ = self.cmd("scancel").args(["--user", "root"]).output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.cmd("squeue").args(["-h", "-o", "%i"]).output() {
                Ok(o) if o.status.success() && !o.stdout.is_empty() => std::thread::sleep(Duration::from_millis(200)),
                _ => break,
            }
        }
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            // The daemons' stderr: their log lines, and what they said before opening their log files.
            for name in ["slurmctld.out", "slurmd.out", "munged.out"] {
                let _ = writeln!(err, "---- {name} (last lines)\n{}", tail(&self.logs.join(name), 40));
            }
            for dir in &self.task_dirs {
                let mut outs: Vec<PathBuf> = fs::read_dir(dir)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                outs.retain(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("slurm-")));
                outs.sort();
                for p in outs {
                    let _ = writeln!(err, "---- {}\n{}", p.display(), tail(&p, 30));
                }
            }
        }
    }
}

/// A child process that is killed if the test fails before waiting for it.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn wait_with_output(mut self) -> Output {
        self.0
            .take()
            .expect("a child")
            .wait_with_output()
            .expect("wait for the child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn report(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shared folder: inputs, `jobs.csv`, the README's `batch.sh`.
fn write_inputs(work: &Path, script: &str) {
    fs::create_dir_all(work).expect("mkdir");
    fs::copy(fixtures().join("preprocess/astronaut.png"), work.join("astro.png")).expect("copy");
    fs::copy(fixtures().join("pipeline/astronaut_lm.txt"), work.join("astro_lm.txt")).expect("copy");
    fs::copy(fixtures().join("pipeline/speech_3f.wav"), work.join("speech.wav")).expect("copy");
    fs::write(work.join("broken.png"), b"\x89PNG\r\n\x1a\n not a png").expect("write");
    fs::write(work.join("broken.wav"), b"RIFF\x00\x00\x00\x00WAVEjunk").expect("write");
    let mut csv = String::from("image,audio,landmarks,name,pose_style\n");
    for Row(name, image, audio, pose, _) in JOBS {
        csv.push_str(&format!("{image},{audio},astro_lm.txt,{name},{pose}\n"));
    }
    fs::write(work.join("jobs.csv"), csv).expect("jobs.csv");
    fs::write(work.join("batch.sh"), script).expect("batch.sh");
}

/// `bin/sadtalker`: this build on the built-in test weights; on the first attempt of the crash shard
/// (no `SLURM_RESTART_COUNT` yet), SIGKILL while the second job's video is being written.
fn write_wrapper(bin: &Path, out: &Path) {
    fs::create_dir_all(bin).expect("mkdir");
    let script = format!(
        r#"#!/bin/sh
# The Slurm array test's `sadtalker`: the real binary on built-in test weights.
real='{real}'
[ "$1" = batch ] || exec "$real" "$@"
shift
if [ "${{SLURM_ARRAY_TASK_ID-}}" = {crash} ] && [ "${{SLURM_RESTART_COUNT:-0}}" = 0 ]; then
  "$real" batch "$@" --builtin-weights self-test --size 64 &
  pid=$!
  encoding() {{ for f in '{out}'/.{killed}.mp4.*.partial; do [ -e "$f" ] && return 0; done; return 1; }}
  until encoding; do
    kill -0 "$pid" 2>/dev/null || {{ echo "wrapper: {killed} finished before it could be killed" >&2; exit 99; }}
    sleep 0.02
  done
  kill -9 "$pid"
  wait "$pid"
  exit $?
fi
exec "$real" batch "$@" --builtin-weights self-test --size 64
"#,
        real = env!("CARGO_BIN_EXE_sadtalker"),
        crash = CRASH_SHARD,
        out = out.display(),
        killed = KILLED_JOB,
    );
    let path = bin.join("sadtalker");
    fs::write(&path, script).expect("wrapper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn readme_slurm_array_runs_on_a_one_node_cluster() {
    let Some(tools) = tools() else { return };
    let started = Instant::now();
    let readme = readme();
    let script = readme_array_script(&readme);
    // What the test runs after the script is what the README tells users to run.
    for line in [
        "sbatch --wait batch.sh",
        "sadtalker batch merge out/",
        "scontrol requeue",
        "sbatch --wait --array=3 batch.sh",
    ] {
        assert!(readme.contains(line), "README.md no longer says `{line}`");
    }

    let tmp = TempDir::new().expect("tempdir");
    // munged wants every folder above its socket enterable by all.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let work = tmp.path().join("shared");
    let out = work.join("out");
    let fetch_dir = tmp.path().join("fetch");
    fs::create_dir_all(&fetch_dir).expect("mkdir");
    let bin = tmp.path().join("bin");
    let home = tmp.path().join("models");
    write_inputs(&work, &script);
    write_wrapper(&bin, &out);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    // The tasks get sbatch's environment (--export=ALL): the wrapper first on PATH, the shared store.
    let env = [("PATH", path.clone()), ("SADTALKER_HOME", home.display().to_string())];

    // The same list in one process, for the byte comparison (run while the cluster works).
    let reference = tmp.path().join("single");
    let single = KillOnDrop(Some(
        Command::new(bin.join("sadtalker"))
            .current_dir(&work)
            .args(["batch", "jobs.csv", "--out"])
            .arg(&reference)
            .args(["--offline", "--quiet"])
            .env("PATH", &path)
            .env("SADTALKER_HOME", &home)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("single-process batch"),
    ));

    let t = Instant::now();
    let cluster = Cluster::start(tools, &tmp.path().join("slurm"), vec![work.clone(), fetch_dir.clone()]);
    eprintln!("slurm_array: cluster up in {:.1} s", t.elapsed().as_secs_f64());

    // 1. The array, as written. Shard 0 is killed mid-job: sbatch --wait reports the highest task exit
    //    code, 1 (the script's `|| [ $? -eq 6 ]` on 137); the exit 6 of shards 3-6 became 0.
    let t = Instant::now();
    let (job, code) = cluster.sbatch_wait(&work, &env, &["batch.sh"], Duration::from_secs(240));
    eprintln!("slurm_array: array {job} done in {:.1} s", t.elapsed().as_secs_f64());
    let tasks = cluster.tasks(&job);
    assert_eq!(tasks.len(), 8, "{tasks:?}");
    for (task, (state, exit)) in &tasks {
        if task == CRASH_SHARD {
            assert_eq!(
                (state.as_str(), exit.as_str()),
                ("FAILED", "1:0"),
                "crashed task {task}"
            );
        } else {
            assert_eq!(
                (state.as_str(), exit.as_str()),
                ("COMPLETED", "0:0"),
                "task {task} (a shard's exit 6 is not a crash)"
            );
        }
    }
    assert_eq!(code, 1, "sbatch --wait: the highest exit code of the tasks");
    let crash_report = out.join(format!("report.shard-{CRASH_SHARD}-of-8.jsonl"));
    let first = report(&crash_report);
    assert_eq!(names(&first), ["j0"], "shard 0 finished j0 before it was killed");
    let killed_video = out.join(format!("{KILLED_JOB}.mp4"));
    assert!(!killed_video.exists(), "a killed job left a video at its final name");
    let partials: Vec<String> = fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert_eq!(
        partials.len(),
        1,
        "the killed encode's hidden temporary file: {partials:?}"
    );
    assert!(partials[0].starts_with(&format!(".{KILLED_JOB}.mp4.")), "{partials:?}");
    // Shard 3 did exit 6 (its message is in the task's output), and the script made that a success.
    let t3_out = fs::read_to_string(work.join(format!("slurm-{job}_{BAD_SHARD}.out"))).expect("task output");
    assert!(t3_out.contains("1 of 1 job(s) failed"), "{t3_out}");
    let bad = report(&out.join(format!("report.shard-{BAD_SHARD}-of-8.jsonl")));
    assert_eq!(names(&bad), ["bad_image"]);
    assert_eq!(bad[0]["status"], "failed");
    assert_eq!(bad[0]["error"]["code"], "image_unreadable");
    let j0_video = out.join("j0.mp4");
    let j0_time = mtime(&j0_video);

    // 2. Requeue the failed task: it resumes, j0 skipped, j8 rendered.
    let t = Instant::now();
    let task = format!("{job}_{CRASH_SHARD}");
    let o = cluster
        .cmd("scontrol")
        .args(["requeue", &task])
        .output()
        .expect("scontrol requeue");
    assert!(o.status.success(), "scontrol requeue {task}: {}", text(&o));
    wait_for("the requeued task", Duration::from_secs(120), || {
        let (state, _) = cluster.tasks(&task).remove(CRASH_SHARD).unwrap_or_default();
        assert!(
            !["FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"].contains(&state.as_str()),
            "the requeued task ended {state}"
        );
        state == "COMPLETED"
    });
    eprintln!("slurm_array: requeued task done in {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(names(&report(&crash_report)), ["j0", "j8"], "j0 rendered again?");
    assert_eq!(mtime(&j0_video), j0_time, "j0.mp4 was rewritten");
    assert!(killed_video.is_file());
    let task_out = fs::read_to_string(work.join(format!("slurm-{job}_{CRASH_SHARD}.out"))).expect("task output");
    assert!(task_out.contains("j0: skipped (done by an earlier run)"), "{task_out}");

    // 3. A second submission of one shard (the README's other way): everything skipped, exit 6 again
    //    (the bad job is still bad), still not a failure.
    let (again, code) = cluster.sbatch_wait(&work, &env, &["--array=3", "batch.sh"], Duration::from_secs(120));
    assert_eq!(code, 0, "resubmitted shard 3");
    let t3 = cluster.tasks(&again);
    assert_eq!(t3.get("3").map(|(s, _)| s.as_str()), Some("COMPLETED"), "{t3:?}");
    let t3_out = fs::read_to_string(work.join(format!("slurm-{again}_3.out"))).expect("task output");
    assert!(t3_out.contains("bad_image: skipped"), "{t3_out}");
    assert_eq!(names(&report(&out.join("report.shard-3-of-8.jsonl"))), ["bad_image"]);

    // 4. Merge: every job, in list order; exit 6 for the bad one.
    let o = Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .current_dir(&work)
        .args(["batch", "merge", "out/"])
        .output()
        .expect("merge");
    assert_eq!(o.status.code(), Some(6), "merge: {}", text(&o));
    let merged = report(&out.join("report.jsonl"));
    let want: Vec<&str> = JOBS.iter().map(|row| row.0).collect();
    assert_eq!(names(&merged), want);
    for (i, r) in merged.iter().enumerate() {
        assert_eq!(r["job"], i);
        match JOBS[i].4 {
            None => assert_eq!(r["status"], "ok", "{r}"),
            Some(code) => {
                assert_eq!(r["status"], "failed", "{r}");
                assert_eq!(r["error"]["code"], code, "{r}");
            }
        }
    }

    // Outputs in a shared folder are ordinary files (umask mode, like this probe), not 0600 temp files.
    let probe = out.join("mode-probe");
    fs::write(&probe, b"").expect("probe");
    let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).expect("mode");
    for p in [out.join("j0.mp4"), out.join("report.jsonl")] {
        assert_eq!(mode(&p), mode(&probe), "mode of {}", p.display());
    }
    fs::remove_file(&probe).expect("rm probe");

    // 5. The same videos (bytes) and records as one process.
    let single = single.wait_with_output();
    assert_eq!(single.status.code(), Some(6), "single-process batch: {}", text(&single));
    let one = report(&reference.join("report.jsonl"));
    assert_eq!(names(&one), want);
    for (a, b) in one.iter().zip(&merged) {
        for k in ["job", "key", "status", "frames"] {
            assert_eq!(a[k], b[k], "{k} of {}", a["name"]);
        }
    }
    for Row(name, ..) in JOBS.iter().filter(|row| row.4.is_none()) {
        let a = fs::read(reference.join(format!("{name}.mp4"))).expect("single-process video");
        let b = fs::read(out.join(format!("{name}.mp4"))).expect("array video");
        assert!(a == b, "{name}.mp4 differs between the array and one process");
    }

    // 6. Eight tasks fetch one model file into the one shared store at once: one download.
    let server = server::TestServer::start();
    let body = server::test_bytes(200_000, 21);
    server.route(
        FETCHED,
        &body,
        vec![],
        server::Action::Slow(10_000, Duration::from_millis(50)),
    );
    let sha: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    let manifest = fetch_dir.join("m.json");
    let m = serde_json::json!({"version": 1, "files": [{
        "name": FETCHED, "path": format!("checkpoints/{FETCHED}"), "size": body.len(), "sha256": sha,
        "urls": [], "features": ["test"],
    }]});
    fs::write(&manifest, m.to_string()).expect("manifest");
    let wrap = format!(
        "sadtalker models fetch {FETCHED} --manifest '{}' --mirror '{}'",
        manifest.display(),
        server.base()
    );
    let (fetch_job, code) = cluster.sbatch_wait(
        &fetch_dir,
        &env,
        &["--array=0-7", "--job-name=fetch", "--wrap", &wrap],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "concurrent fetch: {:?}", cluster.tasks(&fetch_job));
    assert_eq!(server.requests_to(FETCHED).len(), 1, "one download for eight tasks");
    assert_eq!(
        fs::read(home.join("checkpoints").join(FETCHED)).expect("installed"),
        body
    );
    let leftovers: Vec<String> = fs::read_dir(home.join("checkpoints"))
        .expect("store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != FETCHED)
        .collect();
    assert!(leftovers.is_empty(), "temporary files left in the store: {leftovers:?}");

    let version = cluster
        .cmd("sbatch")
        .arg("--version")
        .output()
        .expect("sbatch --version");
    drop(cluster);
    eprintln!(
        "slurm_array: passed in {:.1} s ({})",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
}
