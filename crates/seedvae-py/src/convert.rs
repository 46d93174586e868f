//! numpy arrays ↔ the library's tensors (float32, C order; the Python half converts dtypes,
//! torch tensors and DLPack producers before they get here).

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use seedvae::Tensor;

/// A copy of `a` as a library tensor (the library works on owned buffers; the copy is made
/// while the GIL is held, so the array cannot change under a run).
pub fn tensor_in(a: &PyReadonlyArrayDyn<'_, f32>) -> PyResult<Tensor> {
    let shape = a.shape().to_vec();
    let mut data =
        seedvae::memory::with_capacity(a.len(), || format!("a copy of the input array {shape:?}"))
            .map_err(|e| pyo3::exceptions::PyMemoryError::new_err(e.to_string()))?;
    match a.as_slice() {
        Ok(s) => data.extend_from_slice(s),
        Err(_) => data.extend(a.as_array().iter().copied()),
    }
    Tensor::f32(shape, data).map_err(|e| crate::errors::InvalidInputError::new_err(e.to_string()))
}

/// A library tensor as a new numpy array (its buffer moved, not copied, when it is float32).
pub fn array_out(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyArrayDyn<f32>>> {
    let shape = t.shape().to_owned();
    let a = ArrayD::from_shape_vec(IxDyn(&shape), t.into_f32()).map_err(|e| {
        crate::errors::SeedvaeError::new_err(format!("internal: result shape: {e}"))
    })?;
    Ok(a.into_pyarray(py))
}
