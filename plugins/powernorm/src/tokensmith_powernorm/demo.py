"""`tokensmith demo` section: PowerNorm surgery on SmolLM2's structure, and the tiny-model
LayerNorm/BatchNorm/PowerNorm experiment (Shen et al., 2020, arXiv 2003.07845) if its
results are present.

Swapping a pretrained model's norms for batch-statistic norms is not meaningful without
long retraining, so the surgery runs on a weightless copy of the pipeline model's
architecture (built on PyTorch's ``meta`` device from its config): the report is the
one a real surgery would produce, and ``pipeline.model`` is never touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from tokensmith import Demo, find_norm_layers

from .surgery import PowerNormProvider

RESULTS = Path("bench") / "results" / "powernorm.json"


class PowerNormDemo(Demo):
    name = "powernorm"

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        model = pipeline.model
        with torch.device("meta"):
            skeleton = type(model)(model.config)
        _, report = PowerNormProvider().replace(skeleton)
        kinds = sorted({c.before for c in report.changes})
        kept = len(find_norm_layers(model)[0])
        print(f"PowerNorm surgery on {type(model).__name__}'s structure (meta device, no weights):", file=out)
        print(f"  {len(report)} norm layers replaced ({', '.join(kinds)} -> PowerNorm), e.g.", file=out)
        for change in report.changes[:2] + report.changes[-1:]:
            print(f"    {change.path}: {change.before} -> {change.after} ({change.detail})", file=out)
        print(f"  the pipeline's own model still has its {kept} original norm layers", file=out)
        results: dict[str, Any] = {"replaced_layers": len(report), "original_norm_layers_kept": kept}
        path = Path(os.environ.get("TOKENSMITH_POWERNORM_RESULTS", RESULTS))
        if path.exists():
            bench = json.loads(path.read_text())
            setup = bench["setup"]
            print(f"\nTiny GPT-2 trained from scratch ({setup['steps']} steps, seeds {setup['seeds']}; "
                  f"from {path}):", file=out)
            for norm, value in bench["mean_final_valid_bits_per_byte"].items():
                ratio = bench["valid_ratio_to_layernorm"][norm]
                print(f"  {norm:<10} validation {value:.3f} bits/byte  ({ratio:.3f} x LayerNorm)", file=out)
            results["valid_bits_per_byte"] = bench["mean_final_valid_bits_per_byte"]
        else:
            print(f"\n(no experiment results at {path}: run `python bench/run.py --only powernorm`)",
                  file=out)
        return results
