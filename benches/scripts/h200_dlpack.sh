#!/bin/bash
# The Python package's in-place hand-over of torch CUDA tensors on the H200 (h200_dlpack.py):
# decode and encode in place against the same runs from host memory. Carry .dev/run = {exec,
# seedvae-*.whl}; re-runnable from scratch; log under $OUT.
set -u
. benches/scripts/h200_exec_env.sh
exec_weights
python3 -m pip install -q --no-deps --upgrade --target /tmp/pyseedvae .dev/run/seedvae-*.whl 2>&1 | tail -2
W=$W PYTHONPATH=/tmp/pyseedvae timeout 400 python3 benches/scripts/h200_dlpack.py 2>&1 | grep -v INFO | tee $OUT/dlpack.txt
