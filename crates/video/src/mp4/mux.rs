//! A streaming MP4 (ISO BMFF) muxer for one H.264 video track and an optional audio track.
//!
//! Hand-written because the crates that exist did not fit: `muxide` keeps every sample's bytes in memory
//! until `finish` (memory grows with length) and writes neither edit lists nor a `comment` tag; the `mp4`
//! crate's writer has no edit lists either. Both are needed here: the edit list is what removes the AAC
//! encoder's priming samples so audio and video start together, and the comment tag carries the
//! "degraded" marker of the fallback video.
//!
//! Layout: `ftyp`, one `mdat` written as samples arrive (64-bit size patched at the end), then `moov`.
//! Only the per-sample index (size, chunk offset: a few bytes a sample) stays in memory.

use std::io::{Seek, SeekFrom, Write};

/// Movie timescale (ticks per second) used for `mvhd`, `tkhd` and edit-list durations, as ffmpeg does.
const MOVIE_TIMESCALE: u32 = 1000;

/// The sample table of one track, built while samples are written.
#[derive(Default)]
struct TrackTable {
    /// Byte size of each sample.
    sizes: Vec<u32>,
    /// Sample durations, run-length encoded as (count, delta) like `stts`.
    durations: Vec<(u32, u32)>,
    /// Chunks as (file offset, number of samples).
    chunks: Vec<(u64, u32)>,
    /// 1-based numbers of sync samples (video only).
    sync: Vec<u32>,
    /// Sum of all sample durations, in the track's timescale.
    total_duration: u64,
}

impl TrackTable {
    fn push_sample(&mut self, size: u32, duration: u32, sync: bool) {
        self.sizes.push(size);
        match self.durations.last_mut() {
            Some((count, delta)) if *delta == duration => *count += 1,
            _ => self.durations.push((1, duration)),
        }
        if sync {
            self.sync.push(self.sizes.len() as u32);
        }
        self.total_duration += u64::from(duration);
    }
}

/// How the audio track is coded, with what its sample entry needs.
pub(crate) enum AudioCodecConfig {
    /// AAC: the AudioSpecificConfig for the `esds` box, and average bitrate for its header.
    #[cfg_attr(
        not(feature = "aac"),
        allow(dead_code, reason = "only the `aac` feature's encoder makes it")
    )]
    Aac {
        audio_specific_config: Vec<u8>,
        avg_bitrate: u32,
        max_frame_bytes: u32,
    },
    /// FLAC: the 34-byte STREAMINFO block body for the `dfLa` box.
    Flac { streaminfo: Vec<u8> },
}

/// Everything `moov` needs about the audio track besides its samples.
pub(crate) struct AudioTrackConfig {
    pub codec: AudioCodecConfig,
    pub sample_rate: u32,
    pub channels: u16,
    /// Samples at the start of the track to skip (encoder priming), in samples.
    pub priming: u32,
    /// Samples to present after the priming: the real audio length. Padding past it is cut by the edit list.
    pub presented: u64,
}

/// Everything `moov` needs about the video track besides its samples.
pub(crate) struct VideoTrackConfig {
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    pub sps: Vec<u8>,
    pub pps: Vec<u8>,
}

/// File-level metadata tags (iTunes-style `ilst`, which ffprobe lists under `format_tags`).
#[derive(Default)]
pub(crate) struct Tags {
    /// `©cmt`: shown by ffprobe as `comment`.
    pub comment: Option<String>,
    /// `©too`: shown by ffprobe as `encoder`.
    pub encoder: Option<String>,
}

/// Which track a chunk belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Track {
    Video,
    Audio,
}

/// Streaming MP4 muxer over any seekable writer.
pub(crate) struct Mp4Muxer<W: Write + Seek> {
    out: W,
    /// Current write position (bytes from the file start).
    pos: u64,
    /// Offset of the `mdat` box header.
    mdat_start: u64,
    video: TrackTable,
    audio: TrackTable,
    /// Track and sample count of the chunk being written, if any.
    open_chunk: Option<Track>,
}

impl<W: Write + Seek> Mp4Muxer<W> {
    /// Writes `ftyp` and the `mdat` header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let mut head = Vec::new();
        write_box(&mut head, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            put_u32(b, 0x200);
            for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        let mdat_start = head.len() as u64;
        // 64-bit `mdat` header (size 1 = "largesize follows"); the real size is patched in `finish`.
        put_u32(&mut head, 1);
        head.extend_from_slice(b"mdat");
        put_u64(&mut head, 0);
        out.write_all(&head)?;
        Ok(Self {
            out,
            pos: head.len() as u64,
            mdat_start,
            video: TrackTable::default(),
            audio: TrackTable::default(),
            open_chunk: None,
        })
    }

    /// Ends the current chunk; the next sample starts a new one.
    pub fn end_chunk(&mut self) {
        self.open_chunk = None;
    }

    /// Appends one sample made of `parts` (written back to back) to `track`, continuing the open chunk
    /// of that track or starting a new one.
    pub fn write_sample(&mut self, track: Track, parts: &[&[u8]], duration: u32, sync: bool) -> std::io::Result<()> {
        let size: usize = parts.iter().map(|p| p.len()).sum();
        let size = u32::try_from(size).map_err(|_| std::io::Error::other("an MP4 sample exceeds 4 GiB"))?;
        let table = match track {
            Track::Video => &mut self.video,
            Track::Audio => &mut self.audio,
        };
        if self.open_chunk == Some(track) {
            if let Some(last) = table.chunks.last_mut() {
                last.1 += 1;
            }
        } else {
            table.chunks.push((self.pos, 1));
            self.open_chunk = Some(track);
        }
        table.push_sample(size, duration, sync);
        for part in parts {
            self.out.write_all(part)?;
        }
        self.pos += u64::from(size);
        Ok(())
    }

    /// Patches the `mdat` size, writes `moov`, and returns the writer.
    pub fn finish(
        mut self,
        video: &VideoTrackConfig,
        audio: Option<&AudioTrackConfig>,
        tags: &Tags,
    ) -> std::io::Result<W> {
        let mdat_size = self.pos - self.mdat_start;
        let moov = build_moov(&self.video, video, audio.map(|a| (&self.audio, a)), tags);
        self.out.write_all(&moov)?;
        self.out.seek(SeekFrom::Start(self.mdat_start + 8))?;
        self.out.write_all(&mdat_size.to_be_bytes())?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// Appends a box `kind` whose body `body` writes; the size is filled in afterwards.
fn write_box(b: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = b.len();
    put_u32(b, 0);
    b.extend_from_slice(kind);
    body(b);
    let size = (b.len() - start) as u32;
    b[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (version + flags header).
fn write_full_box(b: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    write_box(b, kind, |b| {
        put_u32(b, (u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(b);
    });
}

/// Converts `value` ticks of timescale `from` to timescale `to`, rounding to nearest.
fn rescale(value: u64, from: u32, to: u32) -> u64 {
    (value * u64::from(to) + u64::from(from) / 2) / u64::from(from)
}

/// The identity transformation matrix of `mvhd`/`tkhd`.
fn put_matrix(b: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        put_u32(b, v);
    }
}

fn build_moov(
    video_table: &TrackTable,
    video: &VideoTrackConfig,
    audio: Option<(&TrackTable, &AudioTrackConfig)>,
    tags: &Tags,
) -> Vec<u8> {
    let video_duration = rescale(video_table.total_duration, video.timescale, MOVIE_TIMESCALE);
    let audio_duration = audio.map(|(_, a)| rescale(a.presented, a.sample_rate, MOVIE_TIMESCALE));
    let movie_duration = video_duration.max(audio_duration.unwrap_or(0));
    let mut b = Vec::new();
    write_box(&mut b, b"moov", |b| {
        write_full_box(b, b"mvhd", 1, 0, |b| {
            put_u64(b, 0); // creation time: left 0 so that output is reproducible
            put_u64(b, 0); // modification time
            put_u32(b, MOVIE_TIMESCALE);
            put_u64(b, movie_duration);
            put_u32(b, 0x0001_0000); // rate 1.0
            put_u16(b, 0x0100); // volume 1.0
            b.extend_from_slice(&[0; 10]);
            put_matrix(b);
            b.extend_from_slice(&[0; 24]); // pre_defined
            put_u32(b, if audio.is_some() { 3 } else { 2 }); // next track id
        });
        write_video_trak(b, video_table, video, video_duration);
        if let Some((table, config)) = audio {
            write_audio_trak(b, table, config, audio_duration.unwrap_or(0));
        }
        write_udta(b, tags);
    });
    b
}

fn write_tkhd(b: &mut Vec<u8>, track_id: u32, duration: u64, audio: bool, width: u32, height: u32) {
    // flags 3: track enabled and used in the presentation.
    write_full_box(b, b"tkhd", 1, 3, |b| {
        put_u64(b, 0);
        put_u64(b, 0);
        put_u32(b, track_id);
        put_u32(b, 0);
        put_u64(b, duration);
        b.extend_from_slice(&[0; 8]);
        put_u16(b, 0); // layer
        put_u16(b, u16::from(audio)); // alternate group: audio tracks form group 1
        put_u16(b, if audio { 0x0100 } else { 0 }); // volume
        put_u16(b, 0);
        put_matrix(b);
        put_u32(b, width << 16);
        put_u32(b, height << 16);
    });
}

fn write_mdhd(b: &mut Vec<u8>, timescale: u32, duration: u64) {
    write_full_box(b, b"mdhd", 1, 0, |b| {
        put_u64(b, 0);
        put_u64(b, 0);
        put_u32(b, timescale);
        put_u64(b, duration);
        // Language "und" packed as three 5-bit letters.
        let lang = b"und".iter().fold(0u16, |acc, c| (acc << 5) | u16::from(c - 0x60));
        put_u16(b, lang);
        put_u16(b, 0);
    });
}

fn write_hdlr(b: &mut Vec<u8>, handler: &[u8; 4], name: &str) {
    write_full_box(b, b"hdlr", 0, 0, |b| {
        put_u32(b, 0);
        b.extend_from_slice(handler);
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    });
}

fn write_dinf(b: &mut Vec<u8>) {
    write_box(b, b"dinf", |b| {
        write_full_box(b, b"dref", 0, 0, |b| {
            put_u32(b, 1);
            write_full_box(b, b"url ", 0, 1, |_| {}); // flag 1: media data is in this file
        });
    });
}

/// Writes `edts`/`elst` with one entry: present `segment` movie ticks starting at media time `media_time`.
fn write_edts(b: &mut Vec<u8>, segment: u64, media_time: u64) {
    write_box(b, b"edts", |b| {
        write_full_box(b, b"elst", 1, 0, |b| {
            put_u32(b, 1);
            put_u64(b, segment);
            put_u64(b, media_time);
            put_u16(b, 1); // media rate 1.0
            put_u16(b, 0);
        });
    });
}

/// Writes the sample-table boxes shared by both tracks (`stts`, `stss`, `stsc`, `stsz`, `stco`/`co64`).
fn write_sample_tables(b: &mut Vec<u8>, t: &TrackTable, with_sync: bool) {
    write_full_box(b, b"stts", 0, 0, |b| {
        put_u32(b, t.durations.len() as u32);
        for &(count, delta) in &t.durations {
            put_u32(b, count);
            put_u32(b, delta);
        }
    });
    // Without `stss` every sample is a sync sample: only write it when some are not.
    if with_sync && t.sync.len() != t.sizes.len() {
        write_full_box(b, b"stss", 0, 0, |b| {
            put_u32(b, t.sync.len() as u32);
            for &s in &t.sync {
                put_u32(b, s);
            }
        });
    }
    write_full_box(b, b"stsc", 0, 0, |b| {
        // Run-length: one entry each time the samples-per-chunk count changes.
        let mut entries: Vec<(u32, u32)> = Vec::new();
        for (i, &(_, n)) in t.chunks.iter().enumerate() {
            if entries.last().is_none_or(|&(_, last)| last != n) {
                entries.push((i as u32 + 1, n));
            }
        }
        put_u32(b, entries.len() as u32);
        for (first_chunk, n) in entries {
            put_u32(b, first_chunk);
            put_u32(b, n);
            put_u32(b, 1); // sample description index
        }
    });
    write_full_box(b, b"stsz", 0, 0, |b| {
        put_u32(b, 0);
        put_u32(b, t.sizes.len() as u32);
        for &s in &t.sizes {
            put_u32(b, s);
        }
    });
    if t.chunks.iter().all(|&(offset, _)| offset <= u64::from(u32::MAX)) {
        write_full_box(b, b"stco", 0, 0, |b| {
            put_u32(b, t.chunks.len() as u32);
            for &(offset, _) in &t.chunks {
                put_u32(b, offset as u32);
            }
        });
    } else {
        write_full_box(b, b"co64", 0, 0, |b| {
            put_u32(b, t.chunks.len() as u32);
            for &(offset, _) in &t.chunks {
                put_u64(b, offset);
            }
        });
    }
}

fn write_video_trak(b: &mut Vec<u8>, t: &TrackTable, v: &VideoTrackConfig, movie_duration: u64) {
    write_box(b, b"trak", |b| {
        write_tkhd(b, 1, movie_duration, false, v.width, v.height);
        write_box(b, b"mdia", |b| {
            write_mdhd(b, v.timescale, t.total_duration);
            write_hdlr(b, b"vide", "VideoHandler");
            write_box(b, b"minf", |b| {
                write_full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                write_dinf(b);
                write_box(b, b"stbl", |b| {
                    write_full_box(b, b"stsd", 0, 0, |b| {
                        put_u32(b, 1);
                        write_avc1(b, v);
                    });
                    write_sample_tables(b, t, true);
                });
            });
        });
    });
}

fn write_avc1(b: &mut Vec<u8>, v: &VideoTrackConfig) {
    write_box(b, b"avc1", |b| {
        b.extend_from_slice(&[0; 6]);
        put_u16(b, 1); // data reference index
        b.extend_from_slice(&[0; 16]);
        put_u16(b, v.width as u16);
        put_u16(b, v.height as u16);
        put_u32(b, 0x0048_0000); // 72 dpi
        put_u32(b, 0x0048_0000);
        put_u32(b, 0);
        put_u16(b, 1); // frame count per sample
        let mut name = [0u8; 32];
        let label = b"OpenH264";
        name[0] = label.len() as u8;
        name[1..=label.len()].copy_from_slice(label);
        b.extend_from_slice(&name);
        put_u16(b, 0x0018); // depth: colour, no alpha
        put_u16(b, 0xffff); // pre_defined -1
        write_box(b, b"avcC", |b| {
            b.push(1); // configuration version
            b.push(v.sps.get(1).copied().unwrap_or(66)); // profile
            b.push(v.sps.get(2).copied().unwrap_or(0)); // constraint flags
            b.push(v.sps.get(3).copied().unwrap_or(30)); // level
            b.push(0xfc | 3); // 4-byte NAL length fields
            b.push(0xe0 | 1); // one SPS
            put_u16(b, v.sps.len() as u16);
            b.extend_from_slice(&v.sps);
            b.push(1); // one PPS
            put_u16(b, v.pps.len() as u16);
            b.extend_from_slice(&v.pps);
        });
        // Square pixels, stated explicitly: some players guess otherwise for unusual sizes.
        write_box(b, b"pasp", |b| {
            put_u32(b, 1);
            put_u32(b, 1);
        });
    });
}

fn write_audio_trak(b: &mut Vec<u8>, t: &TrackTable, a: &AudioTrackConfig, movie_duration: u64) {
    write_box(b, b"trak", |b| {
        write_tkhd(b, 2, movie_duration, true, 0, 0);
        // The edit list is how priming samples are removed: presentation starts `priming` samples into the
        // media, and lasts exactly the real audio (cutting the encoder's tail padding).
        write_edts(b, movie_duration, u64::from(a.priming));
        write_box(b, b"mdia", |b| {
            write_mdhd(b, a.sample_rate, t.total_duration);
            write_hdlr(b, b"soun", "SoundHandler");
            write_box(b, b"minf", |b| {
                write_full_box(b, b"smhd", 0, 0, |b| put_u32(b, 0));
                write_dinf(b);
                write_box(b, b"stbl", |b| {
                    write_full_box(b, b"stsd", 0, 0, |b| {
                        put_u32(b, 1);
                        write_audio_sample_entry(b, a);
                    });
                    write_sample_tables(b, t, false);
                    if let AudioCodecConfig::Aac { .. } = a.codec {
                        write_aac_roll_group(b, t.sizes.len() as u32);
                    }
                });
            });
        });
    });
}

/// Declares that each AAC frame needs the previous one decoded first (roll distance -1), as ffmpeg writes.
fn write_aac_roll_group(b: &mut Vec<u8>, samples: u32) {
    write_full_box(b, b"sgpd", 1, 0, |b| {
        b.extend_from_slice(b"roll");
        put_u32(b, 2); // default length
        put_u32(b, 1); // entry count
        put_u16(b, (-1i16) as u16);
    });
    write_full_box(b, b"sbgp", 0, 0, |b| {
        b.extend_from_slice(b"roll");
        put_u32(b, 1);
        put_u32(b, samples);
        put_u32(b, 1);
    });
}

fn write_audio_sample_entry(b: &mut Vec<u8>, a: &AudioTrackConfig) {
    let kind = match a.codec {
        AudioCodecConfig::Aac { .. } => b"mp4a",
        AudioCodecConfig::Flac { .. } => b"fLaC",
    };
    write_box(b, kind, |b| {
        b.extend_from_slice(&[0; 6]);
        put_u16(b, 1); // data reference index
        b.extend_from_slice(&[0; 8]);
        put_u16(b, a.channels);
        put_u16(b, 16); // sample size
        put_u32(b, 0);
        // 16.16 fixed point; the rates we accept are all below 65536.
        put_u32(b, a.sample_rate << 16);
        match &a.codec {
            AudioCodecConfig::Aac {
                audio_specific_config,
                avg_bitrate,
                max_frame_bytes,
            } => {
                write_esds(b, audio_specific_config, *avg_bitrate, *max_frame_bytes);
            }
            AudioCodecConfig::Flac { streaminfo } => {
                write_full_box(b, b"dfLa", 0, 0, |b| {
                    // One metadata block: last-block flag set, type 0 (STREAMINFO), 24-bit length.
                    put_u32(b, 0x8000_0000 | streaminfo.len() as u32);
                    b.extend_from_slice(streaminfo);
                });
            }
        }
    });
}

/// Appends an MPEG-4 descriptor (tag + length in the 4-byte form + body).
fn put_descriptor(b: &mut Vec<u8>, tag: u8, body: &[u8]) {
    b.push(tag);
    let len = body.len() as u32;
    b.extend_from_slice(&[
        0x80 | (len >> 21) as u8 & 0x7f,
        0x80 | (len >> 14) as u8 & 0x7f,
        0x80 | (len >> 7) as u8 & 0x7f,
    ]);
    b.push(len as u8 & 0x7f);
    b.extend_from_slice(body);
}

fn write_esds(b: &mut Vec<u8>, asc: &[u8], avg_bitrate: u32, max_frame_bytes: u32) {
    write_full_box(b, b"esds", 0, 0, |b| {
        let mut decoder_config = vec![0x40, 0x15]; // MPEG-4 audio; audio stream
        decoder_config.extend_from_slice(&max_frame_bytes.to_be_bytes()[1..]); // buffer size, 24 bits
        decoder_config.extend_from_slice(&avg_bitrate.max(1).to_be_bytes()); // max bitrate (estimate)
        decoder_config.extend_from_slice(&avg_bitrate.to_be_bytes());
        put_descriptor(&mut decoder_config, 0x05, asc);
        let mut es = vec![0, 0, 0]; // ES id 0, no flags
        put_descriptor(&mut es, 0x04, &decoder_config);
        put_descriptor(&mut es, 0x06, &[0x02]); // SL config: predefined MP4
        put_descriptor(b, 0x03, &es);
    });
}

fn write_udta(b: &mut Vec<u8>, tags: &Tags) {
    let items: Vec<(&[u8; 4], &str)> = [(b"\xa9cmt", &tags.comment), (b"\xa9too", &tags.encoder)]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect();
    if items.is_empty() {
        return;
    }
    write_box(b, b"udta", |b| {
        write_full_box(b, b"meta", 0, 0, |b| {
            write_full_box(b, b"hdlr", 0, 0, |b| {
                put_u32(b, 0);
                b.extend_from_slice(b"mdir");
                b.extend_from_slice(b"appl");
                b.extend_from_slice(&[0; 9]);
            });
            write_box(b, b"ilst", |b| {
                for (key, value) in items {
                    write_box(b, key, |b| {
                        write_box(b, b"data", |b| {
                            put_u32(b, 1); // well-known type 1: UTF-8 text
                            put_u32(b, 0); // locale
                            b.extend_from_slice(value.as_bytes());
                        });
                    });
                }
            });
        });
    });
}
