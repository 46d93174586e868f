//! The SeedVR2 VAE's building blocks as graph fragments, one function per block of spec §4,
//! named as there: `causal_conv` (§4.1), `group_norm` (§4.2), `resnet` (§4.3), `attention`
//! (§4.4), `upsample` (§4.5), `downsample` (§4.6).
//!
//! Streaming: every causal conv with kT = 3 gets a state input `[1, Cin, kT − sT, H, W]` and a
//! state output (the last kT − sT frames of its head-extended input, §8). A shape-only input,
//! `continuation` (length 1 on the first chunk, 2 afterwards), selects the first-chunk behaviour
//! (replicate frame 0, drop the upsamplers' sub-frame 1, exactly as one-shot; states ignored) or
//! the continuation (prepend the state, drop nothing). The choice is made from a *shape*, never
//! from values, so TensorRT and ONNX Runtime see static control flow, and no tensor is ever
//! empty (a zero-frame state makes TensorRT-RTX's GPU-less build try to allocate device memory).

use crate::contract::StateSpec;
use crate::graph::{Blob, Elem, Graph, InitData};
use crate::ops::{ConvGeometry, END};
use crate::Error;
use seedvae_weights::schema::{Conv, NORM_EPS, NORM_GROUPS};
use seedvae_weights::{DType, WeightFile};
use std::collections::HashMap;

/// Spatial padding of a causal conv: symmetric `k/2` (all 3×3 convs) or the encoder
/// downsampler's right/bottom-only single pixel (§4.6).
#[derive(Clone, Copy)]
pub enum Pad {
    Same,
    RightBottom,
}

/// Shared state of one export: the graph, the weights, activation type, and the streaming I/O
/// collected so far.
pub struct Ctx<'w> {
    pub g: Graph<'w>,
    pub w: &'w WeightFile,
    /// Activation/weight element type of convs and matmuls (F32 or F16).
    pub act: Elem,
    pub streaming: bool,
    /// Current spatial scale relative to the part's latent/pixel input: log2 factor.
    pub scale_log2: i32,
    pub states: Vec<StateSpec>,
    state_inputs: HashMap<String, String>,
    /// `[c]`, c = 0 on the first chunk and 1 afterwards (from the `continuation` input's length).
    continues: Option<String>,
}

impl<'w> Ctx<'w> {
    pub fn new(w: &'w WeightFile, act: Elem, streaming: bool) -> Self {
        Ctx {
            g: Graph::default(),
            w,
            act,
            streaming,
            scale_log2: 0,
            states: Vec::new(),
            state_inputs: HashMap::new(),
            continues: None,
        }
    }

    /// A checkpoint tensor as an initializer of `elem`, named as in the checkpoint. `transpose`
    /// swaps a 2-D `[out, in]` linear weight to `[in, out]` for MatMul. `shape` overrides the
    /// initializer's dims (same element count), e.g. `[C, 1, 1, 1]` for broadcasting.
    pub fn weight(
        &mut self,
        name: &str,
        elem: Elem,
        transpose: bool,
        shape: Option<Vec<i64>>,
    ) -> Result<String, Error> {
        let t = self.w.get(name).ok_or_else(|| {
            Error::Other(format!(
                "{}: tensor '{name}' is missing",
                self.w.path.display()
            ))
        })?;
        let mut dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        if transpose {
            dims.reverse();
        }
        if let Some(s) = shape {
            dims = s;
        }
        let (w, n, shape2) = (self.w, name.to_string(), t.shape.clone());
        let produce = move || -> Result<Blob<'w>, Error> {
            // Weights already stored in the wanted type go through untouched (no copy, no rounding).
            if !transpose {
                match (elem, w.raw(&n)?) {
                    (Elem::F16, Some((DType::F16, raw))) | (Elem::F32, Some((DType::F32, raw))) => {
                        return Ok(Blob::Borrowed(raw))
                    }
                    _ => {}
                }
            }
            let v = w.f32(&n)?;
            let v: Vec<f32> = if transpose {
                transpose_2d(&v, shape2[0], shape2[1])
            } else {
                v.into_owned()
            };
            Ok(match elem {
                Elem::F32 => Blob::F32(v),
                _ => Blob::Bytes(encode(elem, &v)),
            })
        };
        Ok(self
            .g
            .initializer(name, dims, elem, InitData::Lazy(Box::new(produce))))
    }

    /// `[c]`: 0 on the first chunk, 1 on continuations (int64, computed once).
    fn continues(&mut self) -> String {
        if let Some(c) = &self.continues {
            return c.clone();
        }
        let n = self
            .g
            .shape(crate::contract::CONTINUATION, "continuation.len");
        let one = self.g.const_i64(&[1]);
        let c = self.g.sub(&n, &one, "continues");
        self.continues = Some(c.clone());
        c
    }

    /// The state input of `conv` (created once), `[1, cin, S, h, w]` at the current scale.
    fn state_input(&mut self, conv: &Conv, keep: usize) -> String {
        if let Some(s) = self.state_inputs.get(&conv.name) {
            return s.clone();
        }
        let spec = StateSpec {
            conv: conv.name.clone(),
            input: format!("state_in.{}", conv.name),
            output: format!("state_out.{}", conv.name),
            channels: conv.cin,
            frames: keep,
            scale_log2: self.scale_log2,
        };
        self.state_inputs
            .insert(conv.name.clone(), spec.input.clone());
        let name = spec.input.clone();
        self.states.push(spec);
        name
    }
}

fn transpose_2d(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

pub fn encode(elem: Elem, v: &[f32]) -> Vec<u8> {
    match elem {
        Elem::F32 => bytemuck::cast_slice(v).to_vec(),
        Elem::F16 => {
            use half::slice::HalfFloatSliceExt;
            let mut h = vec![half::f16::ZERO; v.len()];
            h.convert_from_f32_slice(v);
            bytemuck::cast_slice(&h).to_vec()
        }
        other => panic!("weights are never encoded as {other:?} here"),
    }
}

/// §4.1 causal 3-D convolution. Temporal stride `st`; spatial stride 2 for downsamplers.
pub fn causal_conv(
    cx: &mut Ctx,
    x: &str,
    conv: &Conv,
    st: usize,
    pad: Pad,
) -> Result<String, Error> {
    let act = cx.act;
    let w = cx.weight(&format!("{}.weight", conv.name), act, false, None)?;
    let b = cx.weight(&format!("{}.bias", conv.name), act, false, None)?;
    let ks = conv.ks as i64;
    let (pads, ss) = match pad {
        Pad::Same => ([0, ks / 2, ks / 2, 0, ks / 2, ks / 2], 1),
        Pad::RightBottom => ([0, 0, 0, 0, 1, 1], 2),
    };
    let kernel = [conv.kt as i64, ks, ks];
    let strides = [st as i64, ss, ss];
    let geo = ConvGeometry {
        kernel,
        pads,
        strides,
    };
    if conv.kt == 1 {
        return Ok(cx.g.conv(x, &w, &b, &geo, &conv.name));
    }
    let keep = conv.kt - st;
    let g_x0 = cx.g.slice(x, 2, 0, 1, &format!("{}.frame0", conv.name));
    let head = if cx.streaming {
        // [x0, x0, state…]: frames [0, 2) on the first chunk, [2, 2 + keep) afterwards.
        let s = cx.state_input(conv, keep);
        let cat = cx.g.concat(
            &[&g_x0, &g_x0, &s],
            2,
            &format!("{}.head_candidates", conv.name),
        );
        let c = cx.continues();
        let two = cx.g.const_i64(&[2]);
        let start = cx.g.mul(&c, &two, &format!("{}.head_start", conv.name));
        let k = cx.g.const_i64(&[keep as i64]);
        let ck = cx.g.mul(&c, &k, &format!("{}.head_extra", conv.name));
        let end = cx.g.add(&two, &ck, &format!("{}.head_end", conv.name));
        cx.g.slice_dyn(&cat, 2, &start, &end, &format!("{}.head", conv.name))
    } else {
        cx.g.concat(&[&g_x0, &g_x0], 2, &format!("{}.head", conv.name))
    };
    let xe =
        cx.g.concat(&[&head, x], 2, &format!("{}.extended", conv.name));
    if cx.streaming {
        let out =
            cx.g.slice(&xe, 2, -(keep as i64), END, &format!("{}.state", conv.name));
        let name = format!("state_out.{}", conv.name);
        cx.g.identity(&out, &name);
    }
    Ok(cx.g.conv(&xe, &w, &b, &geo, &conv.name))
}

/// §4.2 GroupNorm(32) with statistics per frame (never across time), computed in fp32.
pub fn group_norm(cx: &mut Ctx, x: &str, name: &str, ch: usize) -> Result<String, Error> {
    let xf = if cx.act == Elem::F32 {
        x.to_string()
    } else {
        cx.g.cast(x, Elem::F32, &format!("{name}.to_f32"))
    };
    let full = cx.g.shape(&xf, &format!("{name}.shape"));
    let thw = cx.g.shape_range(&xf, 2, 5, &format!("{name}.thw"));
    let lead =
        cx.g.const_i64(&[0, NORM_GROUPS as i64, (ch / NORM_GROUPS) as i64]);
    let grouped =
        cx.g.concat(&[&lead, &thw], 0, &format!("{name}.grouped_shape"));
    // [B, G, C/G, T, H, W]: statistics over (C/G, H, W) per (B, G, T).
    let r = cx.g.reshape(&xf, &grouped, &format!("{name}.grouped"));
    let mean = cx.g.reduce_mean(&r, &[2, 4, 5], &format!("{name}.mean"));
    let d = cx.g.sub(&r, &mean, &format!("{name}.centered"));
    let sq = cx.g.mul(&d, &d, &format!("{name}.sq"));
    let var = cx.g.reduce_mean(&sq, &[2, 4, 5], &format!("{name}.var"));
    let eps = cx.g.scalar(Elem::F32, NORM_EPS);
    let ve = cx.g.add(&var, &eps, &format!("{name}.var_eps"));
    let sd = cx.g.sqrt(&ve, &format!("{name}.std"));
    let n = cx.g.div(&d, &sd, &format!("{name}.normed"));
    let n = cx.g.reshape(&n, &full, &format!("{name}.ungrouped"));
    let c = ch as i64;
    let gamma = cx.weight(
        &format!("{name}.weight"),
        Elem::F32,
        false,
        Some(vec![c, 1, 1, 1]),
    )?;
    let beta = cx.weight(
        &format!("{name}.bias"),
        Elem::F32,
        false,
        Some(vec![c, 1, 1, 1]),
    )?;
    let y = cx.g.mul(&n, &gamma, &format!("{name}.scaled"));
    let y = cx.g.add(&y, &beta, &format!("{name}.out"));
    Ok(if cx.act == Elem::F32 {
        y
    } else {
        cx.g.cast(&y, cx.act, &format!("{name}.to_act"))
    })
}

pub fn silu(cx: &mut Ctx, x: &str, hint: &str) -> String {
    let s = cx.g.sigmoid(x, &format!("{hint}.sigmoid"));
    cx.g.mul(x, &s, &format!("{hint}.silu"))
}

/// A 1×1×1 conv (shortcuts, `upscale_conv`): no temporal context, no state.
fn pointwise_conv(
    cx: &mut Ctx,
    x: &str,
    name: &str,
    cin: usize,
    cout: usize,
) -> Result<String, Error> {
    causal_conv(
        cx,
        x,
        &Conv {
            name: name.to_string(),
            cin,
            cout,
            kt: 1,
            ks: 1,
        },
        1,
        Pad::Same,
    )
}

/// §4.3 ResnetBlock3D: `shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))))))`.
pub fn resnet(
    cx: &mut Ctx,
    x: &str,
    prefix: &str,
    cin: usize,
    cout: usize,
) -> Result<String, Error> {
    let h = group_norm(cx, x, &format!("{prefix}.norm1"), cin)?;
    let h = silu(cx, &h, &format!("{prefix}.norm1"));
    let h = causal_conv(
        cx,
        &h,
        &Conv {
            name: format!("{prefix}.conv1"),
            cin,
            cout,
            kt: 3,
            ks: 3,
        },
        1,
        Pad::Same,
    )?;
    let h = group_norm(cx, &h, &format!("{prefix}.norm2"), cout)?;
    let h = silu(cx, &h, &format!("{prefix}.norm2"));
    let h = causal_conv(
        cx,
        &h,
        &Conv {
            name: format!("{prefix}.conv2"),
            cin: cout,
            cout,
            kt: 3,
            ks: 3,
        },
        1,
        Pad::Same,
    )?;
    let shortcut = if cin != cout {
        pointwise_conv(cx, x, &format!("{prefix}.conv_shortcut"), cin, cout)?
    } else {
        x.to_string()
    };
    Ok(cx.g.add(&shortcut, &h, &format!("{prefix}.out")))
}

/// §4.4 single-head attention per frame over H·W tokens, scale 1/√C, residual on the input.
/// Softmax runs in fp32 whatever the activation type.
pub fn attention(cx: &mut Ctx, x: &str, prefix: &str, ch: usize) -> Result<String, Error> {
    let act = cx.act;
    let n = group_norm(cx, x, &format!("{prefix}.group_norm"), ch)?;
    let full = cx.g.shape(x, &format!("{prefix}.shape"));
    let flat_shape = cx.g.const_i64(&[0, ch as i64, 0, -1]);
    let flat = cx.g.reshape(&n, &flat_shape, &format!("{prefix}.flat"));
    let tokens =
        cx.g.transpose(&flat, &[0, 2, 3, 1], &format!("{prefix}.tokens")); // [B, T, HW, C]
    let proj = |cx: &mut Ctx, input: &str, p: &str| -> Result<String, Error> {
        let w = cx.weight(&format!("{prefix}.{p}.weight"), act, true, None)?;
        let b = cx.weight(&format!("{prefix}.{p}.bias"), act, false, None)?;
        let m = cx.g.matmul(input, &w, &format!("{prefix}.{p}"));
        Ok(cx.g.add(&m, &b, &format!("{prefix}.{p}.biased")))
    };
    let q = proj(cx, &tokens, "to_q")?;
    let k = proj(cx, &tokens, "to_k")?;
    let v = proj(cx, &tokens, "to_v")?;
    let kt =
        cx.g.transpose(&k, &[0, 1, 3, 2], &format!("{prefix}.keys_t"));
    let scores = cx.g.matmul(&q, &kt, &format!("{prefix}.scores"));
    let scores = if act == Elem::F32 {
        scores
    } else {
        cx.g.cast(&scores, Elem::F32, &format!("{prefix}.scores_f32"))
    };
    let scale = cx.g.scalar(Elem::F32, 1.0 / (ch as f32).sqrt());
    let scaled = cx.g.mul(&scores, &scale, &format!("{prefix}.scaled"));
    let p = cx.g.softmax(&scaled, -1, &format!("{prefix}.probs"));
    let p = if act == Elem::F32 {
        p
    } else {
        cx.g.cast(&p, act, &format!("{prefix}.probs_act"))
    };
    let a = cx.g.matmul(&p, &v, &format!("{prefix}.mixed"));
    let o = proj(cx, &a, "to_out.0")?;
    let o =
        cx.g.transpose(&o, &[0, 3, 1, 2], &format!("{prefix}.channels_first")); // [B, C, T, HW]
    let o = cx.g.reshape(&o, &full, &format!("{prefix}.unflat"));
    Ok(cx.g.add(&o, x, &format!("{prefix}.out")))
}

/// §4.5 Upsample3D: `upscale_conv` (1×1×1, C → C·r), shuffle with channel index
/// `((sx·2 + sy)·Z + sz)·C + c`, drop sub-frame 1 on the first chunk if temporal, causal conv.
pub fn upsample(
    cx: &mut Ctx,
    x: &str,
    prefix: &str,
    ch: usize,
    temporal: bool,
) -> Result<String, Error> {
    let z: i64 = if temporal { 2 } else { 1 };
    let r = 4 * z as usize;
    let u = pointwise_conv(cx, x, &format!("{prefix}.upscale_conv"), ch, ch * r)?;
    let thw = cx.g.shape_range(&u, 2, 5, &format!("{prefix}.thw"));
    let lead = cx.g.const_i64(&[0, 2, 2, z, ch as i64]);
    let split_shape =
        cx.g.concat(&[&lead, &thw], 0, &format!("{prefix}.split_shape"));
    let split = cx.g.reshape(&u, &split_shape, &format!("{prefix}.split")); // [B, sx, sy, sz, C, T, H, W]
    let moved = cx.g.transpose(
        &split,
        &[0, 4, 5, 3, 6, 1, 7, 2],
        &format!("{prefix}.shuffle"),
    ); // [B, C, T, sz, H, sx, W, sy]
    let factors = cx.g.const_i64(&[z, 2, 2]);
    let grown = cx.g.mul(&thw, &factors, &format!("{prefix}.grown"));
    let lead2 = cx.g.const_i64(&[0, ch as i64]);
    let out_shape =
        cx.g.concat(&[&lead2, &grown], 0, &format!("{prefix}.out_shape"));
    let mut y =
        cx.g.reshape(&moved, &out_shape, &format!("{prefix}.shuffled"));
    cx.scale_log2 += 1;
    let conv = Conv {
        name: format!("{prefix}.conv"),
        cin: ch,
        cout: ch,
        kt: 3,
        ks: 3,
    };
    if temporal {
        let f0 = cx.g.slice(&y, 2, 0, 1, &format!("{prefix}.subframe0"));
        let rest = if cx.streaming {
            // First chunk: skip sub-frame 1 (start 2); continuation: keep everything (start 1).
            let c = cx.continues();
            let two = cx.g.const_i64(&[2]);
            let start = cx.g.sub(&two, &c, &format!("{prefix}.rest_start"));
            cx.g.slice_from(&y, 2, &start, &format!("{prefix}.rest"))
        } else {
            cx.g.slice(&y, 2, 2, END, &format!("{prefix}.rest"))
        };
        y =
            cx.g.concat(&[&f0, &rest], 2, &format!("{prefix}.head_removed"));
    }
    causal_conv(cx, &y, &conv, 1, Pad::Same)
}

/// §4.6 Downsample3D: zero pad right/bottom by 1, causal conv with stride (2 if temporal, 1)×2×2.
pub fn downsample(
    cx: &mut Ctx,
    x: &str,
    prefix: &str,
    ch: usize,
    temporal: bool,
) -> Result<String, Error> {
    let (kt, st) = if temporal { (3, 2) } else { (1, 1) };
    let conv = Conv {
        name: format!("{prefix}.conv"),
        cin: ch,
        cout: ch,
        kt,
        ks: 3,
    };
    let y = causal_conv(cx, x, &conv, st, Pad::RightBottom)?;
    cx.scale_log2 -= 1;
    Ok(y)
}
