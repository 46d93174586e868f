//! Locating ONNX Runtime without any network access (the venv search is shared with the engine
//! crate's TensorRT-RTX lookup).

use super::Unavailable;
use seedvae_engine::libs::{find_prefixed, site_packages};
use std::path::{Path, PathBuf};

/// The ONNX Runtime shared library: `explicit`, `$SEEDVAE_ORT_LIB`, `$ORT_DYLIB_PATH`, or the venv's
/// `onnxruntime/capi/libonnxruntime.so.*` (`onnxruntime.dll` on Windows).
pub fn onnxruntime(explicit: Option<&Path>) -> Result<PathBuf, Unavailable> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(Unavailable(format!(
                "ONNX Runtime library {} does not exist",
                p.display()
            )))
        };
    }
    for var in ["SEEDVAE_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
            return if p.is_file() {
                Ok(p)
            } else {
                Err(Unavailable(format!(
                    "${var} names {}, which does not exist",
                    p.display()
                )))
            };
        }
    }
    let prefixes: &[&str] = if cfg!(windows) {
        &["onnxruntime.dll"]
    } else if cfg!(target_os = "macos") {
        &["libonnxruntime.", "libonnxruntime.dylib"]
    } else {
        &["libonnxruntime.so"]
    };
    for sp in site_packages() {
        if let Some(p) = find_prefixed(&sp.join("onnxruntime").join("capi"), prefixes) {
            return Ok(p);
        }
    }
    Err(Unavailable(
        "ONNX Runtime library not found: `install_onnxruntime`, \
         or set SEEDVAE_ORT_LIB to libonnxruntime.so.* / onnxruntime.dll"
            .into(),
    ))
}

/// The CUDA libraries ONNX Runtime's CUDA provider links against (runtime, nvJitLink, cuBLAS,
/// cuFFT, cuRAND, NVRTC, cuDNN), as the `nvidia-*` wheels lay them out: `nvidia/<package>/lib/*.so.*`
/// (`bin\\*.dll` on Windows).
const CUDA_LIBS: [&str; 8] = if cfg!(windows) {
    [
        "cudart64_",
        "nvJitLink_",
        "cublasLt64_",
        "cublas64_",
        "cufft64_",
        "curand64_",
        "nvrtc64_",
        "cudnn64_",
    ]
} else {
    [
        "libcudart.so.",
        "libnvJitLink.so.",
        "libcublasLt.so.",
        "libcublas.so.",
        "libcufft.so.",
        "libcurand.so.",
        "libnvrtc.so.",
        "libcudnn.so.",
    ]
};

/// Load the `nvidia-*` wheels' CUDA libraries found beside the library `near` (ONNX Runtime's or
/// TensorRT-RTX's, in its site-packages) or in the setup venv, so that they are found without
/// `LD_LIBRARY_PATH` / `PATH` (what the onnxruntime-gpu package's `preload_dlls()` does in
/// Python). Loaded once, kept for the process; a library that does not load is left to the
/// system's search. Returns the libraries loaded.
pub fn preload_cuda_libraries(near: &Path) -> Vec<PathBuf> {
    static LOADED: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            // The site-packages holding the library: `onnxruntime/capi/` or `tensorrt_rtx_libs/`.
            let mut sites: Vec<PathBuf> = near
                .ancestors()
                .skip(1)
                .take(3)
                .map(Path::to_path_buf)
                .collect();
            sites.extend(site_packages());
            let mut files: Vec<PathBuf> = Vec::new();
            for dir in sites.iter().flat_map(|s| seedvae_exec::wheel_lib_dirs(s)) {
                for pre in CUDA_LIBS {
                    if let Some(f) = find_prefixed(&dir, &[pre]) {
                        if !files.iter().any(|g| g.file_name() == f.file_name()) {
                            files.push(f);
                        }
                    }
                }
            }
            // In dependency order where possible; passes until nothing more loads.
            files.sort_by_key(|f| {
                let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                CUDA_LIBS
                    .iter()
                    .position(|p| n.starts_with(p))
                    .unwrap_or(CUDA_LIBS.len())
            });
            let mut loaded = Vec::new();
            loop {
                let before = loaded.len();
                for f in &files {
                    if !loaded.contains(f) && load_global(f) {
                        loaded.push(f.clone());
                    }
                }
                if loaded.len() == before {
                    break;
                }
            }
            for f in &loaded {
                tracing::debug!("preloaded {}", f.display());
            }
            loaded
        })
        .clone()
}

/// Load `path` for the whole process (its symbols visible to later libraries) and keep it: the
/// handle lives in a static, never closed (the CUDA provider uses it until the process exits).
fn load_global(path: &Path) -> bool {
    static KEPT: std::sync::Mutex<Vec<libloading::Library>> = std::sync::Mutex::new(Vec::new());
    // SAFETY: loading a CUDA library runs its initializers, which only register the library.
    #[cfg(unix)]
    let lib = unsafe {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL).map(libloading::Library::from)
    };
    #[cfg(windows)]
    let lib = unsafe {
        use libloading::os::windows::{
            Library, LOAD_LIBRARY_SEARCH_DEFAULT_DIRS, LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR,
        };
        Library::load_with_flags(
            path,
            LOAD_LIBRARY_SEARCH_DEFAULT_DIRS | LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR,
        )
        .map(libloading::Library::from)
    };
    match lib {
        Ok(l) => {
            KEPT.lock().unwrap_or_else(|p| p.into_inner()).push(l);
            true
        }
        Err(e) => {
            tracing::trace!("{}: not loaded yet: {e}", path.display());
            false
        }
    }
}
