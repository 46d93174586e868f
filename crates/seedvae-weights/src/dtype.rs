//! Element types of tensors as stored in a file. SafeTensors and unquantized GGUF tensors keep
//! their stored type (so fp16 weights can be exported to an fp16 graph without a round trip);
//! quantized GGUF tensors are dequantized to F32 on load.

use half::{bf16, f16};
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 => 8,
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The SafeTensors spelling ("F16", ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
        }
    }

    pub fn from_safetensors(s: &str) -> Option<DType> {
        Some(match s {
            "F64" => DType::F64,
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// View little-endian bytes as a slice of `T` without copying when the bytes are aligned
/// (memory-mapped files written by Python are); copy otherwise.
pub fn cast_le<T: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [T]> {
    const {
        assert!(
            cfg!(target_endian = "little"),
            "stored tensors are little-endian"
        )
    };
    match bytemuck::try_cast_slice::<u8, T>(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    }
}

/// Decode stored bytes of `dtype` to f32 (f64 narrows).
pub fn to_f32(dtype: DType, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        DType::F32 => cast_le::<f32>(bytes).into_owned(),
        DType::F64 => cast_le::<f64>(bytes).iter().map(|&v| v as f32).collect(),
        // The slice conversions use F16C/NEON when the CPU has them (runtime detection).
        DType::F16 => {
            use half::slice::HalfFloatSliceExt;
            let src = cast_le::<f16>(bytes);
            let mut out = vec![0f32; src.len()];
            src.convert_to_f32_slice(&mut out);
            out
        }
        DType::BF16 => {
            use half::slice::HalfFloatSliceExt;
            let src = cast_le::<bf16>(bytes);
            let mut out = vec![0f32; src.len()];
            src.convert_to_f32_slice(&mut out);
            out
        }
    }
}

/// Decode stored bytes of `dtype` to f64 (used for goldens and error metrics).
pub fn to_f64(dtype: DType, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        DType::F64 => cast_le::<f64>(bytes).into_owned(),
        _ => to_f32(dtype, bytes).into_iter().map(f64::from).collect(),
    }
}

/// Number of NaN/Inf elements, checked on the raw bits (touches every byte once, no conversion).
/// A value is non-finite iff its exponent bits are all set; the common all-finite case is decided
/// by a max-reduction over the masked exponents, which vectorizes, and only then counted.
pub fn count_non_finite(dtype: DType, bytes: &[u8]) -> usize {
    fn scan<T: bytemuck::Pod + Ord + Copy + std::ops::BitAnd<Output = T>>(
        bytes: &[u8],
        exp: T,
    ) -> usize {
        let v = cast_le::<T>(bytes);
        let zero: T = bytemuck::Zeroable::zeroed();
        let top = v
            .chunks(4096)
            .map(|c| c.iter().fold(zero, |m, &x| m.max(x & exp)))
            .max()
            .unwrap_or(zero);
        if top != exp {
            return 0;
        }
        v.iter().filter(|&&x| x & exp == exp).count()
    }
    match dtype {
        DType::F64 => scan::<u64>(bytes, 0x7ff0_0000_0000_0000),
        DType::F32 => scan::<u32>(bytes, 0x7f80_0000),
        DType::F16 => scan::<u16>(bytes, 0x7c00),
        DType::BF16 => scan::<u16>(bytes, 0x7f80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_is_found_in_every_dtype() {
        let f32s: Vec<u8> = [1.0f32, f32::NAN, f32::INFINITY, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(count_non_finite(DType::F32, &f32s), 2);
        let f16s: Vec<u8> = [f16::from_f32(1.0), f16::NAN, f16::NEG_INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(count_non_finite(DType::F16, &f16s), 2);
        let bf16s: Vec<u8> = [bf16::from_f32(3.0), bf16::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(count_non_finite(DType::BF16, &bf16s), 1);
        assert_eq!(count_non_finite(DType::F64, &f64::NAN.to_le_bytes()), 1);
    }

    #[test]
    fn unaligned_bytes_are_copied_not_misread() {
        let mut buf = vec![0u8];
        buf.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(to_f32(DType::F32, &buf[1..]), vec![1.5]);
    }
}
