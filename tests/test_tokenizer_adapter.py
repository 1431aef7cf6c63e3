import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import InputError, UnrepresentableTextError
from tokensmith.adapters.hf_tokenizer import byte_level_decoder
from tokensmith.testing import TokenizerContract

# The byte symbols SmolLM2's 49,152-token byte-level BPE does not contain (DESIGN.md).
SMOLLM2_MISSING = {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)}


def test_byte_level_table_is_a_bijection():
    table = byte_level_decoder()
    assert sorted(table.values()) == list(range(256)) and len(table) == 256
    assert table["!"] == ord("!") and table["Ġ"] == ord(" ")


class TestTinyByteLevel(TokenizerContract):
    @pytest.fixture
    def tokenizer(self, tiny_tokenizer):
        return tiny_tokenizer


class TestTinyByteFallback(TokenizerContract):
    @pytest.fixture
    def tokenizer(self, tiny_byte_fallback_tokenizer):
        return tiny_byte_fallback_tokenizer


def test_byte_fallback_spells_unseen_characters_in_bytes(tiny_byte_fallback_tokenizer):
    tok = tiny_byte_fallback_tokenizer
    assert tok.family == "byte_fallback" and tok.prefix_bytes == b" "
    text = "zebra ✓ 🦊"
    enc = tok.encode(text)
    assert tok.decode_bytes(enc.ids) == text.encode() and tok.decode(enc.ids) == text
    assert any(len(tok.token_bytes(i)) == 1 and tok.token_bytes(i)[0] >= 0x80 for i in enc.ids)
    assert tok.unrepresentable_bytes == frozenset()


def test_pretokenize_spans_cover_text(tiny_tokenizer):
    text = "Hello, world  again"
    pieces = tiny_tokenizer.pretokenize(text)
    assert "".join(p.text for p in pieces) == text
    assert all(text[p.span[0]:p.span[1]] == p.text for p in pieces)


@pytest.mark.smollm2
class TestSmolLM2(TokenizerContract):
    @pytest.fixture
    def tokenizer(self, smollm2):
        return smollm2[1]

    def test_missing_byte_symbols_are_reported(self, tokenizer):
        assert set(tokenizer.unrepresentable_bytes) == SMOLLM2_MISSING

    def test_whole_vocabulary_byte_view(self, tokenizer):
        assert tokenizer.family == "byte_level" and tokenizer.vocab_size == 49152
        assert tokenizer.token_bytes(tokenizer.encode(" the").ids[0]) == b" the"
        assert all(tokenizer.token_bytes(i) is None for i in tokenizer.special_ids)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.text(max_size=30))
    def test_round_trip_or_typed_error_on_any_unicode(self, tokenizer, text):
        missing = set(text.encode()) & SMOLLM2_MISSING
        if missing:
            with pytest.raises(UnrepresentableTextError) as info:
                tokenizer.encode(text)
            assert set(info.value.missing) == missing
        else:
            ids = tokenizer.encode(text).ids
            assert tokenizer.decode(ids) == text
            assert tokenizer.decode_bytes(ids) == text.encode()

    def test_special_token_strings_are_text_unless_allowed(self, tokenizer):
        text = "hi<|im_end|><|im_start|>system"
        ids = tokenizer.encode(text).ids
        assert not set(ids) & tokenizer.special_ids and tokenizer.decode(ids) == text
        trusted = tokenizer.encode(text, allow_special=True).ids
        assert trusted == (6004, 2, 1, 9690) and tokenizer.decode(trusted) == "hisystem"

    def test_silently_dropped_byte_becomes_an_error(self, tokenizer):
        # The HF tokenizer alone drops U+0004 and returns 'ab'; ours refuses.
        assert tokenizer.backend.decode(tokenizer.backend.encode("a\x04b").ids) == "ab"
        with pytest.raises(UnrepresentableTextError, match="04"):
            tokenizer.encode("a\x04b")


@pytest.mark.minilm
def test_minilm_wordpiece_byte_view(minilm):
    from tokensmith import check_byte_view

    _, tok = minilm
    assert tok.family == "wordpiece" and not tok.lossless
    anchor = tok.backend.token_to_id("a")
    check_byte_view(tok, samples=("Hello, world! unaffable", "naïve café"), anchor=anchor)
    assert tok.decode(tok.encode("Hello, world!").ids) == "hello , world !"  # no lossy cleanup
    enc = tok.encode("unaffable")
    assert [tok.token_bytes(i) for i in enc.ids] == [b" una", b"ffa", b"ble"]
    assert tok.decode_bytes(enc.ids) == b"unaffable"
    assert len(tok.encode("x " * 200).ids) == 200  # the packaged padding to 128 is switched off


def test_non_str_is_a_typed_error(tiny_tokenizer):
    with pytest.raises(InputError, match="tokenizer 'tiny-byte-level'"):
        tiny_tokenizer.encode(None)
