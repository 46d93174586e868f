//! The hardcoded SeedVR2 VAE (spec §2-§6): topology, the tensors each block owns, and validation
//! of a loaded file against it. Nothing here is read from a config file; only the four block
//! widths may be inferred from the file (so the reduced-width test fixture loads), and shortcut
//! presence follows from in ≠ out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub const FULL_WIDTHS: [usize; 4] = [128, 256, 512, 512];
/// Block widths of the reduced "tiny" model (the test fixtures and the demo): 246 tensors,
/// 4.2 M parameters.
pub const TINY_WIDTHS: [usize; 4] = [32, 32, 64, 64];
pub const LATENT_CHANNELS: usize = 16;
pub const RGB_CHANNELS: usize = 3;
pub const NORM_GROUPS: usize = 32;
pub const NORM_EPS: f32 = 1e-6;
/// Latent ↔ DiT scaling of the SeedVR2 pipelines (not diffusers' 0.18215).
pub const DIT_SCALING: f32 = 0.9152;
/// Decoder blocks with index < this are temporal upsamplers; encoder has this many temporal downsamplers.
pub const TEMPORAL_STAGES: usize = 2;
pub const ENCODER_LAYERS: usize = 2;
pub const DECODER_LAYERS: usize = 3;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Encoder,
    Decoder,
}

impl Part {
    pub fn prefix(self) -> &'static str {
        match self {
            Part::Encoder => "encoder",
            Part::Decoder => "decoder",
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A causal 3-D convolution (spec §4.1): kernel `[kt, 3|1, 3|1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub name: String,
    pub cin: usize,
    pub cout: usize,
    pub kt: usize,
    pub ks: usize,
}

impl Conv {
    fn new(name: String, cin: usize, cout: usize, kt: usize, ks: usize) -> Self {
        Conv {
            name,
            cin,
            cout,
            kt,
            ks,
        }
    }
    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.cout, self.cin, self.kt, self.ks, self.ks]
    }
}

/// One block of the forward pass, in the order the spec's tables list them.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// `conv_in` / `conv_out`: causal 3×3×3.
    Conv(Conv),
    /// ResnetBlock3D (§4.3); shortcut 1×1×1 conv iff cin ≠ cout.
    Resnet {
        prefix: String,
        cin: usize,
        cout: usize,
    },
    /// Mid-block single-head attention (§4.4).
    Attention { prefix: String, ch: usize },
    /// Upsample3D (§4.5): `upscale_conv` 1×1×1 ch → ch·r, shuffle, (drop frame 1), causal conv.
    Upsample {
        prefix: String,
        ch: usize,
        temporal: bool,
    },
    /// Downsample3D (§4.6): right/bottom zero pad, causal conv stride (2 if temporal, 1) × 2 × 2.
    Downsample {
        prefix: String,
        ch: usize,
        temporal: bool,
    },
    /// `conv_norm_out` GroupNorm + SiLU.
    NormSilu { name: String, ch: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

fn push(out: &mut Vec<TensorSpec>, name: &str, shape: Vec<usize>) {
    out.push(TensorSpec {
        name: name.to_string(),
        shape,
    });
}

fn conv_tensors(out: &mut Vec<TensorSpec>, c: &Conv) {
    push(out, &format!("{}.weight", c.name), c.weight_shape());
    push(out, &format!("{}.bias", c.name), vec![c.cout]);
}

fn norm_tensors(out: &mut Vec<TensorSpec>, name: &str, ch: usize) {
    push(out, &format!("{name}.weight"), vec![ch]);
    push(out, &format!("{name}.bias"), vec![ch]);
}

impl Block {
    /// The convs of this block that see time with kT = 3 (these carry causal state, §8),
    /// in forward order, with their temporal stride.
    pub fn convs(&self) -> Vec<(Conv, usize)> {
        match self {
            Block::Conv(c) => vec![(c.clone(), 1)],
            Block::Resnet { prefix, cin, cout } => vec![
                (Conv::new(format!("{prefix}.conv1"), *cin, *cout, 3, 3), 1),
                (Conv::new(format!("{prefix}.conv2"), *cout, *cout, 3, 3), 1),
            ],
            Block::Upsample { prefix, ch, .. } => {
                vec![(Conv::new(format!("{prefix}.conv"), *ch, *ch, 3, 3), 1)]
            }
            Block::Downsample {
                prefix,
                ch,
                temporal,
            } => vec![(
                Conv::new(
                    format!("{prefix}.conv"),
                    *ch,
                    *ch,
                    if *temporal { 3 } else { 1 },
                    3,
                ),
                if *temporal { 2 } else { 1 },
            )],
            Block::Attention { .. } | Block::NormSilu { .. } => vec![],
        }
    }

    /// The tensors this block owns, in checkpoint order.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        match self {
            Block::Conv(c) => conv_tensors(&mut out, c),
            Block::Resnet { prefix, cin, cout } => {
                norm_tensors(&mut out, &format!("{prefix}.norm1"), *cin);
                conv_tensors(
                    &mut out,
                    &Conv::new(format!("{prefix}.conv1"), *cin, *cout, 3, 3),
                );
                norm_tensors(&mut out, &format!("{prefix}.norm2"), *cout);
                conv_tensors(
                    &mut out,
                    &Conv::new(format!("{prefix}.conv2"), *cout, *cout, 3, 3),
                );
                if cin != cout {
                    conv_tensors(
                        &mut out,
                        &Conv::new(format!("{prefix}.conv_shortcut"), *cin, *cout, 1, 1),
                    );
                }
            }
            Block::Attention { prefix, ch } => {
                norm_tensors(&mut out, &format!("{prefix}.group_norm"), *ch);
                for p in ["to_q", "to_k", "to_v", "to_out.0"] {
                    push(&mut out, &format!("{prefix}.{p}.weight"), vec![*ch, *ch]);
                    push(&mut out, &format!("{prefix}.{p}.bias"), vec![*ch]);
                }
            }
            Block::Upsample {
                prefix,
                ch,
                temporal,
            } => {
                conv_tensors(
                    &mut out,
                    &Conv::new(format!("{prefix}.conv"), *ch, *ch, 3, 3),
                );
                let r = if *temporal { 8 } else { 4 };
                conv_tensors(
                    &mut out,
                    &Conv::new(format!("{prefix}.upscale_conv"), *ch, ch * r, 1, 1),
                );
            }
            Block::Downsample { .. } => {
                for (c, _) in self.convs() {
                    conv_tensors(&mut out, &c);
                }
            }
            Block::NormSilu { name, ch } => norm_tensors(&mut out, name, *ch),
        }
        out
    }

    /// Checkpoint module path that orders this block (the mid block lists attention first).
    fn checkpoint_rank(&self) -> u8 {
        match self {
            Block::Conv(c) if c.name.ends_with("conv_in") => 0,
            Block::Resnet { prefix, .. } if !prefix.contains("mid_block") => 1,
            Block::Upsample { .. } | Block::Downsample { .. } => 1,
            Block::Attention { .. } => 2,
            Block::Resnet { .. } => 3,
            Block::NormSilu { .. } => 4,
            Block::Conv(_) => 5,
        }
    }
}

/// The model, parameterized only by its four block widths (`block_out_channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Model {
    pub widths: [usize; 4],
}

impl Default for Model {
    fn default() -> Self {
        Model {
            widths: FULL_WIDTHS,
        }
    }
}

impl Model {
    pub fn is_full(&self) -> bool {
        self.widths == FULL_WIDTHS
    }

    fn mid(p: &str, ch: usize) -> [Block; 3] {
        [
            Block::Resnet {
                prefix: format!("{p}.mid_block.resnets.0"),
                cin: ch,
                cout: ch,
            },
            Block::Attention {
                prefix: format!("{p}.mid_block.attentions.0"),
                ch,
            },
            Block::Resnet {
                prefix: format!("{p}.mid_block.resnets.1"),
                cin: ch,
                cout: ch,
            },
        ]
    }

    /// Encoder blocks in forward order (spec §6).
    pub fn encoder(&self) -> Vec<Block> {
        let w = self.widths;
        let n = w.len();
        let mut b = vec![Block::Conv(Conv::new(
            "encoder.conv_in".into(),
            RGB_CHANNELS,
            w[0],
            3,
            3,
        ))];
        let mut cin = w[0];
        for (i, &cout) in w.iter().enumerate() {
            for j in 0..ENCODER_LAYERS {
                let prefix = format!("encoder.down_blocks.{i}.resnets.{j}");
                b.push(Block::Resnet {
                    prefix,
                    cin: if j == 0 { cin } else { cout },
                    cout,
                });
            }
            if i + 1 < n {
                // Temporal iff i ≥ n − TEMPORAL_STAGES − 1 (UP/attn l.724); the last block has none.
                let temporal = i + TEMPORAL_STAGES + 1 >= n;
                b.push(Block::Downsample {
                    prefix: format!("encoder.down_blocks.{i}.downsamplers.0"),
                    ch: cout,
                    temporal,
                });
            }
            cin = cout;
        }
        b.extend(Self::mid("encoder", w[n - 1]));
        b.push(Block::NormSilu {
            name: "encoder.conv_norm_out".into(),
            ch: w[n - 1],
        });
        b.push(Block::Conv(Conv::new(
            "encoder.conv_out".into(),
            w[n - 1],
            2 * LATENT_CHANNELS,
            3,
            3,
        )));
        b
    }

    /// Decoder blocks in forward order (spec §5).
    pub fn decoder(&self) -> Vec<Block> {
        let rev: Vec<usize> = self.widths.iter().rev().copied().collect();
        let n = rev.len();
        let mut b = vec![Block::Conv(Conv::new(
            "decoder.conv_in".into(),
            LATENT_CHANNELS,
            rev[0],
            3,
            3,
        ))];
        b.extend(Self::mid("decoder", rev[0]));
        let mut cin = rev[0];
        for (i, &cout) in rev.iter().enumerate() {
            for j in 0..DECODER_LAYERS {
                let prefix = format!("decoder.up_blocks.{i}.resnets.{j}");
                b.push(Block::Resnet {
                    prefix,
                    cin: if j == 0 { cin } else { cout },
                    cout,
                });
            }
            if i + 1 < n {
                let temporal = i < TEMPORAL_STAGES;
                b.push(Block::Upsample {
                    prefix: format!("decoder.up_blocks.{i}.upsamplers.0"),
                    ch: cout,
                    temporal,
                });
            }
            cin = cout;
        }
        b.push(Block::NormSilu {
            name: "decoder.conv_norm_out".into(),
            ch: rev[n - 1],
        });
        b.push(Block::Conv(Conv::new(
            "decoder.conv_out".into(),
            rev[n - 1],
            RGB_CHANNELS,
            3,
            3,
        )));
        b
    }

    pub fn blocks(&self, part: Part) -> Vec<Block> {
        match part {
            Part::Encoder => self.encoder(),
            Part::Decoder => self.decoder(),
        }
    }

    /// Every tensor of one part, in the order of the real checkpoint.
    pub fn tensors(&self, part: Part) -> Vec<TensorSpec> {
        let mut blocks = self.blocks(part);
        blocks.sort_by_key(Block::checkpoint_rank); // stable: keeps forward order within a rank
        blocks.iter().flat_map(Block::tensors).collect()
    }

    /// All 250 (full) tensors: encoder then decoder.
    pub fn all_tensors(&self) -> Vec<TensorSpec> {
        let mut t = self.tensors(Part::Encoder);
        t.extend(self.tensors(Part::Decoder));
        t
    }

    /// Causal convs (kT = 3) that carry state in a streaming graph, forward order, with their
    /// temporal stride: 33 for the decoder, 24 for the encoder (spec §8).
    pub fn state_convs(&self, part: Part) -> Vec<(Conv, usize)> {
        self.blocks(part)
            .iter()
            .flat_map(Block::convs)
            .filter(|(c, _)| c.kt == 3)
            .collect()
    }

    /// Infer the widths from the tensors present (first source that exists wins), falling back
    /// to the full model. Mismatches then show up as shape problems in `validate`.
    pub fn infer(shapes: &HashMap<String, Vec<usize>>) -> Model {
        let dim0 = |n: &str| shapes.get(n).and_then(|s| s.first().copied());
        let mut widths = FULL_WIDTHS;
        for (i, w) in widths.iter_mut().enumerate() {
            let r = 3 - i;
            let candidates = [
                format!("encoder.down_blocks.{i}.resnets.0.conv1.weight"),
                format!("decoder.up_blocks.{r}.resnets.0.conv1.weight"),
                format!("encoder.down_blocks.{i}.resnets.1.conv1.weight"),
                format!("decoder.up_blocks.{r}.resnets.1.conv1.weight"),
            ];
            if let Some(v) = candidates.iter().find_map(|c| dim0(c)) {
                *w = v;
            }
        }
        Model { widths }
    }
}

/// One thing wrong with a weight file, relative to the schema.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    Missing {
        tensor: String,
        expected: Vec<usize>,
    },
    Unexpected {
        tensor: String,
        found: Vec<usize>,
    },
    Shape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    NonFinite {
        tensor: String,
        count: usize,
    },
    Width {
        widths: [usize; 4],
        msg: String,
    },
    /// The requested part has no tensors at all in this file.
    PartAbsent {
        part: Part,
    },
}

/// A name read from a file, as it may be shown on a terminal: control characters (escape
/// sequences, line breaks that could fake a line of output) are escaped.
pub fn printable(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        name.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        name.into()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = printable;
        match self {
            Problem::Missing { tensor, expected } => {
                write!(
                    f,
                    "missing tensor '{}' (expected shape {expected:?})",
                    p(tensor)
                )
            }
            Problem::Unexpected { tensor, found } => write!(
                f,
                "unexpected tensor '{}' (shape {found:?}) is not part of the SeedVR2 VAE",
                p(tensor)
            ),
            Problem::Shape {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "tensor '{}' has shape {found:?}, expected {expected:?}",
                p(tensor)
            ),
            Problem::NonFinite { tensor, count } => {
                write!(f, "tensor '{}' holds {count} NaN/Inf value(s)", p(tensor))
            }
            Problem::Width { widths, msg } => write!(f, "block widths {widths:?}: {msg}"),
            Problem::PartAbsent { part } => write!(f, "the file has no {part} tensors"),
        }
    }
}

pub fn format_problems(p: &[Problem]) -> String {
    p.iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which halves a file holds, and at which width.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Variant {
    pub widths: [usize; 4],
    pub encoder: bool,
    pub decoder: bool,
}

impl Variant {
    pub fn has(&self, part: Part) -> bool {
        match part {
            Part::Encoder => self.encoder,
            Part::Decoder => self.decoder,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let halves = match (self.encoder, self.decoder) {
            (true, true) => "encoder + decoder",
            (false, true) => "decoder-only",
            (true, false) => "encoder-only",
            (false, false) => "no recognizable part",
        };
        if self.widths == FULL_WIDTHS {
            write!(f, "full, {halves}")
        } else {
            write!(f, "reduced width {:?}, {halves}", self.widths)
        }
    }
}

/// Result of checking a file's tensor names and shapes against the schema.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub model: Model,
    pub variant: Variant,
    pub problems: Vec<Problem>,
}

/// Check `shapes` (name → logical shape, in file order) against the schema. A part whose
/// tensors are all absent is not a problem (decoder-only / encoder-only files are valid for
/// their half); everything else missing, unexpected or mis-shaped is reported, all at once.
pub fn validate(shapes: &[(String, Vec<usize>)]) -> Report {
    let map: HashMap<String, Vec<usize>> = shapes.iter().cloned().collect();
    let model = Model::infer(&map);
    let mut problems = Vec::new();
    if let Some(bad) = model
        .widths
        .iter()
        .find(|&&w| w == 0 || w % NORM_GROUPS != 0)
    {
        problems.push(Problem::Width {
            widths: model.widths,
            msg: format!("{bad} is not a positive multiple of the {NORM_GROUPS} GroupNorm groups"),
        });
    }
    let mut present = BTreeMap::new();
    let mut known = std::collections::HashSet::new();
    for part in [Part::Encoder, Part::Decoder] {
        let specs = model.tensors(part);
        let any = specs.iter().any(|s| map.contains_key(&s.name));
        present.insert(part, any);
        for s in &specs {
            known.insert(s.name.clone());
            match map.get(&s.name) {
                None if any => problems.push(Problem::Missing {
                    tensor: s.name.clone(),
                    expected: s.shape.clone(),
                }),
                None => {}
                Some(found) if *found != s.shape => problems.push(Problem::Shape {
                    tensor: s.name.clone(),
                    expected: s.shape.clone(),
                    found: found.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    for (name, shape) in shapes {
        if !known.contains(name) {
            problems.push(Problem::Unexpected {
                tensor: name.clone(),
                found: shape.clone(),
            });
        }
    }
    if !present[&Part::Encoder] && !present[&Part::Decoder] {
        problems.push(Problem::PartAbsent {
            part: Part::Decoder,
        });
        problems.push(Problem::PartAbsent {
            part: Part::Encoder,
        });
    }
    Report {
        model,
        variant: Variant {
            widths: model.widths,
            encoder: present[&Part::Encoder],
            decoder: present[&Part::Decoder],
        },
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_model_counts_match_the_spec() {
        let m = Model::default();
        let t = m.all_tensors();
        assert_eq!(t.len(), 250);
        assert_eq!(m.tensors(Part::Encoder).len(), 106);
        let params: usize = t.iter().map(|s| s.shape.iter().product::<usize>()).sum();
        assert_eq!(params, 250_648_227);
        assert_eq!(m.state_convs(Part::Decoder).len(), 33);
        assert_eq!(m.state_convs(Part::Encoder).len(), 24);
        let strided = m
            .state_convs(Part::Encoder)
            .iter()
            .filter(|(_, s)| *s == 2)
            .count();
        assert_eq!(strided, 2);
    }

    #[test]
    fn reduced_model_has_246_tensors() {
        assert_eq!(
            Model {
                widths: [32, 32, 64, 64]
            }
            .all_tensors()
            .len(),
            246
        );
    }

    #[test]
    fn validation_reports_everything_at_once() {
        let m = Model::default();
        let mut shapes: Vec<(String, Vec<usize>)> = m
            .all_tensors()
            .into_iter()
            .map(|s| (s.name, s.shape))
            .collect();
        shapes.retain(|(n, _)| n != "decoder.conv_out.bias");
        shapes[0].1 = vec![1, 2, 3];
        shapes.push(("decoder.extra".into(), vec![4]));
        let r = validate(&shapes);
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        assert!(r.variant.encoder && r.variant.decoder);
    }

    #[test]
    fn decoder_only_file_is_valid_for_its_half() {
        let m = Model::default();
        let shapes: Vec<_> = m
            .tensors(Part::Decoder)
            .into_iter()
            .map(|s| (s.name, s.shape))
            .collect();
        let r = validate(&shapes);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.variant.decoder && !r.variant.encoder);
        assert_eq!(r.variant.to_string(), "full, decoder-only");
    }
}
