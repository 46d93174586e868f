use super::{bytes, thousands, Ui};
use anyhow::Result;
use seedvae_weights::WeightFile;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A .safetensors or .gguf SeedVR2 VAE checkpoint, or an .onnx graph written by `seedvae convert`.
    pub file: PathBuf,
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

pub fn run(a: Args, _ui: &Ui) -> Result<ExitCode> {
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
