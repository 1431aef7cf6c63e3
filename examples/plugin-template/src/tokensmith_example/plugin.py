"""Hook implementations: records only. Factories are lazy "module:attr" strings, so
registering the plugin imports nothing heavy."""

from tokensmith import Component, hookimpl

_M = "tokensmith_example.components"


@hookimpl
def tokensmith_register_tokenizer_stages():
    return [Component("nfkc", f"{_M}:NFKC", "Unicode NFKC normalization before tokenization")]


@hookimpl
def tokensmith_register_constraints():
    return [Component("max-bytes", f"{_M}:MaxBytes", "accept strings of at most `limit` UTF-8 bytes")]


@hookimpl
def tokensmith_register_decoders():
    return [Component("min-p", f"{_M}:MinP", "min-p sampling: drop tokens below min_p x the top probability")]
