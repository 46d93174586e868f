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
        // `scripts/setup.sh --gpu` installs onnxruntime-gpu and its CUDA libraries here, apart
        // from the CPU package (both are the `onnxruntime` module); first, so that it wins.
        let gpu = venv.join("gpu");
        if gpu.is_dir() {
            out.push(gpu);
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
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        roots.push(d);
    }
    let mut out: Vec<PathBuf> = roots.iter().flat_map(|r| venv_site_packages(r)).collect();
    out.dedup();
    out
}

/// The first file in `dir` whose name starts with one of `prefixes` (on Windows only `.dll`
/// files: an SDK's `lib\` folder also holds import libraries with the same prefix).
pub fn find_prefixed(dir: &Path, prefixes: &[&str]) -> Option<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names.into_iter().find(|p| {
        let loadable =
            !cfg!(windows) || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("dll"));
        loadable
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| prefixes.iter().any(|pre| n.starts_with(pre)))
    })
}

/// The TensorRT-RTX library directory: `explicit`, `$SEEDVAE_TENSORRT_DIR`, or the venv's
/// `tensorrt_rtx_libs/` (from the `tensorrt-rtx-cu13` wheel). Returns (runtime, ONNX parser) paths.
pub fn tensorrt(explicit: Option<&Path>) -> Result<(PathBuf, PathBuf), crate::Error> {
    let (rt, parser): (&[&str], &[&str]) = if cfg!(windows) {
        (
            &["tensorrt_rtx_1", "tensorrt_rtx.dll"],
            &["tensorrt_onnxparser_rtx_1", "tensorrt_onnxparser_rtx.dll"],
        )
    } else {
        (&["libtensorrt_rtx.so"], &["libtensorrt_onnxparser_rtx.so"])
    };
    let in_dir = |d: &Path| -> Option<(PathBuf, PathBuf)> {
        Some((find_prefixed(d, rt)?, find_prefixed(d, parser)?))
    };
    let from = |d: PathBuf, what: &str| -> Result<(PathBuf, PathBuf), crate::Error> {
        in_dir(&d).ok_or_else(|| {
            crate::Error::Library(format!(
                "{what} {} holds no TensorRT-RTX runtime and ONNX parser libraries",
                d.display()
            ))
        })
    };
    if let Some(d) = explicit {
        return from(d.to_path_buf(), "`tensorrt_dir`");
    }
    if let Some(d) = std::env::var_os("SEEDVAE_TENSORRT_DIR") {
        return from(PathBuf::from(d), "$SEEDVAE_TENSORRT_DIR");
    }
    for sp in site_packages() {
        if let Some(found) = in_dir(&sp.join("tensorrt_rtx_libs")) {
            return Ok(found);
        }
    }
    Err(crate::Error::Library("TensorRT-RTX libraries not found: `install_tensorrt`, \
         or set SEEDVAE_TENSORRT_DIR to the folder holding libtensorrt_rtx.so.1 and libtensorrt_onnxparser_rtx.so.1 \
         (tensorrt_rtx_1_7.dll and tensorrt_onnxparser_rtx_1_7.dll on Windows)"
        .into()))
}
