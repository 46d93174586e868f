//! The library's log lines (`tracing`) into Python's `logging`, logger "seedvae": what the CLI
//! prints on stderr, a Python program (and ComfyUI's console) sees the Python way, with option
//! names as keyword arguments. Info and above only: nothing below is even formatted.
//!
//! A line is queued where it is made and handed to Python by the thread that waits for the run
//! (every poll, and when the run ends): taking the GIL on the thread that logs could deadlock
//! against a Python thread that holds it while joining that thread.

use pyo3::prelude::*;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// An event's message and its other fields (`key=value`), as one line.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        } else {
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

struct ToPython;

impl<S: Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => return,
        };
        let mut line = Line::default();
        event.record(&mut line);
        let mut q = PENDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() < MOST {
            q.push((level, crate::errors::keywords(&line.0)));
        }
    }
}

/// Lines made and not yet handed to Python.
static PENDING: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());
/// Lines kept between two hand-overs at the most (a run logs a few).
const MOST: usize = 1000;

/// Hand the queued lines to Python's `logging` (the caller holds the GIL). A failing logger
/// (the interpreter shutting down) loses them, nothing else.
pub fn flush(py: Python<'_>) {
    let lines = std::mem::take(
        &mut *PENDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if lines.is_empty() {
        return;
    }
    let Ok(logger) = py
        .import("logging")
        .and_then(|l| l.call_method1("getLogger", ("seedvae",)))
    else {
        return;
    };
    for (level, msg) in lines {
        let _ = logger.call_method1("log", (level, msg));
    }
}

/// Route the library's log to Python's `logging` (once; a subscriber set before stays).
pub fn install() {
    let subscriber = tracing_subscriber::registry()
        .with(ToPython.with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let _ = tracing::subscriber::set_global_default(subscriber);
}
