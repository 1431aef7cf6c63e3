"""The digits captioning setup and the registered ``prior`` benchmark: captions and their digit
position, a captioner that reads the image and a reference that cannot, the accuracy against a
brute force, and a short run through the recipe runner."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_prior.benchmark import (
    PRIORBenchmark,
    batches,
    caption_sequences,
    digit_accuracy,
    measure,
    to_report,
)
from tokensmith_prior.captioning import (
    DIGITS,
    PIXELS,
    TEMPLATES,
    Vocabulary,
    make_captioner,
    make_text_only,
    tiny_lm,
)

from tokensmith import IGNORE_INDEX, InputError, Report

VOCAB = Vocabulary()
images = st.lists(st.lists(st.integers(0, 16), min_size=8, max_size=8), min_size=8, max_size=8)


@settings(max_examples=30, deadline=None)
@given(image=images, label=st.integers(0, 9), template=st.sampled_from(TEMPLATES))
def test_a_caption_sequence_holds_the_image_then_the_caption(image, label, template):
    ex = VOCAB.example(image, label, template)
    ids, labels = ex["input_ids"], ex["labels"]
    assert [i - VOCAB.pixel0 for i in ids[:PIXELS]] == [v for row in image for v in row]
    assert ids[PIXELS] == VOCAB.bos and ids[-1] == VOCAB.eos
    assert ids[ex["digit_at"]] == VOCAB.digit_ids[label]
    words = [VOCAB.words[i] for i in ids[PIXELS + 1:-1]]
    assert " ".join(words) == template.format(d=DIGITS[label])
    assert labels[:PIXELS + 1] == [IGNORE_INDEX] * (PIXELS + 1) and labels[PIXELS + 1:] == ids[PIXELS + 1:]
    assert ex["response_mask"] == [0 if label == IGNORE_INDEX else 1 for label in labels]


def test_bad_images_and_templates_are_refused():
    with pytest.raises(InputError, match="8x8"):
        VOCAB.pixels([[0] * 8] * 7)
    with pytest.raises(InputError, match="8x8"):
        VOCAB.pixels([[17] * 8] * 8)
    with pytest.raises(InputError, match="exactly once"):
        Vocabulary(("no digit here .",))


def _pair():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 17, (3, 8, 8), generator=g).tolist()
    return caption_sequences(VOCAB, [(img, i % 10) for i, img in enumerate(images)], seed=0)


def test_the_captioner_reads_the_image_and_the_reference_cannot():
    sequences = _pair()
    captioner = make_captioner(tiny_lm(VOCAB.size, hidden=16, layers=1, seed=0), prefix=2,
                               pixel0=VOCAB.pixel0, seed=0)
    reference = make_text_only(tiny_lm(VOCAB.size, hidden=16, layers=1, seed=1))
    _, batch = next(batches(sequences))
    other = batch["input_ids"].clone()
    other[:, :PIXELS] = VOCAB.pixel0 + (16 - (other[:, :PIXELS] - VOCAB.pixel0))  # the negative image
    with torch.no_grad():
        a = captioner(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = captioner(input_ids=other, attention_mask=batch["attention_mask"]).logits
        ra = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        rb = reference(input_ids=other, attention_mask=batch["attention_mask"]).logits
        # the reference's caption logits are its LM's on the caption alone, at the same positions
        alone = reference.lm(input_ids=batch["input_ids"][:, PIXELS:]).logits
    assert a.shape == (3, batch["input_ids"].shape[1], VOCAB.size)
    assert torch.equal(a[:, :PIXELS], torch.zeros_like(a[:, :PIXELS]))
    assert not torch.allclose(a[:, PIXELS:], b[:, PIXELS:])
    assert torch.equal(ra, rb)
    assert torch.allclose(ra[0, PIXELS:], alone[0], atol=1e-6)


def test_digit_accuracy_is_the_brute_force_one():
    sequences = _pair()
    model = make_captioner(tiny_lm(VOCAB.size, hidden=16, layers=1, seed=3), prefix=2, pixel0=VOCAB.pixel0,
                           seed=3)
    got = digit_accuracy(model, VOCAB, sequences)
    right = 0
    with torch.no_grad():
        for s in sequences:
            logits = model(input_ids=torch.tensor([s["input_ids"]])).logits[0, s["digit_at"] - 1]
            guess = max(range(10), key=lambda d: float(logits[VOCAB.digit_ids[d]]))
            right += guess == s["label"]
    assert got["accuracy"] == pytest.approx(right / len(sequences))


def test_a_short_run_reports_weights_and_both_arms(installed_registry):
    results = measure(steps=2, seeds=1, reference_steps=2, eval_every=1, batch_size=8, lr=3e-3, alpha=1.0,
                      prefix=2, hidden=16, layers=1, sample=40, registry=installed_registry)
    report = to_report(results)
    assert isinstance(report, Report) and Report.from_json(report.to_json()) == report
    assert {r["arm"] for r in results["runs"]} == {"ntp", "prior"}
    for run in results["runs"]:
        assert [s for s, _ in run["curve"]] == [0, 1, 2] and [s for s, _ in run["losses"]] == [1, 2]
    # same seed, same initial weights: the arms start at the same accuracy, then train differently
    ntp, prior = (next(r for r in results["runs"] if r["arm"] == a) for a in ("ntp", "prior"))
    assert ntp["curve"][0] == prior["curve"][0] and ntp["losses"] != prior["losses"]
    # PRIOR's weights average 1 over every caption, so over every template's positions too
    for profile in results["weights"]["by_template"].values():
        assert sum(profile) / len(profile) == pytest.approx(1.0, abs=1e-4)
    m = report.metrics
    gain = m["digit_accuracy[prior]"] - m["digit_accuracy[ntp]"]
    assert m["digit_accuracy_prior_minus_ntp"] == pytest.approx(gain)


def test_registered_with_its_parameters(plugin_registry):
    record = plugin_registry.get("benchmark", "prior")
    names = {p.name for p in plugin_registry.parameters(record).parameters}
    assert {"steps", "seeds", "reference_steps", "sample", "alpha"} <= names
    assert PRIORBenchmark(alpha=0).alpha == 0.0
