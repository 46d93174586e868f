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

/// `cudnnDataType_t`.
pub const CUDNN_DATA_FLOAT: c_int = 0;
pub const CUDNN_DATA_HALF: c_int = 2;

/// The graph API's names (`cudnn_graph.h`, cuDNN 9; numbered values, stable across releases).
pub mod graph {
    use std::ffi::c_int;

    // cudnnBackendDescriptorType_t
    pub const CONVOLUTION: c_int = 1;
    pub const ENGINE: c_int = 2;
    pub const ENGINECFG: c_int = 3;
    pub const ENGINEHEUR: c_int = 4;
    pub const EXECUTION_PLAN: c_int = 5;
    pub const KNOB_CHOICE: c_int = 7;
    pub const OPERATION_CONVOLUTION_FORWARD: c_int = 10;
    pub const OPERATIONGRAPH: c_int = 15;
    pub const VARIANT_PACK: c_int = 16;
    pub const TENSOR: c_int = 17;

    // cudnnBackendAttributeType_t
    pub const TYPE_HANDLE: c_int = 0;
    pub const TYPE_DATA_TYPE: c_int = 1;
    pub const TYPE_INT64: c_int = 3;
    pub const TYPE_FLOAT: c_int = 4;
    pub const TYPE_VOID_PTR: c_int = 6;
    pub const TYPE_CONVOLUTION_MODE: c_int = 7;
    pub const TYPE_HEUR_MODE: c_int = 8;
    pub const TYPE_KNOB_TYPE: c_int = 9;
    pub const TYPE_NUMERICAL_NOTE: c_int = 11;
    pub const TYPE_BACKEND_DESCRIPTOR: c_int = 15;

    // cudnnBackendAttributeName_t
    pub const CONVOLUTION_COMP_TYPE: c_int = 100;
    pub const CONVOLUTION_CONV_MODE: c_int = 101;
    pub const CONVOLUTION_DILATIONS: c_int = 102;
    pub const CONVOLUTION_FILTER_STRIDES: c_int = 103;
    pub const CONVOLUTION_POST_PADDINGS: c_int = 104;
    pub const CONVOLUTION_PRE_PADDINGS: c_int = 105;
    pub const CONVOLUTION_SPATIAL_DIMS: c_int = 106;
    pub const ENGINEHEUR_MODE: c_int = 200;
    pub const ENGINEHEUR_OPERATION_GRAPH: c_int = 201;
    pub const ENGINEHEUR_RESULTS: c_int = 202;
    pub const ENGINECFG_ENGINE: c_int = 300;
    pub const ENGINECFG_KNOB_CHOICES: c_int = 302;
    pub const EXECUTION_PLAN_HANDLE: c_int = 400;
    pub const EXECUTION_PLAN_ENGINE_CONFIG: c_int = 401;
    pub const EXECUTION_PLAN_WORKSPACE_SIZE: c_int = 402;
    pub const KNOB_CHOICE_KNOB_TYPE: c_int = 600;
    pub const KNOB_CHOICE_KNOB_VALUE: c_int = 601;
    pub const OPERATION_CONVOLUTION_FORWARD_ALPHA: c_int = 700;
    pub const OPERATION_CONVOLUTION_FORWARD_BETA: c_int = 701;
    pub const OPERATION_CONVOLUTION_FORWARD_CONV_DESC: c_int = 702;
    pub const OPERATION_CONVOLUTION_FORWARD_W: c_int = 703;
    pub const OPERATION_CONVOLUTION_FORWARD_X: c_int = 704;
    pub const OPERATION_CONVOLUTION_FORWARD_Y: c_int = 705;
    pub const OPERATIONGRAPH_HANDLE: c_int = 800;
    pub const OPERATIONGRAPH_OPS: c_int = 801;
    pub const TENSOR_BYTE_ALIGNMENT: c_int = 900;
    pub const TENSOR_DATA_TYPE: c_int = 901;
    pub const TENSOR_DIMENSIONS: c_int = 902;
    pub const TENSOR_STRIDES: c_int = 903;
    pub const TENSOR_UNIQUE_ID: c_int = 906;
    pub const VARIANT_PACK_UNIQUE_IDS: c_int = 1000;
    pub const VARIANT_PACK_DATA_POINTERS: c_int = 1001;
    pub const VARIANT_PACK_WORKSPACE: c_int = 1003;
    pub const ENGINE_OPERATION_GRAPH: c_int = 1300;
    pub const ENGINE_GLOBAL_INDEX: c_int = 1301;
    pub const ENGINE_NUMERICAL_NOTE: c_int = 1303;

    // values
    pub const CROSS_CORRELATION: c_int = 1;
    pub const HEUR_MODE_A: c_int = 3;
    pub const HEUR_MODE_FALLBACK: c_int = 2;
    pub const NOTE_TENSOR_CORE: c_int = 0;
    pub const NOTE_DOWN_CONVERT_INPUTS: c_int = 1;
    pub const NOTE_REDUCED_PRECISION_REDUCTION: c_int = 2;
}

/// cuDNN: the convolutions, through its graph API (the engines PyTorch's own calls reach; the
/// legacy descriptors do not reach Hopper's and Blackwell's fastest kernels).
pub struct Cudnn {
    _lib: Library,
    pub path: PathBuf,
    pub create: unsafe extern "C" fn(*mut Handle) -> c_int,
    pub destroy: unsafe extern "C" fn(Handle) -> c_int,
    pub set_stream: unsafe extern "C" fn(Handle, *mut c_void) -> c_int,
    pub version: unsafe extern "C" fn() -> usize,
    pub create_desc: unsafe extern "C" fn(c_int, *mut Desc) -> c_int,
    pub destroy_desc: unsafe extern "C" fn(Desc) -> c_int,
    pub finalize: unsafe extern "C" fn(Desc) -> c_int,
    pub set_attr: unsafe extern "C" fn(Desc, c_int, c_int, i64, *const c_void) -> c_int,
    pub get_attr: unsafe extern "C" fn(Desc, c_int, c_int, i64, *mut i64, *mut c_void) -> c_int,
    pub execute: unsafe extern "C" fn(Handle, Desc, Desc) -> c_int,
    pub error_string: unsafe extern "C" fn(c_int) -> *const c_char,
}

impl Cudnn {
    pub fn open(dirs: &[PathBuf]) -> Result<Cudnn> {
        let (lib, path) = open(&CUDNN, dirs)?;
        let p = path.as_path();
        Ok(Cudnn {
            create: sym(&lib, p, "cudnnCreate")?,
            destroy: sym(&lib, p, "cudnnDestroy")?,
            set_stream: sym(&lib, p, "cudnnSetStream")?,
            version: sym(&lib, p, "cudnnGetVersion")?,
            create_desc: sym(&lib, p, "cudnnBackendCreateDescriptor")?,
            destroy_desc: sym(&lib, p, "cudnnBackendDestroyDescriptor")?,
            finalize: sym(&lib, p, "cudnnBackendFinalize")?,
            set_attr: sym(&lib, p, "cudnnBackendSetAttribute")?,
            get_attr: sym(&lib, p, "cudnnBackendGetAttribute")?,
            execute: sym(&lib, p, "cudnnBackendExecute")?,
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
    pub destroy: unsafe extern "C" fn(Handle) -> c_int,
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
            destroy: sym(&lib, p, "cublasDestroy_v2")?,
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
