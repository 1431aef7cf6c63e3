"""`tokensmith demo` section: PowerNorm surgery on SmolLM2's structure, and the tiny-model
LayerNorm/BatchNorm/PowerNorm experiment (Shen et al., 2020, arXiv 2003.07845) if its
results are present.

Swapping a pretrained model's norms for batch-statistic norms is not meaningful without
long retraining, so the surgery runs on a weightless copy of the pipeline model's
architecture (built on PyTorch's ``meta`` device from its config): the report is the
one a real surgery would produce, and ``pipeline.model`` is never touched.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tokensmith import Demo, Report, Table, TokensmithError, find_norm_layers, to_terminal

from .surgery import PowerNormProvider

RESULTS = Path("bench") / "results" / "powernorm.json"


class PowerNormDemo(Demo):
    name = "powernorm"

    def run(self, pipeline: Any, out: Any) -> Report:
        model = pipeline.model
        with torch.device("meta"):
            skeleton = type(model)(model.config)
        _, surgery = PowerNormProvider().replace(skeleton)
        kinds = sorted({c.before for c in surgery.changes})
        kept = len(find_norm_layers(model)[0])
        print(f"PowerNorm surgery on {type(model).__name__}'s structure (meta device, no weights):", file=out)
        print(f"  {len(surgery)} norm layers replaced ({', '.join(kinds)} -> PowerNorm); "
              f"the pipeline's own model still has its {kept} original norm layers", file=out)
        changes = surgery.changes[:2] + surgery.changes[-1:]
        tables = [Table("replaced norm layers (first two, last)", ("path", "before", "after", "detail"),
                        tuple((c.path, c.before, c.after, c.detail) for c in changes))]
        metrics: dict[str, Any] = {"replaced_layers": len(surgery), "original_norm_layers_kept": kept}
        notes = []
        path = Path(os.environ.get("TOKENSMITH_POWERNORM_RESULTS", RESULTS))
        experiment = _experiment(path)
        if experiment is None:
            notes.append(f"no experiment results at {path}: run `tokensmith bench powernorm`")
        elif isinstance(experiment, str):
            notes.append(experiment)
        else:
            setup, bits, ratios = experiment
            print(f"\nTiny GPT-2 trained from scratch ({setup}; from {path}):", file=out)
            tables.append(Table("validation bits/byte, tiny GPT-2 from scratch", ("norm", "bits/byte",
                                                                                 "x LayerNorm"),
                                tuple((norm, value, ratios[norm]) for norm, value in bits.items())))
            metrics.update({f"valid_bits_per_byte[{norm}]": value for norm, value in bits.items()})
        report = Report(name=self.name, metrics=metrics, tables=tuple(tables), notes=tuple(notes))
        to_terminal(report, out)
        return report


def _experiment(path: Path) -> tuple[str, dict, dict] | str | None:
    """(the setup in words, mean final validation bits/byte per norm, ratio to LayerNorm) from
    the bench's JSON; a reason (str) when the file cannot be read that way; None when absent."""
    if not path.exists():
        return None
    try:
        report = Report.from_json(path.read_text())  # the benchmark's Report (tokensmith bench powernorm)
        metrics, extra = report.metrics, report.provenance.extra
        setup = f"{metrics['steps']} steps, seeds {extra['seeds']}"
        prefix = "valid_bits_per_byte["
        norms = [key[len(prefix):-1] for key in metrics if key.startswith(prefix)]
        if not norms:
            raise KeyError("valid_bits_per_byte[<norm>]")
        return (setup, {norm: float(metrics[f"valid_bits_per_byte[{norm}]"]) for norm in norms},
                {norm: float(metrics[f"valid_ratio_to_layernorm[{norm}]"]) for norm in norms})
    except (OSError, ValueError, KeyError, TypeError, TokensmithError) as exc:
        return f"experiment results at {path} not shown: {type(exc).__name__}: {exc}"
