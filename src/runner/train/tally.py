"""What the hot loop learns about each micro-batch, kept on the device until a sync point.

Reading a loss on the host (`float(loss)`, `bool(torch.isfinite(loss))`) waits for the
device to finish everything queued, every micro-batch, and leaves a GPU idle while Python
catches up. So the loss sum, the NaN check and the skip count stay device tensors, updated
with device ops only, and the loop reads them in one copy at its sync points: log steps,
evaluations, checkpoints and the end.

trainer.nan_policy=stop: the first non-finite loss since the last sync is recorded on the
device (which micro-batch, and its value); the next sync raises naming its step.
trainer.nan_policy=skip: an optimizer step whose window held a non-finite loss is dropped
on the device: fused AdamW's `found_inf` (the flag AMP's GradScaler uses) leaves the
weights, moments and step count as they were. Optimizers without it cost one sync per
optimizer step instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Synced:
    """The device state read at one sync point (since the previous one)."""

    loss_sum: float  # finite micro-batch losses
    finite_batches: int
    skipped_steps: int  # optimizer steps dropped (nan_policy=skip)
    first_bad: tuple[int, int, float] | None  # (step, epoch, loss) of the first non-finite


class DeviceTally:
    def __init__(self, device: torch.device, reduce_max=None):
        def zero(dtype=torch.float32) -> torch.Tensor:
            return torch.zeros((), dtype=dtype, device=device)

        self.reduce_max = reduce_max  # several processes: every rank takes the same decision
        self.loss_sum, self.finite, self.skipped = zero(), zero(), zero()
        self.batches = zero()  # micro-batches since the last sync
        self.first_bad, self.first_bad_loss = zero() - 1, zero()
        self.window_bad = zero()  # 1.0: a non-finite loss in this accumulation window
        self.positions: list[tuple[int, int]] = []  # (step, epoch) of each micro-batch

    def add(self, loss: torch.Tensor, step: int, epoch: int) -> None:
        """Count one micro-batch's loss (no host sync)."""
        loss = loss.detach().float()
        bad = (~torch.isfinite(loss)).float()
        if self.reduce_max is not None:
            bad = self.reduce_max(bad)
        first = (bad > 0) & (self.first_bad < 0)
        self.first_bad = torch.where(first, self.batches, self.first_bad)
        self.first_bad_loss = torch.where(first, loss, self.first_bad_loss)
        self.loss_sum += torch.where(bad > 0, 0.0, loss)
        self.finite += 1 - bad
        self.batches += 1
        self.window_bad = torch.maximum(self.window_bad, bad)
        self.positions.append((step, epoch))

    def guard(self, optimizer) -> bool:
        """Before an optimizer step under nan_policy=skip: make a window with a non-finite
        loss a no-op. False: this optimizer cannot skip on the device, and the window was
        bad (read with a host sync); the caller then drops the step itself."""
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        self.skipped += self.window_bad
        bad, self.window_bad = self.window_bad, torch.zeros_like(self.window_bad)
        if getattr(inner, "_step_supports_amp_scaling", False):
            inner.found_inf = bad  # read by the fused kernel; fp16's GradScaler sets its own
            return True
        return not bool(bad)

    def pending(self) -> bool:
        return bool(self.positions)

    def sync(self) -> Synced:
        """Read and reset, in one device-to-host copy."""
        loss_sum, finite, skipped, first, first_loss = torch.stack([
            self.loss_sum, self.finite, self.skipped, self.first_bad, self.first_bad_loss,
        ]).tolist()
        bad = None
        if first >= 0:
            step, epoch = self.positions[int(first)]
            bad = (step, epoch, first_loss)
        for value in (self.loss_sum, self.finite, self.skipped, self.batches):
            value.zero_()
        self.first_bad.fill_(-1)
        self.positions.clear()
        return Synced(loss_sum, int(finite), int(skipped), bad)
