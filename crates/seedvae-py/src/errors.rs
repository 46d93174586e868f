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

/// The exception for a library error.
pub fn to_py(e: seedvae::Error) -> PyErr {
    let msg = chain(&e);
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
