//! `sadtalker doctor`: system checks and the built-in self-test (see `sadtalker_pipeline::doctor`), as a
//! table or `--json`.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use sadtalker_pipeline::doctor::{DoctorOptions, DoctorReport, StageStatus, Status, check_system, run_self_test};

use crate::commands::models::StoreArgs;
use crate::exit::{Failure, Kind};

#[derive(Args)]
#[command(
    after_help = "Exit codes: 0 everything ok (warnings allowed), 4 model files missing or damaged,
1 another check or the self-test failed. Each problem is printed with the command that fixes it."
)]
pub struct DoctorArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The folder videos will go to (checked for write access and space).
    #[arg(long, alias = "result_dir", value_name = "DIR", default_value = "./results")]
    result_dir: PathBuf,
    /// Features whose model files must be installed (256, 512, enhancer, ...); repeatable.
    #[arg(long = "for", value_name = "FEATURE", default_value = "256")]
    features: Vec<String>,
    /// Do not hash model files that were never hashed (the first full check reads ~2.5 GB once).
    #[arg(long)]
    no_verify: bool,
    /// Skip the self-test (the tiny end-to-end run on built-in weights).
    #[arg(long)]
    no_self_test: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `sadtalker doctor`.
pub fn run(args: DoctorArgs) -> Result<(), Failure> {
    let store = args
        .store
        .options()
        .and_then(|o| sadtalker_store::ModelStore::open(o).map_err(|e| Failure::new(Kind::Model, e)));
    let store_ref = match &store {
        Ok(s) => Ok(s),
        Err(f) => Err(f.error.to_string()),
    };
    let devices = sadtalker_pipeline::doctor::list_devices();
    let checks = check_system(&DoctorOptions {
        store: store_ref,
        required: args.features.clone(),
        result_dir: args.result_dir.clone(),
        verify: !args.no_verify,
        devices: devices.clone(),
    });
    if !args.json {
        print_checks(&checks);
    }
    let self_test = (!args.no_self_test).then(run_self_test);
    let report = DoctorReport {
        checks,
        devices,
        self_test,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else if let Some(t) = &report.self_test {
        println!();
        println!("self-test (built-in weights, {} frames, {:.1} s):", t.frames, t.seconds);
        for s in &t.stages {
            let status = match s.status {
                StageStatus::Pass => "pass",
                StageStatus::Fail => "FAIL",
                StageStatus::Skipped => "-",
            };
            println!("  {:<12} {:<5} {:>7.3} s", s.stage.as_str(), status, s.seconds);
        }
        if let Some(e) = &t.error {
            println!("  error: {e}");
        }
    }
    if report.healthy() {
        if !args.json {
            println!("\nall checks passed");
        }
        return Ok(());
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.clone())
        .chain(
            report
                .self_test
                .iter()
                .filter(|t| !t.passed)
                .map(|_| "self-test".to_owned()),
        )
        .collect();
    let kind = if report.models_failed() {
        Kind::Model
    } else {
        Kind::Internal
    };
    Err(Failure::new(
        kind,
        anyhow!(
            "doctor found problems: {} (the fixes are listed above)",
            failed.join(", ")
        ),
    ))
}

fn print_checks(checks: &[sadtalker_pipeline::doctor::Check]) {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
    for c in checks {
        println!("{:<width$}  {:<4}  {}", c.name, c.status.as_str(), c.detail);
        if let Some(fix) = &c.fix
            && c.status != Status::Ok
        {
            println!("{:<width$}        fix: {fix}", "");
        }
    }
}
