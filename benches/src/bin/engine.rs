//! Engine builds of the full-size model on this (GPU-less) machine: the FP8 decoder for sm_120
//! with the default profile (time, size, FP8 layers), the FP16 build of the same graph form as
//! the same-run baseline, a cache hit, and every shipped profile's largest tiles built at full
//! size with TensorRT-RTX's own activation-memory figure next to seedvae's estimate.
//!
//! usage: cargo run --release -p seedvae-benches --bin engine -- WEIGHTS [--no-profiles]
//! WEIGHTS: a full-size checkpoint, e.g. from `seedvae synth -o /tmp/full.safetensors`.

use seedvae::engines::DEFAULT_PROFILE;
use seedvae::{
    engines::{EnginePrecision, EngineRequest, Outcome, Profile},
    weights::WeightFile,
    Part, Progress,
};
use seedvae_engine::profile::{activation_bytes, SHIPPED};
use seedvae_runner::GraphRecipe;
use std::path::Path;
use std::time::Instant;

/// Write the graph an engine of this kind is built from (timed apart from the build).
fn graph(
    w: &WeightFile,
    part: Part,
    streaming: bool,
    precision: EnginePrecision,
    p: &Profile,
    out: &Path,
) -> f64 {
    let t = Instant::now();
    GraphRecipe {
        weights: w,
        part,
        streaming,
        precision,
        fp16_blocks: p.fp16_blocks.clone(),
        calibration: vec![],
    }
    .write(out)
    .expect("graph");
    t.elapsed().as_secs_f64()
}

/// The engine for the graph at `onnx` with `profile`, through the library (cache in `cache`).
fn engine(
    onnx: &Path,
    profile: &str,
    cache: &Path,
) -> seedvae::Result<seedvae::engines::EngineEntry> {
    let req = EngineRequest {
        profile: profile.to_string(),
        cache: Some(cache.to_path_buf()),
        ..EngineRequest::new(onnx)
    };
    seedvae::engines::ensure_engine(&req, &Progress::default())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let weights = args.next().expect("usage: engine WEIGHTS [--no-profiles]");
    let profiles = args.next().as_deref() != Some("--no-profiles");
    let w = WeightFile::open(&weights).expect("weights");
    assert!(
        w.report().problems.is_empty(),
        "{weights} is not a valid SeedVR2 VAE"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let default = Profile::load(DEFAULT_PROFILE).expect("profile");
    println!("weights: {weights}");
    println!(
        "profile {DEFAULT_PROFILE}, targets sm_120, machine: {} logical CPUs, no GPU",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| engine | graph (convert + calibrate) | build | ratio to fp16 build | engine size | FP8 convs | FP8 matmuls | activations at max tile (builder) |");
    println!("|---|---|---|---|---|---|---|---|");
    for streaming in [false, true] {
        let mut fp16_build = None;
        for precision in [EnginePrecision::Fp16, EnginePrecision::Fp8] {
            let onnx = dir.path().join("g.onnx");
            let gsecs = graph(&w, Part::Decoder, streaming, precision, &default, &onnx);
            let t = Instant::now();
            let got = engine(&onnx, DEFAULT_PROFILE, &cache).expect("build");
            let bsecs = t.elapsed().as_secs_f64();
            assert_eq!(got.outcome, Outcome::Built);
            let e = got.entry;
            let base = *fp16_build.get_or_insert(bsecs);
            let l = e.manifest.info.layers.clone().unwrap_or_default();
            let m = e.manifest.info.device_memory.unwrap_or_default();
            println!(
                "| decoder {}{} | {gsecs:.1} s | {bsecs:.1} s | {:.2}× | {:.1} MB | {}/{} | {}/{} | {:.2} GB |",
                precision.name(),
                if streaming { " streaming" } else { "" },
                bsecs / base,
                e.manifest.engine.bytes as f64 / 1e6,
                l.fp8_convolutions, l.convolutions, l.fp8_matmuls, l.matmuls,
                m.activation_bytes as f64 / 1e9
            );
            if precision == EnginePrecision::Fp8 && !streaming {
                let t = Instant::now();
                let hit = engine(&onnx, DEFAULT_PROFILE, &cache).expect("cached");
                assert_eq!(hit.outcome, Outcome::Hit);
                println!(
                    "| (cache hit of the row above: {:.3} s, {}) | | | | | | | |",
                    t.elapsed().as_secs_f64(),
                    hit.entry.manifest.key
                );
            }
        }
    }
    if !profiles {
        return;
    }
    println!();
    println!("Shipped profiles, largest tiles, full-size fp16 graphs (activations: builder's figure vs seedvae's estimate; the workspace bounds them):");
    println!("| profile | part | mode | max (t, h, w) | builder | estimate | estimate / builder | workspace |");
    println!("|---|---|---|---|---|---|---|---|");
    let onnx = dir.path().join("p.onnx");
    for part in [Part::Decoder, Part::Encoder] {
        for streaming in [false, true] {
            graph(&w, part, streaming, EnginePrecision::Fp16, &default, &onnx);
            for (name, _) in SHIPPED {
                let p = Profile::load(name).expect("shipped profile");
                let r = p.shapes(part).get(streaming);
                let mode = if streaming { "streaming" } else { "one-shot" };
                let est = activation_bytes(
                    EnginePrecision::Fp16,
                    part,
                    streaming,
                    r.t.max,
                    r.h.max,
                    r.w.max,
                );
                match engine(&onnx, name, &cache) {
                    Ok(got) => {
                        let a = got.entry.manifest.info.device_memory.unwrap_or_default().activation_bytes;
                        println!(
                            "| {name} | {part} | {mode} | ({}, {}, {}) | {:.2} GB | {:.2} GB | {:.2} | {:.2} GB |",
                            r.t.max, r.h.max, r.w.max, a as f64 / 1e9, est as f64 / 1e9, est as f64 / a as f64,
                            p.workspace_bytes() as f64 / 1e9
                        );
                    }
                    Err(err) => println!("| {name} | {part} | {mode} | ({}, {}, {}) | FAILED: {err} | {:.2} GB | | |", r.t.max, r.h.max, r.w.max, est as f64 / 1e9),
                }
            }
        }
    }
}
