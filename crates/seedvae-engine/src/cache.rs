//! The engine cache: built engines keyed by what determines them, each in its own directory
//! with a JSON manifest.
//!
//! Key = blake3 of the key parts: the ONNX bytes' hash, the profile's shapes and workspace, the
//! TensorRT-RTX version, the targets, the precision, the part and the mode. Layout:
//! `ROOT/engines/<key>/{engine.trt, manifest.json}`; `ROOT/recipes/<hash>` maps a conversion from
//! weights to its graph's blake3; `ROOT/locks/<key>.lock` serializes builds of
//! one key across threads and processes; an entry appears by renaming a finished temporary
//! directory, so readers never see a half-written one. Every hit is verified (manifest parses,
//! its key parts hash to its key, the engine's size and blake3 match); a bad entry is rebuilt.
//!
//! A cache root is a folder seedvae made: it holds [`CACHE_MARKER`]. seedvae writes into, and
//! cleans, only a marked root, one it may mark (new or empty, or laid out entirely as a cache of
//! an earlier seedvae that had no marker), and inside it only entries whose names (and, for
//! engines, contents) are its own: a cache option or variable pointing at a project folder is
//! refused, never cleaned.

use crate::build::{ShapeRange, Target};
use crate::layers::{DeviceMemory, LayerSummary};
use crate::profile::EnginePrecision;
use crate::Error;
use seedvae_onnx::Contract;
use seedvae_weights::Part;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ENGINE_FILE: &str = "engine.trt";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_FORMAT: u32 = 1;

/// Everything an engine depends on. Its hash is the cache key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyParts {
    /// blake3 of the ONNX file's bytes.
    pub onnx_blake3: String,
    /// The profile's shape range for this part and mode.
    pub shapes: ShapeRange,
    pub workspace_mib: u64,
    /// TensorRT-RTX library version (`major.minor.patch.build`).
    pub tensorrt_rtx: String,
    pub targets: Vec<Target>,
    pub precision: EnginePrecision,
    pub part: Part,
    pub streaming: bool,
    /// Weights stripped from the plan (refitted at load time from the user's own weights).
    /// Absent in the key when false, so that weighted engines keep their keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weightless: bool,
}

impl KeyParts {
    pub fn key(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"seedvae engine key v1\n");
        h.update(
            serde_json::to_string(self)
                .expect("serializable")
                .as_bytes(),
        );
        h.finalize().to_hex()[..32].to_string()
    }
}

/// What a build reports besides the engine bytes (goes into the manifest).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildInfo {
    /// The profile the shapes came from.
    pub profile: String,
    /// The graph's I/O contract: tensor names, dtypes, symbolic shapes, states.
    pub contract: Contract,
    /// min / opt / max dims of every input in the engine's optimization profile.
    pub input_ranges: Vec<InputRange>,
    /// From the detailed build log; how many convolutions and matmuls run in FP8.
    pub layers: Option<LayerSummary>,
    /// Device memory at the largest shapes, as the builder reported it.
    pub device_memory: Option<DeviceMemory>,
    /// The ONNX model's seedvae metadata (source weights hash and file, variant, quantization).
    pub source: BTreeMap<String, String>,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputRange {
    pub name: String,
    pub min: Vec<i64>,
    pub opt: Vec<i64>,
    pub max: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileInfo {
    pub file: String,
    pub bytes: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    pub key_parts: KeyParts,
    pub engine: FileInfo,
    #[serde(flatten)]
    pub info: BuildInfo,
    pub built_at_unix: u64,
    pub seedvae_version: String,
}

impl Manifest {
    /// Check the manifest against itself and `engine_bytes`; the reason when it does not hold.
    pub fn verify(&self, engine_bytes: &[u8]) -> Result<(), Error> {
        if self.format != MANIFEST_FORMAT {
            return Err(Error::Invalid(format!(
                "manifest format {} (this seedvae reads {MANIFEST_FORMAT})",
                self.format
            )));
        }
        let k = self.key_parts.key();
        if k != self.key {
            return Err(Error::Invalid(format!(
                "manifest key {} does not match its key parts ({k})",
                self.key
            )));
        }
        if engine_bytes.len() as u64 != self.engine.bytes {
            return Err(Error::Invalid(format!(
                "engine is {} bytes, manifest says {} (truncated or replaced)",
                engine_bytes.len(),
                self.engine.bytes
            )));
        }
        let h = blake3::hash(engine_bytes).to_hex().to_string();
        if h != self.engine.blake3 {
            return Err(Error::Invalid(format!(
                "engine blake3 {h} does not match the manifest's {} (corrupt)",
                self.engine.blake3
            )));
        }
        Ok(())
    }
}

/// A verified cache entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub engine: PathBuf,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Found and verified.
    Hit,
    /// Not there: built.
    Built,
    /// There but bad (the reason): built again.
    Rebuilt(String),
}

pub struct Cache {
    pub root: PathBuf,
}

/// The file that marks a folder as a seedvae cache root.
pub const CACHE_MARKER: &str = ".seedvae-cache";

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Cache(format!("{}: {e}", path.display()))
}

/// The per-user cache directory: `$SEEDVAE_CACHE`, else `%LOCALAPPDATA%\seedvae` on Windows,
/// `$XDG_CACHE_HOME/seedvae` or `~/.cache/seedvae` elsewhere. `SEEDVAE_CACHE` set but empty
/// (what `export SEEDVAE_CACHE=$TYPO` gives) is an error, not the working directory.
pub fn default_root() -> Result<Option<PathBuf>, Error> {
    if let Some(d) = std::env::var_os("SEEDVAE_CACHE") {
        if d.is_empty() {
            return Err(Error::Cache(
                "SEEDVAE_CACHE is set but empty; unset it (for the default cache folder) or set \
                 it to a folder"
                    .into(),
            ));
        }
        return Ok(Some(PathBuf::from(d)));
    }
    if cfg!(windows) {
        return Ok(std::env::var_os("LOCALAPPDATA")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("seedvae")));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(Some(PathBuf::from(d).join("seedvae")));
    }
    Ok(std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| PathBuf::from(h).join(".cache").join("seedvae")))
}

/// Is `name` (an entry of folder `sub` of a cache root, `None` for the root itself) one that
/// seedvae writes there? Temporary outputs (`.NAME.seedvae-tmp-PID-N`) are everywhere.
fn own_name(sub: Option<&str>, name: &str, is_dir: bool) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if name.contains(".seedvae-tmp-") {
        return true;
    }
    match sub {
        None => {
            (is_dir && ["engines", "locks", "recipes", "graphs", "probes"].contains(&name))
                || (!is_dir && name == CACHE_MARKER)
        }
        Some("engines") => {
            is_dir && (is_key(name) || name.starts_with(".tmp-") || name.starts_with(".install-"))
        }
        Some("locks") => !is_dir && name.strip_suffix(".lock").is_some_and(is_key),
        Some("recipes") => !is_dir && hex(name, 64),
        Some("graphs") => !is_dir && graph_file_name(name),
        Some("probes") => !is_dir && name.strip_suffix(".json").is_some_and(|n| hex(n, 32)),
        Some(_) => false,
    }
}

/// A converted graph (`<64 hex>.onnx`) or its content hash (`.onnx.blake3`).
fn graph_file_name(name: &str) -> bool {
    let stem = name
        .strip_suffix(".onnx.blake3")
        .or_else(|| name.strip_suffix(".onnx"));
    stem.is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The first entry under `root` (two levels) that an unmarked cache of an earlier seedvae
/// would not hold, if any.
fn foreign_entry(root: &Path) -> Result<Option<PathBuf>, Error> {
    let rd = std::fs::read_dir(root).map_err(|e| io_err(root, e))?;
    for e in rd {
        let e = e.map_err(|e| io_err(root, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !own_name(None, &name, is_dir) {
            return Ok(Some(e.path()));
        }
        if !is_dir {
            continue;
        }
        for f in std::fs::read_dir(e.path()).map_err(|err| io_err(&e.path(), err))? {
            let f = f.map_err(|err| io_err(&e.path(), err))?;
            let n = f.file_name().to_string_lossy().into_owned();
            if !own_name(Some(&name), &n, f.file_type().is_ok_and(|t| t.is_dir())) {
                return Ok(Some(f.path()));
            }
        }
    }
    Ok(None)
}

/// Why `root` (existing) is not a cache seedvae may use, or `Ok(true)` when it is marked,
/// `Ok(false)` when it may be marked (empty, or an earlier seedvae's unmarked cache).
fn check_root(root: &Path) -> Result<bool, Error> {
    let meta = std::fs::metadata(root).map_err(|e| io_err(root, e))?;
    if !meta.is_dir() {
        return Err(Error::Cache(format!(
            "{} is not a folder; the cache is a folder",
            root.display()
        )));
    }
    if root.join(CACHE_MARKER).is_file() {
        return Ok(true);
    }
    match foreign_entry(root)? {
        None => Ok(false),
        Some(p) => Err(Error::Cache(format!(
            "{} is not a seedvae cache: it has no {CACHE_MARKER} marker and holds things seedvae \
             did not write ({}); seedvae never writes into or cleans such a folder: give a new or \
             empty folder as the cache",
            root.display(),
            p.display()
        ))),
    }
}

fn mark(root: &Path) -> Result<(), Error> {
    let text = format!(
        "A seedvae cache (engines, converted graphs, first-run records): safe to delete.\n\
         Made by seedvae {}.\n",
        env!("CARGO_PKG_VERSION")
    );
    seedvae_weights::output::write_atomic(&root.join(CACHE_MARKER), |f| {
        f.write_all(text.as_bytes())
    })?;
    Ok(())
}

impl Cache {
    /// The cache at `dir`, or at [`default_root`], created and marked when new or empty; a
    /// folder that is neither seedvae's cache nor empty is refused.
    pub fn open(dir: Option<&Path>) -> Result<Cache, Error> {
        let cache = Cache::existing(dir)?;
        let root = &cache.root;
        let marked = if root.exists() {
            check_root(root)?
        } else {
            std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
            false
        };
        if !marked {
            mark(root)?;
        }
        for sub in ["engines", "locks", "recipes"] {
            let d = cache.root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        }
        Ok(cache)
    }

    /// The cache at `dir` (or the default) as it is, creating nothing: for listing and cleaning,
    /// which must work on a read-only or absent cache. A folder that exists and is not a
    /// seedvae cache (nor empty) is refused.
    pub fn existing(dir: Option<&Path>) -> Result<Cache, Error> {
        let root = match dir {
            Some(d) if d.as_os_str().is_empty() => {
                return Err(Error::Cache(
                    "the cache folder is an empty path; give a folder".into(),
                ))
            }
            Some(d) => d.to_path_buf(),
            None => default_root()?.ok_or_else(|| {
                Error::Cache("no cache directory: set SEEDVAE_CACHE or give `cache`".into())
            })?,
        };
        if root.exists() {
            check_root(&root)?;
        }
        Ok(Cache { root })
    }

    /// The blake3 of the graph last converted from weights by `recipe` (a hash of the weights
    /// and every conversion setting), so that a cached engine is found without converting again.
    pub fn recipe(&self, recipe: &str) -> Option<String> {
        let s = std::fs::read_to_string(self.root.join("recipes").join(recipe)).ok()?;
        let s = s.trim();
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_string())
    }

    pub fn set_recipe(&self, recipe: &str, onnx_blake3: &str) -> Result<(), Error> {
        let path = self.root.join("recipes").join(recipe);
        seedvae_weights::output::write_atomic(&path, |f| f.write_all(onnx_blake3.as_bytes()))
            .map_err(|e| Error::Cache(e.to_string()))
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.engines_dir().join(key)
    }

    /// Where the first-run check of a model on a GPU records its pass (`name`: 32 hex digits).
    pub fn probe_record(&self, name: &str) -> PathBuf {
        self.root.join("probes").join(format!("{name}.json"))
    }

    /// Where the engine entries are.
    pub fn engines_dir(&self) -> PathBuf {
        self.root.join("engines")
    }

    /// Where the CPU graph converted by `recipe` (a hash of the weights and settings) is kept;
    /// its folder is created.
    pub fn graph_path(&self, recipe: &str) -> Result<PathBuf, Error> {
        let dir = self.root.join("graphs");
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(dir.join(format!("{recipe}.onnx")))
    }

    /// The cached graph for `recipe` if it verifies: its bytes hash to what was recorded when
    /// it was stored, and its metadata names `source_blake3` as the weights it came from.
    /// Anything else (missing, corrupt, another model's graph put in its place) is `Err` with
    /// the reason, or `Ok(None)` when there is none.
    pub fn verified_graph(
        &self,
        recipe: &str,
        source_blake3: &str,
    ) -> Result<Option<PathBuf>, Error> {
        let path = self.graph_path(recipe)?;
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let recorded = std::fs::read_to_string(hash_file(&path)).unwrap_or_default();
        let actual = blake3::hash(&bytes).to_hex().to_string();
        if recorded.trim() != actual {
            return Err(Error::Invalid(format!(
                "{}: its content hash is not the one recorded when it was written (corrupt or replaced)",
                path.display()
            )));
        }
        let md = seedvae_onnx::write::read_metadata(&bytes)?;
        let source = md
            .iter()
            .find(|(k, _)| k == seedvae_onnx::meta::SOURCE_HASH);
        if source.is_none_or(|(_, v)| v != source_blake3) {
            return Err(Error::Invalid(format!(
                "{}: made from other weights than these",
                path.display()
            )));
        }
        Ok(Some(path))
    }

    /// The content hash recorded beside a graph that [`Cache::verified_graph`] just verified or
    /// [`Cache::store_graph`] just stored (hex blake3), so it is not hashed again.
    pub fn recorded_graph_hash(&self, graph: &Path) -> Option<String> {
        let h = std::fs::read_to_string(hash_file(graph)).ok()?;
        let h = h.trim();
        (h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())).then(|| h.to_string())
    }

    /// Move a finished graph `tmp` into place for `recipe`, with its content hash beside it.
    pub fn store_graph(&self, recipe: &str, tmp: &Path) -> Result<PathBuf, Error> {
        let path = self.graph_path(recipe)?;
        let bytes = std::fs::read(tmp).map_err(|e| Error::io(tmp, e))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        seedvae_weights::output::write_atomic(&hash_file(&path), |f| f.write_all(hash.as_bytes()))?;
        std::fs::rename(tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// A temporary file name inside the cache, unique to this process and call (`name` says
    /// what it holds); the caller removes it.
    pub fn staging_file(&self, name: &str) -> PathBuf {
        seedvae_weights::output::temp_path(&self.root.join(name))
    }

    /// A fresh staging directory for `what` (an install) inside the engine directory, so that
    /// its entries can be renamed into place; [`Cache::gc`] removes those of dead processes.
    pub fn staging_dir(&self, what: &str) -> PathBuf {
        let d = self
            .engines_dir()
            .join(format!(".{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Remove the entries `keys` (all or none: every key is checked first); returns each key
    /// with the bytes freed.
    pub fn remove(&self, keys: &[String]) -> Result<Vec<(String, u64)>, Error> {
        let mut once = Vec::new();
        for k in keys {
            if !once.contains(k) {
                once.push(k.clone());
            }
        }
        let keys = &once;
        for k in keys {
            if !(is_key(k) && self.entry_dir(k).is_dir()) {
                return Err(Error::Cache(format!(
                    "no engine {k} in {}",
                    self.engines_dir().display()
                )));
            }
        }
        keys.iter()
            .map(|k| Ok((k.clone(), remove_path(&self.entry_dir(k))?)))
            .collect()
    }

    /// Remove what is not needed: unusable entries, leftovers of interrupted builds and
    /// installs (when their process is gone, or a day old), and with `graphs` the converted CPU
    /// graphs (made again on demand).
    pub fn gc(&self, graphs: bool) -> Result<GcReport, Error> {
        let mut r = GcReport::default();
        for (d, e) in self.list() {
            let Err(why) = e else { continue };
            if own_entry_dir(&d) {
                r.freed += remove_path(&d)?;
                r.unusable.push((d, why.to_string()));
            } else {
                r.kept.push(d);
            }
        }
        let dir = self.engines_dir();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !(n.starts_with(".tmp-") || n.starts_with(".install-")) {
                continue;
            }
            let pid = n.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|d| d.as_secs() > 24 * 3600);
            if pid.is_some_and(process_gone) || old {
                r.freed += remove_path(&e.path())?;
                r.leftovers.push(e.path());
            }
        }
        // Temporary outputs (`.NAME.seedvae-tmp-PID-N`) of dead processes, in the root and graphs/.
        for d in [self.root.clone(), self.root.join("graphs")] {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let Some((_, rest)) = n.split_once(".seedvae-tmp-") else {
                    continue;
                };
                let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| p != std::process::id() && process_gone(p)) {
                    r.freed += remove_path(&e.path())?;
                    r.leftovers.push(e.path());
                }
            }
        }
        let g = self.root.join("graphs");
        if graphs && g.is_dir() {
            for e in std::fs::read_dir(&g).map_err(|e| io_err(&g, e))?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_file()) && graph_file_name(&n) {
                    r.freed += remove_path(&e.path())?;
                } else if !n.contains(".seedvae-tmp-") {
                    r.kept.push(e.path());
                }
            }
            // Only once empty: anything else in it is not seedvae's to remove.
            if std::fs::remove_dir(&g).is_ok() {
                r.graphs = Some(g);
            }
        }
        Ok(r)
    }

    /// The entry for `key`: `Ok(None)` when absent, `Err(reason)` when present but bad.
    pub fn load(&self, key: &str) -> Result<Option<Entry>, Error> {
        let dir = self.entry_dir(key);
        if !dir.exists() {
            return Ok(None);
        }
        load_entry(&dir).map(Some)
    }

    /// Every entry, verified or not (with the reason), sorted by key.
    pub fn list(&self) -> Vec<(PathBuf, Result<Entry, Error>)> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.engines_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.is_dir()
                            && !p
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs.into_iter()
            .map(|d| {
                let e = load_entry(&d);
                (d, e)
            })
            .collect()
    }

    /// The engine for `parts`: from the cache when a verified entry exists, else built by
    /// `build` (under the key's lock, so concurrent callers build once) and stored.
    pub fn get_or_build(
        &self,
        parts: &KeyParts,
        build: impl FnOnce() -> Result<(Vec<u8>, BuildInfo), Error>,
    ) -> Result<(Entry, Outcome), Error> {
        let key = parts.key();
        if let Ok(Some(e)) = self.load(&key) {
            return Ok((e, Outcome::Hit));
        }
        let lock_path = self.root.join("locks").join(format!("{key}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        if lock.try_lock().is_err() {
            tracing::info!("another seedvae process is building engine {key}; waiting for it");
            lock.lock().map_err(|e| io_err(&lock_path, e))?;
        }
        // Whoever held the lock may have built it.
        let outcome = match self.load(&key) {
            Ok(Some(e)) => return Ok((e, Outcome::Hit)),
            Ok(None) => Outcome::Built,
            Err(why) => {
                tracing::warn!("cached engine {key} is unusable ({why}); rebuilding");
                Outcome::Rebuilt(why.to_string())
            }
        };
        let (engine, info) = build()?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            key: key.clone(),
            key_parts: parts.clone(),
            engine: FileInfo {
                file: ENGINE_FILE.into(),
                bytes: engine.len() as u64,
                blake3: blake3::hash(&engine).to_hex().to_string(),
            },
            info,
            built_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seedvae_version: env!("CARGO_PKG_VERSION").into(),
        };
        let entry = self.store(&key, &engine, &manifest)?;
        drop(lock);
        Ok((entry, outcome))
    }

    /// Write an entry into a temporary directory and rename it into place.
    fn store(&self, key: &str, engine: &[u8], manifest: &Manifest) -> Result<Entry, Error> {
        let dir = self.entry_dir(key);
        let tmp = self.staging_dir(&format!("tmp-{key}"));
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        let result = (|| {
            write_synced(&tmp.join(ENGINE_FILE), engine)?;
            let json = serde_json::to_vec_pretty(manifest).expect("serializable");
            write_synced(&tmp.join(MANIFEST_FILE), &json)?;
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            }
            std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result?;
        Ok(Entry {
            engine: dir.join(ENGINE_FILE),
            dir,
            manifest: manifest.clone(),
        })
    }
}

/// The content hash recorded beside a cached graph.
fn hash_file(graph: &Path) -> PathBuf {
    let mut s = graph.as_os_str().to_owned();
    s.push(".blake3");
    PathBuf::from(s)
}

/// What [`Cache::gc`] removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Entries that did not verify, with the reason.
    pub unusable: Vec<(PathBuf, String)>,
    /// Leftovers of interrupted builds and installs.
    pub leftovers: Vec<PathBuf>,
    /// The converted CPU graphs' folder, when removed.
    pub graphs: Option<PathBuf>,
    /// What is in the cache but not seedvae's (names or contents it does not write): left alone.
    pub kept: Vec<PathBuf>,
    pub freed: u64,
}

/// Is `dir` an engine entry seedvae wrote, by its name (a key) and contents (nothing but the
/// engine and its manifest)? Only such a folder is removed when it does not verify.
fn own_entry_dir(dir: &Path) -> bool {
    let named = dir
        .file_name()
        .is_some_and(|n| is_key(&n.to_string_lossy()));
    named
        && std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten().all(|e| {
                e.file_type().is_ok_and(|t| t.is_file())
                    && [ENGINE_FILE, MANIFEST_FILE]
                        .contains(&e.file_name().to_string_lossy().as_ref())
            })
        })
}

/// Is process `pid` gone? Known on Linux only (elsewhere: no, and age decides).
fn process_gone(pid: u32) -> bool {
    cfg!(target_os = "linux") && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Bytes under `p`, not following links (a removed link frees only itself).
fn dir_bytes(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// Remove a file or directory; the bytes it held.
fn remove_path(p: &Path) -> Result<u64, Error> {
    let n = dir_bytes(p);
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
    .map_err(|e| Error::io(p, e))?;
    Ok(n)
}

/// The sidecar manifest path of an engine written with `build -o` (`X` → `X.manifest.json`).
pub fn sidecar(engine: &Path) -> PathBuf {
    let mut s = engine.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

/// Where an engine's manifest and engine file are, if `spec` names an engine: a cache entry
/// directory, an engine file with its `.manifest.json` sidecar, or a cache key (looked up in
/// the cache at `cache`, else the default one).
pub fn locate(spec: &Path, cache: Option<&Path>) -> Option<(PathBuf, PathBuf)> {
    if spec.is_dir() {
        return Some((spec.join(MANIFEST_FILE), spec.join(ENGINE_FILE)));
    }
    let side = sidecar(spec);
    if side.exists() {
        return Some((side, spec.to_path_buf()));
    }
    if spec.file_name().is_some_and(|n| n == ENGINE_FILE) {
        let m = spec.with_file_name(MANIFEST_FILE);
        return m.exists().then(|| (m, spec.to_path_buf()));
    }
    let s = spec.to_str()?;
    if !spec.exists() && is_key(s) {
        let d = Cache::open(cache).ok()?.entry_dir(s);
        return Some((d.join(MANIFEST_FILE), d.join(ENGINE_FILE)));
    }
    None
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut f = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// A cache key: 32 lowercase hex digits.
pub fn is_key(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Parse an engine manifest (`origin` names it in the error).
pub fn parse_manifest(bytes: &[u8], origin: &str) -> Result<Manifest, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Invalid(format!("{origin}: not a seedvae engine manifest: {e}")))
}

/// Read and parse the engine manifest at `path`.
pub fn read_manifest(path: &Path) -> Result<Manifest, Error> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_manifest(&text, &path.display().to_string())
}

/// Read and verify the manifest and engine in `dir`.
pub fn load_entry(dir: &Path) -> Result<Entry, Error> {
    let mpath = dir.join(MANIFEST_FILE);
    let manifest = read_manifest(&mpath)?;
    let engine = dir.join(&manifest.engine.file);
    if manifest.engine.file != ENGINE_FILE {
        return Err(Error::Invalid(format!(
            "{}: engine file must be {ENGINE_FILE}, manifest says {}",
            mpath.display(),
            manifest.engine.file
        )));
    }
    let bytes = std::fs::read(&engine).map_err(|e| Error::io(&engine, e))?;
    manifest
        .verify(&bytes)
        .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
    if dir.file_name().is_some_and(|n| n != manifest.key.as_str()) {
        return Err(Error::Invalid(format!(
            "{}: directory name is not the manifest's key {}",
            dir.display(),
            manifest.key
        )));
    }
    Ok(Entry {
        dir: dir.to_path_buf(),
        engine,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use seedvae_weights::synth::Rng;

    /// Every file under `dir` with its bytes (links as their target, not followed).
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.file_type().is_symlink() {
                    let t = std::fs::read_link(&p).unwrap();
                    out.insert(p, t.to_string_lossy().as_bytes().to_vec());
                } else if m.is_dir() {
                    out.insert(p.clone(), b"<dir>".to_vec());
                    stack.push(p);
                } else {
                    out.insert(p.clone(), std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// The cache's property (issue 22): whatever a folder holds — the user's files under names a
    /// cache uses or not, seedvae's own entries, links out of it — and whichever folder is taken
    /// as the cache (a user's folder, a new one, a marked cache with the user's files added, an
    /// empty path, an empty variable), opening, listing and cleaning it (with or without graphs)
    /// never removes or changes a byte seedvae did not write.
    #[test]
    fn no_byte_seedvae_did_not_write_is_ever_lost_from_a_cache_folder() {
        let mut rng = Rng::new(22);
        let key = "0123456789abcdef0123456789abcdef";
        let hash = "ab".repeat(32);
        for case in 0..300 {
            let t = tempfile::tempdir().unwrap();
            let root = t.path().join("root");
            let outside = t.path().join("outside");
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::write(outside.join("precious"), format!("precious {case}")).unwrap();
            let marked = rng.next_u64() % 3; // 0 absent, 1 user folder, 2 marked cache
            let mut own: Vec<PathBuf> = Vec::new(); // what seedvae wrote
            if marked > 0 {
                std::fs::create_dir_all(&root).unwrap();
            }
            if marked == 2 {
                std::fs::write(root.join(CACHE_MARKER), b"").unwrap();
                own.push(root.join(CACHE_MARKER));
                let e = root.join("engines").join(key);
                std::fs::create_dir_all(&e).unwrap();
                std::fs::write(e.join(MANIFEST_FILE), b"not a manifest").unwrap();
                own.extend([e.join(MANIFEST_FILE), e.clone()]);
                let g = root.join("graphs");
                std::fs::create_dir_all(&g).unwrap();
                std::fs::write(g.join(format!("{hash}.onnx")), b"graph").unwrap();
                own.extend([g.join(format!("{hash}.onnx")), g]);
            }
            if marked > 0 {
                // The user's things, some under names a cache uses.
                for (rel, is_dir) in [
                    ("graphs/plot.py", false),
                    ("engines/v8/notes.md", false),
                    ("README.md", false),
                    ("recipes/todo", false),
                    ("probes/keep", true),
                ] {
                    if !rng.next_u64().is_multiple_of(2) {
                        continue;
                    }
                    let p = root.join(rel);
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    if is_dir {
                        std::fs::create_dir_all(&p).unwrap();
                        std::fs::write(p.join("x"), b"mine").unwrap();
                    } else {
                        std::fs::write(&p, b"mine").unwrap();
                    }
                }
                #[cfg(unix)]
                if rng.next_u64().is_multiple_of(3) {
                    std::fs::create_dir_all(root.join("engines")).unwrap();
                    let link = root
                        .join("engines")
                        .join("fedcba9876543210fedcba9876543210");
                    std::os::unix::fs::symlink(&outside, &link).unwrap();
                }
            }
            let before = snapshot(t.path());
            let given: Option<PathBuf> = match rng.next_u64() % 5 {
                0 => Some(PathBuf::new()),
                _ => Some(root.clone()),
            };
            let _ = match rng.next_u64() % 4 {
                0 => Cache::open(given.as_deref()).map(|_| ()),
                1 => Cache::existing(given.as_deref()).map(|c| drop(c.list())),
                2 => Cache::existing(given.as_deref()).and_then(|c| c.gc(false).map(|_| ())),
                _ => Cache::existing(given.as_deref()).and_then(|c| c.gc(true).map(|_| ())),
            };
            let after = snapshot(t.path());
            for (p, bytes) in &before {
                if own.iter().any(|o| o == p) {
                    continue;
                }
                assert_eq!(
                    after.get(p),
                    Some(bytes),
                    "case {case} (marked {marked}): {} lost or changed",
                    p.display()
                );
            }
        }
    }

    #[test]
    fn an_empty_cache_variable_is_an_error() {
        // SAFETY: this test binary's only reader of SEEDVAE_CACHE is this test.
        unsafe { std::env::set_var("SEEDVAE_CACHE", "") };
        let e = default_root().unwrap_err().to_string();
        unsafe { std::env::remove_var("SEEDVAE_CACHE") };
        assert!(e.contains("SEEDVAE_CACHE is set but empty"), "{e}");
    }
}
