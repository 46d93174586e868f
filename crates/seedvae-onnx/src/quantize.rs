//! FP8 (E4M3) explicit quantization as a pass over the graph IR: TensorRT-RTX reads the
//! QuantizeLinear/DequantizeLinear pairs and runs the quantized convolutions and matmuls on FP8
//! tensor cores; ONNX Runtime runs the same graph on the CPU, so its quality is measurable here.
//!
//! Sites: every Conv, and every MatMul whose right operand is an initializer (the attention
//! projections). Weights: per-output-channel scales from their amax, stored as FP8 initializers
//! behind a DequantizeLinear. Activations: a per-tensor Q/DQ pair on the input, scale = amax/448,
//! amax from calibration. GroupNorm, SiLU, softmax and residual adds are untouched, as are the
//! sites under the `keep` module prefixes (by default the decoder's full-resolution last block
//! and conv_out, where FP8 error would reach the pixels directly).

use crate::graph::{value_info_any_shape, Blob, Elem, Graph, InitData, Node};
use crate::{fp8, Error};
use std::collections::{HashMap, HashSet};

/// Module prefixes kept in FP16 unless a profile says otherwise. The full-resolution last block
/// and conv_out, where FP8 error reaches the pixels directly (26.7% of the decoder's MACs), plus
/// sites that cost little and buy much: conv_in, the mid block (latent resolution) and the three
/// 1×1 `upscale_conv`s before each pixel shuffle (together 2.2% of the MACs, +2.9 dB on the tiny
/// fixture). A sweep showed the rest of the error spread evenly over the remaining sites
/// (benches/README.md, "FP8 quality").
pub const DEFAULT_KEEP: &[&str] = &[
    "decoder.conv_in",
    "decoder.mid_block.",
    "decoder.up_blocks.0.upsamplers.0.upscale_conv",
    "decoder.up_blocks.1.upsamplers.0.upscale_conv",
    "decoder.up_blocks.2.upsamplers.0.upscale_conv",
    "decoder.up_blocks.3.",
    "decoder.conv_out",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The consuming node's name (the conv's checkpoint name, or `<attention>.to_q` ...).
    pub node: String,
    /// The activation input value.
    pub act: String,
    /// The weight initializer.
    pub weight: String,
    /// Output-channel axis of the weight: 0 for Conv `[Cout, Cin, ...]`, 1 for MatMul `[in, out]`.
    pub axis: usize,
}

/// All quantizable sites, in graph order, minus those under `keep` prefixes.
pub fn sites(g: &Graph, keep: &[String]) -> Vec<Site> {
    let inits: HashSet<&str> = g.inits.iter().map(|i| i.name.as_str()).collect();
    g.nodes
        .iter()
        .filter_map(|n| {
            let axis = match n.op {
                "Conv" => 0,
                "MatMul" => 1,
                _ => return None,
            };
            let w = n.inputs.get(1)?;
            if !inits.contains(w.as_str()) || keep.iter().any(|k| n.name.starts_with(k.as_str())) {
                return None;
            }
            Some(Site {
                node: n.name.clone(),
                act: n.inputs[0].clone(),
                weight: w.clone(),
                axis,
            })
        })
        .collect()
}

/// Make every site's activation input a graph output (for calibration runs), named
/// `calib.<node>`; returns (site node, output name).
pub fn expose_activations(g: &mut Graph, sites: &[Site]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in sites {
        let elem = g.find_init(&s.weight).map_or(Elem::F32, |i| i.elem);
        let name = format!("calib.{}", s.node);
        g.identity(&s.act, &name);
        g.outputs.push(value_info_any_shape(&name, elem));
        out.push((s.node.clone(), name));
    }
    out
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QdqStats {
    pub quantized_convs: usize,
    pub quantized_matmuls: usize,
    pub kept_high_precision: usize,
}

fn scalar_bytes(elem: Elem, v: f32) -> Vec<u8> {
    match elem {
        Elem::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
        _ => v.to_le_bytes().to_vec(),
    }
}

fn values_f32(elem: Elem, b: &[u8]) -> Vec<f32> {
    match elem {
        Elem::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Per-channel FP8 weights: (fp8 bytes, one scale per output channel).
pub fn quantize_weight(v: &[f32], dims: &[i64], axis: usize) -> (Vec<u8>, Vec<f32>) {
    let c = dims[axis] as usize;
    let inner: usize = dims[axis + 1..].iter().product::<i64>() as usize;
    let chan = |i: usize| (i / inner) % c;
    let mut amax = vec![0f32; c];
    for (i, x) in v.iter().enumerate() {
        let k = chan(i);
        amax[k] = amax[k].max(x.abs());
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&a| if a > 0.0 { a / fp8::MAX } else { 1.0 })
        .collect();
    let q = v
        .iter()
        .enumerate()
        .map(|(i, x)| fp8::encode(x / scales[chan(i)]))
        .collect();
    (q, scales)
}

/// Insert FP8 Q/DQ at `sites` with activation amax per site node. Errors name a site whose
/// amax is missing or not positive and finite.
pub fn insert_fp8(
    g: &mut Graph,
    sites: &[Site],
    act_amax: &HashMap<String, f32>,
) -> Result<QdqStats, Error> {
    let mut stats = QdqStats::default();
    let zp = g.constant(Elem::F8E4M3, &[], vec![0]);
    for s in sites {
        let amax = *act_amax
            .get(&s.node)
            .ok_or_else(|| Error::Other(format!("no activation range for '{}'", s.node)))?;
        if !(amax.is_finite() && amax > 0.0) {
            return Err(Error::Other(format!(
                "activation range of '{}' is {amax}: calibration data gave no signal there",
                s.node
            )));
        }
        let idx = g
            .inits
            .iter()
            .position(|i| i.name == s.weight)
            .ok_or_else(|| Error::Other(format!("weight '{}' is not an initializer", s.weight)))?;
        let elem = g.inits[idx].elem;
        let dims = g.inits[idx].dims.clone();
        let values = {
            let blob: Blob = g.inits[idx].blob()?;
            values_f32(elem, blob.bytes())
        };
        let (q, scales) = quantize_weight(&values, &dims, s.axis);
        g.inits.remove(idx);
        let wq = g.initializer(
            &format!("{}.fp8", s.weight),
            dims,
            Elem::F8E4M3,
            InitData::Bytes(q),
        );
        let sc: Vec<u8> = scales.iter().flat_map(|&x| scalar_bytes(elem, x)).collect();
        let ws = g.initializer(
            &format!("{}.fp8_scale", s.weight),
            vec![scales.len() as i64],
            elem,
            InitData::Bytes(sc),
        );
        let zp_c = g.constant(Elem::F8E4M3, &[scales.len() as i64], vec![0; scales.len()]);
        let w_dq = g.dequantize(
            &wq,
            &ws,
            &zp_c,
            Some(s.axis as i64),
            &format!("{}.weight_dq", s.node),
        );
        let a_scale = g.constant(elem, &[], scalar_bytes(elem, amax / fp8::MAX));
        let a_q = g.quantize(&s.act, &a_scale, &zp, None, &format!("{}.input_q", s.node));
        let a_dq = g.dequantize(&a_q, &a_scale, &zp, None, &format!("{}.input_dq", s.node));
        let node = g
            .nodes
            .iter_mut()
            .find(|n| n.name == s.node)
            .expect("site node exists");
        node.inputs[0] = a_dq;
        node.inputs[1] = w_dq;
        match node.op {
            "Conv" => stats.quantized_convs += 1,
            _ => stats.quantized_matmuls += 1,
        }
    }
    stats.kept_high_precision =
        g.nodes.iter().filter(|n| n.op == "Conv").count() - stats.quantized_convs;
    toposort(g);
    Ok(stats)
}

/// Re-order nodes so every value is produced before use (new Q/DQ nodes were appended at the
/// end); among ready nodes the original order wins, so untouched graphs keep their order.
pub fn toposort(g: &mut Graph) {
    let produced: HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let n = g.nodes.len();
    let mut indeg = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in g.nodes.iter().enumerate() {
        for inp in &node.inputs {
            if let Some(&p) = produced.get(inp.as_str()) {
                indeg[i] += 1;
                users[p].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    assert_eq!(order.len(), n, "graph has a cycle");
    let mut old: Vec<Option<Node>> = std::mem::take(&mut g.nodes).into_iter().map(Some).collect();
    g.nodes = order
        .into_iter()
        .map(|i| old[i].take().expect("each node once"))
        .collect();
}
