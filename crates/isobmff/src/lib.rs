//! ISO base-media file format (MP4, M4A, MOV) box walking: the one implementation behind the audio
//! reader's edit-list lookup (`sadtalker-audio`) and the video demuxer (`sadtalker-video`).
//!
//! Hand-written (box headers and child iteration are a few dozen lines) because both readers need only
//! the `moov` index, must bound every size read from the file before allocating, and must name the box
//! at fault; the crates that parse whole MP4 files reject unusual files with a generic error.

use std::io::{Read, Seek, SeekFrom};

/// A box that cannot be walked.
#[derive(Debug, thiserror::Error)]
pub enum BoxError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A size that cannot be right (smaller than the header, past the parent's end, too large).
    #[error("{0}")]
    Invalid(String),
}

/// A box header read from a file: its type and where its body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoxHeader {
    /// The four-character type.
    pub kind: [u8; 4],
    /// Offset of the body in the file.
    pub body_start: u64,
    /// Length of the body; `None`: the box extends to the end of the file (size 0).
    pub body_len: Option<u64>,
}

impl BoxHeader {
    /// The body length, with a size-0 box taken to end at `file_len`.
    pub fn len_in(&self, file_len: u64) -> u64 {
        self.body_len.unwrap_or(file_len.saturating_sub(self.body_start))
    }
}

/// Reads the header of the box at `pos` (the reader must be positioned there). `None` at the end of
/// the file.
pub fn read_header<R: Read>(r: &mut R, pos: u64) -> Result<Option<BoxHeader>, BoxError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let kind = [head[4], head[5], head[6], head[7]];
    let (body_start, body_len) = match size {
        0 => (pos + 8, None),
        1 => {
            let mut large = [0u8; 8];
            r.read_exact(&mut large)?;
            let large = u64::from_be_bytes(large);
            if large < 16 {
                return Err(BoxError::Invalid(format!(
                    "box '{}' has an impossible size",
                    fourcc(&kind)
                )));
            }
            (pos + 16, Some(large - 16))
        }
        s if s < 8 => {
            return Err(BoxError::Invalid(format!(
                "box '{}' has an impossible size {s}",
                fourcc(&kind)
            )));
        }
        s => (pos + 8, Some(u64::from(s) - 8)),
    };
    Ok(Some(BoxHeader {
        kind,
        body_start,
        body_len,
    }))
}

/// Finds the first top-level box of type `kind` and reads its body, refusing one larger than
/// `max_len` bytes (checked before allocating). Other boxes, the large `mdat` included, are skipped
/// by seeking. `None` when there is no such box.
pub fn find_top_level<R: Read + Seek>(r: &mut R, kind: &[u8; 4], max_len: u64) -> Result<Option<Vec<u8>>, BoxError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    let mut pos = 0u64;
    while pos < file_len {
        r.seek(SeekFrom::Start(pos))?;
        let Some(h) = read_header(r, pos)? else { break };
        let len = h.len_in(file_len);
        if h.body_start.saturating_add(len) > file_len {
            return Err(BoxError::Invalid(format!(
                "box '{}' claims {len} bytes, past the end of the file",
                fourcc(&h.kind)
            )));
        }
        if &h.kind == kind {
            if len > max_len {
                return Err(BoxError::Invalid(format!(
                    "its '{}' box is {len} bytes, larger than the {max_len} this reader accepts",
                    fourcc(kind)
                )));
            }
            let mut body = vec![0u8; len as usize];
            r.read_exact(&mut body)?;
            return Ok(Some(body));
        }
        pos = h.body_start.saturating_add(len);
    }
    Ok(None)
}

/// The child boxes of a body held in memory, `(type, body)`, in order; a child that runs past its
/// parent ends the iteration with an error.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<([u8; 4], &'a [u8]), BoxError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.data[self.pos..];
        if rest.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        let (start, end) = match size {
            0 => (8, rest.len()),
            1 if rest.len() >= 16 => {
                let large = u64::from_be_bytes([
                    rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15],
                ]);
                (16, usize::try_from(large).unwrap_or(usize::MAX))
            }
            s => (8, s),
        };
        if end < start || end > rest.len() {
            self.pos = self.data.len();
            return Some(Err(BoxError::Invalid(format!(
                "box '{}' runs past its parent",
                fourcc(&kind)
            ))));
        }
        self.pos += end;
        Some(Ok((kind, &rest[start..end])))
    }
}

/// The children of `data` (a container box's body).
pub fn children(data: &[u8]) -> Children<'_> {
    Children { data, pos: 0 }
}

/// The first child of type `kind`.
pub fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, BoxError> {
    for c in children(data) {
        let (k, body) = c?;
        if &k == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// A box type as text, for messages (`'avc1'`); bytes that are not printable show as `?`.
pub fn fourcc(kind: &[u8]) -> String {
    kind.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn walks_children_and_refuses_overruns() {
        let mut moov = boxed(b"mvhd", &[1, 2, 3]);
        moov.extend(boxed(b"trak", &boxed(b"mdia", &[9])));
        let kinds: Vec<[u8; 4]> = children(&moov).map(|c| c.expect("child").0).collect();
        assert_eq!(kinds, [*b"mvhd", *b"trak"]);
        let trak = child(&moov, b"trak").expect("walk").expect("trak");
        assert_eq!(child(trak, b"mdia").expect("walk"), Some(&[9u8][..]));
        assert_eq!(child(&moov, b"udta").expect("walk"), None);
        let mut bad = boxed(b"mvhd", &[1]);
        bad[3] = 200;
        assert!(matches!(children(&bad).next(), Some(Err(BoxError::Invalid(m))) if m.contains("mvhd")));
        assert_eq!(fourcc(b"a\x01c1"), "a?c1");
    }

    #[test]
    fn top_level_search_skips_boxes_and_bounds_the_read() {
        let mut file = boxed(b"ftyp", b"M4A ");
        file.extend(boxed(b"mdat", &[0; 100]));
        file.extend(boxed(b"moov", &[7; 20]));
        let mut r = std::io::Cursor::new(file.clone());
        assert_eq!(
            find_top_level(&mut r, b"moov", 1 << 20).expect("found"),
            Some(vec![7; 20])
        );
        assert!(matches!(find_top_level(&mut r, b"moov", 10), Err(BoxError::Invalid(_))));
        assert_eq!(find_top_level(&mut r, b"udta", 1 << 20).expect("walk"), None);
        // A box whose size runs past the end of the file is refused, not allocated.
        let mut lying = boxed(b"ftyp", b"M4A ");
        lying.extend(boxed(b"moov", &[0; 4]));
        let at = lying.len() - 12;
        lying[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(find_top_level(&mut std::io::Cursor::new(lying), b"moov", u64::MAX).is_err());
    }
}
