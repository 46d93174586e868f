//! Helpers for tests: where the repository, the shared fixtures and the setup venv are, running
//! Python oracles, building corrupt files, and error metrics. Used by every crate's tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `shared/` (spec and fixtures): `$SEEDVAE_SHARED`, else beside the repository, else inside it.
pub fn shared_dir() -> PathBuf {
    if let Ok(p) = std::env::var("SEEDVAE_SHARED") {
        return PathBuf::from(p);
    }
    let root = repo_root();
    for c in [root.join("../shared"), root.join("shared")] {
        if c.join("spec").is_dir() {
            return c;
        }
    }
    panic!(
        "shared/ (spec + fixtures) not found beside {} or inside it; set SEEDVAE_SHARED",
        root.display()
    )
}

pub fn fixture(rel: &str) -> PathBuf {
    shared_dir().join("fixtures").join(rel)
}

/// The setup venv's Python (scripts/setup.sh creates it). Tests that need an oracle fail with
/// this message rather than silently skipping.
pub fn venv_python() -> PathBuf {
    let root = repo_root();
    let p = if cfg!(windows) {
        root.join(".venv/Scripts/python.exe")
    } else {
        root.join(".venv/bin/python")
    };
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh first (the README's test command does)",
        p.display()
    );
    p
}

/// Run a Python script from tests/oracle with the venv interpreter; panics with its output on failure.
pub fn run_oracle(script: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .arg(repo_root().join("tests/oracle").join(script))
        .args(args)
        .output()
        .expect("run python");
    let text = output_text(&out);
    assert!(out.status.success(), "oracle {script} failed:\n{text}");
    text
}

/// A finished child's stdout then stderr, as text.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The entries of `dir`, sorted.
pub fn sorted_entries(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Relative L2 error ‖a − b‖ / ‖b‖.
pub fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Rewrite a SafeTensors file's header JSON with `edit`, keeping the data section as is.
pub fn edit_safetensors_header(
    bytes: &[u8],
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut json);
    let text = serde_json::to_vec(&json).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// A fixture tensor as (shape, f64 values).
pub fn fixture_tensor(file: &str, name: &str) -> (Vec<usize>, Vec<f64>) {
    let w = seedvae_weights::WeightFile::open(fixture(file)).unwrap();
    let t = w
        .get(name)
        .unwrap_or_else(|| panic!("{file} has no {name}"));
    (t.shape.clone(), w.f64(name).unwrap())
}

/// Export `part` of `weights` into `dir` and open it on the ORT CPU backend (2 threads).
pub fn export_and_open(
    weights: &std::path::Path,
    dir: &std::path::Path,
    opts: seedvae_onnx::ExportOptions,
) -> seedvae_runner::OrtBackend {
    export_and_open_threads(weights, dir, opts, 2)
}

/// [`export_and_open`] with `threads` intra-op threads.
pub fn export_and_open_threads(
    weights: &std::path::Path,
    dir: &std::path::Path,
    opts: seedvae_onnx::ExportOptions,
    threads: usize,
) -> seedvae_runner::OrtBackend {
    let w = seedvae_weights::WeightFile::open(weights).unwrap();
    let name = format!(
        "{}_{}_{}_{}.onnx",
        weights.file_stem().unwrap().to_string_lossy(),
        opts.part,
        opts.precision.name(),
        if opts.streaming { "stream" } else { "oneshot" }
    );
    let out = dir.join(name);
    if !out.exists() {
        seedvae_onnx::convert(&w, opts, &out, |_, _| {}).unwrap();
    }
    seedvae_runner::OrtBackend::open(&out, threads).unwrap()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Write a SafeTensors copy of `src` holding only the tensors for which `keep(name)` is true.
pub fn write_subset(src: &Path, dest: &Path, keep: impl Fn(&str) -> bool) {
    let w = seedvae_weights::WeightFile::open(src).unwrap();
    let kept: Vec<_> = w.tensors().iter().filter(|t| keep(&t.name)).collect();
    let raws: Vec<(seedvae_weights::DType, Vec<u8>)> = kept
        .iter()
        .map(|t| {
            let (d, b) = w.raw(&t.name).unwrap().expect("stored in place");
            (d, b.to_vec())
        })
        .collect();
    let wt: Vec<_> = kept
        .iter()
        .zip(&raws)
        .map(|(t, (d, b))| seedvae_weights::safetensors::WriteTensor {
            name: &t.name,
            dtype: *d,
            shape: &t.shape,
            data: b,
        })
        .collect();
    let mut f = std::fs::File::create(dest).unwrap();
    seedvae_weights::safetensors::write(&mut f, &Default::default(), &wt).unwrap();
}

/// Export every form (decoder/encoder × fp32/fp16 × one-shot/streaming) of `weights` into `dir`.
pub fn export_all_forms(
    weights: &seedvae_weights::WeightFile,
    dir: &Path,
) -> Vec<(PathBuf, seedvae_onnx::Contract)> {
    use seedvae_onnx::{ExportOptions, Precision};
    let mut out = Vec::new();
    for part in [
        seedvae_weights::Part::Decoder,
        seedvae_weights::Part::Encoder,
    ] {
        for precision in [Precision::Fp32, Precision::Fp16] {
            for streaming in [false, true] {
                let p = dir.join(format!("{part}_{}_{streaming}.onnx", precision.name()));
                let (c, _) = seedvae_onnx::convert(
                    weights,
                    ExportOptions {
                        part,
                        precision,
                        streaming,
                    },
                    &p,
                    |_, _| {},
                )
                .unwrap();
                out.push((p, c));
            }
        }
    }
    out
}

/// Run the `seedvae` binary at `exe`: (exit code, stdout, stderr).
pub fn run_cli(exe: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(exe).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
