//! The backend trait: run one exported graph (by its contract's tensor names) on some device.
//! Everything above it (streaming, tiling, I/O) is backend-independent and tested on the CPU.

pub(crate) mod libs;
pub mod native;
pub mod ort;
pub mod tensorrt;

use crate::stream::StreamId;
use crate::tensor::Tensor;
use crate::Error;
use seedvae_onnx::Contract;
use std::collections::HashMap;

/// Why a backend cannot run on this machine (no driver, unsupported GPU, library missing...):
/// the condition under which `--backend auto` falls back rather than fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// Which backend runs a model: compared as a type, written (logs, `--json`, Python) by
/// [`BackendKind::name`], the strings reports have always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// ONNX Runtime on the CPU.
    OrtCpu,
    /// ONNX Runtime's CUDA execution provider.
    OrtCuda,
    /// A TensorRT-RTX engine on an RTX GPU.
    TensorrtRtx,
    /// seedvae's own executor on its plain-Rust reference device (the CPU): slow, exact.
    Reference,
    /// seedvae's own executor on an NVIDIA GPU (cuDNN, cuBLAS, its own kernels).
    Cuda,
    /// A stand-in (tests; a model between a failed backend and the next).
    Other(&'static str),
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::OrtCpu => "onnxruntime-cpu",
            BackendKind::OrtCuda => "onnxruntime-cuda",
            BackendKind::TensorrtRtx => "tensorrt-rtx",
            BackendKind::Reference => "reference",
            BackendKind::Cuda => "seedvae-cuda",
            BackendKind::Other(name) => name,
        }
    }

    /// Does it run on a GPU (and so get a first-run check, a memory plan, a fallback)?
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            BackendKind::OrtCuda | BackendKind::TensorrtRtx | BackendKind::Cuda
        )
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl PartialEq<&str> for BackendKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

/// A stream's device memory as the backend planned it and as the device measured it (the
/// executor's own buffers: weights, activations, carried state, staging; cuDNN's workspace is
/// in the measure, not the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct DeviceMemory {
    pub planned_bytes: u64,
    pub peak_bytes: Option<u64>,
    /// Host bytes of the states parked off the device (page-locked), as planned.
    pub parked_bytes: u64,
}

/// A loaded model on a device. `Send`: a backend moves to the thread that runs it (a Python
/// worker, a service's pool), though one is driven by one thread at a time (`&mut self`).
pub trait Backend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// The I/O contract of the loaded graph.
    fn contract(&self) -> &Contract;
    /// Run once. `inputs` must hold every input of the contract; returns every output.
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error>;
    /// Begin a stream (one spatial tile of a clip) of a streaming graph; its carried causal
    /// state lives in this backend until [`Backend::end_stream`].
    fn begin_stream(&mut self) -> StreamId;
    /// Run stream `id`'s next chunk (`input` under the contract's first input name); returns the
    /// public outputs. GPU backends keep the state in device memory. After an error the stream
    /// is over.
    fn step(&mut self, id: StreamId, input: &Tensor) -> Result<HashMap<String, Tensor>, Error>;
    /// Queue stream `id`'s next chunk behind the ones queued before, its outputs for
    /// [`Backend::collect`] (oldest first): a backend that computes asynchronously (seedvae's
    /// CUDA executor) lets the caller take one chunk's output while the device computes the
    /// next. A backend that ran the chunk at once returns its outputs (the default: `step`).
    fn submit(
        &mut self,
        id: StreamId,
        input: &Tensor,
    ) -> Result<Option<HashMap<String, Tensor>>, Error> {
        self.step(id, input).map(Some)
    }
    /// The outputs of the oldest chunk [`Backend::submit`] queued.
    fn collect(&mut self) -> Result<HashMap<String, Tensor>, Error> {
        Err(Error::Backend(format!(
            "internal: {} has no chunk queued",
            self.kind()
        )))
    }
    /// The whole clip from `input` into `output`, tensors another library keeps in the GPU's
    /// memory (torch CUDA tensors handed over by DLPack: no copy through the host), in calls
    /// over input frames `chunks` (the planner's), `on_chunk(frames done)` after each call
    /// (frames decoded, or frames encoded; an error stops the run). Returns the largest carried
    /// state (bytes) once the GPU is done with both tensors — on an error too, after the GPU is
    /// done. seedvae's CUDA executor only.
    fn run_foreign(
        &mut self,
        input: &seedvae_exec::Foreign,
        output: &seedvae_exec::Foreign,
        chunks: &[(usize, usize)],
        on_chunk: &mut dyn FnMut(usize) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let _ = (input, output, chunks, on_chunk);
        Err(Error::Input(format!(
            "{} takes no tensors in GPU memory: only seedvae's CUDA executor (backend \"cuda\") does",
            self.kind()
        )))
    }
    /// The most device memory a stream whose chunks look like `input` (`[1, C, T, H, W]`) needs,
    /// where the backend plans it (seedvae's CUDA executor: its plan for the whole chunk, or
    /// the least cut the schedule takes); None elsewhere. What a host application frees for it.
    fn device_need(&mut self, _input: &[usize]) -> Result<Option<u64>, Error> {
        Ok(None)
    }
    /// Run every layer in bands of `px` rows of the frame from the next stream on (exact:
    /// seedvae's executor); a backend without bands ignores it (it is tiled instead).
    fn set_band_px(&mut self, _px: Option<usize>) {}
    /// The device memory planned for the last stream begun and the most the device has held
    /// since, where the backend plans and measures it (seedvae's CUDA executor); None elsewhere.
    fn device_memory(&self) -> Option<DeviceMemory> {
        None
    }
    /// Drop stream `id`'s state (and any chunk of it still queued).
    fn end_stream(&mut self, id: StreamId);
    /// Bytes stream `id` carries between chunks.
    fn state_bytes(&self, id: StreamId) -> usize;
}

#[cfg(test)]
mod tests {
    use super::BackendKind;

    /// Reports keep the names they always had (`--json`, Python's report dict).
    #[test]
    fn kinds_are_written_as_the_names_reports_always_had() {
        for (k, name) in [
            (BackendKind::OrtCpu, "onnxruntime-cpu"),
            (BackendKind::OrtCuda, "onnxruntime-cuda"),
            (BackendKind::TensorrtRtx, "tensorrt-rtx"),
            (BackendKind::Reference, "reference"),
            (BackendKind::Cuda, "seedvae-cuda"),
        ] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{name}\""));
            assert_eq!(k.to_string(), name);
            assert!(k == name);
        }
        assert!(BackendKind::OrtCuda.is_gpu() && !BackendKind::OrtCpu.is_gpu());
        assert!(BackendKind::Cuda.is_gpu() && !BackendKind::Reference.is_gpu());
    }
}
