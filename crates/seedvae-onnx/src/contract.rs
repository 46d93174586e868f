//! The graph I/O contract that the engine builder and the runner depend on. It is written into
//! every exported model's `metadata_props` (`seedvae.contract`, JSON) and read back from there.
//!
//! | part | inputs | outputs |
//! |---|---|---|
//! | decoder | `latent` f32 `[1,16,T,h,w]` (VAE space) | `video` f32 `[1,3,F,8h,8w]`, F = 4T−3 (first chunk) or 4T |
//! | encoder | `video` f32 `[1,3,T,H,W]` in [−1,1] | `latent_mean`, `latent_logvar` f32 `[1,16,T',H/8,W/8]` |
//!
//! Streaming graphs add, after the main input, `continuation` (f32 `[n]`, only its length is
//! read: n = 1 on the first chunk, 2 on every later one), then one input `state_in.<conv>` per
//! causal conv (forward order; 33 decoder, 24 encoder) and, after the outputs, the matching
//! `state_out.<conv>`, of the activation type (f32 or f16), shape `[1, C, frames, H·2^k, W·2^k]`
//! (k = `scale_log2`, negative: floor division; `frames` = 2, or 1 for the encoder's two strided
//! downsamplers). On the first chunk the state inputs are ignored (pass zeros); afterwards pass the
//! previous chunk's state outputs. Chunks: decoder any T ≥ 1; encoder first chunk 4n+1 frames,
//! later chunks 4n.

use crate::graph::{Dim, Elem};
use seedvae_weights::Part;

pub const LATENT: &str = "latent";
pub const VIDEO: &str = "video";
pub const LATENT_MEAN: &str = "latent_mean";
pub const LATENT_LOGVAR: &str = "latent_logvar";
pub const CONTINUATION: &str = "continuation";
pub const METADATA_KEY: &str = "seedvae.contract";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
}

impl Precision {
    pub fn act(self) -> Elem {
        match self {
            Precision::Fp32 => Elem::F32,
            Precision::Fp16 => Elem::F16,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TensorIo {
    pub name: String,
    pub elem: Elem,
    pub dims: Vec<Dim>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateSpec {
    /// The causal conv's checkpoint module name.
    pub conv: String,
    pub input: String,
    pub output: String,
    pub channels: usize,
    /// Frames kept between chunks (kT − sT).
    pub frames: usize,
    /// Spatial size relative to the part's input: ×2^k (k > 0) or ⌊/2^−k⌋ (k < 0).
    pub scale_log2: i32,
}

/// The carried states a streaming export of `model`'s `part` has, in order, from the schema
/// alone (no weights): every causal conv with kT = 3 keeps kT − sT frames of its input at the
/// scale it runs at — after an upsampler's pixel shuffle (×2), before a downsampler's stride
/// (÷2 after it). Profiles size memory with it; tests hold it equal to exported contracts.
pub fn state_specs(model: &seedvae_weights::schema::Model, part: Part) -> Vec<StateSpec> {
    use seedvae_weights::schema::Block;
    let mut scale = 0i32;
    let mut out = Vec::new();
    for block in model.blocks(part) {
        if matches!(block, Block::Upsample { .. }) {
            scale += 1;
        }
        for (conv, stride) in block.convs() {
            if conv.kt == 3 {
                out.push(StateSpec {
                    input: format!("state_in.{}", conv.name),
                    output: format!("state_out.{}", conv.name),
                    conv: conv.name,
                    channels: conv.cin,
                    frames: 3 - stride,
                    scale_log2: scale,
                });
            }
        }
        if matches!(block, Block::Downsample { .. }) {
            scale -= 1;
        }
    }
    out
}

/// Bytes of one set of `states` for a part input of `h × w`, at `elem_size` bytes per value.
pub fn state_set_bytes(states: &[StateSpec], h: usize, w: usize, elem_size: usize) -> u64 {
    states
        .iter()
        .map(|s| (s.shape(h, w).iter().product::<usize>() * elem_size) as u64)
        .sum()
}

impl StateSpec {
    /// This state's tensor shape `[1, channels, frames, h', w']` for a part input of `h × w`.
    pub fn shape(&self, h: usize, w: usize) -> [usize; 5] {
        let (sh, sw) = self.spatial(h, w);
        [1, self.channels, self.frames, sh, sw]
    }

    /// Spatial size of this state for a part input of `h × w`.
    pub fn spatial(&self, h: usize, w: usize) -> (usize, usize) {
        if self.scale_log2 >= 0 {
            (h << self.scale_log2, w << self.scale_log2)
        } else {
            (h >> -self.scale_log2, w >> -self.scale_log2)
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contract {
    pub part: Part,
    pub precision: Precision,
    pub streaming: bool,
    pub widths: [usize; 4],
    pub inputs: Vec<TensorIo>,
    pub outputs: Vec<TensorIo>,
    /// The shape-only chunk marker input of streaming graphs.
    pub continuation: Option<String>,
    pub states: Vec<StateSpec>,
}

impl Contract {
    pub fn state_elem(&self) -> Elem {
        self.precision.act()
    }
}
