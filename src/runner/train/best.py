"""trainer.load_best: the weights of the best evaluation by the objective, kept on disk.

Only the parameters the optimizer holds change during training, so only they are kept
(a head_only run keeps a few kilobytes); under freeze=gradual that is every tensor some
stage trains, so a best found in an early stage comes back whole. They live in
<output_dir>/best/, written atomically, so a resumed run still knows the best weights its
first attempt found.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from runner.files import atomic_write, write_json

log = logging.getLogger(__name__)

WEIGHTS = "trainable.safetensors"
INFO = "best.json"  # {"step": ..., "metrics": {...}}


class BestWeights:
    def __init__(self, output_dir: Path, accelerator):
        self.root = Path(output_dir) / "best"
        self.accelerator = accelerator

    def keep(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
             metrics: dict[str, float]) -> None:
        """Record the weights the optimizer trains as the best so far (main process writes)."""
        acc = self.accelerator
        if acc.is_main_process:
            unwrapped = acc.unwrap_model(model)
            held = {id(p) for group in optimizer.param_groups for p in group["params"]}
            tensors = {name: p.detach().to("cpu", copy=True).contiguous()
                       for name, p in unwrapped.named_parameters() if id(p) in held}
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write(self.root / WEIGHTS, save(tensors))
            write_json(self.root / INFO, {"step": step, "metrics": metrics})
        acc.wait_for_everyone()

    def clear(self) -> None:
        if self.accelerator.is_main_process:
            shutil.rmtree(self.root, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def info(self) -> dict | None:
        path = self.root / INFO
        return json.loads(path.read_text()) if path.is_file() else None

    def restore(self, model: torch.nn.Module) -> dict | None:
        """Load the best weights into the model; its record, or None when there is none."""
        info = self.info()
        if info is None or not (self.root / WEIGHTS).is_file():
            return None
        unwrapped = self.accelerator.unwrap_model(model)
        saved = load_file(str(self.root / WEIGHTS))
        params = dict(unwrapped.named_parameters())
        with torch.no_grad():
            for name, value in saved.items():
                params[name].copy_(value.to(params[name].device))
        log.info("trainer.load_best: restored the weights of step %d (%s)", info["step"],
                 "  ".join(f"{k}={v:.4g}" for k, v in info["metrics"].items()))
        return info

