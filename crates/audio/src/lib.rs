//! The speech front end of SadTalker: from an audio file to the tensors Audio2Coeff takes.
//!
//! - [`decode`]: in-process decoding (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC with its priming
//!   removed), channel mean and resampling to 16 kHz, like the reference's `librosa.load`, with
//!   typed errors for unusable input and warnings for silent input;
//! - [`mel`]: the Wav2Lip mel spectrogram of `utils/audio.py` + `hparams.py`;
//! - [`frames`]: the per-video-frame mel windows at 25 fps;
//! - [`blink`]: the random eye-blink sequence with an injectable random source (including a
//!   reproduction of Python's `random` for bit-identical runs).
//!
//! The Audio2Coeff batch of `generate_batch.py` (`get_data`) is assembled in `sadtalker-audio2coeff`
//! (`speech::speech_input`), which cuts the windows on demand.

pub mod blink;
pub mod decode;
mod error;
pub mod frames;
pub mod mel;
mod mp4;
pub mod resample;

pub use blink::{BlinkRng, PyRandom, generate_blink_seq_randomly};
pub use decode::{FPS, LoadOptions, SAMPLE_RATE, SourceInfo, Speech, load_speech};
pub use error::{AudioError, AudioWarning, SUPPORTED};
pub use frames::{MelWindows, mel_windows};
pub use mel::{HPARAMS, Hparams, Mel, MelSpectrogram, melspectrogram};
