//! The process-wide TensorRT-RTX logger and runtime, created once and kept for the process (every
//! engine borrows them), and what is done to an engine with them: refit from the user's weights,
//! the JIT runtime cache kept beside it.

use crate::Error;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The logger every TensorRT-RTX object of this process reports through (`tracing`).
pub(super) fn logger() -> Result<&'static trtx::Logger, Error> {
    static LOGGER: OnceLock<trtx::Logger> = OnceLock::new();
    if let Some(l) = LOGGER.get() {
        return Ok(l);
    }
    let l = trtx::Logger::log_crate().map_err(super::trt("logger"))?;
    Ok(LOGGER.get_or_init(|| l))
}

/// `f` with the process's one runtime, made at first use (a failure, e.g. the library not yet
/// loadable, is tried again next time), locked only while `f` runs. Engines it deserializes
/// borrow only the logger, so they outlive the lock.
pub(super) fn with_runtime<T>(
    f: impl FnOnce(&mut trtx::Runtime<'static>) -> Result<T, Error>,
) -> Result<T, Error> {
    static RUNTIME: Mutex<Option<trtx::Runtime<'static>>> = Mutex::new(None);
    // A panic while it was held cannot leave the runtime half-made: it is set in one step.
    let mut r = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = match &mut *r {
        Some(rt) => rt,
        None => r.insert(trtx::Runtime::new(logger()?).map_err(super::trt("runtime"))?),
    };
    f(runtime)
}

/// The runtime cache file kept beside an engine (`engine.trt` → `engine.trt.rtcache`).
pub fn runtime_cache_path(engine: &Path) -> PathBuf {
    let mut s = engine.as_os_str().to_owned();
    s.push(".rtcache");
    PathBuf::from(s)
}

/// Supply every weight the engine was stripped of, by name, from host memory, then refit.
pub(super) fn refit_engine(
    eng: &trtx::CudaEngine<'static>,
    logger: &'static trtx::Logger,
    weights: &[seedvae_onnx::write::Initializer],
) -> Result<(), Error> {
    let by_name: HashMap<&str, &seedvae_onnx::write::Initializer> =
        weights.iter().map(|w| (w.name.as_str(), w)).collect();
    let mut r = trtx::Refitter::new(eng, logger).map_err(super::trt("refitter"))?;
    let names = r
        .all_weights(1 << 20)
        .map_err(super::trt("refittable weights"))?;
    for name in &names {
        let w = by_name.get(name.as_str()).ok_or_else(|| {
            Error::Input(format!(
                "the engine wants weights '{name}', which the graph does not have"
            ))
        })?;
        let Some((ty, size)) = crate::prepare::refit::trt_data_type(w.data_type) else {
            return Err(Error::Input(format!(
                "weights '{name}': ONNX data type {} cannot be refitted",
                w.data_type
            )));
        };
        let count = refit_count(name, w.raw.len(), size)?;
        // What the engine was built with: type and count must be the same (review B9).
        let proto = r.weights_prototype(name);
        let want: trtx::trtx_sys::nvinfer1::DataType = ty.into();
        if proto.count != count || proto.type_ != want {
            return Err(Error::Input(format!(
                "weights '{name}': the engine holds {} values of TensorRT type {}, the regenerated \
                 graph gives {count} of {ty:?} ({}): the weights file does not match this engine",
                proto.count,
                proto.type_.clone() as i32,
                want.clone() as i32
            )));
        }
        let raw = trtx::trtx_sys::nvinfer1::Weights {
            type_: ty.into(),
            values: w.raw.as_ptr().cast(),
            count,
        };
        // SAFETY: `raw` points into `weights`, which outlives the refit below; the count is
        // the initializer's element count for its type; the data is in host memory.
        unsafe { r.set_named_weights_with_location(name, raw, trtx::TensorLocation::kHOST.into()) }
            .map_err(|e| Error::TrtCall {
                what: format!("TensorRT-RTX refused weights '{name}' ({count} values of {ty:?})"),
                source: e,
            })?;
    }
    if let Err(e) = r.refit_cuda_engine() {
        let missing = r.missing_weights(16).unwrap_or_default();
        return Err(Error::TrtCall {
            what: format!(
                "refitting the engine failed; weights still missing: {}",
                if missing.is_empty() {
                    "none reported".into()
                } else {
                    missing.join(", ")
                }
            ),
            source: e,
        });
    }
    tracing::info!("refitted {} weights into the engine", names.len());
    Ok(())
}

/// The element count of `bytes` bytes of `size`-byte elements; a remainder means the regenerated
/// weights are not what the engine expects.
pub fn refit_count(name: &str, bytes: usize, size: usize) -> Result<i64, Error> {
    if size == 0 || !bytes.is_multiple_of(size) {
        return Err(Error::Input(format!(
            "weights '{name}': {bytes} bytes is not a whole number of {size}-byte values"
        )));
    }
    i64::try_from(bytes / size)
        .map_err(|_| Error::Input(format!("weights '{name}': {bytes} bytes is too many")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refit_counts_are_whole() {
        assert_eq!(refit_count("w", 12, 2).unwrap(), 6);
        let e = refit_count("decoder.conv_in.weight", 7, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("decoder.conv_in.weight") && e.contains("7 bytes"),
            "{e}"
        );
    }
}
