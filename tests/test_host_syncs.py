"""The hot loop reads nothing from the device: the NaN check, the loss bookkeeping and
nan_policy=skip stay on the device between sync points (log steps, evaluation, checkpoints,
the end), and a skipped step leaves the weights and the optimizer state as they were."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import compose, fast
from runner.run import run
from runner.train.tally import DeviceTally

RUNNER = str(Path(__file__).resolve().parents[1] / "src" / "runner")
TORCH = str(Path(torch.__file__).parent)


class HostReads(TorchDispatchMode):
    """Counts the device-to-host scalar reads (.item(), float(t), bool(t)) that runner's own
    code makes: the aten op behind them, attributed to the nearest caller outside torch."""

    def __init__(self):
        super().__init__()
        self.sites: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            frame = sys._getframe(1)
            while frame is not None and (frame.f_code.co_filename.startswith(TORCH)
                                         or frame.f_code.co_filename == __file__):
                frame = frame.f_back
            if frame is not None and frame.f_code.co_filename.startswith(RUNNER):
                self.sites.append(f"{frame.f_code.co_filename}:{frame.f_lineno}")
        return func(*args, **(kwargs or {}))


def reads_in_a_run(tmp_path: Path, name: str, *extra: str) -> list[str]:
    cfg = compose([*fast("seqcls", "bert", "freeze=none", "trainer.log_every=100",
                         "trainer.eval_strategy=no", "logger=none", *extra),
                   f"trainer.output_dir={tmp_path / name}"])
    with HostReads() as reads:
        run(cfg)
    return reads.sites


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_runner_reads_no_device_value_per_step(tmp_path, policy):
    # 48 rows / 8 = 6 batches an epoch: 2 and 5 steps both end inside epoch 1
    short = reads_in_a_run(tmp_path, "short", "trainer.max_steps=2", f"trainer.nan_policy={policy}")
    long = reads_in_a_run(tmp_path, "long", "trainer.max_steps=5", f"trainer.nan_policy={policy}")
    assert len(short) == len(long), sorted(set(long) - set(short))
    assert not [site for site in long if "/train/" in site], long


def test_nan_policy_stop_names_the_first_bad_step_at_the_next_sync(tmp_path):
    from runner.train.loop import TrainingError

    def failing(name: str, log_every: int) -> str:
        with pytest.raises(TrainingError) as err:
            run(compose([*fast("seqcls", "bert", "freeze=none", "trainer.lr=1e30",
                               "trainer.max_grad_norm=0", f"trainer.log_every={log_every}",
                               "logger=none"), f"trainer.output_dir={tmp_path / name}"]))
        return str(err.value).split(";")[0]

    every_step = failing("every", 1)
    assert "at step" in every_step
    assert failing("rarely", 100) == every_step  # read later, the same first step
    assert not list((tmp_path / "rarely").glob("checkpoints/step-*"))  # none saved after it


def test_a_skipped_step_leaves_weights_and_optimizer_state_untouched():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=True)
    tally = DeviceTally(torch.device("cpu"))

    def step(scale: float) -> None:
        loss = layer(torch.ones(1, 4)).sum() * scale
        tally.add(loss, 1, 1)
        loss.backward()
        if tally.guard(opt):
            opt.step()
        opt.zero_grad()

    step(1.0)
    before = ({k: v.clone() for k, v in layer.state_dict().items()},
              {k: v.clone() for k, v in opt.state[layer.weight].items()})
    step(float("nan"))
    after = (layer.state_dict(), opt.state[layer.weight])
    for saved, now in zip(before, after, strict=True):
        for key in saved:
            assert torch.equal(saved[key], now[key]), key
    step(1.0)
    assert not torch.equal(before[0]["weight"], layer.weight)  # the next good step updates
    got = tally.sync()
    assert (got.skipped_steps, got.finite_batches, got.first_bad[0]) == (1, 2, 1)


def test_an_optimizer_without_found_inf_is_told_to_skip_by_the_host():
    layer = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    tally = DeviceTally(torch.device("cpu"))
    tally.add(torch.tensor(float("inf")), 1, 1)
    assert tally.guard(opt) is False
    tally.add(torch.tensor(1.0), 2, 1)
    assert tally.guard(opt) is True
