//! Lookup order, custom files, verify (moving bad files aside) and offline import; no network.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sadtalker_store::{FileState, Manifest, ModelStore, Origin, Silent, StoreError, StoreOptions};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A tiny valid safetensors file (one f32 tensor), distinct per `seed`.
fn safetensors_bytes(seed: u8) -> Vec<u8> {
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend((0..16).map(|i| i as u8 ^ seed));
    bytes
}

struct Fixture {
    _dir: TempDir,
    root: std::path::PathBuf,
    ckpt: std::path::PathBuf,
    gen_bytes: Vec<u8>,
    det_bytes: Vec<u8>,
    manifest: Manifest,
    warnings: Arc<Mutex<Vec<String>>>,
}

/// A manifest with a generator (`checkpoints/`) and a detector (`gfpgan/weights/`), a store folder and a
/// reference-layout tree `<ref>/checkpoints` + `<ref>/gfpgan/weights`.
fn fixture() -> Fixture {
    let dir = TempDir::new().expect("tempdir");
    let gen_bytes = safetensors_bytes(1);
    let det_bytes = b"PK\x03\x04 pretend zip entry PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    let json = serde_json::json!({"files": [
        {"name": "gen.safetensors", "path": "checkpoints/gen.safetensors", "size": gen_bytes.len(),
         "sha256": sha256_hex(&gen_bytes), "features": ["256"]},
        {"name": "det.pth", "path": "gfpgan/weights/det.pth", "size": det_bytes.len(),
         "sha256": sha256_hex(&det_bytes), "features": ["256", "face"]},
    ]});
    let manifest = Manifest::from_json(&json.to_string(), "test manifest").expect("manifest");
    let root = dir.path().join("store");
    let ckpt = dir.path().join("ref").join("checkpoints");
    fs::create_dir_all(&ckpt).expect("mkdir");
    fs::create_dir_all(dir.path().join("ref/gfpgan/weights")).expect("mkdir");
    Fixture {
        root,
        ckpt,
        gen_bytes,
        det_bytes,
        manifest,
        warnings: Arc::new(Mutex::new(Vec::new())),
        _dir: dir,
    }
}

impl Fixture {
    fn store(&self, with_ckpt: bool) -> ModelStore {
        let warnings = self.warnings.clone();
        ModelStore::open(StoreOptions {
            root: Some(self.root.clone()),
            manifest: Some(self.manifest.clone()),
            checkpoint_dir: with_ckpt.then(|| self.ckpt.clone()),
            warn: Arc::new(move |w| warnings.lock().expect("warnings").push(w.to_string())),
            ..StoreOptions::default()
        })
        .expect("open")
    }
    fn warnings(&self) -> Vec<String> {
        self.warnings.lock().expect("warnings").clone()
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, bytes).expect("write");
}

#[test]
fn missing_files_are_listed_with_the_fetch_command() {
    let fx = fixture();
    let store = fx.store(true);
    let err = store.require("256").expect_err("nothing installed");
    let msg = err.to_string();
    assert!(msg.contains("gen.safetensors") && msg.contains("det.pth"), "{msg}");
    assert!(msg.contains("sadtalker models fetch --for 256"), "{msg}");
    assert!(msg.contains("sadtalker models import"), "{msg}");
    assert!(msg.contains(&fx.ckpt.display().to_string()), "{msg}");
    assert!(matches!(store.require("nope"), Err(StoreError::UnknownFeature { .. })));
}

#[test]
fn lookup_order_is_checkpoint_dir_then_reference_gfpgan_folder_then_store() {
    let fx = fixture();
    let store = fx.store(true);
    // Generator in the store, detector beside the checkpoints folder (reference layout).
    write(&fx.root.join("checkpoints/gen.safetensors"), &fx.gen_bytes);
    write(&fx.ckpt.join("../gfpgan/weights/det.pth"), &fx.det_bytes);
    let found = store.require("256").expect("require");
    assert_eq!(found[0].origin, Origin::Store);
    assert_eq!(found[1].origin, Origin::ReferenceLayout);
    // A copy directly in DIR wins over both.
    write(&fx.ckpt.join("gen.safetensors"), &fx.gen_bytes);
    write(&fx.ckpt.join("det.pth"), &fx.det_bytes);
    let found = store.require("256").expect("require");
    assert!(found.iter().all(|l| l.origin == Origin::CheckpointDir && l.official));
    assert!(fx.warnings().is_empty());
    // Without --checkpoint-dir only the store counts.
    let err = fx
        .store(false)
        .require("256")
        .expect_err("detector is not in the store");
    assert!(err.to_string().contains("det.pth"), "{err}");
}

#[test]
fn custom_checkpoint_is_used_with_a_warning_but_junk_is_refused() {
    let fx = fixture();
    let store = fx.store(true);
    let custom = safetensors_bytes(9);
    write(&fx.ckpt.join("gen.safetensors"), &custom);
    let located = store.locate("gen.safetensors").expect("custom file is usable");
    assert!(!located.official);
    let warnings = fx.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("not the official gen.safetensors"), "{warnings:?}");
    // The hash is recorded; the status says so without re-reading.
    assert_eq!(
        store.status_of(&store.manifest().files[0]).state,
        FileState::HashMismatch
    );

    write(&fx.ckpt.join("gen.safetensors"), b"<html>rate limited</html>");
    let err = store.locate("gen.safetensors").expect_err("junk");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    // The same custom file inside the store is refused: the store only holds official files.
    fs::remove_file(fx.ckpt.join("gen.safetensors")).expect("rm");
    write(&fx.root.join("checkpoints/gen.safetensors"), &custom);
    assert!(matches!(
        store.locate("gen.safetensors"),
        Err(StoreError::Damaged { .. })
    ));
}

#[test]
fn verify_moves_a_bad_store_file_aside_and_keeps_user_files() {
    let fx = fixture();
    let store = fx.store(true);
    let gen_path = fx.root.join("checkpoints/gen.safetensors");
    let mut bad = fx.gen_bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    write(&gen_path, &bad);
    // A user's custom detector in the checkpoint folder: reported, never moved.
    let user_det = fx.ckpt.join("det.pth");
    let mut det = fx.det_bytes.clone();
    det[5] = b'#';
    write(&user_det, &det);
    let entries: Vec<_> = store.manifest().files.iter().collect();
    let results = store.verify(&entries, &Silent).expect("verify");
    assert_eq!(results[0].state, FileState::HashMismatch);
    let moved = results[0].moved_to.clone().expect("moved aside");
    assert!(!gen_path.exists());
    assert_eq!(fs::read(&moved).expect("moved file"), bad, "bytes kept, not deleted");
    assert!(
        moved
            .file_name()
            .expect("name")
            .to_string_lossy()
            .starts_with("gen.safetensors.bad-")
    );
    assert_eq!(results[1].state, FileState::HashMismatch);
    assert_eq!(results[1].moved_to, None);
    assert!(user_det.exists());
    assert_eq!(store.status_of(entries[0]).state, FileState::Missing);

    write(&gen_path, &fx.gen_bytes);
    let results = store.verify(&entries[..1], &Silent).expect("verify");
    assert_eq!(results[0].state, FileState::Verified);
    assert_eq!(store.status_of(entries[0]).state, FileState::Verified);
}

#[test]
fn import_finds_files_by_name_verifies_and_installs() {
    let fx = fixture();
    let store = fx.store(false);
    let src = fx.root.parent().expect("parent").join("download");
    // A reference tree with the right generator, and elsewhere a truncated detector and a good one.
    write(&src.join("old/checkpoints/gen.safetensors"), &fx.gen_bytes);
    write(&src.join("a/det.pth"), &fx.det_bytes[..10]);
    write(&src.join("b/c/det.pth"), &fx.det_bytes);
    write(&src.join("unrelated.bin"), b"x");
    let results = store.import(&src, &Silent).expect("import");
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results.iter().all(|r| r.ok), "{results:?}");
    assert_eq!(
        fs::read(fx.root.join("checkpoints/gen.safetensors")).expect("gen"),
        fx.gen_bytes
    );
    assert_eq!(
        fs::read(fx.root.join("gfpgan/weights/det.pth")).expect("det"),
        fx.det_bytes
    );
    assert!(store.status().iter().all(|s| s.state == FileState::Verified));
    // No temporary files were left in the store folders.
    for dir in ["checkpoints", "gfpgan/weights"] {
        assert_eq!(fs::read_dir(fx.root.join(dir)).expect("dir").count(), 1);
    }
    // Importing again is a no-op.
    let again = store.import(&src, &Silent).expect("import");
    assert!(
        again.iter().all(|r| r.ok && r.outcome == "already installed"),
        "{again:?}"
    );

    // Only a wrong copy: reported, not installed.
    let fx2 = fixture();
    let src2 = fx2.root.parent().expect("parent").join("dl");
    write(&src2.join("det.pth"), &fx.det_bytes[..10]);
    let results = fx2.store(false).import(&src2, &Silent).expect("import");
    assert_eq!(results.len(), 1);
    assert!(!results[0].ok && results[0].outcome.contains("bytes"), "{results:?}");
    assert!(!fx2.root.join("gfpgan/weights/det.pth").exists());
}

/// A Hugging Face-style cache: the named files are relative links into `blobs/`. The store gets the
/// file itself (never a link that dangles once the cache moves or the link is read from elsewhere).
#[cfg(unix)]
#[test]
fn import_from_a_cache_of_relative_links_installs_the_files_they_name() {
    let fx = fixture();
    let store = fx.store(false);
    let cache = fx.root.parent().expect("parent").join("hub/models--x");
    write(&cache.join("blobs/3f2a"), &fx.gen_bytes);
    let snap = cache.join("snapshots/abc/checkpoints");
    fs::create_dir_all(&snap).expect("mkdir");
    std::os::unix::fs::symlink("../../../blobs/3f2a", snap.join("gen.safetensors")).expect("link");
    let results = store.import(&cache, &Silent).expect("import");
    assert!(results.len() == 1 && results[0].ok, "{results:?}");
    let dest = fx.root.join("checkpoints/gen.safetensors");
    let meta = fs::symlink_metadata(&dest).expect("installed");
    assert!(!meta.file_type().is_symlink(), "the store holds the file, not a link");
    // Still there and whole when the cache is gone.
    fs::remove_dir_all(&cache).expect("remove cache");
    assert_eq!(fs::read(&dest).expect("read"), fx.gen_bytes);
}

#[test]
fn abandoned_temporary_files_are_cleaned_but_resumable_parts_kept() {
    let fx = fixture();
    let store = fx.store(false);
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    let old = std::time::SystemTime::now() - week - std::time::Duration::from_secs(3600);
    let age = |p: &Path| {
        fs::File::options()
            .write(true)
            .open(p)
            .expect("open")
            .set_modified(old)
            .expect("set mtime");
    };
    let orphan = fx.root.join("checkpoints/retired_model.pth.part");
    let resumable = fx.root.join("checkpoints/gen.safetensors.part");
    let fresh_orphan = fx.root.join("checkpoints/other.pth.part");
    let import_tmp = fx.root.join("gfpgan/weights/det.pth.import");
    for p in [&orphan, &resumable, &fresh_orphan, &import_tmp] {
        write(p, b"partial");
    }
    write(&fx.root.join("checkpoints/retired_model.pth.part.json"), b"{}");
    for p in [&orphan, &resumable, &import_tmp] {
        age(p);
    }
    let mut removed = store.clean_stale_parts(week);
    removed.sort();
    assert_eq!(removed, [orphan.clone(), import_tmp.clone()]);
    assert!(!orphan.exists() && !fx.root.join("checkpoints/retired_model.pth.part.json").exists());
    assert!(resumable.exists() && fresh_orphan.exists());
}
