"""SmolLM2-135M (RMSNorm, LlamaRMSNorm): surgery on one copy, bit-identical live, exact DLA; the demo."""

from __future__ import annotations

import io

import pytest
import torch
from tokensmith_ln_free import fake_norms
from tokensmith_ln_free.attribution import direct_logit_attribution

from tokensmith import SurgeryError


def test_live_surgery_on_smollm2_is_bit_identical_and_fake_final_norm_gives_exact_dla(smollm2, make_provider):
    model, tok = smollm2
    ids = torch.tensor([tok.encode("The capital of France is Paris, and the capital of Italy is").ids])
    with torch.no_grad():
        reference = model(input_ids=ids).logits
        copy, report = make_provider(tokenizer=tok).replace(model, inplace=False)
        assert len(report) == 61 and {c.before for c in report.changes} == {"LlamaRMSNorm"}
        assert torch.equal(copy(input_ids=ids).logits, reference)
    del copy
    final, _ = make_provider(tokenizer=tok, layers=["model.norm"], mode="fake").replace(model, inplace=False)
    assert list(fake_norms(final)) == ["model.norm"]
    result = direct_logit_attribution(final, ids)
    assert result.sum_error < 1e-3 and result.ablation_error < 1e-3
    assert torch.equal(model(input_ids=ids).logits, reference)


def test_demo_leaves_the_pipeline_model_unchanged(smollm2_lm, smollm2):
    from types import SimpleNamespace

    from tokensmith_ln_free.demo import LNFreeDemo

    model, tok = smollm2
    pipeline = SimpleNamespace(model=model, tokenizer=tok, lm=smollm2_lm)
    before = type(model.model.norm)
    out = io.StringIO()
    report = LNFreeDemo().run(pipeline, out)
    assert type(model.model.norm) is before and not fake_norms(model)
    numbers = report.metrics
    assert numbers["fake_ablation_error"] < 1e-3 < numbers["live_ablation_error"]
    assert numbers["loss_change"] == numbers["fake_loss"] - numbers["live_loss"]
    live, frozen = report.tables[0].rows
    assert live[3] == numbers["live_ablation_error"] and frozen[3] == numbers["fake_ablation_error"]
    assert "direct logit attribution" in out.getvalue() and "\x1b" not in out.getvalue()


@pytest.mark.smollm2
def test_live_copy_of_smollm2_is_bit_identical_on_one_token_forwards(smollm2, make_provider):
    """SmolLM2's weights sit at unaligned file offsets; a plain deepcopy differed by up to 2.7e-5 on
    one-token forwards (another BLAS path for the one-row matmul). The copy keeps the offsets."""
    model, tok = smollm2
    ids = torch.tensor(tok.encode("The capital of France is Paris").ids)
    copy, _ = make_provider(tokenizer=tok).replace(model, inplace=False)
    with torch.no_grad():
        for token in ids:
            one = token.view(1, 1)
            assert torch.equal(copy(input_ids=one).logits, model(input_ids=one).logits)


@pytest.mark.smollm2
@pytest.mark.parametrize("mode", ["fake", "removed"])
def test_freezing_every_smollm2_norm_is_an_error_naming_where_it_overflows(smollm2, make_provider, mode):
    """All 61 norms frozen without fine-tuning: the calibration texts' logits are NaN; the error
    names the first module whose output is not finite, and the original is unchanged."""
    model, tok = smollm2
    with pytest.raises(SurgeryError, match=r"with 61 norm\(s\) frozen .* is not finite .* first module "
                                           r"with a non-finite output is model\.layers\.\d+\."):
        make_provider(tokenizer=tok, mode=mode).replace(model, inplace=False)
    assert not fake_norms(model) and type(model.model.norm).__name__ == "LlamaRMSNorm"
