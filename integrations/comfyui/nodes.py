"""seedvae's ComfyUI nodes: load a SeedVR2 VAE for seedvae, decode SeedVR2 latents to IMAGEs,
encode IMAGEs to SeedVR2 latents — TensorRT-RTX on RTX GPUs, ONNX Runtime's CUDA provider on
other NVIDIA GPUs, the CPU elsewhere (exact).

Latent layouts (ComfyUI's SeedVR2 path; every form carries the pipeline's scale 0.9152):
- ``[b, 16·t, h, w]``: what the sampler returns and ComfyUI's SeedVR2 VAE ``decode`` takes
  (channels outer, frames inner);
- ``[b, t, h, w, 16]``: what SeedVR2's input processing (and :class:`SeedVAEEncode`) returns;
- ``[b, 16, t, h, w]``: channels first, when the last axis is not 16.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Optional

import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

import seedvae

log = logging.getLogger("seedvae")

#: The pipeline's VAE <-> sampler latent scale (comfy/ldm/seedvr/vae.py).
SCALE = seedvae.DIT_SCALE
BACKENDS = ["auto", "tensorrt", "cuda", "ort-cuda", "cpu"]
# The loader's choices as seedvae.backends() names them.
BACKEND_NAMES = {
    "tensorrt": "tensorrt-rtx",
    "cuda": "seedvae-cuda",
    "ort-cuda": "onnxruntime-cuda",
    "cpu": "onnxruntime-cpu",
}
COLOR_METHODS = list(seedvae.COLOR_METHODS)
#: What SeedVAEEncode keeps of its input in the LATENT: the frames and size before it padded
#: them (16 px, 4n+1 frames), for SeedVAEDecode to give the clip back as it came.
SHAPE_KEY = "seedvae_input"

# Engines and converted graphs live in models/seedvae (the engine cache).
if "seedvae" not in folder_paths.folder_names_and_paths:
    folder_paths.add_model_folder_path(
        "seedvae", os.path.join(folder_paths.models_dir, "seedvae"), is_default=True
    )


def cache_dir() -> str:
    return folder_paths.get_folder_paths("seedvae")[0]


# ---- latents ---------------------------------------------------------------------------------


def to_vae_latents(samples: torch.Tensor) -> torch.Tensor:
    """A SeedVR2 LATENT's samples as VAE-space latents ``[b, 16, t, h, w]`` (float32, CPU)."""
    s = samples.detach().to("cpu", torch.float32)
    if s.ndim == 4:
        b, ct, h, w = s.shape
        if ct % 16:
            raise ValueError(
                f"SeedVR2 latent [b, 16·t, h, w] expected, found {list(s.shape)}: "
                f"{ct} channels is not a multiple of 16"
            )
        s = s.reshape(b, 16, ct // 16, h, w)
    elif s.ndim == 5 and s.shape[-1] == 16:
        s = s.permute(0, 4, 1, 2, 3)
    elif s.ndim == 5 and s.shape[1] == 16:
        pass
    else:
        raise ValueError(
            "SeedVR2 latent expected as [b, 16·t, h, w], [b, t, h, w, 16] or [b, 16, t, h, w]; "
            f"found {list(s.shape)}"
        )
    return (s / SCALE).contiguous()


def from_vae_latents(z: torch.Tensor) -> torch.Tensor:
    """VAE-space ``[b, 16, t, h, w]`` as SeedVR2 input processing returns it:
    ``[b, t, h, w, 16]`` × 0.9152."""
    return (z.permute(0, 2, 3, 4, 1) * SCALE).contiguous()


# ---- images ----------------------------------------------------------------------------------


def images_to_clip(images: torch.Tensor, device: str = "cpu") -> torch.Tensor:
    """IMAGE ``[T, H, W, 3]`` in [0, 1] → a clip ``[1, 3, T, H, W]`` in [-1, 1] on ``device``."""
    x = images.detach().to(device, torch.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] < 3:
        raise ValueError(f"IMAGE [frames, height, width, 3] expected, found {list(x.shape)}")
    return (x[..., :3].clamp(0, 1) * 2 - 1).permute(3, 0, 1, 2)[None].contiguous()


def clip_to_images(video: torch.Tensor) -> torch.Tensor:
    """A decoded ``[b, 3, F, H, W]`` in [-1, 1] → IMAGE ``[b·F, H, W, 3]`` in [0, 1]."""
    return ((video.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).flatten(0, 1).contiguous()


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad IMAGE ``[T, H, W, C]`` on the bottom and right to a multiple of ``multiple``, as
    SeedVR2's input processing does (black, before normalising)."""
    h, w = x.shape[1:3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, 0, 0, pw, 0, ph))
    return x


def input_shape(*latents: Optional[dict]) -> Optional[dict]:
    """The first of ``latents`` that carries SeedVAEEncode's record of its input (frames,
    height, width), or None."""
    for latent in latents:
        shape = (latent or {}).get(SHAPE_KEY)
        if isinstance(shape, dict) and all(isinstance(shape.get(k), int) for k in ("frames", "height", "width")):
            return shape
    return None


def crop_to(video: torch.Tensor, shape: dict) -> torch.Tensor:
    """A decoded ``[b, 3, F, H, W]`` cut back to the encoded input's frames and size."""
    return video[:, :, : shape["frames"], : shape["height"], : shape["width"]]


# ---- running ---------------------------------------------------------------------------------


class Progress:
    """seedvae's progress events → ComfyUI's progress bar; ComfyUI's interrupt → a cancel
    (the callback raises, seedvae stops at the next chunk and re-raises it)."""

    def __init__(self, total: int = 1):
        self.bar = comfy.utils.ProgressBar(max(total, 1))

    def __call__(self, e: seedvae.Event) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        if e.kind in ("frames", "tensors") and e.total:
            self.bar.update_absolute(e.done, e.total)
        elif e.kind == "stage":
            log.info("seedvae: %s", e.text)
        elif e.kind == "notice":
            log.warning("seedvae: %s", e.text)


@dataclass
class SeedVAE:
    """What the loader hands on: the weights and how to run them. The decoder and encoder are
    opened on first use (converted, or built into engines, once; cached in models/seedvae)."""

    weights: str
    backend: str = "auto"
    vram_budget_gb: Optional[float] = None
    models: dict = field(default_factory=dict)

    def model(self, part: str) -> seedvae.Model:
        m = self.models.get(part)
        if m is None:
            m = seedvae.Model(
                self.weights,
                part,
                self.backend,
                cache=cache_dir(),
                vram_budget_gb=self.vram_budget_gb,
                progress=Progress(),
            )
            if m.fallback_reason:
                log.warning("seedvae %s on %s: %s", part, m.backend, m.fallback_reason)
            self.models[part] = m
        return m

    def make_room(self, model: seedvae.Model, shape: list, extra: int = 0) -> None:
        """Ask ComfyUI for the GPU memory one run over an input of ``shape`` needs, so that it
        unloads only as much as that (the DiT of a SeedVR2 workflow stays loaded when there is
        room beside it): seedvae's own plan where it has one (its CUDA executor, ONNX Runtime's CUDA
        provider), else the loader's VRAM budget, else what ComfyUI reserves for its own SeedVR2
        VAE; ``extra`` bytes more for what the node itself keeps on the GPU."""
        if model.backend in ("onnxruntime-cpu", "reference"):
            return
        need = model.device_need(shape)
        if need is None and self.vram_budget_gb:
            need = int(self.vram_budget_gb * 1e9)
        if need is None:
            t, h, w = shape[2:]
            if model.part == "encoder":
                t, h, w = (t - 1) // 4 + 1, h // 8, w // 8
            need = 16 * t * h * w * (4 * 8 * 8) * 2  # comfy/sd.py, SeedVR2's memory_used_decode
        mm = comfy.model_management
        mm.free_memory(need + extra, mm.get_torch_device())
        mm.soft_empty_cache()


SEEDVAE = io.Custom("SEEDVAE")


def tile_inputs():
    return [
        io.Boolean.Input("tiling", default=True, tooltip="Cut frames into overlapping tiles when they do not fit the GPU (results blend seamlessly)."),
        io.Int.Input("tile_size", default=1024, min=64, max=8192, step=8, tooltip="Tile edge in output pixels (decode) or input pixels (encode). seedvae's CUDA executor never tiles: there a size other than 1024 is a band height (exact, less memory at once)."),
        io.Int.Input("tile_overlap", default=128, min=0, max=4096, step=8),
    ]


def tile_args(tiling: bool, tile_size: int, tile_overlap: int) -> dict:
    return {"no_tiling": not tiling, "tile": tile_size, "overlap": tile_overlap}


class SeedVAELoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SeedVAELoader",
            display_name="Load SeedVR2 VAE (seedvae)",
            category="loaders/seedvae",
            description="A SeedVR2 VAE from models/vae for seedvae's decode/encode nodes. "
            "On an RTX GPU the first run builds TensorRT-RTX engines (minutes, once; kept in "
            "models/seedvae); other NVIDIA GPUs run ONNX Runtime's CUDA provider, the CPU runs exactly.",
            inputs=[
                io.Combo.Input("vae_name", options=folder_paths.get_filename_list("vae")),
                io.Combo.Input("backend", options=BACKENDS, default="auto", tooltip="auto: TensorRT-RTX on an RTX GPU, else seedvae's own CUDA executor, else ONNX Runtime's CUDA provider, else the CPU (the console says which, and why the others cannot run). cuda: seedvae's executor (from the weights; exact at any size: no tiles, bands of rows when memory needs them)."),
                io.Float.Input("vram_budget_gb", default=0.0, min=0.0, max=1024.0, step=0.5, tooltip="GPU memory to plan tiles within; 0 = the GPU's free memory."),
            ],
            outputs=[SEEDVAE.Output("seedvae")],
        )

    @classmethod
    def execute(cls, vae_name, backend, vram_budget_gb) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise("vae", vae_name)
        # What can run here, asked once per load (cheap: no model is opened): a backend that
        # cannot is refused now, with why, rather than at the first decode.
        found = {b["backend"]: b for b in seedvae.backends()}
        for choice, name in BACKEND_NAMES.items():
            why = found.get(name, {}).get("unavailable")
            if why and backend == choice:
                raise RuntimeError(f"seedvae: the {choice} backend cannot run here: {why}")
            if why and backend == "auto":
                log.info("seedvae: %s not available: %s", choice, why)
        return io.NodeOutput(SeedVAE(path, backend, vram_budget_gb or None))


class SeedVAEDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SeedVAEDecode",
            display_name="SeedVR2 VAE Decode (seedvae)",
            category="latent/seedvae",
            description="Decode SeedVR2 latents to frames (4t−3 frames of 8h × 8w per latent; with `crop`, "
            "the frame count and size the clip was encoded with), optionally colour-corrected against "
            "reference frames as the SeedVR2 node does.",
            inputs=[
                io.Latent.Input("samples"),
                SEEDVAE.Input("vae"),
                *tile_inputs(),
                io.Combo.Input("color_fix", options=COLOR_METHODS, default="none"),
                io.Boolean.Input("crop", default=True, optional=True, tooltip="Give the clip back with the frame count and size it was encoded with (SeedVR2 VAE Encode (seedvae) pads to 16 px and 4n+1 frames). Read from the LATENT, or from `encoded` when a node in between dropped it; left as decoded when neither says."),
                io.Image.Input("color_reference", optional=True, tooltip="The frames before upscaling, for color_fix."),
                io.Latent.Input("encoded", optional=True, tooltip="The LATENT from SeedVR2 VAE Encode (seedvae), for `crop` when the samples come from a node that does not pass its record on (the SeedVR2 conditioning node)."),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, samples, vae, tiling, tile_size, tile_overlap, color_fix, crop=True, color_reference=None, encoded=None) -> io.NodeOutput:
        z = to_vae_latents(samples["samples"])
        model = vae.model("decoder")
        frames = 4 * z.shape[2] - 3
        # seedvae's CUDA executor takes the latent on the GPU and writes the clip there (no copy
        # through the host); the clip becomes IMAGE there too, and only the IMAGE comes back to
        # ComfyUI's intermediate device. The clip and its IMAGE take GPU memory beside the plan.
        on_gpu = model.backend == "seedvae-cuda" and torch.cuda.is_available()
        clip_bytes = 3 * frames * (8 * z.shape[3]) * (8 * z.shape[4]) * 4
        vae.make_room(model, [1, *z.shape[1:]], extra=2 * clip_bytes if on_gpu else 0)
        use = color_fix != "none" and color_reference is not None
        reference = images_to_clip(color_reference).numpy() if use else None
        shape = input_shape(samples, encoded) if crop else None
        if crop and shape is None:
            log.info("seedvae: no record of the encoded clip's size: frames left as decoded")
        progress = Progress(z.shape[0] * frames)
        out = []
        for i in range(z.shape[0]):
            done = i * frames

            def report(e, done=done):
                if e.kind == "frames":
                    e = e._replace(done=done + e.done, total=z.shape[0] * frames)
                progress(e)

            zi = z[i : i + 1]
            video = model.decode(
                zi.to("cuda:0") if on_gpu else zi.numpy(), **tile_args(tiling, tile_size, tile_overlap), progress=report
            )
            if not torch.is_tensor(video):
                video = torch.from_numpy(video)
            if shape is not None:
                video = crop_to(video, shape)
            if use:
                # Corrected as the frames come out: the reference is matched to the cropped clip.
                video = torch.from_numpy(seedvae.correct_colors(video.cpu().contiguous().numpy(), reference, color_fix))
            out.append(clip_to_images(video).to(comfy.model_management.intermediate_device()))
            del video
        return io.NodeOutput(torch.cat(out))


class SeedVAEEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SeedVAEEncode",
            display_name="SeedVR2 VAE Encode (seedvae)",
            category="latent/seedvae",
            description="Encode frames to a SeedVR2 latent [1, t, h, w, 16] × 0.9152, as SeedVR2's "
            "input processing does after resizing: padded to a multiple of 16 pixels (black) and "
            "to 4n+1 frames (the last repeated); the posterior mean. The LATENT remembers the "
            "frames and size it came from, for the decode node's `crop`.",
            inputs=[io.Image.Input("pixels"), SEEDVAE.Input("vae"), *tile_inputs()],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, pixels, vae, tiling, tile_size, tile_overlap) -> io.NodeOutput:
        images = pixels if pixels.ndim == 4 else pixels[None]
        shape = {"frames": int(images.shape[0]), "height": int(images.shape[1]), "width": int(images.shape[2])}
        model = vae.model("encoder")
        # seedvae's CUDA executor reads the clip in place on the GPU (made there from the IMAGE,
        # padded to 4n+1 there): the clip takes GPU memory beside the plan.
        on_gpu = model.backend == "seedvae-cuda" and torch.cuda.is_available()
        t, h, w = images.shape[0], images.shape[1], images.shape[2]
        padded = [1, 3, t + (-(t - 1)) % 4, h + (-h) % 16, w + (-w) % 16]
        vae.make_room(model, padded, extra=2 * 4 * math.prod(padded) if on_gpu else 0)
        device = "cuda:0" if on_gpu else "cpu"
        clip = images_to_clip(pad_to(images.to(device), 16), device)
        latent = model.encode(
            clip if on_gpu else clip.numpy(),
            pad="repeat",
            **tile_args(tiling, tile_size, tile_overlap),
            progress=Progress(clip.shape[2]),
        )
        if not torch.is_tensor(latent):
            latent = torch.from_numpy(latent)
        samples = from_vae_latents(latent).to(comfy.model_management.intermediate_device())
        return io.NodeOutput({"samples": samples, SHAPE_KEY: shape})


NODES = [SeedVAELoader, SeedVAEDecode, SeedVAEEncode]
