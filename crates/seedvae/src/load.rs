//! `load`: open a prepared model on the first of its backends that works — the engine
//! deserialized or the graph's session made, GPU memory planned within the budget, and on a GPU
//! the first-run check against the CPU when one is due (seconds; once per model and GPU).
//! Under a list of backends a GPU backend that fails to open, or fails its very first call,
//! gives way to the next.

use crate::check::{self, Subject};
use crate::error::{chain, invalid, Error, Result};
use crate::model::{Closed, Model};
use crate::options::{title, BackendSpec, ModelOptions};
use crate::prepare::{prepare, skippable, Artifact, Candidate, Prepared};
use crate::progress::{Event, Progress};
use crate::source::check_part;
use seedvae_engine::Cache;
use seedvae_runner::planner::{self, GraphMemory, Limits};
use seedvae_runner::tensorrt::{self, TrtBackend};
use seedvae_runner::{Backend, NativeBackend, OrtBackend, OrtDevice, Unavailable};
use seedvae_weights::Part;
use std::path::Path;

impl Model {
    /// [`prepare`] and [`Prepared::load`] in one: open `spec` (weights, ONNX graph, engine or
    /// cache key) for `part` on the first backend of `opts` that runs here. Under the default
    /// list (`auto`), a machine that cannot run TensorRT-RTX gives ONNX Runtime's CUDA provider or
    /// the CPU, each reason reported as an [`Event::Notice`] and kept in
    /// [`Model::fallback_reason`]; a broken model is an error either way.
    pub fn open(
        spec: impl AsRef<Path>,
        part: Part,
        opts: &ModelOptions,
        progress: &Progress,
    ) -> Result<Model> {
        prepare(spec, part, opts, progress)?.load(progress)
    }
}

impl Prepared {
    /// Open the first backend that works, in the prepared order; the ones before it are
    /// reported as an [`Event::Notice`] with their reasons.
    pub fn load(mut self, progress: &Progress) -> Result<Model> {
        while let Some(c) = self.candidates.pop_front() {
            let title = c.spec.title();
            match open(&c, &self, progress) {
                Ok(mut m) => {
                    if !self.reasons.is_empty() {
                        let reason = self.reasons.join("; ");
                        progress.emit(Event::Notice(&format!("{reason}; running on {title}")));
                        m.fallback = Some(reason);
                    }
                    if m.backend.kind().is_gpu() && !self.candidates.is_empty() {
                        m.rest = Some(Box::new(self));
                    }
                    return Ok(m);
                }
                Err(e) if !self.candidates.is_empty() && skippable(&e, progress) => self
                    .reasons
                    .push(format!("{title} not used: {}", chain(&e))),
                Err(e) if !self.reasons.is_empty() => {
                    return Err(Error::Fallback {
                        reason: self.reasons.join("; "),
                        last: title,
                        source: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(Unavailable(self.reasons.join("; "))))
    }
}

/// Open one prepared backend, and check it on its GPU when a check is due.
fn open(c: &Candidate, p: &Prepared, progress: &Progress) -> Result<Model> {
    progress.check()?;
    let o = &p.options;
    let mut m = match (&c.spec, &c.artifact) {
        (BackendSpec::Cpu(cpu), Artifact::Graph(g)) => {
            let b = OrtBackend::open_on(
                &g.path,
                OrtDevice::Cpu {
                    threads: cpu.threads,
                },
            )?;
            check_part(b.contract().part, p.part, &g.path)?;
            model(Box::new(b), Limits::unbounded(p.part), p.part)
        }
        (BackendSpec::Reference(cpu), Artifact::Weights(w)) => {
            let file = seedvae_weights::WeightFile::open(w)?;
            let b = NativeBackend::reference(&file, p.part, cpu.threads)?;
            let mut m = model(Box::new(b), Limits::unbounded(p.part), p.part);
            m.whole_frames = true;
            m
        }
        (BackendSpec::Cuda(c), Artifact::Weights(w)) => {
            let file = seedvae_weights::WeightFile::open(w)?;
            // Kernels compiled for this GPU are kept beside the engines.
            let kernels = Cache::open(o.cache.as_deref())
                .map(|c| c.root.join("kernels"))
                .ok();
            // Free memory now, not when prepared; the budget bounds every stream's plan.
            let gpu = seedvae_runner::cuda_executor_ready()?;
            let budget = o.plan_budget(gpu.free_bytes);
            let b = seedvae_runner::open_cuda_executor(&file, p.part, c.fp32, kernels, budget)?;
            let mut m = model(b, Limits::unbounded(p.part), p.part);
            m.whole_frames = true;
            m
        }
        (BackendSpec::OrtCuda(_), Artifact::Graph(g)) => {
            // Free memory now, not when prepared (a build may have taken minutes).
            let gpu = seedvae_runner::cuda_ready()?;
            let budget = o.plan_budget(gpu.free_bytes);
            // With a budget the arena is held to it, less what lives outside it (the CUDA
            // context, cuDNN/cuBLAS handles: the plan's overhead): an allocation past it is an
            // error, not a spill.
            let mem_limit = o
                .vram_budget_gb
                .map(|_| budget.saturating_sub(GraphMemory::OVERHEAD) as usize);
            let b = OrtBackend::open_on(&g.path, OrtDevice::Cuda { id: 0, mem_limit })?;
            check_part(b.contract().part, p.part, &g.path)?;
            let bytes = std::fs::metadata(&g.path).map_or(0, |m| m.len());
            let plan = GraphMemory::new(b.contract(), bytes, budget);
            let mut m = model(Box::new(b), Limits::unbounded(p.part), p.part);
            m.graph_memory = Some(plan);
            m
        }
        (
            BackendSpec::Tensorrt(t),
            Artifact::Engine {
                engine,
                manifest,
                refit,
            },
        ) => {
            let mut b =
                TrtBackend::open(engine, manifest, t.library_dir.as_deref(), refit.as_deref())?;
            let limits =
                tensorrt::limits(manifest).map_err(|e| invalid!("{}: {e}", engine.display()))?;
            let budget = o.plan_budget(b.gpu.free_bytes);
            let longest = limits.t.1;
            let cap = planner::measured_engine_memory_cap(manifest, &limits, budget, |e| {
                b.activation_bytes_at(longest, e, e)
            })
            .map_err(|e| invalid!("{}: {e}", engine.display()))?;
            let mut m = model(Box::new(b), limits, p.part);
            m.memory_cap = cap;
            m
        }
        _ => {
            return Err(invalid!(
                "internal: {} was prepared for another backend",
                c.spec.kind()
            ))
        }
    };
    if let (Some((id, bound)), Some(gpu)) = (&c.check, &c.gpu) {
        let cache = Cache::open(o.cache.as_deref())?;
        let reference = || -> Result<Option<Box<dyn Backend>>> {
            let Some(g) = &p.reference else {
                return Ok(None);
            };
            let cpu = OrtDevice::Cpu {
                threads: o.cpu().threads,
            };
            // Without ONNX Runtime (seedvae's executor needs none) there is no quick CPU
            // reference: the check is skipped, as for an engine without its weights.
            match OrtBackend::open_on(&g.path, cpu) {
                Ok(b) => Ok(Some(Box::new(b))),
                Err(seedvae_runner::Error::Unavailable(why)) => {
                    tracing::info!("no CPU reference for the first-run check: {why}");
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        };
        let subject = Subject {
            backend: m.backend.as_mut(),
            limits: &m.limits,
            gpu,
            model_id: id,
            bound: *bound,
        };
        check::first_run(subject, reference, &cache, progress)?;
    }
    Ok(m)
}

fn model(backend: Box<dyn Backend>, limits: Limits, part: Part) -> Model {
    Model {
        backend,
        limits,
        memory_cap: None,
        graph_memory: None,
        whole_frames: false,
        rest: None,
        fallback: None,
        part,
    }
}

/// A GPU backend opened from a list whose very first call failed for an environment reason
/// (out of memory, a CUDA or JIT failure) gives way to the next one before anything was output;
/// the caller runs again. Anything else is `e` back.
pub(crate) fn fall_back_at_first_call(
    m: &mut Model,
    e: Error,
    calls: usize,
    progress: &Progress,
) -> Result<()> {
    let first = calls == 0 && skippable(&e, progress);
    let Some(mut rest) = m.rest.take().filter(|_| first) else {
        return Err(e);
    };
    rest.reasons.push(format!(
        "{} failed at its first call: {}",
        title(m.backend.kind()),
        chain(&e)
    ));
    // The failed backend's memory goes before the next one opens.
    m.backend = Box::new(Closed::instead_of(m.backend.as_ref()));
    *m = rest.load(progress)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{BackendChoice, BackendSettings, CpuOptions};
    use crate::run::TileOptions;
    use seedvae_runner::{BackendKind, HostRun, HostStreamed, Tensor};
    use std::collections::HashMap;

    /// A GPU backend stand-in over a CPU backend: fails its call number `fail_at` the way a GPU
    /// does when memory runs out (0: never), scales its frames by `1 + err` (wrong kernels), and
    /// counts its calls.
    struct MockGpu {
        inner: Box<dyn Backend>,
        fail_at: usize,
        err: f32,
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl MockGpu {
        fn new(inner: Box<dyn Backend>, fail_at: usize, err: f32) -> MockGpu {
            MockGpu {
                inner,
                fail_at,
                err,
                calls: Default::default(),
            }
        }
    }

    impl HostRun for MockGpu {
        fn kind(&self) -> BackendKind {
            BackendKind::Other("mock-gpu")
        }
        fn contract(&self) -> &seedvae_onnx::Contract {
            self.inner.contract()
        }
        fn run(
            &mut self,
            inputs: &[(&str, &Tensor)],
        ) -> std::result::Result<HashMap<String, Tensor>, seedvae_runner::Error> {
            let n = 1 + self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == self.fail_at {
                return Err(seedvae_runner::Error::Backend(
                    "CUDA failure 2: out of memory".into(),
                ));
            }
            let mut out = self.inner.run(inputs)?;
            if let Some(v) = out.get_mut("video").and_then(|t| t.f32_mut()) {
                v.iter_mut().for_each(|x| *x *= 1.0 + self.err);
            }
            Ok(out)
        }
    }

    fn cpu_only(cache: &Path) -> ModelOptions {
        let settings = BackendSettings {
            cpu: CpuOptions { threads: 1 },
            ..BackendSettings::default()
        };
        ModelOptions {
            backends: BackendChoice::Cpu.specs(&settings),
            cache: Some(cache.to_path_buf()),
            ..ModelOptions::default()
        }
    }

    fn flaky(fail_at: usize, cache: &Path) -> (Model, ModelOptions) {
        let weights = seedvae_tests::fixture("vae_tiny/weights.safetensors");
        let opts = ModelOptions {
            backends: BackendChoice::Auto.specs(&BackendSettings {
                cpu: CpuOptions { threads: 1 },
                ..BackendSettings::default()
            }),
            cache: Some(cache.to_path_buf()),
            ..ModelOptions::default()
        };
        let quiet = Progress::new(|_| {});
        let mut m = Model::open(&weights, Part::Decoder, &opts, &quiet).unwrap();
        assert_eq!(
            m.backend_kind(),
            BackendKind::OrtCpu,
            "this machine has no GPU"
        );
        let closed = Box::new(Closed::instead_of(m.backend.as_ref()));
        let cpu = std::mem::replace(&mut m.backend, closed);
        m.backend = Box::new(HostStreamed::new(MockGpu::new(cpu, fail_at, 0.0)));
        let rest = prepare(&weights, Part::Decoder, &cpu_only(cache), &quiet).unwrap();
        m.rest = Some(Box::new(rest));
        (m, opts)
    }

    #[test]
    fn a_gpu_failing_its_first_call_gives_way_to_the_next_backend() {
        let dir = tempfile::tempdir().unwrap();
        let latent = seedvae_runner::read_latent(&seedvae_tests::fixture(
            "vae_tiny/latent_t2_8x8.safetensors",
        ))
        .unwrap();
        let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = notices.clone();
        let progress = Progress::new(move |e| {
            if let Event::Notice(n) = e {
                seen.lock().unwrap().push(n.to_string());
            }
        });
        let opts = TileOptions {
            chunk: Some(1),
            ..TileOptions::default()
        };
        let (mut m, _) = flaky(1, dir.path());
        let (video, report) = m.decode_tensor(&latent, &opts, &progress).unwrap();
        assert_eq!(video.shape(), vec![1, 3, 5, 64, 64]);
        assert_eq!(report.backend, BackendKind::OrtCpu);
        let why = report.fallback_reason.unwrap();
        assert!(
            why.contains("failed at its first call: CUDA failure 2: out of memory"),
            "{why}"
        );
        assert!(notices
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("first call")));
        // Once a call has completed, output may exist: a later failure is the run's error.
        let (mut m, _) = flaky(2, dir.path());
        let e = m.decode_tensor(&latent, &opts, &progress).unwrap_err();
        assert!(e.to_string().contains("out of memory"), "{e}");
        assert_eq!(m.backend_name(), "mock-gpu");
    }
    #[test]
    fn the_first_run_on_a_gpu_is_checked_against_the_cpu_once() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let weights = seedvae_tests::fixture("vae_tiny/weights.safetensors");
        let opts = cpu_only(dir.path());
        let cache = Cache::open(Some(dir.path())).unwrap();
        let gpu = seedvae_runner::tensorrt::GpuInfo {
            name: "Mock GPU".into(),
            uuid: "00ff".into(),
            compute_capability: (12, 0),
            free_bytes: 1 << 34,
            total_bytes: 1 << 34,
        };
        let quiet = Progress::new(|_| {});
        let bound = check::FP16;
        let limits = Limits::unbounded(Part::Decoder);
        let cpu = || {
            Model::open(&weights, Part::Decoder, &opts, &quiet)
                .unwrap()
                .backend
        };
        let with = |err: f32| {
            let mock = MockGpu::new(cpu(), 0, err);
            let calls = mock.calls.clone();
            let mut mock = HostStreamed::new(mock);
            let subject = Subject {
                backend: &mut mock,
                limits: &limits,
                gpu: &gpu,
                model_id: "model-x",
                bound,
            };
            let r = check::first_run(subject, || Ok(Some(cpu())), &cache, &quiet);
            (r, calls.load(Ordering::SeqCst))
        };
        // 5% off (broken kernels): refused as an environment failure (auto falls back), nothing
        // recorded.
        let (r, calls) = with(0.05);
        let e = r.unwrap_err();
        assert!(e.is_environment_failure(), "{e}");
        assert!(
            e.to_string().contains("gives wrong results on Mock GPU"),
            "{e}"
        );
        assert!(calls > 0);
        let probes = dir.path().join("probes");
        assert!(!probes.exists());
        // Exact: passes and is recorded; the next open of the same model on the same GPU skips it.
        let (r, _) = with(0.0);
        r.unwrap();
        assert_eq!(std::fs::read_dir(&probes).unwrap().count(), 1);
        let (r, calls) = with(0.5);
        r.unwrap();
        assert_eq!(calls, 0, "a recorded pass is not checked again");
        // A record is read, not trusted for existing: junk, or another model's pass copied over
        // it, is checked again (and a broken GPU then refused).
        let record = std::fs::read_dir(&probes)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let good = std::fs::read_to_string(&record).unwrap();
        for junk in [
            "{}".to_string(),
            "garbage".into(),
            good.replace("model-x", "model-y"),
        ] {
            std::fs::write(&record, &junk).unwrap();
            let (r, calls) = with(0.5);
            assert!(r.is_err() && calls > 0, "{junk} was trusted");
        }
        // A pass whose record cannot be written (a read-only cache, a full disk) is a pass.
        std::fs::remove_dir_all(&probes).unwrap();
        std::fs::write(&probes, b"not a folder").unwrap();
        let (r, calls) = with(0.0);
        r.unwrap();
        assert!(calls > 0);
        let (_, calls) = with(0.0);
        assert!(calls > 0, "not recorded, so checked again");
    }
}
