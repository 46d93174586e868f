//! The memory plan every GPU backend sizes its calls with: bytes of tensors, carried state and a
//! call's I/O from the contract, and per backend what one call on an `e × e` tile needs —
//! [`GraphMemory`] for ONNX Runtime's CUDA provider, [`call_bytes`] for a TensorRT-RTX engine
//! (from its manifest, or from the execution context's own numbers) — searched for the largest
//! tile that fits a budget.

use crate::planner::Limits;
use crate::Error;
use seedvae_engine::cache::Manifest;
use seedvae_onnx::Elem;
use seedvae_weights::Part;

/// The largest edge in `lo..=hi` for which `fits` holds, `fits` being true up to some edge and
/// false beyond (memory grows with the tile); `lo` when none above it fits.
pub fn largest_fitting(mut lo: usize, mut hi: usize, mut fits: impl FnMut(usize) -> bool) -> usize {
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// One set of a streaming graph's carried state for an `h × w` tile (input units), bytes: exact,
/// from the contract (0 for a one-shot graph).
pub fn state_bytes(c: &seedvae_onnx::Contract, h: usize, w: usize) -> u64 {
    seedvae_onnx::contract::state_set_bytes(&c.states, h, w, c.state_elem().size())
}

/// A call's I/O on the device, bytes: its f32 input and output (the decoder's 3 × 4t × 8h × 8w
/// frames dominate; the encoder's video in).
pub fn io_bytes(part: Part, t: usize, h: usize, w: usize) -> u64 {
    (match part {
        Part::Decoder => 4 * (16 * t * h * w + 3 * 4 * t * 64 * h * w),
        Part::Encoder => 4 * (3 * t * h * w + 16 * t.div_ceil(4) * (h / 8) * (w / 8)),
    }) as u64
}

/// The GPU memory of a graph backend (ONNX Runtime's CUDA provider) per call, to size tiles
/// within a budget: weights and the runtime's fixed cost, **two** sets of carried state (the set
/// a call reads and the set it writes; exact, from the contract), activations (the engine
/// estimate of `seedvae_engine::profile` × [`GraphMemory::ACTIVATION_FACTOR`], fitted on the
/// H200, see benches/README.md) and the call's I/O; and no tensor over 2^31 elements.
#[derive(Debug, Clone)]
pub struct GraphMemory {
    pub contract: seedvae_onnx::Contract,
    /// What the plan may use, bytes.
    pub budget: u64,
    /// Weights (the graph file's size) plus the CUDA context, library handles and arena slack.
    pub fixed: u64,
}

impl GraphMemory {
    /// ONNX Runtime's activations relative to the engine estimate, fitted on the H200
    /// (benches/README.md): the fp16 decoder streaming 720p untiled peaked at 80.7 GB, of which
    /// 63.5 GB activations = 5.0× the estimate (its arena keeps every intermediate of a call).
    pub const ACTIVATION_FACTOR: f64 = 5.0;
    /// The CUDA context, cuDNN/cuBLAS handles and workspaces, arena rounding.
    pub const OVERHEAD: u64 = 1 << 30;

    pub fn new(contract: &seedvae_onnx::Contract, graph_bytes: u64, budget: u64) -> GraphMemory {
        GraphMemory {
            contract: contract.clone(),
            budget,
            fixed: graph_bytes + Self::OVERHEAD,
        }
    }

    /// One set of carried state for an `h × w` tile (input units), bytes.
    pub fn state_bytes(&self, h: usize, w: usize) -> u64 {
        state_bytes(&self.contract, h, w)
    }

    /// Device bytes of one call of `t` input frames on an `h × w` tile.
    pub fn call_bytes(&self, t: usize, h: usize, w: usize) -> u64 {
        let c = &self.contract;
        let precision = match c.precision {
            seedvae_onnx::Precision::Fp32 => seedvae_engine::EnginePrecision::Fp32,
            _ => seedvae_engine::EnginePrecision::Fp16,
        };
        let act = seedvae_engine::profile::activation_bytes(precision, c.part, c.streaming, t, h, w)
            as f64
            * Self::ACTIVATION_FACTOR;
        let io = io_bytes(c.part, t, h, w);
        let states = if c.streaming {
            2 * self.state_bytes(h, w)
        } else {
            0
        };
        self.fixed + states + act as u64 + io
    }

    /// The device bytes a run whose calls take `t` frames of `h × w` (input units) needs: one call
    /// on the tile the plan will use (the frame, or tiles up to [`GraphMemory::cap`]); None when
    /// no tile fits the budget.
    pub fn need(&self, t: usize, h: usize, w: usize) -> Option<u64> {
        let cap = self.cap(t);
        (cap > 0).then(|| self.call_bytes(t, h.min(cap), w.min(cap)))
    }

    /// The largest square tile edge (input units) whose calls of `t` frames fit the budget and
    /// stay under 2^31 elements per tensor; 0 when none does.
    pub fn cap(&self, t: usize) -> usize {
        let c = &self.contract;
        let fits = |e: usize| {
            self.call_bytes(t, e, e) <= self.budget
                && seedvae_engine::profile::largest_tensor_elements(c.part, c.streaming, t, e, e)
                    <= seedvae_engine::profile::MAX_TENSOR_ELEMENTS
        };
        largest_fitting(0, 1 << 16, fits)
    }
}

/// Bytes of a tensor of `shape` and element type.
pub fn tensor_bytes(shape: &[usize], elem: Elem) -> usize {
    shape.iter().product::<usize>() * elem.size()
}

/// Device bytes of one call on an `e × e` tile (input units) at the profile's longest call:
/// weights; activations from the builder's report at the profile's largest tile, scaled with the
/// tile's area; for a streaming engine two sets of carried state (exact, from the contract: the
/// set a call reads and the set it writes, both bound by address; review A2); the call's I/O;
/// and 5% on top for what TensorRT-RTX may allocate itself (review B4).
pub fn call_bytes(m: &Manifest, lim: &Limits, e: usize) -> Option<u64> {
    let dm = m.info.device_memory.as_ref()?;
    let max_edge = lim.h.1.min(lim.w.1).max(1) as f64;
    let act = dm.activation_bytes as f64 * (e as f64 / max_edge).powi(2);
    Some(call_bytes_with(m, lim, e, act as u64))
}

/// [`call_bytes`] with the activation bytes `act` of that call given (e.g. asked of the
/// execution context at that shape).
pub fn call_bytes_with(m: &Manifest, lim: &Limits, e: usize, act: u64) -> u64 {
    let c = &m.info.contract;
    let weights = m.info.device_memory.as_ref().map_or(0, |d| d.weight_bytes);
    let states = 2 * state_bytes(c, e, e);
    let io = io_bytes(c.part, lim.t.1, e, e);
    weights + ((act + states + io) as f64 * 1.05) as u64
}

/// The largest square tile edge (the part's input units: latent pixels or video pixels) whose
/// call fits `budget` ([`call_bytes`]). None when the profile's largest tile fits or the
/// builder's report is missing.
pub fn engine_memory_cap(m: &Manifest, lim: &Limits, budget: u64) -> Result<Option<usize>, Error> {
    largest_edge(lim, budget, |e| call_bytes(m, lim, e)).unwrap_or(Ok(None))
}

/// [`engine_memory_cap`] from the execution context's own activation numbers at candidate tiles
/// (`activation_at(e)`, e.g. TensorRT-RTX's `updateDeviceMemorySizeForShapes`); the builder's
/// report scaled by area where the context cannot say (logged).
pub fn measured_engine_memory_cap(
    m: &Manifest,
    lim: &Limits,
    budget: u64,
    mut activation_at: impl FnMut(usize) -> Result<u64, Error>,
) -> Result<Option<usize>, Error> {
    let asked = |e: usize| match activation_at(e) {
        Ok(act) => Some(call_bytes_with(m, lim, e, act)),
        Err(err) => {
            tracing::info!(
                "TensorRT-RTX could not size a {e}×{e} tile ({err}); using the builder's report"
            );
            None
        }
    };
    largest_edge(lim, budget, asked).unwrap_or_else(|| engine_memory_cap(m, lim, budget))
}

/// The largest square edge within `lim` whose call `bytes(e)` fits `budget`: Ok(None) when the
/// largest fits, an error when not even the smallest does; None when `bytes` cannot say at
/// either end (a failure mid-search counts as not fitting).
fn largest_edge(
    lim: &Limits,
    budget: u64,
    mut bytes: impl FnMut(usize) -> Option<u64>,
) -> Option<Result<Option<usize>, Error>> {
    let max_edge = lim.h.1.min(lim.w.1);
    let min_edge = lim.h.0.max(lim.w.0).max(1);
    if bytes(max_edge)? <= budget {
        return Some(Ok(None));
    }
    let least = bytes(min_edge)?;
    if least > budget {
        return Some(Err(Error::Backend(format!(
            "the engine needs {:.2} GB at its smallest tile (weights, activations, carried \
             state), more than the {:.2} GB budget (`vram_budget_gb`)",
            least as f64 / 1e9,
            budget as f64 / 1e9
        ))));
    }
    Some(Ok(Some(largest_fitting(min_edge, max_edge, |e| {
        bytes(e).is_some_and(|b| b <= budget)
    }))))
}

#[cfg(test)]
mod tests {
    use super::GraphMemory;
    use seedvae_weights::{Model, Part};

    /// What a run needs on a graph backend: one call on the whole frame when it fits, else on
    /// the largest tile that does (within the budget); nothing when no tile fits.
    #[test]
    fn a_graph_run_needs_one_call_on_the_tile_it_will_use() {
        let contract = crate::backend::native::contract_of(&Model::default(), Part::Decoder);
        let m = GraphMemory::new(&contract, 500 << 20, 16_000_000_000);
        let cap = m.cap(1);
        assert!(cap > 8 && cap < 1000, "{cap}");
        assert_eq!(m.need(1, 8, 8), Some(m.call_bytes(1, 8, 8)));
        let big = m.need(1, 4 * cap, 4 * cap).unwrap();
        assert_eq!(big, m.call_bytes(1, cap, cap));
        assert!(big <= m.budget && m.need(1, 8, 8).unwrap() < big);
        assert_eq!(
            GraphMemory::new(&contract, 500 << 20, 1 << 20).need(1, 8, 8),
            None
        );
    }
}
