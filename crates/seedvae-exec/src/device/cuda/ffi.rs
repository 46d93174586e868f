//! The few functions of NVRTC, cuDNN and cuBLAS the CUDA device calls, loaded at run time from
//! the folders it is given (the `nvidia-*` wheels' `lib/` / `bin\`) or the system's search, by
//! the names each library has on Linux and Windows. A library that is missing or lacks a
//! function is an error naming it, never a panic.

use crate::{Error, Result};
use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};

/// File-name prefixes of a library (Linux: `libX.so.N`; Windows: `X64_N.dll`), most preferred
/// first, and the system names tried when no folder has it.
struct Names {
    what: &'static str,
    prefixes: &'static [&'static str],
    system: &'static [&'static str],
}

const NVRTC: Names = Names {
    what: "NVRTC",
    prefixes: if cfg!(windows) {
        &["nvrtc64_"]
    } else {
        &["libnvrtc.so."]
    },
    system: if cfg!(windows) {
        &["nvrtc64_130_0.dll", "nvrtc64_120_0.dll"]
    } else {
        &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
    },
};

const CUDNN: Names = Names {
    what: "cuDNN",
    prefixes: if cfg!(windows) {
        &["cudnn64_"]
    } else {
        &["libcudnn.so."]
    },
    system: if cfg!(windows) {
        &["cudnn64_9.dll"]
    } else {
        &["libcudnn.so.9", "libcudnn.so"]
    },
};

const CUBLAS: Names = Names {
    what: "cuBLAS",
    prefixes: if cfg!(windows) {
        &["cublas64_"]
    } else {
        &["libcublas.so."]
    },
    system: if cfg!(windows) {
        &["cublas64_13.dll", "cublas64_12.dll"]
    } else {
        &["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
    },
};

/// Open a library: the first file in `dirs` whose name starts with one of its prefixes (Linux:
/// only versioned names, not the development symlink), else its system names.
fn open(n: &Names, dirs: &[PathBuf]) -> Result<(Library, PathBuf)> {
    let mut tried = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let ours = n.prefixes.iter().any(|pre| file.starts_with(pre))
                && (!cfg!(windows) || file.to_ascii_lowercase().ends_with(".dll"));
            if ours {
                // SAFETY: loading a CUDA library only runs its initializers.
                match unsafe { Library::new(&p) } {
                    Ok(l) => return Ok((l, p)),
                    Err(e) => tried.push(format!("{}: {e}", p.display())),
                }
            }
        }
    }
    for name in n.system {
        // SAFETY: as above.
        if let Ok(l) = unsafe { Library::new(name) } {
            return Ok((l, PathBuf::from(name)));
        }
        tried.push((*name).to_string());
    }
    Err(Error::Device(format!(
        "{} not found (looked in {} and for {}): install the nvidia-{} wheel or the CUDA toolkit",
        n.what,
        if dirs.is_empty() {
            "no folder".to_string()
        } else {
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        tried.join(", "),
        n.what.to_ascii_lowercase()
    )))
}

/// A function of `lib`, copied out (the library is kept alive beside it).
fn sym<T: Copy>(lib: &Library, path: &Path, name: &str) -> Result<T> {
    // SAFETY: `T` is the function's C signature, written from the library's header below.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| Error::Device(format!("{}: no {name} ({e})", path.display())))
}

pub type NvrtcProgram = *mut c_void;

/// NVRTC: compile CUDA C to a cubin for the GPU at hand.
pub struct Nvrtc {
    _lib: Library,
    pub path: PathBuf,
    pub version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    pub create: unsafe extern "C" fn(
        *mut NvrtcProgram,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    pub compile: unsafe extern "C" fn(NvrtcProgram, c_int, *const *const c_char) -> c_int,
    pub log_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> c_int,
    pub log: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> c_int,
    pub cubin_size: unsafe extern "C" fn(NvrtcProgram, *mut usize) -> c_int,
    pub cubin: unsafe extern "C" fn(NvrtcProgram, *mut c_char) -> c_int,
    pub destroy: unsafe extern "C" fn(*mut NvrtcProgram) -> c_int,
    pub error_string: unsafe extern "C" fn(c_int) -> *const c_char,
}

impl Nvrtc {
    pub fn open(dirs: &[PathBuf]) -> Result<Nvrtc> {
        let (lib, path) = open(&NVRTC, dirs)?;
        let p = path.as_path();
        Ok(Nvrtc {
            version: sym(&lib, p, "nvrtcVersion")?,
            create: sym(&lib, p, "nvrtcCreateProgram")?,
            compile: sym(&lib, p, "nvrtcCompileProgram")?,
            log_size: sym(&lib, p, "nvrtcGetProgramLogSize")?,
            log: sym(&lib, p, "nvrtcGetProgramLog")?,
            cubin_size: sym(&lib, p, "nvrtcGetCUBINSize")?,
            cubin: sym(&lib, p, "nvrtcGetCUBIN")?,
            destroy: sym(&lib, p, "nvrtcDestroyProgram")?,
            error_string: sym(&lib, p, "nvrtcGetErrorString")?,
            path,
            _lib: lib,
        })
    }

    pub fn check(&self, r: c_int, what: &str) -> Result<()> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: NVRTC returns a static string for every result code.
        let s = unsafe { CStr::from_ptr((self.error_string)(r)) };
        Err(Error::Device(format!(
            "NVRTC {what}: {}",
            s.to_string_lossy()
        )))
    }
}

pub type Handle = *mut c_void;
pub type Desc = *mut c_void;

/// One result of cuDNN's algorithm search (`cudnnConvolutionFwdAlgoPerf_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FwdAlgoPerf {
    pub algo: c_int,
    pub status: c_int,
    pub time: f32,
    pub memory: usize,
    pub determinism: c_int,
    pub math_type: c_int,
    pub reserved: [c_int; 3],
}

pub const CUDNN_DATA_FLOAT: c_int = 0;
pub const CUDNN_DATA_HALF: c_int = 2;
/// Tensor cores for half precision (fp32 accumulation through the conv's compute type).
pub const CUDNN_TENSOR_OP_MATH: c_int = 1;
pub const CUDNN_TENSOR_NCHW: c_int = 0;
pub const CUDNN_CROSS_CORRELATION: c_int = 1;
/// FMA kernels only: fp32 convolutions stay fp32 (no TF32).
pub const CUDNN_FMA_MATH: c_int = 3;

/// cuDNN's convolution API (the legacy descriptors, stable across cuDNN 8 and 9).
pub struct Cudnn {
    _lib: Library,
    pub path: PathBuf,
    pub create: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub set_stream: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    pub version: unsafe extern "C" fn() -> usize,
    pub create_tensor: unsafe extern "C" fn(*mut Desc) -> c_int,
    pub set_tensor_nd:
        unsafe extern "C" fn(Desc, c_int, c_int, *const c_int, *const c_int) -> c_int,
    pub destroy_tensor: unsafe extern "C" fn(Desc) -> c_int,
    pub create_filter: unsafe extern "C" fn(*mut Desc) -> c_int,
    pub set_filter_nd: unsafe extern "C" fn(Desc, c_int, c_int, c_int, *const c_int) -> c_int,
    pub destroy_filter: unsafe extern "C" fn(Desc) -> c_int,
    pub create_conv: unsafe extern "C" fn(*mut Desc) -> c_int,
    pub set_conv_nd: unsafe extern "C" fn(
        Desc,
        c_int,
        *const c_int,
        *const c_int,
        *const c_int,
        c_int,
        c_int,
    ) -> c_int,
    pub set_conv_math: unsafe extern "C" fn(Desc, c_int) -> c_int,
    pub destroy_conv: unsafe extern "C" fn(Desc) -> c_int,
    pub find_fwd: unsafe extern "C" fn(
        Handle,
        Desc,
        Desc,
        Desc,
        Desc,
        c_int,
        *mut c_int,
        *mut FwdAlgoPerf,
    ) -> c_int,
    pub fwd_workspace:
        unsafe extern "C" fn(Handle, Desc, Desc, Desc, Desc, c_int, *mut usize) -> c_int,
    pub forward: unsafe extern "C" fn(
        Handle,
        *const c_void,
        Desc,
        *const c_void,
        Desc,
        *const c_void,
        Desc,
        c_int,
        *mut c_void,
        usize,
        *const c_void,
        Desc,
        *mut c_void,
    ) -> c_int,
    pub error_string: unsafe extern "C" fn(c_int) -> *const c_char,
}

impl Cudnn {
    pub fn open(dirs: &[PathBuf]) -> Result<Cudnn> {
        let (lib, path) = open(&CUDNN, dirs)?;
        let p = path.as_path();
        Ok(Cudnn {
            create: sym(&lib, p, "cudnnCreate")?,
            set_stream: sym(&lib, p, "cudnnSetStream")?,
            version: sym(&lib, p, "cudnnGetVersion")?,
            create_tensor: sym(&lib, p, "cudnnCreateTensorDescriptor")?,
            set_tensor_nd: sym(&lib, p, "cudnnSetTensorNdDescriptor")?,
            destroy_tensor: sym(&lib, p, "cudnnDestroyTensorDescriptor")?,
            create_filter: sym(&lib, p, "cudnnCreateFilterDescriptor")?,
            set_filter_nd: sym(&lib, p, "cudnnSetFilterNdDescriptor")?,
            destroy_filter: sym(&lib, p, "cudnnDestroyFilterDescriptor")?,
            create_conv: sym(&lib, p, "cudnnCreateConvolutionDescriptor")?,
            set_conv_nd: sym(&lib, p, "cudnnSetConvolutionNdDescriptor")?,
            set_conv_math: sym(&lib, p, "cudnnSetConvolutionMathType")?,
            destroy_conv: sym(&lib, p, "cudnnDestroyConvolutionDescriptor")?,
            find_fwd: sym(&lib, p, "cudnnFindConvolutionForwardAlgorithm")?,
            fwd_workspace: sym(&lib, p, "cudnnGetConvolutionForwardWorkspaceSize")?,
            forward: sym(&lib, p, "cudnnConvolutionForward")?,
            error_string: sym(&lib, p, "cudnnGetErrorString")?,
            path,
            _lib: lib,
        })
    }

    pub fn check(&self, r: c_int, what: &str) -> Result<()> {
        if r == 0 {
            return Ok(());
        }
        // SAFETY: cuDNN returns a static string for every status.
        let s = unsafe { CStr::from_ptr((self.error_string)(r)) };
        Err(Error::Device(format!(
            "cuDNN {what}: {}",
            s.to_string_lossy()
        )))
    }
}

pub const CUBLAS_OP_N: c_int = 0;
/// cudaDataType: 32-bit and 16-bit floats.
pub const CUDA_R_32F: c_int = 0;
pub const CUDA_R_16F: c_int = 2;
/// fp32 accumulation, no TF32.
pub const CUBLAS_COMPUTE_32F: c_int = 68;
pub const CUBLAS_GEMM_DEFAULT: c_int = -1;
pub const CUBLAS_OP_T: c_int = 1;

/// cuBLAS: the attention's matrix products.
pub struct Cublas {
    _lib: Library,
    pub path: PathBuf,
    pub create: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub set_stream: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    pub gemm_ex: unsafe extern "C" fn(
        Handle,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        *const c_void,
        *const c_void,
        c_int,
        c_int,
        *const c_void,
        c_int,
        c_int,
        *const c_void,
        *mut c_void,
        c_int,
        c_int,
        c_int,
        c_int,
    ) -> c_int,
}

impl Cublas {
    pub fn open(dirs: &[PathBuf]) -> Result<Cublas> {
        let (lib, path) = open(&CUBLAS, dirs)?;
        let p = path.as_path();
        Ok(Cublas {
            create: sym(&lib, p, "cublasCreate_v2")?,
            set_stream: sym(&lib, p, "cublasSetStream_v2")?,
            gemm_ex: sym(&lib, p, "cublasGemmEx")?,
            path,
            _lib: lib,
        })
    }

    pub fn check(r: c_int, what: &str) -> Result<()> {
        if r == 0 {
            Ok(())
        } else {
            Err(Error::Device(format!("cuBLAS {what}: status {r}")))
        }
    }
}
