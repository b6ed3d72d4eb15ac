"""The trained model as transformers users load it: save_pretrained model and tokenizer."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from runner.errors import disk_error
from runner.files import pid_alive

log = logging.getLogger(__name__)

STAGING = ".model-{pid}.tmp"


def sweep_stale_staging(output_dir: Path) -> None:
    """Remove staging folders a dead process left (killed, or a disk full mid-save)."""
    for stale in Path(output_dir).glob(STAGING.format(pid="*")):
        pid = stale.name[len(".model-"):-len(".tmp")]
        if pid.isdigit() and not pid_alive(int(pid)):
            log.info("removing %s, left by an interrupted save", stale)
            shutil.rmtree(stale, ignore_errors=True)


def save_final_model(cfg: DictConfig, trainer, tokenizer, output_dir: Path) -> Path | None:
    """save_pretrained model + tokenizer, so transformers.pipeline can load the directory."""
    if not cfg.trainer.save_model:
        return None
    acc = trainer.accelerator
    target = Path(output_dir) / "model"
    staging = Path(output_dir) / STAGING.format(pid=os.getpid())
    acc.wait_for_everyone()
    if acc.is_main_process:
        sweep_stale_staging(output_dir)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            model = acc.unwrap_model(trainer.model)
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
