//! Serialize a graph as an ONNX ModelProto without ever holding all weights in memory: the
//! model and graph headers are encoded by prost, and each initializer is appended as a graph
//! field-5 entry, its bytes produced and written one at a time. Weights go to a side file
//! (`OUT.onnx.data`, ONNX external data) when they would push the model over protobuf's 2 GB limit.

use crate::graph::Graph;
use crate::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use crate::Error;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use seedvae_weights::output::AtomicFile;
use std::io::Write;
use std::path::Path;

pub const OPSET: i64 = 21;
pub const IR_VERSION: i64 = 10;
/// Protobuf refuses messages of 2 GiB and more; leave room for the graph itself.
pub const EXTERNAL_DATA_THRESHOLD: u64 = (2u64 << 30) - (64 << 20);
/// In an external-data model, initializers smaller than this stay inline: shape inference and
/// TensorRT's parser must read small constants (slice bounds, shapes) from the model itself.
pub const INLINE_BELOW: usize = 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    pub model_bytes: u64,
    pub external_bytes: u64,
    pub initializers: usize,
}

fn tensor_header(name: &str, dims: &[i64], elem: i32) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: elem,
        name: name.to_string(),
        ..Default::default()
    }
}

/// Write `graph` to `out` (atomically; with `OUT.data` beside it when the weights exceed
/// `threshold`). `metadata` is asked for only after the weights are written (model-level
/// `metadata_props` follow the graph in the file; protobuf fields may come in any order), so
/// slow metadata such as the source hash can be computed meanwhile.
/// `progress(done, total)` after each initializer.
pub fn write_model(
    graph: &Graph<'_>,
    metadata: impl FnOnce() -> Result<Vec<(String, String)>, Error>,
    out: &Path,
    threshold: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<WriteStats, Error> {
    let total_weights: u64 = graph.inits.iter().map(|i| i.nbytes() as u64).sum();
    let external = total_weights > threshold;
    let data_name = format!(
        "{}.data",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let data_path = out.with_file_name(&data_name);

    let graph_head = GraphProto {
        node: graph.nodes.iter().map(|n| n.to_proto()).collect(),
        name: "seedvae".into(),
        input: graph.inputs.clone(),
        output: graph.outputs.clone(),
        ..Default::default()
    };
    // Each initializer's TensorProto: its header fields, plus raw_data (field 9) inline or
    // external_data entries pointing into the side file (page-aligned offsets).
    let mut heads = Vec::with_capacity(graph.inits.len());
    let mut offset = 0u64;
    for init in &graph.inits {
        let mut t = tensor_header(&init.name, &init.dims, init.elem.onnx());
        let n = init.nbytes() as u64;
        let ext = external && init.nbytes() >= INLINE_BELOW;
        if ext {
            offset = offset.div_ceil(4096) * 4096;
            t.data_location = 1;
            t.external_data = vec![
                StringStringEntryProto {
                    key: "location".into(),
                    value: data_name.clone(),
                },
                StringStringEntryProto {
                    key: "offset".into(),
                    value: offset.to_string(),
                },
                StringStringEntryProto {
                    key: "length".into(),
                    value: n.to_string(),
                },
            ];
            offset += n;
        }
        heads.push((t, n, ext));
    }
    let tensor_len = |t: &TensorProto, n: u64, ext: bool| -> u64 {
        let mut l = t.encoded_len() as u64;
        if !ext && n > 0 {
            l += key_len(9) as u64 + encoded_len_varint(n) as u64 + n;
        }
        l
    };
    let graph_len: u64 = graph_head.encoded_len() as u64
        + heads
            .iter()
            .map(|(t, n, ext)| {
                let l = tensor_len(t, *n, *ext);
                key_len(5) as u64 + encoded_len_varint(l) as u64 + l
            })
            .sum::<u64>();

    let model_head = ModelProto {
        ir_version: crate::write::IR_VERSION,
        producer_name: "seedvae".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: "SeedVR2 video VAE, exported by seedvae from the user's local weights".into(),
        graph: None,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        metadata_props: Vec::new(),
    };

    let mut f = AtomicFile::create(out)?;
    let mut data = if external {
        Some(AtomicFile::create(&data_path)?)
    } else {
        None
    };
    let io = |e: std::io::Error| Error::Io {
        path: out.to_path_buf(),
        cause: e,
    };
    let mut buf = model_head.encode_to_vec();
    encode_key(7, WireType::LengthDelimited, &mut buf);
    encode_varint(graph_len, &mut buf);
    graph_head.encode(&mut buf).expect("Vec grows");
    f.write_all(&buf).map_err(io)?;
    let mut written = buf.len() as u64;
    let mut data_pos = 0u64;
    for (i, (init, (t, n, ext))) in graph.inits.iter().zip(&heads).enumerate() {
        let blob = init.blob()?;
        let bytes = blob.bytes();
        if bytes.len() as u64 != *n {
            return Err(Error::Other(format!(
                "initializer {}: produced {} bytes, expected {n}",
                init.name,
                bytes.len()
            )));
        }
        let mut h = Vec::new();
        encode_key(5, WireType::LengthDelimited, &mut h);
        encode_varint(tensor_len(t, *n, *ext), &mut h);
        t.encode(&mut h).expect("Vec grows");
        if *ext {
            let d = data
                .as_mut()
                .expect("side file open when any tensor is external");
            let start = data_pos.div_ceil(4096) * 4096;
            d.write_all(&vec![0u8; (start - data_pos) as usize])
                .map_err(io)?;
            d.write_all(bytes).map_err(io)?;
            data_pos = start + n;
        } else if *n > 0 {
            encode_key(9, WireType::LengthDelimited, &mut h);
            encode_varint(*n, &mut h);
        }
        f.write_all(&h).map_err(io)?;
        written += h.len() as u64;
        if !*ext {
            f.write_all(bytes).map_err(io)?;
            written += n;
        }
        progress(i + 1, graph.inits.len());
    }
    let tail = ModelProto {
        metadata_props: metadata()?
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec();
    f.write_all(&tail).map_err(io)?;
    written += tail.len() as u64;
    if let Some(d) = data {
        d.commit()?;
    }
    f.commit()?;
    if !external {
        // A stale side file from an earlier external export would be misleading.
        let _ = std::fs::remove_file(&data_path);
    }
    Ok(WriteStats {
        model_bytes: written,
        external_bytes: if external { data_pos } else { 0 },
        initializers: graph.inits.len(),
    })
}

/// Read a model's `metadata_props` without decoding its weights (only the model-level fields).
pub fn read_metadata(bytes: &[u8]) -> Result<Vec<(String, String)>, Error> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Head {
        #[prost(message, repeated, tag = "14")]
        metadata_props: Vec<StringStringEntryProto>,
        #[prost(string, tag = "2")]
        producer_name: String,
    }
    let h = Head::decode(bytes).map_err(|e| Error::Other(format!("not an ONNX model: {e}")))?;
    Ok(h.metadata_props
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect())
}

/// The names of a model's initializers (weights and constants).
pub fn read_initializer_names(bytes: &[u8]) -> Result<Vec<String>, Error> {
    Ok(read_initializers(bytes)?
        .into_iter()
        .map(|i| i.name)
        .collect())
}

/// One initializer's stored bytes (little-endian, ONNX `data_type` code).
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub data_type: i32,
    pub dims: Vec<i64>,
    pub raw: Vec<u8>,
}

/// Every initializer of a model with inline data (seedvae writes `raw_data`; models with
/// external data are refused by name).
pub fn read_initializers(bytes: &[u8]) -> Result<Vec<Initializer>, Error> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Init {
        #[prost(int64, repeated, tag = "1")]
        dims: Vec<i64>,
        #[prost(int32, tag = "2")]
        data_type: i32,
        #[prost(string, tag = "8")]
        name: String,
        #[prost(bytes = "vec", tag = "9")]
        raw_data: Vec<u8>,
        #[prost(int32, tag = "14")]
        data_location: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Graph {
        #[prost(message, repeated, tag = "5")]
        initializer: Vec<Init>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Model {
        #[prost(message, optional, tag = "7")]
        graph: Option<Graph>,
    }
    let m = Model::decode(bytes).map_err(|e| Error::Other(format!("not an ONNX model: {e}")))?;
    m.graph
        .map(|g| g.initializer)
        .unwrap_or_default()
        .into_iter()
        .map(|i| {
            if i.data_location == 1 {
                return Err(Error::Other(format!(
                    "initializer '{}' is stored outside the model (external data)",
                    i.name
                )));
            }
            Ok(Initializer {
                name: i.name,
                data_type: i.data_type,
                dims: i.dims,
                raw: i.raw_data,
            })
        })
        .collect()
}
