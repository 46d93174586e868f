//! Progress reporting and cancellation, for every long call of the library.
//!
//! A [`Progress`] carries an optional callback (what is happening now) and a [`CancelToken`]
//! (stop at the next safe point: between chunks of a run). The library never prints; a
//! front end (the CLI's progress bars, a Python callback, ComfyUI's progress bar) turns
//! [`Event`]s into whatever its users see.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a long call reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A step of unknown length begins (converting weights, building an engine...).
    Stage(&'a str),
    /// The current stage is over.
    StageDone,
    /// `done` of `total` frames are through (decode: output frames; encode: input frames).
    Frames { done: usize, total: usize },
    /// `done` of `total` tensors written (convert, synth).
    Tensors { done: usize, total: usize },
    /// Something the user should read once, e.g. why a preferred backend was skipped.
    Notice(&'a str),
}

/// A shared flag: set it (from any thread, a signal handler included) and runs stop at their
/// next safe point with [`crate::Error::Interrupted`], leaving no partial output.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The flag itself, for the crates below (a TensorRT-RTX build polls it between steps).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

type Callback = Arc<dyn Fn(Event<'_>) + Send + Sync>;

/// A progress callback and a cancellation token. `Progress::default()` is silent and never
/// cancelled.
#[derive(Clone, Default)]
pub struct Progress {
    callback: Option<Callback>,
    cancel: CancelToken,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("callback", &self.callback.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl Progress {
    /// Report events to `f`.
    pub fn new(f: impl Fn(Event<'_>) + Send + Sync + 'static) -> Progress {
        Progress {
            callback: Some(Arc::new(f)),
            cancel: CancelToken::default(),
        }
    }

    /// Stop when `token` is cancelled.
    pub fn with_cancel(mut self, token: CancelToken) -> Progress {
        self.cancel = token;
        self
    }

    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    pub(crate) fn emit(&self, e: Event<'_>) {
        if let Some(f) = &self.callback {
            f(e)
        }
    }

    /// A `(done, total)` hook for tensor-by-tensor work.
    pub(crate) fn tensors(&self) -> impl FnMut(usize, usize) + '_ {
        move |done, total| self.emit(Event::Tensors { done, total })
    }

    /// `Err(Interrupted)` once cancelled.
    pub(crate) fn check(&self) -> crate::Result<()> {
        if self.cancel.is_cancelled() {
            return Err(crate::Error::Interrupted);
        }
        Ok(())
    }

    /// Run `f` as a named stage (begun and ended even when `f` fails).
    pub(crate) fn stage<T>(&self, what: &str, f: impl FnOnce() -> T) -> T {
        self.emit(Event::Stage(what));
        let r = f();
        self.emit(Event::StageDone);
        r
    }

    /// The runner's per-chunk hook: frames so far, and a stop once cancelled.
    pub(crate) fn frames(
        &self,
        total: usize,
    ) -> impl FnMut(usize) -> Result<(), seedvae_runner::Error> + '_ {
        move |done| {
            self.emit(Event::Frames { done, total });
            if self.cancel.is_cancelled() {
                return Err(seedvae_runner::Error::Interrupted);
            }
            Ok(())
        }
    }
}
