//! Timing helpers shared by the bench binaries: medians of repeated runs, and the `cat FILE >
//! /dev/null` baseline that the loading and conversion goals are stated against.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Median wall time of `reps` runs of `f` (after one warm-up run).
pub fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut t: Vec<Duration> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[t.len() / 2]
}

/// Time `cat FILE > /dev/null` (on Windows: `cmd /c type FILE > NUL`).
pub fn cat_to_null(path: &Path) {
    let status = if cfg!(windows) {
        Command::new("cmd")
            .arg("/c")
            .arg("type")
            .arg(path)
            .stdout(Stdio::null())
            .status()
    } else {
        Command::new("cat").arg(path).stdout(Stdio::null()).status()
    }
    .expect("run cat");
    assert!(status.success(), "cat {} failed", path.display());
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}
