use super::{bytes, inspect, Ui};
use anyhow::{ensure, Result};
use seedvae::{
    engines::{EnginePrecision, EngineRequest},
    weights::{Architecture, ExportOptions, Precision, SynthOptions},
    BackendChoice, DType, FileOutput, LatentLayout, Model, ModelOptions, Part, Tensor, TileOptions,
};
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
    std::fs::create_dir_all(&a.dir)
        .map_err(|e| anyhow::anyhow!("--dir {}: {e}", a.dir.display()))?;
    let weights = a.dir.join("tiny_vae.safetensors");
    step(
        1,
        &format!("synth: a tiny random SeedVR2 VAE -> {}", weights.display()),
    );
    let tiny = SynthOptions {
        model: Architecture {
            widths: seedvae::weights::TINY_WIDTHS,
        },
        dtype: DType::F16,
        seed: 1,
        format: seedvae::weights::SynthFormat::SafeTensors,
    };
    seedvae::weights::synth(&weights, &tiny, true, &ui.progress("tensors"))?;
    step(2, "inspect:");
    let s = seedvae::weights::WeightSummary::of(&seedvae::weights::WeightFile::open(&weights)?);
    inspect::print(&s);
    ensure!(s.valid, "the synthesized checkpoint did not validate");
    step(3, "convert: the streaming decoder as an ONNX graph");
    let onnx = a.dir.join("decoder_streaming.onnx");
    let opts = ExportOptions {
        part: Part::Decoder,
        precision: Precision::Fp32,
        streaming: true,
    };
    let (c, _) = seedvae::weights::convert(&weights, &onnx, opts, true, &ui.progress("weights"))?;
    println!(
        "      wrote {} ({} {}, {} state pairs)",
        onnx.display(),
        c.part,
        c.precision.name(),
        c.states.len()
    );

    // A "build machine" cache and a "user machine" cache, both under the demo directory.
    let (build_cache, user_cache) = (a.dir.join("build-cache"), a.dir.join("cache"));
    let mut engines = Vec::new();
    for (n, precision) in [(4, EnginePrecision::Fp16), (5, EnginePrecision::Fp8)] {
        step(
            n,
            &format!(
                "build: a {} streaming decoder engine for RTX 50 (sm_120), on this CPU",
                precision.name()
            ),
        );
        let req = EngineRequest {
            precision: Some(precision),
            streaming: true,
            cache: Some(build_cache.clone()),
            ..EngineRequest::new(&weights)
        };
        let got = seedvae::engines::ensure_engine(&req, &ui.progress("building"))?;
        let m = &got.entry.manifest;
        println!(
            "      engine {} ({:?}): {}{}",
            m.key,
            got.outcome,
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
        engines.push(got.entry);
    }
    let pack_file = a.dir.join("engines.seedvae");
    step(6, &format!("pack: both engines -> {}", pack_file.display()));
    let dirs: Vec<PathBuf> = engines.iter().map(|e| e.dir.clone()).collect();
    seedvae::engines::pack_engines(&dirs, None, &pack_file, true)?;
    println!("      {}", bytes(std::fs::metadata(&pack_file)?.len()));
    step(
        7,
        "verify: checksums, manifests, compatibility with this machine",
    );
    let check = seedvae::engines::verify_pack(&pack_file, None)?;
    let version_problems: Vec<&String> = check
        .problems
        .iter()
        .filter(|p| p.contains("TensorRT-RTX"))
        .collect();
    ensure!(version_problems.is_empty(), "{}", check.problems.join("; "));
    println!(
        "      {} engines verified for TensorRT-RTX {}",
        check.manifest.engines.len(),
        engines[0].manifest.key_parts.tensorrt_rtx
    );
    step(8, &format!("install: into {}", user_cache.display()));
    let r = seedvae::engines::install_pack(
        &pack_file,
        Some(&user_cache),
        None,
        &ui.progress("installing"),
    )?;
    for (key, how) in &r.engines {
        println!("      {key}: {how:?}");
    }

    // Decode with the best backend: the installed FP8 engine on a supported GPU, else the
    // weights on the CPU.
    let latent = a.dir.join("latent.safetensors");
    let mut rng = seedvae::weights::Rng::new(7);
    let mut v = vec![0f32; 16 * 3 * 16 * 16];
    rng.fill_normal(&mut v);
    let t = Tensor::f32(vec![1, 16, 3, 16, 16], v)?;
    seedvae::write_tensor(&latent, "latent", &t, DType::F32, true)?;
    let (model, why) = match seedvae::backends::tensorrt_ready(None) {
        Ok(gpu) => (
            PathBuf::from(&engines[1].manifest.key),
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
    let progress = ui.progress("decoding");
    let opts = ModelOptions {
        cache: Some(user_cache.clone()),
        ..ModelOptions::new(BackendChoice::Auto)
    };
    let mut m = Model::open(&model, Part::Decoder, &opts, &progress)?;
    let out = FileOutput {
        force: true,
        ..FileOutput::new(&frames)
    };
    let latent = seedvae::read_latent(&latent, LatentLayout::Vae)?;
    let r = m.decode_to_file(&latent, &out, &TileOptions::default(), &progress)?;
    super::args::Summary::new(&frames, r).print(false, "decoded")?;
    Ok(ExitCode::SUCCESS)
}
