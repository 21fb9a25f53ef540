//! The prepared portrait, kept between jobs: the crop, its 3DMM coefficients and the renderer's source
//! (keypoints and encoded volume), keyed by the portrait's pixels and the options that shape them. A
//! second recording for the same portrait — the common case in `batch` and `serve` — goes straight from
//! reading the inputs to the audio stages.
//!
//! The key hashes the decoded pixels (after EXIF orientation), so the same picture saved under another
//! name or in another format is a hit, and any edit is a miss. The cache lives in [`crate::Models`]: it
//! is only valid for the networks that made the entries, which a `Models` never changes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use image::RgbImage;
use sadtalker_preprocess::Landmarks68;
use sadtalker_preprocess::extract::Extracted;
use sadtalker_render::PreparedSource;
use sha2::{Digest, Sha256};

use crate::options::GenerateOptions;

/// Entries kept by default: at 512 an entry holds about 40 MB (the source volume is 32 × 16 × 128 × 128
/// floats), so the default costs at most ~160 MB.
pub const DEFAULT_SOURCE_CACHE: usize = 4;

/// What identifies a prepared portrait: SHA-256 over the pixels and every option the preparation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortraitKey([u8; 32]);

impl PortraitKey {
    /// The key of `image` prepared for `opts`, with the given landmarks (`--landmarks`) if any.
    ///
    /// Read by the preparation: the preprocess mode, the render size (the crop's picture size and the
    /// renderer), `--old-version` (other networks), and the face choice — the given landmarks, or the
    /// detector's face index and threshold. Everything else (`--still`, `--expression-scale`, poses,
    /// the seed, the enhancer) acts later and does not enter the key.
    pub fn new(image: &RgbImage, opts: &GenerateOptions, landmarks: Option<&Landmarks68>) -> Self {
        let mut h = Sha256::new();
        h.update(b"sadtalker portrait v1\0");
        h.update(image.width().to_le_bytes());
        h.update(image.height().to_le_bytes());
        h.update(image.as_raw());
        h.update(format!("{:?}\0", opts.preprocess).as_bytes());
        h.update(opts.size.to_le_bytes());
        h.update([u8::from(opts.old_version)]);
        match landmarks {
            Some(lm) => {
                h.update(b"given\0");
                for [x, y] in lm.0 {
                    h.update(x.to_bits().to_le_bytes());
                    h.update(y.to_bits().to_le_bytes());
                }
            }
            None => {
                h.update(b"detect\0");
                h.update((opts.face_index as u64).to_le_bytes());
                h.update(opts.face_threshold.to_bits().to_le_bytes());
            }
        }
        Self(h.finalize().into())
    }
}

/// A portrait ready for the audio stages and the frame loop.
pub struct PreparedPortrait {
    /// The crop, its coefficients and its record.
    pub extracted: Extracted,
    /// The renderer's source-only work.
    pub source: PreparedSource,
    /// The source coefficient window `source` was prepared with; a job whose window differs (which the
    /// key should make impossible) prepares its own.
    pub source_semantics: Vec<f32>,
}

/// A small least-recently-used cache of [`PreparedPortrait`]s, shared by the jobs of one process. (A
/// handful of entries: a linear scan beats a map, and no LRU crate is needed for it.)
pub struct SourceCache<V = PreparedPortrait> {
    capacity: usize,
    entries: Mutex<VecDeque<(PortraitKey, Arc<V>)>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Lookups so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Jobs whose portrait was prepared before.
    pub hits: u64,
    /// Jobs that prepared their portrait.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
    /// The most entries held.
    pub capacity: usize,
}

impl<V> SourceCache<V> {
    /// A cache of at most `capacity` portraits (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The portrait of `key`, if kept (and counts the lookup).
    pub fn get(&self, key: &PortraitKey) -> Option<Arc<V>> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = crate::models::lock(&self.entries);
        let found = entries.iter().position(|(k, _)| k == key);
        let hit = found.and_then(|i| entries.remove(i)).map(|entry| {
            let value = entry.1.clone();
            // Most recently used at the back.
            entries.push_back(entry);
            value
        });
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps `value` under `key`, dropping the least recently used entry when full.
    pub fn insert(&self, key: PortraitKey, value: Arc<V>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = crate::models::lock(&self.entries);
        entries.retain(|(k, _)| *k != key);
        while entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back((key, value));
    }

    /// Hits, misses and size.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: crate::models::lock(&self.entries).len(),
            capacity: self.capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sadtalker_preprocess::PreprocessMode;

    fn key(image: &RgbImage, f: impl FnOnce(&mut GenerateOptions)) -> PortraitKey {
        let mut opts = GenerateOptions::default();
        f(&mut opts);
        PortraitKey::new(image, &opts, None)
    }

    #[test]
    fn the_key_follows_the_pixels_and_the_options_that_shape_the_source() {
        let img = RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let base = key(&img, |_| {});
        assert_eq!(base, key(&img, |_| {}), "deterministic");
        // Options that act after the preparation share the entry.
        assert_eq!(
            base,
            key(&img, |o| {
                o.still = true;
                o.expression_scale = 2.0;
                o.pose_style = 7;
                o.seed = 3;
            })
        );
        // Anything that shapes the crop, the coefficients or the volume does not.
        let mut edited = img.clone();
        edited.put_pixel(3, 2, image::Rgb([0, 0, 0]));
        assert_ne!(base, key(&edited, |_| {}));
        let transposed = RgbImage::from_raw(6, 8, img.as_raw().clone()).expect("same length");
        assert_ne!(base, key(&transposed, |_| {}), "same bytes, other shape");
        assert_ne!(base, key(&img, |o| o.preprocess = PreprocessMode::Full));
        assert_ne!(base, key(&img, |o| o.size = 512));
        assert_ne!(base, key(&img, |o| o.old_version = true));
        assert_ne!(base, key(&img, |o| o.face_index = 1));
        assert_ne!(base, key(&img, |o| o.face_threshold = 0.5));
        let opts = GenerateOptions::default();
        let lm = Landmarks68([[1.0, 2.0]; 68]);
        let given = PortraitKey::new(&img, &opts, Some(&lm));
        assert_ne!(base, given);
        let mut moved = lm.clone();
        moved.0[30][0] = 1.5;
        assert_ne!(given, PortraitKey::new(&img, &opts, Some(&moved)));
    }

    #[test]
    fn least_recently_used_entries_go_first() {
        let img = |v: u8| RgbImage::from_pixel(2, 2, image::Rgb([v, v, v]));
        let k: Vec<PortraitKey> = (0..4).map(|v| key(&img(v), |_| {})).collect();
        let cache = SourceCache::new(2);
        cache.insert(k[0], Arc::new(0));
        cache.insert(k[1], Arc::new(1));
        assert_eq!(cache.get(&k[0]).as_deref(), Some(&0), "k0 is now the most recent");
        cache.insert(k[2], Arc::new(2));
        assert_eq!(cache.get(&k[1]), None, "k1 was the least recent");
        assert_eq!(cache.get(&k[0]).as_deref(), Some(&0));
        assert_eq!(cache.get(&k[2]).as_deref(), Some(&2));
        // Replacing a key keeps one entry.
        cache.insert(k[2], Arc::new(22));
        assert_eq!(cache.get(&k[2]).as_deref(), Some(&22));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries, stats.capacity), (4, 1, 2, 2));

        let off = SourceCache::new(0);
        off.insert(k[3], Arc::new(3));
        assert_eq!(off.get(&k[3]), None);
        assert_eq!(off.stats().entries, 0);
    }
}
