//! Engine builds of the full-size model on this (GPU-less) machine: the FP8 decoder for sm_120
//! with the default profile (time, size, FP8 layers), the FP16 build of the same graph form as
//! the same-run baseline, a cache hit, and every shipped profile's largest tiles built at full
//! size with TensorRT-RTX's own activation-memory figure next to seedvae's estimate.
//!
//! usage: cargo run --release -p seedvae-benches --bin engine -- WEIGHTS [--no-profiles]
//! WEIGHTS: a full-size checkpoint, e.g. from `seedvae synth -o /tmp/full.safetensors`.

use seedvae_engine::cache::{Cache, Outcome};
use seedvae_engine::job::{inspect_graph, Job};
use seedvae_engine::profile::{activation_bytes, SHIPPED};
use seedvae_engine::{EnginePrecision, Profile, DEFAULT_PROFILE};
use seedvae_runner::prepare::GraphRecipe;
use seedvae_weights::{Part, WeightFile};
use std::path::Path;
use std::time::Instant;

fn graph(
    w: &WeightFile,
    part: Part,
    streaming: bool,
    precision: EnginePrecision,
    p: &Profile,
    out: &Path,
) -> (f64, Vec<u8>) {
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
    (
        t.elapsed().as_secs_f64(),
        std::fs::read(out).expect("read graph"),
    )
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
    let cache = Cache::open(Some(&dir.path().join("cache"))).expect("cache");
    let default = Profile::load(DEFAULT_PROFILE).expect("profile");
    let job = |p: &'static Profile| Job {
        cache: &cache,
        profile: p,
        targets: p.targets.clone(),
        tensorrt_dir: None,
        weightless: false,
    };
    let default: &'static Profile = Box::leak(Box::new(default));
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
            let (gsecs, bytes) = graph(&w, Part::Decoder, streaming, precision, default, &onnx);
            let g = inspect_graph(&bytes, "graph").expect("graph");
            let j = job(default);
            let t = Instant::now();
            let (e, outcome) = j.engine(&bytes, &g, || {}).expect("build");
            let bsecs = t.elapsed().as_secs_f64();
            assert_eq!(outcome, Outcome::Built);
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
                let parts = j
                    .key_parts(&g.blake3, precision, Part::Decoder, false)
                    .unwrap();
                let hit = j.cached(&parts).expect("cached");
                println!(
                    "| (cache hit of the row above: {:.3} s, {}) | | | | | | | |",
                    t.elapsed().as_secs_f64(),
                    hit.manifest.key
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
            let (_, bytes) = graph(&w, part, streaming, EnginePrecision::Fp16, default, &onnx);
            let g = inspect_graph(&bytes, "graph").expect("graph");
            for (name, _) in SHIPPED {
                let p: &'static Profile = Box::leak(Box::new(Profile::load(name).unwrap()));
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
                match job(p).engine(&bytes, &g, || {}) {
                    Ok((e, _)) => {
                        let a = e.manifest.info.device_memory.unwrap_or_default().activation_bytes;
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
