//! Temporal streaming: run a streaming graph chunk after chunk, feeding each chunk the state
//! outputs of the previous one (spec §8). The first chunk is marked by a length-1
//! `continuation` input (its states are only sliced away by the graph, which replicates frame 0
//! as one-shot does); the result equals one-shot decoding up to floating-point rounding.
//!
//! The carried state lives where its backend computes ([`Carried`]): host tensors on the default
//! path, device memory on a GPU (ONNX Runtime through I/O binding, TensorRT-RTX through tensor
//! addresses), so a chunk's states never travel through the host there.

use crate::backend::Backend;
use crate::tensor::Tensor;
use crate::Error;
use seedvae_onnx::Contract;
use std::any::Any;
use std::collections::HashMap;

/// One stream's carried causal state, opaque to everything but the backend that made it.
pub struct Carried {
    /// Bytes held (all state tensors together).
    pub bytes: usize,
    /// The latent/pixel extent `(h, w)` of the chunks it belongs to: a stream keeps its tile size.
    pub hw: (usize, usize),
    inner: Box<dyn Any + Send>,
}

impl Carried {
    pub fn new(bytes: usize, hw: (usize, usize), inner: impl Any + Send) -> Carried {
        Carried {
            bytes,
            hw,
            inner: Box::new(inner),
        }
    }

    /// The backend's own state type; an error if another backend made it.
    pub fn take<T: Any>(self, backend: &str) -> Result<T, Error> {
        self.inner
            .downcast::<T>()
            .map(|b| *b)
            .map_err(|_| Error::Backend(format!("{backend} was handed another backend's state")))
    }
}

/// The `continuation` marker: length 1 on the first chunk, 2 afterwards (only its shape counts).
pub fn marker(first: bool) -> Tensor {
    let n = if first { 1 } else { 2 };
    Tensor::f32(vec![n], vec![0.0; n])
}

/// Check a chunk against the stream's contract and state; returns the chunk's `(h, w)`.
pub fn check_chunk(
    c: &Contract,
    input: &Tensor,
    carried: Option<&Carried>,
) -> Result<(usize, usize), Error> {
    let name = &c.inputs[0].name;
    if input.shape.len() != 5 {
        return Err(Error::Input(format!(
            "'{name}' must be 5-D [1, C, T, H, W], got {:?}",
            input.shape
        )));
    }
    let hw = (input.shape[3], input.shape[4]);
    if let Some(s) = carried {
        if s.hw != hw {
            return Err(Error::Input(format!(
                "'{name}': a stream's chunks keep their size: {:?} after {:?}",
                hw, s.hw
            )));
        }
    }
    Ok(hw)
}

/// The default streaming step for backends that exchange host tensors: zero states on the first
/// chunk, the previous chunk's state outputs afterwards.
pub fn host_step<B: Backend + ?Sized>(
    backend: &mut B,
    carried: Option<Carried>,
    input: &Tensor,
) -> Result<(HashMap<String, Tensor>, Carried), Error> {
    let c = backend.contract().clone();
    let hw = check_chunk(&c, input, carried.as_ref())?;
    let first = carried.is_none();
    let states: Vec<Tensor> = match carried {
        Some(s) => s.take(backend.kind().name())?,
        None => c
            .states
            .iter()
            .map(|s| Tensor::zeros(s.shape(hw.0, hw.1).to_vec(), c.state_elem()))
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
    Ok((out, Carried::new(bytes, hw, next)))
}

/// The carried state of one stream (one spatial tile of a clip). It does not hold the backend,
/// so one backend can serve the streams of several tiles in turn.
pub struct Streamer {
    carried: Option<Carried>,
}

impl Streamer {
    pub fn new(contract: &Contract) -> Result<Self, Error> {
        if !contract.streaming {
            return Err(Error::Input(
                "this model is not a streaming graph; convert it with `streaming`".into(),
            ));
        }
        Ok(Streamer { carried: None })
    }

    /// Feed the next chunk (`[1, C, T, H, W]` under the contract's first input name); returns the
    /// public outputs of this chunk. After an error the stream is over (its state is dropped).
    pub fn step(
        &mut self,
        backend: &mut dyn Backend,
        input: &Tensor,
    ) -> Result<HashMap<String, Tensor>, Error> {
        let (out, next) = backend.step(self.carried.take(), input)?;
        self.carried = Some(next);
        Ok(out)
    }

    /// Bytes held in carried state (what bounds memory between chunks).
    pub fn state_bytes(&self) -> usize {
        self.carried.as_ref().map_or(0, |s| s.bytes)
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
    Tensor::f32(vec![1, c, t, h, w], v)
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
    Tensor::f32(vec![1, c, n, h, w], v)
}
