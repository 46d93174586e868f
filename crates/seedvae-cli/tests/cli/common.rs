//! Helpers shared by the CLI tests: running the binary, paths as arguments, the tiny fixture,
//! and one tiny engine built once per test run and copied into each test's own cache.

use seedvae_tests::*;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Run `seedvae ARGS…`: (exit code, stdout, stderr).
pub fn seedvae(args: &[&str]) -> (i32, String, String) {
    run_cli(env!("CARGO_BIN_EXE_seedvae"), args)
}

/// Run `seedvae ARGS…`: (exit code, stdout then stderr).
pub fn seedvae_joined(args: &[&str]) -> (i32, String) {
    let (code, out, err) = seedvae(args);
    (code, format!("{out}{err}"))
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The tiny fixture's weights, as an argument.
pub fn tiny() -> String {
    fixture("vae_tiny/weights.safetensors")
        .to_string_lossy()
        .into_owned()
}

/// A temporary directory for one test, removed when dropped.
pub fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// The tiny fixture's fp16 one-shot decoder engine for sm_120, built once per test run (in a
/// cache of its own), then copied into `cache` for each test that needs one; returns its key.
pub fn tiny_engine(cache: &Path) -> String {
    static BUILT: OnceLock<(tempfile::TempDir, String)> = OnceLock::new();
    let (dir, key) = BUILT.get_or_init(|| {
        let dir = temp();
        let (code, out, err) = seedvae(&[
            "build",
            &tiny(),
            "--precision",
            "fp16",
            "--cache",
            s(dir.path()),
            "--json",
            "--quiet",
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let m: serde_json::Value = serde_json::from_str(&out).expect("build --json");
        let key = m["key"].as_str().expect("key").to_string();
        (dir, key)
    });
    let from = dir.path().join("engines").join(key);
    let to = cache.join("engines").join(key);
    copy_dir(&from, &to);
    key.clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create engine dir");
    for e in std::fs::read_dir(from).expect("read engine dir") {
        let p: PathBuf = e.expect("entry").path();
        let name = p.file_name().expect("file name");
        std::fs::copy(&p, to.join(name)).expect("copy engine file");
    }
}

/// The machine, shared by the tests of this binary: every test holds [`sharing`] for its run; a
/// timing measurement holds [`alone`], which waits for the running tests and holds off new ones
/// (a cache hit timed while another test builds an engine on the same 2 cores measures the
/// other test).
static MACHINE: RwLock<()> = RwLock::new(());

pub fn sharing() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|p| p.into_inner())
}

pub fn alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|p| p.into_inner())
}

/// The PNG frames in a frame directory, sorted (the directory also holds seedvae's marker).
pub fn frames(dir: &Path) -> Vec<PathBuf> {
    seedvae_tests::sorted_entries(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect()
}

/// `seedvae CMD -m MODEL INPUT -o OUT --backend cpu --cache CACHE EXTRA…`
pub fn cpu<'a>(
    cmd: &'a str,
    model: &'a str,
    input: &'a str,
    out: &'a str,
    cache: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        cmd,
        "-m",
        model,
        input,
        "-o",
        out,
        "--backend",
        "cpu",
        "--cache",
        cache,
    ];
    a.extend_from_slice(extra);
    a
}

/// Write `t` as a `.safetensors` / `.npy` latent.
pub fn write_latent(path: &Path, t: &seedvae::Tensor) {
    seedvae::write_tensor(path, "latent", t, seedvae::DType::F32, true).unwrap();
}

/// A `[1, 16, t, h, w]` latent of N(0, 1) values from `seed`.
pub fn random_latent(t: usize, h: usize, w: usize, seed: u64) -> seedvae::Tensor {
    let mut r = seedvae::weights::Rng::new(seed);
    let mut v = vec![0f32; 16 * t * h * w];
    r.fill_normal(&mut v);
    seedvae::Tensor::f32(vec![1, 16, t, h, w], v).unwrap()
}
