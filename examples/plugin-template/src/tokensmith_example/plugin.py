"""Hook implementations: records only. Factories are lazy "module:attr" strings, so
registering the plugin imports nothing heavy."""

from tokensmith import Component, hookimpl

from .components import MaxBytesConfig, NFKCConfig


@hookimpl
def tokensmith_register_tokenizer_stages():
    return [Component("nfkc", "tokensmith_example.components:NFKC.from_config",
                      "Unicode NFKC normalization before tokenization", config_class=NFKCConfig)]


@hookimpl
def tokensmith_register_constraints():
    return [Component("max-bytes", "tokensmith_example.components:MaxBytes.from_config",
                      "accept strings of at most `limit` UTF-8 bytes", config_class=MaxBytesConfig)]
