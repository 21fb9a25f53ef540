//! Encoder delay ("priming") of AAC in MP4/M4A files.
//!
//! An AAC encoder emits its first output frame from a look-ahead, so decoded audio starts with
//! 1024 (ffmpeg) or 2112 (Apple) samples of priming, and ends with padding up to a whole frame.
//! The file says how much to drop, in the audio track's edit list (`moov/trak/edts/elst`:
//! skip `media_time`, keep `segment_duration`), or in Apple's `iTunSMPB` tag. Symphonia's MP4
//! reader does not apply either (its gapless support does not cover ISO/MP4), so without this the
//! speech would arrive ~46 ms late at 22.05 kHz and the lips lead the voice. Only the audio track's
//! edit list is read, through the shared box walker (`sadtalker-isobmff`) over the `moov` box.

use std::io::{Read, Seek};

/// What to trim from the decoded audio of an MP4 track, in samples at the track's rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mp4Trim {
    /// Silence to insert first (leading empty edits).
    pub leading_silence: u64,
    /// Decoded samples to drop at the start (encoder priming).
    pub skip: u64,
    /// Samples to keep after the skip (`None`: keep all, only the end padding stays).
    pub keep: Option<u64>,
    /// Where the numbers came from (`edit list` or `iTunSMPB`), for reporting.
    pub source: &'static str,
}

/// Whether `head` (the first bytes of a file) starts an ISO base-media file (`ftyp` box).
pub fn looks_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8 && &head[4..8] == b"ftyp"
}

/// Reads the trim of the first audio track, or `None` when the file gives none (then nothing
/// is trimmed, as ffmpeg does). `sample_rate` converts media-time units to samples.
pub fn read_trim<R: Read + Seek>(file: &mut R, sample_rate: u32) -> std::io::Result<Option<Mp4Trim>> {
    let Some(moov) = find_moov(file)? else {
        return Ok(None);
    };
    let mut movie_timescale = None;
    if let Some(mvhd) = child(&moov, b"mvhd") {
        movie_timescale = timescale(mvhd, 12, 20);
    }
    for trak in children(&moov).filter(|(t, _)| t == b"trak").map(|(_, b)| b) {
        let Some(mdia) = child(trak, b"mdia") else { continue };
        let is_audio = child(mdia, b"hdlr").is_some_and(|h| h.len() >= 12 && &h[8..12] == b"soun");
        if !is_audio {
            continue;
        }
        let media_timescale = child(mdia, b"mdhd").and_then(|m| timescale(m, 12, 20));
        let edits = child(trak, b"edts")
            .and_then(|e| child(e, b"elst"))
            .map(parse_elst)
            .unwrap_or_default();
        if let (Some(movie_ts), Some(media_ts)) = (movie_timescale, media_timescale)
            && !edits.is_empty()
        {
            return Ok(Some(trim_from_edits(&edits, movie_ts, media_ts, sample_rate)));
        }
        break;
    }
    Ok(itunsmpb(&moov))
}

/// One edit: duration in movie timescale units, start in media timescale units (-1 = empty).
#[derive(Clone, Copy, Debug)]
struct Edit {
    segment_duration: u64,
    media_time: i64,
}

fn trim_from_edits(edits: &[Edit], movie_ts: u32, media_ts: u32, sample_rate: u32) -> Mp4Trim {
    let to_samples = |v: u64, ts: u32| -> u64 {
        // Round to the nearest sample; exact when the timescale is the sample rate.
        let samples = (u128::from(v) * u128::from(sample_rate) + u128::from(ts) / 2) / u128::from(ts.max(1));
        // Saturate rather than wrap: the caller bounds the result against the duration limit.
        u64::try_from(samples).unwrap_or(u64::MAX)
    };
    let mut trim = Mp4Trim {
        source: "edit list",
        ..Mp4Trim::default()
    };
    for e in edits {
        if e.media_time < 0 {
            trim.leading_silence = trim
                .leading_silence
                .saturating_add(to_samples(e.segment_duration, movie_ts));
            continue;
        }
        trim.skip = to_samples(e.media_time as u64, media_ts);
        // A zero duration means "to the end" (fragmented files).
        trim.keep = (e.segment_duration > 0).then(|| to_samples(e.segment_duration, movie_ts));
        // Later edits (re-ordering, repeats) are not used by speech files; ignore them.
        break;
    }
    trim
}

fn parse_elst(b: &[u8]) -> Vec<Edit> {
    let mut edits = Vec::new();
    if b.len() < 8 {
        return edits;
    }
    let version = b[0];
    let count = be32(&b[4..8]) as usize;
    let entry = if version == 1 { 20 } else { 12 };
    let mut at = 8;
    for _ in 0..count {
        if at + entry > b.len() {
            break;
        }
        let e = &b[at..at + entry];
        let (segment_duration, media_time) = if version == 1 {
            (be64(&e[0..8]), be64(&e[8..16]) as i64)
        } else {
            (u64::from(be32(&e[0..4])), i64::from(be32(&e[4..8]) as i32))
        };
        edits.push(Edit {
            segment_duration,
            media_time,
        });
        at += entry;
    }
    edits
}

/// The timescale field of a full box (`mvhd`/`mdhd`): at `v0_at` for version 0, `v1_at` for 1.
fn timescale(b: &[u8], v0_at: usize, v1_at: usize) -> Option<u32> {
    let at = if *b.first()? == 1 { v1_at } else { v0_at };
    let ts = be32(b.get(at..at + 4)?);
    (ts > 0).then_some(ts)
}

/// Apple's `iTunSMPB` tag: `" 00000000 PPPPPPPP NNNNNNNN LLLLLLLLLLLLLLLL ..."` (hex: priming,
/// padding, original length).
fn itunsmpb(moov: &[u8]) -> Option<Mp4Trim> {
    let at = moov.windows(8).position(|w| w == b"iTunSMPB")?;
    let rest = &moov[at + 8..];
    let data = rest.windows(4).position(|w| w == b"data")?;
    // `data` box: type(4) + 4 bytes type indicator + 4 bytes locale, then the text.
    let text_start = data + 4 + 8;
    let size_start = data.checked_sub(4)?;
    let size = be32(rest.get(size_start..data)?) as usize;
    let text = rest.get(text_start..size_start + size)?;
    let text = std::str::from_utf8(text).ok()?;
    let fields: Vec<u64> = text
        .split_whitespace()
        .filter_map(|f| u64::from_str_radix(f, 16).ok())
        .collect();
    let (skip, length) = (*fields.get(1)?, *fields.get(3)?);
    Some(Mp4Trim {
        leading_silence: 0,
        skip,
        keep: (length > 0).then_some(length),
        source: "iTunSMPB",
    })
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The `moov` box's body. A file whose boxes cannot be walked gives none: the decoder reports what
/// is wrong with it.
fn find_moov<R: Read + Seek>(file: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    // A moov of more than 64 MiB is not a speech clip; refuse to buffer it.
    match sadtalker_isobmff::find_top_level(file, b"moov", 64 << 20) {
        Ok(moov) => Ok(moov),
        Err(sadtalker_isobmff::BoxError::Io(e)) => Err(e),
        Err(sadtalker_isobmff::BoxError::Invalid(_)) => Ok(None),
    }
}

/// The child boxes of a container payload, `(type, payload)`, up to the first malformed one.
fn children(payload: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    sadtalker_isobmff::children(payload).map_while(Result::ok)
}

fn child<'a>(payload: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(payload).find(|(k, _)| k == kind).map(|(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_list_with_priming() {
        // elst v0: one edit, 5000 ms kept, media starts at 1024.
        let mut elst = vec![0, 0, 0, 0];
        elst.extend_from_slice(&1u32.to_be_bytes());
        elst.extend_from_slice(&5000u32.to_be_bytes());
        elst.extend_from_slice(&1024u32.to_be_bytes());
        elst.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        let edits = parse_elst(&elst);
        let t = trim_from_edits(&edits, 1000, 22050, 22050);
        assert_eq!((t.skip, t.keep, t.leading_silence), (1024, Some(110_250), 0));
    }

    #[test]
    fn itunes_tag() {
        let text = b" 00000000 00000840 000001CA 0000000000003E4A 00000000";
        let mut moov = b"....----....name....iTunSMPB".to_vec();
        moov.extend_from_slice(&((16 + text.len()) as u32).to_be_bytes());
        moov.extend_from_slice(b"data\0\0\0\x01\0\0\0\0");
        moov.extend_from_slice(text);
        let t = itunsmpb(&moov).unwrap();
        assert_eq!((t.skip, t.keep), (0x840, Some(0x3E4A)));
    }
}
