# Sourced by the h200_exec_*.sh scripts (run from the repository root on the H200): the CUDA
# libraries of the machine's PyTorch (NVRTC, cuDNN, cuBLAS under site-packages/nvidia), the kernel
# cache and the CLI's cache (SEEDVAE_CACHE), $B the carried CLI, and $W, full-size random weights
# that `exec_weights` writes once while the machine is warm (`exec time` synthesizes them when
# the file is missing).
SITE=$(python3 -c 'import site; print(site.getsitepackages()[0])')
export SEEDVAE_SITE_PACKAGES=$SITE SEEDVAE_KERNELS=/tmp/seedvae-kernels
export SEEDVAE_CACHE=/tmp/svc
B=.dev/run/seedvae
W=/tmp/full.safetensors
exec_weights() { [ -f $W ] || timeout 200 .dev/run/exec time $W 64 64 1 > /dev/null 2>&1; }
