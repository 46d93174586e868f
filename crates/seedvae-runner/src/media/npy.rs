//! `.npy` arrays (format versions 1–3; little-endian f32, f16 or f64, C order): a paranoid
//! parser (every length checked before use, errors saying what was expected and found) and the
//! version-1 header seedvae writes.
//!
//! Ours rather than `npyz` / `ndarray-npy`: the reader must bound what it allocates by the
//! header before reading the data and name the field that is wrong; a whole-file parse through a
//! general crate gives neither, and the format subset we take is small.

use crate::tensor::Tensor;
use crate::{bad, Error};
use seedvae_weights::DType;
use std::path::Path;

/// What is wrong with a `.npy` file (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

impl From<&str> for Malformed {
    fn from(s: &str) -> Malformed {
        Malformed(s.to_string())
    }
}

impl From<String> for Malformed {
    fn from(s: String) -> Malformed {
        Malformed(s)
    }
}

/// Read a `.npy` file as an f32 tensor.
pub fn read(path: &Path) -> Result<Tensor, Error> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
    parse_npy(&bytes).map_err(|e| bad(path, e))
}

/// A `.npy` version 1 header for `descr` (e.g. `<f4`) and a Python shape tuple text.
pub fn npy_header_text(descr: &str, shape: &str) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b
}

/// Parse a `.npy` file (format versions 1–3).
pub fn parse_npy(b: &[u8]) -> Result<Tensor, Malformed> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10usize),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => {
            return Err(Malformed(format!(
                ".npy format version {v} is not supported (1–3 are)"
            )))
        }
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "non-text .npy header")?;
    let field = |key: &str| -> Result<&str, Malformed> {
        let i = header
            .find(&format!("'{key}'"))
            .ok_or(format!(".npy header has no '{key}'"))?;
        Ok(header[i + key.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("bad 'descr' in .npy header")?;
    if field("fortran_order")?.starts_with("True") {
        return Err(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape_txt = field("shape")?;
    let shape_txt = shape_txt
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("bad 'shape' in .npy header")?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}'"))
        })
        .collect::<Result<_, _>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    let size = match descr {
        "<f4" => 4,
        "<f2" => 2,
        "<f8" => 8,
        d => {
            return Err(Malformed(format!(
                "dtype '{d}' is not supported (little-endian float32, float16 or float64 are)"
            )))
        }
    };
    let data = &b[end..];
    let need = n.checked_mul(size).ok_or("shape overflows")?;
    if data.len() != need {
        return Err(Malformed(format!(
            "data is {} bytes, shape {shape:?} of '{descr}' needs {need}",
            data.len()
        )));
    }
    let v: Vec<f32> = match size {
        4 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        2 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
    };
    Ok(Tensor::f32(shape, v))
}

/// The `.npy` (version 1) header for a little-endian C-order array.
pub fn header(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let descr = if dtype == DType::F16 { "<f2" } else { "<f4" };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    npy_header_text(descr, &shape_txt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut b = npy_header_text(descr, shape);
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn npy_round_trips_and_refuses_bad_files() {
        let vals = [1.5f32, -2.0, 0.25, 8.0, 3.0, -1.0];
        let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = parse_npy(&npy("<f4", "(1, 2, 3)", &data)).unwrap();
        assert_eq!(t.shape, vec![1, 2, 3]);
        assert_eq!(t.to_f32(), vals);
        let d16: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(parse_npy(&npy("<f2", "(6,)", &d16)).unwrap().to_f32(), vals);
        let e = parse_npy(&npy("<f4", "(1, 2, 4)", &data))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs 32"), "{e}");
        let e = parse_npy(&npy("<i8", "(6,)", &data))
            .unwrap_err()
            .to_string();
        assert!(e.contains("<i8"), "{e}");
        let e = parse_npy(&npy(
            "<f4",
            "(99999999999, 99999999999, 99999999999)",
            &data,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("overflow"), "{e}");
        assert!(parse_npy(b"\x93NUMPY\x01\x00\xff\xff").is_err());
        assert!(parse_npy(b"PK\x03\x04").is_err());
    }
}
