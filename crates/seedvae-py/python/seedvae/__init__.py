"""seedvae: the SeedVR2 video VAE, fast and offline.

Decode and encode with TensorRT-RTX engines on RTX GPUs, seedvae's own CUDA executor or ONNX
Runtime's CUDA provider on other NVIDIA GPUs, or exactly on the CPU — from the user's own ``ema_vae_fp16.safetensors`` / ``.gguf``,
with nothing downloaded::

    import seedvae
    vae = seedvae.Model("ema_vae_fp16.safetensors", "decoder", backend="auto")
    video = vae.decode(latent)            # [1, 16, T, h, w] -> [1, 3, 4T-3, 8h, 8w] in [-1, 1]
    print(vae.last_report["seconds"], vae.backend, vae.fallback_reason)

Arrays go in as numpy arrays or torch tensors (any DLPack producer) and come back as the same
kind, on the same device. On seedvae's CUDA executor (``backend`` "seedvae-cuda") a torch CUDA
tensor on GPU 0 stays on the GPU: the executor reads it and writes the result into a torch CUDA
tensor in place, with no copy through the host (``last_report["io"] == "device"``; the result
is allocated by torch, outside ``vram_budget_gb``); elsewhere, and for ``color_fix``, CUDA
tensors are copied to the host first (``"host"``). Each input is copied once
into the library's own buffer (after a check that it fits in memory); the result is handed back
without a copy. Every call releases the GIL; Ctrl-C, ``CancelToken.cancel()`` or
an exception from the progress callback stops a run at its next chunk. Errors are
:class:`SeedvaeError` subclasses carrying the messages the ``seedvae`` CLI prints; what the CLI
logs (info and above) goes to :mod:`logging`'s ``"seedvae"`` logger, handed over while a call
waits and when it returns.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import sys
import weakref
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np


def _package_dir(name: str) -> Optional[Path]:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_libraries() -> None:
    """Point the native module at the ONNX Runtime and TensorRT-RTX libraries of this Python
    environment (pip packages ``onnxruntime`` / ``onnxruntime-gpu`` and ``tensorrt-rtx-cu13``),
    unless the environment variables already name them."""
    if not (os.environ.get("SEEDVAE_ORT_LIB") or os.environ.get("ORT_DYLIB_PATH")):
        capi = _package_dir("onnxruntime")
        if capi is not None:
            capi = capi / "capi"
            names = ["onnxruntime.dll"] if sys.platform == "win32" else []
            names += sorted(p.name for p in capi.glob("libonnxruntime.so*")) if capi.is_dir() else []
            names += ["libonnxruntime.dylib"] if sys.platform == "darwin" else []
            for n in names:
                if (capi / n).is_file():
                    os.environ["SEEDVAE_ORT_LIB"] = str(capi / n)
                    break
    if not os.environ.get("SEEDVAE_TENSORRT_DIR"):
        trt = _package_dir("tensorrt_rtx_libs")
        if trt is not None and trt.is_dir():
            os.environ["SEEDVAE_TENSORRT_DIR"] = str(trt)
    # seedvae's CUDA executor loads NVRTC, cuDNN and cuBLAS from the nvidia-* wheels of this
    # environment (a CUDA build of PyTorch brings them): the site-packages holding ``nvidia/``.
    if not os.environ.get("SEEDVAE_SITE_PACKAGES"):
        try:
            spec = importlib.util.find_spec("nvidia")
        except (ImportError, ValueError):
            spec = None
        sites = [str(Path(p).parent) for p in (spec.submodule_search_locations or [])] if spec else []
        if sites:
            os.environ["SEEDVAE_SITE_PACKAGES"] = os.pathsep.join(sites)


_find_libraries()

from . import _seedvae  # noqa: E402  (after the library paths are set)
from ._seedvae import (  # noqa: E402
    CancelledError,
    CancelToken,
    InvalidInputError,
    SeedvaeError,
    UnavailableError,
)

__version__ = _seedvae.__version__
__all__ = [
    "Model",
    "Event",
    "CancelToken",
    "backends",
    "correct_colors",
    "ensure_engine",
    "COLOR_METHODS",
    "DIT_SCALE",
    "SeedvaeError",
    "InvalidInputError",
    "UnavailableError",
    "CancelledError",
]

#: The colour-correction methods of the numz SeedVR2 node, by its names ("none" first).
COLOR_METHODS: tuple[str, ...] = _seedvae.COLOR_METHODS
#: The SeedVR2 pipeline's VAE <-> DiT latent scale (ComfyUI's SeedVR2 latents carry it).
DIT_SCALE: float = _seedvae.DIT_SCALE


class Event(NamedTuple):
    """A progress event: ``kind`` is "stage" (``text`` says what), "stage_done", "frames"
    (``done`` of ``total`` frames), "tensors" (``done`` of ``total``) or "notice" (``text``)."""

    kind: str
    text: Optional[str]
    done: Optional[int]
    total: Optional[int]


ProgressFn = Callable[[Event], Any]


def _path(p: Optional[str | os.PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _callback(progress: Optional[ProgressFn]):
    if progress is None:
        return None
    return lambda kind, text, done, total: progress(Event(kind, text, done, total))


_FLOATS = ("float16", "float32", "float64", "bfloat16")


def _refuse_dtype(what: str, dtype: Any, frames: bool) -> None:
    """Only floating-point values (and, for frames, 8-bit ones) mean what seedvae takes."""
    name = str(dtype).replace("torch.", "")
    if name in _FLOATS or (frames and name == "uint8"):
        return
    if frames:
        hint = (
            "frames are floating point in [-1, 1] (convert with x / 127.5 - 1 from 0..255, "
            "x * 2 - 1 from 0..1), or uint8 (0..255, converted so)"
        )
    else:
        hint = "latents are floating point (float16, bfloat16, float32 or float64), in VAE space"
    raise InvalidInputError(f"{what}: dtype {name} cannot be meant here; {hint}")


def _host(x: Any, what: str, frames: bool = False) -> tuple[np.ndarray, Any]:
    """``x`` as a C-ordered float32 numpy array, and how to give a result back in its kind
    (a torch tensor on its device, or numpy). Only float arrays are taken (and, for
    ``frames``, uint8 ones, mapped from 0..255 to [-1, 1]); ``what`` names the argument."""
    if x is None:
        raise InvalidInputError(f"{what}: expected an array (numpy, torch or DLPack); found None")
    back = None
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch

        _refuse_dtype(what, x.dtype, frames)
        device = x.device
        t = x.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")
        if t.dtype == torch.uint8:
            t = t.float() / 127.5 - 1.0
        elif t.dtype != torch.float32:
            t = t.float()
        a = np.from_dlpack(t.contiguous())

        def back(r: np.ndarray) -> Any:
            out = torch.from_numpy(r)
            return out if device.type == "cpu" else out.to(device)

    elif isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "__dlpack__"):
        a = np.from_dlpack(x)
    else:
        try:
            a = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise InvalidInputError(f"{what}: not an array of numbers ({e})") from None
    _refuse_dtype(what, a.dtype, frames)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(a, dtype=np.float32), (back or (lambda r: r))


def _in_place(x: Any, backend: str) -> bool:
    """Whether ``x`` is a torch CUDA tensor that seedvae's CUDA executor (GPU 0) reads in place."""
    if backend != "seedvae-cuda" or not type(x).__module__.startswith("torch"):
        return False
    return x.device.type == "cuda" and x.device.index in (None, 0)


def _on_device(x: Any, what: str, frames: bool) -> Any:
    """A torch CUDA tensor as the executor reads it: float32 (uint8 frames mapped to [-1, 1]),
    its values checked finite on the GPU."""
    import torch

    _refuse_dtype(what, x.dtype, frames)
    t = x.detach()
    t = t.float() / 127.5 - 1.0 if t.dtype == torch.uint8 else t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{what}: holds NaN or infinite values")
    return t


def _run_in_place(call: Callable[..., dict], x: Any, out: Any, **kw: Any) -> dict:
    """``call(x pointer, x shape, out pointer, out shape, **kw)`` on ``x`` in C order, once
    torch's work on both tensors is done (the executor runs on its own streams); returns its
    report. ``out`` is a fresh ``torch.empty`` (C order)."""
    import torch

    x = x.contiguous()
    torch.cuda.current_stream(x.device).synchronize()
    report = call(x.data_ptr(), list(x.shape), out.data_ptr(), list(out.shape), **kw)
    report["io"] = "device"
    return report


# Open models, closed before the interpreter tears down (GPU libraries must not see a live
# session while the process exits).
_open: "weakref.WeakSet[Model]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for m in list(_open):
        m.close()


class Model:
    """A SeedVR2 VAE decoder or encoder, opened once and run many times; ``close()`` (or a
    ``with`` block) frees it, GPU memory included, before garbage collection would.

    ``model``: weights (``.safetensors``/``.gguf``), a seedvae ONNX graph, an engine file or an
    engine cache key. ``backend``: "auto" (TensorRT-RTX, else seedvae's CUDA executor, else ONNX
    Runtime CUDA, else CPU, each skip with its reason in :attr:`fallback_reason`), "tensorrt",
    "cuda" (seedvae's executor, from the weights), "ort-cuda", "cpu" or "reference". The other
    options are the CLI's (``seedvae decode --help``).
    """

    def __init__(
        self,
        model: str | os.PathLike,
        part: str = "decoder",
        backend: str = "auto",
        *,
        cache: Optional[str | os.PathLike] = None,
        profile: Optional[str] = None,
        vram_budget_gb: Optional[float] = None,
        threads: int = 0,
        weights: Optional[str | os.PathLike] = None,
        tensorrt_dir: Optional[str | os.PathLike] = None,
        cuda_fp32: bool = False,
        progress: Optional[ProgressFn] = None,
        cancel: Optional[CancelToken] = None,
    ) -> None:
        self._m = _seedvae.Model(
            os.fspath(model),
            part,
            backend,
            cache=_path(cache),
            profile=profile,
            vram_budget_gb=vram_budget_gb,
            threads=threads,
            weights=_path(weights),
            tensorrt_dir=_path(tensorrt_dir),
            cuda_fp32=cuda_fp32,
            progress=_callback(progress),
            cancel=cancel,
        )
        #: What the last decode/encode did (the CLI's ``--json`` fields).
        self.last_report: Optional[dict] = None
        _open.add(self)

    def close(self) -> None:
        """Free the model now; later calls raise :class:`SeedvaeError`."""
        self._m.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend(self) -> str:
        return self._m.backend

    @property
    def fallback_reason(self) -> Optional[str]:
        return self._m.fallback_reason

    @property
    def part(self) -> str:
        return self._m.part

    @property
    def streaming(self) -> bool:
        return self._m.streaming

    def __repr__(self) -> str:
        return f"seedvae.Model(part={self.part!r}, backend={self.backend!r})"

    def device_need(self, shape: Sequence[int]) -> Optional[int]:
        """The most GPU memory, in bytes, a run over an input of ``shape`` takes: a latent
        ``[1, 16, T, h, w]`` to decode, frames ``[1, 3, T, H, W]`` to encode. Known where the
        backend's memory is planned (``seedvae-cuda``: the plan for the run's first chunk, whole
        or cut into frame groups and bands as it must be; ``onnxruntime-cuda``: one call on the
        tile its plan will use); None elsewhere. An application that
        keeps other models on the GPU frees this much before the call, not everything."""
        shape = [int(s) for s in shape]
        if len(shape) != 5 or shape[0] != 1 or min(shape) < 1:
            raise ValueError(f"shape {shape}: expected [1, C, T, H, W] with every size >= 1")
        return self._m.device_need(shape)

    def decode(
        self,
        latent: Any,
        *,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        no_tiling: bool = False,
        chunk: Optional[int] = None,
        color_fix: str = "none",
        color_reference: Any = None,
        color_batch: int = 5,
        progress: Optional[ProgressFn] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Decode ``latent`` ``[1, 16, T, h, w]``, ``[16, T, h, w]`` or ``[1, 16, h, w]`` (VAE space) into
        ``[1, 3, 4T - 3, 8h, 8w]`` in [-1, 1]. ``tile``/``overlap`` in output pixels,
        ``chunk`` in latent frames per call (results do not depend on it). With ``color_fix``
        and ``color_reference`` (the input clip ``[1, 3, T', H', W']`` in [-1, 1]), the frames
        are colour-corrected as the numz SeedVR2 node does (see :func:`correct_colors`)."""
        if color_fix not in COLOR_METHODS:
            raise ValueError(f"colour method {color_fix!r}: choose one of {', '.join(COLOR_METHODS)}")
        if color_fix != "none" and color_reference is None:
            raise InvalidInputError(f"color_fix={color_fix!r} needs a color_reference clip")
        if color_fix == "none" and _in_place(latent, self.backend):
            import torch

            z = _on_device(latent, "latent", frames=False)
            if z.ndim == 4:
                z = z[:, :, None] if tuple(z.shape[:2]) == (1, 16) else z[None]
            if z.ndim == 5 and z.shape[:2] == (1, 16) and min(z.shape[2:]) >= 1:
                _, _, t, h, w = z.shape
                video = torch.empty((1, 3, 4 * t - 3, 8 * h, 8 * w), dtype=torch.float32,
                                    device=z.device)
                self.last_report = _run_in_place(
                    self._m._run_device, z, video, tile=None if no_tiling else tile,
                    chunk=chunk, progress=_callback(progress), cancel=cancel)
                return video
            # Any other shape: the host path says what is wrong with it.
        a, back = _host(latent, "latent")
        if a.ndim == 4:
            # [1, 16, h, w]: one latent frame; [16, T, h, w]: no batch axis.
            a = a[:, :, None] if a.shape[:2] == (1, 16) else a[None]
        video, self.last_report = self._m.decode(
            a,
            tile=tile,
            overlap=overlap,
            no_tiling=no_tiling,
            chunk=chunk,
            progress=_callback(progress),
            cancel=cancel,
        )
        self.last_report["io"] = "host"
        if color_fix != "none":
            reference = _host(color_reference, "color_reference", frames=True)[0]
            video = _seedvae.correct_colors(video, reference, color_fix, color_batch)
        return back(video)

    def encode(
        self,
        frames: Any,
        *,
        pad: str = "reflect",
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        no_tiling: bool = False,
        chunk: Optional[int] = None,
        progress: Optional[ProgressFn] = None,
        cancel: Optional[CancelToken] = None,
    ) -> Any:
        """Encode frames ``[1, 3, T, H, W]`` or ``[3, T, H, W]`` in [-1, 1] (``H``, ``W``
        multiples of 8; ``T`` padded to 4n + 1 by ``pad``: "reflect" or "repeat") into the
        posterior mean ``[1, 16, n + 1, H/8, W/8]``."""
        if _in_place(frames, self.backend):
            import torch

            x = _on_device(frames, "frames", frames=True)
            if x.ndim == 4:
                x = x[None]
            _, _, t, h, w = x.shape if x.ndim == 5 else (0,) * 5
            if x.shape[:2] == (1, 3) and min(t, h, w) >= 1 and h % 8 == 0 and w % 8 == 0:
                src = _seedvae._pad_sources(t, pad)
                if len(src) != t:
                    x = x.index_select(2, torch.tensor(src, device=x.device))
                latent = torch.empty((1, 16, (len(src) - 1) // 4 + 1, h // 8, w // 8),
                                     dtype=torch.float32, device=x.device)
                self.last_report = _run_in_place(
                    self._m._run_device, x, latent,
                    tile=None if no_tiling else tile, chunk=chunk,
                    progress=_callback(progress), cancel=cancel)
                return latent
            # Any other shape: the host path says what is wrong with it.
        a, back = _host(frames, "frames", frames=True)
        if a.ndim == 4:
            a = a[None]
        latent, self.last_report = self._m.encode(
            a,
            pad=pad,
            tile=tile,
            overlap=overlap,
            no_tiling=no_tiling,
            chunk=chunk,
            progress=_callback(progress),
            cancel=cancel,
        )
        self.last_report["io"] = "host"
        return back(latent)


def correct_colors(video: Any, reference: Any, method: str = "lab", batch: int = 5) -> Any:
    """Colour-correct ``video`` ``[1, 3, F, H, W]`` in [-1, 1] against ``reference``
    ``[1, 3, T, H', W']`` in [-1, 1] (the clip before upscaling) with one of
    :data:`COLOR_METHODS`, as the numz SeedVR2 node does: frame for frame (the reference
    resized bilinearly, its last frame repeated), ``batch`` frames together (``lab``, ``hsv``
    and ``wavelet_adaptive`` match histograms over a batch)."""
    v, back = _host(video, "video", frames=True)
    r, _ = _host(reference, "reference", frames=True)
    return back(_seedvae.correct_colors(v, r, method, batch))


def backends(*, tensorrt_dir: Optional[str | os.PathLike] = None) -> list[dict]:
    """Which backends can run here, in ``backend="auto"``'s order: dicts of ``backend``
    ("tensorrt-rtx", "seedvae-cuda", "onnxruntime-cuda", "onnxruntime-cpu"), ``gpu`` (name, compute capability,
    free and total bytes; or None) and ``unavailable`` (why it cannot run here; None when it
    can). Cheap: opens no model."""
    return _seedvae.backends(tensorrt_dir=_path(tensorrt_dir))


def ensure_engine(
    model: str | os.PathLike,
    *,
    part: Optional[str] = None,
    profile: Optional[str] = None,
    precision: Optional[str] = None,
    targets: Optional[list[str]] = None,
    streaming: bool = False,
    cache: Optional[str | os.PathLike] = None,
    tensorrt_dir: Optional[str | os.PathLike] = None,
    weightless: bool = False,
    progress: Optional[ProgressFn] = None,
    cancel: Optional[CancelToken] = None,
) -> dict:
    """The TensorRT-RTX engine for ``model`` from the cache, or converted, calibrated and built
    now (minutes, on any machine: no GPU needed). Returns ``key``, ``engine``, ``dir`` and
    ``outcome`` ("hit", "built" or "rebuilt: why"); open it with ``Model(result["key"])``."""
    return _seedvae.ensure_engine(
        os.fspath(model),
        part=part,
        profile=profile,
        precision=precision,
        targets=targets,
        streaming=streaming,
        cache=_path(cache),
        tensorrt_dir=_path(tensorrt_dir),
        weightless=weightless,
        progress=_callback(progress),
        cancel=cancel,
    )
