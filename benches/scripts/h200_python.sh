#!/usr/bin/env bash
# The Python package (and the first-run probe, h200_probe.sh) on the H200's CUDA provider.
# Expects what h200_cuda.sh does (the wheel pieces in /tmp/w; .dev/run with a release `seedvae`,
# fixtures/, torch_decoder.py) plus .dev/run/seedvae-*.whl (`maturin build --release -m
# crates/seedvae-py/Cargo.toml`). The package goes to /tmp/pyseedvae (no pip index there: the
# wheel is installed with --no-deps). Log: $OUT/log.txt.
set -uo pipefail
exec > >(tee -a "$OUT/log.txt") 2>&1
. "$(dirname "${BASH_SOURCE[0]}")/h200_env.sh"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 --version
echo "==== h200_probe.sh (issue 12: the first-run probe)"
[ -n "${SKIP_PROBE:-}" ] || timeout 420 bash benches/scripts/h200_probe.sh 2>&1
echo "==== the Python package"
python3 -m pip install -q --no-deps --upgrade --target /tmp/pyseedvae .dev/run/seedvae-*.whl 2>&1 | tail -2
PYTHONPATH=/tmp/pyseedvae timeout 400 python3 benches/scripts/h200_python.py 2>&1 | grep -v "cudnn_fe_call"; echo "python exit status: ${PIPESTATUS[0]}"
echo "==== done"
