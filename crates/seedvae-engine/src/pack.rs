//! Engine packs: cached engines shipped as one file (`.seedvae`, a plain tar archive any `tar`
//! can list), verified and installed offline on another machine.
//!
//! Layout: `seedvae-pack.json` first (what is inside, with sha256 and size of every file, and per
//! engine the facts that decide where it runs: TensorRT-RTX version, targets, profile,
//! precision, the source weights' hash), then `<key>/manifest.json` and `<key>/engine.trt` per
//! engine. Reading is paranoid: only regular files, only the listed paths (32-hex key folders,
//! nothing that could leave the cache), each once; sizes and sha256 checked while streaming; each
//! engine's own manifest re-checked (its key, its blake3) and held to agree with the pack's
//! listing. Nothing is installed unless the whole pack verifies.

use crate::cache::{
    is_key, load_entry, parse_manifest, Cache, Entry, Manifest, ENGINE_FILE, MANIFEST_FILE,
};
use crate::Error;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

pub const PACK_MANIFEST: &str = "seedvae-pack.json";
pub const PACK_FORMAT: &str = "seedvae-pack";
pub const PACK_VERSION: u32 = 1;
/// The pack manifest is small; anything larger is not one.
const MAX_PACK_MANIFEST: u64 = 16 << 20;
const MAX_ENGINE_MANIFEST: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One engine in a pack: where it runs and what it was built from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackEngine {
    pub key: String,
    pub tensorrt_rtx: String,
    pub targets: Vec<crate::Target>,
    /// `major.minor` of each target.
    pub compute_capabilities: Vec<String>,
    pub profile: String,
    pub precision: crate::EnginePrecision,
    pub part: seedvae_weights::Part,
    pub streaming: bool,
    /// blake3 of the weights the graph was converted from (when the graph records it).
    pub source_weights: Option<String>,
    /// Everything the engine's cache key is made of (its hash is `key`).
    pub key_parts: crate::cache::KeyParts,
    pub files: Vec<PackFile>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    pub format: String,
    pub version: u32,
    pub seedvae_version: String,
    pub created_unix: u64,
    pub engines: Vec<PackEngine>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Pack(format!("{}: {msg}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn source_weights(m: &Manifest) -> Option<String> {
    m.info.source.get(seedvae_onnx::meta::SOURCE_HASH).cloned()
}

/// What a pack lists for a cache entry (files given by the caller's hashing).
fn describe(m: &Manifest, files: Vec<PackFile>) -> PackEngine {
    let k = &m.key_parts;
    PackEngine {
        key: m.key.clone(),
        tensorrt_rtx: k.tensorrt_rtx.clone(),
        targets: k.targets.clone(),
        compute_capabilities: k
            .targets
            .iter()
            .map(|t| {
                let (a, b) = t.compute_capability();
                format!("{a}.{b}")
            })
            .collect(),
        profile: m.info.profile.clone(),
        precision: k.precision,
        part: k.part,
        streaming: k.streaming,
        source_weights: source_weights(m),
        key_parts: m.key_parts.clone(),
        files,
    }
}

/// Hash a file's bytes as it streams through `w`.
fn copy_hashed(r: &mut impl Read, w: &mut impl Write) -> std::io::Result<(u64, String, String)> {
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        sha.update(&buf[..k]);
        b3.update(&buf[..k]);
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
    Ok((n, hex(&sha.finalize()), b3.finalize().to_hex().to_string()))
}

/// An engine to pack: its manifest and where its two files are (a cache entry, or an engine
/// written with `build -o` and its `.manifest.json`).
pub struct Source {
    pub manifest: Manifest,
    pub manifest_file: PathBuf,
    pub engine_file: PathBuf,
}

impl From<&Entry> for Source {
    fn from(e: &Entry) -> Source {
        Source {
            manifest: e.manifest.clone(),
            manifest_file: e.dir.join(MANIFEST_FILE),
            engine_file: e.engine.clone(),
        }
    }
}

impl Source {
    fn file(&self, name: &str) -> &Path {
        if name == MANIFEST_FILE {
            &self.manifest_file
        } else {
            &self.engine_file
        }
    }
}

/// Write `sources` into the pack `out` (atomically); each engine is checked against its
/// manifest (size, blake3) as it is hashed.
pub fn pack(sources: &[Source], out: &Path) -> Result<PackManifest, Error> {
    let mut seen = BTreeSet::new();
    let mut engines = Vec::new();
    for src in sources {
        let m = &src.manifest;
        if !seen.insert(m.key.clone()) {
            return Err(bad(out, format!("engine {} given twice", m.key)));
        }
        let mut files = Vec::new();
        for name in [MANIFEST_FILE, ENGINE_FILE] {
            let p = src.file(name);
            let mut f = std::fs::File::open(p).map_err(|err| bad(p, err))?;
            let (bytes, sha256, b3) =
                copy_hashed(&mut f, &mut std::io::sink()).map_err(|err| bad(p, err))?;
            if name == ENGINE_FILE && (bytes != m.engine.bytes || b3 != m.engine.blake3) {
                return Err(bad(p, "does not match its manifest (corrupt); not packed"));
            }
            files.push(PackFile {
                path: format!("{}/{name}", m.key),
                bytes,
                sha256,
            });
        }
        engines.push(describe(m, files));
    }
    let pm = PackManifest {
        format: PACK_FORMAT.into(),
        version: PACK_VERSION,
        seedvae_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        engines,
    };
    let json = serde_json::to_vec_pretty(&pm).expect("serializable");
    let mut file = seedvae_weights::output::AtomicFile::create(out).map_err(|e| bad(out, e))?;
    {
        let mut tar = tar::Builder::new(&mut file);
        let mut add = |path: &str, size: u64, r: &mut dyn Read| -> std::io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o644);
            h.set_mtime(pm.created_unix);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, path, r)
        };
        add(PACK_MANIFEST, json.len() as u64, &mut json.as_slice()).map_err(|e| bad(out, e))?;
        for (src, pe) in sources.iter().zip(&pm.engines) {
            for pf in &pe.files {
                let name = pf.path.rsplit('/').next().expect("key/name");
                let p = src.file(name);
                let mut f = std::fs::File::open(p).map_err(|err| bad(p, err))?;
                add(&pf.path, pf.bytes, &mut f).map_err(|err| bad(p, err))?;
            }
        }
        tar.finish().map_err(|e| bad(out, e))?;
    }
    file.commit().map_err(|e| bad(out, e))?;
    Ok(pm)
}

/// A compressed pack, recognized by its magic bytes, gets a message instead of tar's complaint
/// about binary garbage (the file position is restored).
fn refuse_compressed(path: &Path, f: &mut std::fs::File) -> Result<(), Error> {
    use std::io::{Read, Seek};
    let mut head = [0u8; 6];
    let n = f.read(&mut head).map_err(|e| bad(path, e))?;
    f.rewind().map_err(|e| bad(path, e))?;
    let kind = match &head[..n] {
        [0x1f, 0x8b, ..] => "gzip",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [0xfd, b'7', b'z', b'X', b'Z', 0] => "xz",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [b'P', b'K', 3, 4, ..] => "zip",
        _ => return Ok(()),
    };
    Err(bad(
        path,
        format!("is a {kind}-compressed file; a seedvae pack is a plain tar: decompress it first"),
    ))
}

/// A pack entry's path as `key/name`, or why it is not acceptable.
fn entry_path(p: &Path) -> Result<String, Error> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {
                return Err(Error::Pack(format!(
                    "entry '{}' escapes the cache directory (absolute or '..' paths are refused)",
                    p.display()
                )))
            }
        }
    }
    Ok(parts.join("/"))
}

/// Check the pack manifest against itself: format, keys, the file list of each engine.
fn check_listing(path: &Path, pm: &PackManifest) -> Result<(), Error> {
    if pm.format != PACK_FORMAT || pm.version != PACK_VERSION {
        return Err(bad(
            path,
            format!(
                "pack format {} v{} (this seedvae reads {PACK_FORMAT} v{PACK_VERSION})",
                pm.format, pm.version
            ),
        ));
    }
    if pm.engines.is_empty() {
        return Err(bad(path, "the pack lists no engines"));
    }
    let mut keys = BTreeSet::new();
    for e in &pm.engines {
        if !is_key(&e.key) || e.key_parts.key() != e.key {
            return Err(bad(
                path,
                format!("'{}' is not the engine key of its listed key parts", e.key),
            ));
        }
        if !keys.insert(&e.key) {
            return Err(bad(path, format!("engine {} is listed twice", e.key)));
        }
        let mut want: Vec<String> = [MANIFEST_FILE, ENGINE_FILE]
            .iter()
            .map(|n| format!("{}/{n}", e.key))
            .collect();
        let mut got: Vec<String> = e.files.iter().map(|f| f.path.clone()).collect();
        want.sort();
        got.sort();
        if want != got {
            return Err(bad(
                path,
                format!("engine {} must list exactly {want:?}; lists {got:?}", e.key),
            ));
        }
    }
    Ok(())
}

/// Check an engine's own manifest against the pack's listing of it and the engine's hashes.
fn check_engine(
    path: &Path,
    pe: &PackEngine,
    m: &Manifest,
    engine: (u64, &str),
) -> Result<(), Error> {
    let fail = |msg: String| Err(bad(path, format!("engine {}: {msg}", pe.key)));
    if m.key != pe.key || m.key_parts.key() != pe.key {
        return fail("its manifest's key does not match (tampered or misnamed)".into());
    }
    if m.engine.bytes != engine.0 || m.engine.blake3 != engine.1 {
        return fail("the engine file does not match its manifest (corrupt)".into());
    }
    let told = describe(m, pe.files.clone());
    if &told != pe {
        // Name each field that differs, with both values.
        let (a, b) = (serde_json::to_value(pe), serde_json::to_value(&told));
        let diff: Vec<String> = match (a, b) {
            (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) => a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, v)| {
                    let m = b.get(k).map_or("absent".into(), |x| x.to_string());
                    format!("{k}: listing {v}, manifest {m}")
                })
                .collect(),
            _ => vec!["(fields not comparable)".into()],
        };
        return fail(format!(
            "the pack's listing disagrees with the engine's manifest: {}",
            diff.join("; ")
        ));
    }
    Ok(())
}

/// Read and verify the whole pack at `path`. With `stage` (a directory), each engine's files are
/// also written to `stage/<key>/` as they stream.
pub fn read_pack(path: &Path, stage: Option<&Path>) -> Result<PackManifest, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    refuse_compressed(path, &mut f)?;
    let corrupt =
        |e: std::io::Error| bad(path, format!("truncated or not a seedvae pack (tar: {e})"));
    let mut ar = tar::Archive::new(std::io::BufReader::new(f));
    let mut entries = ar.entries().map_err(corrupt)?;
    let mut pm: Option<PackManifest> = None;
    let mut expected: BTreeMap<String, (usize, PackFile)> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut manifests: BTreeMap<String, Manifest> = BTreeMap::new();
    let mut engines: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for (i, ent) in (&mut entries).enumerate() {
        let mut ent = ent.map_err(corrupt)?;
        let name = entry_path(&ent.path().map_err(corrupt)?).map_err(|e| bad(path, e))?;
        if ent.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(path, format!("entry '{name}' is not a regular file")));
        }
        let size = ent.header().size().map_err(corrupt)?;
        if i == 0 {
            if name != PACK_MANIFEST {
                return Err(bad(
                    path,
                    format!("not a seedvae pack: the first entry must be {PACK_MANIFEST}"),
                ));
            }
            if size > MAX_PACK_MANIFEST {
                return Err(bad(
                    path,
                    format!(
                        "{PACK_MANIFEST} is {size} bytes, over the {MAX_PACK_MANIFEST}-byte limit for a listing"
                    ),
                ));
            }
            let mut text = Vec::new();
            ent.read_to_end(&mut text).map_err(corrupt)?;
            let m: PackManifest = serde_json::from_slice(&text)
                .map_err(|e| bad(path, format!("{PACK_MANIFEST}: {e}")))?;
            check_listing(path, &m)?;
            for (j, e) in m.engines.iter().enumerate() {
                for pf in &e.files {
                    expected.insert(pf.path.clone(), (j, pf.clone()));
                }
            }
            pm = Some(m);
            continue;
        }
        let Some((j, pf)) = expected.get(&name).cloned() else {
            return Err(bad(
                path,
                format!("entry '{name}' is not listed in {PACK_MANIFEST}"),
            ));
        };
        if !seen.insert(name.clone()) {
            return Err(bad(path, format!("entry '{name}' appears twice")));
        }
        if size != pf.bytes {
            return Err(bad(
                path,
                format!("entry '{name}' is {size} bytes, listed as {}", pf.bytes),
            ));
        }
        let key = &pm.as_ref().expect("first entry").engines[j].key;
        let is_manifest = name.ends_with(MANIFEST_FILE);
        if is_manifest && size > MAX_ENGINE_MANIFEST {
            return Err(bad(
                path,
                format!("entry '{name}' is too large for a manifest"),
            ));
        }
        let mut kept = Vec::new();
        let (n, sha, b3) = match (stage, is_manifest) {
            (_, true) => copy_hashed(&mut ent, &mut kept),
            (Some(dir), false) => {
                let d = dir.join(key);
                std::fs::create_dir_all(&d).map_err(|e| bad(&d, e))?;
                let out = d.join(ENGINE_FILE);
                let mut w =
                    std::io::BufWriter::new(std::fs::File::create(&out).map_err(|e| bad(&out, e))?);
                let r = copy_hashed(&mut ent, &mut w);
                w.into_inner()
                    .map_err(|e| bad(&out, e.into_error()))?
                    .sync_all()
                    .map_err(|e| bad(&out, e))?;
                r
            }
            (None, false) => copy_hashed(&mut ent, &mut std::io::sink()),
        }
        .map_err(corrupt)?;
        if n != pf.bytes {
            return Err(bad(
                path,
                format!("entry '{name}' is truncated: {n} of {} bytes", pf.bytes),
            ));
        }
        if sha != pf.sha256 {
            return Err(bad(
                path,
                format!(
                    "entry '{name}': sha256 {sha} does not match the listed {} (corrupt)",
                    pf.sha256
                ),
            ));
        }
        if is_manifest {
            let m = parse_manifest(&kept, &format!("entry '{name}'")).map_err(|e| bad(path, e))?;
            if let Some(dir) = stage {
                let d = dir.join(key);
                std::fs::create_dir_all(&d).map_err(|e| bad(&d, e))?;
                std::fs::write(d.join(MANIFEST_FILE), &kept).map_err(|e| bad(&d, e))?;
            }
            manifests.insert(key.clone(), m);
        } else {
            engines.insert(key.clone(), (n, b3));
        }
    }
    let pm = pm.ok_or_else(|| bad(path, "empty archive: not a seedvae pack"))?;
    if let Some(missing) = expected.keys().find(|k| !seen.contains(*k)) {
        return Err(bad(
            path,
            format!("entry '{missing}' is missing (truncated?)"),
        ));
    }
    for pe in &pm.engines {
        let (n, b3) = &engines[&pe.key];
        check_engine(path, pe, &manifests[&pe.key], (*n, b3))?;
    }
    Ok(pm)
}

/// Can every engine of the pack load with this TensorRT-RTX version? The reasons when not.
pub fn incompatible(pm: &PackManifest, tensorrt_rtx: &str) -> Vec<String> {
    pm.engines
        .iter()
        .filter(|e| e.tensorrt_rtx != tensorrt_rtx)
        .map(|e| {
            format!(
                "engine {} was built with TensorRT-RTX {}, this machine has {tensorrt_rtx}",
                e.key, e.tensorrt_rtx
            )
        })
        .collect()
}

/// What installing did to one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Installed {
    /// Newly installed.
    Added,
    /// A verified copy was already there.
    Present,
    /// A bad copy was there and has been replaced.
    Replaced,
}

impl Installed {
    /// The word shown to users: added, present, replaced.
    pub fn name(self) -> &'static str {
        match self {
            Installed::Added => "added",
            Installed::Present => "present",
            Installed::Replaced => "replaced",
        }
    }
}

/// Verify the whole pack (streaming it into a staging folder inside the cache), refuse it if any
/// engine needs another TensorRT-RTX version, then move each engine into place. Nothing is
/// installed when any check fails.
pub fn install(
    cache: &Cache,
    path: &Path,
    tensorrt_rtx: &str,
) -> Result<Vec<(String, Installed)>, Error> {
    let stage = cache.staging_dir("install");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| bad(&stage, e))?;
    let result = (|| {
        let pm = read_pack(path, Some(&stage))?;
        let why = incompatible(&pm, tensorrt_rtx);
        if !why.is_empty() {
            return Err(bad(path, format!("not installed: {}", why.join("; "))));
        }
        let mut done = Vec::new();
        for pe in &pm.engines {
            let src = stage.join(&pe.key);
            // The staged copy is checked exactly as a cache entry is on every use.
            load_entry(&src).map_err(|e| bad(path, format!("engine {}: {e}", pe.key)))?;
            let dest = cache.entry_dir(&pe.key);
            let outcome = match cache.load(&pe.key) {
                Ok(Some(_)) => {
                    done.push((pe.key.clone(), Installed::Present));
                    continue;
                }
                Ok(None) => Installed::Added,
                Err(_) => {
                    std::fs::remove_dir_all(&dest).map_err(|e| bad(&dest, e))?;
                    Installed::Replaced
                }
            };
            std::fs::rename(&src, &dest).map_err(|e| bad(&dest, e))?;
            done.push((pe.key.clone(), outcome));
        }
        Ok(done)
    })();
    let _ = std::fs::remove_dir_all(&stage);
    result
}
