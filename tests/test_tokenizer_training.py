"""train_tokenizer: texts streamed into a Hugging Face trainer, progress only on a terminal,
typed errors, a verified byte view; trained BPE tokenizers are the same in every process;
docs/tokenizers.md runs as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tokensmith import ConfigError, HFTokenizer, InputError, TokensmithError, train_tokenizer
from tokensmith.testing import TINY_CORPUS

ROOT = Path(__file__).resolve().parents[1]
LINES = TINY_CORPUS.splitlines(keepends=True)


def _bpe(vocab_size=300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    return backend, trainer


class Recorder:
    """A stand-in for a tokenizers.Tokenizer that records how it is trained (then hands over a
    real backend through ``finish``)."""

    def __init__(self):
        self.seen, self.length = [], "unset"

    def train_from_iterator(self, iterator, trainer, length=None):
        self.length = length
        for text in iterator:
            self.seen.append(text)


def test_a_generator_is_streamed_once_and_a_list_gives_its_length():
    real, trainer = _bpe()
    recorder = Recorder()
    consumed = []

    def texts():
        for line in LINES:
            consumed.append(line)
            yield line

    tok = train_tokenizer(recorder, trainer, texts(), progress=False, finish=lambda _: _train_real())
    assert recorder.seen == LINES == consumed and recorder.length is None
    assert isinstance(tok, HFTokenizer)
    recorder = Recorder()
    train_tokenizer(recorder, trainer, LINES, progress=False, finish=lambda _: _train_real())
    assert recorder.length == len(LINES)


def _train_real():
    backend, trainer = _bpe()
    backend.train_from_iterator(LINES, trainer)
    return backend


def test_progress_shows_only_on_a_terminal(monkeypatch):
    backend, trainer = _bpe()
    train_tokenizer(backend, trainer, LINES, progress=True)
    assert trainer.show_progress is False  # pytest's stderr is no terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    backend, trainer = _bpe()
    train_tokenizer(backend, trainer, LINES, progress=True)
    assert trainer.show_progress is True
    backend, trainer = _bpe()
    train_tokenizer(backend, trainer, LINES, progress=False)
    assert trainer.show_progress is False
    with pytest.raises(InputError, match="progress must be True or False"):
        train_tokenizer(*_bpe(), LINES, progress="yes")


def test_the_result_is_verified_named_and_holds_its_token_names():
    backend, trainer = _bpe()
    tok = train_tokenizer(backend, trainer, LINES, progress=False, name="mine", eos_token="<|endoftext|>")
    assert tok.name == "mine" and tok.eos_id == 0 and tok.vocab_size <= 300
    assert tok.decode(tok.encode(TINY_CORPUS).ids) == TINY_CORPUS


@pytest.mark.parametrize("texts, message", [
    ("a single text", "expected an iterable of texts, got str"),
    (None, "expected an iterable of texts"),
    ({"a": 1}, "expected an iterable of texts, got dict"),
    (["ok", 3], "expected text of type str, got int"),
    (["ok", b"bytes"], "expected text of type str, got bytes"),
    (["caf\udce9"], "lone surrogate"),
    ([], "no texts to train on"),
    (iter(()), "no texts to train on"),
])
def test_what_is_not_a_corpus_is_an_input_error(texts, message):
    with pytest.raises(InputError, match=message) as info:
        train_tokenizer(*_bpe(), texts, progress=False, component="tokenizer_trainer 'mine'")
    assert info.value.component == "tokenizer_trainer 'mine'"


def test_the_corpus_own_error_passes_through():
    def texts():
        yield "fine"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone") as info:
        train_tokenizer(*_bpe(), texts(), progress=False)
    assert not isinstance(info.value, TokensmithError)


def test_what_tokenizers_refuses_is_a_config_error():
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.Unigram())
    trainer = trainers.UnigramTrainer(vocab_size=5, special_tokens=["<unk>"], unk_token="<unk>")
    with pytest.raises(ConfigError, match="tokenizers refused to train: .*not large enough") as info:
        train_tokenizer(backend, trainer, LINES, progress=False, component="tokenizer_trainer 'u'")
    assert "vocab_size" in info.value.hint and info.value.component == "tokenizer_trainer 'u'"


def test_a_vocabulary_over_the_limit_is_a_config_error():
    with pytest.raises(ConfigError, match=r"has 300 tokens, more than vocab_size = 280"):
        train_tokenizer(*_bpe(300), LINES * 4, progress=False, max_vocab_size=280)


_FINGERPRINTS = """
import json, sys
from tokensmith.testing import TINY_CORPUS
from tokensmith_baselines.trainers import ByteLevelBPE, CharBPE
texts = TINY_CORPUS.splitlines(keepends=True) * 3
print(json.dumps([ByteLevelBPE(vocab_size=400, min_frequency=1).train(texts, progress=False).fingerprint(),
                  CharBPE(vocab_size=420, min_frequency=1).train(texts, progress=False).fingerprint()]))
"""


def test_bpe_training_is_the_same_in_every_process(tmp_path):
    """tokenizers' hash maps are seeded per process: the BPE trainers' results must not depend
    on them (Unigram's and WordPiece's do, and say so)."""
    pytest.importorskip("tokensmith_baselines")
    from tokensmith_baselines.trainers import ByteLevelBPE, CharBPE, Unigram, WordPiece

    runs = [subprocess.run([sys.executable, "-c", _FINGERPRINTS], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    texts = LINES * 3
    here = [ByteLevelBPE(vocab_size=400, min_frequency=1).train(texts, progress=False).fingerprint(),
            CharBPE(vocab_size=420, min_frequency=1).train(texts, progress=False).fingerprint()]
    assert [json.loads(r.stdout) for r in runs] == [here, here]
    assert ByteLevelBPE.deterministic and CharBPE.deterministic
    assert not Unigram.deterministic and not WordPiece.deterministic


def test_docs_tokenizers_md_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("tokensmith_baselines")
    doc = (ROOT / "docs" / "tokenizers.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(python|toml)\n(.*?)```", doc, re.S)
    assert [lang for lang, _ in blocks] == ["python", "python", "toml", "python"]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for lang, body in blocks:
        if lang == "toml":
            name = re.match(r"# (\S+)\n", body).group(1)
            (tmp_path / name).write_text(body, encoding="utf-8")
        else:
            exec(compile(body, "docs/tokenizers.md", "exec"), namespace)
    assert (tmp_path / "my-tokenizer" / "tokenizer.json").is_file()
    assert namespace["pipeline"].tokenizer.fingerprint() == namespace["tokenizer"].fingerprint()


def test_check_special_roles_names_the_role_and_accepts_unset_or_listed_roles():
    from tokensmith import ConfigError, TokenizerTrainer

    TokenizerTrainer.check_special_roles({"special_tokens": ["<s>", "</s>"], "bos_token": "<s>",
                                          "eos_token": None})
    with pytest.raises(ConfigError, match="pad_token '<pad>' is not one of special_tokens") as info:
        TokenizerTrainer.check_special_roles({"special_tokens": ["<s>"], "pad_token": "<pad>"})
    assert "add '<pad>' to special_tokens" in info.value.hint
