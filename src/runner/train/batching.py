"""Which rows go into which batch.

Training: shuffle with a per-epoch seed, then (by default) sort by length inside large
chunks so each batch holds rows of similar length and dynamic padding wastes little;
the batches themselves are then shuffled, with the longest first so memory problems show
at once. Evaluation: batches in length order. Both are pure functions of (lengths, seed,
epoch), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

CHUNK_BATCHES = 50  # a sorting chunk holds this many batches


class TrainBatches:
    """A batch sampler: yields lists of row indices; call use_epoch before each epoch.

    (Deliberately not named set_epoch: accelerate calls set_epoch with its own iteration
    counter, which restarts at 0 in a resumed process and would replay epoch 0's order.)
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int,
                 group_by_length: bool = True):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        size = self.batch_size
        if not self.group_by_length:
            return [order[i:i + size] for i in range(0, len(order), size)]
        chunk = size * CHUNK_BATCHES
        batches = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda i: -self.lengths[i])
            batches += [part[i:i + size] for i in range(0, len(part), size)]
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b][0]])
        first = batches.pop(longest)
        rng.shuffle(batches)
        # A short batch goes last: accelerate shards batches across processes assuming
        # every batch but the last is full.
        batches.sort(key=lambda b: len(b) < size)
        return [first, *batches]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)


class EvalBatches:
    """Evaluation batches in length order: the least padding, the same order every time.
    (A batch sampler with batch_size, so accelerate can shard it evenly across processes
    and drop the padding duplicates when gathering.)"""

    drop_last = False

    def __init__(self, lengths: Sequence[int], batch_size: int):
        self.batch_size = batch_size
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        self.batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def eval_batches(lengths: Sequence[int], batch_size: int) -> EvalBatches:
    return EvalBatches(lengths, batch_size)
