//! Temporal streaming: run a streaming graph chunk after chunk, feeding each chunk the state
//! outputs of the previous one (spec §8). The first chunk is marked by a length-1
//! `continuation` input (its zero states are ignored by the graph, which replicates frame 0 as
//! one-shot does); the result equals one-shot decoding up to floating-point rounding.

use crate::backend::Backend;
use crate::tensor::Tensor;
use crate::Error;
use seedvae_onnx::Contract;
use std::collections::HashMap;

/// The carried state of one stream (one spatial tile of a clip). It does not hold the backend,
/// so one backend can serve the streams of several tiles in turn.
pub struct Streamer {
    contract: Contract,
    states: Option<Vec<Tensor>>,
}

impl Streamer {
    pub fn new(contract: &Contract) -> Result<Self, Error> {
        if !contract.streaming {
            return Err(Error::Input(
                "this model is not a streaming graph; export it with `seedvae convert --streaming`"
                    .into(),
            ));
        }
        Ok(Streamer {
            contract: contract.clone(),
            states: None,
        })
    }

    /// Feed the next chunk (`[1, C, T, H, W]` under the contract's first input name); returns the
    /// public outputs of this chunk.
    pub fn step(
        &mut self,
        backend: &mut dyn Backend,
        input: &Tensor,
    ) -> Result<HashMap<String, Tensor>, Error> {
        let c = &self.contract;
        let first_in = &c.inputs[0];
        if input.shape.len() != 5 {
            return Err(Error::Input(format!(
                "'{}' must be 5-D [1, C, T, H, W], got {:?}",
                first_in.name, input.shape
            )));
        }
        let (h, w) = (input.shape[3], input.shape[4]);
        let first = self.states.is_none();
        let states = match self.states.take() {
            Some(s) => s,
            None => c
                .states
                .iter()
                .map(|s| {
                    let (sh, sw) = s.spatial(h, w);
                    Tensor::zeros(vec![1, s.channels, s.frames, sh, sw], c.state_elem())
                })
                .collect(),
        };
        let marker = Tensor::f32(
            vec![if first { 1 } else { 2 }],
            vec![0.0; if first { 1 } else { 2 }],
        );
        let mut inputs: Vec<(&str, &Tensor)> = vec![(first_in.name.as_str(), input)];
        if let Some(name) = &c.continuation {
            inputs.push((name.as_str(), &marker));
        }
        for (s, t) in c.states.iter().zip(&states) {
            inputs.push((s.input.as_str(), t));
        }
        let mut out = backend.run(&inputs)?;
        let mut next = Vec::with_capacity(c.states.len());
        for s in &c.states {
            next.push(
                out.remove(&s.output)
                    .ok_or_else(|| Error::Backend(format!("backend returned no '{}'", s.output)))?,
            );
        }
        self.states = Some(next);
        Ok(out)
    }

    /// Bytes held in carried state (what bounds memory between chunks).
    pub fn state_bytes(&self) -> usize {
        self.states
            .as_ref()
            .map_or(0, |s| s.iter().map(Tensor::nbytes).sum())
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
