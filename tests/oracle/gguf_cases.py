#!/usr/bin/env python3
"""Oracle data for seedvae's GGUF reader, made with gguf-py (llama.cpp's reference Python package).

Writes OUT/cases.gguf (one tensor per block type, plus 5-D tensors) with gguf.GGUFWriter and
OUT/oracle.safetensors with gguf.quants.dequantize's float32 result for each tensor, under the
same names and logical (PyTorch-order) shapes. Types gguf-py can quantize are quantized from
random data; K-quant blocks (gguf-py only dequantizes those) are built by hand from random bytes
with finite f16 scale fields.

usage: gguf_cases.py OUT_DIR [SEED]
"""
import sys, os
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

out = sys.argv[1]
rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
os.makedirs(out, exist_ok=True)

# byte offsets of the f16 scale fields (d, dmin) inside one block, from ggml's block layouts
K_SCALE_FIELDS = {Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
QUANTIZABLE = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1]

w = gguf.GGUFWriter(os.path.join(out, "cases.gguf"), arch="seedvae-test")
oracle = {}

def add_raw(name, shape, qtype, raw):
    """raw: uint8 bytes of the blocks for a tensor of logical `shape`."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(shape[:-1]))
    raw = np.asarray(raw).view(np.uint8).reshape(rows, shape[-1] // block * size)
    byte_shape = (*shape[:-1], shape[-1] // block * size)
    w.add_tensor(name, raw.reshape(byte_shape), raw_dtype=qtype)
    oracle[name] = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(shape)

for qt in QUANTIZABLE:
    shape = (3, 2, 64)
    x = (rng.standard_normal(shape) * 0.7).astype(np.float32)
    if qt == Q.F32:
        w.add_tensor("t.F32", x)
        oracle["t.F32"] = x
        continue
    if qt == Q.F16:
        w.add_tensor("t.F16", x.astype(np.float16))
        oracle["t.F16"] = x.astype(np.float16).astype(np.float32)
        continue
    add_raw(f"t.{qt.name}", shape, qt, gguf.quants.quantize(x, qt))

for qt, fields in K_SCALE_FIELDS.items():
    shape = (2, 512)
    block, size = gguf.GGML_QUANT_SIZES[qt]
    nblocks = int(np.prod(shape)) // block
    raw = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    for off in fields:
        scales = (rng.uniform(0.001, 0.05, size=nblocks)).astype(np.float16)
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(nblocks, 2)
    add_raw(f"t.{qt.name}", shape, qt, raw)

# 5-D tensors, as SeedVR2 conv weights: native F16 and Q8_0 (rows of 32)
x5 = rng.standard_normal((4, 2, 3, 1, 32)).astype(np.float32)
w.add_tensor("five_d.F16", x5.astype(np.float16))
oracle["five_d.F16"] = x5.astype(np.float16).astype(np.float32)
add_raw("five_d.Q8_0", x5.shape, Q.Q8_0, gguf.quants.quantize(x5, Q.Q8_0))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
save_file({k: np.ascontiguousarray(v) for k, v in oracle.items()}, os.path.join(out, "oracle.safetensors"))
print(f"wrote {len(oracle)} cases to {out}")
