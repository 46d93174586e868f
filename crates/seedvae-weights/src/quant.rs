//! GGML tensor types and their dequantization to f32.
//!
//! These are the types the SeedVR2 ComfyUI node accepts for a VAE GGUF. Each block format is a
//! small function written from the ggml block layouts; tests compare every one against gguf-py's
//! `gguf.quants.dequantize` (the reference Python implementation) on real blocks.

use half::{bf16, f16};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
}

const QK_K: usize = 256;

impl GgmlType {
    pub const SUPPORTED: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q5_1 => 7,
            GgmlType::Q8_0 => 8,
            GgmlType::Q2K => 10,
            GgmlType::Q3K => 11,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::BF16 => 30,
        }
    }

    pub fn from_id(id: u32) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|t| t.id() == id)
    }

    /// Name for an id we may not support (for error messages).
    pub fn describe_id(id: u32) -> String {
        const KNOWN: &[(u32, &str)] = &[
            (9, "Q8_1"),
            (15, "Q8_K"),
            (16, "IQ2_XXS"),
            (17, "IQ2_XS"),
            (18, "IQ3_XXS"),
            (19, "IQ1_S"),
            (20, "IQ4_NL"),
            (21, "IQ3_S"),
            (22, "IQ2_S"),
            (23, "IQ4_XS"),
            (24, "I8"),
            (25, "I16"),
            (26, "I32"),
            (27, "I64"),
            (28, "F64"),
            (29, "IQ1_M"),
            (34, "TQ1_0"),
            (35, "TQ2_0"),
            (39, "MXFP4"),
        ];
        match Self::from_id(id) {
            Some(t) => t.name().to_string(),
            None => match KNOWN.iter().find(|(k, _)| *k == id) {
                Some((_, n)) => format!("{n} (id {id})"),
                None => format!("id {id}"),
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2K => "Q2_K",
            GgmlType::Q3K => "Q3_K",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            _ => QK_K,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q2K => 84,
            GgmlType::Q3K => 110,
            GgmlType::Q4K => 144,
            GgmlType::Q5K => 176,
            GgmlType::Q6K => 210,
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Dequantize whole blocks. `bytes.len()` must be a multiple of `type_size()` (the GGUF
    /// reader guarantees it).
    pub fn dequantize(self, bytes: &[u8]) -> Vec<f32> {
        assert_eq!(bytes.len() % self.type_size(), 0, "partial block");
        let n = bytes.len() / self.type_size() * self.block_size();
        let mut out = vec![0f32; n];
        let f: fn(&[u8], &mut [f32]) = match self {
            GgmlType::F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => |b, y| y[0] = h(b, 0),
            GgmlType::BF16 => |b, y| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q4_0 => dequant_q4_0,
            GgmlType::Q4_1 => dequant_q4_1,
            GgmlType::Q5_0 => dequant_q5_0,
            GgmlType::Q5_1 => dequant_q5_1,
            GgmlType::Q8_0 => dequant_q8_0,
            GgmlType::Q2K => dequant_q2_k,
            GgmlType::Q3K => dequant_q3_k,
            GgmlType::Q4K => dequant_q4_k,
            GgmlType::Q5K => dequant_q5_k,
            GgmlType::Q6K => dequant_q6_k,
        };
        for (b, y) in bytes
            .chunks_exact(self.type_size())
            .zip(out.chunks_exact_mut(self.block_size()))
        {
            f(b, y);
        }
        out
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// f16 at byte offset `o`, as f32.
fn h(b: &[u8], o: usize) -> f32 {
    f16::from_le_bytes([b[o], b[o + 1]]).to_f32()
}

// --- 32-element blocks: [d (f16)] [m (f16)]? [qh (u32)]? [qs] ---

fn dequant_q4_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        y[j] = ((qs[j] & 0xF) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

fn dequant_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        y[j] = (qs[j] & 0xF) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// The fifth bits of a Q5 block: bit j of `qh` belongs to element j.
fn q5_high(qh: u32, j: usize) -> (u8, u8) {
    (
        (((qh >> j) & 1) << 4) as u8,
        (((qh >> (j + 16)) & 1) << 4) as u8,
    )
}

fn dequant_q5_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let (h0, h1) = q5_high(qh, j);
        y[j] = (((qs[j] & 0xF) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = (((qs[j] >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

fn dequant_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (h(b, 0), h(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let (h0, h1) = q5_high(qh, j);
        y[j] = ((qs[j] & 0xF) | h0) as f32 * d + m;
        y[j + 16] = ((qs[j] >> 4) | h1) as f32 * d + m;
    }
}

fn dequant_q8_0(b: &[u8], y: &mut [f32]) {
    let d = h(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[2..34]) {
        *yj = q as i8 as f32 * d;
    }
}

// --- 256-element K-quant super-blocks ---

/// Q2_K: scales[16] (4-bit scale | 4-bit min), qs[64] (2 bits each), d, dmin.
fn dequant_q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (h(b, 80), h(b, 82));
    let mut is = 0;
    for (half, q) in qs.chunks_exact(32).enumerate() {
        for j in 0..4 {
            let shift = 2 * j;
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0xF) as f32, dmin * (sc >> 4) as f32);
                for l in 0..16 {
                    let q = (q[l + 16 * part] >> shift) & 3;
                    y[half * 128 + j * 32 + part * 16 + l] = dl * q as f32 - ml;
                }
            }
        }
    }
}

/// Q3_K: hmask[32], qs[64], 12 bytes of 16 packed 6-bit scales, d.
fn dequant_q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = h(b, 108);
    let scales = unpack_q3k_scales(packed);
    let mut is = 0;
    let mut m = 1u8;
    for (half, q) in qs.chunks_exact(32).enumerate() {
        for j in 0..4 {
            let shift = 2 * j;
            for part in 0..2 {
                let dl = d * (scales[is] as i32 - 32) as f32;
                is += 1;
                for l in 0..16 {
                    let k = l + 16 * part;
                    let low = ((q[k] >> shift) & 3) as i32;
                    let sub = if hmask[k] & m != 0 { 0 } else { 4 };
                    y[half * 128 + j * 32 + part * 16 + l] = dl * (low - sub) as f32;
                }
            }
            m <<= 1;
        }
    }
}

/// The 16 six-bit Q3_K scales: low 4 bits from bytes 0..8, high 2 bits from bytes 8..12.
fn unpack_q3k_scales(p: &[u8]) -> [u8; 16] {
    let mut s = [0u8; 16];
    for (i, v) in s.iter_mut().enumerate() {
        let low = if i < 8 { p[i] & 0xF } else { p[i - 8] >> 4 };
        let high = (p[8 + i % 4] >> (2 * (i / 4))) & 3;
        *v = low | (high << 4);
    }
    s
}

/// Scale and min number `j` (0..8) of the 12-byte packed 6-bit fields of Q4_K/Q5_K.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Effective (scale, min) of the two 32-element sub-blocks of 64-element chunk `c` (Q4_K/Q5_K).
fn k4_pair(c: usize, d: f32, dmin: f32, scales: &[u8]) -> [(f32, f32); 2] {
    [2 * c, 2 * c + 1].map(|j| {
        let (sc, m) = scale_min_k4(j, scales);
        (d * sc as f32, dmin * m as f32)
    })
}

/// Q4_K: d, dmin, scales[12], qs[128].
fn dequant_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h(b, 0), h(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for (c, q) in qs.chunks_exact(32).enumerate() {
        let [(d1, min1), (d2, min2)] = k4_pair(c, d, dmin, scales);
        for l in 0..32 {
            y[c * 64 + l] = d1 * (q[l] & 0xF) as f32 - min1;
            y[c * 64 + 32 + l] = d2 * (q[l] >> 4) as f32 - min2;
        }
    }
}

/// Q5_K: d, dmin, scales[12], qh[32], qs[128].
fn dequant_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (h(b, 0), h(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for (c, q) in qs.chunks_exact(32).enumerate() {
        let [(d1, min1), (d2, min2)] = k4_pair(c, d, dmin, scales);
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for l in 0..32 {
            let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[c * 64 + l] = d1 * ((q[l] & 0xF) + hi1) as f32 - min1;
            y[c * 64 + 32 + l] = d2 * ((q[l] >> 4) + hi2) as f32 - min2;
        }
    }
}

/// Q6_K: ql[128], qh[64], scales[16] (i8), d.
fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = h(b, 208);
    for n in 0..2 {
        let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
        let y = &mut y[128 * n..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8 as f32) * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8 as f32) * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8 as f32) * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8 as f32) * q4 as f32;
        }
    }
}

/// Quantize f32 values to Q8_0 blocks (round-to-nearest, as ggml's reference quantizer).
/// Used to write quantized checkpoints for tests and demos.
pub fn quantize_q8_0(x: &[f32]) -> Vec<u8> {
    assert_eq!(x.len() % 32, 0, "Q8_0 needs whole 32-element blocks");
    let mut out = Vec::with_capacity(x.len() / 32 * 34);
    for blk in x.chunks_exact(32) {
        let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(blk.iter().map(|v| (v * id).round() as i8 as u8));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_round_trip_within_half_a_step() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 30.0) * 0.37).collect();
        let y = GgmlType::Q8_0.dequantize(&quantize_q8_0(&x));
        let step = 30.0 * 0.37 / 127.0 * 1.01;
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= step, "{a} vs {b}");
        }
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_are_named() {
        for t in GgmlType::SUPPORTED {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::describe_id(23), "IQ4_XS (id 23)");
        assert_eq!(GgmlType::describe_id(999), "id 999");
    }
}
