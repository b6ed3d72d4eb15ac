"""Freezing as data: a strategy maps the model's parameters to a plan; the plan is checked,
shown, logged, and only then applied (with requires_grad_, in one place).

Tied weights (GPT-2 / T5 / BERT-LM heads share their matrix with the input embeddings) are
one tensor with several names: each tensor appears once in the plan, with its aliases, and
is counted once everywhere. A rule that matches any of its names decides for the tensor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from runner.config.families import Family, HeadSpec
from runner.errors import FreezeError


@dataclass(frozen=True)
class Param:
    name: str  # canonical name (the one named_parameters() yields)
    aliases: tuple[str, ...]  # other names of the same tensor (tied weights)
    numel: int
    module_class: str  # class of the module that owns it

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Decision:
    param: Param
    trainable: bool
    rule: str  # why: which rule of the strategy decided


@dataclass
class FreezePlan:
    strategy: str
    decisions: list[Decision]
    notes: list[str] = field(default_factory=list)
    adapters: dict | None = None  # adapter settings (freeze=lora|dora|ia3), else None

    @property
    def total(self) -> int:
        return sum(d.param.numel for d in self.decisions)

    @property
    def trainable(self) -> int:
        return sum(d.param.numel for d in self.decisions if d.trainable)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    @property
    def trainable_names(self) -> list[str]:
        return [d.param.name for d in self.decisions if d.trainable]

    def is_trainable(self, name: str) -> bool:
        return self._by_name[name].trainable

    @cached_property
    def _by_name(self) -> dict[str, Decision]:
        return {n: d for d in self.decisions for n in d.param.names}

    def module_counts(self, depth: int) -> dict[str, tuple[int, int]]:
        """(total, trainable) per module path, for every module down to `depth` levels.

        A tied tensor counts once, in the module of its canonical name.
        """
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for d in self.decisions:
            parts = d.param.name.split(".")[:-1]
            for level in range(0, min(depth, len(parts)) + 1):
                row = counts[".".join(parts[:level])]
                row[0] += d.param.numel
                row[1] += d.param.numel if d.trainable else 0
        return {name: (t, tr) for name, (t, tr) in counts.items()}


def describe_parameters(model) -> list[Param]:
    """Every distinct parameter tensor of a torch module, with all of its names."""
    owner_class = {name: type(mod).__name__ for name, mod in model.named_modules()}
    by_tensor: dict[int, list[str]] = defaultdict(list)
    tensors = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        by_tensor[id(tensor)].append(name)
        tensors[id(tensor)] = tensor
    params = []
    for key, names in by_tensor.items():
        module = names[0].rpartition(".")[0]
        params.append(Param(names[0], tuple(names[1:]), tensors[key].numel(),
                            owner_class.get(module, "")))
    return params


# ----------------------------------------------------------------------------- the layout


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


@dataclass
class Layout:
    """The family table resolved against one model's parameter names."""

    head: list[str]
    embeddings: list[str]
    stacks: dict[str, list[str]]  # stack path -> block prefixes, bottom to top
    above_blocks: list[str]
    encoder: list[str]
    norm_classes: tuple[str, ...]

    @classmethod
    def resolve(cls, family: Family, spec: HeadSpec, names: Iterable[str]) -> Layout:
        names = list(names)
        body = f"{spec.body}." if spec.body else ""

        def present(path: str) -> bool:
            return any(_under(n, path) for n in names)

        head = list(spec.head_modules)
        embeddings = [body + p for p in family.embeddings]
        stacks: dict[str, list[str]] = {}
        for stack in spec.blocks or family.blocks:
            prefix = body + stack
            pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
            indices = sorted({int(m.group(1)) for n in names if (m := pattern.match(n))})
            stacks[prefix] = [f"{prefix}.{i}" for i in indices]
        missing = [p for p in head + embeddings if not present(p)]
        missing += [p for p, blocks in stacks.items() if not blocks]
        if missing:
            raise FreezeError(
                f"the family table for {family.name} names modules this model does not have: "
                f"{', '.join(missing)} (runner's table in families.py is out of date for this "
                "transformers version; please report it)"
            )
        return cls(
            head=head,
            embeddings=embeddings,
            stacks=stacks,
            above_blocks=[body + p for p in family.above_blocks if present(body + p)],
            encoder=[body + p for p in family.encoder],
            norm_classes=family.norm_classes,
        )

    def in_any(self, param: Param, prefixes: Iterable[str]) -> str | None:
        """The first prefix any of the tensor's names sits under."""
        for prefix in prefixes:
            if any(_under(n, prefix) for n in param.names):
                return prefix
        return None

    @property
    def blocks_per_stack(self) -> int:
        return min(len(b) for b in self.stacks.values())


# ---------------------------------------------------------------------------- strategies

Rule = tuple[bool, str]
Strategy = Callable[[Param, Layout, "FreezeSettings"], Rule]


@dataclass(frozen=True)
class FreezeSettings:
    strategy: str
    n: int | None = None
    trainable: tuple[str, ...] = ()
    frozen: tuple[str, ...] = ()
    adapters: Mapping[str, str] = field(default_factory=dict)  # adapter tensor -> its rule


def _none(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    return True, "none: everything trains"


def _head_only(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.head):
        return True, "head"
    return False, "not head"


def _embeddings(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.embeddings):
        return False, "embeddings"
    return True, "above the embeddings"


def _block_position(p: Param, layout: Layout) -> tuple[str, int, int] | None:
    """(stack, index, number of blocks) of the block holding p, if any."""
    for stack, blocks in layout.stacks.items():
        block = layout.in_any(p, blocks)
        if block is not None:
            return stack, blocks.index(block), len(blocks)
    return None


def _bottom_n(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.embeddings):
        return False, "embeddings"
    pos = _block_position(p, layout)
    if pos and pos[1] < s.n:
        return False, f"{pos[0]}.{pos[1]}: one of the bottom {s.n} blocks"
    return True, "above the bottom blocks"


def _top_n(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.head):
        return True, "head"
    pos = _block_position(p, layout)
    if pos and pos[1] >= pos[2] - s.n:
        return True, f"{pos[0]}.{pos[1]}: one of the top {s.n} blocks"
    if layout.in_any(p, layout.above_blocks):
        return True, "above the top block"
    return False, f"below the top {s.n} blocks"


def _bitfit(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.head):
        return True, "head"
    if any(n.rpartition(".")[2] == "bias" for n in p.names):
        return True, "bias"
    return False, "not a bias"


def _layernorm(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    if layout.in_any(p, layout.head):
        return True, "head"
    if p.module_class in layout.norm_classes:
        return True, f"normalization ({p.module_class})"
    return False, "not a normalization layer"


def _encoder(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    prefix = layout.in_any(p, layout.encoder)
    if prefix:
        shared = "" if _under(p.name, prefix) else f" (shared with {p.name})"
        return False, f"encoder{shared}"
    return True, "not encoder"


def _custom(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    for pattern in s.frozen:
        if any(re.search(pattern, n) for n in p.names):
            return False, f"custom frozen /{pattern}/"
    for pattern in s.trainable:
        if any(re.search(pattern, n) for n in p.names):
            return True, f"custom trainable /{pattern}/"
    if s.trainable:
        return False, "custom: not matched by a trainable pattern"
    return True, "custom: not matched by a frozen pattern"


def _adapters(p: Param, layout: Layout, s: FreezeSettings) -> Rule:
    """The adapters and the head train, and what freeze.trainable adds; the rest is frozen.
    A head tied to the input embeddings (an LM head) stays frozen with the base."""
    for pattern in s.frozen:
        if any(re.search(pattern, n) for n in p.names):
            return False, f"custom frozen /{pattern}/"
    if p.name in s.adapters:
        return True, s.adapters[p.name]
    if layout.in_any(p, layout.head):
        if all(any(_under(n, h) for h in layout.head) for n in p.names):
            return True, "head"
        if not s.trainable:
            return False, "head tied to the input embeddings: frozen with the base"
    for pattern in s.trainable:
        if any(re.search(pattern, n) for n in p.names):
            return True, f"custom trainable /{pattern}/"
    return False, f"base weight: frozen under freeze={s.strategy}"


STRATEGIES: dict[str, Strategy] = {
    "none": _none,
    "head_only": _head_only,
    "embeddings": _embeddings,
    "bottom_n": _bottom_n,
    "top_n": _top_n,
    "bitfit": _bitfit,
    "layernorm": _layernorm,
    "encoder": _encoder,
    "custom": _custom,
    "lora": _adapters,
    "dora": _adapters,
    "ia3": _adapters,
}


# ------------------------------------------------------------------------------ planning


def make_plan(params: list[Param], layout: Layout, settings: FreezeSettings) -> FreezePlan:
    """Decide every tensor, then check the result. Pure: touches no model."""
    # validate() bounds freeze.n when the config gives the block count (a local config.json
    # or the family default); a hub checkpoint's own count, and callers that plan without
    # a validated config, meet it only here.
    if settings.strategy in ("bottom_n", "top_n") and settings.n > layout.blocks_per_stack:
        counts = ", ".join(f"{stack}: {len(b)}" for stack, b in layout.stacks.items())
        raise FreezeError(
            f"freeze.n={settings.n} is more than the model has blocks ({counts}). "
            f"Set freeze.n between 0 and {layout.blocks_per_stack}."
        )
    strategy = STRATEGIES[settings.strategy]
    decisions = [Decision(p, *strategy(p, layout, settings)) for p in params]
    plan = FreezePlan(settings.strategy, decisions, notes=_tied_notes(decisions, layout))
    _check(plan, params, layout, settings)
    return plan


def _tied_notes(decisions: list[Decision], layout: Layout) -> list[str]:
    notes = []
    for d in decisions:
        if d.param.aliases:
            state = "trainable" if d.trainable else "frozen"
            notes.append(
                f"{d.param.name} is tied to {', '.join(d.param.aliases)} (one tensor, counted "
                f"once): {state}, decided by rule '{d.rule}'"
            )
    return notes


def _check(plan: FreezePlan, params: list[Param], layout: Layout, s: FreezeSettings) -> None:
    examples = _example_names(params)
    for key, patterns in (("freeze.trainable", s.trainable), ("freeze.frozen", s.frozen)):
        for pattern in patterns:
            if not any(re.search(pattern, n) for p in params for n in p.names):
                raise FreezeError(
                    f"{key}: the pattern {pattern!r} matches no parameter. Parameter names "
                    f"look like: {examples}. List them all with `python -m runner.inspect "
                    "freeze=none inspect.output=json` (trainable_parameter_names)."
                )
    if plan.trainable == 0:
        raise FreezeError(
            f"freeze={s.strategy} leaves nothing to train ({plan.total:,} parameters, all "
            "frozen). Choose a strategy that keeps something trainable (e.g. freeze=head_only), "
            "or widen freeze.trainable."
        )
    if s.strategy == "head_only":
        head = [d for d in plan.decisions if layout.in_any(d.param, layout.head)]
        if not head or not all(d.trainable for d in head):
            raise FreezeError(
                f"freeze=head_only left the head ({', '.join(layout.head)}) frozen or empty; "
                "use freeze=custom with freeze.trainable to choose what trains."
            )


def _example_names(params: list[Param], k: int = 8) -> str:
    names = [p.name for p in params]
    picks = names[: k // 2] + names[-(k // 2):] if len(names) > k else names
    return ", ".join(picks)


def settings_from_config(freeze_cfg, adapters=None) -> FreezeSettings:
    return FreezeSettings(
        strategy=freeze_cfg.strategy,
        n=freeze_cfg.n,
        trainable=tuple(freeze_cfg.trainable),
        frozen=tuple(freeze_cfg.frozen),
        adapters=adapters.rules if adapters is not None else {},
    )


def plan_for_model(model, family: Family, spec: HeadSpec, freeze_cfg, adapters=None
                   ) -> FreezePlan:
    """The plan for `model`; `adapters` (runner.model.adapters.Adapters) when the strategy
    added some (they are then already in the model)."""
    params = describe_parameters(model)
    layout = Layout.resolve(family, spec, (n for p in params for n in p.names))
    plan = make_plan(params, layout, settings_from_config(freeze_cfg, adapters))
    if adapters is not None:
        plan.adapters = adapters.summary()
    return plan


def apply_plan(model, plan: FreezePlan) -> None:
    """The one place requires_grad is set. Checks the model agrees with the plan after."""
    for name, tensor in model.named_parameters():
        tensor.requires_grad_(plan.is_trainable(name))
    trainable = sum(t.numel() for t in model.parameters() if t.requires_grad)
    if trainable != plan.trainable:
        raise FreezeError(f"applying the plan gave {trainable:,} trainable parameters, the plan "
                          f"says {plan.trainable:,}")
