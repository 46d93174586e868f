use super::convert::PartArg;
use super::{bytes, Ui};
use anyhow::{bail, Context, Result};
use seedvae_engine::cache::{Cache, Entry, Outcome};
use seedvae_engine::job::{inspect_graph, Job};
use seedvae_engine::{EnginePrecision, Profile, Target};
use seedvae_runner::prepare::GraphRecipe;
use seedvae_weights::{Part, WeightFile};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EnginePrecisionArg {
    Fp8,
    Fp16,
    Fp32,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
seedvae build ema_vae_fp16.safetensors                       # FP8 decoder for an RTX 5070 Ti (default profile)\n  \
seedvae build ema_vae_fp16.safetensors --streaming -o vae.trt\n  \
seedvae build vae.onnx --profile rtx4090 --precision fp16\n  \
seedvae build ema_vae_fp16.safetensors --calibrate a.safetensors b.npy\n\n\
Engines are cached (see --cache) by the graph, profile, TensorRT-RTX version, targets, precision and part: \
building the same thing again returns the cached engine at once. No GPU is needed: TensorRT-RTX compiles \
ahead of time for the named architectures.")]
pub struct Args {
    /// The model: SeedVR2 VAE weights (.safetensors / .gguf; converted on the way) or an ONNX
    /// graph written by `seedvae convert`.
    pub model: PathBuf,
    /// A shipped profile name (rtx5070ti, rtx5090, rtx4090, rtx4070) or a profile YAML file.
    #[arg(long, default_value = seedvae_engine::DEFAULT_PROFILE)]
    pub profile: String,
    /// GPU architectures to build for, comma separated (default: the profile's). sm_120: RTX 50;
    /// sm_89: RTX 40; sm_86: RTX 30 (no FP8).
    #[arg(long, value_delimiter = ',')]
    pub target: Vec<String>,
    /// Engine precision (default: the profile's; for an ONNX model: the graph's).
    #[arg(long, value_enum)]
    pub precision: Option<EnginePrecisionArg>,
    /// Which half of the VAE [default: decoder] (an ONNX graph says which it is).
    #[arg(long, value_enum)]
    pub part: Option<PartArg>,
    /// Build the streaming form (chunked decoding of any length; weights only).
    #[arg(long)]
    pub streaming: bool,
    /// FP8 calibration data: latents (decoder; .safetensors with a `latent` tensor, or .npy,
    /// [1,16,T,h,w]) or videos (encoder; `video`, [1,3,T,H,W]). Cropped small. Default: two
    /// fixed random inputs (see seedvae_runner::prepare::default_calibration).
    #[arg(long, num_args = 1..)]
    pub calibrate: Vec<PathBuf>,
    /// Engine cache directory (default: $SEEDVAE_CACHE, else the user cache dir: ~/.cache/seedvae,
    /// %LOCALAPPDATA%\seedvae).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Also write the engine here (and its manifest to ENGINE.manifest.json).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
    /// Print the manifest as JSON at the end.
    #[arg(long)]
    pub json: bool,
    /// Strip the weights from the engine: a much smaller file that carries no model weights;
    /// the runner refits it on the GPU from your own weights file (whose hash must match).
    #[arg(long)]
    pub weightless: bool,
}

fn precision_of(a: &EnginePrecisionArg) -> EnginePrecision {
    match a {
        EnginePrecisionArg::Fp8 => EnginePrecision::Fp8,
        EnginePrecisionArg::Fp16 => EnginePrecision::Fp16,
        EnginePrecisionArg::Fp32 => EnginePrecision::Fp32,
    }
}

fn part_of(p: PartArg) -> Part {
    match p {
        PartArg::Decoder => Part::Decoder,
        PartArg::Encoder => Part::Encoder,
    }
}

fn is_onnx(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The sidecar manifest path of an engine written with `-o`.
pub fn sidecar(engine: &Path) -> PathBuf {
    let mut s = engine.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

pub fn run(a: Args, ui: &Ui) -> Result<ExitCode> {
    let (entry, outcome) = build(&a, ui)?;
    report(&a, &entry, &outcome)?;
    Ok(ExitCode::SUCCESS)
}

/// Resolve, build or fetch; used by `build` and `demo`.
pub fn build(a: &Args, ui: &Ui) -> Result<(Entry, Outcome)> {
    if let Some(o) = &a.output {
        seedvae_weights::atomic::check_overwrite(o, a.force)?;
    }
    let profile = Profile::load(&a.profile)?;
    let targets = if a.target.is_empty() {
        profile.targets.clone()
    } else {
        a.target
            .iter()
            .map(|t| Target::parse(t.trim()))
            .collect::<Result<_, _>>()?
    };
    let cache = Cache::open(a.cache.as_deref())?;
    let job = Job {
        cache: &cache,
        profile: &profile,
        targets,
        tensorrt_dir: a.tensorrt_dir.clone(),
        weightless: a.weightless,
    };
    // The engine for a graph, cached or built; a spinner only while TensorRT-RTX builds.
    let engine = |onnx: &[u8], g: &seedvae_engine::job::Graph| -> Result<(Entry, Outcome)> {
        let pb = std::cell::RefCell::new(None);
        let r = job.engine(onnx, g, || {
            *pb.borrow_mut() = Some(ui.spinner(&format!(
                "building the engine with TensorRT-RTX for {} (takes a while; no GPU needed)",
                seedvae_engine::Target::list(&job.targets)
            )))
        });
        if let Some(pb) = pb.into_inner() {
            pb.finish_and_clear();
        }
        Ok(r?)
    };
    let result = if is_onnx(&a.model) {
        let onnx = std::fs::read(&a.model).with_context(|| a.model.display().to_string())?;
        let g = inspect_graph(&onnx, &a.model.display().to_string())?;
        let c = &g.contract;
        if a.part.is_some_and(|p| part_of(p) != c.part) || (a.streaming && !c.streaming) {
            bail!(
                "{} is a {} {} graph; --part / --streaming cannot change that: convert the form you want \
                 with `seedvae convert`, or pass the weights file",
                a.model.display(),
                c.part,
                if c.streaming { "streaming" } else { "one-shot" }
            );
        }
        if let Some(p) = &a.precision {
            let want = precision_of(p);
            if want != g.precision {
                bail!(
                    "{} is a {} graph, --precision {} asked: pass the weights file instead (it is converted at the \
                     precision asked), or convert with `seedvae convert --precision {}`",
                    a.model.display(),
                    g.precision.name(),
                    want.name(),
                    want.name()
                );
            }
        } else if g.precision != profile.precision {
            tracing::warn!(
                "profile {} says {}, {} is a {} graph: building {}",
                profile.name,
                profile.precision.name(),
                a.model.display(),
                g.precision.name(),
                g.precision.name()
            );
        }
        engine(&onnx, &g)?
    } else {
        let w = WeightFile::open(&a.model)?;
        let part = a.part.map_or(Part::Decoder, part_of);
        w.model_for(part)?;
        let precision = a.precision.as_ref().map_or(profile.precision, precision_of);
        let recipe = GraphRecipe {
            weights: &w,
            part,
            streaming: a.streaming,
            precision,
            fp16_blocks: profile.fp16_blocks.clone(),
            calibration: a.calibrate.clone(),
        };
        let rh = recipe.hash()?;
        let hit = cache
            .recipe(&rh)
            .map(|h| job.key_parts(&h, precision, part, a.streaming))
            .transpose()?
            .and_then(|parts| job.cached(&parts));
        match hit {
            Some(e) => (e, Outcome::Hit),
            None => {
                let tmp = seedvae_weights::atomic::temp_path(&cache.root.join("graph.onnx"));
                let pb = ui.spinner(&format!(
                    "converting {} to a {} {} graph{}",
                    a.model.display(),
                    precision.name(),
                    part,
                    if precision == EnginePrecision::Fp8 {
                        " (calibrating on the CPU)"
                    } else {
                        ""
                    }
                ));
                let r = (|| -> Result<(Entry, Outcome)> {
                    recipe.write(&tmp)?;
                    pb.finish_and_clear();
                    let onnx = std::fs::read(&tmp)?;
                    let g = inspect_graph(&onnx, &tmp.display().to_string())?;
                    cache.set_recipe(&rh, &g.blake3)?;
                    engine(&onnx, &g)
                })();
                pb.finish_and_clear();
                let _ = std::fs::remove_file(&tmp);
                r?
            }
        }
    };
    if let Some(o) = &a.output {
        let (entry, _) = &result;
        let engine = std::fs::read(&entry.engine)?;
        seedvae_weights::atomic::write_atomic(o, |f| std::io::Write::write_all(f, &engine))?;
        let m = serde_json::to_vec_pretty(&entry.manifest)?;
        seedvae_weights::atomic::write_atomic(&sidecar(o), |f| std::io::Write::write_all(f, &m))?;
    }
    Ok(result)
}

fn report(a: &Args, e: &Entry, outcome: &Outcome) -> Result<()> {
    let m = &e.manifest;
    if a.json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let how = match outcome {
        Outcome::Hit => "cache hit".to_string(),
        Outcome::Built => format!("built in {:.1}s", m.info.build_seconds),
        Outcome::Rebuilt(why) => format!(
            "rebuilt in {:.1}s (cached copy was bad: {why})",
            m.info.build_seconds
        ),
    };
    let k = &m.key_parts;
    println!(
        "engine {} ({}): {} {}{}, {} for {}, TensorRT-RTX {}, profile {}",
        m.key,
        how,
        k.part,
        k.precision.name(),
        if k.streaming { " streaming" } else { "" },
        bytes(m.engine.bytes),
        seedvae_engine::Target::list(&k.targets),
        k.tensorrt_rtx,
        m.info.profile
    );
    if let Some(l) = &m.info.layers {
        println!(
            "layers: {} convolutions ({} in FP8), {} matmuls ({} in FP8)",
            l.convolutions, l.fp8_convolutions, l.matmuls, l.fp8_matmuls
        );
    }
    println!("cached: {}", e.engine.display());
    if let Some(o) = &a.output {
        println!("wrote:  {} (+ {})", o.display(), sidecar(o).display());
    }
    Ok(())
}
