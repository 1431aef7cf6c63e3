"""tokensmith.core — the ground floor: interfaces, records, Runtime, Pipeline, errors.

Nothing here imports torch or transformers at import time; tensor code imports
them inside the functions that need them.
"""
