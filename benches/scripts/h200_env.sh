# Sourced by the h200_*.sh scripts: ONNX Runtime's CUDA provider from the onnxruntime-gpu 1.31.1
# wheel whose pieces the previous device calls left in /tmp/w (part.00..04), unpacked once to
# /tmp/w/ortgpu, with PyTorch's nvidia-* CUDA libraries linked beside it (as
# `scripts/setup.sh --gpu` lays them out). Sets SEEDVAE_ORT_LIB.
mkdir -p /tmp/w
if [ ! -d /tmp/w/ortgpu ]; then
  (cd /tmp/w && cat part.0* > ort.whl && python3 -m zipfile -e ort.whl ortgpu >/dev/null && rm ort.whl part.0*)
fi
[ -e /tmp/w/ortgpu/nvidia ] || ln -s "$(python3 -c 'import nvidia; print(nvidia.__path__[0])')" /tmp/w/ortgpu/nvidia
export SEEDVAE_ORT_LIB=/tmp/w/ortgpu/onnxruntime/capi/libonnxruntime.so.1.31.1
