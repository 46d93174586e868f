//! A model open on a backend: what runs it, what the planner must respect (the backend's limits
//! and memory plan), and what to fall back on if its very first call fails. Made by
//! [`Prepared::load`](crate::Prepared::load) or [`Model::open`]; run by the `run` module.

use crate::prepare::Prepared;
use seedvae_runner::planner::{GraphMemory, Limits};
use seedvae_runner::{Backend, BackendKind, StreamId, Streams, Tensor};
use seedvae_weights::Part;
use std::collections::HashMap;

/// A model with a backend ready to run decode or encode calls. `Send`: it may move to another
/// thread (a worker, a pool) between calls; calls take `&mut self`, one at a time.
pub struct Model {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) limits: Limits,
    /// Largest tile edge (the part's input units) that fits the memory budget (engines).
    pub(crate) memory_cap: Option<usize>,
    /// Graph backends on a GPU: the memory plan, whose tile cap depends on the chunk.
    pub(crate) graph_memory: Option<GraphMemory>,
    /// seedvae's executor: never tiled (tiles are the graph and engine backends'
    /// approximation); the tile edge is its band height, which changes no value.
    pub(crate) whole_frames: bool,
    /// A GPU backend opened from a list: the backends after it, for a failed first call.
    pub(crate) rest: Option<Box<Prepared>>,
    pub(crate) fallback: Option<String>,
    pub(crate) part: Part,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.kind())
            .field("part", &self.part)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl Model {
    /// Which backend runs the model.
    pub fn backend_kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// The backend's short name ("onnxruntime-cpu", "onnxruntime-cuda", "seedvae-cuda",
    /// "tensorrt-rtx", "reference").
    pub fn backend_name(&self) -> &'static str {
        self.backend.kind().name()
    }

    /// Why the backends listed before this one are not used, one reason each.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    pub fn part(&self) -> Part {
        self.part
    }

    /// Streaming models decode clips of any length chunk by chunk.
    pub fn is_streaming(&self) -> bool {
        self.backend.contract().streaming
    }
}

/// What a model holds between a failed backend and the next one (and keeps if no next one
/// opens): its contract, and an error for every call.
pub(crate) struct Closed {
    contract: seedvae_onnx::Contract,
    streams: Streams<()>,
}

impl Closed {
    pub(crate) fn instead_of(b: &dyn Backend) -> Closed {
        Closed {
            contract: b.contract().clone(),
            streams: Streams::default(),
        }
    }

    fn error() -> seedvae_runner::Error {
        seedvae_runner::Error::Backend(
            "the GPU backend failed and no other one could open (see the earlier error)".into(),
        )
    }
}

impl Backend for Closed {
    fn kind(&self) -> BackendKind {
        BackendKind::Other("closed")
    }
    fn contract(&self) -> &seedvae_onnx::Contract {
        &self.contract
    }
    fn run(
        &mut self,
        _: &[(&str, &Tensor)],
    ) -> Result<HashMap<String, Tensor>, seedvae_runner::Error> {
        Err(Closed::error())
    }
    fn begin_stream(&mut self) -> StreamId {
        self.streams.begin()
    }
    fn step(
        &mut self,
        _: StreamId,
        _: &Tensor,
    ) -> Result<HashMap<String, Tensor>, seedvae_runner::Error> {
        Err(Closed::error())
    }
    fn end_stream(&mut self, id: StreamId) {
        self.streams.end(id)
    }
    fn state_bytes(&self, _: StreamId) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    /// A model moves between threads (Python's worker, a service's pool), and so does a
    /// prepared one: this fails to compile when a backend holds something that cannot.
    #[test]
    fn a_model_and_a_prepared_model_are_send() {
        fn send<T: Send>() {}
        send::<super::Model>();
        send::<crate::prepare::Prepared>();
    }
}
