"""Model directories and files are untrusted: custom code and pickles are refused before
transformers sees them (a marker file shows the code never ran), and every broken file is a
ModelLoadError naming it."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import ModelLoadError, ModelSource, Runtime, TokensmithError, UntrustedModelError
from tokensmith.adapters import hooks, models

# transformers runs a copy of the module from its modules cache: the marker path is absolute
EVIL_CODE = textwrap.dedent('''
    from pathlib import Path
    Path({marker!r}).write_text("the directory's code ran")
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    class EvilConfig(LlamaConfig):
        model_type = "llama"

    class EvilModel(LlamaForCausalLM):
        config_class = EvilConfig

    class EvilTokenizer(PreTrainedTokenizerFast):
        pass
''')


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A tiny Llama saved by transformers, with a transformers tokenizer (no tokenizer_meta.json)."""
    from transformers import PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-model")
    model, tok = models.tiny_llama()
    model.save_pretrained(d)
    PreTrainedTokenizerFast(tokenizer_object=tok.backend, bos_token="<|endoftext|>",
                            eos_token="<|endoftext|>").save_pretrained(d)
    return d


@pytest.fixture
def model_dir(model_files, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model_files, d)
    return d


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _write_code(d: Path) -> None:
    (d / "evil.py").write_text(EVIL_CODE.format(marker=str(d / "MARKER")))


def _make_custom_tokenizer(d: Path) -> None:
    _write_code(d)
    _edit_json(d / "tokenizer_config.json", tokenizer_class="EvilTokenizer",
               auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]})


def _make_custom_model(d: Path) -> None:
    _write_code(d)
    _edit_json(d / "config.json", architectures=["EvilModel"],
               auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"})


def test_the_tiny_directory_loads(model_dir):
    model, tok = models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert tok.decode(tok.encode("hello world").ids) == "hello world"


def test_the_malicious_directories_code_runs_when_trusted(model_files, tmp_path):
    """The control: transformers with trust_remote_code=True runs each directory's code, so the
    marker's absence in the tests below means tokensmith refused it."""
    tok_dir, model_dir = tmp_path / "tok", tmp_path / "mod"
    shutil.copytree(model_files, tok_dir)
    shutil.copytree(model_files, model_dir)
    _make_custom_tokenizer(tok_dir)
    _make_custom_model(model_dir)
    script = textwrap.dedent(f'''
        from transformers import AutoModelForCausalLM, AutoTokenizer
        AutoTokenizer.from_pretrained({str(tok_dir)!r}, trust_remote_code=True)
        AutoModelForCausalLM.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
    ''')
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tok_dir / "MARKER").exists() and (model_dir / "MARKER").exists()


@pytest.mark.parametrize("make", [_make_custom_tokenizer, _make_custom_model], ids=["tokenizer", "model"])
def test_custom_code_is_refused_and_never_runs(model_dir, make):
    make(model_dir)
    with pytest.raises(UntrustedModelError, match="run code") as info:
        models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert "auto_map" in str(info.value) and info.value.hint
    with pytest.raises(UntrustedModelError):
        hooks.tokensmith_load_model(ModelSource(str(model_dir)), Runtime(device="cpu"))
    assert not (model_dir / "MARKER").exists()


def test_with_stdin_closed_a_custom_tokenizer_is_a_typed_error_not_a_prompt(model_dir):
    """transformers asks on stdin whether to run a custom tokenizer unless told not to: no
    prompt, no EOFError, and the code does not run."""
    _make_custom_tokenizer(model_dir)
    script = textwrap.dedent(f'''
        from tokensmith import Runtime, UntrustedModelError
        from tokensmith.adapters import models
        try:
            models.load_transformers_dir({str(model_dir)!r}, Runtime(device="cpu"))
        except UntrustedModelError as exc:
            print("refused:", type(exc).__name__)
    ''')
    env = {**os.environ, "HF_MODULES_CACHE": str(model_dir.parent / "modules"), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=300, cwd=model_dir.parent)
    assert run.returncode == 0 and run.stdout.strip() == "refused: UntrustedModelError", run.stderr[-2000:]
    assert "[y/N]" not in run.stdout + run.stderr
    assert not (model_dir / "MARKER").exists()


@pytest.mark.parametrize(("file", "changes"), [
    ("config.json", {"architectures": ["EvilModel"]}),
    ("tokenizer_config.json", {"tokenizer_class": "EvilTokenizer"}),
    ("config.json", {"text_config": {"auto_map": {"AutoModel": "evil.EvilModel"}}}),
    ("generation_config.json", {"custom_pipelines": {"evil": {"impl": "evil.Pipe"}}}),
])
def test_classes_transformers_lacks_are_refused(model_dir, file, changes):
    _write_code(model_dir)
    _edit_json(model_dir / file, **changes)
    with pytest.raises(UntrustedModelError, match=file):
        models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert not (model_dir / "MARKER").exists()


@pytest.mark.smollm2
def test_a_gguf_next_to_a_custom_tokenizer_config_is_refused(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.symlink_to(models.smollm2_gguf_path())
    _write_code(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}))
    with pytest.raises(UntrustedModelError, match="tokenizer_config.json"):
        hooks.tokensmith_load_model(ModelSource(str(gguf)), Runtime(device="cpu"))
    assert not (tmp_path / "MARKER").exists()


# -- pickle checkpoints ------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('unpickled')",)


def _pickle_only(model_dir: Path, name: str) -> Path:
    marker = model_dir / "MARKER"
    (model_dir / "model.safetensors").unlink()
    (model_dir / name).write_bytes(pickle.dumps(_Payload(marker)))
    return marker


def test_the_pickle_payload_is_live(tmp_path):
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(_Payload(marker)))  # the control: unpickling runs it
    assert marker.read_text() == "unpickled"


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt"])
def test_pickle_checkpoints_are_refused_with_how_to_convert(model_dir, name):
    marker = _pickle_only(model_dir, name)
    with pytest.raises(UntrustedModelError, match="pickle") as info:
        models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert name in str(info.value) and "save_file" in info.value.hint
    assert not marker.exists()


def test_safetensors_are_loaded_even_next_to_a_pickle(model_dir):
    marker = model_dir / "MARKER"
    (model_dir / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert not marker.exists()


# -- every other broken file is a ModelLoadError naming it ----------------------

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bad_header_length(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes((10**12).to_bytes(8, "little") + data[8:])


def _drop_a_tensor(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    del tensors[sorted(tensors)[3]]
    save_file(tensors, path, metadata={"format": "pt"})


BROKEN = {
    "truncated weights": ("model.safetensors", _truncate, "model.safetensors"),
    "empty weights": ("model.safetensors", lambda p: p.write_bytes(b""), "model.safetensors"),
    "bad safetensors header": ("model.safetensors", _bad_header_length, "model.safetensors"),
    "a missing tensor": ("model.safetensors", _drop_a_tensor, "lack"),
    "no weights": ("model.safetensors", Path.unlink, "no weights"),
    "config not JSON": ("config.json", lambda p: p.write_text("{not json"), "config.json"),
    "config a list": ("config.json", lambda p: p.write_text("[1, 2]"), "config.json"),
    "unknown model_type": ("config.json", lambda p: _edit_json(p, model_type="no-such-model"), "model_type"),
    "no model_type": ("config.json", lambda p: p.write_text("{}"), "model_type"),
    "no config": ("config.json", Path.unlink, "no config.json"),
    "garbage tokenizer": ("tokenizer.json", lambda p: p.write_text("{not a tokenizer"), "tokenizer"),
    "no tokenizer": ("tokenizer.json", Path.unlink, "no tokenizer"),
    "tokenizer_config not JSON": ("tokenizer_config.json", lambda p: p.write_text("\x00\xff"),
                                  "tokenizer_config.json"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_directory_is_a_model_load_error_naming_the_file(model_dir, case):
    name, damage, expected = BROKEN[case]
    damage(model_dir / name)
    with pytest.raises(ModelLoadError, match=expected) as info:
        models.load_transformers_dir(model_dir, Runtime(device="cpu"))
    assert type(info.value) is ModelLoadError and info.value.hint


def test_a_garbage_tokensmith_tokenizer_names_its_file(tmp_path, tiny_llama):
    model, tok = tiny_llama
    model.save_pretrained(tmp_path)
    tok.save(tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer.json").write_text('{"model": 1}')
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        models.load_transformers_dir(tmp_path, Runtime(device="cpu"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["config.json", "tokenizer_config.json", "model.safetensors", "tokenizer.json"]),
       at=st.floats(0, 1), patch=st.binary(min_size=1, max_size=16))
def test_damaged_files_load_or_raise_a_typed_error(model_files, tmp_path_factory, name, at, patch):
    d = tmp_path_factory.mktemp("damaged")
    shutil.copytree(model_files, d, dirs_exist_ok=True)
    path = d / name
    data = bytearray(path.read_bytes())
    if name == "model.safetensors":  # the header, where damage changes structure rather than values
        i = int(at * (8 + int.from_bytes(data[:8], "little")))
    else:
        i = int(at * (len(data) - 1))
    data[i:i + len(patch)] = patch
    path.write_bytes(bytes(data))
    try:
        models.load_transformers_dir(d, Runtime(device="cpu"))
    except TokensmithError:
        pass


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "is empty"), (b"PK\x03\x04 not gguf at all", "not a GGUF file"), (b"GGU", "not a GGUF file")])
def test_garbage_gguf_is_a_model_load_error(tmp_path, content, expected):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=expected):
        hooks.tokensmith_load_model(ModelSource(str(path)), Runtime(device="cpu"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        hooks.tokensmith_load_model(ModelSource(str(tmp_path / "absent.gguf")), Runtime(device="cpu"))


@pytest.mark.smollm2
@pytest.mark.parametrize("keep", [16, 4096, 1 << 20])
def test_truncated_gguf_is_a_model_load_error_naming_it(tmp_path, keep):
    path = tmp_path / "cut.gguf"
    with models.smollm2_gguf_path().open("rb") as fh:
        path.write_bytes(fh.read(keep))
    with pytest.raises(ModelLoadError, match="cut.gguf") as info:
        hooks.tokensmith_load_model(ModelSource(str(path)), Runtime(device="cpu"))
    assert info.value.hint
