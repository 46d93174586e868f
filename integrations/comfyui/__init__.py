"""seedvae for ComfyUI: SeedVR2 VAE decode/encode on TensorRT-RTX engines (RTX GPUs), ONNX
Runtime CUDA or the CPU. Needs the `seedvae` Python package in ComfyUI's Python (see README.md)."""

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from .nodes import NODES


class SeedVAEExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> SeedVAEExtension:
    return SeedVAEExtension()
