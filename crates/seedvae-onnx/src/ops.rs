//! One function per ONNX operator the exporter emits (opset 21), all in this one place, so the
//! set of operators TensorRT-RTX and ONNX Runtime must support can be read off a single file.

use crate::graph::{attr_int, attr_ints, Elem, Graph};

/// Slice end meaning "to the end of the axis".
pub const END: i64 = i64::MAX;

/// Geometry of a 3-D convolution: kernel `[t, h, w]`, pads `[t0, h0, w0, t1, h1, w1]`,
/// strides `[t, h, w]`.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    pub kernel: [i64; 3],
    pub pads: [i64; 6],
    pub strides: [i64; 3],
}

impl Graph<'_> {
    /// Conv (no dilation, no groups) named `name`.
    pub fn conv(&mut self, x: &str, w: &str, b: &str, geo: &ConvGeometry, name: &str) -> String {
        let attrs = vec![
            attr_ints("kernel_shape", &geo.kernel),
            attr_ints("pads", &geo.pads),
            attr_ints("strides", &geo.strides),
            attr_ints("dilations", &[1, 1, 1]),
            attr_int("group", 1),
        ];
        self.node("Conv", &[x, w, b], attrs, name)
    }

    pub fn concat(&mut self, xs: &[&str], axis: i64, hint: &str) -> String {
        self.node("Concat", xs, vec![attr_int("axis", axis)], hint)
    }

    /// Slice one axis with constant bounds.
    pub fn slice(&mut self, x: &str, axis: i64, start: i64, end: i64, hint: &str) -> String {
        let (s, e, a) = (
            self.const_i64(&[start]),
            self.const_i64(&[end]),
            self.const_i64(&[axis]),
        );
        self.node("Slice", &[x, &s, &e, &a], vec![], hint)
    }

    /// Slice one axis with a computed (1-element int64 tensor) start.
    pub fn slice_from(&mut self, x: &str, axis: i64, start: &str, hint: &str) -> String {
        let (e, a) = (self.const_i64(&[END]), self.const_i64(&[axis]));
        self.node("Slice", &[x, start, &e, &a], vec![], hint)
    }

    /// Slice one axis with computed (1-element int64 tensor) bounds.
    pub fn slice_dyn(&mut self, x: &str, axis: i64, start: &str, end: &str, hint: &str) -> String {
        let a = self.const_i64(&[axis]);
        self.node("Slice", &[x, start, end, &a], vec![], hint)
    }

    pub fn reshape(&mut self, x: &str, shape: &str, hint: &str) -> String {
        self.node("Reshape", &[x, shape], vec![], hint)
    }

    pub fn transpose(&mut self, x: &str, perm: &[i64], hint: &str) -> String {
        self.node("Transpose", &[x], vec![attr_ints("perm", perm)], hint)
    }

    pub fn shape(&mut self, x: &str, hint: &str) -> String {
        self.node("Shape", &[x], vec![], hint)
    }

    /// `Shape(x)[start..end]` as a 1-D int64 tensor.
    pub fn shape_range(&mut self, x: &str, start: i64, end: i64, hint: &str) -> String {
        self.node(
            "Shape",
            &[x],
            vec![attr_int("start", start), attr_int("end", end)],
            hint,
        )
    }

    pub fn matmul(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.node("MatMul", &[a, b], vec![], hint)
    }

    pub fn add(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.node("Add", &[a, b], vec![], hint)
    }

    pub fn sub(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.node("Sub", &[a, b], vec![], hint)
    }

    pub fn mul(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.node("Mul", &[a, b], vec![], hint)
    }

    pub fn div(&mut self, a: &str, b: &str, hint: &str) -> String {
        self.node("Div", &[a, b], vec![], hint)
    }

    pub fn sqrt(&mut self, x: &str, hint: &str) -> String {
        self.node("Sqrt", &[x], vec![], hint)
    }

    pub fn sigmoid(&mut self, x: &str, hint: &str) -> String {
        self.node("Sigmoid", &[x], vec![], hint)
    }

    pub fn softmax(&mut self, x: &str, axis: i64, hint: &str) -> String {
        self.node("Softmax", &[x], vec![attr_int("axis", axis)], hint)
    }

    /// ReduceMean over `axes`, keeping dims.
    pub fn reduce_mean(&mut self, x: &str, axes: &[i64], hint: &str) -> String {
        let a = self.const_i64(axes);
        self.node("ReduceMean", &[x, &a], vec![attr_int("keepdims", 1)], hint)
    }

    pub fn cast(&mut self, x: &str, to: Elem, hint: &str) -> String {
        self.node("Cast", &[x], vec![attr_int("to", to.onnx() as i64)], hint)
    }

    pub fn clip(&mut self, x: &str, lo: &str, hi: &str, hint: &str) -> String {
        self.node("Clip", &[x, lo, hi], vec![], hint)
    }

    /// QuantizeLinear to `zero_point`'s type (FP8 E4M3 here) along `axis` when the scale is 1-D.
    pub fn quantize(
        &mut self,
        x: &str,
        scale: &str,
        zero_point: &str,
        axis: Option<i64>,
        hint: &str,
    ) -> String {
        let attrs = axis.map(|a| vec![attr_int("axis", a)]).unwrap_or_default();
        self.node("QuantizeLinear", &[x, scale, zero_point], attrs, hint)
    }

    pub fn dequantize(
        &mut self,
        x: &str,
        scale: &str,
        zero_point: &str,
        axis: Option<i64>,
        hint: &str,
    ) -> String {
        let attrs = axis.map(|a| vec![attr_int("axis", a)]).unwrap_or_default();
        self.node("DequantizeLinear", &[x, scale, zero_point], attrs, hint)
    }

    /// Identity, used to give a graph output its contract name.
    pub fn identity(&mut self, x: &str, name: &str) -> String {
        self.node("Identity", &[x], vec![], name)
    }
}
