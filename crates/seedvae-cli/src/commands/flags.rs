//! The library names its options by their library names, in backticks (`` `tile_px` 7``); the
//! CLI speaks in its flags (`--tile-size 7`). Every message the CLI prints from the library goes
//! through [`speak_cli`].

/// Library option name → what a CLI user types (every name the library uses: the layering test
/// `every_library_option_name_is_translated` holds it).
const FLAGS: [(&str, &str); 22] = [
    ("`backends`", "--backend"),
    ("`tile_px`", "--tile-size"),
    ("`overlap_px`", "--tile-overlap"),
    ("`no_tiling`", "--no-tiling"),
    ("`chunk`", "--chunk"),
    ("`vram_budget_gb`", "--vram-budget"),
    ("`threads`", "--threads"),
    ("`tensorrt_dir`", "--tensorrt-dir"),
    ("`color_batch`", "--color-batch"),
    ("`weights`", "--weights"),
    ("`model`", "--model"),
    ("`cache`", "--cache DIR"),
    ("`target`", "--target"),
    ("`precision`", "--precision"),
    ("`streaming`", "--streaming"),
    ("`part`", "--part"),
    ("`force`", "--force"),
    ("`output`", "-o"),
    ("`dit_latent`", "--dit-latent"),
    ("`install_cuda`", "run `scripts/setup.sh --gpu`"),
    ("`install_tensorrt`", "run `scripts/setup.sh`"),
    ("`install_onnxruntime`", "run `scripts/setup.sh`"),
];

/// `msg` with the library's option names as the CLI's flags.
pub fn speak_cli(msg: &str) -> String {
    FLAGS
        .iter()
        .fold(msg.to_string(), |m, (name, flag)| m.replace(name, flag))
}

/// The log's writer (standard error in the CLI): the library's log lines speak in flags too
/// (tracing formats an event whole and writes it at once).
pub struct Speaking<W>(pub W);

impl<W: std::io::Write> std::io::Write for Speaking<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = speak_cli(&String::from_utf8_lossy(buf));
        self.0.write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::speak_cli;

    #[test]
    fn library_names_become_flags() {
        assert_eq!(
            speak_cli("`tile_px` 7: tiles are at least 64 px"),
            "--tile-size 7: tiles are at least 64 px"
        );
        assert_eq!(
            speak_cli("pass `force` to overwrite it or choose another `output` path"),
            "pass --force to overwrite it or choose another -o path"
        );
        assert_eq!(speak_cli("plain text"), "plain text");
        assert_eq!(
            speak_cli("ONNX Runtime library not found: `install_onnxruntime`, or set X"),
            "ONNX Runtime library not found: run `scripts/setup.sh`, or set X"
        );
    }

    /// The summary's JSON goes through `speak_cli` whole: no replacement may break a string.
    #[test]
    fn no_replacement_needs_escaping_in_json() {
        for (_, flag) in super::FLAGS {
            assert!(!flag.contains(['"', '\\']), "{flag}");
        }
    }

    #[test]
    fn log_lines_speak_in_flags() {
        use std::io::Write;
        let mut log = super::Speaking(Vec::new());
        let line = b"INFO no CPU reference: `install_onnxruntime`; `tile_px` 64\n";
        log.write_all(line).unwrap();
        assert_eq!(
            String::from_utf8(log.0).unwrap(),
            "INFO no CPU reference: run `scripts/setup.sh`; --tile-size 64\n"
        );
    }
}
