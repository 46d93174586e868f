//! The backend trait: run one exported graph (by its contract's tensor names) on some device.
//! Everything above it (streaming, tiling, I/O) is backend-independent and tested on the CPU.

pub(crate) mod libs;
pub mod ort;
pub mod tensorrt;

use crate::stream::Carried;
use crate::tensor::Tensor;
use crate::Error;
use seedvae_onnx::Contract;
use std::collections::HashMap;

/// Why a backend cannot run on this machine (no driver, unsupported GPU, library missing...):
/// the condition under which `--backend auto` falls back rather than fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

pub trait Backend {
    /// Short name for logs and summaries ("onnxruntime-cpu", "tensorrt-rtx").
    fn name(&self) -> &str;
    /// The I/O contract of the loaded graph.
    fn contract(&self) -> &Contract;
    /// Run once. `inputs` must hold every input of the contract; returns every output.
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<HashMap<String, Tensor>, Error>;
    /// One chunk of a streaming graph: `input` under the contract's first input name, the state
    /// `carried` from the previous chunk (`None` on the first); returns the public outputs and the
    /// state to carry on. GPU backends keep the state in device memory; the default goes through
    /// [`Backend::run`] with host tensors.
    fn step(
        &mut self,
        carried: Option<Carried>,
        input: &Tensor,
    ) -> Result<(HashMap<String, Tensor>, Carried), Error> {
        crate::stream::host_step(self, carried, input)
    }
}
