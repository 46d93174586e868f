//! `.npy` arrays (format versions 1–3; little-endian f32, f16 or f64, C order) and the
//! version-1 header seedvae writes.
//!
//! The header (a Python dict literal) is parsed by `ndarray-npy`'s `Header` (a maintained crate;
//! like numpy, a repeated key takes the last value); the checks and messages on top are ours:
//! supported dtypes and order, the shape's element count without overflow, and the data's
//! length against the header *before* any data is read or allocated — from the file's size on
//! disk, so a huge or endless file is refused without reading it.

use crate::tensor::Tensor;
use crate::{bad, Error};
use ndarray_npy::npy::header::Header;
use seedvae_weights::DType;
use std::io::{Read, Seek};
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

/// Read a `.npy` file as an f32 tensor: header first, then exactly the data it announces.
pub fn read(path: &Path) -> Result<Tensor, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| bad(path, e))?;
    let len = f.metadata().map_err(|e| bad(path, e))?.len();
    let layout = layout(&mut f).map_err(|e| bad(path, e))?;
    let start = f.stream_position().map_err(|e| bad(path, e))?;
    layout
        .check_len(len.saturating_sub(start))
        .map_err(|e| bad(path, e))?;
    let elems: u64 = layout.shape.iter().product::<usize>() as u64;
    seedvae_weights::memory::check(layout.bytes as u64 + 4 * elems, || {
        format!("{}: its data and the array as f32", path.display())
    })?;
    let mut data =
        seedvae_weights::memory::zeroed(layout.bytes, || format!("{}: its data", path.display()))?;
    f.read_exact(&mut data).map_err(|e| bad(path, e))?;
    Ok(layout.decode(&data))
}

/// What a header announces.
struct Layout {
    descr: &'static str,
    shape: Vec<usize>,
    elem: usize,
    bytes: usize,
}

/// Parse and check a header from `r` (left at the first data byte).
fn layout(r: &mut impl Read) -> Result<Layout, Malformed> {
    let h = Header::from_reader(r)
        .map_err(|e| Malformed(format!("not a readable .npy header: {e}")))?;
    let descr = match &h.type_descriptor {
        py_literal::Value::String(d) => d.as_str(),
        other => {
            return Err(Malformed(format!(
                "dtype {other} is not supported (little-endian float32, float16 or float64 are)"
            )))
        }
    };
    let (descr, elem) = match descr {
        "<f4" => ("<f4", 4),
        "<f2" => ("<f2", 2),
        "<f8" => ("<f8", 8),
        d => {
            return Err(Malformed(format!(
                "dtype '{d}' is not supported (little-endian float32, float16 or float64 are)"
            )))
        }
    };
    if h.layout.is_fortran() {
        return Err(
            "Fortran-order arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let bytes = h
        .shape
        .iter()
        .try_fold(elem, |a: usize, &d| a.checked_mul(d))
        .ok_or("shape overflows")?;
    Ok(Layout {
        descr,
        shape: h.shape,
        elem,
        bytes,
    })
}

impl Layout {
    fn check_len(&self, have: u64) -> Result<(), Malformed> {
        if have != self.bytes as u64 {
            return Err(Malformed(format!(
                "data is {have} bytes, shape {:?} of '{}' needs {}",
                self.shape, self.descr, self.bytes
            )));
        }
        Ok(())
    }

    /// The values, `data` having been checked to hold exactly the shape (`check_len`).
    fn decode(&self, data: &[u8]) -> Tensor {
        let v: Vec<f32> = match self.elem {
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
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
        };
        Tensor::exact(self.shape.clone(), v)
    }
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

/// Parse a `.npy` file held in memory (format versions 1–3).
pub fn parse_npy(b: &[u8]) -> Result<Tensor, Malformed> {
    let mut r = std::io::Cursor::new(b);
    let layout = layout(&mut r)?;
    let data = &b[r.position() as usize..];
    layout.check_len(data.len() as u64)?;
    Ok(layout.decode(data))
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
