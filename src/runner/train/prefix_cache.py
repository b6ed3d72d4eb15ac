"""Frozen-prefix caching: when the frozen parameters are the bottom of the body (the
embeddings plus the bottom k blocks, as under bottom_n, top_n, embeddings or a custom plan
of that shape; or T5's whole encoder under freeze=encoder), compute the hidden states at
the boundary once per example and run only the blocks above it every step.

The task model's own forward still runs: the module that feeds the first block (the
family's `prefix_entry`: BERT's embeddings, GPT-2's embedding dropout, T5's token
embeddings) returns the stored boundary state of the batch's rows, and the k frozen blocks
pass it on unchanged. Everything the trainable blocks need from below is either in that
state (positions and token types are added in the embeddings) or computed by the model
as usual from the batch (the extended attention mask, causal masking); under
freeze=encoder the encoder returns its stored output and the decoder reads the batch's
attention mask. Dropout in the trainable part still applies. Modules and weights stay
untouched, so checkpoints and the saved model are the same as without the cache.

It is exact only with the frozen part in eval mode, which trainer.frozen_eval_mode gives.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from runner.config.families import family_of, head_spec
from runner.config.tasks import TASKS
from runner.model.freeze import FreezePlan, Layout, _under, describe_parameters
from runner.train.body_cache import frozen_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prefix:
    """What is frozen below the boundary; module paths relative to the body."""

    entry: str  # the module whose output is replaced by the stored boundary state
    stack: str  # the block list ("" under freeze=encoder)
    blocks: int  # bottom blocks of the stack that are skipped
    encoder: bool = False  # T5: the entry is the whole encoder

    def describe(self, body: str) -> str:
        if self.encoder:
            return f"the whole encoder ({_join(body, self.entry)})"
        if not self.blocks:
            return "embeddings"
        last = "block 0" if self.blocks == 1 else f"blocks 0-{self.blocks - 1}"
        return f"embeddings + {last} of {_join(body, self.stack)}"


def _join(body: str, path: str) -> str:
    return f"{body}.{path}" if body else path


def _relative(path: str, body: str) -> str:
    return path[len(body) + 1:] if body else path


def _trainable_names(plan: FreezePlan) -> list[str]:
    return [n for d in plan.decisions if d.trainable for n in d.param.names]  # with aliases


def find(cfg: DictConfig, plan: FreezePlan, layout: Layout, body: str) -> Prefix | str:
    """The frozen prefix of this run's plan, or why there is none to cache."""
    family = family_of(cfg)
    if not cfg.trainer.cache_features:
        return "trainer.cache_features=false"
    if not cfg.trainer.frozen_eval_mode:
        return "trainer.frozen_eval_mode=false: dropout in the frozen part changes its outputs"
    if plan.adapters:
        return f"freeze={plan.strategy}: adapters sit inside the blocks"
    trainable = _trainable_names(plan)

    def first_trainable(prefixes: list[str]) -> str | None:
        return next((n for n in trainable if any(_under(n, p) for p in prefixes)), None)

    if layout.encoder and first_trainable(layout.encoder) is None:
        return Prefix(_relative(layout.encoder[0], body), "", 0, encoder=True)
    if len(layout.stacks) != 1:
        return (f"{family.name} x {cfg.head.task} caches only its whole encoder (freeze=encoder);"
                f" under freeze={plan.strategy} it trains, e.g. "
                f"{first_trainable(layout.encoder)}")
    name = first_trainable(layout.embeddings)
    if name is not None:
        return f"the embeddings train under freeze={plan.strategy} (e.g. {name})"
    (stack, blocks), = layout.stacks.items()
    k = next((i for i, block in enumerate(blocks) if first_trainable([block])), len(blocks))
    if family.prefix_max_blocks is not None and k > family.prefix_max_blocks:
        return (f"the {k} frozen bottom blocks of {family.name} cannot be cached exactly: its "
                "stack applies one dropout module below block 0 and above the top block, so "
                "they see dropout noise (only freeze=embeddings or freeze=encoder are cached)")
    return Prefix(family.prefix_entry, _relative(stack, body), k)


def frozen_dropout(cfg: DictConfig, model: torch.nn.Module, plan: FreezePlan, layout: Layout,
                   body: str) -> list[torch.nn.Module]:
    """The family's dropout on the embeddings' output (GPT-2's `drop`) when the embeddings are
    frozen: it belongs to the frozen part, so it runs in eval mode with it, cached or not."""
    if not cfg.trainer.frozen_eval_mode:
        return []
    if any(_under(n, p) for n in _trainable_names(plan) for p in layout.embeddings):
        return []
    return [model.get_submodule(_join(body, m)) for m in family_of(cfg).embedding_dropout]


def layout_of(cfg: DictConfig, model: torch.nn.Module) -> Layout:
    names = (n for p in describe_parameters(model) for n in p.names)
    return Layout.resolve(family_of(cfg), head_spec(cfg), names)


# ------------------------------------------------------------------------------- storage


class Store:
    """The boundary states, one [positions, hidden] row per example and split: in memory, or
    on disk as memory-mapped arrays in a temporary folder removed with the store."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], folder: Path | None):
        self.folder = folder
        if folder is None:
            self.splits = {s: torch.zeros(shape) for s, shape in shapes.items()}
        else:
            self.splits = {s: np.lib.format.open_memmap(folder / f"{s}.npy", mode="w+",
                                                        dtype=np.float32, shape=shape)
                           for s, shape in shapes.items()}
            weakref.finalize(self, shutil.rmtree, folder, True)

    def write(self, split: str, index: torch.Tensor, values: torch.Tensor) -> None:
        target, length = self.splits[split], values.shape[1]  # the batch's padded length
        if self.folder is None:
            target[index, :length] = values
        else:
            target[index.numpy(), :length] = values.numpy()

    def rows(self, split: str, index: torch.Tensor, length: int) -> torch.Tensor:
        """The rows' first `length` positions (the batch's padded length)."""
        if self.folder is None:
            return self.splits[split][index, :length]
        return torch.from_numpy(self.splits[split][index.numpy(), :length])

    @property
    def megabytes(self) -> float:
        return sum(int(np.prod(t.shape)) * 4 for t in self.splits.values()) / 2**20

    @property
    def where(self) -> str:
        return "in memory" if self.folder is None else f"on disk ({self.folder})"


def open_store(shapes: dict[str, tuple[int, ...]], max_mb: int, output_dir: Path
               ) -> Store | str:
    """In memory up to max_mb, else on disk under $RUNNER_CACHE_DIR or the run's output
    directory; the reason when neither fits."""
    size = sum(int(np.prod(s)) * 4 for s in shapes.values()) / 2**20
    if size <= max_mb:
        return Store(shapes, None)
    root = Path(os.environ.get("RUNNER_CACHE_DIR") or output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(root).free / 2**20
    except OSError as err:
        return f"{size:,.0f} MB is more than trainer.cache_max_mb={max_mb}, and {root}: {err}"
    if size > 0.9 * free:
        return (f"{size:,.0f} MB is more than trainer.cache_max_mb={max_mb}, and {root} has "
                f"only {free:,.0f} MB free")
    return Store(shapes, Path(tempfile.mkdtemp(prefix="prefix-cache-", dir=root)))


# ------------------------------------------------------------------------ compute, replay


class _Reached(Exception):
    """Raised by the boundary hook: the rest of the forward is not needed."""

    def __init__(self, value: torch.Tensor):
        self.value = value


def _hidden(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    return output[0] if isinstance(output, tuple) else output.last_hidden_state


@torch.no_grad()
def compute(body: torch.nn.Module, prefix: Prefix, loaders: dict, store: Store,
            pad_token_id: int, accelerator, pad_rows: bool) -> type:
    """Run the frozen part once over every split, in eval mode, stopping at the boundary;
    returns the type of the boundary module's output (the encoder's, under freeze=encoder).

    Padded positions only reach the output at padded positions (the attention mask hides
    them as keys), so unless the loss reads those (pad_rows), each batch is padded to its
    own longest row only and the positions beyond it stay zero: far less to compute."""
    body.eval()
    runner = body.get_submodule(prefix.entry) if prefix.encoder else body
    boundary = (body.get_submodule(prefix.entry) if prefix.encoder or not prefix.blocks
                else body.get_submodule(prefix.stack)[prefix.blocks - 1])

    output_type = type(None)

    def reached(module, args, output):
        nonlocal output_type
        output_type = type(output)
        raise _Reached(_hidden(output))

    hook = boundary.register_forward_hook(reached)
    try:
        for split, index, inputs in frozen_inputs(loaders, pad_token_id, accelerator.device,
                                                  pad_rows):
            try:
                with accelerator.autocast():
                    runner(**inputs)
            except _Reached as got:
                store.write(split, index, got.value.float().cpu())
            else:
                raise RuntimeError(f"the forward never reached {prefix.entry}")
    finally:
        hook.remove()
    return output_type


def _pass_on(hidden_states, *args, **kwargs):
    """A skipped frozen block: its input is already the stored boundary state."""
    return hidden_states


class PrefixReplay:
    """Stands in for the frozen prefix: the entry returns the selected rows' boundary
    states, cut to the batch's length; the frozen blocks pass them on."""

    def __init__(self, prefix: Prefix, store: Store, device: torch.device,
                 output_type: type | None = None):
        self.prefix, self.store, self.device = prefix, store, device
        self.output_type = output_type
        self.split, self.rows = "train", None

    def select(self, split: str, rows: torch.Tensor) -> None:
        self.split, self.rows = split, rows.cpu()

    def entry(self, *args, **kwargs):
        # The entry's ids, else its first tensor argument: [batch, length] ids or mask, or
        # [batch, length, hidden] states (GPT-2's dropout).
        first = kwargs.get("input_ids")
        if not isinstance(first, torch.Tensor):
            first = next(a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        values = self.store.rows(self.split, self.rows, first.shape[1]).to(self.device)
        if values.shape[0] != first.shape[0]:
            raise RuntimeError(f"prefix cache: {values.shape[0]} rows selected for a batch of "
                               f"{first.shape[0]}")
        return self.output_type(last_hidden_state=values) if self.prefix.encoder else values

    def stand_ins(self, body: torch.nn.Module) -> list[tuple[torch.nn.Module, Callable]]:
        pairs = [(body.get_submodule(self.prefix.entry), self.entry)]
        if self.prefix.blocks:
            stack = body.get_submodule(self.prefix.stack)
            pairs += [(stack[i], _pass_on) for i in range(self.prefix.blocks)]
        return pairs


def prepare(cfg: DictConfig, plan: FreezePlan, model: torch.nn.Module, body_name: str,
            loaders: dict, accelerator, output_dir: Path, pad_token_id: int
            ) -> PrefixReplay | None:
    """Cache the frozen prefix when there is one and it can be stored; else log why not."""
    prefix = find(cfg, plan, layout_of(cfg, model), body_name)
    shapes = {split: (rows, longest, model.config.hidden_size)
              for split, (_, rows, longest) in loaders.items()}
    store = (open_store(shapes, cfg.trainer.cache_max_mb, output_dir)
             if isinstance(prefix, Prefix) else prefix)
    if isinstance(store, str):
        log.info("frozen prefix not cached: %s", store)
        return None
    body = model.get_submodule(body_name) if body_name else model
    start = time.perf_counter()
    model.to(accelerator.device)
    output_type = compute(body, prefix, loaders, store, pad_token_id, accelerator,
                          pad_rows=TASKS[cfg.head.task].reads_padding)
    log.info("frozen prefix cached: %s, %d rows, %.1f MB %s, computed in %.1f s",
             prefix.describe(body_name), sum(s[0] for s in shapes.values()), store.megabytes,
             store.where, time.perf_counter() - start)
    return PrefixReplay(prefix, store, accelerator.device, output_type)
