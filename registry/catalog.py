"""First-party distributions and the components each provides.

Used only for the "install it" hint of an unknown name: a hint names a
distribution only when it is known to provide that exact name, never a
``tokensmith-<typo>`` (an invitation to typosquatting). tests/test_meta.py
checks this table against the installed first-party plugins.
"""

from __future__ import annotations

FIRST_PARTY: dict[str, dict[str, tuple[str, ...]]] = {
    "tokensmith-baselines": {"tokenizer": ("hf-file", "model"), "embedding": ("model",),
                             "normalization": ("identity",), "decoder": ("greedy", "sample"),
                             "tokenizer_trainer": ("bpe", "byte-level-bpe", "unigram", "wordpiece"),
                             "objective": ("cross-entropy", "exact-match", "group-normalized",
                                           "random-fraction", "response-only", "uniform"),
                             "evaluation": ("tokenizer-metrics",), "demo": ("baselines",)},
    "tokensmith-byteprob": {"decoder": ("byteprob",), "benchmark": ("byteprob",), "demo": ("byteprob",)},
    "tokensmith-awrs": {"decoder": ("awrs", "masking"),
                        "constraint": ("json-schema", "lark", "llg-json-schema", "llg-regex", "python",
                                       "regex"),
                        "benchmark": ("awrs",), "demo": ("awrs",)},
    "tokensmith-powernorm": {"normalization": ("batchnorm", "powernorm"), "benchmark": ("powernorm",),
                             "demo": ("powernorm",)},
    "tokensmith-ln-free": {"normalization": ("ln-free",), "recipe": ("ln-free",), "benchmark": ("ln-free",),
                           "demo": ("ln-free",)},
    "tokensmith-transnormer": {"normalization": ("srmsnorm",), "architecture": ("transnormer-lm",),
                               "benchmark": ("transnormer",), "demo": ("transnormer",)},
    "tokensmith-linguistic-integrity": {"evaluation": ("linguistic-integrity",)},
    "tokensmith-dynamic-tokenization": {"embedding": ("subtoken-mean",),
                                        "evaluation": ("dynamic-tokenization",)},
    "tokensmith-charbench": {"evaluation": ("charbench", "charbench-covariates")},
    "tokensmith-needle-threading": {"evaluation": ("needle-threading", "uuid-chars-per-token")},
    "tokensmith-kl3m": {"tokenizer_trainer": ("kl3m-bpe", "kl3m-char"),
                        "evaluation": ("domain-terms", "kl3m")},
    "tokensmith-dahsf": {"tokenizer_stage": ("dahsf",), "benchmark": ("dahsf",)},
    "tokensmith-tokenadapt": {"embedding": ("tokenadapt",), "tokenizer_trainer": ("supertoken-bpe",),
                              "benchmark": ("transplant", "supertokens")},
    "tokensmith-sstoken": {"objective": ("sstoken", "sstoken-random"), "recipe": ("sstoken",),
                           "benchmark": ("sstoken",)},
    "tokensmith-prior": {"objective": ("prior",), "benchmark": ("prior",)},
    "tokensmith-zett": {"embedding": ("zett",), "recipe": ("zett",), "objective": ("zett",),
                        "benchmark": ("zett-transfer",)},
    "tokensmith-lexinvariant": {"embedding": ("lexinvariant", "semi-lexinvariant"),
                                "recipe": ("lexinvariant", "semi-lexinvariant"),
                                "benchmark": ("lexinvariant",)},
    "tokensmith-glyph-embeddings": {"embedding": ("glyph-embeddings",), "recipe": ("glyph-embeddings",),
                                    "tokenizer_trainer": ("unicode-ngrams",),
                                    "benchmark": ("glyph-embeddings",)},
    "tokensmith-dler": {"objective": ("truncation-penalty", "batch-whitened", "correct-sample-boost",
                                      "clip-higher"),
                        "recipe": ("dler-merge",), "benchmark": ("dler",)},
    "tokensmith-dupmae": {"objective": ("dupmae",), "recipe": ("dupmae",),
                          "benchmark": ("dupmae-retrieval",)},
    "tokensmith-text2token": {"objective": ("text2token",), "recipe": ("text2token",),
                              "benchmark": ("text2token",)},
    "tokensmith-datasets": {"dataset": (
        "digits", "elementary-math-qa", "gsm-symbolic", "human-eval", "lee-corpus", "lee-similarity",
        "licenses", "mnist", "movielens", "natural-instructions", "simlex999", "squad-shifts", "stdlib-code",
        "text-files", "turkish-lexicon", "turkish-speeches", "turkish-treebank", "udhr", "unifont", "words",
        "wordsim353")},
}


def providers(kind: str, name: str) -> list[str]:
    """First-party distributions known to provide ``kind`` ``name``."""
    return sorted(dist for dist, kinds in FIRST_PARTY.items() if name in kinds.get(kind, ()))
