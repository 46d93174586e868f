//! Signals (issue 14, items 3–5): SIGINT and SIGTERM cancel a run at its next safe point with
//! exit 130 / 143 and nothing half-written; a second signal exits at once, removing temporary
//! files, without a crash; `engines gc` removes what a killed process left.

use super::common::{cpu, random_latent, s, tiny, write_latent};
use seedvae_tests::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_seedvae"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

/// Wait (at most 2 min) until `ready()`, failing if the child ends first.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let t = Instant::now();
    while !ready() {
        assert!(t.elapsed().as_secs() < 120, "{what} did not happen");
        assert!(child.try_wait().unwrap().is_none(), "ended before {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
    if !dir.is_dir() {
        return vec![];
    }
    sorted_entries(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("seedvae-tmp"))
        .collect()
}

#[test]
fn sigterm_stops_a_decode_with_143_and_leaves_nothing() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let latent = dir.path().join("long.npy");
    write_latent(&latent, &random_latent(40, 16, 16, 9));
    let out = dir.path().join("clip.y4m");
    let cache = dir.path().join("cache");
    let w = tiny();
    let mut child = spawn(&cpu(
        "decode",
        &w,
        s(&latent),
        s(&out),
        s(&cache),
        &["--quiet"],
    ));
    wait_for(&mut child, "writing frames", || {
        temporaries(dir.path())
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists());
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
}

/// A build of the tiny decoder with `-o`, and the moment its graph is being made.
fn build_until_converting(dir: &Path) -> Child {
    let cache = dir.join("cache");
    let out = dir.join("vae.trt");
    let mut child = spawn(&[
        "build",
        &tiny(),
        "--precision",
        "fp16",
        "--streaming",
        "--cache",
        s(&cache),
        "-o",
        s(&out),
        "--quiet",
    ]);
    wait_for(&mut child, "the graph conversion", || {
        !temporaries(&cache).is_empty()
    });
    child
}

#[test]
fn one_ctrl_c_cancels_a_build_with_130_and_writes_no_output() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let child = build_until_converting(dir.path());
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(!dir.path().join("vae.trt").exists(), "{err}");
    assert!(temporaries(&dir.path().join("cache")).is_empty());
    assert!(temporaries(dir.path()).is_empty());
}

#[test]
fn a_second_ctrl_c_exits_at_once_and_removes_temporary_files() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let child = build_until_converting(dir.path());
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    signal(&child, "-INT");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // Exited by itself with 130 (not killed by SIGSEGV / SIGABRT), promptly.
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
    assert!(!err.contains("pure virtual"), "{err}");
    assert!(!dir.path().join("vae.trt").exists());
    assert!(
        temporaries(&dir.path().join("cache")).is_empty(),
        "{:?}",
        temporaries(&dir.path().join("cache"))
    );
}

#[test]
fn gc_removes_temporary_files_of_dead_processes() {
    let _machine = super::common::sharing();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(cache.join("graphs")).unwrap();
    // PIDs above the kernel's pid_max (4194304) belong to no process.
    let dead = [
        cache.join(".graph.onnx.seedvae-tmp-4194399-0"),
        cache.join("graphs/.abc.onnx.seedvae-tmp-4194399-3"),
    ];
    for p in &dead {
        std::fs::write(p, b"half a graph").unwrap();
    }
    let mine = cache.join(".graph.onnx.seedvae-tmp-x");
    std::fs::write(&mine, b"not ours to judge").unwrap();
    let (code, text) = super::common::seedvae_joined(&["engines", "gc", "--cache", s(&cache)]);
    assert_eq!(code, 0, "{text}");
    for p in &dead {
        assert!(!p.exists(), "{} kept: {text}", p.display());
    }
    assert!(mine.exists(), "{text}");
    assert!(text.contains("freed 24 B"), "{text}");
}
