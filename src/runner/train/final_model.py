"""The trained model as transformers users load it: save_pretrained model and tokenizer.

With adapters (freeze=lora|dora|ia3) they are merged into the base weights first
(freeze.merge=true), or saved in peft's format next to a reference to the base model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from runner.errors import disk_error
from runner.model.adapters import Adapters, remove_adapters, save_adapter

STAGING = ".model-{pid}.tmp"


def save_final_model(cfg: DictConfig, trainer, tokenizer, output_dir: Path,
                     adapters: Adapters | None = None) -> Path | None:
    """save_pretrained model + tokenizer, so transformers.pipeline can load the directory."""
    if not cfg.trainer.save_model:
        return None
    acc = trainer.accelerator
    target = Path(output_dir) / "model"
    staging = Path(output_dir) / STAGING.format(pid=os.getpid())
    acc.wait_for_everyone()
    if acc.is_main_process:
        # A dead process's staging went when the run started (run_file.sweep_leftovers).
        shutil.rmtree(staging, ignore_errors=True)
        try:
            model = acc.unwrap_model(trainer.model)
            if adapters is not None and not adapters.settings["merge"]:
                _save_unmerged(cfg, model, adapters, staging, target)
            else:
                if adapters is not None:  # the end of the run: the model is not trained further
                    remove_adapters(model, merge=True)
                model.save_pretrained(str(staging), safe_serialization=True,
                                      state_dict=acc.get_state_dict(trainer.model))
            tokenizer.save_pretrained(str(staging))
        except BaseException as err:
            shutil.rmtree(staging, ignore_errors=True)  # never leave half a model behind
            found = disk_error(err, f"saving the final model to {target}",
                               "The last checkpoint is intact: free disk space or point "
                               "trainer.output_dir at a writable disk, then run the same "
                               "command with trainer.resume=auto to save it.")
            if found is None:
                raise
            raise found from err
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    acc.wait_for_everyone()
    return target


def _save_unmerged(cfg: DictConfig, model, adapters: Adapters, staging: Path, target: Path
                   ) -> None:
    """peft's adapter files and the task model's config (labels, pooling, class). The base
    is the pretrained checkpoint; a scratch model's random base is saved beside, in base/."""
    trained = [n for n, p in model.named_parameters()
               if p.requires_grad and n not in adapters.rules]
    pretrained = cfg.model.init == "pretrained"
    base = str(cfg.model.checkpoint) if pretrained else str(target / "base")
    staging.mkdir(parents=True)
    save_adapter(model, trained, staging, base)
    model.config.save_pretrained(str(staging))
    if not pretrained:
        remove_adapters(model, merge=False)
        model.save_pretrained(str(staging / "base"), safe_serialization=True)
