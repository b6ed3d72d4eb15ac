"""The final model as an MLflow model (under the run's Logged models) and in the registry.

Heads with a transformers pipeline (seqcls, tokencls, causal_lm) are logged with the
`mlflow.transformers` flavour: they load with mlflow.transformers.load_model (a pipeline)
and mlflow.pyfunc.load_model. transformers 5 has no question-answering or text2text
pipeline, so qa and seq2seq models are logged as pyfunc models
(runner/track/pyfunc_heads.py, logged as code) holding the same saved directory.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.track import tags as names
from runner.track.store import reading

log = logging.getLogger(__name__)

PIPELINES = {"seqcls": "text-classification", "tokencls": "token-classification",
             "causal_lm": "text-generation"}
ARTIFACT = "model"  # the logged model's name
CARD = "---\nlibrary_name: transformers\n---\n{}\n"  # the model card: the run's plan


def requirements() -> list[str]:
    """Pinned to what trained it (pip's inference would import every optional package)."""
    from importlib.metadata import version

    return [f"{p}=={version(p).split('+')[0]}"
            for p in ("transformers", "torch", "tokenizers", "safetensors")]


@contextmanager
def _fluent(uri: str, experiment_id: str) -> Iterator[None]:
    """MLflow's log_model works through the fluent API: point it at the run's store and
    experiment for a while (the logged model belongs to the run's experiment)."""
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_EXPERIMENT_ID",
                                                   "MLFLOW_EXPERIMENT_NAME")}
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    try:
        with reading(uri):
            yield
    finally:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def log_model(client, uri: str, run_id: str, model_dir: Path, head: str,
              description: str, null_score_diff_threshold: float | None = None) -> str:
    """Log the saved model directory as an MLflow model of the run; returns its model id.
    A SQuAD v2 qa run passes its no-answer threshold, which its pyfunc model decides by."""
    import mlflow

    directory = str(Path(model_dir).resolve())  # absolute: not taken for a hub id
    experiment = client.get_run(run_id).info.experiment_id
    with _fluent(uri, experiment):
        if head in PIPELINES:
            import transformers
            from huggingface_hub import ModelCard

            pipe = transformers.pipeline(PIPELINES[head], model=directory)
            info = mlflow.transformers.log_model(
                pipe, name=ARTIFACT, task=PIPELINES[head], run_id=run_id,
                pip_requirements=requirements(), model_card=ModelCard(CARD.format(description)))
        else:
            with warnings.catch_warnings():  # "add type hints": it takes frames and lists
                warnings.simplefilter("ignore", UserWarning)
                # Model.log: mlflow.pyfunc.log_model has no run_id (it needs a fluent run)
                info = mlflow.models.Model.log(
                    artifact_path=None, name=ARTIFACT, flavor=mlflow.pyfunc,
                    python_model=str(Path(__file__).with_name("pyfunc_heads.py")),
                    model_config={"head": head,
                                  "null_score_diff_threshold": null_score_diff_threshold},
                    artifacts={"model": directory},
                    run_id=run_id, pip_requirements=requirements())
    return info.model_id


def logged_model_id(client, run_id: str) -> str | None:
    """The model a run logged last (its Logged models entry), if any."""
    outputs = client.get_run(run_id).outputs
    models = outputs.model_outputs if outputs else []
    return models[-1].model_id if models else None


def register(uri: str, name: str, model_id: str, alias: str | None = None):
    """A new version of registered model `name` from a logged model; with `alias` (e.g.
    champion) pointing at it."""
    import mlflow

    with reading(uri):
        version = mlflow.register_model(f"models:/{model_id}", name)
        if alias:
            mlflow.MlflowClient(uri).set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s%s", name, version.version,
             f" (alias {alias})" if alias else "")
    return version


def register_champion(uri: str, name: str, run_id: str) -> None:
    """A sweep's best child (for one objective) becomes `name`@champion. A failure only
    warns: the sweep's runs and models are all recorded already."""
    from runner.track.store import client_for

    try:
        model_id = logged_model_id(client_for(uri), run_id)
        if model_id is None:
            log.warning("the best run %s logged no model: nothing registered as %s", run_id,
                        name)
            return
        register(uri, name, model_id, alias=names.CHAMPION)
    except Exception as err:  # noqa: BLE001
        log.warning("could not register the best model as %s: %s: %s", name,
                    type(err).__name__, err)
