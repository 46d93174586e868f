#!/usr/bin/env bash
# The first-run probe on the CUDA provider (ran on the H200: benches/README.md): a fresh cache
# runs it and records a pass under probes/, a second run skips it; full-size fp16/fp32 show its
# values.
# Same setup as h200_cuda.sh (the wheel pieces in /tmp/w, .dev/run with the release binary).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/h200_env.sh"
B=.dev/run/seedvae; F=.dev/run/fixtures
q() { grep -v "cudnn_fe_call" | grep -i "check\|probe\|error\|decoded\|backend" | head -8; }
echo "== tiny, fresh cache: the probe runs"; time $B decode -m $F/weights.safetensors $F/latent_t2_8x8.safetensors -o /tmp/o1.safetensors --backend ort-cuda --cache /tmp/pc --force -v 2>&1 | q
cat /tmp/pc/probes/*.json
echo "== again: recorded, no probe"; time $B decode -m $F/weights.safetensors $F/latent_t2_8x8.safetensors -o /tmp/o1.safetensors --backend ort-cuda --cache /tmp/pc --force -v 2>&1 | q
echo "== full size fp16 and fp32 (fresh cache): the probe's values"
$B synth -o /tmp/full.safetensors --quiet --force
python3 -c "import torch; from safetensors.torch import save_file; save_file({'latent': torch.randn(1,16,2,16,16)}, '/tmp/l.safetensors')"
time timeout 200 $B decode -m /tmp/full.safetensors /tmp/l.safetensors -o /tmp/o2.safetensors --backend ort-cuda --cache /tmp/pf --force -v 2>&1 | q
time timeout 200 $B decode -m /tmp/full.safetensors /tmp/l.safetensors -o /tmp/o3.safetensors --backend ort-cuda --cuda-fp32 --cache /tmp/pf --force -v 2>&1 | q
for f in /tmp/pf/probes/*.json; do cat $f; done
