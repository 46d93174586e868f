//! One module per subcommand: each parses its flags into the library's request types (see
//! [`args`]), calls the library, and prints. Shared display here.

pub mod args;
pub mod build;
pub mod convert;
pub mod decode;
pub mod demo;
pub mod encode;
pub mod inspect;
pub mod pack;
pub mod synth;
pub mod verify_precision;

use indicatif::{ProgressBar, ProgressStyle};
use seedvae::{CancelToken, Event, Progress};
use std::sync::{Mutex, OnceLock};

/// Cancelled by Ctrl-C: long runs stop at the next chunk and remove their temporary files.
fn cancel_token() -> &'static CancelToken {
    static TOKEN: OnceLock<CancelToken> = OnceLock::new();
    TOKEN.get_or_init(CancelToken::new)
}

/// The first Ctrl-C cancels (a second one exits at once).
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if cancel_token().is_cancelled() {
            std::process::exit(130);
        }
        cancel_token().cancel();
        eprintln!("\ninterrupted: stopping after the current chunk (Ctrl-C again to quit now)");
    });
}

/// This process's peak resident memory (Linux: VmHWM; None elsewhere).
pub fn peak_host_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub struct Ui {
    pub quiet: bool,
}

impl Ui {
    /// The library's progress events as a spinner (stages) or a bar (frames, tensors), hidden
    /// with --quiet; notices go to stderr; Ctrl-C cancels.
    pub fn progress(&self, what: &str) -> Progress {
        let quiet = self.quiet;
        let what = what.to_string();
        let bar: Mutex<Option<ProgressBar>> = Mutex::new(None);
        Progress::new(move |e| {
            let mut bar = bar.lock().unwrap_or_else(|p| p.into_inner());
            match e {
                Event::Notice(line) if !quiet => eprintln!("{line}"),
                Event::Notice(_) => {}
                Event::Stage(msg) => {
                    if let Some(b) = bar.take() {
                        b.finish_and_clear();
                    }
                    *bar = Some(spinner(quiet, msg));
                }
                Event::StageDone => {
                    if let Some(b) = bar.take() {
                        b.finish_and_clear();
                    }
                }
                Event::Frames { done, total } | Event::Tensors { done, total } => {
                    let b = bar.get_or_insert_with(|| counter(quiet, total as u64, &what));
                    b.set_length(total as u64);
                    b.set_position(done as u64);
                    if done >= total {
                        b.finish_and_clear();
                    }
                }
            }
        })
        .with_cancel(cancel_token().clone())
    }
}

/// A bar over `len` items.
fn counter(quiet: bool, len: u64, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}) ETA {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

/// A spinner with elapsed time for work of unknown length.
fn spinner(quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    pb
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Human byte size.
pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
