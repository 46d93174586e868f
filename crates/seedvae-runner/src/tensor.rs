//! Host tensors exchanged with backends: f32 for the graph's public I/O, f32 or f16 for states.

use crate::Error;
use half::f16;

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host tensor: a shape and exactly as many values (the constructors check it, and nothing
/// outside can change one without the other).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    // Inside the runner, code that builds a tensor from its own shape arithmetic uses the fields
    // (and `exact`); everything else goes through the checked constructors.
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Data,
}

impl Tensor {
    /// A tensor of `shape` holding `data`; an error when their sizes differ.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor, Error> {
        let n = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| Error::Input(format!("tensor shape {shape:?} is too large")))?;
        if n != data.len() {
            return Err(Error::Input(format!(
                "tensor shape {shape:?} holds {n} values; {} given",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor whose values were made for `shape` by the runner's own arithmetic (the sizes agree
    /// by construction).
    pub(crate) fn exact(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), v.len(), "{shape:?}");
        Tensor {
            shape,
            data: Data::F32(v),
        }
    }

    /// An f32 tensor of `shape` holding `v`; an error when their sizes differ.
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, Error> {
        Tensor::new(shape, Data::F32(v))
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The f32 values to change in place (the shape stays); None for f16 data.
    pub fn f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            Data::F16(_) => None,
        }
    }

    /// The same values under another shape of as many values.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Tensor, Error> {
        Tensor::new(shape, self.data)
    }

    /// The shape and the values, taken apart.
    pub fn into_parts(self) -> (Vec<usize>, Data) {
        (self.shape, self.data)
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

    /// Values as f32, the buffer itself when it is f32 already.
    pub fn into_f32(self) -> Vec<f32> {
        match self.data {
            Data::F32(v) => v,
            Data::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            Data::F16(_) => None,
        }
    }

    /// Values as f32 to read: the buffer itself when it is f32 (no copy of a large input just
    /// to look at it), else converted.
    pub fn values(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.as_f32() {
            Some(v) => std::borrow::Cow::Borrowed(v),
            None => std::borrow::Cow::Owned(self.to_f32()),
        }
    }
}

impl Tensor {
    /// The window `t × y × x` (half-open ranges) of a `[1, C, T, H, W]` tensor, as f32.
    pub fn window(&self, t: (usize, usize), y: (usize, usize), x: (usize, usize)) -> Tensor {
        let [_, c, tt, hh, ww] = <[usize; 5]>::try_from(self.shape.as_slice()).expect("5-D tensor");
        assert!(t.1 <= tt && y.1 <= hh && x.1 <= ww && t.0 < t.1 && y.0 < y.1 && x.0 < x.1);
        let (nt, ny, nx) = (t.1 - t.0, y.1 - y.0, x.1 - x.0);
        let mut out = Vec::with_capacity(c * nt * ny * nx);
        let mut push = |src: &dyn Fn(usize) -> f32, base: usize| {
            for i in 0..nx {
                out.push(src(base + i));
            }
        };
        for ci in 0..c {
            for ti in t.0..t.1 {
                for yi in y.0..y.1 {
                    let base = ((ci * tt + ti) * hh + yi) * ww + x.0;
                    match &self.data {
                        Data::F32(v) => push(&|i| v[i], base),
                        Data::F16(v) => push(&|i| v[i].to_f32(), base),
                    }
                }
            }
        }
        Tensor::exact(vec![1, c, nt, ny, nx], out)
    }
}
