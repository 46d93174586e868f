//! Assemble the decoder (spec §5) and encoder (spec §6) graphs from the schema's block list.

use crate::blocks::{self, Ctx};
use crate::contract::{self, Contract, Precision, TensorIo};
use crate::graph::{value_info, Dim, Elem, Graph};
use crate::Error;
use seedvae_weights::schema::{Block, LATENT_CHANNELS, RGB_CHANNELS};
use seedvae_weights::{Part, WeightFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    pub part: Part,
    pub precision: Precision,
    pub streaming: bool,
}

fn named(s: &str) -> Dim {
    Dim::Named(s.to_string())
}

/// Apply one block of the forward pass.
fn apply(cx: &mut Ctx, x: &str, b: &Block) -> Result<String, Error> {
    match b {
        Block::Conv(c) => blocks::causal_conv(cx, x, c, 1, blocks::Pad::Same),
        Block::Resnet { prefix, cin, cout } => blocks::resnet(cx, x, prefix, *cin, *cout),
        Block::Attention { prefix, ch } => blocks::attention(cx, x, prefix, *ch),
        Block::Upsample {
            prefix,
            ch,
            temporal,
        } => blocks::upsample(cx, x, prefix, *ch, *temporal),
        Block::Downsample {
            prefix,
            ch,
            temporal,
        } => blocks::downsample(cx, x, prefix, *ch, *temporal),
        Block::NormSilu { name, ch } => {
            let n = blocks::group_norm(cx, x, name, *ch)?;
            Ok(blocks::silu(cx, &n, name))
        }
    }
}

/// Spatial dim labels of a state at `scale_log2` (documentation only; the runtime checks shapes).
fn spatial_labels(part: Part, k: i32) -> (Dim, Dim) {
    match part {
        Part::Decoder if k == 0 => (named("h"), named("w")),
        Part::Decoder => (
            named(&format!("{}h", 1 << k)),
            named(&format!("{}w", 1 << k)),
        ),
        Part::Encoder if k == 0 => (named("H"), named("W")),
        Part::Encoder => (
            named(&format!("H/{}", 1 << -k)),
            named(&format!("W/{}", 1 << -k)),
        ),
    }
}

/// Build the graph of one part. Validates that `w` holds that part first.
pub fn build<'w>(w: &'w WeightFile, opts: ExportOptions) -> Result<(Graph<'w>, Contract), Error> {
    let model = w.model_for(opts.part)?;
    let act = opts.precision.act();
    let mut cx = Ctx::new(w, act, opts.streaming);
    let (input, in_ch, in_dims) = match opts.part {
        Part::Decoder => (contract::LATENT, LATENT_CHANNELS, ["T", "h", "w"]),
        Part::Encoder => (contract::VIDEO, RGB_CHANNELS, ["T", "H", "W"]),
    };
    let mut x = if act == Elem::F32 {
        input.to_string()
    } else {
        cx.g.cast(input, act, "input_act")
    };
    for b in model.blocks(opts.part) {
        x = apply(&mut cx, &x, &b)?;
    }
    let to_f32 = |cx: &mut Ctx, v: &str, hint: &str| {
        if act == Elem::F32 {
            v.to_string()
        } else {
            cx.g.cast(v, Elem::F32, hint)
        }
    };
    let outputs: Vec<TensorIo> = match opts.part {
        Part::Decoder => {
            let v = to_f32(&mut cx, &x, "video_f32");
            cx.g.identity(&v, contract::VIDEO);
            vec![TensorIo {
                name: contract::VIDEO.into(),
                elem: Elem::F32,
                dims: vec![
                    Dim::Fixed(1),
                    Dim::Fixed(RGB_CHANNELS as i64),
                    named("F"),
                    named("8h"),
                    named("8w"),
                ],
            }]
        }
        Part::Encoder => {
            let o = to_f32(&mut cx, &x, "moments_f32");
            let mean = cx.g.slice(&o, 1, 0, LATENT_CHANNELS as i64, "mean");
            cx.g.identity(&mean, contract::LATENT_MEAN);
            let lv = cx.g.slice(
                &o,
                1,
                LATENT_CHANNELS as i64,
                2 * LATENT_CHANNELS as i64,
                "logvar_raw",
            );
            let (lo, hi) = (cx.g.scalar(Elem::F32, -30.0), cx.g.scalar(Elem::F32, 20.0));
            let lv = cx.g.clip(&lv, &lo, &hi, "logvar_clamped");
            cx.g.identity(&lv, contract::LATENT_LOGVAR);
            let dims = vec![
                Dim::Fixed(1),
                Dim::Fixed(LATENT_CHANNELS as i64),
                named("T_lat"),
                named("H/8"),
                named("W/8"),
            ];
            vec![
                TensorIo {
                    name: contract::LATENT_MEAN.into(),
                    elem: Elem::F32,
                    dims: dims.clone(),
                },
                TensorIo {
                    name: contract::LATENT_LOGVAR.into(),
                    elem: Elem::F32,
                    dims,
                },
            ]
        }
    };
    let mut inputs = vec![TensorIo {
        name: input.into(),
        elem: Elem::F32,
        dims: [Dim::Fixed(1), Dim::Fixed(in_ch as i64)]
            .into_iter()
            .chain(in_dims.iter().map(|d| named(d)))
            .collect(),
    }];
    let mut outputs = outputs;
    let continuation = opts.streaming.then(|| contract::CONTINUATION.to_string());
    if let Some(name) = &continuation {
        inputs.push(TensorIo {
            name: name.clone(),
            elem: Elem::F32,
            dims: vec![named("continuation")],
        });
    }
    let states = std::mem::take(&mut cx.states);
    for s in &states {
        let (h, w) = spatial_labels(opts.part, s.scale_log2);
        let base = |t: Dim| {
            vec![
                Dim::Fixed(1),
                Dim::Fixed(s.channels as i64),
                t,
                h.clone(),
                w.clone(),
            ]
        };
        inputs.push(TensorIo {
            name: s.input.clone(),
            elem: act,
            dims: base(Dim::Fixed(s.frames as i64)),
        });
        outputs.push(TensorIo {
            name: s.output.clone(),
            elem: act,
            dims: base(Dim::Fixed(s.frames as i64)),
        });
    }
    let mut g = cx.g;
    g.inputs = inputs
        .iter()
        .map(|t| value_info(&t.name, t.elem, &t.dims))
        .collect();
    g.outputs = outputs
        .iter()
        .map(|t| value_info(&t.name, t.elem, &t.dims))
        .collect();
    let contract = Contract {
        part: opts.part,
        precision: opts.precision,
        streaming: opts.streaming,
        widths: model.widths,
        inputs,
        outputs,
        continuation,
        states,
    };
    Ok((g, contract))
}
