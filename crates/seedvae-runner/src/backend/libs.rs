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
        "ONNX Runtime library not found: run scripts/setup.sh (it installs onnxruntime into .venv), \
         or set SEEDVAE_ORT_LIB to libonnxruntime.so.* / onnxruntime.dll"
            .into(),
    ))
}
