//! Any bytes given to the latent and video readers (.npy, .safetensors, .y4m, a PNG frame
//! directory) must yield frames or an error, never a panic, an abort or a runaway allocation.
//! The first byte picks the reader; the rest is the file, written where the reader finds it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fn read_all_frames(path: &Path) {
    if let Ok(mut src) = seedvae_runner::media::open_source(path) {
        for i in 0..src.len().min(64) {
            if src.read(i).is_err() {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    match which % 4 {
        0 => {
            let _ = seedvae_runner::media::npy::parse_npy(bytes);
            let p = dir.path().join("x.npy");
            std::fs::write(&p, bytes).expect("write");
            let _ = seedvae_runner::read_latent(&p);
            read_all_frames(&p);
        }
        1 => {
            let p = dir.path().join("x.safetensors");
            std::fs::write(&p, bytes).expect("write");
            let _ = seedvae_runner::read_latent(&p);
            read_all_frames(&p);
        }
        2 => {
            let p = dir.path().join("x.y4m");
            std::fs::write(&p, bytes).expect("write");
            read_all_frames(&p);
        }
        _ => {
            let frames = dir.path().join("frames");
            std::fs::create_dir(&frames).expect("mkdir");
            std::fs::write(frames.join("f0.png"), bytes).expect("write");
            read_all_frames(&frames);
        }
    }
});
