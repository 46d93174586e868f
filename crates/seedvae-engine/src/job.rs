//! One engine request: a seedvae ONNX graph, a profile and targets → a verified cache entry,
//! built only when the cache has none.

use crate::build::{
    build_engine, check_targets, load_libraries, profile_dims, BuildRequest, Target,
};
use crate::cache::{BuildInfo, Cache, Entry, InputRange, KeyParts, Outcome};
use crate::profile::{EnginePrecision, Profile};
use crate::Error;
use seedvae_onnx::{meta, Contract};
use seedvae_weights::Part;
use std::path::PathBuf;

pub struct Job<'a> {
    pub cache: &'a Cache,
    pub profile: &'a Profile,
    pub targets: Vec<Target>,
    /// Where the TensorRT-RTX libraries are (else `$SEEDVAE_TENSORRT_DIR`, else the venv).
    pub tensorrt_dir: Option<PathBuf>,
    /// Build weightless engines (see [`crate::BuildRequest::weightless`]).
    pub weightless: bool,
    /// Stops a build in progress (see [`crate::BuildRequest::cancel`]).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// What a seedvae ONNX graph is, from its metadata.
#[derive(Debug, Clone)]
pub struct Graph {
    pub contract: Contract,
    pub precision: EnginePrecision,
    pub metadata: Vec<(String, String)>,
    pub blake3: String,
}

/// Read a graph's contract and precision; a clear error for any ONNX file seedvae did not write.
pub fn inspect_graph(onnx: &[u8], origin: &str) -> Result<Graph, Error> {
    let metadata = seedvae_onnx::write::read_metadata(onnx)
        .map_err(|e| Error::Config(format!("{origin}: not a readable ONNX model: {e}")))?;
    let contract =
        seedvae_onnx::contract_in(&metadata, origin).map_err(|e| Error::Config(e.to_string()))?;
    let quantization = metadata.iter().find(|(k, _)| k == meta::QUANTIZATION);
    let precision = if quantization.is_some_and(|(_, q)| q.starts_with("fp8")) {
        EnginePrecision::Fp8
    } else {
        match contract.precision {
            seedvae_onnx::Precision::Fp32 => EnginePrecision::Fp32,
            seedvae_onnx::Precision::Fp16 => EnginePrecision::Fp16,
        }
    };
    Ok(Graph {
        contract,
        precision,
        metadata,
        blake3: blake3::hash(onnx).to_hex().to_string(),
    })
}

impl Job<'_> {
    /// The cache key parts of an engine from a graph with these properties. Loads TensorRT-RTX
    /// (its version is part of the key).
    pub fn key_parts(
        &self,
        onnx_blake3: &str,
        precision: EnginePrecision,
        part: Part,
        streaming: bool,
    ) -> Result<KeyParts, Error> {
        check_targets(precision == EnginePrecision::Fp8, &self.targets)?;
        let libs = load_libraries(self.tensorrt_dir.as_deref())?;
        Ok(KeyParts {
            onnx_blake3: onnx_blake3.to_string(),
            shapes: *self.profile.shapes(part).get(streaming),
            workspace_mib: self.profile.workspace_mib,
            tensorrt_rtx: libs.version.clone(),
            targets: self.targets.clone(),
            precision,
            part,
            streaming,
            weightless: self.weightless,
        })
    }

    /// A verified cached engine for these key parts, if there is one.
    pub fn cached(&self, parts: &KeyParts) -> Option<Entry> {
        match self.cache.load(&parts.key()) {
            Ok(e) => e,
            Err(why) => {
                tracing::warn!("{why}");
                None
            }
        }
    }

    /// The engine for a seedvae graph: cached, or built now (`on_build` is called first).
    pub fn engine(
        &self,
        onnx: &[u8],
        graph: &Graph,
        on_build: impl FnOnce(),
    ) -> Result<(Entry, Outcome), Error> {
        let c = &graph.contract;
        let parts = self.key_parts(&graph.blake3, graph.precision, c.part, c.streaming)?;
        self.cache.get_or_build(&parts, || {
            on_build();
            let t = std::time::Instant::now();
            let req = BuildRequest {
                targets: self.targets.clone(),
                shapes: parts.shapes,
                workspace_bytes: self.profile.workspace_bytes(),
                detailed: true,
                weightless: parts.weightless,
                cancel: self.cancel.clone(),
            };
            let out = build_engine(onnx, c, &req)?;
            let layers = crate::layers::summarize(&out.log);
            let device_memory = crate::layers::device_memory(&out.log);
            let input_ranges = profile_dims(c, &parts.shapes)
                .into_iter()
                .map(|(name, [min, opt, max])| InputRange {
                    name,
                    min,
                    opt,
                    max,
                })
                .collect();
            let source = graph
                .metadata
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("seedvae.") && k != seedvae_onnx::contract::METADATA_KEY
                })
                .cloned()
                .collect();
            let info = BuildInfo {
                profile: self.profile.name.clone(),
                contract: c.clone(),
                input_ranges,
                layers,
                device_memory,
                source,
                build_seconds: t.elapsed().as_secs_f64(),
            };
            Ok((out.engine, info))
        })
    }
}
