"""Runtime: the configured hardware, parsed once from strings and passed explicitly."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import ConfigError, InputError, TokensmithError, UnsupportedRuntimeError

_DTYPE_ALIASES = {
    "auto": "auto",
    "fp32": "float32", "float32": "float32", "float": "float32",
    "fp64": "float64", "float64": "float64", "double": "float64",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def parse_device(value: str) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.match(value.strip().lower()):
        raise UnsupportedRuntimeError(
            f"unknown device {value!r}", component="runtime",
            hint="use one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
    return value.strip().lower()


def parse_dtype(value: str) -> str:
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in _DTYPE_ALIASES:
        raise UnsupportedRuntimeError(
            f"unknown dtype {value!r}", component="runtime",
            hint="use one of " + ", ".join(sorted(_DTYPE_ALIASES)))
    return _DTYPE_ALIASES[key]


#: seeds are 63-bit non-negative ints (what torch.Generator.manual_seed takes everywhere)
SEED_LIMIT = 2**63
MAX_THREADS = 256
RUNTIME_KEYS = ("device", "dtype", "seed", "threads")


def check_seed(seed: object, *, allow_none: bool = False) -> None:
    """Raise :class:`InputError` unless ``seed`` is an ``int`` in ``[0, 2**63)`` (or ``None``)."""
    if seed is None and allow_none:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise InputError(f"seed must be an int in [0, 2**63){' or None' if allow_none else ''}, "
                         f"got {type(seed).__name__} {seed!r}", component="runtime")


def _check_threads(threads: object) -> None:
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads must be an int in [1, {MAX_THREADS}] or absent, got "
                          f"{type(threads).__name__} {threads!r}", component="runtime")


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UnsupportedRuntimeError(f"environment variable {name}={raw!r} is not an integer",
                                      component="runtime") from None


@attrs.frozen
class Runtime:
    """Device, dtype, seed and threads for every factory, plus the torchrun topology.

    Build it with :meth:`parse` (strings such as ``"auto"``, ``"cuda:0"``,
    ``"bf16"``); ``rank``/``world_size``/``local_rank`` default to the values
    ``torchrun`` puts in the environment.
    """

    device: str = attrs.field(default="cpu", converter=parse_device)
    dtype: str = attrs.field(default="float32", converter=parse_dtype)
    seed: int = attrs.field(default=0)
    threads: int | None = attrs.field(default=None)
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _generator: Any = attrs.field(default=None, init=False, eq=False, repr=False)

    @seed.validator
    def _seed_ok(self, attribute, value) -> None:
        try:
            check_seed(value)
        except InputError as exc:
            raise ConfigError(exc.message, component="runtime") from None

    @threads.validator
    def _threads_ok(self, attribute, value) -> None:
        _check_threads(value)

    @classmethod
    def parse(cls, device: str = "auto", dtype: str = "auto", seed: int = 0,
              threads: int | None = None, env: Mapping[str, str] | None = None) -> Runtime:
        env = os.environ if env is None else env
        return cls(device=device, dtype=dtype, seed=seed, threads=threads,
                   rank=_env_int(env, "RANK", 0), world_size=_env_int(env, "WORLD_SIZE", 1),
                   local_rank=_env_int(env, "LOCAL_RANK", 0)).resolved()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Runtime:
        problems = cls.check_config(config)
        if problems:
            if len(problems) == 1:
                raise problems[0]
            from .errors import ValidationError

            raise ValidationError(problems)
        return cls.parse(**dict(config or {}))

    @classmethod
    def check_config(cls, config: Mapping[str, Any] | None) -> list[TokensmithError]:
        """Every problem of a ``[runtime]`` table (unknown keys, device, dtype, seed, threads,
        an unavailable device), each its own error."""
        if config is not None and not isinstance(config, Mapping):
            return [ConfigError(f"[runtime] must be a table, got {type(config).__name__}",
                                component="runtime")]
        config = dict(config or {})
        problems: list[TokensmithError] = []
        unknown = sorted(set(config) - set(RUNTIME_KEYS))
        if unknown:
            problems.append(UnsupportedRuntimeError(f"unknown runtime keys {unknown}", component="runtime",
                                                    hint="allowed: " + ", ".join(RUNTIME_KEYS)))
        device = None
        for key, check in (("device", parse_device), ("dtype", parse_dtype)):
            if key in config:
                try:
                    value = check(config[key])
                    device = value if key == "device" else device
                except TokensmithError as exc:
                    problems.append(exc)
        for key, check in (("seed", check_seed), ("threads", _check_threads)):
            if key in config:
                try:
                    check(config[key])
                except TokensmithError as exc:
                    problems.append(ConfigError(exc.message, component="runtime"))
        if device is not None:
            try:
                attrs.evolve(cls(), device=device).resolved()
            except TokensmithError as exc:
                problems.append(exc)
        return problems

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": self.device, "dtype": self.dtype, "seed": self.seed}
        if self.threads is not None:
            out["threads"] = self.threads
        return out

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def resolved(self) -> Runtime:
        """Replace ``"auto"`` by what this machine has (imports torch only if needed)."""
        device, dtype = self.device, self.dtype
        if device == "auto":
            import torch

            if torch.cuda.is_available():
                device = f"cuda:{self.local_rank}"
            elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                device = "mps"
            else:
                device = "cpu"
        if dtype == "auto":
            dtype = "float32"
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UnsupportedRuntimeError(
                    f"device {device!r} requested but CUDA is not available here",
                    component="runtime", hint="use device='cpu' or 'auto'")
            index = int(device.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise UnsupportedRuntimeError(
                    f"device {device!r} requested but this machine has {torch.cuda.device_count()} "
                    "CUDA device(s)", component="runtime", hint="use 'cuda' or a smaller index")
        if device == "mps":
            import torch

            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                raise UnsupportedRuntimeError("device 'mps' requested but MPS is not available here",
                                              component="runtime", hint="use device='cpu' or 'auto'")
        return attrs.evolve(self, device=device, dtype=dtype)

    def torch_device(self):
        import torch

        return torch.device(self.device)

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def apply(self) -> None:
        """Seed the RNGs and set the thread count (called once when a pipeline is built)."""
        import random

        import torch

        random.seed(self.seed)
        torch.manual_seed(self.seed)
        if self.threads:
            torch.set_num_threads(self.threads)

    def generator(self, seed: int | None = None):
        """A fresh CPU ``torch.Generator`` seeded with ``seed``; without one, this runtime's
        own generator (seeded once with :attr:`seed`), which advances with every draw."""
        import torch

        if seed is not None:
            check_seed(seed)
            return torch.Generator(device="cpu").manual_seed(seed)
        if self._generator is None:
            object.__setattr__(self, "_generator", torch.Generator(device="cpu").manual_seed(self.seed))
        return self._generator

    def check_supported(self, component) -> None:
        """Raise if ``component`` (a :class:`Component` record) does not support this runtime."""
        if self.device_type not in component.devices:
            raise UnsupportedRuntimeError(
                f"does not support device {self.device!r} (supports {', '.join(component.devices)})",
                component=component.qualname, plugin=component.distribution or None,
                hint="choose a supported device in [runtime] or another component")
        if self.dtype not in component.dtypes:
            raise UnsupportedRuntimeError(
                f"does not support dtype {self.dtype!r} (supports {', '.join(component.dtypes)})",
                component=component.qualname, plugin=component.distribution or None,
                hint="choose a supported dtype in [runtime] or another component")
