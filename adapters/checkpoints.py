"""Training checkpoints: what the recipe runner writes and reads back.

A checkpoint is a directory that transformers' ``Trainer`` filled (``config.json``, the
weights as ``model.safetensors``, ``optimizer.pt``, ``scheduler.pt``, ``rng_state*.pth``,
``trainer_state.json``) to which the runner adds:

- the tokenizer (``tokenizer.json`` + ``tokenizer_meta.json``), so the directory is a model
  source (``[model] source = "runs/x/checkpoint-8"``) and reloads on its own;
- safetensors metadata in every weight file, in the artifact format of
  :func:`tokensmith.save_artifact` (``load_artifact`` verifies it): the tokensmith and plugin
  versions, the recipe's config as JSON, the tokenizer's sha256 and the step;
- ``training_args.json`` instead of transformers' ``training_args.bin`` (a pickle of the
  arguments object that nothing reads back);
- :data:`MANIFEST`, written last: the size and sha256 of every file, the same metadata and
  the evaluation points so far. A directory without it is an unfinished save.

Resuming verifies every file against the manifest before transformers opens any
(:class:`ArtifactError` for a missing file, :class:`CorruptArtifactError` for a damaged one);
transformers 5 then reads the optimizer, scheduler and RNG states with
``torch.load(weights_only=True)``, which unpickles tensors and plain containers only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokensmith.core.errors import ArtifactError, ArtifactVersionError, CorruptArtifactError

from .artifacts import META_KEY, _encode, atomic_write_bytes, atomic_write_text

MANIFEST = "tokensmith-checkpoint.json"
CHECKPOINT_FORMAT = 1
PREFIX = "checkpoint-"
#: what a checkpoint needs to resume training (the weights aside)
STATE_FILES = ("optimizer.pt", "scheduler.pt", "trainer_state.json")
_COMPONENT = "checkpoint"


def tokenizer_hash(tokenizer: Any) -> str:
    """sha256 of the tokenizer: of its ``tokenizer.json`` text for a tokenizers-backed one
    (what :meth:`HFTokenizer.save` writes, so ``sha256sum tokenizer.json`` agrees), else of
    its vocabulary's bytes (each token's length and bytes in id order; special tokens by name)."""
    backend = getattr(tokenizer, "backend", None)
    if backend is not None and callable(getattr(backend, "to_str", None)):
        return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    specials = getattr(tokenizer, "special_tokens", {}) or {}
    for i in range(tokenizer.vocab_size):
        data = tokenizer.token_bytes(i)
        if data is None:
            data = b"\x00special:" + str(specials.get(i, "")).encode("utf-8")
        h.update(len(data).to_bytes(4, "little") + data)
    return h.hexdigest()


def save_tokenizer(tokenizer: Any, directory: Path) -> bool:
    """Write the tokenizer into ``directory`` when it can be saved; whether it was."""
    save = getattr(tokenizer, "save", None)
    if tokenizer is None or not callable(save):
        return False
    save(directory / "tokenizer.json")
    return True


def stamp_weights(directory: Path, metadata: Mapping[str, Any], version: str) -> list[Path]:
    """Rewrite every ``*.safetensors`` file in ``directory`` with tokensmith's artifact
    metadata (``{plugin: "tokensmith", version, config: metadata}``, format and content hash)
    and transformers' ``format = "pt"``, atomically; the tensors are unchanged."""
    from safetensors.torch import load

    text = json.dumps({"plugin": "tokensmith", "version": version, "config": dict(metadata)},
                      sort_keys=True, allow_nan=False)
    stamped = []
    for path in sorted(directory.glob("*.safetensors")):
        tensors = load(path.read_bytes())
        atomic_write_bytes(path, _encode(tensors, {"format": "pt", META_KEY: text}))
        stamped.append(path)
    return stamped


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def write_manifest(directory: Path, info: Mapping[str, Any]) -> Path:
    """Write :data:`MANIFEST` (last): ``info`` and the size and sha256 of every file."""
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(directory.iterdir())
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    manifest = {"format": CHECKPOINT_FORMAT, **dict(info), "files": files}
    path = directory / MANIFEST
    atomic_write_text(path, json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a finished checkpoint, with its format checked."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"checkpoint {str(directory)!r} does not exist", component=_COMPONENT,
                            hint="pass a checkpoint directory (output_dir/checkpoint-N) or 'latest'")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{str(directory)!r} has no {MANIFEST}: it is not a tokensmith checkpoint, or "
                            "its save did not finish", component=_COMPONENT,
                            hint="resume from an earlier checkpoint ('latest' skips unfinished ones)")
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise CorruptArtifactError(f"{str(path)!r} is not readable JSON: {exc}", component=_COMPONENT,
                                   hint="the checkpoint is damaged: resume from another one") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CorruptArtifactError(f"{str(path)!r} has no file list", component=_COMPONENT,
                                   hint="the checkpoint is damaged: resume from another one")
    if manifest.get("format") != CHECKPOINT_FORMAT:
        raise ArtifactVersionError(f"checkpoint {str(directory)!r} has format {manifest.get('format')!r}; "
                                   f"this tokensmith reads format {CHECKPOINT_FORMAT}", component=_COMPONENT,
                                   hint="resume it with the tokensmith version that wrote it")
    return manifest


def verify_checkpoint(directory: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Check every file of a checkpoint against its manifest (present, same size, same
    sha256) and, with ``resume``, that it holds the optimizer/scheduler/trainer state;
    returns the manifest."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    for name, entry in sorted(manifest["files"].items()):
        path = directory / name
        if Path(name).name != name or not isinstance(entry, dict):
            raise CorruptArtifactError(f"{MANIFEST} of {str(directory)!r} lists {name!r} oddly",
                                       component=_COMPONENT, hint="the checkpoint is damaged")
        if not path.is_file():
            raise ArtifactError(f"checkpoint {str(directory)!r} lacks {name}", component=_COMPONENT,
                                hint="the checkpoint is incomplete: resume from another one")
        if path.stat().st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
            raise CorruptArtifactError(f"{name} in checkpoint {str(directory)!r} does not match its sha256 "
                                       "(the file is damaged)", component=_COMPONENT,
                                       hint="resume from another checkpoint")
    if resume:
        missing = [f for f in STATE_FILES if f not in manifest["files"]]
        if missing:
            raise ArtifactError(f"{str(directory)!r} holds no training state ({', '.join(missing)}): a final "
                                "model, not a checkpoint to resume", component=_COMPONENT,
                                hint="resume from output_dir/checkpoint-N, or train from it as a model "
                                "source instead")
    return manifest


def evaluation_points(manifest: Mapping[str, Any], directory: str | Path) -> list[Any]:
    """The manifest's evaluation points so far, as :class:`~tokensmith.EvalPoint` records."""
    import math

    from tokensmith.core.recipe import EvalPoint

    points = manifest.get("evaluations", [])
    out = []
    for point in points if isinstance(points, list) else [points]:
        if not (isinstance(point, list) and len(point) == 3 and type(point[0]) is int
                and isinstance(point[1], (int, float)) and not isinstance(point[1], bool)
                and isinstance(point[2], str)):
            raise CorruptArtifactError(f"{MANIFEST} of {str(directory)!r} has an evaluation point "
                                       f"{point!r:.60}, not [step, loss, label]", component=_COMPONENT,
                                       hint="the checkpoint is damaged: resume from another one")
        out.append(EvalPoint(point[0], float(point[1]) if math.isfinite(point[1]) else math.nan, point[2]))
    return out


def _weight_shapes(directory: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has keys(), no iteration
                    shapes[key] = tuple(fh.get_slice(key).get_shape())
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise CorruptArtifactError(f"{path.name} in {str(directory)!r} is not a readable safetensors "
                                       f"file: {exc}", component=_COMPONENT,
                                       hint="the checkpoint is damaged: use another one") from None
    return shapes


def check_fits(directory: str | Path, model: Any) -> None:
    """That the checkpoint's weights are the model's: the same names (a tied weight stored
    once aside) and shapes. Anything else is an :class:`ArtifactError` naming the first
    differences, before any weight is loaded."""
    directory = Path(directory)
    saved = _weight_shapes(directory)
    if not saved:
        raise ArtifactError(f"checkpoint {str(directory)!r} holds no *.safetensors weights",
                            component=_COMPONENT, hint="the checkpoint is incomplete: use another one")
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tied: dict[int, list[str]] = {}  # a tied weight is saved once, under any one of its names
    for name, param in model.named_parameters(remove_duplicate=False):
        tied.setdefault(id(param), []).append(name)
    stored_as = {n: names for names in tied.values() for n in names}
    missing = sorted(n for n in set(expected) - set(saved)
                     if not any(alias in saved for alias in stored_as.get(n, ())))
    unexpected = sorted(set(saved) - set(expected))
    shapes = [f"{n} {list(saved[n])} (the model's: {list(expected[n])})" for n in sorted(saved)
              if n in expected and saved[n] != expected[n]]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {unexpected[:3]}" if unexpected
                 else "", f"other shapes: {', '.join(shapes[:3])}" if shapes else ""]
        raise ArtifactError(f"checkpoint {str(directory)!r} does not fit the model: "
                            + "; ".join(p for p in parts if p), component=_COMPONENT,
                            hint="use the model (source and [model] parameters) the checkpoint was "
                            "trained from")


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The finished checkpoints (with a manifest) in ``output_dir``, oldest step first."""
    root = Path(output_dir)
    found = []
    for path in root.glob(f"{PREFIX}*") if root.is_dir() else ():
        match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
        if match and (path / MANIFEST).is_file():
            found.append((int(match.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | Path) -> Path:
    """The finished checkpoint with the highest step in ``output_dir``."""
    found = checkpoints(output_dir)
    if not found:
        raise ArtifactError(f"no finished checkpoint in {str(output_dir)!r}", component=_COMPONENT,
                            hint="train with [train] save_every = N to write checkpoints, or pass a path")
    return found[-1]


def load_checkpoint(directory: str | Path, runtime: Any = None, *, model: Any = None
                    ) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, manifest)`` from a verified checkpoint. Without ``model``, a
    transformers model is loaded from the directory (as the model source would); with one,
    its weights are loaded into it (models that are not transformers classes); ``tokenizer``
    is ``None`` when the checkpoint has none."""
    from tokensmith.core.runtime import Runtime

    from . import models

    directory = Path(directory)
    manifest = verify_checkpoint(directory)
    runtime = runtime or Runtime()
    if model is None:
        loaded, tokenizer = models.load_transformers_dir(directory, runtime)
        return loaded, tokenizer, manifest
    from safetensors.torch import load_file

    from tokensmith.core.errors import ModelLoadError

    try:
        check_fits(directory, model)
    except ArtifactError as exc:
        if isinstance(exc, CorruptArtifactError):
            raise
        raise ModelLoadError(exc.message, component=_COMPONENT,
                             hint="load it into the model it was trained from") from None
    state = {}
    for path in sorted(directory.glob("*.safetensors")):
        state.update(load_file(str(path), device=str(runtime.device)))
    model.load_state_dict(state, strict=False)
    tokenizer = None
    if (directory / "tokenizer.json").is_file():
        tokenizer = models.load_tokenizer(directory, name=directory.name)
    return model, tokenizer, manifest
