//! Output locations checked before any expensive stage: a folder the job must write into (or create)
//! can be blocked by a file of that name, or by a file where one of its parents should be. Without this
//! check the failure comes minutes later, from the encoder, as a bare "File exists (os error 17)".

use std::path::{Path, PathBuf};

use crate::options::GenerateOptions;

/// An output location that cannot be used: something that is not a folder is where a folder must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {}: {reason}", path.display())]
pub struct OutputBlocked {
    /// The option that gave the location (`-o`, `--result-dir`, `--frames-dir`, `--out`, ...).
    pub flag: String,
    /// The location as given.
    pub path: PathBuf,
    /// What is in the way, and what to do.
    pub reason: String,
}

/// What a non-folder is, for messages.
fn what_is(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_file() {
        "a file"
    } else {
        "not a folder (a device, pipe or socket)"
    }
}

/// The first existing path at or above `dir` that is not a folder, with its metadata; `None` when the
/// nearest existing one is a folder. Errors other than "not there" (no permission to look, say) end the
/// search: the write that follows names them.
fn blocker(dir: &Path) -> Option<(&Path, std::fs::Metadata)> {
    for at in dir.ancestors() {
        if at.as_os_str().is_empty() {
            break;
        }
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => return None,
            Ok(meta) => return Some((at, meta)),
            // Not there (or "not a directory" below a file): look further up.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(_) => return None,
        }
    }
    None
}

/// Checks that `dir` is a folder, or can be created: neither it nor any of its parents is a file.
pub fn check_folder(flag: &str, dir: &Path) -> Result<(), OutputBlocked> {
    let Some((at, meta)) = blocker(dir) else {
        return Ok(());
    };
    let reason = if at == dir {
        format!(
            "is {}, not a folder; give a folder (it is created if missing), or move the file away",
            what_is(&meta)
        )
    } else {
        format!(
            "the folder cannot be created: {} is {}, not a folder; give another path, or move {} away",
            at.display(),
            what_is(&meta),
            at.display()
        )
    };
    Err(OutputBlocked {
        flag: flag.to_owned(),
        path: dir.to_owned(),
        reason,
    })
}

/// Checks that the file `file` can be written: it is not a folder, and its folder is a folder or can be
/// created.
pub fn check_file(flag: &str, file: &Path) -> Result<(), OutputBlocked> {
    let blocked = |reason: String| OutputBlocked {
        flag: flag.to_owned(),
        path: file.to_owned(),
        reason,
    };
    if file.is_dir() {
        return Err(blocked("is a folder; give a file name ending in .mp4".into()));
    }
    let dir = sadtalker_fsio::parent_dir(file);
    match blocker(dir) {
        None => Ok(()),
        Some((at, meta)) => Err(blocked(format!(
            "its folder cannot be created: {} is {}, not a folder; give another path, or move {} away",
            at.display(),
            what_is(&meta),
            at.display()
        ))),
    }
}

/// Checks every location a `generate` job writes to: `-o` (or `--result-dir`), `--frames-dir`, and with
/// `--verbose` the intermediate files' folder beside the video.
pub fn check_output_locations(opts: &GenerateOptions) -> Result<(), OutputBlocked> {
    match &opts.output {
        Some(out) => {
            check_file("-o", out)?;
            if opts.verbose {
                check_folder("--verbose (the intermediate files' folder)", &out.with_extension(""))?;
            }
        }
        None => check_folder("--result-dir", &opts.result_dir)?,
    }
    if let Some(dir) = &opts.frames_dir {
        check_folder("--frames-dir", dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_the_way_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file.png");
        std::fs::write(&file, b"x").expect("write");
        assert!(check_folder("--out", dir.path()).is_ok());
        assert!(check_folder("--out", &dir.path().join("new/deeper")).is_ok());
        let e = check_folder("--out", &file).expect_err("a file");
        assert!(e.reason.starts_with("is a file"), "{e}");
        let e = check_folder("--frames-dir", &file.join("a/b")).expect_err("inside a file");
        assert!(e.to_string().contains(&format!("{} is a file", file.display())), "{e}");
        let e = check_file("-o", &file.join("x.mp4")).expect_err("inside a file");
        assert!(e.to_string().contains(&format!("{} is a file", file.display())), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("-o {}", file.join("x.mp4").display())),
            "{e}"
        );
        let e = check_file("-o", dir.path()).expect_err("a folder");
        assert!(e.reason.contains("is a folder"), "{e}");
        assert!(check_file("-o", &dir.path().join("ok.mp4")).is_ok());
        assert!(check_file("-o", Path::new("bare.mp4")).is_ok());
    }
}
