"""tokensmith.adapters — bridges to transformers, tokenizers, GGUF and safetensors.

Imports nothing heavy at import time; each module imports torch/transformers itself.
"""
