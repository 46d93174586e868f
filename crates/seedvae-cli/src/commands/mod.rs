//! One module per subcommand: each parses its flags into the library's request types (see
//! [`args`]), calls the library, and prints. Shared display here.

pub mod args;
pub mod backends;
pub mod build;
pub mod convert;
pub mod decode;
pub mod demo;
pub mod encode;
pub mod flags;
pub mod inspect;
pub mod pack;
pub mod selftest;
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

/// The signal that cancelled this run (SIGINT 2, SIGTERM 15), for the exit code 128 + signal.
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The exit code of a cancelled run: 130 after Ctrl-C, 143 after SIGTERM.
pub fn interrupted_exit_code() -> u8 {
    match SIGNAL.load(std::sync::atomic::Ordering::SeqCst) {
        15 => 143,
        _ => 130,
    }
}

fn on_signal(sig: i32) {
    if cancel_token().is_cancelled() {
        // Second signal: leave now. Temporary outputs are removed; no destructor runs, so a
        // library in the middle of a call (TensorRT-RTX building) is not torn down under it.
        seedvae::media::remove_temporaries();
        exit_now(128 + sig);
    }
    SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
    cancel_token().cancel();
    eprintln!("\ninterrupted: stopping at the next safe point (again to quit now)");
}

#[cfg(unix)]
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process; it touches no state of this program.
    unsafe { libc::_exit(code) }
}

#[cfg(not(unix))]
fn exit_now(code: i32) -> ! {
    std::process::exit(code)
}

/// SIGINT (Ctrl-C) and SIGTERM cancel long runs at their next safe point (between chunks, after
/// a conversion or a build); a second signal exits at once.
#[cfg(unix)]
pub fn install_interrupt_handler() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // A file-size limit (`ulimit -f`) reached while writing an output: the write fails with an
    // error that names the file, instead of the signal killing the process mid-file.
    // SAFETY: setting a signal's disposition to "ignore" installs no handler code.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        tracing::warn!("cannot handle Ctrl-C: an interrupted run may leave temporary files");
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            on_signal(sig);
        }
    });
}

#[cfg(not(unix))]
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| on_signal(2));
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
                Event::Notice(line) if !quiet => eprintln!("{}", flags::speak_cli(line)),
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
                // A kind of event this CLI does not know yet: nothing to show.
                _ => {}
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
