use super::{bytes, thousands, Ui};
use anyhow::Result;
use seedvae_weights::WeightFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors or .gguf SeedVR2 VAE checkpoint, an .onnx graph written by `seedvae convert`,
    /// or an engine: a file written by `seedvae build -o`, a cache entry directory, or a cache key.
    pub file: PathBuf,
    /// Engine cache for looking up a key (default: $SEEDVAE_CACHE or the user cache dir).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print a machine-readable JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
pub struct Summary {
    pub file: PathBuf,
    pub format: String,
    pub file_bytes: u64,
    pub tensors: usize,
    pub dtypes: BTreeMap<String, usize>,
    pub variant: seedvae_weights::Variant,
    pub variant_text: String,
    pub parameters: u64,
    pub valid: bool,
    pub problems: Vec<seedvae_weights::Problem>,
}

pub fn summarize(w: &WeightFile) -> Summary {
    let report = w.report();
    let mut dtypes = BTreeMap::new();
    for t in w.tensors() {
        *dtypes.entry(t.stored.clone()).or_insert(0) += 1;
    }
    Summary {
        file: w.path.clone(),
        format: w.format.to_string(),
        file_bytes: w.file_size() as u64,
        tensors: w.tensors().len(),
        dtypes,
        variant_text: report.variant.to_string(),
        variant: report.variant,
        parameters: w.tensors().iter().map(|t| t.numel() as u64).sum(),
        valid: report.problems.is_empty(),
        problems: report.problems,
    }
}

pub fn print(s: &Summary) {
    let hist: Vec<String> = s.dtypes.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("file:       {} ({})", s.file.display(), bytes(s.file_bytes));
    println!("format:     {}", s.format);
    println!("tensors:    {} ({})", s.tensors, hist.join(", "));
    println!("parameters: {}", thousands(s.parameters));
    println!("variant:    {}", s.variant_text);
    if s.valid {
        println!("status:     valid");
    } else {
        println!("status:     INVALID, {} problem(s):", s.problems.len());
        for p in &s.problems {
            println!("  - {p}");
        }
    }
}

/// Print the I/O contract and metadata of a seedvae ONNX graph.
fn inspect_onnx(a: &Args) -> Result<ExitCode> {
    let (c, md) = seedvae_onnx::read_contract(&a.file)?;
    if a.json {
        let md: BTreeMap<_, _> = md
            .into_iter()
            .filter(|(k, _)| k != seedvae_onnx::contract::METADATA_KEY)
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "file": a.file, "contract": c, "metadata": md })
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "file:       {} ({})",
        a.file.display(),
        bytes(std::fs::metadata(&a.file)?.len())
    );
    println!("format:     onnx (seedvae graph)");
    println!(
        "graph:      {} {}{}",
        c.part,
        c.precision.name(),
        if c.streaming {
            ", streaming"
        } else {
            ", one-shot"
        }
    );
    for (k, v) in md
        .iter()
        .filter(|(k, _)| k != seedvae_onnx::contract::METADATA_KEY)
    {
        println!("  {k} = {v}");
    }
    let dims = |t: &seedvae_onnx::TensorIo| serde_json::to_string(&t.dims).unwrap_or_default();
    let main_in = &c.inputs[0];
    println!(
        "input:      {} {:?} {}",
        main_in.name,
        main_in.elem,
        dims(main_in)
    );
    for o in c
        .outputs
        .iter()
        .filter(|o| !o.name.starts_with("state_out."))
    {
        println!("output:     {} {:?} {}", o.name, o.elem, dims(o));
    }
    if c.streaming {
        let marker = c
            .continuation
            .as_ref()
            .map(|m| format!(", plus the `{m}` chunk marker input"))
            .unwrap_or_default();
        println!(
            "states:     {} pairs (state_in.* -> state_out.*){marker}",
            c.states.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where an engine's manifest and engine file are, if `f` names an engine: a cache entry
/// directory, an engine file with its `.manifest.json` sidecar, or a cache key.
pub fn engine_files(f: &Path, cache: Option<&Path>) -> Option<(PathBuf, PathBuf)> {
    use seedvae_engine::cache::{ENGINE_FILE, MANIFEST_FILE};
    if f.is_dir() {
        return Some((f.join(MANIFEST_FILE), f.join(ENGINE_FILE)));
    }
    let side = super::build::sidecar(f);
    if side.exists() {
        return Some((side, f.to_path_buf()));
    }
    if f.file_name().is_some_and(|n| n == ENGINE_FILE) {
        let m = f.with_file_name(MANIFEST_FILE);
        return m.exists().then(|| (m, f.to_path_buf()));
    }
    let s = f.to_str()?;
    if !f.exists() && s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let cache = seedvae_engine::cache::Cache::open(cache).ok()?;
        let d = cache.entry_dir(s);
        return Some((d.join(MANIFEST_FILE), d.join(ENGINE_FILE)));
    }
    None
}

/// Print an engine's manifest, after checking the engine file against it.
fn inspect_engine(
    a: &Args,
    manifest: &std::path::Path,
    engine: &std::path::Path,
) -> Result<ExitCode> {
    let text =
        std::fs::read(manifest).map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?;
    let m: seedvae_engine::cache::Manifest = serde_json::from_slice(&text).map_err(|e| {
        anyhow::anyhow!("{}: not a seedvae engine manifest: {e}", manifest.display())
    })?;
    let verdict = std::fs::read(engine)
        .map_err(|e| format!("{}: {e}", engine.display()))
        .and_then(|b| m.verify(&b));
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        v["verified"] = serde_json::json!(verdict.is_ok());
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let k = &m.key_parts;
        println!(
            "engine:     {} ({})",
            engine.display(),
            bytes(m.engine.bytes)
        );
        println!("key:        {}", m.key);
        println!(
            "built:      {} {}{} for {} with TensorRT-RTX {}, profile {}, in {:.1}s by seedvae {}",
            k.part,
            k.precision.name(),
            if k.streaming {
                " streaming"
            } else {
                " one-shot"
            },
            seedvae_engine::Target::list(&k.targets),
            k.tensorrt_rtx,
            m.info.profile,
            m.info.build_seconds,
            m.seedvae_version
        );
        println!("graph:      blake3 {}", k.onnx_blake3);
        for (key, v) in &m.info.source {
            println!("  {key} = {v}");
        }
        if let Some(l) = &m.info.layers {
            println!(
                "layers:     {} convolutions ({} FP8), {} matmuls ({} FP8)",
                l.convolutions, l.fp8_convolutions, l.matmuls, l.fp8_matmuls
            );
        }
        if let Some(d) = &m.info.device_memory {
            println!(
                "memory:     {} activations at the largest tile, {} weights",
                bytes(d.activation_bytes),
                bytes(d.weight_bytes)
            );
        }
        for r in &m.info.input_ranges {
            if !r.name.starts_with("state_in.") {
                println!(
                    "input:      {} min {:?} opt {:?} max {:?}",
                    r.name, r.min, r.opt, r.max
                );
            }
        }
        for o in m
            .info
            .contract
            .outputs
            .iter()
            .filter(|o| !o.name.starts_with("state_out."))
        {
            println!(
                "output:     {} {:?} {}",
                o.name,
                o.elem,
                serde_json::to_string(&o.dims)?
            );
        }
        if !m.info.contract.states.is_empty() {
            println!(
                "states:     {} pairs (state_in.* -> state_out.*)",
                m.info.contract.states.len()
            );
        }
        match &verdict {
            Ok(()) => println!("status:     verified (size and blake3 match the manifest)"),
            Err(why) => println!("status:     BAD: {why}"),
        }
    }
    Ok(if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn run(a: Args, _ui: &Ui) -> Result<ExitCode> {
    if let Some((m, e)) = engine_files(&a.file, a.cache.as_deref()) {
        return inspect_engine(&a, &m, &e);
    }
    if a.file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return inspect_onnx(&a);
    }
    let w = WeightFile::open(&a.file)?;
    let s = summarize(&w);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print(&s);
    }
    Ok(if s.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
