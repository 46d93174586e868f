//! Reading latents and videos as host tensors: `.safetensors` (a named tensor, or the file's only
//! one) and `.npy` (f32, f16 or f64, C order). Every length is checked before use; errors name
//! the file, the tensor, what was expected and what was found.

use crate::tensor::Tensor;
use crate::Error;
use std::path::Path;

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Input(format!("{}: {msg}", path.display()))
}

/// One tensor from `path` as f32: `.npy`, or `.safetensors` holding `name` (or only one tensor).
pub fn read_tensor(path: &Path, name: &str) -> Result<Tensor, Error> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if is_npy {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        return parse_npy(&bytes).map_err(|e| bad(path, e));
    }
    let w = seedvae_weights::WeightFile::open(path)?;
    let t = match w.get(name) {
        Some(t) => t,
        None if w.tensors().len() == 1 => &w.tensors()[0],
        None => {
            let names: Vec<&str> = w.tensors().iter().map(|t| t.name.as_str()).collect();
            return Err(bad(
                path,
                format!("no tensor '{name}' (found: {})", names.join(", ")),
            ));
        }
    };
    let v = w.f32(&t.name)?.into_owned();
    Ok(Tensor::f32(t.shape.clone(), v))
}

/// A decoder input: `[1, 16, T, h, w]` in VAE space.
pub fn read_latent(path: &Path) -> Result<Tensor, Error> {
    let t = read_tensor(path, "latent")?;
    check_shape(path, "latent", &t, 16)?;
    Ok(t)
}

/// An encoder input: `[1, 3, T, H, W]` in [−1, 1].
pub fn read_video(path: &Path) -> Result<Tensor, Error> {
    let t = read_tensor(path, "video")?;
    check_shape(path, "video", &t, 3)?;
    Ok(t)
}

fn check_shape(path: &Path, what: &str, t: &Tensor, ch: usize) -> Result<(), Error> {
    let s = &t.shape;
    if s.len() != 5 || s[0] != 1 || s[1] != ch || s[2..].contains(&0) {
        return Err(bad(
            path,
            format!("{what} must be [1, {ch}, T, H, W] with T, H, W ≥ 1; found {s:?}"),
        ));
    }
    Ok(())
}

/// The first `t` frames and the central `h × w` window (at most) of a `[1, C, T, H, W]` tensor.
pub fn crop(x: &Tensor, t: usize, h: usize, w: usize) -> Tensor {
    let [tt, hh, ww] = [x.shape[2], x.shape[3], x.shape[4]];
    let (t, h, w) = (t.min(tt), h.min(hh), w.min(ww));
    let (y0, x0) = ((hh - h) / 2, (ww - w) / 2);
    x.window((0, t), (y0, y0 + h), (x0, x0 + w))
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
pub fn parse_npy(b: &[u8]) -> Result<Tensor, String> {
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
            return Err(format!(
                ".npy format version {v} is not supported (1–3 are)"
            ))
        }
    };
    let end = start
        .checked_add(hlen)
        .filter(|&e| e <= b.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&b[start..end]).map_err(|_| "non-text .npy header")?;
    let field = |key: &str| -> Result<&str, String> {
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
            return Err(format!(
                "dtype '{d}' is not supported (little-endian float32, float16 or float64 are)"
            ))
        }
    };
    let data = &b[end..];
    let need = n.checked_mul(size).ok_or("shape overflows")?;
    if data.len() != need {
        return Err(format!(
            "data is {} bytes, shape {shape:?} of '{descr}' needs {need}",
            data.len()
        ));
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
        let e = parse_npy(&npy("<f4", "(1, 2, 4)", &data)).unwrap_err();
        assert!(e.contains("needs 32"), "{e}");
        let e = parse_npy(&npy("<i8", "(6,)", &data)).unwrap_err();
        assert!(e.contains("<i8"), "{e}");
        let e = parse_npy(&npy(
            "<f4",
            "(99999999999, 99999999999, 99999999999)",
            &data,
        ))
        .unwrap_err();
        assert!(e.contains("overflow"), "{e}");
        assert!(parse_npy(b"\x93NUMPY\x01\x00\xff\xff").is_err());
        assert!(parse_npy(b"PK\x03\x04").is_err());
    }

    #[test]
    fn crop_takes_the_centre() {
        let v: Vec<f32> = (0..2 * 3 * 4 * 4).map(|i| i as f32).collect();
        let x = Tensor::f32(vec![1, 2, 3, 4, 4], v);
        let c = crop(&x, 2, 2, 2);
        assert_eq!(c.shape, vec![1, 2, 2, 2, 2]);
        // channel 0, frame 0: rows 1-2, cols 1-2 of a 4×4 grid numbered row-major.
        assert_eq!(&c.to_f32()[..4], &[5.0, 6.0, 9.0, 10.0]);
        assert_eq!(c.to_f32()[4], 16.0 + 5.0);
    }
}
