//! Locating the native libraries seedvae loads at run time, without any network access:
//! an explicit path, an environment variable of ours, or the project's setup venv (`.venv`,
//! searched from the current directory and the executable's directory upwards).

use std::path::{Path, PathBuf};

/// The setup venv's `site-packages` directories reachable from `start` and its ancestors.
fn venv_site_packages(start: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in start.ancestors() {
        let venv = dir.join(".venv");
        if !venv.is_dir() {
            continue;
        }
        // Windows venvs: Lib/site-packages; Unix: lib/pythonX.Y/site-packages.
        let win = venv.join("Lib").join("site-packages");
        if win.is_dir() {
            out.push(win);
        }
        if let Ok(rd) = std::fs::read_dir(venv.join("lib")) {
            for e in rd.flatten() {
                let sp = e.path().join("site-packages");
                if sp.is_dir() {
                    out.push(sp);
                }
            }
        }
    }
    out
}

/// Candidate `site-packages` of the setup venv, near the working directory or the executable.
pub fn site_packages() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Ok(d) = std::env::current_dir() {
        roots.push(d);
    }
    if let Some(d) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        roots.push(d);
    }
    let mut out: Vec<PathBuf> = roots.iter().flat_map(|r| venv_site_packages(r)).collect();
    out.dedup();
    out
}

/// The first file in `dir` whose name starts with one of `prefixes`.
pub fn find_prefixed(dir: &Path, prefixes: &[&str]) -> Option<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
    names.sort();
    names.into_iter().find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| prefixes.iter().any(|pre| n.starts_with(pre)))
    })
}

/// The ONNX Runtime shared library: `explicit`, `$SEEDVAE_ORT_LIB`, `$ORT_DYLIB_PATH`, or the venv's
/// `onnxruntime/capi/libonnxruntime.so.*` (`onnxruntime.dll` on Windows).
pub fn onnxruntime(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(format!("ONNX Runtime library {} does not exist", p.display())) };
    }
    for var in ["SEEDVAE_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var).map(PathBuf::from) {
            return if p.is_file() { Ok(p) } else { Err(format!("${var} names {}, which does not exist", p.display())) };
        }
    }
    let prefixes: &[&str] = if cfg!(windows) { &["onnxruntime.dll"] } else if cfg!(target_os = "macos") { &["libonnxruntime.", "libonnxruntime.dylib"] } else { &["libonnxruntime.so"] };
    for sp in site_packages() {
        if let Some(p) = find_prefixed(&sp.join("onnxruntime").join("capi"), prefixes) {
            return Ok(p);
        }
    }
    Err("ONNX Runtime library not found: run scripts/setup.sh (it installs onnxruntime into .venv), \
         or set SEEDVAE_ORT_LIB to libonnxruntime.so.* / onnxruntime.dll"
        .into())
}
