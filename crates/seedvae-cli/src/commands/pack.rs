//! `pack`, `verify`, `install`: engines as files to ship.

use super::{bytes, Ui};
use anyhow::{anyhow, bail, Result};
use seedvae_engine::cache::{Cache, Manifest};
use seedvae_engine::pack::{self, PackManifest, Source};
use seedvae_runner::trt_backend;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae pack 3f2a…e1 -o rtx50.seedvae                    # a cached engine by key\n  \
seedvae pack vae.trt enc.trt -o both.seedvae             # engines written by `build -o`\n\n\
The pack is a tar file: seedvae-pack.json (each engine's key parts, sha256, TensorRT-RTX version, \
target compute capabilities, profile, precision, source weights hash) and the engines. It carries \
no model weights beyond what the engines themselves hold.")]
pub struct PackArgs {
    /// Engines: cache keys, cache entry directories, or engine files with their .manifest.json.
    #[arg(required = true)]
    pub engines: Vec<PathBuf>,
    /// The pack to write (.seedvae).
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub force: bool,
    /// Engine cache directory (for keys).
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

pub fn run_pack(a: PackArgs, _ui: &Ui) -> Result<ExitCode> {
    seedvae_weights::atomic::check_overwrite(&a.output, a.force)?;
    let mut sources = Vec::new();
    for e in &a.engines {
        let (m, f) = super::inspect::engine_files(e, a.cache.as_deref()).ok_or_else(|| {
            anyhow!(
                "{}: not an engine (a cache key, a cache entry directory, or an engine file with its .manifest.json)",
                e.display()
            )
        })?;
        let text = std::fs::read(&m).map_err(|err| anyhow!("{}: {err}", m.display()))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|err| anyhow!("{}: not an engine manifest: {err}", m.display()))?;
        sources.push(Source {
            manifest,
            manifest_file: m,
            engine_file: f,
        });
    }
    let pm = pack::pack(&sources, &a.output)?;
    let size = std::fs::metadata(&a.output)?.len();
    println!(
        "packed {} engine(s) into {} ({})",
        pm.engines.len(),
        a.output.display(),
        bytes(size)
    );
    print_engines(&pm);
    Ok(ExitCode::SUCCESS)
}

fn print_engines(pm: &PackManifest) {
    for e in &pm.engines {
        println!(
            "  {} {} {}{} for {} (compute capability {}), TensorRT-RTX {}, profile {}{}",
            e.key,
            e.part,
            e.precision.name(),
            if e.streaming { " streaming" } else { "" },
            seedvae_engine::Target::list(&e.targets),
            e.compute_capabilities.join(", "),
            e.tensorrt_rtx,
            e.profile,
            e.source_weights
                .as_ref()
                .map(|h| format!(", from weights {}…", &h[..h.len().min(16)]))
                .unwrap_or_default()
        );
    }
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The pack (.seedvae).
    pub pack: PathBuf,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
    /// Print the pack's listing and the verdicts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// This machine's view of a verified pack: problems that make it unusable here, and what could
/// not be checked.
fn compatibility(pm: &PackManifest, dir: Option<&std::path::Path>) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut unchecked) = (Vec::new(), Vec::new());
    match seedvae_engine::build::load_libraries(dir) {
        Ok(l) => problems.extend(pack::incompatible(pm, &l.version)),
        Err(e) => unchecked.push(format!("TensorRT-RTX version not checked: {e}")),
    }
    match trt_backend::probe_gpu() {
        Ok(gpu) => {
            for e in &pm.engines {
                if let Err(why) = trt_backend::check_device(&gpu, &e.targets) {
                    problems.push(format!("engine {}: {why}", e.key));
                }
            }
        }
        Err(why) => unchecked.push(format!("GPU not checked: {why}")),
    }
    (problems, unchecked)
}

pub fn run_verify(a: VerifyArgs, _ui: &Ui) -> Result<ExitCode> {
    let pm = pack::read_pack(&a.pack, None)?;
    let (problems, unchecked) = compatibility(&pm, a.tensorrt_dir.as_deref());
    if a.json {
        let mut v = serde_json::to_value(&pm)?;
        v["verified"] = serde_json::json!(true);
        v["problems"] = serde_json::json!(problems);
        v["not_checked"] = serde_json::json!(unchecked);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} engine(s), every file's size and sha256 and every engine manifest verified",
            a.pack.display(),
            pm.engines.len()
        );
        print_engines(&pm);
        for u in &unchecked {
            println!("note: {u}");
        }
        for p in &problems {
            println!("NOT USABLE HERE: {p}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// The pack (.seedvae).
    pub pack: PathBuf,
    /// Engine cache directory (default: $SEEDVAE_CACHE, else ~/.cache/seedvae or %LOCALAPPDATA%\seedvae).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
}

pub fn run_install(a: InstallArgs, ui: &Ui) -> Result<ExitCode> {
    let libs = seedvae_engine::build::load_libraries(a.tensorrt_dir.as_deref()).map_err(|e| {
        anyhow!("cannot check the pack's TensorRT-RTX version against this machine: {e}")
    })?;
    let cache = Cache::open(a.cache.as_deref())?;
    let pb = ui.spinner(&format!("verifying and installing {}", a.pack.display()));
    let r = pack::install(&cache, &a.pack, &libs.version);
    pb.finish_and_clear();
    let done = r?;
    for (key, how) in &done {
        println!(
            "{key}: {}",
            serde_json::to_value(how)?.as_str().unwrap_or("?")
        );
    }
    println!(
        "installed {} engine(s) into {}",
        done.len(),
        cache.root.join("engines").display()
    );
    if let Err(why) = trt_backend::probe_gpu() {
        println!("note: no GPU here to run them ({why})");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Subcommand)]
pub enum EnginesCommand {
    /// Every cached engine, verified (key, part, precision, targets, version, size, status).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove engines by key.
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Remove what is not needed: unusable engines and leftovers of interrupted builds and
    /// installs; with --graphs also the converted CPU graphs (made again on demand).
    Gc {
        #[arg(long)]
        graphs: bool,
    },
}

#[derive(clap::Args)]
pub struct EnginesArgs {
    #[command(subcommand)]
    pub command: EnginesCommand,
    /// Engine cache directory (default: $SEEDVAE_CACHE, else ~/.cache/seedvae or %LOCALAPPDATA%\seedvae).
    #[arg(long, global = true)]
    pub cache: Option<PathBuf>,
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    if p.is_file() {
        return p.metadata().map_or(0, |m| m.len());
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| dir_bytes(&e.path())).sum())
        .unwrap_or(0)
}

fn remove(p: &std::path::Path) -> Result<u64> {
    let n = dir_bytes(p);
    if p.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
    .map_err(|e| anyhow!("{}: {e}", p.display()))?;
    Ok(n)
}

pub fn run_engines(a: EnginesArgs, _ui: &Ui) -> Result<ExitCode> {
    let cache = Cache::open(a.cache.as_deref())?;
    match a.command {
        EnginesCommand::List { json } => {
            let list = cache.list();
            if json {
                let v: Vec<serde_json::Value> = list
                    .iter()
                    .map(|(d, r)| match r {
                        Ok(e) => serde_json::json!({"dir": d, "ok": true, "manifest": e.manifest}),
                        Err(why) => serde_json::json!({"dir": d, "ok": false, "problem": why}),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.is_empty() {
                println!("no engines in {}", cache.root.join("engines").display());
            } else {
                for (d, r) in &list {
                    match r {
                        Ok(e) => {
                            let k = &e.manifest.key_parts;
                            println!(
                                "{}  {} {}{}  {}  TensorRT-RTX {}  {}  {}",
                                e.manifest.key,
                                k.part,
                                k.precision.name(),
                                if k.streaming { " streaming" } else { "" },
                                seedvae_engine::Target::list(&k.targets),
                                k.tensorrt_rtx,
                                e.manifest.info.profile,
                                bytes(e.manifest.engine.bytes)
                            );
                        }
                        Err(why) => println!("{}  BAD: {why}", d.display()),
                    }
                }
            }
        }
        EnginesCommand::Rm { keys } => {
            for k in &keys {
                let d = cache.entry_dir(k);
                if !(seedvae_engine::pack::is_key(k) && d.is_dir()) {
                    bail!("no engine {k} in {}", cache.root.join("engines").display());
                }
            }
            for k in &keys {
                let n = remove(&cache.entry_dir(k))?;
                println!("removed {k} ({})", bytes(n));
            }
        }
        EnginesCommand::Gc { graphs } => {
            let mut freed = 0;
            for (d, r) in cache.list() {
                if let Err(why) = r {
                    freed += remove(&d)?;
                    println!("removed unusable {} ({why})", d.display());
                }
            }
            // Leftovers of interrupted builds (.tmp-KEY-PID) and installs (.install-PID): when
            // their process is gone (Linux), or a day old (elsewhere, or to be sure).
            for e in std::fs::read_dir(cache.root.join("engines"))?.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !(n.starts_with(".tmp-") || n.starts_with(".install-")) {
                    continue;
                }
                let pid = n.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
                let dead = cfg!(target_os = "linux")
                    && pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d.as_secs() > 24 * 3600);
                if dead || old {
                    freed += remove(&e.path())?;
                    println!("removed leftover {}", e.path().display());
                }
            }
            if graphs {
                let g = cache.root.join("graphs");
                if g.is_dir() {
                    freed += remove(&g)?;
                    println!("removed converted CPU graphs in {}", g.display());
                }
            }
            println!("freed {}", bytes(freed));
        }
    }
    Ok(ExitCode::SUCCESS)
}
