//! `pack`, `verify`, `install`, `engines`: engines as files to ship, and the cache.

use super::{bytes, Ui};
use anyhow::Result;
use seedvae::engines::{Cache, PackManifest, Target};
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
    let pm = seedvae::engines::pack_engines(&a.engines, a.cache.as_deref(), &a.output, a.force)?;
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

pub fn print_engines(pm: &PackManifest) {
    for e in &pm.engines {
        println!(
            "  {} {} {}{} for {} (compute capability {}), TensorRT-RTX {}, profile {}{}",
            e.key,
            e.part,
            e.precision.name(),
            if e.streaming { " streaming" } else { "" },
            Target::list(&e.targets),
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

pub fn run_verify(a: VerifyArgs, _ui: &Ui) -> Result<ExitCode> {
    let check = seedvae::engines::verify_pack(&a.pack, a.tensorrt_dir.as_deref())?;
    if a.json {
        let mut v = serde_json::to_value(&check.manifest)?;
        v["verified"] = serde_json::json!(true);
        v["problems"] = serde_json::json!(check.problems);
        v["not_checked"] = serde_json::json!(check.unchecked);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} engine(s), every file's size and sha256 and every engine manifest verified",
            a.pack.display(),
            check.manifest.engines.len()
        );
        print_engines(&check.manifest);
        for u in &check.unchecked {
            println!("note: {u}");
        }
        for p in &check.problems {
            println!("NOT USABLE HERE: {p}");
        }
    }
    Ok(if check.problems.is_empty() {
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
    let r = seedvae::engines::install_pack(
        &a.pack,
        a.cache.as_deref(),
        a.tensorrt_dir.as_deref(),
        &ui.progress("installing"),
    )?;
    for (key, how) in &r.engines {
        println!("{key}: {}", how.name());
    }
    println!(
        "installed {} engine(s) into {}",
        r.engines.len(),
        r.into.display()
    );
    if let Some(why) = &r.no_gpu {
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

pub fn run_engines(a: EnginesArgs, _ui: &Ui) -> Result<ExitCode> {
    // Listing and cleaning create nothing (a read-only or absent cache is simply empty).
    let cache = Cache::existing(a.cache.as_deref())?;
    match a.command {
        EnginesCommand::List { json } => list(&cache, json)?,
        EnginesCommand::Rm { keys } => {
            for (k, n) in cache.remove(&keys)? {
                println!("removed {k} ({})", bytes(n));
            }
        }
        EnginesCommand::Gc { graphs } => {
            let r = cache.gc(graphs)?;
            for (d, why) in &r.unusable {
                println!("removed unusable {} ({why})", d.display());
            }
            for d in &r.leftovers {
                println!("removed leftover {}", d.display());
            }
            if let Some(g) = &r.graphs {
                println!("removed converted CPU graphs in {}", g.display());
            }
            for d in &r.kept {
                println!("left alone {} (not seedvae's)", d.display());
            }
            println!("freed {}", bytes(r.freed));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(cache: &Cache, json: bool) -> Result<()> {
    let list = cache.list();
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|(d, r)| match r {
                Ok(e) => serde_json::json!({"dir": d, "ok": true, "manifest": e.manifest}),
                Err(why) => serde_json::json!({"dir": d, "ok": false, "problem": why.to_string()}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if list.is_empty() {
        println!("no engines in {}", cache.engines_dir().display());
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
                        Target::list(&k.targets),
                        k.tensorrt_rtx,
                        e.manifest.info.profile,
                        bytes(e.manifest.engine.bytes)
                    );
                }
                Err(why) => println!("{}  BAD: {why}", d.display()),
            }
        }
    }
    Ok(())
}
