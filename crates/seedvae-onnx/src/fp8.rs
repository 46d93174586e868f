//! FP8 E4M3FN (the ONNX `FLOAT8E4M3FN` / TensorRT FP8 format): 1 sign, 4 exponent (bias 7) and
//! 3 mantissa bits, no infinities, NaN = S.1111.111, largest finite 448, smallest subnormal 2^-9.

pub const MAX: f32 = 448.0;

/// Decode one E4M3FN byte.
pub fn decode(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = (b >> 3) & 0xF;
    let m = (b & 7) as f32;
    if e == 0xF && b & 7 == 7 {
        return f32::NAN;
    }
    let mag = if e == 0 {
        m * 2f32.powi(-9)
    } else {
        (1.0 + m / 8.0) * 2f32.powi(e as i32 - 7)
    };
    sign * mag
}

/// Encode with round-to-nearest-even, saturating to ±448 (as QuantizeLinear with saturate=1).
pub fn encode(x: f32) -> u8 {
    if x.is_nan() {
        return 0x7F;
    }
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    let a = (x.abs() as f64).min(MAX as f64);
    // Quantum of the binade of `a` (subnormal binade below 2^-6): 3 mantissa bits.
    let e = if a > 0.0 {
        a.log2().floor().max(-6.0)
    } else {
        -6.0
    };
    let q = 2f64.powf(e - 3.0);
    let n = a / q;
    let mut r = n.floor();
    let frac = n - r;
    if frac > 0.5 || (frac == 0.5 && r % 2.0 == 1.0) {
        r += 1.0;
    }
    let v = (r * q).min(MAX as f64);
    if v == 0.0 {
        return sign;
    }
    let e2 = v.log2().floor();
    let bits = if e2 < -6.0 {
        (v / 2f64.powi(-9)).round() as u8
    } else {
        let m = ((v / 2f64.powf(e2) - 1.0) * 8.0).round() as u8;
        (((e2 as i32 + 7) as u8) << 3) | m
    };
    sign | bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finite_code_round_trips() {
        for b in 0u8..=255 {
            let v = decode(b);
            if v.is_nan() {
                continue;
            }
            let back = encode(v);
            // -0 encodes as 0x80, +0 as 0x00: both decode to zero.
            assert!(
                back == b || (v == 0.0 && decode(back) == 0.0),
                "{b:#04x} -> {v} -> {back:#04x}"
            );
        }
        assert_eq!(decode(0x7E), 448.0);
        assert_eq!(decode(0x01), 2f32.powi(-9));
    }

    #[test]
    fn rounds_to_nearest_even_and_saturates() {
        // Between 1.0 (0x38) and 1.125 (0x39): the midpoint goes to the even mantissa (1.0).
        assert_eq!(encode(1.0625), 0x38);
        assert_eq!(encode(1.07), 0x39);
        // Between 1.125 and 1.25 the midpoint goes up to 1.25 (even).
        assert_eq!(encode(1.1875), 0x3A);
        assert_eq!(encode(1e6), 0x7E);
        assert_eq!(encode(-1e6), 0xFE);
        assert_eq!(encode(2f32.powi(-11)), 0x00);
        // Largest error over a sweep stays within half a quantum.
        for i in 1..20000 {
            let x = i as f32 * 0.0223;
            let y = decode(encode(x));
            let q = 2f32.powf((x.min(MAX).log2().floor().max(-6.0)) - 3.0);
            assert!((x.min(MAX) - y).abs() <= q / 2.0 + 1e-6, "{x} -> {y}");
        }
    }
}
