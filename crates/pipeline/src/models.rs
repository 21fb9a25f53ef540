//! The networks of a job, found in the model store (or built from deterministic weights for tests and
//! the self-test), loaded on first use and kept: a batch loads each network once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::Device;
use sadtalker_audio2coeff::audio2coeff::{LEGACY_AUDIO2EXP, LEGACY_AUDIO2POSE, safetensors_name};
use sadtalker_audio2coeff::{Audio2Coeff, Audio2CoeffFiles, Audio2PoseConfig};
use sadtalker_checkpoint::{Checkpoint, CheckpointError, Recipe, WeightSource, Weights};
use sadtalker_enhance::realesrgan::REALESRGAN_FILE;
use sadtalker_enhance::{
    EnhancerArch, EnhancerFiles, GFPGANer, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig, RRDBNet,
    RealESRGANer, RestoreFormer, RestoreFormerConfig, Restorer, RrdbConfig,
};
use sadtalker_preprocess::Extractor;
use sadtalker_preprocess::detect::RetinaFace;
use sadtalker_preprocess::landmarks::Fan;
use sadtalker_preprocess::recon::ReconNet;
use sadtalker_render::{FaceRenderConfig, FaceRenderer};
use sadtalker_store::{FileState, ModelStore, Reporter, Silent, StoreError, StoreOptions};

use crate::error::{AtStage, PipelineError, Stage};
use crate::options::GenerateOptions;
use crate::source_cache::{DEFAULT_SOURCE_CACHE, SourceCache};

/// The face detector file (facexlib RetinaFace).
pub const DETECTOR: &str = "detection_Resnet50_Final.pth";
/// The landmark network file (AWing FAN).
pub const LANDMARKS: &str = "alignment_WFLW_4HG.pth";
/// The mapping network of `facerender.yaml` (70 inputs).
pub const MAPPING: &str = "mapping_00229-model.pth.tar";
/// The mapping network of `facerender_still.yaml` (73 inputs, the `full` modes).
pub const MAPPING_FULL: &str = "mapping_00109-model.pth.tar";
/// The legacy face renderer (`--old-version`), 256 only.
pub const LEGACY_FACEVID: &str = "facevid2vid_00189-model.pth.tar";
/// The legacy reconstruction net.
pub const LEGACY_RECON: &str = "epoch_20.pth";

/// Where the weights come from.
pub enum ModelSource {
    /// The official files, through the model store (and a reference `--checkpoint-dir`).
    Store(Box<ModelStore>),
    /// Full-size networks with the deterministic recipe weights (`Recipe::default()`: the values
    /// `tools/reference/make_official_checkpoints.py` writes into official-format files). For tests;
    /// the video shows noise.
    Recipe,
    /// The self-test's networks: recipe weights, a reduced face renderer (`FaceRenderConfig::reduced`)
    /// on 64-pixel pictures. Seconds per run; the video shows noise.
    SelfTest,
}

/// What a job's networks are, as a cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RenderKey {
    size: u32,
    full: bool,
    old_version: bool,
}

/// The networks, loaded on demand and shared between jobs.
pub struct Models {
    source: ModelSource,
    device: Device,
    offline: bool,
    reporter: Arc<dyn Reporter>,
    warnings: Arc<Mutex<Vec<String>>>,
    extractors: Mutex<HashMap<(u32, bool, bool), Arc<Extractor>>>,
    audio2coeff: Mutex<HashMap<(u32, bool), Arc<Audio2Coeff>>>,
    renderers: Mutex<HashMap<RenderKey, Arc<FaceRenderer>>>,
    /// Portraits prepared by earlier jobs (made by these networks).
    sources: SourceCache,
    /// Model files used, by role (for reports).
    used: Mutex<Vec<(String, PathBuf)>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves a usable map (at worst without the entry).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The legacy face renderer file names the keypoint detector `kp_detector`; the v0.0.2 files and the
/// renderer say `kp_extractor`. This source answers the new names from the old file.
struct LegacyFacevid(Checkpoint);

impl LegacyFacevid {
    fn map(name: &str) -> String {
        match name.strip_prefix("kp_extractor.") {
            Some(rest) => format!("kp_detector.{rest}"),
            None => name.to_owned(),
        }
    }
}

impl WeightSource for LegacyFacevid {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn contains(&self, name: &str) -> bool {
        self.0.contains(&Self::map(name))
    }
    fn names(&self) -> Vec<String> {
        self.0.names()
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        self.0.load(&Self::map(name), shape)
    }
}

/// Why no download can work, when no host of the files' URLs resolves (and no proxy is set, which
/// could reach hosts this machine cannot resolve).
fn no_network(store: &ModelStore, files: &[&sadtalker_store::ModelFile]) -> Option<String> {
    use std::net::ToSocketAddrs;
    let proxied = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if proxied {
        return None;
    }
    let mut hosts: Vec<String> = Vec::new();
    for f in files {
        for url in store.urls_for(f) {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or(rest);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if !host.is_empty() && !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
        }
    }
    if hosts.is_empty() {
        return None;
    }
    for h in &hosts {
        let addr = if h.contains(':') { h.clone() } else { format!("{h}:443") };
        if addr.to_socket_addrs().is_ok_and(|mut a| a.next().is_some()) {
            return None;
        }
    }
    Some(format!(
        "none of the download hosts ({}) can be resolved",
        hosts.join(", ")
    ))
}

impl Models {
    /// Models from the store described by `opts` (its warnings are collected into job reports). With
    /// `opts.offline`, missing files are an error with the offline remedy; otherwise they are downloaded
    /// on first use, with progress to `reporter`.
    pub fn from_store(mut opts: StoreOptions, reporter: Arc<dyn Reporter>) -> Result<Self, PipelineError> {
        let warnings: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = warnings.clone();
        let previous = opts.warn.clone();
        opts.warn = Arc::new(move |line: &str| {
            lock(&sink).push(line.to_owned());
            previous(line);
        });
        let offline = opts.offline;
        let store = ModelStore::open(opts).at(Stage::Models)?;
        Ok(Self::with_source(
            ModelSource::Store(Box::new(store)),
            offline,
            reporter,
            warnings,
        ))
    }

    /// Full-size networks with recipe weights (tests).
    pub fn recipe() -> Self {
        Self::with_source(ModelSource::Recipe, true, Arc::new(Silent), Arc::default())
    }

    /// The self-test's reduced networks.
    pub fn self_test() -> Self {
        Self::with_source(ModelSource::SelfTest, true, Arc::new(Silent), Arc::default())
    }

    fn with_source(
        source: ModelSource,
        offline: bool,
        reporter: Arc<dyn Reporter>,
        warnings: Arc<Mutex<Vec<String>>>,
    ) -> Self {
        Self {
            source,
            device: Device::Cpu,
            offline,
            reporter,
            warnings,
            extractors: Mutex::default(),
            audio2coeff: Mutex::default(),
            renderers: Mutex::default(),
            sources: SourceCache::new(DEFAULT_SOURCE_CACHE),
            used: Mutex::default(),
        }
    }

    /// Keeps at most `capacity` prepared portraits between jobs (default [`DEFAULT_SOURCE_CACHE`]; 0
    /// turns the cache off). Entries made so far are dropped.
    pub fn with_source_cache(mut self, capacity: usize) -> Self {
        self.sources = SourceCache::new(capacity);
        self
    }

    /// The prepared portraits kept between jobs.
    pub fn source_cache(&self) -> &SourceCache {
        &self.sources
    }

    /// The render sizes these models support.
    pub fn sizes(&self) -> &'static [u32] {
        match self.source {
            ModelSource::SelfTest => &[64],
            _ => &[256, 512],
        }
    }

    /// Where the weights come from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The store, when the models come from one.
    pub fn store(&self) -> Option<&ModelStore> {
        match &self.source {
            ModelSource::Store(s) => Some(s),
            _ => None,
        }
    }

    /// Warnings collected since the last call (e.g. a custom checkpoint in use).
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.warnings))
    }

    /// The model files loaded so far, as `(role, path)`.
    pub fn files_used(&self) -> Vec<(String, PathBuf)> {
        lock(&self.used).clone()
    }

    fn note_used(&self, role: &str, path: &Path) {
        let mut used = lock(&self.used);
        if !used.iter().any(|(r, p)| r == role && p == path) {
            used.push((role.to_owned(), path.to_owned()));
        }
    }

    /// The files a job needs: groups of alternatives, the first usable name of each group is used. As
    /// `init_path` does, `--old-version` means the legacy `.pth` files and nothing else.
    fn plan(opts: &GenerateOptions) -> Vec<Vec<String>> {
        let size = opts.size;
        let other = if size == 512 { 256 } else { 512 };
        let mut groups = if opts.old_version {
            vec![
                vec![LEGACY_RECON.to_owned()],
                vec![LEGACY_AUDIO2EXP.to_owned()],
                vec![LEGACY_AUDIO2POSE.to_owned()],
                vec![LEGACY_FACEVID.to_owned()],
            ]
        } else {
            vec![
                // The reconstruction net and Audio2Coeff are in both sizes' files (and the legacy pair).
                vec![safetensors_name(size), safetensors_name(other), LEGACY_RECON.to_owned()],
                vec![
                    safetensors_name(size),
                    safetensors_name(other),
                    LEGACY_AUDIO2EXP.to_owned(),
                ],
                vec![safetensors_name(size)],
            ]
        };
        groups.push(vec![if opts.full() { MAPPING_FULL } else { MAPPING }.to_owned()]);
        if let Some(arch) = opts.enhancer.as_deref().and_then(EnhancerArch::from_option) {
            // The store's `enhancer` / `restoreformer` feature; the detector may already be in the list
            // (deduplicated there).
            for name in arch.file_names() {
                groups.push(vec![name.to_owned()]);
            }
            if opts.background_enhancer.is_some() {
                groups.push(vec![REALESRGAN_FILE.to_owned()]);
            }
        }
        if opts.landmarks.is_none() || opts.ref_eyeblink.is_some() || opts.ref_pose.is_some() {
            groups.push(vec![DETECTOR.to_owned()]);
            groups.push(vec![LANDMARKS.to_owned()]);
        }
        groups
    }

    /// Makes sure every file `opts` needs is there: for each group the first file that is usable, else
    /// the group's first choice is downloaded (or, offline, reported missing with the remedy).
    pub fn ensure_files(
        &self,
        opts: &GenerateOptions,
        progress: &mut dyn crate::Progress,
    ) -> Result<(), PipelineError> {
        let ModelSource::Store(store) = &self.source else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for group in Self::plan(opts) {
            let mut found = false;
            for name in &group {
                let entry = store.entry(name).at(Stage::Models)?;
                let status = store.status_of(entry);
                if status.state.is_usable() || status.state == FileState::HashMismatch && status.origin.is_some() {
                    found = true;
                    break;
                }
            }
            if !found && let Some(first) = group.first() {
                let entry = store.entry(first).at(Stage::Models)?;
                // The 256/512 safetensors file heads several groups (recon, audio2coeff, renderer).
                if !wanted
                    .iter()
                    .any(|w: &&sadtalker_store::ModelFile| w.name == entry.name)
                {
                    wanted.push(entry);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let bytes: u64 = wanted.iter().map(|e| e.size).sum();
        let names: Vec<&str> = wanted.iter().map(|e| e.name.as_str()).collect();
        if self.offline {
            // The store's offline error carries the remedy (what to download, `models import`).
            store.fetch(&wanted, &Silent).at(Stage::Models)?;
            return Ok(());
        }
        if let Some(why) = no_network(store, &wanted) {
            // Minutes of retries against hosts that cannot even be resolved help no one: say so at
            // once, with the offline remedy (which files, their URLs and hashes, `models import`).
            progress.note(&format!("no network: {why}; not downloading"));
            let failed = wanted
                .iter()
                .map(|e| sadtalker_store::FailedFile {
                    name: e.name.clone(),
                    path: e.path.clone(),
                    size: e.size,
                    sha256: e.sha256.clone(),
                    urls: store.urls_for(e),
                    attempts: Vec::new(),
                    kept_partial: 0,
                })
                .collect();
            return Err(PipelineError::new(
                Stage::Models,
                StoreError::Offline {
                    failed,
                    store_dir: store.root().to_owned(),
                },
            ));
        }
        progress.note(&format!(
            "first use: downloading {} model file(s), {:.1} GB, into {} ({}); pass --offline to never download",
            wanted.len(),
            bytes as f64 / 1e9,
            store.root().display(),
            names.join(", ")
        ));
        store.fetch(&wanted, self.reporter.as_ref()).at(Stage::Models)?;
        Ok(())
    }

    /// Weights of file `name` (the first usable of `names`).
    fn open_first(&self, names: &[String], role: &str) -> Result<(Weights, String), PipelineError> {
        let ModelSource::Store(store) = &self.source else {
            return Ok((self.recipe_weights(), "recipe".to_owned()));
        };
        let mut first_err: Option<StoreError> = None;
        for name in names {
            match store.locate(name) {
                Ok(found) => {
                    self.note_used(role, &found.path);
                    let w = if name == LEGACY_FACEVID {
                        Weights::new(
                            Arc::new(LegacyFacevid(Checkpoint::open(&found.path).at(Stage::Models)?)),
                            &self.device,
                        )
                    } else {
                        Weights::from_file(&found.path, &self.device).at(Stage::Models)?
                    };
                    return Ok((w, name.clone()));
                }
                Err(e @ StoreError::Missing { .. }) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(PipelineError::new(Stage::Models, e)),
            }
        }
        Err(PipelineError::new(
            Stage::Models,
            first_err.unwrap_or(StoreError::Http("no candidate file names".into())),
        ))
    }

    fn recipe_weights(&self) -> Weights {
        Weights::from_recipe(Recipe::default(), &self.device)
    }

    /// The preprocessing networks for `opts` (the detector and landmark nets only when needed).
    pub fn extractor(&self, opts: &GenerateOptions, face_nets: bool) -> Result<Arc<Extractor>, PipelineError> {
        let key = (opts.size, opts.old_version, face_nets);
        if let Some(e) = lock(&self.extractors).get(&key) {
            return Ok(e.clone());
        }
        let groups = Self::plan(opts);
        let (w, _) = self.open_first(&groups[0], "recon")?;
        let recon = ReconNet::load_from_checkpoint(&w).at(Stage::Models)?;
        let nets = if face_nets {
            let (det, _) = self.open_first(&[DETECTOR.to_owned()], "detector")?;
            let (fan, _) = self.open_first(&[LANDMARKS.to_owned()], "landmarks")?;
            Some((
                RetinaFace::load_from_checkpoint(&det).at(Stage::Models)?,
                Fan::load_from_checkpoint(&fan).at(Stage::Models)?,
            ))
        } else {
            None
        };
        let e = Arc::new(Extractor::new(recon, nets, self.device.clone()));
        lock(&self.extractors).insert(key, e.clone());
        Ok(e)
    }

    /// Audio2Exp + Audio2Pose.
    pub fn audio2coeff(&self, opts: &GenerateOptions) -> Result<Arc<Audio2Coeff>, PipelineError> {
        let key = (opts.size, opts.old_version);
        if let Some(a) = lock(&self.audio2coeff).get(&key) {
            return Ok(a.clone());
        }
        let net = match &self.source {
            ModelSource::Store(store) => {
                let files = self.audio2coeff_files(store, opts)?;
                Audio2Coeff::load(&files, &self.device).at(Stage::Models)?
            }
            _ => {
                let w = self.recipe_weights();
                Audio2Coeff::from_weights(
                    &Audio2Coeff::audio2exp_scope(&w.pp("audio2exp")),
                    &w.pp("audio2pose"),
                    Audio2PoseConfig::default(),
                )
                .at(Stage::Models)?
            }
        };
        let net = Arc::new(net);
        lock(&self.audio2coeff).insert(key, net.clone());
        Ok(net)
    }

    fn audio2coeff_files(&self, store: &ModelStore, opts: &GenerateOptions) -> Result<Audio2CoeffFiles, PipelineError> {
        let size = opts.size;
        let other = if size == 512 { 256 } else { 512 };
        let legacy = || -> Result<Audio2CoeffFiles, StoreError> {
            let exp = store.locate(LEGACY_AUDIO2EXP)?;
            let pose = store.locate(LEGACY_AUDIO2POSE)?;
            Ok(Audio2CoeffFiles::Legacy {
                audio2exp: exp.path,
                audio2pose: pose.path,
            })
        };
        if opts.old_version {
            return legacy().map(|f| self.note_a2c(f)).at(Stage::Models);
        }
        let mut first_err = None;
        for name in [safetensors_name(size), safetensors_name(other)] {
            match store.locate(&name) {
                Ok(found) => return Ok(self.note_a2c(Audio2CoeffFiles::Safetensors(found.path))),
                Err(e @ StoreError::Missing { .. }) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => return Err(PipelineError::new(Stage::Models, e)),
            }
        }
        match legacy() {
            Ok(files) => Ok(self.note_a2c(files)),
            Err(e) => Err(PipelineError::new(Stage::Models, first_err.unwrap_or(e))),
        }
    }

    fn note_a2c(&self, files: Audio2CoeffFiles) -> Audio2CoeffFiles {
        match &files {
            Audio2CoeffFiles::Safetensors(p) => self.note_used("audio2coeff", p),
            Audio2CoeffFiles::Legacy { audio2exp, audio2pose } => {
                self.note_used("audio2exp", audio2exp);
                self.note_used("audio2pose", audio2pose);
            }
        }
        files
    }

    /// The face enhancer (`--enhancer gfpgan|RestoreFormer`, with `--background-enhancer realesrgan` its
    /// background upsampler): GFPGAN v1.4 or RestoreFormer, ParseNet and RetinaFace (and Real-ESRGAN x2)
    /// from the store's files, or recipe weights for the built-in sources. A new one per job: it counts
    /// frames for its noise seeds, and a job's noise must not depend on the jobs before it.
    pub fn enhancer(&self, opts: &GenerateOptions) -> Result<GFPGANer, PipelineError> {
        let load_err = |e| PipelineError::new(Stage::Models, crate::error::Cause::EnhancerModel(e));
        let arch = opts
            .enhancer
            .as_deref()
            .and_then(EnhancerArch::from_option)
            .unwrap_or(EnhancerArch::Gfpgan);
        let seed = opts.seed;
        let mut enhancer = match &self.source {
            ModelSource::Store(store) => {
                let mut paths = Vec::new();
                for name in arch.file_names() {
                    let found = store.locate(name).at(Stage::Models)?;
                    self.note_used("enhancer", &found.path);
                    paths.push(found.path);
                }
                let files = EnhancerFiles {
                    gfpgan: paths[0].clone(),
                    parsenet: paths[1].clone(),
                    detector: paths[2].clone(),
                };
                GFPGANer::load_arch(arch, &files, &self.device, seed).map_err(load_err)?
            }
            _ => {
                let w = self.recipe_weights();
                let restorer = match arch {
                    EnhancerArch::Gfpgan => Restorer::Gfpgan(Box::new(
                        GFPGANv1Clean::load_from_checkpoint(&w, &GfpganConfig::v1_4()).map_err(load_err)?,
                    )),
                    EnhancerArch::RestoreFormer => Restorer::RestoreFormer(Box::new(
                        RestoreFormer::load_from_checkpoint(&w, &RestoreFormerConfig::official()).map_err(load_err)?,
                    )),
                };
                let parser = ParseNet::load_from_checkpoint(&w, &ParseNetConfig::facexlib()).map_err(load_err)?;
                let detector = RetinaFace::load_from_checkpoint(&w).at(Stage::Models)?;
                GFPGANer::with_restorer(restorer, parser, detector, &self.device, seed)
            }
        };
        if opts.background_enhancer.is_some() {
            let upsampler = match &self.source {
                ModelSource::Store(store) => {
                    let found = store.locate(REALESRGAN_FILE).at(Stage::Models)?;
                    self.note_used("background_enhancer", &found.path);
                    RealESRGANer::load(&found.path, &self.device).map_err(load_err)?
                }
                _ => {
                    let net = RRDBNet::load_from_checkpoint(&self.recipe_weights(), &RrdbConfig::x2plus())
                        .map_err(load_err)?;
                    RealESRGANer::new(net, &self.device)
                }
            };
            enhancer.set_bg_upsampler(Some(upsampler));
        }
        Ok(enhancer)
    }

    /// The face renderer for `opts` (size, 70- or 73-input mapping).
    pub fn renderer(&self, opts: &GenerateOptions) -> Result<Arc<FaceRenderer>, PipelineError> {
        let key = RenderKey {
            size: opts.size,
            full: opts.full(),
            old_version: opts.old_version,
        };
        if let Some(r) = lock(&self.renderers).get(&key) {
            return Ok(r.clone());
        }
        let cfg = match self.source {
            ModelSource::SelfTest => FaceRenderConfig::reduced(if key.full { 73 } else { 70 }),
            _ => FaceRenderConfig::official(key.full),
        };
        let facevid_names = if opts.old_version {
            vec![LEGACY_FACEVID.to_owned()]
        } else {
            vec![safetensors_name(opts.size)]
        };
        let (facevid, _) = self.open_first(&facevid_names, "face renderer")?;
        let mapping_name = if key.full { MAPPING_FULL } else { MAPPING };
        let (mapping, _) = self.open_first(&[mapping_name.to_owned()], "mapping")?;
        let renderer = Arc::new(FaceRenderer::load(&facevid, &mapping, &cfg).at(Stage::Models)?);
        lock(&self.renderers).insert(key, renderer.clone());
        Ok(renderer)
    }
}
