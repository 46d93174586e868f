//! Running library calls from Python: off the GIL, on a model's own thread, with progress
//! called back into Python and Ctrl-C / callback exceptions turned into a cancel.
//!
//! The library's `Model` is `Send`, so any thread could run it; this one thread per model is
//! for Python's sake: the calling thread waits with the GIL released and checks for Ctrl-C
//! (Python runs signal handlers only on its main thread, between bytecodes), and the model is
//! dropped on a thread that is joined, so no GPU object outlives the interpreter's exit.

use crate::errors::{to_py, SeedvaeError};
use pyo3::prelude::*;
use seedvae::{CancelToken, Event, Model, ModelOptions, Part, Progress};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a waiting call looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// A call's progress (into the Python callback) and the Python exception that stopped it.
pub struct Hooks {
    pub progress: Progress,
    raised: Arc<Mutex<Option<PyErr>>>,
}

/// `(kind, text, done, total)`: the callback's arguments for an event.
fn describe(e: Event<'_>) -> (&'static str, Option<String>, Option<usize>, Option<usize>) {
    match e {
        Event::Stage(s) => ("stage", Some(s.to_string()), None, None),
        Event::StageDone => ("stage_done", None, None, None),
        Event::Frames { done, total } => ("frames", None, Some(done), Some(total)),
        Event::Tensors { done, total } => ("tensors", None, Some(done), Some(total)),
        Event::Notice(s) => ("notice", Some(s.to_string()), None, None),
        _ => ("other", None, None, None),
    }
}

/// Progress for a call: events go to `callback(kind, text, done, total)`; an exception it
/// raises cancels the run (at the next chunk) and is raised from the call.
pub fn hooks(callback: Option<Py<PyAny>>, cancel: Option<CancelToken>) -> Hooks {
    let token = cancel.unwrap_or_default();
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let progress = match callback {
        None => Progress::default(),
        Some(cb) => {
            let (raised, token) = (raised.clone(), token.clone());
            Progress::new(move |e| {
                Python::attach(|py| {
                    if let Err(err) = cb.call1(py, describe(e)) {
                        keep_first(&raised, err);
                        token.cancel();
                    }
                })
            })
        }
    };
    Hooks {
        progress: progress.with_cancel(token),
        raised,
    }
}

/// The lock even after a panic elsewhere (what it guards stays consistent: options taken whole).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn keep_first(slot: &Mutex<Option<PyErr>>, err: PyErr) {
    let mut s = lock(slot);
    if s.is_none() {
        *s = Some(err);
    }
}

impl Hooks {
    /// The call's result: a Python exception raised during it first (Ctrl-C, the callback's),
    /// else the library's error as an exception.
    fn finish<T>(&self, r: seedvae::Result<T>) -> PyResult<T> {
        let raised = lock(&self.raised).take();
        match raised {
            Some(e) => Err(e),
            None => r.map_err(to_py),
        }
    }

    /// Wait for `rx` without the GIL, checking for Ctrl-C meanwhile: a KeyboardInterrupt
    /// cancels the run, which then stops at its next chunk; the wait goes on until it has.
    fn wait<T: Send>(&self, py: Python<'_>, rx: Receiver<T>) -> PyResult<T> {
        let token = self.progress.cancel_token().clone();
        let r = py.detach(move || loop {
            match rx.recv_timeout(SIGNAL_POLL) {
                Ok(v) => return Ok(v),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(err) = Python::attach(|py| {
                        crate::log::flush(py);
                        py.check_signals()
                    }) {
                        keep_first(&self.raised, err);
                        token.cancel();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SeedvaeError::new_err(
                        "internal error: seedvae's worker thread stopped without an answer",
                    ))
                }
            }
        });
        crate::log::flush(py);
        r
    }
}

/// Run `f` on a thread of its own while this one waits (GIL released, Ctrl-C checked).
pub fn run_detached<T: Send>(
    py: Python<'_>,
    hooks: &Hooks,
    f: impl FnOnce() -> seedvae::Result<T> + Send,
) -> PyResult<T> {
    let (tx, rx) = mpsc::channel();
    let r = std::thread::scope(|s| {
        s.spawn(move || {
            let _ = tx.send(f());
        });
        hooks.wait(py, rx)
    })?;
    hooks.finish(r)
}

type Job = Box<dyn FnOnce(&mut Model) + Send>;

/// What Python may ask about a model without a round trip to its thread: read from the model
/// after it opens and after every run (under `auto` a failed first call moves it to the next
/// backend).
#[derive(Clone)]
pub struct Info {
    pub backend: String,
    pub fallback_reason: Option<String>,
    pub part: Part,
    pub streaming: bool,
}

impl Info {
    fn of(m: &Model) -> Info {
        Info {
            backend: m.backend_name().to_string(),
            fallback_reason: m.fallback_reason().map(str::to_string),
            part: m.part(),
            streaming: m.is_streaming(),
        }
    }
}

/// A model on its own thread: opened there, run there, dropped there — on `close` or when this
/// is dropped, which also waits for the thread, so that no GPU object outlives the call (a
/// session left alive on a thread while the process exits tears the CUDA libraries down under
/// it: seen as a segmentation fault at exit on the H200).
pub struct Worker {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The model's thread, where its progress callbacks run: a call from there is a call from
    /// inside a run of this model.
    thread_id: std::thread::ThreadId,
    info: Mutex<Info>,
}

impl Worker {
    pub fn open(
        py: Python<'_>,
        spec: PathBuf,
        part: Part,
        opts: ModelOptions,
        hooks: &Hooks,
    ) -> PyResult<Worker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (tx, rx) = mpsc::channel();
        let progress = hooks.progress.clone();
        let thread = std::thread::Builder::new()
            .name("seedvae-model".into())
            .spawn(move || match Model::open(&spec, part, &opts, &progress) {
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
                Ok(mut m) => {
                    if tx.send(Ok(Info::of(&m))).is_ok() {
                        for job in queue {
                            job(&mut m);
                        }
                    }
                }
            })
            .map_err(|e| SeedvaeError::new_err(format!("cannot start a thread: {e}")))?;
        let thread_id = thread.thread().id();
        let info = hooks.finish(hooks.wait(py, rx)?)?;
        Ok(Worker {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
            thread_id,
            info: Mutex::new(info),
        })
    }

    pub fn info(&self) -> Info {
        lock(&self.info).clone()
    }

    /// Is this the model's own thread (a progress callback of a run of this model)?
    fn inside_a_run(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Drop the model on its thread and wait for that thread to end (after a run in progress).
    /// From the model's own progress callback it cannot wait for itself: the model is closed
    /// for new calls at once and dropped when the run in progress returns.
    pub fn close(&self) {
        drop(lock(&self.jobs).take());
        if self.inside_a_run() {
            return;
        }
        let thread = lock(&self.thread).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    /// Run `f` on the model's thread and wait for it. Calls on one model take turns.
    pub fn run<T: Send + 'static>(
        &self,
        py: Python<'_>,
        hooks: &Hooks,
        f: impl FnOnce(&mut Model) -> seedvae::Result<T> + Send + 'static,
    ) -> PyResult<T> {
        if self.inside_a_run() {
            // Queued behind the run that is calling back, it would wait for itself for good.
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this model was called from its own progress callback, during one of its runs; a \
                 model runs one call at a time: call it after this run returns, or open another \
                 Model for it",
            ));
        }
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |m| {
            let r = f(m);
            let _ = tx.send((r, Info::of(m)));
        });
        let sent = match lock(&self.jobs).as_ref() {
            None => return Err(SeedvaeError::new_err("this model is closed")),
            Some(jobs) => jobs.send(job),
        };
        sent.map_err(|_| SeedvaeError::new_err("internal error: seedvae's worker thread is gone"))?;
        let (r, info) = hooks.wait(py, rx)?;
        *lock(&self.info) = info;
        hooks.finish(r)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.close()
    }
}
