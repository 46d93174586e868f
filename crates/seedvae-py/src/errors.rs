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

/// The library's options by their CLI flags (as its messages name them), and the keyword
/// arguments a Python caller passes for them: messages speak the caller's language.
const KEYWORDS: [(&str, &str); 13] = [
    ("--tile-size", "tile="),
    ("--tile-overlap", "overlap="),
    ("--no-tiling", "no_tiling=True"),
    ("--chunk", "chunk="),
    ("--vram-budget", "vram_budget_gb="),
    ("--threads", "threads="),
    ("--tensorrt-dir", "tensorrt_dir="),
    ("--color-batch", "color_batch="),
    ("--cuda-fp32", "cuda_fp32=True"),
    ("--weights", "weights="),
    ("--backend", "backend="),
    ("--cache", "cache="),
    ("--profile", "profile="),
];

/// `msg` with every CLI flag that has a keyword argument named by the keyword instead
/// (`--tile-size 7` → `tile=7`).
pub fn keywords(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    'scan: while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        for (flag, kw) in KEYWORDS {
            let Some(after) = tail.strip_prefix(flag) else {
                continue;
            };
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-') {
                continue;
            }
            out.push_str(kw);
            // `--flag VALUE` → `kw=VALUE`; a bare flag or one followed by prose → `kw` alone.
            let after = match after.strip_prefix(' ') {
                Some(v) if kw.ends_with('=') && v.starts_with(|c: char| c.is_ascii_digit()) => v,
                _ if kw.ends_with('=') => {
                    out.push_str("...");
                    after
                }
                _ => after,
            };
            rest = after;
            continue 'scan;
        }
        out.push_str("--");
        rest = &tail[2..];
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
    fn flags_become_keyword_arguments() {
        assert_eq!(
            keywords("--tile-size 7: tiles are at least 64 px"),
            "tile=7: tiles are at least 64 px"
        );
        assert_eq!(
            keywords("--chunk 0: a chunk is at least one latent frame"),
            "chunk=0: a chunk is at least one latent frame"
        );
        assert_eq!(
            keywords("lower --vram-budget or pass --no-tiling"),
            "lower vram_budget_gb=... or pass no_tiling=True"
        );
        assert_eq!(keywords("a --force-ful --x"), "a --force-ful --x");
    }
}
