//! A small mutable graph IR: nodes in topological order, named values, initializers whose bytes
//! may be produced lazily (weights are converted one at a time while the file is written). Graph
//! passes (FP8 Q/DQ insertion) edit this IR before it is serialized.

use crate::proto::{self, AttributeProto, NodeProto, ValueInfoProto};
use crate::Error;
use std::collections::HashMap;

/// Element types used by the exported graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Elem {
    F32,
    F16,
    I64,
    F8E4M3,
}

impl Elem {
    pub fn onnx(self) -> i32 {
        match self {
            Elem::F32 => proto::data_type::FLOAT,
            Elem::F16 => proto::data_type::FLOAT16,
            Elem::I64 => proto::data_type::INT64,
            Elem::F8E4M3 => proto::data_type::FLOAT8E4M3FN,
        }
    }
    /// The element type of an ONNX `data_type` code, if seedvae graphs use it.
    pub fn from_onnx(code: i32) -> Option<Elem> {
        [Elem::F32, Elem::F16, Elem::I64, Elem::F8E4M3]
            .into_iter()
            .find(|e| e.onnx() == code)
    }
    pub fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 => 2,
            Elem::I64 => 8,
            Elem::F8E4M3 => 1,
        }
    }
}

/// An initializer's little-endian bytes: borrowed from the mapped weights when stored as
/// needed, else freshly converted (kept as f32 to avoid a copy into a byte vector).
pub enum Blob<'w> {
    Borrowed(&'w [u8]),
    Bytes(Vec<u8>),
    F32(Vec<f32>),
}

impl Blob<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Blob::Borrowed(b) => b,
            Blob::Bytes(b) => b,
            Blob::F32(v) => bytemuck::cast_slice(v),
        }
    }
}

/// A producer of an initializer's bytes.
pub type Producer<'w> = Box<dyn Fn() -> Result<Blob<'w>, Error> + 'w>;

pub enum InitData<'w> {
    Bytes(Vec<u8>),
    Lazy(Producer<'w>),
}

pub struct Initializer<'w> {
    pub name: String,
    pub dims: Vec<i64>,
    pub elem: Elem,
    pub data: InitData<'w>,
}

impl Initializer<'_> {
    pub fn nbytes(&self) -> usize {
        self.dims.iter().product::<i64>() as usize * self.elem.size()
    }
    pub fn blob(&self) -> Result<Blob<'_>, Error> {
        Ok(match &self.data {
            InitData::Bytes(b) => Blob::Borrowed(b),
            InitData::Lazy(f) => f()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub op: &'static str,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<AttributeProto>,
}

impl Node {
    pub fn to_proto(&self) -> NodeProto {
        NodeProto {
            input: self.inputs.clone(),
            output: self.outputs.clone(),
            name: self.name.clone(),
            op_type: self.op.to_string(),
            attribute: self.attrs.clone(),
            domain: String::new(),
        }
    }
}

/// A dimension of a graph input/output: fixed or named (dynamic).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

pub fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    use proto::{DimValue, Dimension, TensorShapeProto, TypeProto, TypeProtoTensor};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Fixed(v) => DimValue::DimValue(*v),
                Dim::Named(s) => DimValue::DimParam(s.clone()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem.onnx(),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// A tensor value of any rank and shape (e.g. debug/calibration outputs).
pub fn value_info_any_shape(name: &str, elem: Elem) -> ValueInfoProto {
    use proto::{TypeProto, TypeProtoTensor};
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem.onnx(),
                shape: None,
            }),
        }),
    }
}

#[derive(Default)]
pub struct Graph<'w> {
    pub nodes: Vec<Node>,
    pub inits: Vec<Initializer<'w>>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    names: HashMap<String, usize>,
    consts: HashMap<(Vec<u8>, Elem, Vec<i64>), String>,
}

impl<'w> Graph<'w> {
    /// A value name derived from `hint`, unique in this graph.
    pub fn fresh(&mut self, hint: &str) -> String {
        let n = self.names.entry(hint.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 {
            hint.to_string()
        } else {
            format!("{hint}__{}", *n - 1)
        }
    }

    /// Append a node with one output named after `hint`; returns the output name.
    pub fn node(
        &mut self,
        op: &'static str,
        inputs: &[&str],
        attrs: Vec<AttributeProto>,
        hint: &str,
    ) -> String {
        let out = self.fresh(hint);
        self.nodes.push(Node {
            op,
            name: out.clone(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            attrs,
        });
        out
    }

    /// Add an initializer under an exact name (weights keep their checkpoint names).
    pub fn initializer(
        &mut self,
        name: &str,
        dims: Vec<i64>,
        elem: Elem,
        data: InitData<'w>,
    ) -> String {
        assert!(
            !self.names.contains_key(name),
            "duplicate initializer {name}"
        );
        self.names.insert(name.to_string(), 1);
        self.inits.push(Initializer {
            name: name.to_string(),
            dims,
            elem,
            data,
        });
        name.to_string()
    }

    /// A small constant initializer, shared between all users of the same value.
    pub fn constant(&mut self, elem: Elem, dims: &[i64], bytes: Vec<u8>) -> String {
        let key = (bytes.clone(), elem, dims.to_vec());
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh("const");
        self.inits.push(Initializer {
            name: name.clone(),
            dims: dims.to_vec(),
            elem,
            data: InitData::Bytes(bytes),
        });
        self.consts.insert(key, name.clone());
        name
    }

    pub fn const_i64(&mut self, v: &[i64]) -> String {
        self.constant(
            Elem::I64,
            &[v.len() as i64],
            bytemuck::cast_slice(v).to_vec(),
        )
    }

    /// A scalar of `elem` (F32 or F16).
    pub fn scalar(&mut self, elem: Elem, v: f32) -> String {
        let bytes = match elem {
            Elem::F32 => v.to_le_bytes().to_vec(),
            Elem::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
            other => panic!("scalar of {other:?}"),
        };
        self.constant(elem, &[], bytes)
    }

    pub fn find_init(&self, name: &str) -> Option<&Initializer<'w>> {
        self.inits.iter().find(|i| i.name == name)
    }
}

/// Attribute constructors.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: Some(v),
        r#type: proto::attribute_type::INT,
        ..Default::default()
    }
}
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: proto::attribute_type::INTS,
        ..Default::default()
    }
}
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: Some(v),
        r#type: proto::attribute_type::FLOAT,
        ..Default::default()
    }
}
