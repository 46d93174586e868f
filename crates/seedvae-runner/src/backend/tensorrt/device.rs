//! Can TensorRT-RTX run here: the GPU (through the CUDA driver, loaded at run time), its compute
//! capability against the engine's targets, the library version against the engine's. Plain
//! functions, unit-tested on machines without a GPU.

use crate::Unavailable;
use seedvae_engine::build::Target;
use seedvae_engine::cache::Manifest;
use std::path::Path;
use std::sync::Arc;

/// Compute capabilities TensorRT-RTX 1.7 runs on, from NVIDIA's support matrix (7.5 needs an
/// opt-in we do not make; 8.0, the A100, is not listed).
pub const SUPPORTED_CC: [(i32, i32); 4] = [(8, 6), (8, 9), (12, 0), (12, 1)];

/// The GPU this process would run on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuInfo {
    pub name: String,
    /// The driver's UUID of the GPU (hex): what first-run probes are recorded under.
    pub uuid: String,
    pub compute_capability: (i32, i32),
    pub free_bytes: u64,
    pub total_bytes: u64,
}

impl GpuInfo {
    fn cc(&self) -> String {
        format!(
            "{}.{}",
            self.compute_capability.0, self.compute_capability.1
        )
    }
}

/// GPU 0's primary context, retained once for the process: the probe and the backend share it
/// (dropping a cudarc context releases the primary context, which stayed current on the thread
/// deinitialized, and every open paid for its setup again; review B7).
pub(crate) fn gpu0() -> Result<Arc<cudarc::driver::CudaContext>, Unavailable> {
    static CTX: std::sync::OnceLock<Result<Arc<cudarc::driver::CudaContext>, Unavailable>> =
        std::sync::OnceLock::new();
    CTX.get_or_init(|| {
        cudarc::driver::CudaContext::new(0)
            .map_err(|e| Unavailable(format!("cannot open GPU 0: {e}")))
    })
    .clone()
}

/// Find GPU 0 through the CUDA driver; the reason in one line when there is none.
pub fn probe_gpu() -> Result<GpuInfo, Unavailable> {
    use cudarc::driver::{sys, CudaContext};
    // SAFETY: only tries to load the driver library; no driver call is made if it is absent.
    if !unsafe { sys::is_culib_present() } {
        return Err(Unavailable(
            "no NVIDIA driver found (libcuda / nvcuda.dll is not installed)".into(),
        ));
    }
    let n = CudaContext::device_count()
        .map_err(|e| Unavailable(format!("the CUDA driver failed: {e}")))?;
    if n < 1 {
        return Err(Unavailable("the NVIDIA driver reports no GPU".into()));
    }
    let ctx = gpu0()?;
    let (free, total) = ctx
        .mem_get_info()
        .map_err(|e| Unavailable(format!("GPU 0: {e}")))?;
    let uuid = ctx
        .uuid()
        .map(|u| {
            u.bytes
                .iter()
                .map(|b| format!("{:02x}", *b as u8))
                .collect()
        })
        .unwrap_or_default();
    Ok(GpuInfo {
        uuid,
        name: ctx.name().unwrap_or_else(|_| "GPU 0".into()),
        compute_capability: ctx
            .compute_capability()
            .map_err(|e| Unavailable(format!("GPU 0: {e}")))?,
        free_bytes: free as u64,
        total_bytes: total as u64,
    })
}

/// Can an engine built for `targets` run on `gpu`? The reason, naming both, when not.
pub fn check_device(gpu: &GpuInfo, targets: &[Target]) -> Result<Target, Unavailable> {
    if !SUPPORTED_CC.contains(&gpu.compute_capability) {
        return Err(Unavailable(format!(
            "TensorRT-RTX does not support {} (compute capability {}); it runs on RTX GPUs of \
             compute capability 8.6, 8.9 and 12.x",
            gpu.name,
            gpu.cc()
        )));
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    let (ma, mi) = gpu.compute_capability;
    match Target::of_compute_capability(ma, mi) {
        Some(t) if targets.contains(&t) => Ok(t),
        Some(t) => Err(Unavailable(format!(
            "the engine was built for {}, but {} is {}: build one with `target` {}",
            names.join(", "),
            gpu.name,
            t.name(),
            t.name()
        ))),
        None => Err(Unavailable(format!(
            "the engine was built for {}; seedvae builds no engine target for {} (compute \
             capability {})",
            names.join(", "),
            gpu.name,
            gpu.cc()
        ))),
    }
}

/// Engines only load in the TensorRT-RTX version that built them.
pub fn check_version(built_with: &str, loaded: &str) -> Result<(), Unavailable> {
    if built_with == loaded {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "the engine was built with TensorRT-RTX {built_with}, this machine has {loaded}: \
             rebuild it here (`seedvae build`)"
        )))
    }
}

/// TensorRT-RTX can run here at all: its libraries load and there is a GPU it supports.
pub fn runtime_ready(tensorrt_dir: Option<&Path>) -> Result<GpuInfo, Unavailable> {
    let libs = seedvae_engine::build::load_libraries(tensorrt_dir)
        .map_err(|e| Unavailable(e.to_string()))?;
    let gpu = probe_gpu()?;
    check_device(&gpu, &Target::ALL)?;
    // TensorRT-RTX loads NVRTC by name when its JIT needs it (review B8): an nvidia-cuda-nvrtc
    // wheel beside it (`scripts/setup.sh --gpu` installs one) is loaded first, so it is found.
    crate::backend::libs::preload_cuda_libraries(&libs.runtime);
    Ok(gpu)
}

/// Everything checked before an engine is deserialized, cheapest and most specific first: the
/// library version it was built with (no GPU needed), then the GPU and its targets.
pub fn preflight(m: &Manifest, tensorrt_dir: Option<&Path>) -> Result<GpuInfo, Unavailable> {
    let libs = seedvae_engine::build::load_libraries(tensorrt_dir)
        .map_err(|e| Unavailable(e.to_string()))?;
    check_version(&m.key_parts.tensorrt_rtx, &libs.version)?;
    let gpu = probe_gpu()?;
    check_device(&gpu, &m.key_parts.targets)?;
    crate::backend::libs::preload_cuda_libraries(&libs.runtime);
    Ok(gpu)
}

/// TensorRT-RTX's engine-invalidity bits (`getEngineValidity`) as reasons a user can act on.
pub fn invalidity_text(bits: u64) -> String {
    const REASONS: [&str; 7] = [
        "it was built by another TensorRT-RTX version (rebuild it with `seedvae build`)",
        "this GPU's compute capability is not supported",
        "the NVIDIA driver is older than the one it was built with (update the driver; the cu13 \
         libraries need R580 or newer)",
        "the CUDA runtime is older than the one it was built with",
        "the GPU has too little free memory for its weights (close other GPU programs)",
        "the file is not a well-formed engine (corrupt: rebuild it)",
        "the CUDA driver or runtime is not installed correctly",
    ];
    let said: Vec<&str> = (0..REASONS.len())
        .filter(|i| bits & (1 << i) != 0)
        .map(|i| REASONS[i])
        .collect();
    if said.is_empty() {
        format!("no reason given (diagnostics {bits:#x})")
    } else {
        said.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, cc: (i32, i32)) -> GpuInfo {
        GpuInfo {
            uuid: String::new(),
            name: name.into(),
            compute_capability: cc,
            free_bytes: 15 << 30,
            total_bytes: 16 << 30,
        }
    }

    #[test]
    fn device_checks_name_the_gpu_and_the_targets() {
        let ti = gpu("NVIDIA GeForce RTX 5070 Ti", (12, 0));
        assert_eq!(check_device(&ti, &[Target::Sm120]).unwrap(), Target::Sm120);
        let e = check_device(&gpu("NVIDIA H100", (9, 0)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(
            e.contains("does not support NVIDIA H100") && e.contains("9.0"),
            "{e}"
        );
        let e = check_device(&gpu("NVIDIA GeForce RTX 4090", (8, 9)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(
            e.contains("built for sm_120") && e.contains("`target` sm_89"),
            "{e}"
        );
        assert!(check_device(&gpu("RTX 4090", (8, 9)), &[Target::Sm120, Target::Sm89]).is_ok());
        let e = check_device(&gpu("DGX Spark", (12, 1)), &[Target::Sm120])
            .unwrap_err()
            .0;
        assert!(e.contains("no engine target"), "{e}");
        let e = check_version("1.6.0.20", "1.7.1.116").unwrap_err().0;
        assert!(e.contains("1.6.0.20") && e.contains("1.7.1.116"), "{e}");
        assert!(check_version("1.7.1.116", "1.7.1.116").is_ok());
    }

    #[test]
    fn no_gpu_here_is_a_one_line_reason() {
        // This workplace has no GPU (and CI neither); on a GPU machine this still must not panic.
        match probe_gpu() {
            Ok(g) => eprintln!("GPU present: {g:?}"),
            Err(Unavailable(e)) => assert!(!e.contains('\n') && !e.is_empty(), "{e}"),
        }
    }

    #[test]
    fn an_a100_is_refused_up_front() {
        let e = check_device(&gpu("NVIDIA A100", (8, 0)), &Target::ALL)
            .unwrap_err()
            .0;
        assert!(e.contains("does not support NVIDIA A100"), "{e}");
    }

    #[test]
    fn engine_invalidity_reads_as_reasons() {
        let t = invalidity_text(trtx::EngineInvalidityDiagnostics::OLD_CUDA_DRIVER.bits() | 1);
        assert!(
            t.contains("driver is older") && t.contains("another TensorRT-RTX version"),
            "{t}"
        );
        assert!(invalidity_text(0).contains("no reason"));
    }
}
