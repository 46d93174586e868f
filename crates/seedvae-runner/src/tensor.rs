//! Host tensors exchanged with backends: f32 for the graph's public I/O, f32 or f16 for states.

use half::f16;

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            v.len(),
            "shape {shape:?} vs {} values",
            v.len()
        );
        Tensor {
            shape,
            data: Data::F32(v),
        }
    }

    /// A zero tensor of the given element type (used for empty first-chunk states).
    pub fn zeros(shape: Vec<usize>, elem: seedvae_onnx::Elem) -> Self {
        let n = shape.iter().product();
        match elem {
            seedvae_onnx::Elem::F16 => Tensor {
                shape,
                data: Data::F16(vec![f16::ZERO; n]),
            },
            _ => Tensor {
                shape,
                data: Data::F32(vec![0.0; n]),
            },
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn nbytes(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len() * 4,
            Data::F16(v) => v.len() * 2,
        }
    }

    /// Values as f32 (converting f16).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            Data::F16(_) => None,
        }
    }
}
