"""Plant known bugs in a copy of runner and check that the tests catch each one.

    python scripts/mutants.py            # every mutant (several minutes on 2 cores)
    python scripts/mutants.py cache-key  # the named ones

For each mutant: copy src/ and conf/ into a temporary folder, make one textual change
(the planted bug), run only the tests that guard that promise with PYTHONPATH pointing at
the copy, and call the mutant caught when they fail. First the same tests run on an
unchanged copy, which must pass (else a "catch" would mean nothing). Prints one line per
mutant and the score; exits 1 if a mutant survived. Not part of CI: it is slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # under src/runner/
    old: str  # must occur exactly once
    new: str
    tests: tuple[str, str]  # a test file and a pytest -k expression, run from the repository


INPUTS = "tests/reliability/test_inputs.py"
PROMISES = "tests/test_promises.py"

MUTANTS = [
    Mutant("cache-key", "data/cache.py", 'PREPROCESSING_KEYS = ("data.max_length", "head.task")',
           'PREPROCESSING_KEYS = ("head.task",)',
           (PROMISES, "features_cache_keeps_apart")),
    Mutant("decay-on-biases", "train/setup.py",
           'if name.endswith("bias") or id(p) in norm_params:', "if False:",
           (PROMISES, "no_weight_decay")),
    Mutant("keep-checkpoints", "train/checkpoints.py", "self.complete()[:-self.keep]",
           "self.complete()[:-2]",
           (PROMISES, "keep_checkpoints_keeps")),
    Mutant("default-lr", "config/defaults.py", 'DEFAULT_LR = {"head_only": 1e-2,',
           'DEFAULT_LR = {"head_only": 1e-3,', (PROMISES, "default_learning_rate")),
    Mutant("bottom-n-as-1", "model/freeze.py", "if pos and pos[1] < s.n:",
           "if pos and pos[1] < min(s.n, 1):", (PROMISES, "freeze_n_above_one")),
    Mutant("top-n-as-1", "model/freeze.py", "if pos and pos[1] >= pos[2] - s.n:",
           "if pos and pos[1] >= pos[2] - min(s.n, 1):",
           (PROMISES, "freeze_n_above_one")),
    Mutant("exit-1-for-bad-input", "errors.py", "    exit_code = 2\n", "    exit_code = 1\n",
           ("tests/reliability/test_bad_input.py",
            "test_bad_input_fails_clearly and (unsupported or dividing)")),
    Mutant("composition-exit-1", "__main__.py", "sys.exit(2)", "sys.exit(1)",
           (INPUTS, "composition_errors")),
    Mutant("answer-span-unchecked", "data/checks.py",
           "if context[start:start + len(text)] != text:", "if False:",
           (INPUTS, "answer_spans")),
    Mutant("unigram-hash-order", "data/tokenizer.py",
           "    tok = _fixed_unigram_order(tok, len(specials))\n", "",
           (INPUTS, "tokenizer_trained_twice")),
    Mutant("unseen-label-accepted", "data/labels.py",
           'if split != "train" and r["label"] not in train_ids:', "if False:",
           (INPUTS, "never_seen")),
    Mutant("label-out-of-range", "data/labels.py", 'if not 0 <= r["label"] < n:',
           'if not 0 <= r["label"]:', ("tests/test_data.py", "out_of_range")),
    Mutant("mixed-labels", "data/labels.py", "        _refuse_mixed_labels(splits, where)\n",
           "", (INPUTS, "mixed")),
    Mutant("negative-seed", "config/validate.py", '"keep_checkpoints", "seed"):',
           '"keep_checkpoints"):', (INPUTS, "negative_seed")),
    Mutant("no-answer-inverted", "tasks/qa_windows.py",
           "if null - best.score > null_score_diff_threshold:",
           "if null - best.score < null_score_diff_threshold:",
           (INPUTS, "no_answer_wins")),
    Mutant("germeval-positions-as-tokens", "data/conll.py",
           "return (1, 2) if positions else (0, width - 1)", "return (0, width - 1)",
           (INPUTS, "germeval")),
]


def copy_of_runner(where: Path) -> Path:
    shutil.copytree(REPO / "src", where / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", where / "conf")  # follows conf/experiment -> experiments
    return where / "src"


def plant(src: Path, mutant: Mutant) -> None:
    path = src / "runner" / mutant.file
    text = path.read_text()
    if text.count(mutant.old) != 1:
        raise SystemExit(f"{mutant.name}: {mutant.old!r} occurs {text.count(mutant.old)} "
                         f"times in {mutant.file}; update the mutant")
    path.write_text(text.replace(mutant.old, mutant.new))


def run_tests(src: Path, files: list[str], selection: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                           *files, "-k", selection], cwd=REPO, env=env, capture_output=True,
                          text=True)
    return done.returncode, done.stdout[-3000:] + done.stderr[-2000:]


def main(names: list[str]) -> int:
    chosen = [m for m in MUTANTS if not names or m.name in names]
    with tempfile.TemporaryDirectory(prefix="runner-mutants-") as tmp:
        clean = copy_of_runner(Path(tmp) / "clean")
        # Every mutant's tests at once, on the unchanged copy: they must pass.
        files = sorted({m.tests[0] for m in chosen})
        code, output = run_tests(clean, files, " or ".join(f"({m.tests[1]})" for m in chosen))
        if code != 0:
            print(f"baseline: the tests fail without any mutant; fix that first\n{output}")
            return 2
        print("baseline: every mutant's tests pass on the unchanged code", flush=True)
        caught = 0
        for mutant in chosen:
            started = time.monotonic()
            src = copy_of_runner(Path(tmp) / mutant.name)
            plant(src, mutant)
            code, output = run_tests(src, [mutant.tests[0]], mutant.tests[1])
            # pytest exits 1 when tests failed; anything else (collection errors) is no catch
            verdict = {0: "SURVIVED", 1: "caught"}.get(code, f"ERROR (pytest exit {code})")
            caught += code == 1
            if code not in (0, 1):
                print(output)
            print(f"{mutant.name:30} {verdict:10} {time.monotonic() - started:5.0f} s  "
                  f"{mutant.file}", flush=True)
    print(f"score: {caught}/{len(chosen)} mutants caught")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
