"""Bench helpers that need torch: the bytes tensors hold, and the peak of the CUDA allocator.

Tensor memory is counted by *storage*: views and tensors sharing one storage count once.
On CUDA, :func:`tensor_peak` reads the caching allocator's peak (every tensor, including
those autograd keeps alive in C++). On CPU torch keeps no allocator statistics, so the
CPU figure is an approximation, documented as such: the distinct storages of the tensors
reachable from the objects you name (:func:`tensor_bytes`: a KV cache, a decoding state)
or visible to Python's garbage collector (:func:`live_tensor_bytes`); tensors that only
C++ holds (autograd's saved activations) are not seen. For a process-level peak on CPU
use :func:`tokensmith.peak_rss` (resident memory).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import torch

from tokensmith.core.errors import InputError


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    storage = t.untyped_storage()
    return str(t.device), storage.data_ptr() or id(storage)


def tensor_bytes(*objs: Any, modules: bool = False) -> int:
    """Bytes of the distinct tensor storages reachable from ``objs`` through mappings,
    sequences, sets, attrs records and instance ``__dict__`` s. ``nn.Module`` s are skipped
    (a state that refers to its model would count the weights) unless ``modules=True``,
    which counts their parameters and buffers."""
    seen: set[int] = set()
    storages: dict[tuple[str, int], int] = {}

    def visit(obj: Any) -> None:
        if obj is None or isinstance(obj, (int, float, complex, str, bytes, bool)) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            if obj.device.type != "meta":
                storages[_storage_key(obj)] = obj.untyped_storage().nbytes()
            return
        if isinstance(obj, torch.nn.Module):
            if modules:
                for t in (*obj.parameters(), *obj.buffers()):
                    visit(t)
            return
        if isinstance(obj, dict):
            for v in obj.values():
                visit(v)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for v in obj:
                visit(v)
        elif hasattr(obj, "__attrs_attrs__"):
            for a in obj.__attrs_attrs__:
                visit(getattr(obj, a.name, None))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for v in vars(obj).values():
                visit(v)

    for obj in objs:
        visit(obj)
    return sum(storages.values())


def live_tensor_bytes(device: str | None = None) -> int:
    """Bytes of the distinct storages of every tensor Python's garbage collector sees (on
    ``device``'s type, e.g. ``"cpu"``, when given). An approximation of the tensor memory
    in use: tensors held only by C++ (autograd's saved tensors) are not counted."""
    kind = torch.device(device).type if device is not None else None
    storages: dict[tuple[str, int], int] = {}
    for obj in gc.get_objects():
        try:
            # type(), not isinstance(): isinstance reads __class__, which some lazy module
            # attributes (deprecated aliases) answer with a warning
            if not issubclass(type(obj), torch.Tensor) or obj.device.type == "meta":
                continue
            if kind is not None and obj.device.type != kind:
                continue
            storages[_storage_key(obj)] = obj.untyped_storage().nbytes()
        except (RuntimeError, ReferenceError):  # a tensor subclass without storage, a dead proxy
            continue
    return sum(storages.values())


@attrs.define
class TensorPeak:
    """What :func:`tensor_peak` measured. ``exact`` is ``True`` on CUDA (the allocator's peak);
    on CPU ``peak`` is the larger of the live tensor bytes before and after the block (an
    approximation: a temporary freed inside the block is not seen)."""

    device: str
    before: int = 0
    peak: int = 0
    exact: bool = False

    @property
    def increase(self) -> int:
        return max(self.peak - self.before, 0)


@contextmanager
def tensor_peak(device: str | torch.device = "cpu") -> Iterator[TensorPeak]:
    """``with tensor_peak("cuda:0") as m: work()`` — then ``m.peak`` / ``m.increase`` (bytes)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(dev)!r}: CUDA is not available here", component="bench",
                             hint="measure on 'cpu' (an approximation) or on a machine with a GPU")
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        result = TensorPeak(str(dev), before=torch.cuda.memory_allocated(dev), exact=True)
        try:
            yield result
        finally:
            torch.cuda.synchronize(dev)
            result.peak = torch.cuda.max_memory_allocated(dev)
        return
    result = TensorPeak(str(dev), before=live_tensor_bytes(dev.type))
    try:
        yield result
    finally:
        result.peak = max(result.before, live_tensor_bytes(dev.type))
