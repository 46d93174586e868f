//! The engine against its I/O contract: what it accepts per call (from the manifest), its I/O
//! table as TensorRT-RTX reports it, output shapes, and host tensors as the bytes it reads.

use crate::planner::Limits;
use crate::tensor::{Data, Tensor};
use crate::Error;
use seedvae_engine::cache::Manifest;
use seedvae_onnx::{Contract, Elem};

/// What an engine accepts per call, from its manifest's input ranges (the part's main input).
pub fn limits(m: &Manifest) -> Result<Limits, Error> {
    let main = &m.info.contract.inputs[0].name;
    let r = m
        .info
        .input_ranges
        .iter()
        .find(|r| &r.name == main)
        .ok_or_else(|| Error::Backend(format!("the manifest has no input range for '{main}'")))?;
    let dim = |i: usize| -> Result<(usize, usize), Error> {
        match (r.min.get(i), r.max.get(i)) {
            (Some(&a), Some(&b)) if a >= 1 && b >= a => Ok((a as usize, b as usize)),
            _ => Err(Error::Backend(format!(
                "bad input range for '{main}': {:?}..{:?}",
                r.min, r.max
            ))),
        }
    };
    Ok(Limits {
        t: dim(2)?,
        h: dim(3)?,
        w: dim(4)?,
    })
}

/// An output's shape as TensorRT-RTX reports it: no rank (not an I/O tensor) or a −1 dimension
/// (a data-dependent shape) is an error naming the tensor, not an index out of bounds.
pub fn output_shape(name: &str, nb_dims: i32, d: &[i64]) -> Result<Vec<usize>, Error> {
    let rank = usize::try_from(nb_dims)
        .ok()
        .filter(|&r| r <= d.len())
        .ok_or_else(|| {
            Error::Backend(format!(
                "the engine reports no shape for output '{name}' (rank {nb_dims}): it does not \
                 match this model's contract"
            ))
        })?;
    d[..rank]
        .iter()
        .map(|&x| usize::try_from(x))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            Error::Backend(format!(
                "the engine reports shape {:?} for output '{name}'; seedvae needs every dimension known",
                &d[..rank]
            ))
        })
}

/// One I/O tensor as a deserialized engine describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineTensor {
    pub name: String,
    pub input: bool,
    /// None: a type seedvae graphs never have.
    pub elem: Option<Elem>,
    pub on_device: bool,
    pub shape_io: bool,
    pub linear: bool,
}

/// The engine's I/O table against the contract it was built from (review B3): every contract
/// tensor is there, with its direction and element type, as a linear device tensor that is not a
/// shape input; and nothing else is. The first mismatch, naming the tensor, is the error.
pub fn check_io_table(c: &Contract, engine: &[EngineTensor]) -> Result<(), Error> {
    let bad = |name: &str, why: String| {
        Err(Error::Backend(format!(
            "the engine's tensor '{name}' {why}: the engine does not match its manifest's contract \
             (rebuild it with `seedvae build`)"
        )))
    };
    let want = c
        .inputs
        .iter()
        .map(|t| (t, true))
        .chain(c.outputs.iter().map(|t| (t, false)));
    for (t, input) in want {
        let Some(e) = engine.iter().find(|e| e.name == t.name) else {
            return bad(&t.name, "is missing".into());
        };
        if e.input != input {
            let dir = |i: bool| if i { "an input" } else { "an output" };
            return bad(
                &t.name,
                format!("is {}, expected {}", dir(e.input), dir(input)),
            );
        }
        if e.elem != Some(t.elem) {
            return bad(
                &t.name,
                format!("has type {:?}, expected {:?}", e.elem, t.elem),
            );
        }
        if !e.on_device || e.shape_io || !e.linear {
            return bad(
                &t.name,
                "is not a linear device tensor (host, shape or vectorized tensors are not supported)"
                    .into(),
            );
        }
    }
    let known = |n: &str| c.inputs.iter().chain(&c.outputs).any(|t| t.name == n);
    if let Some(e) = engine.iter().find(|e| !known(&e.name)) {
        return bad(&e.name, "is not in the contract".into());
    }
    Ok(())
}

/// The engine's I/O table, read through TensorRT-RTX.
pub(super) fn io_table(eng: &trtx::CudaEngine) -> Result<Vec<EngineTensor>, Error> {
    let n = eng
        .nb_io_tensors()
        .map_err(super::trt("I/O tensor count"))?;
    (0..n)
        .map(|i| {
            let name = eng
                .io_tensor_name(i)
                .map_err(super::trt("I/O tensor name"))?;
            let elem = match eng
                .tensor_data_type(&name)
                .map_err(super::trt("tensor type"))?
            {
                trtx::DataType::kFLOAT => Some(Elem::F32),
                trtx::DataType::kHALF => Some(Elem::F16),
                trtx::DataType::kINT64 => Some(Elem::I64),
                trtx::DataType::kFP8 => Some(Elem::F8E4M3),
                _ => None,
            };
            Ok(EngineTensor {
                input: eng
                    .tensor_io_mode(&name)
                    .map_err(super::trt("tensor I/O mode"))?
                    == trtx::TensorIOMode::kINPUT,
                on_device: eng
                    .tensor_location(&name)
                    .map_err(super::trt("tensor location"))?
                    == trtx::TensorLocation::kDEVICE,
                shape_io: eng
                    .is_shape_inference_io(&name)
                    .map_err(super::trt("shape I/O"))?,
                linear: eng
                    .tensor_format(&name)
                    .map_err(super::trt("tensor format"))?
                    == trtx::TensorFormat::kLINEAR,
                elem,
                name,
            })
        })
        .collect()
}

/// `updateDeviceMemorySizeForShapes` answers 0 when it failed.
pub fn activation_size(bytes: usize) -> Result<usize, Error> {
    if bytes == 0 {
        return Err(Error::Backend(
            "TensorRT-RTX could not size the activation memory for these input shapes (are they \
             inside the engine's profile?)"
                .into(),
        ));
    }
    Ok(bytes)
}

pub(super) fn tensor_bytes(t: &Tensor) -> &[u8] {
    // SAFETY: f32 and f16 are plain 4- and 2-byte values without padding; the slice covers
    // exactly the vector's initialized elements and borrows it.
    unsafe {
        match &t.data {
            Data::F32(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 4),
            Data::F16(v) => std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 2),
        }
    }
}

pub(super) fn tensor_from_bytes(shape: Vec<usize>, elem: Elem, b: &[u8]) -> Tensor {
    let data = match elem {
        Elem::F16 => Data::F16(
            b.chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        _ => Data::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    Tensor { shape, data }
}

#[cfg(test)]
mod tests {
    use super::super::runtime_cache_path;
    use super::*;
    use std::path::{Path, PathBuf};

    /// The I/O table an engine built from `c` would have.
    fn table_of(c: &Contract) -> Vec<EngineTensor> {
        let io = |t: &seedvae_onnx::TensorIo, input| EngineTensor {
            name: t.name.clone(),
            input,
            elem: Some(t.elem),
            on_device: true,
            shape_io: false,
            linear: true,
        };
        c.inputs
            .iter()
            .map(|t| io(t, true))
            .chain(c.outputs.iter().map(|t| io(t, false)))
            .collect()
    }

    #[test]
    fn buffer_sizes() {
        assert_eq!(
            crate::planner::tensor_bytes(&[1, 16, 2, 104, 104], Elem::F32),
            16 * 2 * 104 * 104 * 4
        );
        assert_eq!(
            crate::planner::tensor_bytes(&[1, 512, 2, 104, 104], Elem::F16),
            512 * 2 * 104 * 104 * 2
        );
        let t = Tensor::f32(vec![2], vec![1.5, -2.0]).unwrap();
        let back = tensor_from_bytes(vec![2], Elem::F32, tensor_bytes(&t));
        assert_eq!(back, t);
        let h = Tensor {
            shape: vec![1],
            data: Data::F16(vec![half::f16::from_f32(0.5)]),
        };
        assert_eq!(tensor_from_bytes(vec![1], Elem::F16, tensor_bytes(&h)), h);
        assert_eq!(
            runtime_cache_path(Path::new("/c/engines/k/engine.trt")),
            PathBuf::from("/c/engines/k/engine.trt.rtcache")
        );
    }

    #[test]
    fn bad_output_shapes_and_sizes_are_errors_not_panics() {
        assert_eq!(output_shape("video", 2, &[3, 4, 0, 0]).unwrap(), vec![3, 4]);
        let e = output_shape("video", -1, &[0; 8]).unwrap_err().to_string();
        assert!(e.contains("'video'") && e.contains("rank -1"), "{e}");
        assert!(output_shape("video", 9, &[1; 8]).is_err());
        let e = output_shape("state_out.3", 2, &[1, -1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("state_out.3") && e.contains("[1, -1]"), "{e}");
        assert!(activation_size(0).is_err());
        assert_eq!(activation_size(42).unwrap(), 42);
    }

    #[test]
    fn an_engine_whose_io_table_differs_from_its_contract_is_refused() {
        let w = seedvae_weights::WeightFile::open(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fixtures/vae_tiny/weights.safetensors"),
        );
        let Ok(w) = w else { return }; // the shared fixtures are beside the checkout in CI too
        let opts = seedvae_onnx::ExportOptions {
            part: seedvae_weights::Part::Decoder,
            precision: seedvae_onnx::Precision::Fp16,
            streaming: true,
        };
        let (_, c) = seedvae_onnx::export::build(&w, opts).unwrap();
        let good = table_of(&c);
        check_io_table(&c, &good).unwrap();
        let victim = c.states[5].input.clone();
        let mut t = good.clone();
        t.retain(|e| e.name != victim);
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains(&format!("'{victim}' is missing")));
        let mut t = good.clone();
        t[0].elem = Some(if t[0].elem == Some(Elem::F32) {
            Elem::F16
        } else {
            Elem::F32
        });
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("has type"));
        let mut t = good.clone();
        t[1].shape_io = true;
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("linear device tensor"));
        let mut t = good.clone();
        t.last_mut().unwrap().input = true;
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("expected an output"));
        let mut t = good;
        t.push(EngineTensor {
            name: "extra".into(),
            ..t[0].clone()
        });
        assert!(check_io_table(&c, &t)
            .unwrap_err()
            .to_string()
            .contains("'extra' is not in the contract"));
    }
}
