use super::Ui;
use anyhow::Result;
use seedvae::backends::{BackendSettings, TensorrtOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(
    after_help = "Lists the backends in --backend auto's order: tensorrt (TensorRT-RTX), cuda (ONNX \
Runtime's CUDA provider), cpu; for each, whether it can run here, on which GPU, or why not. Opens \
no model. Exit code 0 when at least one can run. Examples:\n  \
seedvae backends\n  \
seedvae backends --json"
)]
pub struct Args {
    /// Print the list as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// Folder with the TensorRT-RTX libraries (default: $SEEDVAE_TENSORRT_DIR, else the setup venv).
    #[arg(long)]
    pub tensorrt_dir: Option<PathBuf>,
}

pub fn run(a: Args, _ui: &Ui) -> Result<ExitCode> {
    let settings = BackendSettings {
        tensorrt: TensorrtOptions {
            library_dir: a.tensorrt_dir.clone(),
            ..TensorrtOptions::default()
        },
        ..BackendSettings::default()
    };
    let list = seedvae::backends::available(&settings);
    if a.json {
        let text = serde_json::to_string_pretty(&list)?;
        println!("{}", super::flags::speak_cli(&text));
    } else {
        for b in &list {
            match (&b.unavailable, &b.gpu) {
                (None, Some(g)) => println!(
                    "{:<17} yes  on {} (compute capability {}.{}, {:.1} of {:.1} GB free)",
                    b.backend.name(),
                    g.name,
                    g.compute_capability.0,
                    g.compute_capability.1,
                    g.free_bytes as f64 / 1e9,
                    g.total_bytes as f64 / 1e9
                ),
                (None, None) => println!("{:<17} yes", b.backend.name()),
                (Some(why), _) => println!(
                    "{:<17} no   {}",
                    b.backend.name(),
                    super::flags::speak_cli(why)
                ),
            }
        }
    }
    Ok(if list.iter().any(|b| b.unavailable.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
