#!/bin/bash
# seedvae-exec's encoder (CUDA device, fp16) against PyTorch fp16 at its best on the same GPU in
# the same run (tests/oracle/torch_encoder.py: one 9-frame call, ms per input frame × the frame
# count), random full-size weights: 1248x720, 9 and 81 frames (calls of 5 then 4 frames), the
# memory plan beside the pool's peak; then the plan within 16 GB; then the CLI (`seedvae encode
# --backend cuda --vram-budget 16`) on an 81-frame .y4m, twice (the first times cuDNN's plans).
# Carry .dev/run = {exec, seedvae, torch_encoder.py (tests/oracle), torch_decoder.py
# (../shared/oracle: its building blocks)}; re-runnable from scratch; logs under $OUT.
# ONLY_CLI=1 runs the CLI part and the anchor alone.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
if [ -z "${ONLY_CLI:-}" ]; then
run() { timeout 250 .dev/run/exec "$@" 2>&1 | grep -v INFO | tee -a $OUT/encode.txt; }
run time-enc $W 720 1248 9
run time-enc $W 720 1248 81
run plan-enc $W 720 1248 16
fi
python3 - <<'PY'
import numpy as np
h, w = 720, 1248
r = np.random.default_rng(7)
yy, xx = np.mgrid[0:h, 0:w]
with open("/tmp/clip81.y4m", "wb") as f:
    f.write(b"YUV4MPEG2 W%d H%d F24:1 Ip A1:1 C420jpeg\n" % (w, h))
    for t in range(81):
        y = (128 + 90 * np.sin((xx + 7 * t) / 37.0) * np.cos(yy / 23.0) + r.normal(0, 8, (h, w)))
        uv = (128 + 40 * np.sin((xx[::2, ::2] - 5 * t) / 51.0)).astype(np.uint8)
        f.write(b"FRAME\n" + np.clip(y, 0, 255).astype(np.uint8).tobytes() + uv.tobytes() + uv[::-1].tobytes())
PY
for i in 1 2; do
  timeout 200 .dev/run/seedvae encode -m $W /tmp/clip81.y4m -o /tmp/enc81.safetensors --backend cuda --vram-budget 16 --force --json > $OUT/enc81_$i.json 2> $OUT/enc81_$i.err
  echo "cli encode $i exit $?: $(grep -h '"seconds"\|device_p' $OUT/enc81_$i.json | tr -d ' \n')" | tee -a $OUT/encode.txt
done
cd .dev/run
timeout 200 python3 torch_encoder.py $W --shape 9,720,1248 --dtype fp16 --bench 3 2>&1 | tail -1 | tee -a $OUT/encode.txt
[ -n "${ONLY_CLI:-}" ] || timeout 250 python3 torch_encoder.py $W --shape 81,720,1248 --dtype fp16 --bench 1 2>&1 | tail -1 | tee -a $OUT/encode.txt
