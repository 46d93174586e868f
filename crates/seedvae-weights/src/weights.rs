//! A loaded weight file: SafeTensors or GGUF, memory-mapped, every tensor under its checkpoint
//! name with its logical (PyTorch) shape, validated against the schema.

use crate::dtype::{self, DType};
use crate::error::{Error, Result};
use crate::quant::GgmlType;
use crate::schema::{self, Model, Part, Problem, Report};
use crate::{gguf, safetensors};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    SafeTensors,
    Gguf,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::SafeTensors => "safetensors",
            Format::Gguf => "gguf",
        })
    }
}

/// Where a tensor's values live.
#[derive(Debug)]
enum Data {
    /// Stored bytes in the mapped file (F32/F16/BF16/F64), used in place.
    Mapped {
        range: std::ops::Range<usize>,
        dtype: DType,
    },
    /// Dequantized from a block-quantized GGUF type.
    Dequantized(Vec<f32>),
}

#[derive(Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    /// How the file stores it ("F16", "Q8_0", ...).
    pub stored: String,
    data: Data,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

enum Backing {
    Mmap(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Bytes(b) => b,
        }
    }
}

pub struct WeightFile {
    pub path: PathBuf,
    pub format: Format,
    pub metadata: BTreeMap<String, String>,
    backing: Backing,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
    report: std::sync::OnceLock<Report>,
    /// [`WeightFile::content_hash`], computed once (several steps of one run ask for it).
    hash: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for WeightFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl WeightFile {
    /// Open and parse a `.safetensors` or `.gguf` file (format detected from the magic bytes).
    /// Container-level corruption is an error; schema problems are left to [`WeightFile::report`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; a file truncated by another process while mapped could
        // fault, which is the accepted trade-off of every mmap-based loader (safetensors, llama.cpp).
        // `populate` pre-faults the pages in one kernel call (Linux; a no-op elsewhere): every
        // byte is read by validation anyway, and per-page faults cost more than the reading.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(|e| Error::io(path, e))?;
        Self::from_backing(path, Backing::Mmap(map))
    }

    /// Parse from memory (fuzzing, tests).
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Self> {
        Self::from_backing(path.as_ref(), Backing::Bytes(bytes))
    }

    fn from_backing(path: &Path, backing: Backing) -> Result<Self> {
        // The magic decides; a `.gguf` name also selects GGUF so a corrupt magic is reported as such.
        let ext_gguf = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
        let is_gguf = ext_gguf || (backing.len() >= 4 && &backing[..4] == gguf::MAGIC);
        let (format, metadata, tensors) = if is_gguf {
            let (m, t) = load_gguf(path, &backing)?;
            (Format::Gguf, m, t)
        } else {
            let h = safetensors::parse(path, &backing)?;
            let t = h
                .tensors
                .into_iter()
                .map(|t| Tensor {
                    stored: t.dtype.name().to_string(),
                    name: t.name,
                    shape: t.shape,
                    data: Data::Mapped {
                        range: t.range,
                        dtype: t.dtype,
                    },
                })
                .collect();
            (Format::SafeTensors, h.metadata, t)
        };
        let index = tensors
            .iter()
            .enumerate()
            .map(|(i, t): (usize, &Tensor)| (t.name.clone(), i))
            .collect();
        Ok(WeightFile {
            path: path.to_path_buf(),
            format,
            metadata,
            backing,
            tensors,
            index,
            report: Default::default(),
            hash: Default::default(),
        })
    }

    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    fn tensor_or_err(&self, name: &str) -> Result<&Tensor> {
        self.get(name)
            .ok_or_else(|| Error::tensor(&self.path, name, "not in the file"))
    }

    /// The stored dtype and bytes of a tensor kept in place (None for dequantized ones).
    pub fn raw(&self, name: &str) -> Result<Option<(DType, &[u8])>> {
        Ok(match &self.tensor_or_err(name)?.data {
            Data::Mapped { range, dtype } => Some((*dtype, &self.backing[range.clone()])),
            Data::Dequantized(_) => None,
        })
    }

    /// A tensor's values as f32 (borrowed when stored as aligned F32 or dequantized).
    pub fn f32(&self, name: &str) -> Result<Cow<'_, [f32]>> {
        Ok(match &self.tensor_or_err(name)?.data {
            Data::Mapped {
                range,
                dtype: DType::F32,
            } => dtype::cast_le::<f32>(&self.backing[range.clone()]),
            Data::Mapped { range, dtype } => {
                Cow::Owned(dtype::to_f32(*dtype, &self.backing[range.clone()]))
            }
            Data::Dequantized(v) => Cow::Borrowed(v),
        })
    }

    /// A tensor's values as f64 (goldens).
    pub fn f64(&self, name: &str) -> Result<Vec<f64>> {
        Ok(match &self.tensor_or_err(name)?.data {
            Data::Mapped { range, dtype } => dtype::to_f64(*dtype, &self.backing[range.clone()]),
            Data::Dequantized(v) => v.iter().map(|&x| x as f64).collect(),
        })
    }

    /// Names with logical shapes, in file order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect()
    }

    /// Check names and shapes against the schema, and every value for NaN/Inf (which touches
    /// all the data once, like reading the file). Computed once.
    pub fn report(&self) -> Report {
        self.report.get_or_init(|| self.compute_report()).clone()
    }

    fn compute_report(&self) -> Report {
        let mut r = schema::validate(&self.shapes());
        for t in &self.tensors {
            let bad = match &t.data {
                Data::Mapped { range, dtype } => {
                    dtype::count_non_finite(*dtype, &self.backing[range.clone()])
                }
                Data::Dequantized(v) => v.iter().filter(|x| !x.is_finite()).count(),
            };
            if bad > 0 {
                r.problems.push(Problem::NonFinite {
                    tensor: t.name.clone(),
                    count: bad,
                });
            }
        }
        r
    }

    /// Validate for use of `part`: the file must hold that part, and have no problems at all
    /// (a problem in the other half still makes the file suspect, so it is refused too).
    pub fn model_for(&self, part: Part) -> Result<Model> {
        let r = self.report();
        let mut problems = r.problems.clone();
        if !r.variant.has(part) && !problems.contains(&Problem::PartAbsent { part }) {
            problems.insert(0, Problem::PartAbsent { part });
        }
        if problems.is_empty() {
            Ok(r.model)
        } else {
            Err(Error::Invalid {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// blake3 of the file's bytes: identifies the source weights in graphs, engines and manifests.
    pub fn content_hash(&self) -> String {
        self.hash
            .get_or_init(|| blake3::hash(&self.backing).to_hex().to_string())
            .clone()
    }

    pub fn file_size(&self) -> usize {
        self.backing.len()
    }
}

type Loaded = (BTreeMap<String, String>, Vec<Tensor>);

fn load_gguf(path: &Path, bytes: &[u8]) -> Result<Loaded> {
    let g = gguf::parse(path, bytes)?;
    let names = gguf::stripped_names(&g);
    let mut tensors = Vec::with_capacity(g.tensors.len());
    let mut seen = std::collections::HashSet::new();
    for (t, name) in g.tensors.iter().zip(names) {
        if !seen.insert(name.clone()) {
            return Err(Error::tensor(
                path,
                &name,
                "appears twice after stripping the model prefix",
            ));
        }
        let shape = gguf::logical_shape(path, &g, t, &name)?;
        let raw = &bytes[t.range.clone()];
        let data = match t.ggml_type {
            GgmlType::F32 => Data::Mapped {
                range: t.range.clone(),
                dtype: DType::F32,
            },
            GgmlType::F16 => Data::Mapped {
                range: t.range.clone(),
                dtype: DType::F16,
            },
            GgmlType::BF16 => Data::Mapped {
                range: t.range.clone(),
                dtype: DType::BF16,
            },
            q => Data::Dequantized(q.dequantize(raw)),
        };
        tensors.push(Tensor {
            name,
            shape,
            stored: t.ggml_type.name().to_string(),
            data,
        });
    }
    let metadata = g
        .metadata
        .iter()
        .filter(|(k, _)| !k.starts_with(gguf::ORIG_SHAPE_PREFIX))
        .map(|(k, v)| (k.clone(), v.short()))
        .collect();
    Ok((metadata, tensors))
}
