//! What the TensorRT-RTX backend sees of this machine's GPU (no TensorRT-RTX library needed):
//! `cargo run --release -p seedvae-runner --example gpu_check`. Prints the GPU, or the one-line
//! reason there is none, and whether an sm_120 / sm_89 engine could run on it.

use seedvae_engine::build::Target;
use seedvae_runner::tensorrt::{check_device, probe_gpu};

fn main() {
    match probe_gpu() {
        Err(why) => println!("no GPU for TensorRT-RTX: {why}"),
        Ok(gpu) => {
            println!(
                "GPU: {} (compute capability {}.{}), {:.1} of {:.1} GiB free",
                gpu.name,
                gpu.compute_capability.0,
                gpu.compute_capability.1,
                gpu.free_bytes as f64 / (1u64 << 30) as f64,
                gpu.total_bytes as f64 / (1u64 << 30) as f64
            );
            for t in [Target::Sm120, Target::Sm89] {
                match check_device(&gpu, &[t]) {
                    Ok(_) => println!("{} engine: runs here", t.name()),
                    Err(why) => println!("{} engine: refused: {why}", t.name()),
                }
            }
        }
    }
}
