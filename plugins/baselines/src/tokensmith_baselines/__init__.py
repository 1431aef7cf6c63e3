"""Standard components every pipeline slot needs, so the core stays technique-free."""

from .decoding import GreedyDecoder, SampleConfig, SamplingDecoder, TokenHealer

__all__ = ["GreedyDecoder", "SampleConfig", "SamplingDecoder", "TokenHealer"]
