//! The `seedvae` command driven as a user drives it, one test binary for every command (one
//! link, one shared prebuilt engine). Tiers: `build` (TensorRT-RTX builds on the CPU),
//! `convert`, `inspect_bad_inputs`, `pack` (ship and install), `run` (decode / encode on the
//! CPU backend), `layering` (the CLI holds no orchestration).

mod common;

mod build;
mod convert;
mod hostile;
mod inspect_bad_inputs;
mod layering;
mod messages;
mod outputs;
mod pack;
mod round2;
mod run;
mod selftest;
mod signals;
