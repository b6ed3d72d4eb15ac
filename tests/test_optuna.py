"""runner's Optuna sweeper (hydra/sweeper=optuna, Optuna 4): studies that resume from their
storage, launches sharing one journal file, pruning from the training loop, several
objectives with their Pareto front in `runner.compare`, and settings refused up front.
Real processes, real studies on disk, tiny models trained for a few steps."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_tracking import FAST, ok, override, workdir

from conftest import mlflow_runs

# A few optimizer steps with an evaluation every second step: each trial reports twice.
STEPS = override(FAST, "trainer.max_steps=4", "trainer.eval_strategy=steps",
                 "trainer.eval_steps=2")
SEARCH = [*STEPS, "hydra/sweeper=optuna", "hydra.sweeper.direction=maximize",
          "trainer.lr=tag(log,interval(1e-4,1e-1))"]


def study(storage: str, name: str):
    import optuna

    from runner.train.trial import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def parents_and_children(db):
    client, runs = mlflow_runs(db)
    parents = [r for r in runs if r.data.tags.get("runner.sweep_parent") == "true"]
    children = {p.info.run_id: [r for r in runs
                                if r.data.tags.get("mlflow.parentRunId") == p.info.run_id]
                for p in parents}
    return client, parents, children


@pytest.mark.slow
def test_running_the_same_command_again_resumes_the_study(tmp_path_factory):
    work = workdir(tmp_path_factory, "resume")
    # the preset (TPE, median pruner); three blocks, so every freeze.n in its space fits
    args = ["-m", "experiment=optuna_search", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.storage=sqlite:///optuna.db", "hydra.sweeper.study_name=s",
            *override(STEPS, "+model.config_overrides.num_hidden_layers=3")]
    first = ok(work.run(*args))
    assert "best" in first.stdout
    ok(work.run(*args))  # the same command: the study goes on
    trials = study(f"sqlite:///{work.path / 'optuna.db'}", "s").trials
    assert [t.number for t in trials] == list(range(6))
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all(list(t.intermediate_values)[:1] == [2] for t in trials)
    assert all(sorted(t.intermediate_values) == [2, 4] for t in trials
               if t.state.name == "COMPLETE")
    # the second launch did not start the sampler over (the same seed would repeat trials)
    first_lrs, second_lrs = ({t.params["trainer.lr"] for t in trials[i:i + 3]} for i in (0, 3))
    assert not first_lrs & second_lrs
    client, parents, children = parents_and_children(work.db)
    assert len(parents) == 2 and all(len(c) == 3 for c in children.values())
    numbers = sorted(int(r.data.tags["runner.trial"]) for c in children.values() for r in c)
    assert numbers == list(range(6))
    assert {p.data.tags["runner.study"] for p in parents} == {"s"}
    assert all({"runner.swept.trainer.lr", "runner.swept.freeze.n"} <= r.data.tags.keys()
               for c in children.values() for r in c)
    (older,) = [p for p in parents if int(children[p.info.run_id][0].data.tags["runner.trial"]) < 3]
    objectives = [r.data.metrics["objective"] for r in children[older.info.run_id]]
    assert older.data.metrics["sweep/jobs"] == 3
    assert older.data.metrics["best/objective"] == max(objectives)
    best = client.get_run(older.data.tags["runner.best_child_run_id"])
    assert best.data.metrics["objective"] == max(objectives)
    assert len(list((work.path / "outputs" / "sweeps").glob("*/optimization_results.yaml"))) == 2


@pytest.mark.slow
def test_two_launches_on_one_journal_file_share_the_study_budget(tmp_path_factory):
    work = workdir(tmp_path_factory, "journal")
    journal = work.path / "shared" / "study.log"
    journal.parent.mkdir()
    args = ["-m", *SEARCH, "logger=none", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.max_trials=4", f"hydra.sweeper.storage={journal}",
            "hydra.sweeper.study_name=shared"]
    launches = [subprocess.Popen([sys.executable, "-m", "runner", *args,
                                  f"hydra.sweep.dir=sweeps/{i}"], cwd=work.path,
                                 env=work.env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [p.communicate(timeout=600)[1] for p in launches]
    assert [p.returncode for p in launches] == [0, 0], [e[-3000:] for e in errors]
    trials = study(str(journal), "shared").trials
    assert [t.number for t in trials] == [0, 1, 2, 3]  # the budget, no trial twice
    assert all(t.state.name == "COMPLETE" for t in trials)
    jobs = [json.loads(p.read_text()) for p in work.path.glob("sweeps/*/jobs/*.json")]
    assert sorted(j["trial"] for j in jobs) == [0, 1, 2, 3]  # each trial ran once
    assert all(j["status"] == "FINISHED" for j in jobs)


@pytest.mark.slow
def test_a_trial_with_an_absurd_learning_rate_is_pruned_at_its_first_evaluation(
        tmp_path_factory):
    work = workdir(tmp_path_factory, "prune")
    done = ok(work.run(
        "-m", *override(SEARCH, "freeze=none", "trainer.objective=eval/loss",
                        "hydra.sweeper.direction=minimize",
                        "trainer.lr=tag(log,interval(1e-4,1e4))"),
        "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=median",
        "hydra.sweeper.pruner_options={n_startup_trials:1}",
        "hydra.sweeper.enqueue=[{trainer.lr:0.001},{trainer.lr:1000.0}]",
        "hydra.sweeper.storage=journal://study.log", "hydra.sweeper.study_name=p"))
    assert "2 jobs, 0 failed, 1 pruned" in done.stdout
    good, absurd = study(f"journal://{work.path / 'study.log'}", "p").trials
    assert good.state.name == "COMPLETE" and absurd.state.name == "PRUNED"
    assert list(absurd.intermediate_values) == [2]  # stopped at its first evaluation
    client, parents, children = parents_and_children(work.db)
    (parent,) = parents
    assert parent.data.metrics["sweep/pruned"] == 1 and parent.data.metrics["sweep/failed"] == 0
    pruned = client.get_run(absurd.user_attrs["mlflow_run_id"])
    assert pruned.info.status == "KILLED"
    assert pruned.data.tags["runner.pruned"] == "true"
    assert pruned.data.tags["runner.pruned_step"] == "2"
    output = absurd.user_attrs["output_dir"]
    assert [p.name for p in (work.path / output / "checkpoints").iterdir()] == ["step-00000002"]


@pytest.mark.slow
def test_a_study_over_two_objectives_shows_its_pareto_front_in_compare(tmp_path_factory):
    work = workdir(tmp_path_factory, "pareto")
    ok(work.run("-m", *override(SEARCH, "freeze=top_n", "freeze.n=choice(0,1,2)",
                                "trainer.lr=0.01"),
                "hydra.sweeper.direction=[maximize,minimize]",
                "hydra.sweeper.objectives=[eval/accuracy,params/trainable]",
                "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler=grid"))
    client, parents, children = parents_and_children(work.db)
    (runs,) = children.values()
    marks = {r.info.run_id: r.data.tags.get("runner.pareto") for r in runs}
    assert len(marks) == 3 and set(marks.values()) <= {"true", "false"}
    assert "true" in marks.values()
    from runner.track.compare import compare, parser

    where = ["--tracking-uri", f"sqlite:///{work.db}", "--output", str(work.path / "c.png")]
    shown, _ = compare(parser().parse_args([*where, "--format", "json"]))
    front = {r["run_id"] for r in json.loads(shown)["runs"] if r["pareto"]}
    assert front == {k for k, v in marks.items() if v == "true"}
    table, _ = compare(parser().parse_args(where))
    assert f"Pareto front ({len(front)} runs)" in table


@pytest.mark.parametrize(("setting", "message"), [
    ("hydra.sweeper.sampler=annealing", "unknown sampler 'annealing'"),
    ("hydra.sweeper.pruner=sometimes", "unknown pruner 'sometimes'"),
    ("hydra.sweeper.storage=mysql+nodriver//x", "is neither a database URL nor a journal"),
    ("hydra.sweeper.storage=nosuchdb://host/x", "is no database URL"),
    ("hydra.sweeper.storage=sqlite:////nonexistent-dir/optuna.db", "cannot write"),
    ("hydra.sweeper.direction=[maximize,minimize]", "2 directions but 0 objectives"),
])
def test_bad_sweeper_settings_are_refused_before_any_trial(tmp_path_factory, setting, message):
    work = workdir(tmp_path_factory, "bad")
    done = work.run("-m", *SEARCH, setting)
    assert done.returncode == 2, done.stderr[-3000:]
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not work.db.exists()  # no parent run was opened
