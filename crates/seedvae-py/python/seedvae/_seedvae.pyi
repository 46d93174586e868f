"""Type stubs of seedvae's native module (crates/seedvae-py/src). Use the `seedvae` package's
wrappers: they take torch tensors and other DLPack producers too."""

from os import PathLike
from typing import Callable, Optional

import numpy as np
import numpy.typing as npt

__version__: str
COLOR_METHODS: tuple[str, ...]
DIT_SCALE: float

F32 = npt.NDArray[np.float32]
# callback(kind, text, done, total)
RawProgress = Callable[[str, Optional[str], Optional[int], Optional[int]], object]

class SeedvaeError(RuntimeError): ...
class InvalidInputError(SeedvaeError): ...
class UnavailableError(SeedvaeError): ...
class CancelledError(SeedvaeError): ...

class CancelToken:
    def __init__(self) -> None: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

class Model:
    def __init__(
        self,
        model: str | PathLike[str],
        part: str = "decoder",
        backend: str = "auto",
        *,
        cache: Optional[str | PathLike[str]] = None,
        profile: Optional[str] = None,
        vram_budget_gb: Optional[float] = None,
        threads: int = 0,
        weights: Optional[str | PathLike[str]] = None,
        tensorrt_dir: Optional[str | PathLike[str]] = None,
        cuda_fp32: bool = False,
        progress: Optional[RawProgress] = None,
        cancel: Optional[CancelToken] = None,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def backend(self) -> str: ...
    @property
    def fallback_reason(self) -> Optional[str]: ...
    @property
    def part(self) -> str: ...
    @property
    def streaming(self) -> bool: ...
    def device_need(self, shape: list[int]) -> Optional[int]: ...
    def decode(
        self,
        latent: F32,
        *,
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        no_tiling: bool = False,
        chunk: Optional[int] = None,
        progress: Optional[RawProgress] = None,
        cancel: Optional[CancelToken] = None,
    ) -> tuple[F32, dict[str, object]]: ...
    def encode(
        self,
        frames: F32,
        *,
        pad: str = "reflect",
        tile: Optional[int] = None,
        overlap: Optional[int] = None,
        no_tiling: bool = False,
        chunk: Optional[int] = None,
        progress: Optional[RawProgress] = None,
        cancel: Optional[CancelToken] = None,
    ) -> tuple[F32, dict[str, object]]: ...
    # In place in device memory (the wrapper hands torch CUDA tensors over by their pointers).
    def _run_device(
        self,
        input_ptr: int,
        input_shape: list[int],
        output_ptr: int,
        output_shape: list[int],
        *,
        tile: Optional[int] = None,
        chunk: Optional[int] = None,
        progress: Optional[RawProgress] = None,
        cancel: Optional[CancelToken] = None,
    ) -> dict[str, object]: ...

def _pad_sources(t: int, pad: str) -> list[int]: ...
def backends(
    *, tensorrt_dir: Optional[str | PathLike[str]] = None
) -> list[dict[str, object]]: ...
def correct_colors(video: F32, reference: F32, method: str = "lab", batch: int = 5) -> F32: ...
def ensure_engine(
    model: str | PathLike[str],
    *,
    part: Optional[str] = None,
    profile: Optional[str] = None,
    precision: Optional[str] = None,
    targets: Optional[list[str]] = None,
    streaming: bool = False,
    cache: Optional[str | PathLike[str]] = None,
    tensorrt_dir: Optional[str | PathLike[str]] = None,
    weightless: bool = False,
    progress: Optional[RawProgress] = None,
    cancel: Optional[CancelToken] = None,
) -> dict[str, object]: ...
