//! Convert time and peak memory of `seedvae convert` on a checkpoint, vs copying the file.
//!
//! usage: cargo build --release -p seedvae-cli && \
//!        cargo run --release -p seedvae-benches --bin convert -- WEIGHTS [REPS]
//! Baseline: copying WEIGHTS (std::fs::copy, i.e. `cp`), median of REPS, same run, same disk.
//! Memory: peak of the child's RssAnon (heap: what conversion allocates) and VmHWM (all
//! resident pages, including the memory-mapped checkpoint, which is page cache, not heap),
//! sampled every 5 ms from /proc (Linux).

use seedvae_benches::{median, secs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Run `seedvae convert` once; (wall time, peak RssAnon bytes, peak VmHWM bytes).
fn convert_once(
    seedvae: &Path,
    weights: &Path,
    out: &Path,
    extra: &[&str],
) -> (Duration, u64, u64) {
    let t = Instant::now();
    let mut child = Command::new(seedvae)
        .args([
            "convert",
            weights.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--force",
            "--quiet",
        ])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn seedvae");
    let (mut anon, mut hwm) = (0u64, 0u64);
    loop {
        if let Some(k) = status_kb(child.id(), "RssAnon:") {
            anon = anon.max(k * 1024);
        }
        if let Some(k) = status_kb(child.id(), "VmHWM:") {
            hwm = hwm.max(k * 1024);
        }
        if let Some(st) = child.try_wait().expect("wait") {
            assert!(st.success(), "seedvae convert failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (t.elapsed(), anon, hwm)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let weights = PathBuf::from(args.next().expect("usage: convert WEIGHTS [REPS]"));
    let reps: usize = args
        .next()
        .map_or(3, |r| r.parse().expect("REPS is a number"));
    let seedvae = std::env::current_exe()
        .unwrap()
        .with_file_name(if cfg!(windows) {
            "seedvae.exe"
        } else {
            "seedvae"
        });
    assert!(
        seedvae.exists(),
        "{} missing: cargo build --release -p seedvae-cli first",
        seedvae.display()
    );
    let dir = weights.parent().unwrap().join(".seedvae-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("copy.bin");
    let cp = median(reps, || {
        std::fs::copy(&weights, &copy).unwrap();
    });
    std::fs::remove_file(&copy).ok();
    println!(
        "weights: {} ({} bytes); median of {reps}",
        weights.display(),
        std::fs::metadata(&weights).unwrap().len()
    );
    println!("copy (cp)                 : {:.2} s", secs(cp));
    for (label, extra) in [
        ("decoder fp16", &["--precision", "fp16"][..]),
        ("decoder fp32", &[][..]),
        (
            "decoder fp16 streaming",
            &["--precision", "fp16", "--streaming"][..],
        ),
        (
            "encoder fp16",
            &["--part", "encoder", "--precision", "fp16"][..],
        ),
    ] {
        let out = dir.join("out.onnx");
        let mut runs: Vec<(Duration, u64, u64)> = (0..reps)
            .map(|_| convert_once(&seedvae, &weights, &out, extra))
            .collect();
        runs.sort_by_key(|r| r.0);
        let (t, anon, hwm) = runs[runs.len() / 2];
        let size = std::fs::metadata(&out).unwrap().len();
        println!(
            "{label:<26}: {:.2} s = {:.2}x copy (goal <= 3x); output {:.1} MB; peak heap {:.1} MB = {:.2}x output (goal <= 2x); peak RSS incl. mapped weights {:.1} MB",
            secs(t),
            secs(t) / secs(cp),
            size as f64 / 1e6,
            anon as f64 / 1e6,
            anon as f64 / size as f64,
            hwm as f64 / 1e6
        );
        std::fs::remove_file(&out).ok();
    }
    std::fs::remove_dir_all(&dir).ok();
}
