//! Library errors as Python exceptions, with the message the CLI prints (`error: ` left off):
//! the error and each of its causes, joined by ": " on one line.

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    seedvae,
    SeedvaeError,
    PyRuntimeError,
    "Any failure of seedvae; the message names the file, tensor, expected and found."
);
create_exception!(
    seedvae,
    InvalidInputError,
    SeedvaeError,
    "The input or a setting cannot be used as given (wrong shape, NaN, bad file, bad option)."
);
create_exception!(
    seedvae,
    UnavailableError,
    SeedvaeError,
    "The backend cannot run on this machine (no GPU, unsupported GPU, missing library, out of memory)."
);
create_exception!(
    seedvae,
    CancelledError,
    SeedvaeError,
    "The run was cancelled (CancelToken.cancel or a callback's exception); nothing was left half-written."
);

/// The error and its causes on one line, as `anyhow`'s `{:#}` prints them in the CLI.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The library names its options in backticks (`` `tile_px` 7``); a Python caller passes them as
/// keyword arguments (`tile=7`): messages speak the caller's language.
const KEYWORDS: [(&str, &str); 22] = [
    ("`backends`", "backend="),
    ("`tile_px`", "tile="),
    ("`overlap_px`", "overlap="),
    ("`no_tiling`", "no_tiling=True"),
    ("`chunk`", "chunk="),
    ("`vram_budget_gb`", "vram_budget_gb="),
    ("`threads`", "threads="),
    ("`tensorrt_dir`", "tensorrt_dir="),
    ("`color_batch`", "color_batch="),
    ("`weights`", "weights="),
    ("`model`", "model="),
    ("`cache`", "cache="),
    ("`target`", "targets="),
    ("`precision`", "precision="),
    ("`streaming`", "streaming=True"),
    ("`part`", "part="),
    ("`force`", "force"),
    ("`output`", "output"),
    ("`dit_latent`", "seedvae.from_dit (a DiT-layout latent)"),
    ("`install_cuda`", "`pip install seedvae[cuda]`"),
    // No double quotes: the same replacement runs over the JSON of `seedvae.backends()`.
    ("`install_tensorrt`", "`pip install seedvae[tensorrt]`"),
    ("`install_onnxruntime`", "`pip install seedvae[cpu]`"),
];

/// `msg` with every library option name as the keyword argument for it (`` `tile_px` 7`` →
/// `tile=7`; a name without a value after it → `tile=...`).
pub fn keywords(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    'scan: while let Some(at) = rest.find('`') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        for (name, kw) in KEYWORDS {
            let Some(after) = tail.strip_prefix(name) else {
                continue;
            };
            out.push_str(kw);
            // `name VALUE` (a word with a digit: 7, fp16, sm_120) → `kw=VALUE`; a name
            // followed by prose → `kw=...`.
            let value = after.strip_prefix(' ').filter(|v| {
                let word = v.split([' ', ':', ',', ')', ';']).next().unwrap_or("");
                word.bytes().any(|b| b.is_ascii_digit())
            });
            rest = match value {
                Some(v) if kw.ends_with('=') => v,
                _ if kw.ends_with('=') => {
                    out.push_str("...");
                    after
                }
                _ => after,
            };
            continue 'scan;
        }
        out.push('`');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// The exception for a library error.
pub fn to_py(e: seedvae::Error) -> PyErr {
    let msg = keywords(&chain(&e));
    if e.is_out_of_memory() {
        return pyo3::exceptions::PyMemoryError::new_err(msg);
    }
    if e.is_interrupted() {
        CancelledError::new_err("interrupted: nothing was left half-written")
    } else if e.is_environment_failure() {
        UnavailableError::new_err(msg)
    } else if e.is_invalid_input() {
        InvalidInputError::new_err(msg)
    } else {
        SeedvaeError::new_err(msg)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SeedvaeError", py.get_type::<SeedvaeError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("UnavailableError", py.get_type::<UnavailableError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::keywords;

    #[test]
    fn library_names_become_keyword_arguments() {
        assert_eq!(
            keywords("`tile_px` 7: tiles are at least 64 px"),
            "tile=7: tiles are at least 64 px"
        );
        assert_eq!(
            keywords("`chunk` 0: a chunk is at least one latent frame"),
            "chunk=0: a chunk is at least one latent frame"
        );
        assert_eq!(
            keywords("more than the 1.00 GB budget (`vram_budget_gb`); drop `no_tiling`"),
            "more than the 1.00 GB budget (vram_budget_gb=...); drop no_tiling=True"
        );
        assert_eq!(keywords("run `seedvae convert`"), "run `seedvae convert`");
        // What to install, as a Python user installs it (the CLI says scripts/setup.sh).
        assert_eq!(
            keywords("TensorRT-RTX libraries not found: `install_tensorrt`, or set X"),
            "TensorRT-RTX libraries not found: `pip install seedvae[tensorrt]`, or set X"
        );
        assert_eq!(
            keywords("ONNX Runtime library not found: `install_onnxruntime`"),
            "ONNX Runtime library not found: `pip install seedvae[cpu]`"
        );
        // The same words inside `seedvae.backends()`'s JSON keep it JSON.
        let json = r#"{"unavailable":"TensorRT-RTX libraries not found: `install_tensorrt`"}"#;
        let v: serde_json::Value = serde_json::from_str(&keywords(json)).unwrap();
        assert!(v["unavailable"]
            .as_str()
            .unwrap()
            .contains("pip install seedvae[tensorrt]"));
        assert_eq!(
            keywords("`chunk` needs a streaming model; `target` sm_120"),
            "chunk=... needs a streaming model; targets=sm_120"
        );
    }
}
