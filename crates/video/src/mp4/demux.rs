//! Reads the video track's sample table from an MP4/MOV file: enough to decode its H.264 samples in
//! order, and to name the codec precisely when it is not H.264.
//!
//! Hand-written (the sample tables, over the shared box walker `sadtalker-isobmff`) so that every kind of unusable file gets an
//! error that names the problem, including codecs other crates' readers reject with a generic parse error.

use std::io::{Read, Seek, SeekFrom};

use sadtalker_isobmff::{BoxError, fourcc, read_header};

/// Largest `moov` we load: real ones are kilobytes to a few megabytes.
const MAX_MOOV_BYTES: u64 = 256 << 20;

/// Why a file could not be demuxed; turned into a [`crate::VideoError`] with the path by the caller.
#[derive(Debug)]
pub(crate) enum DemuxError {
    Io(std::io::Error),
    /// Not usable, with a human-readable reason.
    Invalid(String),
    /// A video track with a codec we do not decode (its sample-entry code and a readable name).
    Codec(String),
}

impl From<std::io::Error> for DemuxError {
    fn from(e: std::io::Error) -> Self {
        DemuxError::Io(e)
    }
}

impl From<BoxError> for DemuxError {
    fn from(e: BoxError) -> Self {
        match e {
            BoxError::Io(e) => DemuxError::Io(e),
            BoxError::Invalid(m) => DemuxError::Invalid(m),
        }
    }
}

type DResult<T> = std::result::Result<T, DemuxError>;

fn invalid<T>(msg: impl Into<String>) -> DResult<T> {
    Err(DemuxError::Invalid(msg.into()))
}

/// The video track of a file, ready to decode.
#[derive(Debug)]
pub(crate) struct VideoTrack {
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    /// Sum of sample durations, in `timescale` ticks.
    pub duration: u64,
    /// Decode-order samples as (file offset, size).
    pub samples: Vec<(u64, u32)>,
    /// Sample durations in decode order, run-length encoded as in `stts`.
    pub durations: Vec<(u32, u32)>,
    /// SPS and PPS NAL units from `avcC`.
    pub parameter_sets: Vec<Vec<u8>>,
    /// Bytes in each NAL length prefix (1, 2 or 4).
    pub nal_length_size: usize,
    /// Whether the file also has an audio track.
    pub has_audio: bool,
}

impl VideoTrack {
    /// Frames per second: exact for constant-rate tracks, the average otherwise.
    pub fn fps(&self) -> f64 {
        match self.durations.as_slice() {
            [(_, delta)] if *delta > 0 => f64::from(self.timescale) / f64::from(*delta),
            _ if self.duration > 0 => self.samples.len() as f64 * f64::from(self.timescale) / self.duration as f64,
            _ => 0.0,
        }
    }
}

/// Finds `moov` at the top level and returns its body and the file length; names the container when it
/// is not MP4.
fn load_moov<R: Read + Seek>(r: &mut R) -> DResult<(Vec<u8>, u64)> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut magic = [0u8; 12];
    let n = r.read(&mut magic)?;
    let magic = &magic[..n];
    if magic.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return invalid("this is a Matroska/WebM file, not MP4");
    }
    if magic.starts_with(b"RIFF") {
        return invalid("this is an AVI (RIFF) file, not MP4");
    }
    if magic.starts_with(b"GIF8") {
        return invalid("this is a GIF image, not an MP4 video");
    }
    if n < 8
        || !matches!(
            &magic[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"free" | b"skip" | b"wide" | b"pnot"
        )
    {
        return invalid("not an MP4/MOV file (no 'ftyp' or 'moov' box at the start)");
    }
    let mut pos = 0u64;
    let mut saw_moof = false;
    while pos < file_len {
        r.seek(SeekFrom::Start(pos))?;
        let Some(h) = read_header(r, pos)? else { break };
        let len = h.len_in(file_len);
        match &h.kind {
            b"moov" => {
                if len > MAX_MOOV_BYTES {
                    return invalid(format!("its 'moov' index is {len} bytes, larger than any real video's"));
                }
                // Checked before allocating: a size field cannot make us reserve more than the file holds.
                if h.body_start.saturating_add(len) > file_len {
                    return invalid("the 'moov' index is truncated (an incomplete copy or an unfinished recording)");
                }
                let mut body = vec![0u8; len as usize];
                r.read_exact(&mut body).map_err(|_| {
                    DemuxError::Invalid(
                        "the 'moov' index is truncated (an incomplete copy or an unfinished recording)".into(),
                    )
                })?;
                return Ok((body, file_len));
            }
            b"moof" => saw_moof = true,
            _ => {}
        }
        pos = h.body_start.saturating_add(len);
    }
    if saw_moof {
        return invalid("fragmented MP4 without a 'moov' index is not supported");
    }
    invalid("no 'moov' index (an incomplete copy or an unfinished recording)")
}

/// The children of a box body (the shared walker; its errors are this reader's `Invalid`).
fn children(data: &[u8]) -> impl Iterator<Item = DResult<([u8; 4], &[u8])>> {
    sadtalker_isobmff::children(data).map(|c| c.map_err(DemuxError::from))
}

/// The first child of type `kind`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> DResult<Option<&'a [u8]>> {
    Ok(sadtalker_isobmff::child(data, kind)?)
}

fn require<'a>(data: &'a [u8], kind: &[u8; 4], parent: &str) -> DResult<&'a [u8]> {
    child(data, kind)?.map_or_else(|| invalid(format!("'{parent}' has no '{}' box", fourcc(kind))), Ok)
}

/// Big-endian reader over a box body, failing cleanly on truncation.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn bytes(&mut self, n: usize) -> DResult<&'a [u8]> {
        match self.data.get(self.pos..self.pos + n) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => invalid(format!("the '{}' box is truncated", self.what)),
        }
    }

    fn u8(&mut self) -> DResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> DResult<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> DResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> DResult<u64> {
        let b = self.bytes(8)?;
        Ok(u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }

    /// Reads an entry count and checks that `count * entry_size` bytes follow (guards huge allocations).
    fn count(&mut self, entry_size: usize) -> DResult<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry_size) > self.data.len() - self.pos {
            return invalid(format!("the '{}' box claims more entries than it holds", self.what));
        }
        Ok(n)
    }
}

/// A readable name for a video sample-entry code.
fn codec_name(code: &[u8; 4]) -> String {
    let name = match code {
        b"hvc1" | b"hev1" => "H.265/HEVC",
        b"av01" => "AV1",
        b"vp09" => "VP9",
        b"vp08" => "VP8",
        b"mp4v" => "MPEG-4 Part 2",
        b"jpeg" | b"mjpa" | b"mjpb" => "Motion JPEG",
        b"apcn" | b"apch" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "Apple ProRes",
        b"s263" | b"h263" => "H.263",
        b"dvh1" | b"dvhe" => "Dolby Vision (HEVC)",
        b"encv" => "encrypted video",
        _ => "an unknown codec",
    };
    format!("{name} ('{}')", fourcc(code))
}

/// One track's sample table and description, whatever its kind.
#[derive(Debug)]
pub(crate) struct TrackTable {
    /// Handler type: `vide`, `soun`, …
    pub handler: [u8; 4],
    pub timescale: u32,
    /// Sum of sample durations, in `timescale` ticks.
    pub duration: u64,
    /// Sample-entry code (`avc1`, `mp4a`, …) and the entry's body.
    pub code: [u8; 4],
    pub entry: Vec<u8>,
    /// Decode-order samples as (file offset, size).
    pub samples: Vec<(u64, u32)>,
    /// Sample durations, run-length encoded as in `stts`.
    pub durations: Vec<(u32, u32)>,
    /// First edit-list entry: (segment duration in movie ticks, media time in track ticks; -1 = empty).
    #[allow(
        dead_code,
        reason = "checked by tests; the reader ignores edit lists, as OpenCV's does for video"
    )]
    pub edit: Option<(u64, i64)>,
}

/// Parses every track of the file, plus the movie timescale.
pub(crate) fn read_tracks<R: Read + Seek>(r: &mut R) -> DResult<(u32, Vec<TrackTable>)> {
    let (moov, file_len) = load_moov(r)?;
    let mvhd = require(&moov, b"mvhd", "moov")?;
    let mut c = Cursor::new(mvhd, "mvhd");
    let version = c.u8()?;
    c.bytes(if version == 1 { 19 } else { 11 })?;
    let movie_timescale = c.u32()?;
    let mut tracks = Vec::new();
    for ch in children(&moov) {
        let (kind, trak) = ch?;
        if &kind == b"trak" {
            let track = parse_trak(trak, file_len)?;
            // Every sample must lie inside the file: a damaged index could otherwise ask for gigabytes.
            if track
                .samples
                .iter()
                .any(|&(offset, size)| offset.saturating_add(u64::from(size)) > file_len)
            {
                return invalid(format!(
                    "the '{}' track's samples lie past the end of the file (an incomplete copy?)",
                    fourcc(&track.handler)
                ));
            }
            tracks.push(track);
        }
    }
    Ok((movie_timescale, tracks))
}

/// Parses the first video track of the file.
pub(crate) fn read_video_track<R: Read + Seek>(r: &mut R) -> DResult<VideoTrack> {
    let (_, tracks) = read_tracks(r)?;
    let has_audio = tracks.iter().any(|t| &t.handler == b"soun");
    let Some(t) = tracks.into_iter().find(|t| &t.handler == b"vide") else {
        return invalid("the file has no video track");
    };
    if !matches!(&t.code, b"avc1" | b"avc3") {
        return Err(DemuxError::Codec(codec_name(&t.code)));
    }
    // VisualSampleEntry: 6 reserved + 2 dref + 16 predefined, then width, height, …, 78 bytes in all.
    let mut c = Cursor::new(&t.entry, "avc1");
    c.bytes(24)?;
    let width = u32::from(c.u16()?);
    let height = u32::from(c.u16()?);
    let extensions = t.entry.get(78..).unwrap_or_default();
    let (parameter_sets, nal_length_size) = match child(extensions, b"avcC")? {
        Some(avcc) => parse_avcc(avcc)?,
        None if &t.code == b"avc3" => (Vec::new(), 4), // parameter sets in band
        None => return invalid("the H.264 track has no 'avcC' configuration"),
    };
    if t.samples.is_empty() {
        return invalid("the video track has no samples (a fragmented MP4 is not supported)");
    }
    Ok(VideoTrack {
        width,
        height,
        timescale: t.timescale,
        duration: t.duration,
        samples: t.samples,
        durations: t.durations,
        parameter_sets,
        nal_length_size,
        has_audio,
    })
}

/// One track's tables; `file_len` bounds what the tables may describe before anything is allocated.
fn parse_trak(trak: &[u8], file_len: u64) -> DResult<TrackTable> {
    let edit = match child(trak, b"edts")? {
        Some(edts) => match child(edts, b"elst")? {
            Some(elst) => {
                let mut c = Cursor::new(elst, "elst");
                let version = c.u8()?;
                c.bytes(3)?;
                if c.u32()? == 0 {
                    None
                } else if version == 1 {
                    Some((c.u64()?, c.u64()? as i64))
                } else {
                    Some((u64::from(c.u32()?), i64::from(c.u32()? as i32)))
                }
            }
            None => None,
        },
        None => None,
    };
    let mdia = require(trak, b"mdia", "trak")?;
    let hdlr = require(mdia, b"hdlr", "mdia")?;
    let mut handler = [0u8; 4];
    handler.copy_from_slice(hdlr.get(8..12).unwrap_or(b"????"));
    let mdhd = require(mdia, b"mdhd", "mdia")?;
    let mut c = Cursor::new(mdhd, "mdhd");
    let version = c.u8()?;
    c.bytes(if version == 1 { 19 } else { 11 })?;
    let timescale = c.u32()?;
    if timescale == 0 {
        return invalid(format!("the '{}' track's timescale is 0", fourcc(&handler)));
    }
    let minf = require(mdia, b"minf", "mdia")?;
    let stbl = require(minf, b"stbl", "minf")?;

    // Sample description: the first entry's code and body.
    let stsd = require(stbl, b"stsd", "stbl")?;
    let Some(entry) = children(stsd.get(8..).unwrap_or_default()).next() else {
        return invalid(format!("the '{}' track has no sample description", fourcc(&handler)));
    };
    let (code, entry) = entry?;

    // Timing.
    let stts = require(stbl, b"stts", "stbl")?;
    let mut c = Cursor::new(stts, "stts");
    c.bytes(4)?;
    let n = c.count(8)?;
    let mut durations = Vec::with_capacity(n);
    let mut duration = 0u64;
    for _ in 0..n {
        let (count, delta) = (c.u32()?, c.u32()?);
        durations.push((count, delta));
        duration = duration.saturating_add(u64::from(count) * u64::from(delta));
    }

    // Sizes.
    let sizes: Vec<u32> = if let Some(stsz) = child(stbl, b"stsz")? {
        let mut c = Cursor::new(stsz, "stsz");
        c.bytes(4)?;
        let fixed = c.u32()?;
        if fixed != 0 {
            let n = c.u32()?;
            // `n` samples of `fixed` bytes each must fit in the file: the count is otherwise unchecked
            // (the table lists no sizes), and 2^32 samples would be 80 GB of index.
            if u64::from(n).saturating_mul(u64::from(fixed)) > file_len {
                return invalid(format!(
                    "the 'stsz' box claims {n} samples of {fixed} bytes, more than the file holds"
                ));
            }
            vec![fixed; n as usize]
        } else {
            let n = c.count(4)?;
            (0..n).map(|_| c.u32()).collect::<DResult<_>>()?
        }
    } else if child(stbl, b"stz2")?.is_some() {
        return invalid("compact sample sizes ('stz2') are not supported");
    } else {
        return invalid(format!("the '{}' track has no sample size table", fourcc(&handler)));
    };

    // Chunk offsets and the sample-to-chunk map.
    let offsets: Vec<u64> = if let Some(stco) = child(stbl, b"stco")? {
        let mut c = Cursor::new(stco, "stco");
        c.bytes(4)?;
        let n = c.count(4)?;
        (0..n).map(|_| c.u32().map(u64::from)).collect::<DResult<_>>()?
    } else if let Some(co64) = child(stbl, b"co64")? {
        let mut c = Cursor::new(co64, "co64");
        c.bytes(4)?;
        let n = c.count(8)?;
        (0..n).map(|_| c.u64()).collect::<DResult<_>>()?
    } else {
        return invalid(format!("the '{}' track has no chunk offset table", fourcc(&handler)));
    };
    let stsc = require(stbl, b"stsc", "stbl")?;
    let mut c = Cursor::new(stsc, "stsc");
    c.bytes(4)?;
    let n = c.count(12)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let (first_chunk, per_chunk) = (c.u32()?, c.u32()?);
        c.u32()?;
        if first_chunk == 0 {
            return invalid("the 'stsc' box numbers a chunk 0");
        }
        runs.push((first_chunk as usize - 1, per_chunk as usize));
    }

    let mut samples = Vec::with_capacity(sizes.len());
    for (i, &(first, per_chunk)) in runs.iter().enumerate() {
        let last = runs.get(i + 1).map_or(offsets.len(), |r| r.0);
        for &chunk_offset in offsets.get(first..last.min(offsets.len())).unwrap_or_default() {
            let mut offset = chunk_offset;
            for _ in 0..per_chunk {
                let Some(&size) = sizes.get(samples.len()) else { break };
                samples.push((offset, size));
                offset = offset.saturating_add(u64::from(size));
            }
        }
    }
    if samples.len() != sizes.len() {
        return invalid(format!(
            "the chunk tables place {} samples but the size table lists {}",
            samples.len(),
            sizes.len()
        ));
    }
    Ok(TrackTable {
        handler,
        timescale,
        duration,
        code,
        entry: entry.to_vec(),
        samples,
        durations,
        edit,
    })
}

/// Parses an `avcC` record: SPS/PPS NAL units and the NAL length-field size.
fn parse_avcc(avcc: &[u8]) -> DResult<(Vec<Vec<u8>>, usize)> {
    let mut c = Cursor::new(avcc, "avcC");
    c.bytes(4)?;
    let nal_length_size = usize::from(c.u8()? & 3) + 1;
    if nal_length_size == 3 {
        return invalid("the 'avcC' box declares 3-byte NAL lengths, which H.264 does not allow");
    }
    let mut sets = Vec::new();
    let sps_count = c.u8()? & 0x1f;
    for _ in 0..sps_count {
        let len = usize::from(c.u16()?);
        sets.push(c.bytes(len)?.to_vec());
    }
    let pps_count = c.u8()?;
    for _ in 0..pps_count {
        let len = usize::from(c.u16()?);
        sets.push(c.bytes(len)?.to_vec());
    }
    Ok((sets, nal_length_size))
}
