//! Receiving a submission: the multipart parts streamed to disk under server-chosen names with the byte
//! cap enforced as they arrive, file types sniffed from the content, then the inputs checked (pixel cap
//! from the image header before decoding, speech length, options) so that a bad submission is refused
//! at once with the pipeline's problem code and hint, and leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::Multipart;
use axum::http::StatusCode;
use sadtalker_pipeline::{GenerateOptions, PipelineError, Problem, Stage};
use tokio::io::AsyncWriteExt;

use crate::api::ApiError;
use crate::form;

/// Bytes of one text field.
const MAX_TEXT_FIELD: usize = 4096;
/// Parts of one submission.
const MAX_PARTS: usize = 64;

/// A received submission, in its own folder under `tmp/`.
pub struct Received {
    /// The folder holding the files (`image.png`, `audio.wav`, …).
    pub dir: PathBuf,
    /// Option fields (normalised names).
    pub fields: BTreeMap<String, String>,
    /// Role → stored file name.
    pub files: BTreeMap<String, String>,
    /// Role → the client's file name (display only; sanitised, never a path).
    pub client_names: BTreeMap<String, String>,
}

/// Removes the folder when dropped unless [`TmpDir::keep`] was called: a refused upload leaves nothing.
pub struct TmpDir {
    path: PathBuf,
    keep: bool,
}

impl TmpDir {
    /// Creates `path`.
    pub fn create(path: PathBuf) -> Result<Self, ApiError> {
        std::fs::create_dir_all(&path).map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
        Ok(Self { path, keep: false })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the folder (it was moved into place).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What a file's first bytes say it is: the extension it is stored with.
pub fn sniff(role: &str, head: &[u8]) -> Result<&'static str, ApiError> {
    let starts = |m: &[u8]| head.starts_with(m);
    let at = |off: usize, m: &[u8]| head.len() >= off + m.len() && &head[off..off + m.len()] == m;
    let kind = match role {
        "image" if starts(b"\x89PNG\r\n\x1a\n") => Some("png"),
        "image" if starts(&[0xFF, 0xD8, 0xFF]) => Some("jpg"),
        "image" if starts(b"RIFF") && at(8, b"WEBP") => Some("webp"),
        "image" if starts(b"BM") => Some("bmp"),
        "image" if starts(b"II*\0") || starts(b"MM\0*") => Some("tiff"),
        "audio" if starts(b"RIFF") && at(8, b"WAVE") => Some("wav"),
        "audio" if starts(b"fLaC") => Some("flac"),
        "audio" if starts(b"OggS") => Some("ogg"),
        "audio" if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) => Some("mp3"),
        "audio" if at(4, b"ftyp") => Some("m4a"),
        "ref_eyeblink" | "ref_pose" if at(4, b"ftyp") => Some("mp4"),
        // Decoded through ffmpeg when it is installed (as on the command line).
        "ref_eyeblink" | "ref_pose" if starts(&[0x1A, 0x45, 0xDF, 0xA3]) => Some("mkv"),
        "ref_eyeblink" | "ref_pose" if starts(b"RIFF") && at(8, b"AVI ") => Some("avi"),
        "ref_eyeblink" | "ref_pose" if starts(b"MATLAB") => Some("mat"),
        "landmarks" if !head.is_empty() && std::str::from_utf8(head).is_ok_and(|t| !t.contains('\0')) => Some("txt"),
        _ => None,
    };
    kind.ok_or_else(|| {
        let what = match role {
            "image" => "a PNG, JPEG, WebP, BMP or TIFF picture",
            "audio" => "a WAV, FLAC, MP3, OGG/Vorbis or M4A/AAC recording",
            "landmarks" => "a text file of 68 points",
            _ => "a video (MP4/MOV, MKV/WebM, AVI) or a coefficient .mat file",
        };
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            format!("`{role}`: the file's content is not {what} (types are read from the content, not the name)"),
            match role {
                "image" => Problem::ImageUnreadable.hint(),
                "audio" => Problem::AudioUnreadable.hint(),
                _ => "check the file given for this field",
            },
        )
    })
}

/// A client's file name for display: its last component, printable characters only, at most 100.
fn display_name(name: Option<&str>) -> Option<String> {
    let name = name?;
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = last.chars().filter(|c| !c.is_control()).take(100).collect();
    (!clean.is_empty()).then_some(clean)
}

/// Streams the parts of `multipart` into `dir`, refusing more than `max_bytes` in all (413).
pub async fn receive(mut multipart: Multipart, dir: &Path, max_bytes: u64) -> Result<Received, ApiError> {
    let mut fields = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut client_names = BTreeMap::new();
    let mut total: u64 = 0;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("the upload is larger than this server's limit of {max_bytes} bytes"),
            "send smaller files (downscale the portrait, shorten the recording)",
        )
    };
    for _ in 0..MAX_PARTS {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Ok(Received {
                    dir: dir.to_owned(),
                    fields,
                    files,
                    client_names,
                });
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
            Err(e) => return Err(ApiError::bad_request(format!("malformed multipart body: {e}"))),
        };
        let name = form::normalise(field.name().unwrap_or_default());
        let mut field = field;
        if form::FILE_FIELDS.contains(&name.as_str()) {
            if files.contains_key(&name) {
                return Err(ApiError::bad_request(format!("`{name}` is given twice")));
            }
            let client = display_name(field.file_name());
            let part = dir.join(format!("{name}.part"));
            let mut out = tokio::fs::File::create(&part)
                .await
                .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            let mut head: Vec<u8> = Vec::with_capacity(64);
            loop {
                let chunk = match field.chunk().await {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                    Err(e) => return Err(ApiError::bad_request(format!("`{name}`: upload interrupted: {e}"))),
                };
                total += chunk.len() as u64;
                if total > max_bytes {
                    return Err(too_large());
                }
                if head.len() < 64 {
                    let n = (64 - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..n]);
                }
                out.write_all(&chunk)
                    .await
                    .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            }
            out.flush()
                .await
                .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            drop(out);
            if head.is_empty() {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "empty_file",
                    format!("`{name}`: the file is empty"),
                    "choose the file again",
                ));
            }
            // A landmark file's first 64 bytes may end inside a UTF-8 sequence: judge the longest valid prefix.
            let head = if name == "landmarks" {
                match std::str::from_utf8(&head) {
                    Ok(_) => &head[..],
                    Err(e) => &head[..e.valid_up_to()],
                }
            } else {
                &head[..]
            };
            let ext = sniff(&name, head)?;
            let stored = format!("{name}.{ext}");
            tokio::fs::rename(&part, dir.join(&stored))
                .await
                .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            files.insert(name.clone(), stored);
            if let Some(c) = client {
                client_names.insert(name, c);
            }
        } else {
            let mut value: Vec<u8> = Vec::new();
            loop {
                match field.chunk().await {
                    Ok(Some(c)) => {
                        total += c.len() as u64;
                        if total > max_bytes {
                            return Err(too_large());
                        }
                        value.extend_from_slice(&c);
                        if value.len() > MAX_TEXT_FIELD {
                            return Err(ApiError::unprocessable(
                                Problem::BadInput,
                                format!("field `{name}` is longer than {MAX_TEXT_FIELD} bytes"),
                            ));
                        }
                    }
                    Ok(None) => break,
                    Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_large()),
                    Err(e) => return Err(ApiError::bad_request(format!("`{name}`: upload interrupted: {e}"))),
                }
            }
            let value = String::from_utf8(value)
                .map_err(|_| ApiError::unprocessable(Problem::BadInput, format!("field `{name}` is not UTF-8 text")))?;
            if name.is_empty() {
                return Err(ApiError::bad_request("a form part has no name".into()));
            }
            fields.insert(name, value);
        }
    }
    Err(ApiError::bad_request(format!("more than {MAX_PARTS} form parts")))
}

/// A pipeline error as the API reports it (422, the problem code and hint), with the server's paths
/// taken out of the message.
fn pipeline_refusal(e: PipelineError, dir: &Path) -> ApiError {
    let message = e.to_string().replace(&format!("{}/", dir.display()), "");
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        e.code().as_str(),
        message,
        e.code().hint(),
    )
}

/// Checks a received submission (blocking: decodes the portrait and the speech) and returns the job's
/// options with the files where `final_dir` will hold them.
pub fn check(
    r: &Received,
    base: &GenerateOptions,
    sizes: &[u32],
    limits: &crate::Limits,
    final_dir: &Path,
) -> Result<GenerateOptions, ApiError> {
    for role in ["image", "audio"] {
        if !r.files.contains_key(role) {
            return Err(ApiError::bad_request(format!(
                "no `{role}` file part: a job needs `image` (the portrait) and `audio` (the speech)"
            )));
        }
    }
    let at = |role: &str| r.files.get(role).map(|n| r.dir.join(n));
    // Options first: cheap, and the most common mistake.
    let opts =
        options_from(base, &r.fields, &r.files, &r.dir).map_err(|m| ApiError::unprocessable(Problem::BadInput, m))?;
    opts.validate(sizes).map_err(|e| pipeline_refusal(e, &r.dir))?;

    // The portrait: its size from the header, before any pixel is decoded.
    if let Some(img) = at("image") {
        let dims = image::ImageReader::open(&img)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| ApiError::unprocessable(Problem::ImageUnreadable, format!("image: {e}")))?
            .into_dimensions()
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "image_unreadable",
                    format!("image: {e}"),
                    Problem::ImageUnreadable.hint(),
                )
            })?;
        let pixels = u64::from(dims.0) * u64::from(dims.1);
        if pixels > limits.max_image_pixels {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "image_too_large",
                format!(
                    "image: {}×{} is {pixels} pixels; this server takes at most {}",
                    dims.0, dims.1, limits.max_image_pixels
                ),
                "downscale the portrait (a face of 256-512 pixels is enough)",
            ));
        }
        sadtalker_preprocess::io::load_rgb(&img)
            .map_err(|e| pipeline_refusal(PipelineError::new(Stage::Inputs, e), &r.dir))?;
    }
    if let Some(audio) = at("audio") {
        let max_seconds = limits.max_audio_seconds.min(base.max_seconds);
        sadtalker_audio::load_speech(&audio, &sadtalker_audio::LoadOptions { max_seconds }).map_err(|e| {
            let mut err = pipeline_refusal(PipelineError::new(Stage::Inputs, e), &r.dir);
            if err.code == "audio_too_long" {
                err.hint = format!("this server takes at most {max_seconds} s of speech per job: split the recording");
            }
            err
        })?;
    }
    if let Some(lm) = at("landmarks") {
        let text = std::fs::read_to_string(&lm)
            .map_err(|_| ApiError::unprocessable(Problem::BadLandmarks, "landmarks: not UTF-8 text".into()))?;
        sadtalker_preprocess::Landmarks68::parse(&text).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_landmarks",
                format!("landmarks: {e}"),
                Problem::BadLandmarks.hint(),
            )
        })?;
    }
    // The same options, with the files where the job folder will have them.
    options_from(base, &r.fields, &r.files, final_dir).map_err(|m| ApiError::unprocessable(Problem::BadInput, m))
}

/// The job's options from its stored fields and files (role → name in `dir`).
pub fn options_from(
    base: &GenerateOptions,
    fields: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<GenerateOptions, String> {
    let paths: BTreeMap<String, PathBuf> = files.iter().map(|(k, n)| (k.clone(), dir.join(n))).collect();
    let refs: BTreeMap<String, &Path> = paths.iter().map(|(k, p)| (k.clone(), p.as_path())).collect();
    form::options(base, fields, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_content() {
        assert_eq!(sniff("image", b"\x89PNG\r\n\x1a\n....").ok(), Some("png"));
        assert_eq!(sniff("image", &[0xFF, 0xD8, 0xFF, 0xE0]).ok(), Some("jpg"));
        assert!(sniff("image", b"RIFF\0\0\0\0WAVEfmt ").is_err());
        assert_eq!(sniff("image", b"RIFF\0\0\0\0WEBPVP8 ").ok(), Some("webp"));
        assert_eq!(sniff("image", b"BM\x36\0\0\0").ok(), Some("bmp"));
        assert_eq!(sniff("image", b"II*\0\x08\0").ok(), Some("tiff"));
        assert_eq!(sniff("image", b"MM\0*\0\0").ok(), Some("tiff"));
        assert_eq!(sniff("ref_pose", &[0x1A, 0x45, 0xDF, 0xA3, 0x9F]).ok(), Some("mkv"));
        assert_eq!(sniff("ref_pose", b"RIFF\0\0\0\0AVI LIST").ok(), Some("avi"));
        assert_eq!(sniff("audio", b"RIFF\0\0\0\0WAVEfmt ").ok(), Some("wav"));
        assert_eq!(sniff("audio", b"fLaC").ok(), Some("flac"));
        assert!(sniff("audio", b"#!/bin/sh").is_err());
        assert_eq!(sniff("landmarks", b"1 2\n3 4").ok(), Some("txt"));
        assert_eq!(sniff("ref_pose", b"\0\0\0\x20ftypisom").ok(), Some("mp4"));
    }

    #[test]
    fn client_names_are_for_display_only() {
        assert_eq!(display_name(Some("../../etc/passwd")).as_deref(), Some("passwd"));
        assert_eq!(display_name(Some("C:\\a\\face.png")).as_deref(), Some("face.png"));
        assert_eq!(display_name(Some("")), None);
    }
}
