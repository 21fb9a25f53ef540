//! Fuzzing of every decoder that reads untrusted input — portraits, speech (WAV, MP4/M4A), reference
//! videos (MP4), `.mat` coefficient files, checkpoints (safetensors, `torch.save` pickles), landmark
//! files and batch job lists — run by plain `cargo test` on the stable toolchain.
//!
//! Why a small harness of our own rather than cargo-fuzz, bolero or proptest: libFuzzer (cargo-fuzz,
//! and bolero's coverage-guided engines) needs a nightly compiler for its sanitizer flags, which CI
//! and the dev machine do not have. On stable, bolero's libtest engine and proptest both generate
//! inputs without coverage feedback, as this harness does, but they would add a dependency tree to
//! build on 2 cores and leave the two things this crate needs most to be bolted on around them: a
//! memory cap that turns an allocation bomb into a crash (see [`alloc`]), and a time budget shared by
//! all targets. Without coverage, what finds bugs in decoders is mutating real files: the mutator
//! ([`mutate`]) overwrites size fields with boundary values, truncates, splices and duplicates, over a
//! committed seed corpus of tiny real files (`corpus/<target>/`).
//!
//! Each target of [`targets::TARGETS`] runs in a child process (the test binary re-run for one
//! test, see [`runner`]) with the memory cap set, for [`runner::budget`] (a few seconds, 15 s under
//! `CI=true`). A panic, an abort (the cap) or a hang fails the test and saves the input under the
//! target directory; every input that ever failed is kept in `regressions/<target>/` and replayed,
//! with the corpus, by the `regressions_and_corpus_stay_small` test.

pub mod alloc;
pub mod mutate;
pub mod runner;
pub mod targets;
