#!/usr/bin/env python3
"""Run onnx.checker.check_model(full_check=True) on each model given; print opset/IR and I/O.

usage: onnx_check.py MODEL.onnx [...]
"""
import sys
import onnx

for path in sys.argv[1:]:
    m = onnx.load(path, load_external_data=False)
    onnx.checker.check_model(path, full_check=True)
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"{path}: ok ir={m.ir_version} opset={m.opset_import[0].version} "
          f"inputs={len(m.graph.input)} outputs={len(m.graph.output)} ops={','.join(ops)}")
