"""Layer-wise (discriminative) learning rates as named groups of parameters.

With trainer.layer_lr_decay the top block trains at trainer.lr and each block below at
`decay` times the rate of the one above; the embeddings sit one step below the bottom
block. What sits above the blocks (BERT's pooler, a final norm) is `top`, at trainer.lr;
the task head is `head`, at trainer.head_lr (or trainer.lr). A tensor the head shares with
the embeddings (tied LM heads) is the head's, as under freeze=head_only.

Names: `head`, `top`, `block.<i>` (0 = bottom), `embeddings`, `other` (anything the family
table does not place). An encoder-decoder (T5) has one ladder per stack, named
`encoder.block.<i>` and `decoder.block.<i>`: block i of each stack gets the same rate, as
both stacks are as deep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.model.freeze import Layout, Param


@dataclass
class LrGroup:
    name: str
    lr: float
    names: list[str] = field(default_factory=list)  # canonical parameter names
    numel: int = 0


def is_layerwise(head_lr: float | None, decay: float | None) -> bool:
    return head_lr is not None or decay not in (None, 1.0)


def lr_groups(params: list[Param], layout: Layout, trainable: set[str], lr: float,
              head_lr: float | None, decay: float | None) -> list[LrGroup]:
    """The groups of the trainable tensors, highest rate first."""
    decay = 1.0 if decay is None else decay
    depth = max(len(blocks) for blocks in layout.stacks.values())
    several = len(layout.stacks) > 1
    groups: dict[str, tuple[float, LrGroup]] = {}
    for p in params:
        if p.name not in trainable:
            continue
        rank, name, rate = _place(p, layout, several, depth, lr, head_lr, decay)
        group = groups.setdefault(name, (rank, LrGroup(name, rate)))[1]
        group.names.append(p.name)
        group.numel += p.numel
    return [g for _, g in sorted(groups.values(), key=lambda rg: (rg[0], rg[1].name))]


def _place(p: Param, layout: Layout, several: bool, depth: int, lr: float,
           head_lr: float | None, decay: float) -> tuple[int, str, float]:
    """(order, group name, rate) of one tensor."""
    if layout.in_any(p, layout.head):
        return 0, "head", head_lr if head_lr is not None else lr
    if layout.in_any(p, layout.above_blocks):
        return 1, "top", lr
    for stack, blocks in layout.stacks.items():
        block = layout.in_any(p, blocks)
        if block is not None:
            i = blocks.index(block)
            below_top = len(blocks) - 1 - i
            stack_name = ".".join(stack.split(".")[-2:]) if several else "block"
            return 2 + below_top, f"{stack_name}.{i}", lr * decay ** below_top
    if layout.in_any(p, layout.embeddings):
        return 2 + depth, "embeddings", lr * decay ** depth
    return 3 + depth, "other", lr


def groups_for(cfg, model, trainable: set[str]) -> list[LrGroup] | None:
    """The run's groups over `trainable` (canonical names); None when one rate fits all."""
    from runner.config.defaults import DEFAULT_LR, FINE_TUNE_LR
    from runner.config.families import family_of, head_spec
    from runner.model.freeze import describe_parameters

    t = cfg.trainer
    if not is_layerwise(t.head_lr, t.layer_lr_decay):
        return None
    lr = t.lr if t.lr is not None else DEFAULT_LR.get(cfg.freeze.strategy, FINE_TUNE_LR)
    params = describe_parameters(model)
    layout = Layout.resolve(family_of(cfg), head_spec(cfg), (n for p in params for n in p.names))
    return lr_groups(params, layout, trainable, lr, t.head_lr, t.layer_lr_decay)
