//! Random-weight checkpoints with the exact names and shapes of the schema, for demos, tests and
//! benches. Initialization follows the test fixture's recipe (spec §12): ≥2-D weights
//! N(0,1)/√fan_in, GroupNorm weights 1+0.2·N, their biases 0.1·N, other biases 0.05·N.

use crate::dtype::DType;
use crate::error::Result;
use crate::gguf;
use crate::quant::GgmlType;
use crate::safetensors::{self, WriteTensor};
use crate::schema::{Model, TensorSpec};
use half::f16;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthFormat {
    SafeTensors,
    Gguf,
}

#[derive(Debug, Clone, Copy)]
pub struct SynthOptions {
    pub model: Model,
    pub dtype: DType,
    pub seed: u64,
    pub format: SynthFormat,
}

/// Deterministic generator: splitmix64 stream + Box-Muller normals.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5EED_7A3E_0000_0001)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// Fill with standard normal samples.
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let (u1, u2) = (self.uniform(), self.uniform());
            let r = (-2.0 * u1.ln()).sqrt();
            let t = std::f64::consts::TAU * u2;
            pair[0] = (r * t.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * t.sin()) as f32;
            }
        }
    }
}

/// The values of one tensor under the fixture's initialization recipe.
pub fn init_tensor(spec: &TensorSpec, rng: &mut Rng) -> Vec<f32> {
    let n: usize = spec.shape.iter().product();
    let mut v = vec![0f32; n];
    rng.fill_normal(&mut v);
    let is_norm = spec.name.contains("norm");
    let (scale, shift) = if spec.shape.len() >= 2 {
        let fan_in: usize = spec.shape[1..].iter().product();
        (1.0 / (fan_in as f32).sqrt(), 0.0)
    } else if is_norm && spec.name.ends_with(".weight") {
        (0.2, 1.0)
    } else if is_norm {
        (0.1, 0.0)
    } else {
        (0.05, 0.0)
    };
    v.iter_mut().for_each(|x| *x = *x * scale + shift);
    v
}

fn encode(dtype: DType, v: &[f32]) -> Vec<u8> {
    match dtype {
        DType::F32 => bytemuck::cast_slice(v).to_vec(),
        DType::F16 => v
            .iter()
            .flat_map(|x| f16::from_f32(*x).to_le_bytes())
            .collect(),
        DType::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        DType::F64 => v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect(),
    }
}

/// The metadata of synthesized SafeTensors files (the same as the project's reference replica,
/// so a full fp16 file is byte-for-byte the documented 501,324,894 bytes long).
pub fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "note".to_string(),
            "random weights, SeedVR2 VAE naming".to_string(),
        ),
    ])
}

/// Generate every tensor of `opts.model` and write the checkpoint atomically to `out`.
/// `progress(done, total)` is called after each tensor.
pub fn synth(
    out: &Path,
    opts: &SynthOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<()> {
    let specs = opts.model.all_tensors();
    let mut rng = Rng::new(opts.seed);
    let mut data = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        data.push(encode(opts.dtype, &init_tensor(s, &mut rng)));
        progress(i + 1, specs.len());
    }
    crate::output::write_atomic(out, |w| match opts.format {
        SynthFormat::SafeTensors => {
            let ts: Vec<WriteTensor> = specs
                .iter()
                .zip(&data)
                .map(|(s, d)| WriteTensor {
                    name: &s.name,
                    dtype: opts.dtype,
                    shape: &s.shape,
                    data: d,
                })
                .collect();
            safetensors::write(w, &metadata(), &ts)
        }
        SynthFormat::Gguf => {
            let ty = match opts.dtype {
                DType::F16 => GgmlType::F16,
                DType::BF16 => GgmlType::BF16,
                _ => GgmlType::F32,
            };
            let mut g = gguf::Writer::new();
            g.metadata.push((
                "general.name".into(),
                gguf::Value::String("SeedVR2 VAE (random weights)".into()),
            ));
            for (s, d) in specs.iter().zip(data) {
                // f64 is not a GGUF weight type: store as F32.
                let d = if opts.dtype == DType::F64 {
                    encode(DType::F32, &crate::dtype::to_f32(DType::F64, &d))
                } else {
                    d
                };
                g.add(&s.name, &s.shape, ty, d);
            }
            g.write(w)
        }
    })
}
