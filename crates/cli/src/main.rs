//! `sadtalker`: portrait + speech → talking-head video, without Python.
//!
//! This binary only parses arguments, calls the library crates and reports; every
//! subcommand lives in its own module under `commands/`.

mod commands;
mod exit;
mod signals;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sadtalker",
    version,
    about = "SadTalker talking-head generation in one self-contained binary",
    long_about = "SadTalker talking-head generation in one self-contained binary: a portrait photo and a speech \
                  recording in, a lip-synced talking-head video out. Loads the official SadTalker checkpoints.",
    after_help = exit::EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Portrait + speech → talking-head MP4 (the reference's inference.py; every option, same defaults).
    Generate(Box<commands::generate::GenerateArgs>),
    /// Many portrait + speech jobs (CSV/JSON list or two folders): models loaded once, report, resume, shards.
    Batch(Box<commands::batch::BatchArgs>),
    /// HTTP API + web page: a durable job queue (SQLite), progress events, models loaded once.
    Serve(Box<commands::serve::ServeArgs>),
    /// Check this machine: model files, disk, folders, CPU, codecs, and a self-test of every stage.
    Doctor(commands::doctor::DoctorArgs),
    /// Restore the faces of an image or a video with GFPGAN v1.4, upscaled ×2 (the reference's --enhancer gfpgan).
    Enhance(commands::enhance::EnhanceArgs),
    /// Inspect model checkpoint files (safetensors, .pth, .pth.tar).
    #[command(subcommand)]
    Checkpoint(commands::checkpoint::CheckpointCmd),
    /// Video tools: the still-video fallback, and what the MP4 reader sees in a file.
    #[command(subcommand)]
    Video(commands::video::VideoCmd),
    /// List, download, verify and import model files (`sadtalker models list` shows what is installed).
    #[command(subcommand)]
    Models(commands::models::ModelsCmd),
    /// Render talking-head frames from coefficients and a cropped portrait (PNG folder or MP4).
    Render(Box<commands::render::RenderArgs>),
    /// Preprocess a portrait: find the face, cut it (--preprocess) and extract its 3DMM coefficients.
    Extract(commands::extract::ExtractArgs),
    /// Inspect 3DMM coefficient .mat files and convert them between 70/73/257 columns.
    #[command(subcommand)]
    Coeffs(commands::coeffs::CoeffsCmd),
    /// The speech front end alone: decode a speech file and write its mel spectrogram.
    #[command(subcommand)]
    Audio(commands::audio::AudioCmd),
    /// Speech + the source image's coefficients → per-frame motion coefficients (expression, head pose).
    Audio2coeff(Box<commands::audio2coeff::Audio2CoeffArgs>),
}

fn main() -> std::process::ExitCode {
    // SAFETY: the first thing `main` does; no other thread exists yet.
    unsafe { sadtalker_pipeline::quiet_headless_vulkan() };
    let cli = Cli::parse();
    sadtalker_pipeline::memory::retain_freed_memory();
    // The long-running commands that write through temporary files stop cleanly on Ctrl-C / SIGTERM
    // (`serve` has its own shutdown).
    if matches!(cli.command, Command::Generate(_) | Command::Batch(_)) {
        signals::install();
    }
    let result = match cli.command {
        Command::Generate(args) => commands::generate::run(*args),
        Command::Batch(args) => commands::batch::run(*args),
        Command::Serve(args) => commands::serve::run(*args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Enhance(args) => commands::enhance::run(args),
        Command::Checkpoint(cmd) => commands::checkpoint::run(cmd),
        Command::Video(cmd) => commands::video::run(cmd),
        Command::Models(cmd) => commands::models::run(cmd),
        Command::Extract(args) => commands::extract::run(args),
        Command::Render(args) => commands::render::run(*args),
        Command::Coeffs(cmd) => commands::coeffs::run(cmd),
        Command::Audio(cmd) => commands::audio::run(cmd),
        Command::Audio2coeff(args) => commands::audio2coeff::run(*args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
