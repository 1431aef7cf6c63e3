"""Hook implementations of tokensmith-tokenadapt (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_tokenadapt"


@hookimpl
def tokensmith_register_embeddings():
    return [Component("tokenadapt", f"{_M}.provider:TokenAdapt",
                      "TokenAdapt transplant: shared rows copied, the others the local+global hybrid "
                      "(or local/global/FVT)")]
