//! Any bytes given to the GGUF path (header, metadata, tensor infos, dequantization) must yield
//! a value or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = seedvae_weights::WeightFile::from_bytes("fuzz.gguf", data.to_vec()) {
        let _ = w.report();
        for t in w.tensors() {
            let _ = w.f32(&t.name);
        }
    }
});
