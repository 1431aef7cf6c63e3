"""Standard components every pipeline slot needs, so the core stays technique-free."""

from .decoding import GreedyDecoder, SamplingDecoder, TokenHealer

__all__ = ["GreedyDecoder", "SamplingDecoder", "TokenHealer"]
