//! A small, paranoid SafeTensors parser and writer.
//!
//! Layout: `u64 LE header length N`, `N bytes of JSON`, then the data section. Every length,
//! offset and size is checked before any tensor byte is touched: the header must lie inside the
//! file, each tensor's `[begin, end)` inside the data section and equal to `numel · dtype size`,
//! no two tensors may overlap, and the tensors must cover the data section exactly (as the
//! reference implementation requires), so a truncated or padded file is refused.

use crate::dtype::DType;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;

/// Largest header we accept; the real checkpoint's is 28 KB. Guards against absurd allocations.
pub const MAX_HEADER: u64 = 100 << 20;

#[derive(Debug, Clone)]
pub struct RawTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub range: Range<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct Header {
    pub metadata: BTreeMap<String, String>,
    /// In file order of their data (by offset).
    pub tensors: Vec<RawTensor>,
}

/// Checked product of a shape; `None` on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// Parse and validate the header of a SafeTensors file held in `bytes` (`path` only names it in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Header> {
    parse_prefix(path, bytes, bytes.len() as u64)
}

/// [`parse`] from the file's first bytes alone (`prefix`: at least the length field and the
/// header) and its length `total`: every check, the data's extent against the file's length
/// included, made before any data is read.
pub fn parse_prefix(path: &Path, prefix: &[u8], total: u64) -> Result<Header> {
    let err = |msg: String| Error::format(path, msg);
    if total < 8 || prefix.len() < 8 {
        return Err(err(format!(
            "not a SafeTensors file: {total} bytes, shorter than the 8-byte header length field"
        )));
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    let avail = total - 8;
    if n > avail {
        return Err(err(format!(
            "header length {n} runs past the end of the file ({total} bytes): the file is truncated or not SafeTensors"
        )));
    }
    if n > MAX_HEADER {
        return Err(err(format!(
            "header length {n} exceeds the {MAX_HEADER}-byte limit"
        )));
    }
    let header_end = 8 + n as usize;
    let Ok(total) = usize::try_from(total) else {
        return Err(err(format!(
            "{total} bytes is larger than this machine can address"
        )));
    };
    let Some(head) = prefix.get(8..header_end) else {
        return Err(err("the header was not read whole".into()));
    };
    let text = std::str::from_utf8(head).map_err(|e| err(format!("header is not UTF-8: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(text.trim_end_matches(' '))
        .map_err(|e| err(format!("header is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| err("header JSON is not an object".into()))?;
    // serde_json keeps one value per key; a name given twice is an error, not a choice.
    let TopKeys(keys) = serde_json::from_str(text.trim_end_matches(' '))
        .map_err(|e| err(format!("header is not valid JSON: {e}")))?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(k) = keys.iter().find(|k| !seen.insert(k.as_str())) {
        return Err(err(format!(
            "tensor name '{k}' appears twice in the header"
        )));
    }

    let data_len = total - header_end;
    let mut out = Header::default();
    for (name, entry) in obj {
        if name == "__metadata__" {
            let m = entry
                .as_object()
                .ok_or_else(|| err("__metadata__ is not an object".into()))?;
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| err(format!("__metadata__ value of '{k}' is not a string")))?;
                out.metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        out.tensors
            .push(parse_entry(path, name, entry, data_len, header_end)?);
    }

    out.tensors.sort_by_key(|t| (t.range.start, t.range.end));
    let mut cursor = header_end;
    let mut prev: Option<&RawTensor> = None;
    for t in &out.tensors {
        if t.range.start < cursor {
            let p = prev.expect("cursor only advances past a tensor");
            return Err(err(format!(
                "tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) overlap",
                p.name,
                p.range.start - header_end,
                p.range.end - header_end,
                t.name,
                t.range.start - header_end,
                t.range.end - header_end
            )));
        }
        if t.range.start > cursor {
            return Err(err(format!(
                "gap of {} bytes before tensor '{}': the data section is not contiguous",
                t.range.start - cursor,
                t.name
            )));
        }
        cursor = t.range.end;
        prev = Some(t);
    }
    if cursor != total {
        return Err(err(format!(
            "tensors cover {} of the {} data bytes: {} trailing bytes",
            cursor - header_end,
            data_len,
            total - cursor
        )));
    }
    Ok(out)
}

fn parse_entry(
    path: &Path,
    name: &str,
    entry: &serde_json::Value,
    data_len: usize,
    base: usize,
) -> Result<RawTensor> {
    let terr = |msg: String| Error::tensor(path, name, msg);
    let dtype_s = entry
        .get("dtype")
        .and_then(|v| v.as_str())
        .ok_or_else(|| terr("missing or non-string 'dtype'".into()))?;
    let dtype = DType::from_safetensors(dtype_s).ok_or_else(|| {
        terr(format!(
            "unsupported dtype '{dtype_s}' (supported: F32, F16, BF16, F64)"
        ))
    })?;
    let shape = usize_array(entry.get("shape")).ok_or_else(|| {
        terr("missing or invalid 'shape' (expected an array of non-negative integers)".into())
    })?;
    let offs = usize_array(entry.get("data_offsets"))
        .filter(|o| o.len() == 2)
        .ok_or_else(|| terr("missing or invalid 'data_offsets' (expected [begin, end])".into()))?;
    let (begin, end) = (offs[0], offs[1]);
    if begin > end {
        return Err(terr(format!("data_offsets [{begin}, {end}] are reversed")));
    }
    if end > data_len {
        return Err(terr(format!(
            "data_offsets [{begin}, {end}] run past the data section ({data_len} bytes): the file is truncated"
        )));
    }
    let want = numel(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| terr(format!("shape {shape:?} overflows")))?;
    if end - begin != want {
        return Err(terr(format!(
            "data_offsets [{begin}, {end}] hold {} bytes but shape {shape:?} of {dtype} needs {want}",
            end - begin
        )));
    }
    Ok(RawTensor {
        name: name.to_string(),
        dtype,
        shape,
        range: base + begin..base + end,
    })
}

/// The top-level keys of a JSON object in file order, repeats kept.
struct TopKeys(Vec<String>);

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TopKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopKeys(keys))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn usize_array(v: Option<&serde_json::Value>) -> Option<Vec<usize>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_u64().and_then(|u| usize::try_from(u).ok()))
        .collect()
}

/// One tensor to write: stored bytes (little-endian) of `dtype` with `shape`.
pub struct WriteTensor<'a> {
    pub name: &'a str,
    pub dtype: DType,
    pub shape: &'a [usize],
    pub data: &'a [u8],
}

/// Serialize the header the way the reference writer does: tensors sorted by name, compact JSON,
/// padded with spaces to a multiple of 8 bytes. Returns the header bytes (with length prefix).
pub fn header_bytes(metadata: &BTreeMap<String, String>, tensors: &[WriteTensor<'_>]) -> Vec<u8> {
    let layout: Vec<(&str, DType, &[usize], usize)> = tensors
        .iter()
        .map(|t| (t.name, t.dtype, t.shape, t.data.len()))
        .collect();
    header_for(metadata, &layout)
}

/// [`header_bytes`] from each tensor's (name, dtype, shape, byte length), for writers that
/// stream the data after the header.
pub fn header_for(
    metadata: &BTreeMap<String, String>,
    tensors: &[(&str, DType, &[usize], usize)],
) -> Vec<u8> {
    let mut order: Vec<&(&str, DType, &[usize], usize)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(b.0));
    let mut map = serde_json::Map::new();
    if !metadata.is_empty() {
        map.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("strings"),
        );
    }
    let mut off = 0usize;
    for (name, dtype, shape, len) in order {
        let end = off + len;
        map.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [off, end]}),
        );
        off = end;
    }
    let mut json = serde_json::to_vec(&map).expect("serializable");
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

/// Write a complete SafeTensors stream (tensors in name order, matching `header_bytes`).
pub fn write(
    w: &mut impl Write,
    metadata: &BTreeMap<String, String>,
    tensors: &[WriteTensor<'_>],
) -> std::io::Result<()> {
    w.write_all(&header_bytes(metadata, tensors))?;
    let mut order: Vec<&WriteTensor> = tensors.iter().collect();
    order.sort_by(|a, b| a.name.cmp(b.name));
    for t in order {
        w.write_all(t.data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tensors: &[(&str, DType, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let ts: Vec<WriteTensor> = tensors
            .iter()
            .map(|(n, d, s, b)| WriteTensor {
                name: n,
                dtype: *d,
                shape: s,
                data: b,
            })
            .collect();
        let mut out = Vec::new();
        write(&mut out, &BTreeMap::new(), &ts).unwrap();
        out
    }

    fn p() -> &'static Path {
        Path::new("x.safetensors")
    }

    #[test]
    fn round_trip() {
        let f = file(&[
            ("b", DType::F32, vec![2], vec![0; 8]),
            ("a", DType::F16, vec![1, 3], vec![1; 6]),
        ]);
        let h = parse(p(), &f).unwrap();
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensors[0].name, "a");
        assert_eq!(&f[h.tensors[0].range.clone()], &[1; 6]);
        assert_eq!(h.tensors[1].shape, vec![2]);
    }

    #[test]
    fn rejects_truncation_and_bad_headers() {
        let f = file(&[("a", DType::F32, vec![4], vec![0; 16])]);
        let e = parse(p(), &f[..f.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("tensor 'a'") && e.contains("truncated"), "{e}");
        let e = parse(p(), &f[..5]).unwrap_err().to_string();
        assert!(e.contains("shorter than"), "{e}");
        let mut g = f.clone();
        g[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(parse(p(), &g)
            .unwrap_err()
            .to_string()
            .contains("runs past the end"));
        let mut g = f.clone();
        g.extend_from_slice(&[0; 4]);
        assert!(parse(p(), &g).unwrap_err().to_string().contains("trailing"));
    }

    fn raw(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    #[test]
    fn rejects_overlap_unknown_dtype_and_size_mismatch() {
        let e = parse(p(), &raw(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap"), "{e}");
        let e = parse(
            p(),
            &raw(
                r#"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#,
                8,
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("tensor 'a'") && e.contains("unsupported dtype 'Q9'"),
            "{e}"
        );
        let e = parse(
            p(),
            &raw(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs 12"), "{e}");
        let e = parse(
            p(),
            &raw(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                8,
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("reversed"), "{e}");
        let e = parse(p(), &raw("[1,2]", 0)).unwrap_err().to_string();
        assert!(e.contains("not an object"), "{e}");
    }
}
