use super::{bytes, thousands, Ui};
use anyhow::Result;
use seedvae::{
    engines::Target,
    weights::{WeightFile, WeightSummary},
};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

pub fn print(s: &WeightSummary) {
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
    let (c, md) = seedvae::weights::read_contract(&a.file)?;
    if a.json {
        let md: BTreeMap<_, _> = md
            .into_iter()
            .filter(|(k, _)| k != seedvae::weights::CONTRACT_METADATA_KEY)
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
        .filter(|(k, _)| k != seedvae::weights::CONTRACT_METADATA_KEY)
    {
        println!("  {k} = {v}");
    }
    let dims = |t: &seedvae::weights::TensorIo| serde_json::to_string(&t.dims).unwrap_or_default();
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

/// Print an engine's manifest, after checking the engine file against it.
fn inspect_engine(
    a: &Args,
    manifest: &std::path::Path,
    engine: &std::path::Path,
) -> Result<ExitCode> {
    let m = seedvae::engines::read_manifest(manifest)?;
    let verdict = seedvae::engines::verify_engine_file(&m, engine);
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
            Target::list(&k.targets),
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
    if let Some((m, e)) = seedvae::engines::locate(&a.file, a.cache.as_deref()) {
        if !m.exists() {
            anyhow::bail!(
                "{}: no engine here (no {} found): give an engine directory, a `seedvae build -o` file \
                 with its .manifest.json, or the key of an engine in the cache",
                a.file.display(),
                m.display()
            );
        }
        return inspect_engine(&a, &m, &e);
    }
    if a.file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        return inspect_onnx(&a);
    }
    let s = WeightSummary::of(&WeightFile::open(&a.file)?);
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
