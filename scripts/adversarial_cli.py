"""An adversarial pass over the command line: bad input of every kind, as a user types it.

    python scripts/adversarial_cli.py           # every case (minutes: most load torch)
    python scripts/adversarial_cli.py "answer"  # the cases whose name contains a word

Every case is a real command (runner, runner.inspect, runner.compare) in a scratch folder,
on bad config values, files and data of each format. A case is kept when the command exits
with 2, prints an `error:` line (or Hydra's composition message) and no Python traceback.
Prints one line per case and the count kept; exits 1 if a case broke a promise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = ["model=bert", "model.init=scratch", "+model.config_overrides.hidden_size=32",
        "+model.config_overrides.num_hidden_layers=1",
        "+model.config_overrides.num_attention_heads=2",
        "+model.config_overrides.intermediate_size=37", "tokenizer.vocab_size=200",
        "logger=none", "trainer.max_epochs=1"]


def files(d: Path) -> dict[str, str]:
    def put(name: str, text: str | bytes) -> str:
        path = d / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    (d / "folder").mkdir()
    (d / "list-ckpt").mkdir()
    put("list-ckpt/config.json", "[1]")
    good = "text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(12))
    context = "Ada Lovelace wrote the first program."
    squad = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "1", "question": "Who?", "answers": [{"text": "Ada", "answer_start": 9}]}]}]}]}
    return {
        "good": put("good.csv", good), "folder": str(d / "folder"),
        "xyz": put("data.xyz", good), "json_as_csv": put("rows.csv", '{"text": "a"}\n'),
        "empty": put("empty.csv", ""), "header_only": put("header.csv", "text,label\n"),
        "binary": put("binary.csv", bytes(range(256)) * 4),
        "null_label": put("null.jsonl",
                          '{"text": "a", "label": 0}\n{"text": "b", "label": null}\n'),
        "mixed": put("mixed.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": "yes"}\n'),
        "one_class": put("one.csv", "text,label\na,x\nb,x\n"),
        "one_row": put("row.csv", "text,label\na,0\n"),
        "bad_span": put("squad.json", json.dumps(squad)),
        "bad_conll": put("bad.conll", "EU B-ORG\nrejects\n"),
        "no_target": put("tr.jsonl", '{"translation": {"en": "Hi"}}\n'),
        "float_tokens": put("tok.jsonl", '{"tokens": [1, 2], "ner_tags": ["O", "O"]}\n'),
        "a_file": put("a_file", "x"), "list_ckpt": str(d / "list-ckpt"),
    }


def cases(f: dict[str, str]) -> list[tuple[str, list[str]]]:
    run, local = ["runner"], ["data=local"]

    def data(name: str, *extra: str) -> list[str]:
        return [*run, *TINY, *local, f"data.train_file={f[name]}", *extra]

    return [
        *[(f"unknown {g}", [*run, f"{g}=nope"]) for g in
          ("model", "head", "freeze", "data", "trainer", "logger", "experiment")],
        ("misspelled key", [*run, "trainer.learnig_rate=1"]),
        ("string for a float", [*run, "trainer.lr=fast"]),
        ("negative lr", [*run, "trainer.lr=-1"]),
        ("negative seed", [*run, "trainer.seed=-1"]),
        ("zero batch", [*run, "trainer.batch_size=0"]),
        ("zero epochs, no steps", [*run, "trainer.max_epochs=0"]),
        ("warmup over 1", [*run, "trainer.warmup_ratio=1.5"]),
        ("unknown schedule", [*run, "trainer.schedule=wavy"]),
        ("unknown precision", [*run, "trainer.mixed_precision=fp8"]),
        ("objective of another head", [*run, "trainer.objective=eval/bleu"]),
        ("zero labels", [*run, "head.num_labels=0"]),
        ("one label, classification", [*run, "head.num_labels=1"]),
        ("unknown pooling", [*run, "head.pooling=weird"]),
        ("pooler on roberta", [*run, "model=roberta", "head.pooling=pooler"]),
        ("freeze.n too large", [*run, "freeze=bottom_n", "freeze.n=99"]),
        ("bad regex", [*run, "freeze=custom", "freeze.trainable=[(]"]),
        ("local without a file", [*run, *local]),
        ("validation fraction 2", [*run, "data.validation_fraction=2"]),
        ("max_length over positions", [*run, "data.max_length=100000"]),
        ("unknown data.format", [*run, "data.format=xml"]),
        ("negative hidden size", [*run, *TINY, "model.config_overrides.hidden_size=-1"]),
        ("missing checkpoint dir", [*run, "model.checkpoint=/no/such/dir"]),
        ("config.json is a list", [*run, f"model.checkpoint={f['list_ckpt']}"]),
        ("output_dir under a file", [*run, f"trainer.output_dir={f['a_file']}/run"]),
        ("resume from nowhere", [*run, *TINY, "trainer.resume=/no/such/run"]),
        ("missing data file", data("good", "data.train_file=/no/such.csv")),
        ("directory as data file", data("folder")),
        ("unknown extension", data("xyz")),
        ("JSON named .csv", data("json_as_csv")),
        ("empty csv", data("empty")),
        ("header only", data("header_only")),
        ("binary csv", data("binary")),
        ("null label", data("null_label")),
        ("mixed labels", data("mixed")),
        ("one class", data("one_class")),
        ("answer span off", data("bad_span", "head=qa",
                                 f"data.validation_file={f['bad_span']}")),
        ("CoNLL line without tag", data("bad_conll", "head=tokencls")),
        ("translation without target", data("no_target", "head=seq2seq", "model=t5",
                                            "+model.config_overrides.d_model=32")),
        ("numbers as tokens", data("float_tokens", "head=tokencls",
                                   f"data.validation_file={f['float_tokens']}")),
        ("one row, no validation file", data("one_row")),
        ("inspect: unknown model", ["runner.inspect", "model=nope"]),
        ("inspect: unknown output", ["runner.inspect", "inspect.output=xml"]),
        ("inspect: depth 0", ["runner.inspect", "inspect.depth=0"]),
        ("compare: unknown run", ["runner.compare", "--runs", "nope"]),
        ("compare: unknown sweep", ["runner.compare", "--sweep", "nope"]),
        ("compare: unknown format", ["runner.compare", "--format", "xml"]),
    ]


def main(words: list[str]) -> int:
    kept = 0
    with tempfile.TemporaryDirectory(prefix="runner-adversarial-") as tmp:
        work = Path(tmp)
        all_cases = [c for c in cases(files(work)) if not words or any(w in c[0] for w in words)]
        for name, (module, *args) in all_cases:
            done = subprocess.run([sys.executable, "-m", module, *args], cwd=work,
                                  capture_output=True, text=True, timeout=300)
            said = done.stderr.strip()
            ok = (done.returncode == 2 and "Traceback" not in done.stderr and bool(said))
            kept += ok
            last = said.splitlines()[-1][:110] if said else "(nothing on stderr)"
            print(f"{'kept ' if ok else 'BROKE'} {done.returncode:3} {name:28} {last}",
                  flush=True)
    print(f"{kept} of {len(all_cases)} cases kept every promise")
    return 0 if kept == len(all_cases) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
