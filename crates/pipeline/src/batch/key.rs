//! Resume keys: a job is its input files' contents and the options that change the video.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::options::GenerateOptions;

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

#[cfg(test)]
mod tests {
    use super::*;

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
