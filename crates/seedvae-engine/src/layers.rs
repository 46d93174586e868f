//! What TensorRT-RTX built, read from its detailed build log (ProfilingVerbosity::kDETAILED), so
//! FP8 use can be checked without a GPU (the engine inspector needs a deserialized engine, which
//! needs a supported GPU). The dump is one "Layers:" message; each layer reads
//! `Name: …, LayerType: …, Inputs: [ { …, Datatype: …, … } ], Constants: [ … ], Outputs: …`.
//! Convolutions are `correlation` layers (or `Convolution` in non-fused builds), matmuls `gemm`.

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerSummary {
    pub layers: usize,
    pub convolutions: usize,
    pub fp8_convolutions: usize,
    pub matmuls: usize,
    pub fp8_matmuls: usize,
}

/// Summarize the layer dump in a build log; `None` when the log has no dump (build without
/// detailed profiling verbosity).
pub fn summarize(log: &[(String, String)]) -> Option<LayerSummary> {
    let dump = log
        .iter()
        .find(|(_, m)| m.starts_with("Layers:"))?
        .1
        .as_str();
    let mut s = LayerSummary::default();
    for layer in dump.split("\nName: ").skip(1) {
        s.layers += 1;
        let ty = layer
            .split("LayerType: ")
            .nth(1)
            .and_then(|x| x.split(',').next())
            .unwrap_or("");
        // Only the activation inputs count: FP8 weights alone would be dequantized first.
        let inputs = layer
            .split("Inputs: [")
            .nth(1)
            .and_then(|x| x.split("Constants: [").next())
            .unwrap_or("");
        let fp8 = inputs.contains("Datatype: FP8");
        match ty {
            "correlation" | "Convolution" | "convolution" => {
                s.convolutions += 1;
                s.fp8_convolutions += fp8 as usize;
            }
            "gemm" | "MatrixMultiply" | "matmul" => {
                s.matmuls += 1;
                s.fp8_matmuls += fp8 as usize;
            }
            _ => {}
        }
    }
    Some(s)
}

/// Device memory an engine needs at its profile's largest shapes, as the builder reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMemory {
    pub activation_bytes: u64,
    pub weight_bytes: u64,
}

fn number_after(log: &[(String, String)], prefix: &str) -> Option<u64> {
    log.iter().find_map(|(_, m)| {
        m.strip_prefix(prefix)?
            .trim()
            .trim_end_matches("bytes")
            .trim()
            .parse()
            .ok()
    })
}

/// "Total Activation Memory: N bytes" and "Total Weights Memory: N bytes" from a build log.
pub fn device_memory(log: &[(String, String)]) -> Option<DeviceMemory> {
    Some(DeviceMemory {
        activation_bytes: number_after(log, "Total Activation Memory:")?,
        weight_bytes: number_after(log, "Total Weights Memory:")?,
    })
}

/// (budget, need) from the compiler's "Exceeded mem budget of A. Need B" when a build fails
/// because the largest shapes need more memory than the workspace limit allows.
pub fn exceeded_budget(log: &[(String, String)]) -> Option<(u64, u64)> {
    log.iter().find_map(|(_, m)| {
        let rest = m.split("Exceeded mem budget of ").nth(1)?;
        let (a, b) = rest.split_once(". Need ")?;
        let b: String = b.chars().take_while(|c| c.is_ascii_digit()).collect();
        Some((a.trim().parse().ok()?, b.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_memory_lines() {
        let log = vec![
            ("debug".to_string(), "Total Activation Memory: 2088440832 bytes".to_string()),
            ("debug".to_string(), "Total Weights Memory: 2706598 bytes".to_string()),
            (
                "verbose".to_string(),
                " (foreignNode) [pass.cpp:2417: run_passes] Exceeded mem budget of 1076430534. Need 2088440448"
                    .to_string(),
            ),
        ];
        assert_eq!(
            device_memory(&log),
            Some(DeviceMemory {
                activation_bytes: 2088440832,
                weight_bytes: 2706598
            })
        );
        assert_eq!(exceeded_budget(&log), Some((1076430534, 2088440448)));
        assert_eq!(device_memory(&log[1..]), None);
    }

    #[test]
    fn counts_fp8_inputs_not_fp8_constants() {
        let dump = "Layers:\nName: a, LayerType: correlation, Inputs: [ { Name: x, Datatype: FP8, Format: f }], Constants: [ { Datatype: FP8 }], Outputs: []\n\
                    Name: b, LayerType: correlation, Inputs: [ { Name: y, Datatype: Half }], Constants: [ { Datatype: FP8 }], Outputs: []\n\
                    Name: c, LayerType: gemm, Inputs: [ { Datatype: FP8 }], Constants: [], Outputs: []\n\
                    Name: d, LayerType: kgen, Inputs: [ { Datatype: FP8 }], Constants: [], Outputs: []";
        let s = summarize(&[("verbose".into(), dump.into())]).unwrap();
        assert_eq!(
            s,
            LayerSummary {
                layers: 4,
                convolutions: 2,
                fp8_convolutions: 1,
                matmuls: 1,
                fp8_matmuls: 1
            }
        );
        assert_eq!(summarize(&[("info".into(), "nothing".into())]), None);
    }
}
