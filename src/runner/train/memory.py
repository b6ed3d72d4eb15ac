"""Fitting training into memory: gradient checkpointing, and the largest batch that fits.

`trainer.gradient_checkpointing=true` recomputes each transformer block's activations in
the backward pass instead of keeping them (non-reentrant checkpointing, which is correct
with frozen parameters and frozen inputs as they are; no input-gradient hooks needed).

`trainer.auto_batch_size=true` runs a forward and backward pass on the longest rows, at
trainer.batch_size and then at halved sizes on a real out-of-memory error, until one fits;
gradient accumulation keeps the rows per optimizer step (batch_size x grad_accum).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterable

import torch

from runner.errors import ConfigError, Problem, RunnerError

log = logging.getLogger(__name__)

# What the allocators say when memory runs out (CUDA raises torch.OutOfMemoryError; the CPU
# allocator, cuBLAS and MPS raise a plain RuntimeError).
OOM_MESSAGES = ("out of memory", "can't allocate memory", "cannot allocate memory")


class OutOfMemory(RunnerError):
    """Even a batch of one row does not fit."""


def enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    """Checkpoint every block of `model` (non-reentrant); ConfigError if it cannot."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError([Problem(
            "trainer.gradient_checkpointing",
            f"true, but transformers' {type(model).__name__} does not support gradient "
            "checkpointing", "set trainer.gradient_checkpointing=false")])
    model.activation_checkpointing_enable({"use_reentrant": False})
    # transformers also hooks the input embeddings to output tensors that require grad,
    # the old workaround for reentrant checkpointing. Non-reentrant checkpointing needs
    # none, and with frozen embeddings the hook would make backward run (and keep
    # activations) through every frozen block below the first trainable one.
    model.disable_input_require_grads()
    log.info("gradient checkpointing: on (non-reentrant) for %s", type(model).__name__)


def frozen_modules_to_eval(model: torch.nn.Module, also: Iterable[torch.nn.Module] = ()
                           ) -> None:
    """Put every module whose parameters are all frozen in eval mode (no dropout).

    Parameter-free modules (a dropout right before a trainable head) follow their parent,
    so the head still trains with its dropout; `also` names those that belong to the frozen
    part instead (GPT-2's dropout on its frozen embeddings).
    """
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
    for module in also:
        module.eval()


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err) for m in OOM_MESSAGES)


def free_memory(params: list[torch.nn.Parameter]) -> None:
    for p in params:
        p.grad = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def candidates(start: int, per_step: int) -> list[int]:
    """Batch sizes to try: start, then about half each time, each dividing per_step so the
    accumulation keeps exactly per_step rows per optimizer step."""
    divisors = [d for d in range(1, per_step + 1) if per_step % d == 0]
    sizes = [max(d for d in divisors if d <= start)]
    while sizes[-1] > 1:
        sizes.append(max(d for d in divisors if d <= sizes[-1] // 2))
    return sizes


def fits(run_batch: Callable[[int], None], size: int,
         trainable: list[torch.nn.Parameter]) -> bool:
    """Whether a training step at `size` rows fits: the optimizer state AdamW will hold
    (two buffers per trainable parameter) plus a forward and backward pass."""
    reserved: list[torch.Tensor] = []
    try:
        reserved = [torch.zeros_like(p) for p in trainable for _ in range(2)]
        run_batch(size)
        ok = True
    except Exception as err:  # noqa: BLE001 (anything but an out-of-memory error re-raises)
        if not is_out_of_memory(err):
            raise
        ok = False  # leaving the except clause frees the traceback and the step's tensors
    reserved.clear()
    free_memory(trainable)
    return ok


def largest_batch(run_batch: Callable[[int], None], start: int, per_step: int,
                  trainable: list[torch.nn.Parameter], longest: int) -> int:
    """The largest candidate size whose training step fits (see `candidates`)."""
    tried = []
    for size in candidates(start, per_step):
        if fits(run_batch, size, trainable):
            if tried:
                log.info("trainer.auto_batch_size: out of memory at %s rows", ", ".join(tried))
            return size
        tried.append(str(size))
    raise OutOfMemory(
        f"trainer.auto_batch_size: even one row of {longest} tokens runs out of memory in a "
        "training step. Lower data.max_length, set trainer.gradient_checkpointing=true, freeze "
        "more (freeze=top_n), or use trainer.mixed_precision=bf16.")
