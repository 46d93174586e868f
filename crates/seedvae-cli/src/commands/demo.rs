use super::model::{BackendArg, ModelArgs};
use super::{build, bytes, convert, decode, inspect, synth, Ui};
use anyhow::{ensure, Result};
use seedvae_engine::cache::Cache;
use seedvae_runner::trt_backend;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Working directory for the demo's files (created; default: ./out/demo).
    #[arg(long, default_value = "out/demo")]
    pub dir: PathBuf,
}

fn step(n: usize, what: &str) {
    println!("[{n}/9] {what}");
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)?;
    let weights = a.dir.join("tiny_vae.safetensors");
    step(
        1,
        &format!("synth: a tiny random SeedVR2 VAE -> {}", weights.display()),
    );
    synth::run(
        synth::Args {
            output: weights.clone(),
            width: synth::Width::Tiny,
            dtype: synth::SynthDType::Fp16,
            seed: 1,
            format: synth::Fmt::Safetensors,
            force: true,
        },
        ui,
    )?;
    step(2, "inspect:");
    let w = seedvae_weights::WeightFile::open(&weights)?;
    let s = inspect::summarize(&w);
    inspect::print(&s);
    ensure!(s.valid, "the synthesized checkpoint did not validate");
    step(3, "convert: the streaming decoder as an ONNX graph");
    let onnx = a.dir.join("decoder_streaming.onnx");
    let opts = seedvae_onnx::ExportOptions {
        part: seedvae_weights::Part::Decoder,
        precision: seedvae_onnx::Precision::Fp32,
        streaming: true,
    };
    convert::convert(&weights, &onnx, opts, true, ui)?;

    // A "build machine" cache and a "user machine" cache, both under the demo directory.
    let (build_cache, user_cache) = (a.dir.join("build-cache"), a.dir.join("cache"));
    let mut keys = Vec::new();
    for (n, precision) in [
        (4, build::EnginePrecisionArg::Fp16),
        (5, build::EnginePrecisionArg::Fp8),
    ] {
        let name = if n == 4 { "fp16" } else { "FP8" };
        step(
            n,
            &format!("build: a {name} streaming decoder engine for RTX 50 (sm_120), on this CPU"),
        );
        let (entry, outcome) = build::build(
            &build::Args {
                model: weights.clone(),
                profile: seedvae_engine::DEFAULT_PROFILE.into(),
                target: vec![],
                precision: Some(precision),
                part: None,
                streaming: true,
                calibrate: vec![],
                cache: Some(build_cache.clone()),
                output: None,
                force: false,
                tensorrt_dir: None,
                json: false,
                weightless: false,
            },
            ui,
        )?;
        let m = &entry.manifest;
        println!(
            "      engine {} ({:?}): {}{}",
            m.key,
            outcome,
            bytes(m.engine.bytes),
            m.info
                .layers
                .as_ref()
                .map(|l| format!(
                    ", {} of {} convolutions in FP8",
                    l.fp8_convolutions, l.convolutions
                ))
                .unwrap_or_default()
        );
        keys.push(entry);
    }
    let pack_file = a.dir.join("engines.seedvae");
    step(6, &format!("pack: both engines -> {}", pack_file.display()));
    let sources: Vec<seedvae_engine::pack::Source> = keys.iter().map(Into::into).collect();
    seedvae_engine::pack::pack(&sources, &pack_file)?;
    println!("      {}", bytes(std::fs::metadata(&pack_file)?.len()));
    step(
        7,
        "verify: checksums, manifests, compatibility with this machine",
    );
    let pm = seedvae_engine::pack::read_pack(&pack_file, None)?;
    let libs = seedvae_engine::build::load_libraries(None)?;
    let problems = seedvae_engine::pack::incompatible(&pm, &libs.version);
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    println!(
        "      {} engines verified for TensorRT-RTX {}",
        pm.engines.len(),
        libs.version
    );
    step(8, &format!("install: into {}", user_cache.display()));
    let cache = Cache::open(Some(&user_cache))?;
    for (key, how) in seedvae_engine::pack::install(&cache, &pack_file, &libs.version)? {
        println!("      {key}: {how:?}");
    }

    // Decode with the best backend: the installed FP8 engine on a supported GPU, else the
    // weights on the CPU.
    let latent = a.dir.join("latent.safetensors");
    let mut r = seedvae_weights::synth::Rng::new(7);
    let mut v = vec![0f32; 16 * 3 * 16 * 16];
    r.fill_normal(&mut v);
    let t = seedvae_runner::Tensor::f32(vec![1, 16, 3, 16, 16], v);
    seedvae_runner::video::write_tensor(&latent, "latent", &t, seedvae_weights::DType::F32, true)?;
    let (model, why) = match trt_backend::runtime_ready(None) {
        Ok(gpu) => (
            PathBuf::from(&keys[1].manifest.key),
            format!("TensorRT-RTX on {}", gpu.name),
        ),
        Err(why) => (
            weights.clone(),
            format!("the CPU, because TensorRT-RTX cannot run here: {why}"),
        ),
    };
    let frames = a.dir.join("frames");
    step(
        9,
        &format!("decode: 3 latent frames of 16x16 -> 9 PNG frames of 128x128 with {why}"),
    );
    decode::run(
        decode::Args {
            model: ModelArgs {
                model,
                backend: BackendArg::Auto,
                profile: seedvae_engine::DEFAULT_PROFILE.into(),
                vram_budget: None,
                threads: 0,
                cache: Some(user_cache.clone()),
                tensorrt_dir: None,
                weights: None,
            },
            latent,
            output: frames,
            dit_latent: false,
            tiles: decode::TileArgs {
                tile_size: seedvae_runner::planner::DEFAULT_TILE_PX,
                tile_overlap: seedvae_runner::planner::DEFAULT_OVERLAP_PX,
                no_tiling: false,
                chunk: None,
            },
            fps: 24,
            out: decode::OutArgs {
                dtype: decode::DTypeArg::F32,
                force: true,
                json: false,
            },
        },
        ui,
    )?;
    Ok(ExitCode::SUCCESS)
}
