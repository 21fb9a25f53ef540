//! PNG frame dumps (`--frames-dir`).

use std::path::{Path, PathBuf};

use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};

use crate::error::{Result, VideoError};
use crate::writer::Frame;

/// Writes frames as `DIR/000000.png`, `DIR/000001.png`, … (the pattern `ffmpeg -i DIR/%06d.png` reads).
///
/// Each file is written to a temporary name and renamed, so a PNG in the directory is always complete.
/// Frames already written stay if the video later fails: they are a debugging aid, not an output.
pub struct FrameDumper {
    dir: PathBuf,
}

impl FrameDumper {
    /// Uses `dir`, creating it (and its parents) if missing.
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| VideoError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// The path frame `index` is written to.
    pub fn path_of(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{index:06}.png"))
    }

    /// Writes frame `index`.
    pub fn write(&self, index: u64, frame: Frame<'_>) -> Result<()> {
        let path = self.path_of(index);
        save_png(&path, frame)
    }
}

/// Saves an RGB frame as PNG at `path` (temporary file + rename).
pub fn save_png(path: &Path, frame: Frame<'_>) -> Result<()> {
    let write_err = |source| VideoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut temp = sadtalker_fsio::AtomicFile::create(path).map_err(write_err)?;
    {
        let mut out = std::io::BufWriter::new(temp.file_mut());
        PngEncoder::new(&mut out)
            .write_image(frame.rgb, frame.width, frame.height, ExtendedColorType::Rgb8)
            .map_err(|source| VideoError::Image {
                path: path.to_path_buf(),
                source,
            })?;
        std::io::Write::flush(&mut out).map_err(write_err)?;
    }
    temp.commit().map_err(write_err)?;
    Ok(())
}
