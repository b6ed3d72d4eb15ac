"""`python -m runner.inspect <overrides>`: the declared model and its freezing plan, untrained.

Takes the same overrides as `python -m runner`; builds the model (a scratch model loads no
weights and needs no network) and prints its class, key config values, module tree with
per-module parameter counts, and the trainable split. `inspect.output=json` prints one JSON
document instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from runner import console
from runner.cli import refuse_unlisted_targets, report_errors, respell


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m runner.inspect",
        description="Show the declared model and its trainable/frozen split without training. "
        "Takes the same overrides as `python -m runner`.",
        epilog="example: python -m runner.inspect model=bert model.init=scratch head=seqcls "
        "head.num_labels=3 freeze=head_only inspect.output=json",
    )
    parser.add_argument("overrides", nargs="*",
                        help="Hydra overrides, e.g. model=gpt2 freeze=bitfit")
    args = parser.parse_args(argv)
    console.setup()
    refuse_unlisted_targets(args.overrides)
    with report_errors():
        from runner.config.compose import compose
        from runner.model.report import inspect_model

        cfg = compose(respell(args.overrides))
        doc = inspect_model(cfg)
    rows = doc.pop("_rows")
    if cfg.inspect.output == "json":
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        from runner.model.report import format_table

        print(format_table(doc, rows))


if __name__ == "__main__":
    main()
