//! Our own GGUF v2/v3 reader: header, metadata of every value type, tensor infos of any rank
//! (SeedVR2 VAE files can hold native 5-D tensors, which ggml-based readers refuse).
//!
//! Every count, length and offset is checked against the bytes that remain before anything is
//! allocated or read, so a corrupt file yields an error naming what is wrong, never a panic or a
//! giant allocation.

use crate::error::{Error, Result};
use crate::quant::GgmlType;
use std::ops::Range;
use std::path::Path;

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The key under which ComfyUI-GGUF style files record a tensor's PyTorch shape.
pub const ORIG_SHAPE_PREFIX: &str = "comfy.gguf.orig_shape.";
/// Prefix some converters add to every tensor name; stripped on load.
pub const MODEL_PREFIX: &str = "model.diffusion_model.";
/// Tensor ranks beyond this are refused (the model needs at most 5).
pub const MAX_DIMS: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Integer value of an integer-typed scalar.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A short rendering for `inspect` (arrays abbreviated).
    pub fn short(&self) -> String {
        match self {
            Value::String(s) if s.chars().count() > 60 => {
                format!("{:?}...", s.chars().take(60).collect::<String>())
            }
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) if a.len() > 8 => format!("[{} items]", a.len()),
            Value::Array(a) => format!(
                "[{}]",
                a.iter().map(Value::short).collect::<Vec<_>>().join(", ")
            ),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            other => other.as_i128().map(|v| v.to_string()).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// Name as stored (prefix not yet stripped).
    pub name: String,
    /// GGUF dims, fastest-varying first (`ne[0]`).
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
}

#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::format(self.path, format!("{msg} (at byte {})", self.pos))
    }
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.err(format_args!(
                "truncated: {what} needs {n} bytes, {left} left in the file"
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let b = self.take(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err(format_args!("{what} is not UTF-8")))
    }
    /// A count of items each at least `min_size` bytes: refuse counts the file cannot hold.
    fn count(&mut self, what: &str, min_size: u64) -> Result<u64> {
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(min_size) > left {
            return Err(self.err(format_args!(
                "{what} {n} cannot fit in the {left} bytes left: corrupt or truncated"
            )));
        }
        Ok(n)
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>(key)?[0]),
            1 => Value::I8(self.arr::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.arr(key)?)),
            4 => Value::U32(self.u32(key)?),
            5 => Value::I32(i32::from_le_bytes(self.arr(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.arr(key)?)),
            7 => match self.arr::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(self.err(format_args!(
                        "metadata '{key}': bool byte {b} is not 0 or 1"
                    )))
                }
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth > 4 {
                    return Err(self.err(format_args!("metadata '{key}': arrays nested too deep")));
                }
                let ety = self.u32(key)?;
                let n = self.count(
                    &format!("metadata '{key}' array length"),
                    min_value_size(ety),
                )?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(ety, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(key)?),
            11 => Value::I64(i64::from_le_bytes(self.arr(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.arr(key)?)),
            t => return Err(self.err(format_args!("metadata '{key}': unknown value type {t}"))),
        })
    }
}

fn min_value_size(ty: u32) -> u64 {
    match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => 1,
    }
}

/// Parse a whole GGUF file held in `bytes`.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Gguf> {
    let mut c = Cursor {
        path,
        bytes,
        pos: 0,
    };
    let magic = c
        .arr::<4>("magic")
        .map_err(|_| Error::format(path, "not a GGUF file: shorter than the 4-byte magic"))?;
    if &magic != MAGIC {
        return Err(Error::format(
            path,
            format!(
                "not a GGUF file: magic {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(Error::format(
            path,
            format!("unsupported GGUF version {version} (supported: 2 and 3)"),
        ));
    }
    let n_tensors = c.count("tensor count", 24)?;
    let n_kv = c.count("metadata count", 13)?;
    let mut metadata = Vec::with_capacity(n_kv as usize);
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let ty = c.u32(&key)?;
        let v = c.value(ty, &key, 0)?;
        metadata.push((key, v));
    }
    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_i128() {
            Some(a) if a > 0 && (a as u64).is_power_of_two() => a as u64,
            _ => {
                return Err(Error::format(
                    path,
                    format!("general.alignment {} is not a power of two", v.short()),
                ))
            }
        },
    };

    struct Pending {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
        offset: u64,
        nbytes: u64,
    }
    let mut pending = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let terr = |msg: String| Error::tensor(path, &name, msg);
        let nd = c.u32("tensor rank")?;
        if nd == 0 || nd > MAX_DIMS {
            return Err(terr(format!("rank {nd} is outside 1..={MAX_DIMS}")));
        }
        let mut dims = Vec::with_capacity(nd as usize);
        for _ in 0..nd {
            dims.push(c.u64("tensor dim")?);
        }
        let raw_ty = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        let ty = GgmlType::from_id(raw_ty).ok_or_else(|| {
            terr(format!(
                "unsupported tensor type {} (supported: {})",
                GgmlType::describe_id(raw_ty),
                GgmlType::SUPPORTED
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let numel = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n > 0)
            .ok_or_else(|| terr(format!("dims {dims:?} are empty or overflow")))?;
        let (bs, ts) = (ty.block_size() as u64, ty.type_size() as u64);
        if dims[0] % bs != 0 {
            return Err(terr(format!(
                "row length {} is not a multiple of the {} block size {bs}",
                dims[0],
                ty.name()
            )));
        }
        if offset % alignment != 0 {
            return Err(terr(format!(
                "data offset {offset} is not aligned to {alignment}"
            )));
        }
        let nbytes = (numel / bs).checked_mul(ts).ok_or_else(|| {
            terr(format!(
                "dims {dims:?} of {} need more bytes than exist",
                ty.name()
            ))
        })?;
        pending.push(Pending {
            name,
            dims,
            ty,
            offset,
            nbytes,
        });
    }
    // c.pos < file length and alignment ≤ 2^63, so this cannot overflow.
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    let mut tensors = Vec::with_capacity(pending.len());
    for p in pending {
        let start = data_start.checked_add(p.offset);
        let end = start.and_then(|s| s.checked_add(p.nbytes));
        match (start, end) {
            (Some(s), Some(e)) if e <= file_len => tensors.push(TensorInfo {
                name: p.name,
                dims: p.dims,
                ggml_type: p.ty,
                range: s as usize..e as usize,
            }),
            _ => {
                return Err(Error::tensor(
                    path,
                    &p.name,
                    format!(
                        "data at offset {} + {} bytes runs past the end of the file ({file_len} bytes, data section starts at {data_start}): truncated",
                        p.offset, p.nbytes
                    ),
                ))
            }
        }
    }
    let mut by_start: Vec<&TensorInfo> = tensors.iter().collect();
    by_start.sort_by_key(|t| t.range.start);
    for w in by_start.windows(2) {
        if w[1].range.start < w[0].range.end {
            return Err(Error::format(
                path,
                format!(
                    "tensors '{}' and '{}' overlap in the data section",
                    w[0].name, w[1].name
                ),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for t in &tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::tensor(path, &t.name, "appears twice"));
        }
    }
    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
    })
}

/// The logical (PyTorch-order) shape of a tensor: `comfy.gguf.orig_shape.<name>` when present
/// (its element count must agree), else the GGUF dims reversed.
pub fn logical_shape(path: &Path, g: &Gguf, t: &TensorInfo, stripped: &str) -> Result<Vec<usize>> {
    let key_full = format!("{ORIG_SHAPE_PREFIX}{}", t.name);
    let key_short = format!("{ORIG_SHAPE_PREFIX}{stripped}");
    let found = g.get(&key_full).or_else(|| g.get(&key_short));
    let Some(v) = found else {
        return Ok(t.dims.iter().rev().map(|&d| d as usize).collect());
    };
    let terr = |msg: String| Error::tensor(path, stripped, msg);
    let Value::Array(items) = v else {
        return Err(terr(format!("{key_short} is not an array: {}", v.short())));
    };
    let shape: Vec<usize> = items
        .iter()
        .map(|i| {
            i.as_i128()
                .filter(|&d| d > 0 && d <= usize::MAX as i128)
                .map(|d| d as usize)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| {
            terr(format!(
                "{key_short} is not an array of positive integers: {}",
                v.short()
            ))
        })?;
    let want = crate::safetensors::numel(&shape).map(|n| n as u64);
    if want != Some(t.numel()) {
        return Err(terr(format!(
            "{key_short} = {shape:?} has {} elements but the stored tensor (dims {:?}) has {}",
            want.map_or("too many".to_string(), |n| n.to_string()),
            t.dims,
            t.numel()
        )));
    }
    Ok(shape)
}

/// Strip `model.diffusion_model.` when any tensor carries it (as the ComfyUI node does).
pub fn stripped_names(g: &Gguf) -> Vec<String> {
    let any = g.tensors.iter().any(|t| t.name.starts_with(MODEL_PREFIX));
    g.tensors
        .iter()
        .map(|t| {
            if any {
                t.name
                    .strip_prefix(MODEL_PREFIX)
                    .unwrap_or(&t.name)
                    .to_string()
            } else {
                t.name.clone()
            }
        })
        .collect()
}

/// A minimal GGUF v3 writer (used by `synth --format gguf` and by tests that build bad files).
pub struct Writer {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Add a tensor with its PyTorch shape (stored reversed, as gguf-py does) and raw block bytes.
    pub fn add(&mut self, name: &str, torch_shape: &[usize], ty: GgmlType, data: Vec<u8>) {
        let dims = torch_shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, ty, data));
    }

    pub fn write(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let mut head = Vec::new();
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut head, k);
            put_value(&mut head, v, true);
        }
        let mut offset = 0u64;
        for (name, dims, ty, data) in &self.tensors {
            put_str(&mut head, name);
            head.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                head.extend_from_slice(&d.to_le_bytes());
            }
            head.extend_from_slice(&ty.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset += (data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
        }
        head.resize(
            head.len().div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize,
            0,
        );
        w.write_all(&head)?;
        for (_, _, _, data) in &self.tensors {
            w.write_all(data)?;
            let pad = data.len().div_ceil(DEFAULT_ALIGNMENT as usize) * DEFAULT_ALIGNMENT as usize
                - data.len();
            w.write_all(&vec![0u8; pad])?;
        }
        Ok(())
    }
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value, with_type: bool) {
    if with_type {
        out.extend_from_slice(&type_id(v).to_le_bytes());
    }
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            let ety = items.first().map_or(4, type_id);
            out.extend_from_slice(&ety.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i, false);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("t.gguf")
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new();
        w.metadata
            .push(("general.name".into(), Value::String("x".into())));
        w.metadata.push((
            "arr".into(),
            Value::Array(vec![Value::I32(2), Value::I32(3)]),
        ));
        w.metadata.push(("f".into(), Value::F64(0.5)));
        w.add("a", &[2, 1, 1, 1, 32], GgmlType::F32, vec![0u8; 64 * 4]);
        w.add("b", &[3], GgmlType::F16, vec![0u8; 6]);
        let mut out = Vec::new();
        w.write(&mut out).unwrap();
        out
    }

    #[test]
    fn parses_what_it_writes_including_5d() {
        let f = sample();
        let g = parse(p(), &f).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.tensors[0].dims, vec![32, 1, 1, 1, 2]);
        assert_eq!(
            g.get("arr"),
            Some(&Value::Array(vec![Value::I32(2), Value::I32(3)]))
        );
        assert_eq!(
            logical_shape(p(), &g, &g.tensors[0], "a").unwrap(),
            vec![2, 1, 1, 1, 32]
        );
        assert_eq!(g.tensors[1].range.len(), 6);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let f = sample();
        let end = parse(p(), &f).unwrap().tensors[1].range.end;
        for n in 0..end {
            assert!(parse(p(), &f[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }

    #[test]
    fn absurd_dims_are_an_error_not_an_overflow() {
        // Found by cargo fuzz: numel fits in u64 but numel × type size does not.
        let mut w = Writer::new();
        w.add("huge", &[1 << 20, 1 << 42], GgmlType::F32, vec![]);
        let mut f = Vec::new();
        w.write(&mut f).unwrap();
        let e = parse(p(), &f).unwrap_err().to_string();
        assert!(
            e.contains("tensor 'huge'") && e.contains("more bytes than exist"),
            "{e}"
        );
    }

    #[test]
    fn bad_magic_and_version() {
        let mut f = sample();
        f[0] = b'X';
        assert!(parse(p(), &f).unwrap_err().to_string().contains("magic"));
        let mut f = sample();
        f[4] = 1;
        assert!(parse(p(), &f)
            .unwrap_err()
            .to_string()
            .contains("unsupported GGUF version 1"));
    }
}
