"""`tokensmith demo` section: freeze SmolLM2's final norm on one copy and show what changes.

Baroni et al. (2025), arXiv 2507.02559: a frozen final norm makes direct logit attribution exact.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from tokensmith import Demo, Report, Table, find_norm_layers, to_terminal

HELD_OUT = "The library lends books for three weeks, and readers may renew them online."


class LNFreeDemo(Demo):
    name = "ln-free"

    def run(self, pipeline: Any, out: Any) -> Report:
        import torch

        from .attribution import direct_logit_attribution
        from .finetune import evaluate
        from .schedule import norm_role
        from .surgery import LNFreeNormalization, calibrate, fake_norms, freeze

        start = time.perf_counter()
        model = copy.deepcopy(pipeline.model)  # the only copy; pipeline.model is never modified
        final = [layer.path for layer in find_norm_layers(model)[0] if norm_role(layer.path) == "final"]
        provider = LNFreeNormalization(layers=final, mode="live")
        provider.tokenizer = pipeline.tokenizer
        model, surgery = provider.replace(model, inplace=True)
        ids = torch.tensor([pipeline.tokenizer.encode(HELD_OUT).ids], device=next(model.parameters()).device)
        print(f"Surgery on one copy of the model: {surgery.changes[0].path} -> FakeNorm (live).", file=out)
        live_loss = evaluate(model, [ids])
        live = direct_logit_attribution(model, ids)
        calibrate(model, provider.calibration_batches(model))
        freeze(model)
        norm = fake_norms(model)[final[0]]
        fake_loss = evaluate(model, [ids])
        fake = direct_logit_attribution(model, ids)
        print(f"  σ̄ from {len(provider.calibration_texts)} calibration sentences: "
              f"{norm.average_std.item():.3f} (position 0: {norm.special_std.item():.3f})", file=out)
        print(f"  held-out loss: live norm {live_loss:.4f}, frozen norm {fake_loss:.4f} "
              f"(Δ {fake_loss - live_loss:+.4f} nats, no fine-tuning)", file=out)
        print(f"  direct logit attribution over {len(fake.components)} residual components:", file=out)
        print("  With the norm live, contributions only add up because σ_t is held at its cached value;",
              file=out)
        print("  each differs from the component's actual direct effect. Frozen, they are equal.", file=out)
        seconds = time.perf_counter() - start
        del model
        report = Report(
            name=self.name,
            metrics={"live_loss": live_loss, "fake_loss": fake_loss, "loss_change": fake_loss - live_loss,
                     "sigma": norm.average_std.item(), "live_sum_error": live.sum_error,
                     "live_ablation_error": live.ablation_error, "fake_sum_error": fake.sum_error,
                     "fake_ablation_error": fake.ablation_error, "seconds": seconds},
            tables=(Table(f"direct logit attribution over {len(fake.components)} residual components",
                          ("final norm", "held-out loss", "|Σ contributions − logits|",
                           "|contribution − direct effect|"),
                          (("live", live_loss, live.sum_error, live.ablation_error),
                           ("frozen σ̄", fake_loss, fake.sum_error, fake.ablation_error))),),
            notes=(f"surgery on one copy of the model ({final[0]}); no fine-tuning",))
        to_terminal(report, out)
        return report
