//! `sadtalker checkpoint inspect`: what a checkpoint file holds.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use sadtalker_checkpoint::{Checkpoint, TensorInfo};

use crate::exit::Failure;

#[derive(Subcommand)]
pub enum CheckpointCmd {
    /// List the tensors of a checkpoint: name, element type, shape.
    ///
    /// Reads safetensors and every `torch.save` container (.pth, .pth.tar; zip, legacy,
    /// tar), including nested dictionaries, whose tensors are shown by dotted path
    /// (e.g. `mapping.fc.weight`). Only the index is read, so this is fast on large files.
    Inspect(InspectArgs),
}

#[derive(Args)]
pub struct InspectArgs {
    /// The checkpoint file.
    file: PathBuf,
    /// Show only tensors whose name starts with this prefix (e.g. `generator.`).
    #[arg(long)]
    prefix: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: CheckpointCmd) -> Result<(), Failure> {
    match cmd {
        CheckpointCmd::Inspect(args) => inspect(args),
    }
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let ckpt = Checkpoint::open(&args.file)?;
    let tensors: Vec<TensorInfo> = ckpt
        .tensors()
        .into_iter()
        .filter(|t| args.prefix.as_deref().is_none_or(|p| t.name.starts_with(p)))
        .collect();
    let params: usize = tensors.iter().map(|t| t.shape.iter().product::<usize>()).sum();
    if args.json {
        let list: Vec<_> = tensors
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype.to_string(), "shape": t.shape}))
            .collect();
        let doc = serde_json::json!({
            "file": ckpt.path(),
            "format": ckpt.format().to_string(),
            "tensors": list,
            "parameters": params,
        });
        println!("{doc:#}");
    } else {
        let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
        println!(
            "{}: {} format, {} tensors, {params} values",
            ckpt.path().display(),
            ckpt.format(),
            tensors.len()
        );
        for t in &tensors {
            println!("{:<width$}  {:<5}  {:?}", t.name, t.dtype.to_string(), t.shape);
        }
    }
    Ok(())
}
