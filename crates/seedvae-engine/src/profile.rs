//! Build profiles (`profiles/*.yaml`): for one GPU, the tile shapes an engine accepts (min / opt /
//! max per part and mode), its precision, target architectures, workspace and VRAM budget, and the
//! blocks FP8 engines keep in FP16. Every field is checked on load, with the file and the field
//! named in the error, and the largest tile is checked against the VRAM budget with the
//! activation estimate below (spec §5).

use crate::build::{check_targets, Range3, ShapeRange, Target};
use crate::Error;
use seedvae_weights::Part;
use std::path::Path;

/// The profile used when none is named: RTX 5070 Ti, 16 GB (Blackwell, sm_120).
pub const DEFAULT_PROFILE: &str = "rtx5070ti";

/// Engine arithmetic. `fp8`: FP8 (E4M3) convolutions and attention projections through Q/DQ on
/// an fp16 graph; `fp16`: the fp16 graph as is; `fp32`: the fp32 graph (a reference, slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnginePrecision {
    Fp8,
    Fp16,
    Fp32,
}

impl EnginePrecision {
    pub fn name(self) -> &'static str {
        match self {
            EnginePrecision::Fp8 => "fp8",
            EnginePrecision::Fp16 => "fp16",
            EnginePrecision::Fp32 => "fp32",
        }
    }

    pub fn parse(s: &str) -> Option<EnginePrecision> {
        [Self::Fp8, Self::Fp16, Self::Fp32]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// The ONNX graph precision an engine of this precision is built from.
    pub fn graph(self) -> seedvae_onnx::Precision {
        match self {
            EnginePrecision::Fp32 => seedvae_onnx::Precision::Fp32,
            _ => seedvae_onnx::Precision::Fp16,
        }
    }
}

/// Shape ranges of one part: one-shot graphs and streaming graphs. Decoder: latent units
/// (T latent frames per call, h, w); encoder: pixels (T frames per call, H, W).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartShapes {
    pub one_shot: ShapeRange,
    pub streaming: ShapeRange,
}

impl PartShapes {
    pub fn get(&self, streaming: bool) -> &ShapeRange {
        if streaming {
            &self.streaming
        } else {
            &self.one_shot
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// The GPU this profile is for, in words.
    pub gpu: String,
    /// The card's memory, GB (10^9 bytes).
    pub vram_gb: f64,
    /// What an engine may use: weights, workspace and activations at the largest tile, GB.
    pub vram_budget_gb: f64,
    pub targets: Vec<Target>,
    pub precision: EnginePrecision,
    /// TensorRT-RTX's memory pool limit (kWORKSPACE), MiB. TensorRT-RTX's compiler counts the
    /// engine's activation memory at the largest tile against it, so it must cover them.
    pub workspace_mib: u64,
    /// Module name prefixes whose convolutions and projections stay FP16 in FP8 engines.
    pub fp16_blocks: Vec<String>,
    pub decoder: PartShapes,
    pub encoder: PartShapes,
}

/// Bytes per activation element inside an engine: fp16 for FP8 and FP16 engines (FP8 engines
/// quantize at each conv's input and keep the tensors between layers in fp16), 4 for fp32.
fn act_bytes(p: EnginePrecision) -> u64 {
    match p {
        EnginePrecision::Fp32 => 4,
        _ => 2,
    }
}
/// Live copies of the largest tensor, ×2 (decoder, encoder): fitted to TensorRT-RTX 1.7's own
/// "Total Activation Memory" for full-size builds (benches/README.md: 4.2–4.3 for the decoder,
/// 4.3–5.1 for the encoder at large tiles), rounded up: 4.5 and 5.5.
fn live_copies_x2(part: Part) -> u64 {
    match part {
        Part::Decoder => 9,
        Part::Encoder => 11,
    }
}

/// Frames the largest layer sees for `t` input frames per call (spec §5, §6, §8): the decoder's
/// full-resolution stages run on 4t−3 frames (first chunk, one-shot) or 4t (later chunks), the
/// encoder's first stage on t; each causal conv adds 2 frames of padding or state.
fn peak_frames(part: Part, streaming: bool, t: usize) -> u64 {
    let t = t as u64;
    match (part, streaming) {
        (Part::Decoder, false) => 4 * t - 3 + 2,
        (Part::Decoder, true) => 4 * t + 2,
        (Part::Encoder, _) => t + 2,
    }
}

/// Estimated activation memory of one call at shape (t, h, w) (decoder: latent units; encoder:
/// pixels). The largest tensors are the decoder's 256-channel up_blocks.2 upsampler conv at 8h×8w
/// and the encoder's 128-channel first block at H×W (spec §5, §6); a fitted number of copies of
/// them are live at once. An estimate for profiles: the builder reports the real number at the
/// largest tile (manifest `device_memory`), and refuses a tile whose activations exceed the
/// workspace limit.
pub fn activation_bytes(
    precision: EnginePrecision,
    part: Part,
    streaming: bool,
    t: usize,
    h: usize,
    w: usize,
) -> u64 {
    live_copies_x2(part) * act_bytes(precision) * largest_tensor_elements(part, streaming, t, h, w)
        / 2
}

/// Elements of the largest activation of one call at shape (t, h, w) (units as for
/// [`activation_bytes`]). cuDNN's convolutions index with 32 bits: a call whose largest tensor
/// reaches 2^31 elements fails (measured on the H200: an illegal memory access at the decoder's
/// `up_blocks.2.upsamplers.0.conv`), so planners keep it below [`MAX_TENSOR_ELEMENTS`].
pub fn largest_tensor_elements(part: Part, streaming: bool, t: usize, h: usize, w: usize) -> u64 {
    let (channels, pixels) = match part {
        Part::Decoder => (256u64, 64 * h as u64 * w as u64),
        Part::Encoder => (128u64, h as u64 * w as u64),
    };
    channels * peak_frames(part, streaming, t) * pixels
}

/// The largest tensor one call may create (cuDNN's 32-bit indexing).
pub const MAX_TENSOR_ELEMENTS: u64 = (1 << 31) - 1;

/// One set of the full-size model's carried causal state for a call on an `h × w` tile (the
/// part's input units), in the engine's state type (fp16 for FP8 and FP16 engines).
pub fn state_bytes(precision: EnginePrecision, part: Part, h: usize, w: usize) -> u64 {
    let states =
        seedvae_onnx::contract::state_specs(&seedvae_weights::schema::Model::default(), part);
    seedvae_onnx::contract::state_set_bytes(&states, h, w, act_bytes(precision) as usize)
}

/// Parameters of the full-size model's parts (spec §1).
fn parameters(part: Part) -> u64 {
    match part {
        Part::Decoder => 150_601_731,
        Part::Encoder => 100_046_496,
    }
}

/// Weight memory of a part's engine: 1 byte per parameter in FP8 (counted at 1.5 to cover the
/// FP16 blocks and scales), 2 in FP16, 4 in FP32.
pub fn weight_bytes(precision: EnginePrecision, part: Part) -> u64 {
    match precision {
        EnginePrecision::Fp8 => parameters(part) * 3 / 2,
        EnginePrecision::Fp16 => parameters(part) * 2,
        EnginePrecision::Fp32 => parameters(part) * 4,
    }
}

/// A profile field that does not hold: its path and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

impl From<&str> for FieldError {
    fn from(s: &str) -> FieldError {
        FieldError(s.to_string())
    }
}

impl Profile {
    pub fn shapes(&self, part: Part) -> &PartShapes {
        match part {
            Part::Decoder => &self.decoder,
            Part::Encoder => &self.encoder,
        }
    }

    pub fn workspace_bytes(&self) -> usize {
        (self.workspace_mib as usize) << 20
    }

    /// Parse and validate YAML; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Profile, Error> {
        let p: Profile = yaml_serde::from_str(text)
            .map_err(|e| Error::Config(format!("profile {origin}: {e}")))?;
        p.validate()
            .map_err(|e| Error::Config(format!("profile {origin}: {e}")))?;
        Ok(p)
    }

    /// Load `arg`: a path to a YAML file, or the name of a shipped profile (`rtx5070ti`).
    pub fn load(arg: &str) -> Result<Profile, Error> {
        let path = Path::new(arg);
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") || path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("profile {}: {e}", path.display())))?;
            return Profile::from_yaml(&text, &path.display().to_string());
        }
        match SHIPPED.iter().find(|(n, _)| *n == arg) {
            Some((n, text)) => Profile::from_yaml(text, &format!("profiles/{n}.yaml (built in)")),
            None => Err(Error::Config(format!(
                "no profile '{arg}': give a .yaml file or one of {}",
                SHIPPED.map(|(n, _)| n).join(", ")
            ))),
        }
    }

    /// Every rule a profile must satisfy; the message names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.name.trim().is_empty() {
            return Err("name is empty".into());
        }
        if !(self.vram_gb > 0.0 && self.vram_budget_gb > 0.0 && self.vram_budget_gb <= self.vram_gb)
        {
            return Err(FieldError(format!(
                "vram_budget_gb {} must be > 0 and at most vram_gb {}",
                self.vram_budget_gb, self.vram_gb
            )));
        }
        let weights = weight_bytes(self.precision, Part::Decoder);
        if self.workspace_mib == 0
            || weights + self.workspace_bytes() as u64 > (self.vram_budget_gb * 1e9) as u64
        {
            return Err(FieldError(format!(
                "workspace_mib {} ({:.2} GB) plus the weights ({:.2} GB) must fit in vram_budget_gb {}",
                self.workspace_mib,
                self.workspace_bytes() as f64 / 1e9,
                weights as f64 / 1e9,
                self.vram_budget_gb
            )));
        }
        check_targets(self.precision == EnginePrecision::Fp8, &self.targets)
            .map_err(|e| FieldError(format!("targets: {e}")))?;
        let names = seedvae_weights::schema::Model::default().all_tensors();
        for b in &self.fp16_blocks {
            if !names.iter().any(|n| n.name.starts_with(b.as_str())) {
                return Err(FieldError(format!(
                    "fp16_blocks: '{b}' is not a prefix of any SeedVR2 VAE module (e.g. decoder.up_blocks.3.)"
                )));
            }
        }
        for part in [Part::Decoder, Part::Encoder] {
            for streaming in [false, true] {
                let field = format!(
                    "{part}.{}",
                    if streaming { "streaming" } else { "one_shot" }
                );
                let r = self.shapes(part).get(streaming);
                check_shape_range(part, streaming, r)
                    .map_err(|e| FieldError(format!("{field}.{e}")))?;
                let need =
                    activation_bytes(self.precision, part, streaming, r.t.max, r.h.max, r.w.max);
                if need > self.workspace_bytes() as u64 {
                    return Err(FieldError(format!(
                        "{field}: the largest tile (t {}, h {}, w {}) needs about {:.1} GB of activations, over \
                         workspace_mib {} ({:.1} GB), which bounds them: lower the max sizes",
                        r.t.max,
                        r.h.max,
                        r.w.max,
                        need as f64 / 1e9,
                        self.workspace_mib,
                        self.workspace_bytes() as f64 / 1e9
                    )));
                }
                // A streaming call also holds the state set it reads and the one it writes
                // (engine I/O, outside the workspace; review A2).
                let states = if streaming {
                    2 * state_bytes(self.precision, part, r.h.max, r.w.max)
                } else {
                    0
                };
                let total = weight_bytes(self.precision, part) + need + states;
                if total > (self.vram_budget_gb * 1e9) as u64 {
                    return Err(FieldError(format!(
                        "{field}: the largest tile (t {}, h {}, w {}) needs about {:.1} GB: {:.1} GB \
                         of activations, {:.1} GB of carried state (the set a call reads and the \
                         one it writes) and the weights, over vram_budget_gb {}: lower the max sizes",
                        r.t.max,
                        r.h.max,
                        r.w.max,
                        total as f64 / 1e9,
                        need as f64 / 1e9,
                        states as f64 / 1e9,
                        self.vram_budget_gb
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check_range(axis: &str, r: &Range3, least: usize, what: &str) -> Result<(), FieldError> {
    if r.min > r.opt || r.opt > r.max {
        return Err(FieldError(format!(
            "{axis}: min {} ≤ opt {} ≤ max {} does not hold",
            r.min, r.opt, r.max
        )));
    }
    if r.min < least {
        return Err(FieldError(format!(
            "{axis}: min {} is below {least}, the least the graph allows ({what})",
            r.min
        )));
    }
    Ok(())
}

/// What the exported graphs allow: at least one frame and one latent pixel; the encoder needs 8
/// pixels per side (three stride-2 downsamplers), and a streaming encoder range must admit a
/// first chunk (4k+1 frames) and a continuation chunk (4k frames, spec §8).
pub fn check_shape_range(part: Part, streaming: bool, r: &ShapeRange) -> Result<(), FieldError> {
    check_range("t", &r.t, 1, "one frame")?;
    let (least, what) = match part {
        Part::Decoder => (1, "one latent pixel"),
        Part::Encoder => (8, "the encoder downsamples 8× in space"),
    };
    check_range("h", &r.h, least, what)?;
    check_range("w", &r.w, least, what)?;
    if part == Part::Encoder && streaming {
        let has = |m: usize| (r.t.min..=r.t.max).any(|t| t % 4 == m);
        if !has(1) || !has(0) || r.t.min == 0 {
            return Err(FieldError(format!(
                "t: {}..{} must include a first chunk of 4k+1 frames and a continuation of 4k frames (e.g. min 4, max 5)",
                r.t.min, r.t.max
            )));
        }
    }
    Ok(())
}

/// The profiles shipped in `profiles/`, compiled in so that a bare binary has them.
pub const SHIPPED: [(&str, &str); 4] = [
    (
        "rtx5070ti",
        include_str!("../../../profiles/rtx5070ti.yaml"),
    ),
    ("rtx5090", include_str!("../../../profiles/rtx5090.yaml")),
    ("rtx4090", include_str!("../../../profiles/rtx4090.yaml")),
    ("rtx4070", include_str!("../../../profiles/rtx4070.yaml")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_are_valid_and_named_like_their_files() {
        for (n, _) in SHIPPED {
            let p = Profile::load(n).unwrap();
            assert_eq!(p.name, n);
        }
        let d = Profile::load(DEFAULT_PROFILE).unwrap();
        assert_eq!(d.targets, vec![Target::Sm120]);
        assert_eq!(d.precision, EnginePrecision::Fp8);
        // The shipped profiles keep what the quantization pass keeps by default.
        for (n, _) in SHIPPED {
            assert_eq!(
                Profile::load(n).unwrap().fp16_blocks,
                seedvae_onnx::quantize::DEFAULT_KEEP,
                "{n}"
            );
        }
    }

    fn edited(from: &str, to: &str) -> String {
        let text = SHIPPED[0].1;
        assert!(text.contains(from), "{from}");
        Profile::from_yaml(&text.replacen(from, to, 1), "x.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_profiles_are_refused_with_the_field_named() {
        let e = edited("targets: [sm_120]", "targets: [sm_86]");
        assert!(
            e.contains("x.yaml") && e.contains("sm_86") && e.contains("fp16"),
            "{e}"
        );
        let e = edited("targets: [sm_120]", "targets: [sm_99]");
        assert!(e.contains("sm_99"), "{e}");
        let e = edited("precision: fp8", "precision: int4");
        assert!(e.contains("int4"), "{e}");
        let e = edited("\nworkspace_mib:", "\nworkspace_mb:");
        assert!(e.contains("workspace_mb"), "{e}");
        let e = edited("- decoder.up_blocks.3.", "- decoder.up_block.3.");
        assert!(e.contains("fp16_blocks") && e.contains("up_block.3"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        let r = |min, opt, max| Range3 { min, opt, max };
        let ok = ShapeRange {
            t: r(1, 1, 2),
            h: r(8, 16, 32),
            w: r(8, 16, 32),
        };
        check_shape_range(Part::Decoder, true, &ok).unwrap();
        let e = check_shape_range(
            Part::Decoder,
            false,
            &ShapeRange {
                h: r(40, 16, 32),
                ..ok
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("h: min 40"), "{e}");
        let e = check_shape_range(
            Part::Encoder,
            false,
            &ShapeRange {
                h: r(4, 16, 32),
                ..ok
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("below 8"), "{e}");
        let e = check_shape_range(
            Part::Encoder,
            true,
            &ShapeRange {
                t: r(4, 4, 4),
                ..ok
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("4k+1"), "{e}");
    }

    #[test]
    fn a_tile_over_the_budget_is_refused() {
        let p = Profile::load(DEFAULT_PROFILE).unwrap();
        let mut big = p.clone();
        big.decoder.streaming.h.max = 512;
        big.decoder.streaming.w.max = 512;
        let e = big.validate().unwrap_err().to_string();
        assert!(
            e.contains("decoder.streaming") && e.contains("workspace_mib"),
            "{e}"
        );
        // Within the workspace, but not with the two carried state sets: the old 896 px
        // streaming tile (13.9 GB of state on a 13 GB budget).
        let mut big = p.clone();
        big.decoder.streaming.h.max = 112;
        big.decoder.streaming.w.max = 112;
        let e = big.validate().unwrap_err().to_string();
        assert!(e.contains("carried state") && e.contains("13.9 GB"), "{e}");
        let mut big = p.clone();
        big.workspace_mib = 20_000;
        let e = big.validate().unwrap_err().to_string();
        assert!(e.contains("vram_budget_gb"), "{e}");
    }

    #[test]
    fn print_shipped_estimates() {
        // For the derivation comments in profiles/*.yaml (cargo test -- --nocapture).
        for (n, _) in SHIPPED {
            let p = Profile::load(n).unwrap();
            for part in [Part::Decoder, Part::Encoder] {
                for s in [false, true] {
                    let r = p.shapes(part).get(s);
                    let a = activation_bytes(p.precision, part, s, r.t.max, r.h.max, r.w.max);
                    eprintln!(
                        "{n} {part} streaming={s}: activations {:.2} GB of workspace {:.2} GB",
                        a as f64 / 1e9,
                        p.workspace_bytes() as f64 / 1e9
                    );
                }
            }
        }
    }

    #[test]
    fn activation_estimate_follows_the_spec_sizes() {
        // 1088×1920 output, 5 frames one-shot (t = 2): 256·(5+2)·1088·1920 elements × 2 B × 4.5.
        let b = activation_bytes(EnginePrecision::Fp16, Part::Decoder, false, 2, 136, 240);
        assert_eq!(b, 9 * 256 * 7 * 1088 * 1920);
    }
}
