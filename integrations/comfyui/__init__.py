"""seedvae for ComfyUI: SeedVR2 VAE decode/encode on TensorRT-RTX engines (RTX GPUs), seedvae's
own CUDA executor (any NVIDIA GPU), ONNX Runtime CUDA or the CPU. Needs the `seedvae` Python
package in ComfyUI's Python (requirements.txt; see README.md)."""

import logging
import sys

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

try:
    from .nodes import NODES

    MISSING = None
except ImportError as e:
    if e.name != "seedvae" and not (e.name or "").startswith("seedvae."):
        raise
    NODES, MISSING = [], e
    # Said once, at start-up, in the words of the person who has to fix it.
    logging.getLogger("seedvae").error(
        "seedvae's nodes are not loaded: the seedvae package is not installed in ComfyUI's Python "
        "(%s). Install it there and restart ComfyUI:\n    %s -m pip install seedvae[cpu]\n"
        "(on an RTX GPU, for TensorRT-RTX engines: %s -m pip install seedvae[cpu,tensorrt])",
        e,
        sys.executable,
        sys.executable,
    )


class SeedVAEExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> SeedVAEExtension:
    return SeedVAEExtension()
