//! Temporal streaming: run a streaming graph chunk after chunk, feeding each chunk the state
//! outputs of the previous one (spec §8). The first chunk is marked by a length-1
//! `continuation` input (its states are only sliced away by the graph, which replicates frame 0
//! as one-shot does); the result equals one-shot decoding up to floating-point rounding.
//!
//! Each backend keeps its streams' carried state itself ([`Streams`], under a [`StreamId`]): host
//! tensors on the default path, device memory on a GPU (ONNX Runtime through I/O binding,
//! TensorRT-RTX through tensor addresses), so a chunk's states never travel through the host
//! there, and no backend is ever handed state it did not make.

use crate::backend::Backend;
use crate::tensor::Tensor;
use crate::Error;
use seedvae_onnx::Contract;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One stream (one spatial tile of a clip) on the backend that began it. Ids are unique in the
/// process, so an id handed to another backend is refused rather than misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(u64);

impl StreamId {
    fn fresh() -> StreamId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        StreamId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Where a stream stands.
enum Slot<S> {
    /// Begun, no chunk run yet.
    Fresh,
    /// Between chunks: the state the next chunk reads.
    Carrying {
        hw: (usize, usize),
        bytes: usize,
        state: S,
    },
    /// A chunk failed: its state is gone, and so is the stream.
    Broken,
}

/// A backend's streams and their carried state `S` (host tensors, device buffers): the one
/// place a backend keeps them.
pub struct Streams<S> {
    live: HashMap<StreamId, Slot<S>>,
}

impl<S> Default for Streams<S> {
    fn default() -> Self {
        Streams {
            live: HashMap::new(),
        }
    }
}

/// What [`Streams::take`] hands a backend for the next chunk.
pub struct Chunk<S> {
    /// The chunk's latent/pixel extent.
    pub hw: (usize, usize),
    /// The previous chunk's state; `None` on a stream's first chunk.
    pub state: Option<S>,
}

impl<S> Streams<S> {
    pub fn begin(&mut self) -> StreamId {
        let id = StreamId::fresh();
        self.live.insert(id, Slot::Fresh);
        id
    }

    /// The state for the next chunk of `id` on `input`, checked against the contract and the
    /// stream's size; the stream counts as broken until [`Streams::put`] brings it back.
    pub fn take(
        &mut self,
        id: StreamId,
        backend: &str,
        c: &Contract,
        input: &Tensor,
    ) -> Result<Chunk<S>, Error> {
        let slot = self.live.get_mut(&id).ok_or_else(|| {
            Error::Backend(format!(
                "{backend} was handed another backend's state (stream {} is not one of its own)",
                id.0
            ))
        })?;
        let carried = match slot {
            Slot::Carrying { hw, .. } => Some(*hw),
            Slot::Fresh => None,
            Slot::Broken => {
                return Err(Error::Backend(format!(
                    "{backend}: stream {} ended at an earlier error",
                    id.0
                )))
            }
        };
        let hw = check_chunk(c, input, carried)?;
        let state = match std::mem::replace(slot, Slot::Broken) {
            Slot::Carrying { state, .. } => Some(state),
            _ => None,
        };
        Ok(Chunk { hw, state })
    }

    /// The state a chunk of `id` left for the next one.
    pub fn put(&mut self, id: StreamId, hw: (usize, usize), bytes: usize, state: S) {
        self.live.insert(id, Slot::Carrying { hw, bytes, state });
    }

    /// Drop `id`'s state (its device memory goes back).
    pub fn end(&mut self, id: StreamId) {
        self.live.remove(&id);
    }

    /// Bytes `id` carries between chunks.
    pub fn bytes(&self, id: StreamId) -> usize {
        match self.live.get(&id) {
            Some(Slot::Carrying { bytes, .. }) => *bytes,
            _ => 0,
        }
    }
}

/// The `continuation` marker: length 1 on the first chunk, 2 afterwards (only its shape counts).
pub fn marker(first: bool) -> Tensor {
    let n = if first { 1 } else { 2 };
    Tensor::exact(vec![n], vec![0.0; n])
}

/// Check a chunk against the stream's contract and the size it carries; returns its `(h, w)`.
fn check_chunk(
    c: &Contract,
    input: &Tensor,
    carried: Option<(usize, usize)>,
) -> Result<(usize, usize), Error> {
    let name = &c.inputs[0].name;
    if input.shape.len() != 5 {
        return Err(Error::Input(format!(
            "'{name}' must be 5-D [1, C, T, H, W], got {:?}",
            input.shape
        )));
    }
    let hw = (input.shape[3], input.shape[4]);
    if let Some(was) = carried {
        if was != hw {
            return Err(Error::Input(format!(
                "'{name}': a stream's chunks keep their size: {:?} after {:?}",
                hw, was
            )));
        }
    }
    Ok(hw)
}

/// What one chunk through [`host_chunk`] gives.
pub struct HostChunk {
    /// The public outputs.
    pub outputs: HashMap<String, Tensor>,
    /// The state outputs, in the contract's order: the next chunk's state.
    pub states: Vec<Tensor>,
    /// Their bytes.
    pub bytes: usize,
}

/// One chunk for backends that exchange host tensors through [`Backend::run`]: zero states on
/// the first chunk, the previous chunk's state outputs afterwards.
pub fn host_chunk<B: Backend + ?Sized>(
    backend: &mut B,
    chunk: Chunk<Vec<Tensor>>,
    input: &Tensor,
) -> Result<HostChunk, Error> {
    let c = backend.contract().clone();
    let (h, w) = chunk.hw;
    let first = chunk.state.is_none();
    let states: Vec<Tensor> = match chunk.state {
        Some(s) => s,
        None => c
            .states
            .iter()
            .map(|s| Tensor::zeros(s.shape(h, w).to_vec(), c.state_elem()))
            .collect(),
    };
    let m = marker(first);
    let mut inputs: Vec<(&str, &Tensor)> = vec![(c.inputs[0].name.as_str(), input)];
    if let Some(name) = &c.continuation {
        inputs.push((name.as_str(), &m));
    }
    for (s, t) in c.states.iter().zip(&states) {
        inputs.push((s.input.as_str(), t));
    }
    let mut out = backend.run(&inputs)?;
    drop(states);
    let mut next = Vec::with_capacity(c.states.len());
    for s in &c.states {
        next.push(
            out.remove(&s.output)
                .ok_or_else(|| Error::Backend(format!("backend returned no '{}'", s.output)))?,
        );
    }
    let bytes = next.iter().map(Tensor::nbytes).sum();
    Ok(HostChunk {
        outputs: out,
        states: next,
        bytes,
    })
}

/// What [`HostStreamed`] needs of a backend that exchanges host tensors: its name, contract and
/// one call.
pub trait HostRun: Send {
    fn kind(&self) -> crate::BackendKind;
    fn contract(&self) -> &Contract;
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error>;
}

/// A [`Backend`] from a [`HostRun`]: its streams' states are host tensors kept here, each chunk
/// one call with the state inputs and outputs ([`host_chunk`]). For stand-ins and adapters (a
/// backend seen through another's calls, a test's GPU that fails on cue).
pub struct HostStreamed<R> {
    pub inner: R,
    streams: Streams<Vec<Tensor>>,
}

impl<R> HostStreamed<R> {
    pub fn new(inner: R) -> Self {
        HostStreamed {
            inner,
            streams: Streams::default(),
        }
    }
}

impl<R: HostRun> Backend for HostStreamed<R> {
    fn kind(&self) -> crate::BackendKind {
        self.inner.kind()
    }
    fn contract(&self) -> &Contract {
        self.inner.contract()
    }
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error> {
        self.inner.run(inputs)
    }
    fn begin_stream(&mut self) -> StreamId {
        self.streams.begin()
    }
    fn step(&mut self, id: StreamId, input: &Tensor) -> Result<HashMap<String, Tensor>, Error> {
        let c = self.inner.contract().clone();
        let chunk = self.streams.take(id, self.inner.kind().name(), &c, input)?;
        let hw = chunk.hw;
        let done = host_chunk(self, chunk, input)?;
        self.streams.put(id, hw, done.bytes, done.states);
        Ok(done.outputs)
    }
    fn end_stream(&mut self, id: StreamId) {
        self.streams.end(id)
    }
    fn state_bytes(&self, id: StreamId) -> usize {
        self.streams.bytes(id)
    }
}

/// One stream's handle: begun on the backend at its first chunk, ended by [`Streamer::end`].
/// It does not hold the backend, so one backend can serve the streams of several tiles in turn.
pub struct Streamer {
    id: Option<StreamId>,
    bytes: usize,
}

impl Streamer {
    pub fn new(contract: &Contract) -> Result<Self, Error> {
        if !contract.streaming {
            return Err(Error::Input(
                "this model is not a streaming graph; convert it with `streaming`".into(),
            ));
        }
        Ok(Streamer { id: None, bytes: 0 })
    }

    /// Feed the next chunk (`[1, C, T, H, W]` under the contract's first input name); returns the
    /// public outputs of this chunk. After an error the stream is over (its state is dropped).
    pub fn step(
        &mut self,
        backend: &mut dyn Backend,
        input: &Tensor,
    ) -> Result<HashMap<String, Tensor>, Error> {
        let id = *self.id.get_or_insert_with(|| backend.begin_stream());
        let out = backend.step(id, input)?;
        self.bytes = backend.state_bytes(id);
        Ok(out)
    }

    /// Queue the next chunk ([`Backend::submit`]): its outputs now when the backend ran it at
    /// once, else from [`Streamer::collect`]. After an error the stream is over.
    pub fn submit(
        &mut self,
        backend: &mut dyn Backend,
        input: &Tensor,
    ) -> Result<Option<HashMap<String, Tensor>>, Error> {
        let id = *self.id.get_or_insert_with(|| backend.begin_stream());
        let out = backend.submit(id, input)?;
        self.bytes = backend.state_bytes(id);
        Ok(out)
    }

    /// The outputs of the oldest chunk queued by [`Streamer::submit`].
    pub fn collect(&mut self, backend: &mut dyn Backend) -> Result<HashMap<String, Tensor>, Error> {
        backend.collect()
    }

    /// Bytes held in carried state (what bounds memory between chunks).
    pub fn state_bytes(&self) -> usize {
        self.bytes
    }

    /// Give the stream's state back to `backend`.
    pub fn end(self, backend: &mut dyn Backend) {
        if let Some(id) = self.id {
            backend.end_stream(id);
        }
    }
}

/// Concatenate `[1, C, T_i, H, W]` tensors along T.
pub fn concat_time(parts: &[Tensor]) -> Tensor {
    let s0 = &parts[0].shape;
    let (c, h, w) = (s0[1], s0[3], s0[4]);
    let t: usize = parts.iter().map(|p| p.shape[2]).sum();
    let mut v = vec![0f32; c * t * h * w];
    let mut t0 = 0;
    for p in parts {
        let pt = p.shape[2];
        let data = p.to_f32();
        for ch in 0..c {
            let src = &data[ch * pt * h * w..(ch + 1) * pt * h * w];
            let dst = (ch * t + t0) * h * w;
            v[dst..dst + pt * h * w].copy_from_slice(src);
        }
        t0 += pt;
    }
    Tensor::exact(vec![1, c, t, h, w], v)
}

/// Slice frames `[t0, t1)` of a `[1, C, T, H, W]` f32 tensor.
pub fn slice_time(x: &Tensor, t0: usize, t1: usize) -> Tensor {
    let (c, t, h, w) = (x.shape[1], x.shape[2], x.shape[3], x.shape[4]);
    let data = x.as_f32().expect("f32 input");
    let n = t1 - t0;
    let mut v = Vec::with_capacity(c * n * h * w);
    for ch in 0..c {
        let base = (ch * t + t0) * h * w;
        v.extend_from_slice(&data[base..base + n * h * w]);
    }
    Tensor::exact(vec![1, c, n, h, w], v)
}
