//! MP4 (ISO base media file format) muxing and demuxing.

pub(crate) mod demux;
pub(crate) mod mux;
