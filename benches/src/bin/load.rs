//! Load time of a checkpoint vs reading its bytes.
//!
//! usage: cargo run --release -p seedvae-benches --bin load -- FILE [REPS]
//! "load" = open (mmap) + parse + schema validation + NaN/Inf scan of every value, i.e. what
//! `seedvae inspect` does before it can say "valid". Baseline: `cat FILE > /dev/null` (page cache
//! warm for both).

use seedvae_benches::{cat_to_null, median, secs};
use seedvae_weights::WeightFile;
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let file = PathBuf::from(args.next().expect("usage: load FILE [REPS]"));
    let reps: usize = args
        .next()
        .map_or(7, |r| r.parse().expect("REPS is a number"));
    let size = std::fs::metadata(&file).expect("stat").len();
    let cat = median(reps, || cat_to_null(&file));
    let load = median(reps, || {
        let w = WeightFile::open(&file).expect("open");
        let r = w.report();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    });
    println!("file: {} ({size} bytes), median of {reps}", file.display());
    println!("cat > /dev/null : {:.4} s", secs(cat));
    println!(
        "seedvae load    : {:.4} s (open + validate + NaN/Inf scan)",
        secs(load)
    );
    println!(
        "ratio           : {:.2}x (goal <= 1.5x)",
        secs(load) / secs(cat)
    );
}
