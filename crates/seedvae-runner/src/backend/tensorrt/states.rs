//! A stream's carried causal state on the GPU: two device sets, ping-pong — a call reads one set
//! and writes the other, both bound by address, and the set it wrote is what the next call
//! reads. Both sets belong to the stream, so ending it gives both back.

use super::backend::DeviceIo;
use crate::planner::tensor_bytes;
use crate::Error;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use seedvae_onnx::Contract;
use std::sync::Arc;

pub(super) struct TrtStates {
    /// What the next call reads (the previous call's state outputs).
    read: Vec<CudaSlice<u8>>,
    /// What the next call writes.
    write: Vec<CudaSlice<u8>>,
    shapes: Vec<Vec<usize>>,
}

impl TrtStates {
    /// The sets for a chunk of `hw`: the stream's own (`prev`), or on its first chunk two new
    /// zeroed sets (the graph slices a first chunk's states away, but its reads stay defined).
    pub(super) fn for_chunk(
        prev: Option<TrtStates>,
        stream: &Arc<CudaStream>,
        c: &Contract,
        hw: (usize, usize),
    ) -> Result<TrtStates, Error> {
        let shapes: Vec<Vec<usize>> = c
            .states
            .iter()
            .map(|s| s.shape(hw.0, hw.1).to_vec())
            .collect();
        let sizes: Vec<usize> = shapes
            .iter()
            .map(|s| tensor_bytes(s, c.state_elem()))
            .collect();
        let fits = |set: &[CudaSlice<u8>]| {
            set.len() == sizes.len() && set.iter().zip(&sizes).all(|(b, &n)| b.len() == n.max(1))
        };
        if let Some(p) = prev {
            if !(fits(&p.read) && fits(&p.write)) {
                return Err(Error::Backend(
                    "a carried state does not fit its stream".into(),
                ));
            }
            return Ok(p);
        }
        let alloc = || -> Result<Vec<CudaSlice<u8>>, Error> {
            sizes
                .iter()
                .map(|&n| {
                    stream
                        .alloc_zeros::<u8>(n.max(1))
                        .map_err(|source| Error::Cuda {
                            what: format!("cannot allocate {n} bytes of carried state on the GPU"),
                            source,
                        })
                })
                .collect()
        };
        Ok(TrtStates {
            read: alloc()?,
            write: alloc()?,
            shapes,
        })
    }

    /// The state inputs (the read set) and state outputs (the write set) bound by address.
    pub(super) fn bind(
        &self,
        stream: &Arc<CudaStream>,
        c: &Contract,
    ) -> (Vec<DeviceIo>, Vec<DeviceIo>) {
        let bind = |set: &[CudaSlice<u8>], output: bool| -> Vec<DeviceIo> {
            c.states
                .iter()
                .zip(set)
                .zip(&self.shapes)
                .map(|((s, b), shape)| DeviceIo {
                    name: if output {
                        s.output.clone()
                    } else {
                        s.input.clone()
                    },
                    shape: shape.clone(),
                    ptr: b.device_ptr(stream).0,
                    bytes: b.len(),
                })
                .collect()
        };
        (bind(&self.read, false), bind(&self.write, true))
    }

    /// After a call: what it wrote is what the next one reads.
    pub(super) fn swap(&mut self) {
        std::mem::swap(&mut self.read, &mut self.write);
    }

    /// Bytes of one set (what a chunk carries to the next).
    pub(super) fn bytes(&self) -> usize {
        self.read.iter().map(|b| b.len()).sum()
    }
}
