//! `sadtalker coeffs`: inspect 3DMM coefficient `.mat` files and convert them between the
//! 70-column (motion), 73-column (first frame with crop parameters) and 257-column (full 3DMM)
//! layouts.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sadtalker_coeffs::file::{
    AdaptOptions, CoeffError, adapt, column_groups, describe_width, group_stats, read_crop_params,
};
use sadtalker_coeffs::mat::{MatError, MatFile, MatValue};
use serde_json::json;

use crate::exit::{Failure, Kind};

#[derive(Subcommand)]
pub enum CoeffsCmd {
    /// Convert `coeff_3dmm` between 70 columns (motion: exp+angle+trans) and 73 (plus crop parameters).
    ///
    /// 73→70 drops the crop parameters. 70→73 appends the source image's crop parameters to every
    /// row, read from --crop-from (the first-frame .mat written by preprocessing). With --from-full,
    /// a 257-column full 3DMM table (`full_3dmm`, or a 257-wide `coeff_3dmm`) is converted (its
    /// expression, angles and translation are kept). Every other variable is copied unchanged; the
    /// output is written only when complete.
    Adapt(AdaptArgs),
    /// Show the variables of a .mat file: class, shape, what a coefficient table is, value ranges.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct AdaptArgs {
    /// The coefficient .mat file to convert.
    input: PathBuf,
    /// Output .mat file (an existing file is replaced).
    #[arg(short, long, value_name = "OUT.mat")]
    output: PathBuf,
    /// Target width.
    #[arg(long, value_parser = ["70", "73"])]
    to: String,
    /// First-frame .mat whose crop parameters (row 0, columns 70..73) are appended when going to 73.
    #[arg(long, value_name = "FIRST.mat")]
    crop_from: Option<PathBuf>,
    /// Accept a 257-column full 3DMM table as the source.
    #[arg(long)]
    from_full: bool,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The .mat file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Every coefficient error is about the user's files.
impl From<CoeffError> for Failure {
    fn from(e: CoeffError) -> Self {
        Failure::new(Kind::BadInput, e)
    }
}

impl From<MatError> for Failure {
    fn from(e: MatError) -> Self {
        Failure::new(Kind::BadInput, e)
    }
}

pub fn run(cmd: CoeffsCmd) -> Result<(), Failure> {
    match cmd {
        CoeffsCmd::Adapt(args) => adapt_cmd(args),
        CoeffsCmd::Show(args) => show(args),
    }
}

fn adapt_cmd(args: AdaptArgs) -> Result<(), Failure> {
    let to: usize = args
        .to
        .parse()
        .map_err(|e| Failure::new(Kind::Internal, anyhow::anyhow!("--to: {e}")))?;
    let crop = args.crop_from.as_ref().map(read_crop_params).transpose()?;
    let input = MatFile::read(&args.input)?;
    let opts = AdaptOptions {
        to,
        crop,
        from_full: args.from_full,
    };
    let (output, report) = adapt(&input, &args.input.display().to_string(), &opts)?;
    output.write(&args.output)?;
    if args.json {
        let doc = json!({
            "input": args.input,
            "output": args.output,
            "source_variable": report.source_key,
            "from": report.from,
            "to": report.to,
            "rows": report.rows,
            "crop_params": report.crop.map(|c| c.0.to_vec()),
        });
        println!("{doc:#}");
    } else {
        let crop = match report.crop {
            Some(c) => format!(", crop parameters {:?} appended", c.0),
            None => String::new(),
        };
        println!(
            "{}: `{}` {} × {} → `coeff_3dmm` {} × {}{crop}; wrote {}",
            args.input.display(),
            report.source_key,
            report.rows,
            report.from,
            report.rows,
            report.to,
            args.output.display()
        );
    }
    Ok(())
}

fn show(args: ShowArgs) -> Result<(), Failure> {
    let file = MatFile::read(&args.file)?;
    let mut vars = Vec::new();
    for var in &file.variables {
        let entry = match &var.value {
            MatValue::Array(a) => {
                let class = if a.logical {
                    "logical".to_string()
                } else {
                    a.class().to_string()
                };
                let mut entry = json!({"name": var.name, "class": class, "shape": a.dims});
                if let Some(text) = a.as_string() {
                    entry["text"] = json!(text);
                } else if let Some((rows, cols, data)) = a.to_rows_f64() {
                    let (min, max) = data.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                    if !data.is_empty() {
                        entry["min"] = json!(min);
                        entry["max"] = json!(max);
                    }
                    if let Some(kind) = describe_width(cols).filter(|_| !column_groups(cols).is_empty()) {
                        entry["kind"] = json!(kind);
                        let groups: Vec<_> = group_stats(rows, cols, &data)
                            .into_iter()
                            .map(|g| {
                                json!({"name": g.name, "columns": [g.columns.start, g.columns.end],
                                       "min": g.min, "max": g.max, "mean": g.mean})
                            })
                            .collect();
                        entry["groups"] = json!(groups);
                    }
                }
                entry
            }
            MatValue::Other {
                class, complex, dims, ..
            } => {
                json!({"name": var.name, "class": class.to_string(), "shape": dims, "complex": complex,
                       "note": "not a real numeric array: contents not shown"})
            }
        };
        vars.push(entry);
    }
    if args.json {
        println!(
            "{:#}",
            json!({"file": args.file, "header": file.header_text, "variables": vars})
        );
        return Ok(());
    }
    println!("{}: {}", args.file.display(), file.header_text);
    if vars.is_empty() {
        println!("  (no variables)");
    }
    for v in &vars {
        let shape = v["shape"]
            .as_array()
            .map(|d| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" × "));
        print!(
            "  {:<12} {:<8} {:<10}",
            v["name"].as_str().unwrap_or(""),
            v["class"].as_str().unwrap_or(""),
            shape.unwrap_or_default()
        );
        if let Some(kind) = v["kind"].as_str() {
            print!(" {kind}");
        } else if let Some(text) = v["text"].as_str() {
            print!(" {text:?}");
        } else if let Some(note) = v["note"].as_str() {
            print!(" ({note})");
        } else if let (Some(lo), Some(hi)) = (v["min"].as_f64(), v["max"].as_f64()) {
            print!(" range [{lo:.4}, {hi:.4}]");
        }
        println!();
        for g in v["groups"].as_array().into_iter().flatten() {
            let cols = format!(
                "{}..{}",
                g["columns"][0].as_u64().unwrap_or(0),
                g["columns"][1].as_u64().unwrap_or(0)
            );
            println!(
                "      {:<6} cols {cols:<8} min {:>10.4}  max {:>10.4}  mean {:>10.4}",
                g["name"].as_str().unwrap_or(""),
                g["min"].as_f64().unwrap_or(f64::NAN),
                g["max"].as_f64().unwrap_or(f64::NAN),
                g["mean"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
