"""The trained model as transformers users load it: save_pretrained model and tokenizer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig


def save_final_model(cfg: DictConfig, trainer, tokenizer, output_dir: Path) -> Path | None:
    """save_pretrained model + tokenizer, so transformers.pipeline can load the directory."""
    if not cfg.trainer.save_model:
        return None
    acc = trainer.accelerator
    target = Path(output_dir) / "model"
    staging = Path(output_dir) / f".model-{os.getpid()}.tmp"
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        model = acc.unwrap_model(trainer.model)
        model.save_pretrained(str(staging), safe_serialization=True,
                              state_dict=acc.get_state_dict(trainer.model))
        tokenizer.save_pretrained(str(staging))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    acc.wait_for_everyone()
    return target
