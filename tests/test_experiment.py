"The papermill notebooks and the run folder they write."
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from chatbert.config import config_names, load_config
from chatbert.evaluation.metrics import eval_indices
from chatbert.experiments.experiment import history_csv, load_chat

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_every_named_config_resolves_and_names_a_variant():
    from chatbert.config import VARIANT_NAMES
    from chatbert.experiments.experiment import VARIANTS
    assert set(VARIANTS) == set(VARIANT_NAMES)          # one list of variants; the experiment maps each to its class
    for name in config_names():
        assert load_config(name).model.variant in VARIANTS, name


def test_notebooks_have_exactly_one_parameters_cell():
    for nb in ("train.ipynb", "evaluate.ipynb", "ablations.ipynb", "analyze_imr.ipynb"):
        cells = nbformat.read(REPO / "nbs" / nb, as_version=4).cells
        assert sum("parameters" in c.metadata.get("tags", []) for c in cells) == 1, nb


def test_eval_indices_are_fixed_and_spread():
    a = eval_indices(1000, 50)
    assert a == eval_indices(1000, 50) and len(set(a)) == 50 and max(a) > 500


def test_history_csv_keeps_every_logged_key():
    text = history_csv([{"step": 1, "loss": 2.0}, {"step": 2, "eval_loss": 1.5}])
    assert text.splitlines()[0] == "step,eval_loss,loss" and len(text.splitlines()) == 3


@pytest.mark.parametrize("variant", ["ed", "imr"])
def test_train_notebook_with_smoke_writes_a_complete_run_folder(tmp_path, monkeypatch, variant):
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))   # checkpoints too stay out of the repository
    out_nb, run = tmp_path / "train.ipynb", tmp_path / "run"
    res = subprocess.run([str(BIN / "papermill"), str(REPO / "nbs" / "train.ipynb"), str(out_nb), "-p", "config", "smoke",
                          "-p", "overrides", f"model.variant={variant}", "-p", "out_dir", str(run), "--cwd", str(REPO / "nbs")],
                         capture_output=True, text=True, timeout=900, env=os.environ.copy())
    assert res.returncode == 0, res.stderr[-3000:]
    assert {p.name for p in run.iterdir()} >= {"metrics.json", "samples.jsonl", "config.yaml", "env.json", "history.csv"}
    metrics = json.loads((run / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert all(math.isfinite(v) for v in numbers.values()) and metrics["variant"] == variant
    assert {"bleu4", "rouge1", "bertscore_f1", "distinct2"} <= set(numbers)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == metrics["n"] and {"context", "reference", "reply"} <= set(samples[0])
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["variant"] == variant
    params = nbformat.read(out_nb, as_version=4).metadata["papermill"]["parameters"]
    assert params["config"] == "smoke" and params["overrides"] == f"model.variant={variant}"
    env = json.loads((run / "env.json").read_text())
    assert env["git"]["commit"] is None or len(env["git"]["commit"]) == 40
    assert {"wall_seconds", "train_seconds", "loadavg_start", "loadavg_end", "torch_threads"} <= set(env)
    assert metrics["examples_seen"] == 5 * 8 and Path(env["model_dir"]).name == "final"
    assert "step 5/5 | validation loss" in out_nb.read_text()           # the progress lines, kept by the notebook
    chat = load_chat(run)  # the run folder leads back to its model
    assert len(chat.generate([["hello there", "hi! how are you?"]], max_new_tokens=5)) == 1


def test_evaluate_chat_keeps_a_variants_own_statistics_and_scores_the_fixed_contexts():
    from datasets import Dataset, DatasetDict
    from chatbert.experiments.experiment import evaluate_chat

    class Echo:   # replies with the last turn; reports its own statistics like FIB's coverage
        def generate(self, histories, **decoding):
            self.last_stats = {"coverage": 0.25}
            return [h[-1] for h in histories]

    test = Dataset.from_dict({"context": [["hi", f"this is turn number {i} of the test"] for i in range(30)],
                              "reply": [f"this is turn number {i} of the test" for i in range(30)],
                              "conv_id": [str(i) for i in range(30)]})
    cfg = load_config("smoke", ["train.max_eval_examples=10", "eval.distinct_sample=10"])
    metrics, samples = evaluate_chat(Echo(), cfg, DatasetDict(test=test))
    assert metrics["coverage"] == 0.25 and metrics["n"] == 10 and metrics["bleu4"] > 99
    assert [s["conv_id"] for s in samples] == [str(i) for i in eval_indices(30, 10)]


@pytest.mark.parametrize("nb", ["train.ipynb", "evaluate.ipynb", "ablations.ipynb", "analyze_imr.ipynb"])
def test_papermill_help_explains_every_parameter(nb):
    "papermill --help-notebook silently drops a parameter whose comment it cannot parse (e.g. one with '=' in it)."
    from papermill.translators import PythonTranslator
    cell = next(c for c in nbformat.read(REPO / "nbs" / nb, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split(":")[0] for line in cell.source.splitlines() if line.strip() and not line.startswith("#")]
    params = PythonTranslator.inspect(cell)
    assert [p.name for p in params] == names and all(p.help for p in params), (names, params)


def _tree(folder: Path) -> dict:
    "Every file under `folder` with its bytes."
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_override_run_leaves_the_base_run_and_its_checkpoints_untouched(tmp_path, monkeypatch):
    "Acceptance (issue 15): the README's `chatbert train quick_imr train.lr=1e-4`, at smoke scale."
    from chatbert.experiments.run import run
    from chatbert.experiments.runs import RunError
    monkeypatch.setenv("CHATBERT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    quick = ["eval.bertscore=false", "train.max_steps=2", "train.eval_steps=2", "train.max_eval_examples=4", "decode.max_new_tokens=4"]
    run("imr_smoke", quick, name="base")
    base, ckpt = tmp_path / "results" / "runs" / "base", tmp_path / "cache" / "checkpoints" / "base"
    before = _tree(base) | {f"ckpt/{k}": v for k, v in _tree(ckpt).items()}
    assert any(k.startswith("ckpt/final/") for k in before)
    run("imr_smoke", quick + ["train.lr=0.01"], name="base-lr")          # another config: its own folders
    with pytest.raises(RunError, match="another config"):                # ... never the base's, even under its name
        run("imr_smoke", quick + ["train.lr=0.01"], name="base", force=False, out=tmp_path / "elsewhere")
    assert _tree(base) | {f"ckpt/{k}": v for k, v in _tree(ckpt).items()} == before
    assert load_chat(base).cfg.train.lr == load_config("imr_smoke").train.lr   # the base run still loads its own model


def test_experiment_does_not_import_the_command_line():
    "The circle experiment -> cli.run_notebook -> experiment is broken: notebooks run from chatbert.experiments.execute."
    code = "import sys, chatbert.experiments.experiment, chatbert.experiments.run; print('chatbert.app.cli' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-2000:]


def test_a_run_records_the_commit_it_started_from(monkeypatch):
    "A checkout that moves during a run: env.json's git is the start's (the code that ran), the end's beside it."
    import chatbert.experiments.experiment as ex
    commits = iter([{"commit": "aaa", "dirty": False}, {"commit": "bbb", "dirty": False}, {"commit": "bbb", "dirty": False}])
    monkeypatch.setattr(ex, "git_info", lambda *a, **k: next(commits))
    rec = ex.RunClock().record()
    assert rec["git"]["commit"] == "aaa" and rec["git_at_end"]["commit"] == "bbb"
    monkeypatch.setattr(ex, "git_info", lambda *a, **k: {"commit": "ccc", "dirty": False})
    rec = ex.RunClock().record()
    assert rec["git"]["commit"] == "ccc" and "git_at_end" not in rec


def test_train_command_module_and_notebook_are_one_run_path(tmp_path):
    """`chatbert train`, `python -m chatbert.experiments.run` and `papermill nbs/train.ipynb` all call `chatbert.experiments.run.run`: on the same
    smoke config they write the same metrics (timings aside) and byte-identical replies."""
    env = os.environ | {"CHATBERT_RESULTS": str(tmp_path / "results"), "CHATBERT_CACHE": str(tmp_path / "cache"),
                        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    quick = ["eval.bertscore=false", "train.max_steps=2", "train.eval_steps=2", "train.max_eval_examples=4",
             "decode.max_new_tokens=4"]
    runs = tmp_path / "results" / "runs"
    cmds = {"cli": [str(BIN / "chatbert"), "train", "smoke", *quick, "--name", "cli"],
            "module": [sys.executable, "-m", "chatbert.experiments.run", "smoke", *quick, "--name", "module"],
            "papermill": [str(BIN / "papermill"), str(REPO / "nbs" / "train.ipynb"), str(tmp_path / "pm.ipynb"),
                          "-p", "config", "smoke", "-p", "overrides", " ".join(quick), "-p", "name", "papermill",
                          "-p", "out_dir", str(runs / "papermill"), "--cwd", str(REPO / "nbs")]}
    for way, cmd in cmds.items():
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
        assert res.returncode == 0, (way, res.stderr[-3000:])
    def scores(run):
        m = json.loads((runs / run / "metrics.json").read_text())
        return {k: v for k, v in m.items() if k != "config" and not any(w in k for w in ("seconds", "latency", "per_s", "_ms"))}
    assert scores("cli") == scores("module") == scores("papermill") and "rougeL" in scores("cli")
    replies = {w: (runs / w / "samples.jsonl").read_text() for w in cmds}
    assert replies["cli"] == replies["module"] == replies["papermill"]
    assert (runs / "cli" / "train.ipynb").is_file()          # the command keeps the executed notebook as the run's record
