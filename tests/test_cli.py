"""The command line: quick help, options anywhere, and the bad-input table of issue 15: every case one line on stderr
and exit code 2, found before a notebook kernel starts or a model is trained."""
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from chatbert.experiments import execute, runs
from chatbert.app.cli import build_parser, chat_loop, main
from chatbert.config import load_config, save_config

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    "Results and caches in a scratch folder; starting a notebook fails the test (every case here must stop before one)."
    monkeypatch.setenv("CHATBERT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    def no_kernel(*a, **k): raise AssertionError("a notebook kernel was started")
    monkeypatch.setattr(execute, "run_notebook", no_kernel)
    return tmp_path


def fails(capsys, argv, *words):
    "Run `chatbert argv`: exit code 2, one line on stderr, naming every word."
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith(f"chatbert {argv[0]}: error: "), err
    for w in words: assert w in err, (w, err)
    return err


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    "An untrained smoke ED model saved as a model folder (what `chat` and `evaluate` load)."
    from chatbert.experiments.experiment import chat_class
    cfg = load_config("smoke")
    folder = tmp_path_factory.mktemp("model") / "final"
    chat_class("ed").from_config(cfg).save(folder)
    return folder


def copy_model(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst)
    return dst


# --- help and parsing ---------------------------------------------------------------------------------------------

def test_help_is_quick_and_imports_no_torch():
    t0 = time.perf_counter()
    res = subprocess.run([str(BIN / "chatbert"), "--help"], capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - t0
    assert res.returncode == 0 and "reproduce" in res.stdout and "train" in res.stdout
    assert seconds < 1.0, seconds
    imp = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "chatbert"), "train", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert imp.returncode == 0 and "chatbert.app.cli" in imp.stderr
    assert not [l for l in imp.stderr.splitlines() if l.split("|")[-1].strip().split(".")[0] in ("torch", "transformers")]


def test_options_and_overrides_in_any_order():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction").choices
    a = sub["train"].parse_intermixed_args(["quick_imr", "--out", "X", "train.lr=1e-4", "--name", "n", "train.seed=1"])
    assert (a.config, a.out, a.name, a.overrides) == ("quick_imr", "X", "n", ["train.lr=1e-4", "train.seed=1"])


def test_an_input_error_has_no_traceback_unless_debug():
    res = subprocess.run([str(BIN / "chatbert"), "train", "no_such_config", "--out", "x"], capture_output=True, text=True,
                         timeout=120, cwd="/tmp")
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert "Unknown config 'no_such_config'" in res.stderr and "quick_imr" in res.stderr and ", quick," not in res.stderr
    dbg = subprocess.run([str(BIN / "chatbert"), "--debug", "train", "no_such_config"], capture_output=True, text=True,
                         timeout=120, cwd="/tmp")
    assert dbg.returncode != 0 and "Traceback" in dbg.stderr


# --- the bad-input table ------------------------------------------------------------------------------------------

def test_rerun_of_a_finished_run_is_refused_and_an_override_run_gets_its_own_name(scratch, capsys):
    out = scratch / "results" / "runs" / "smoke"
    out.mkdir(parents=True); (out / "metrics.json").write_text("{}")
    fails(capsys, ["train", "smoke"], "results/runs/smoke holds a finished run", "--force", "--name")
    cfg, out2 = runs.plan_run("smoke", ["train.lr=1e-4", "train.seed=1"], data=False)
    assert cfg.name == "smoke-lr1e-4-seed1" and out2 == scratch / "results" / "runs" / "smoke-lr1e-4-seed1"


def test_checkpoints_of_another_config_are_refused(scratch, capsys):
    cfg = load_config("smoke")
    runs.claim_checkpoints(cfg, scratch / "results" / "runs" / "mine")
    fails(capsys, ["train", "smoke", "train.lr=0.5", "--name", "smoke"], "checkpoints of another config", "train.lr")


def test_checkpoints_stamped_before_a_new_setting_existed_still_resume(scratch):
    "A stamp written by an older version lacks settings added since; they take their defaults, so resuming still works."
    import json
    cfg, out = load_config("smoke"), scratch / "results" / "runs" / "smoke"
    ck = runs.claim_checkpoints(cfg, out)
    stamp = json.loads((ck / runs.STAMP).read_text()); del stamp["config"]["ra"]["pool"]
    (ck / runs.STAMP).write_text(json.dumps(stamp))
    assert runs.claim_checkpoints(cfg, out) == ck                                   # no "another config" clash
    stamp["config"]["train"]["lr"] = 0.5; (ck / runs.STAMP).write_text(json.dumps(stamp))
    with pytest.raises(runs.RunError, match="train.lr"): runs.claim_checkpoints(cfg, out)   # a real change still clashes


def test_cli_resolves_paths_from_the_working_folder_and_passes_overrides_as_a_list(scratch, monkeypatch, capsys):
    seen = {}
    def fake_notebook(name, out, params):   # what the kernel would get; writes the metrics a run would
        seen.update(params); Path(params["out_dir"]).mkdir(parents=True); Path(params["out_dir"], "metrics.json").write_text('{"bleu4": 1.0}')
    monkeypatch.setattr(execute, "run_notebook", fake_notebook)
    (scratch / "work").mkdir(); monkeypatch.chdir(scratch / "work")
    Path("my.yaml").write_text("base: smoke\ntrain:\n  max_steps: 2\n")
    Path("data dir").mkdir(); Path("data dir/x.jsonl").write_text("".join(
        json.dumps({"turns": [f"hello {i}", f"hi there {i}", f"how are you {i}"]}) + "\n" for i in range(60)))
    data = str(Path("data dir/x.jsonl").resolve())
    assert main(["train", "my.yaml", "--out", "rel_out", "data.source=jsonl", f"data.path={data}"]) == 0, capsys.readouterr().err
    assert seen["config"] == str(scratch / "work" / "my.yaml") and seen["out_dir"] == str(scratch / "work" / "rel_out")
    assert seen["overrides"] == ["data.source=jsonl", f"data.path={data}"] and seen["name"] == seen["name"].strip()


@pytest.mark.parametrize("override, word", [("model.variant=foo", "model.variant"), ("train.batch_size=0", "train.batch_size"),
                                            ("decode.num_beams=0", "decode.num_beams"), ("decode.schedule=foo", "decode.schedule"),
                                            ("decode.steps=0", "decode.steps"), ('decode.max_new_tokens="5"', "decode.max_new_tokens")])
def test_bad_values_fail_before_a_kernel(scratch, capsys, override, word):
    fails(capsys, ["train", "smoke", override], word)


def test_a_device_this_machine_lacks_fails_before_a_kernel(scratch, capsys):
    import torch
    if torch.cuda.is_available(): pytest.skip("this machine has a GPU")
    fails(capsys, ["train", "smoke", "train.device=cuda"], "train.device=cuda", "no CUDA GPU")


def test_a_context_longer_than_the_backbone_names_max_context_len(scratch, capsys):
    fails(capsys, ["train", "smoke", "data.max_context_len=400"], "data.max_context_len", "256", "at most 254")


def test_a_users_config_finds_its_base_beside_it(scratch, tmp_path):
    (tmp_path / "mybase.yaml").write_text("base: smoke\ntrain:\n  lr: 0.02\n")
    (tmp_path / "mine.yaml").write_text("base: mybase\n")
    assert load_config(str(tmp_path / "mine.yaml")).train.lr == 0.02


def write_jsonl(path: Path, rows: list, raw: bytes | None = None) -> Path:
    path.write_bytes(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows).encode())
    return path


@pytest.mark.parametrize("case, rows, words", [
    ("empty", [], ["0 train", "empty.jsonl"]),
    ("one_turn", [{"turns": [f"just me {i}"]} for i in range(50)], ["0 train", "one_turn.jsonl"]),
    ("eight", [{"turns": [f"hi {i}", f"hello {i}", f"bye {i}"]} for i in range(8)], ["validation", "eight.jsonl", "8 usable"]),
])
def test_too_few_examples_say_how_many_and_which_file(scratch, capsys, case, rows, words):
    f = write_jsonl(scratch / f"{case}.jsonl", rows)
    fails(capsys, ["train", "smoke", "data.source=jsonl", f"data.path={f}"], *words)


def test_turns_as_a_string_names_the_file_and_line(scratch, capsys):
    f = write_jsonl(scratch / "bad.jsonl", [{"turns": ["a", "b"]}, {"turns": "a string"}])
    fails(capsys, ["train", "smoke", "data.source=jsonl", f"data.path={f}"], f"{f}:2", "'turns' must be a list")


def test_non_utf8_bytes_name_the_file_and_line(scratch, capsys):
    f = write_jsonl(scratch / "latin1.jsonl", [], raw=b'{"turns": ["a", "b"]}\n{"turns": ["caf\xe9", "ok"]}\n')
    fails(capsys, ["train", "smoke", "data.source=jsonl", f"data.path={f}"], f"{f}:2", "not UTF-8")


def test_a_data_file_edited_in_place_changes_the_cache_key(tmp_path, tok):
    from chatbert.data import examples_key
    (tmp_path / "train.jsonl").write_text('{"turns": ["a", "b"]}\n')
    cfg = load_config("smoke", ["data.source=jsonl", f"data.path={tmp_path}"]).data
    st = os.stat(tmp_path)
    before = examples_key(cfg, tok)
    (tmp_path / "train.jsonl").write_text('{"turns": ["a", "b", "c"]}\n')
    os.utime(tmp_path, ns=(st.st_atime_ns, st.st_mtime_ns))      # the folder looks untouched
    assert examples_key(cfg, tok) != before


def test_truncated_weights_name_the_file(scratch, capsys, model_folder):
    m = copy_model(model_folder, scratch / "cut")
    w = m / "model.safetensors"; w.write_bytes(w.read_bytes()[: w.stat().st_size // 3])
    fails(capsys, ["chat", str(m)], str(w), "cut short")


def test_a_model_folder_without_tokenizer_files_is_refused(scratch, capsys, model_folder):
    m = copy_model(model_folder, scratch / "notok")
    for f in ("tokenizer.json", "vocab.txt"): (m / f).unlink(missing_ok=True)
    fails(capsys, ["chat", str(m)], "no tokenizer files", "tokenizer.json or vocab.txt")
    fails(capsys, ["train", "smoke", f"model.backbone={m}"], "no tokenizer files")


def fake_run(scratch: Path, name: str, model_dir: str, cfg=None) -> Path:
    run = scratch / "results" / "runs" / name
    run.mkdir(parents=True)
    save_config(cfg or load_config("smoke"), run)
    (run / "metrics.json").write_text("{}")
    (run / "env.json").write_text(json.dumps({"model_dir": model_dir}))
    return run


def test_another_machines_model_path_says_train_it_here(scratch, capsys):
    fake_run(scratch, "smoke", "/home/someone/clone/.cache/checkpoints/smoke/final")
    fails(capsys, ["chat", "smoke"], "trained elsewhere", "chatbert train smoke --force")
    fails(capsys, ["evaluate", "smoke"], "trained elsewhere")


def test_a_model_overwritten_by_another_config_is_refused(scratch, capsys, model_folder):
    m = copy_model(model_folder, scratch / "cache" / "checkpoints" / "smoke" / "final")
    fake_run(scratch, "smoke", str(m), load_config("smoke", ["train.lr=0.5"]))
    fails(capsys, ["chat", "smoke"], "another config", "train.lr", "--force")


def test_chat_refuses_bad_decoding_and_non_decoding_overrides(scratch, capsys, model_folder):
    fails(capsys, ["chat", str(model_folder), "decode.schedule=foo"], "decode.schedule")
    fails(capsys, ["chat", str(model_folder), "train.lr=1e-4"], "train.lr", "decode.*")
    fails(capsys, ["evaluate", str(model_folder), "ed.decoder_layers=2"], "ed.decoder_layers", "chatbert train")


def test_ctrl_c_while_a_reply_is_made_cancels_only_that_reply():
    class Slow:
        def generate(self, histories, **kw):
            if histories[-1][-1] == "slow": raise KeyboardInterrupt
            return ["ok"]
    said, turns = [], iter(["slow", "hello", "/quit"])
    assert chat_loop(Slow(), input_fn=lambda _: next(turns), print_fn=said.append) == ["hello", "ok"]
    assert "(reply cancelled)" in said


def test_each_chat_turn_draws_with_its_own_seed():
    "Sampling with one seed for every turn repeats a context-blind model's reply (the quickstart did); seed + turn does not."
    class Seeds:
        def generate(self, histories, seed=None, **kw): return [f"seed {seed}"]
    said, turns = [], iter(["hi", "and?", "/reset", "hi", "/quit"])
    chat_loop(Seeds(), input_fn=lambda _: next(turns), print_fn=said.append, seed=7)
    assert [s for s in said if s.startswith("bot>")] == ["bot> seed 7", "bot> seed 8", "bot> seed 7"]   # reproducible per turn


def test_a_checkpoint_cut_short_is_set_aside_and_said(scratch, capsys):
    cfg, out = load_config("smoke"), scratch / "results" / "runs" / "smoke"
    ck = runs.claim_checkpoints(cfg, out)
    for step, complete in ((10, True), (20, False)):
        (ck / f"checkpoint-{step}").mkdir()
        if complete: (ck / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    runs.claim_checkpoints(cfg, out)
    said = capsys.readouterr().out
    from transformers.trainer_utils import get_last_checkpoint
    assert get_last_checkpoint(str(ck)).endswith("checkpoint-10") and "checkpoint-20 was cut short" in said
    assert "resuming from checkpoint-10" in said


def test_force_moves_the_earlier_run_aside_and_results_are_readable(scratch):
    from chatbert.experiments.experiment import write_run
    out = scratch / "results" / "runs" / "smoke"
    write_run(out, load_config("smoke"), {"bleu4": 1.0}, [], [], {})
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in out.iterdir()), [oct(p.stat().st_mode) for p in out.iterdir()]
    runs.claim_run_dir(out, force=True)
    moved = list((scratch / "cache" / "replaced").iterdir())
    assert len(moved) == 1 and json.loads((moved[0] / "metrics.json").read_text()) == {"bleu4": 1.0}
    assert out.is_dir() and not (out / "metrics.json").exists()


def test_train_shows_progress_while_the_notebook_runs(tmp_path):
    "Acceptance (issue 15): `chatbert train smoke` prints step counts and losses before the run ends."
    env = os.environ | {"CHATBERT_RESULTS": str(tmp_path / "results"), "CHATBERT_CACHE": str(tmp_path / "cache"),
                        "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(BIN / "chatbert"), "train", "smoke", "train.logging_steps=1", "eval.bertscore=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
    early, lines = [], []
    for line in proc.stdout:
        lines.append(line)
        if m := re.search(r"step \d+/5 \| loss .*", line): early.append((m.group(0), proc.poll() is None))
    assert proc.wait(timeout=900) == 0, "".join(lines[-30:])
    assert len(early) >= 5 and all(running for _, running in early), early
    assert early[0][0].startswith("step 1/5 | loss ") and "ETA" in early[0][0]
    assert any("validation loss" in l for l in lines)
    run = tmp_path / "results" / "runs" / "smoke-bertscore-false-logging_steps1"
    assert json.loads((run / "metrics.json").read_text())["examples_seen"] == 5 * 8
    assert "step 5/5 | loss" in (run / "train.ipynb").read_text()      # the executed notebook keeps the lines too


def test_choose_takes_no_overrides(scratch, capsys, model_folder):
    fails(capsys, ["evaluate", str(model_folder), "--choose", "3", "decode.num_beams=2"], "--choose", "no overrides")


def test_choose_picks_on_validation_and_scores_the_choice(tmp_path, monkeypatch, capsys):
    "`chatbert evaluate RUN --choose N`: the grid swept on N validation contexts, the rule's pick scored as RUN/eval/val_choice."
    from chatbert.evaluation.choose import GRIDS, RULE, choose_decoding
    monkeypatch.setenv("CHATBERT_RESULTS", str(tmp_path / "results")); monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    assert main(["train", "smoke", "model.variant=baseline", "eval.bertscore=false", "--name", "bl"]) == 0
    assert main(["evaluate", "bl", "--choose", "3"]) == 0
    out = tmp_path / "results" / "runs" / "bl" / "eval" / "val_choice"
    choice, metrics = json.loads((out / "choice.json").read_text()), json.loads((out / "metrics.json").read_text())
    assert choice["rule"] == RULE and choice["rank_by"] == "rougeL" and choice["contexts"] == 3 and len(choice["rows"]) == len(GRIDS["left_to_right"])
    best = choose_decoding(choice["rows"], by=choice["rank_by"])
    assert choice["chosen"] == GRIDS["left_to_right"][choice["rows"].index(best)] and choice["grid"] == GRIDS["left_to_right"]
    decode = yaml.safe_load((out / "config.yaml").read_text())["decode"]
    assert all(decode[k] == v for k, v in choice["chosen"].items())          # the evaluation used the chosen decoding
    assert metrics["n"] > 0 and "chosen:" in capsys.readouterr().out


def test_judge_adds_listening_to_a_finished_folder_from_its_samples(tmp_path, capsys):
    "`chatbert judge FOLDER`: the listening judge over samples.jsonl; a reply copied from its context is found among 20."
    topics = ["tea", "football", "rain", "cats", "jazz", "trains", "chess", "spring", "bread", "the sea", "maths", "winter",
              "pizza", "dancing", "my car", "paris", "the news", "coffee", "movies", "running", "snow", "poetry"]
    samples = [{"conv_id": f"c{i // 2}", "context": [f"do you like {t}?"], "reference": f"yes, i love {t}.",
                "reply": f"do you like {t}?" if i % 2 else "ok."} for i, t in enumerate(topics)]
    run = tmp_path / "run"; run.mkdir()
    (run / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    (run / "metrics.json").write_text(json.dumps({"n": len(samples), "rougeL": 1.0}))
    assert main(["judge", str(run)]) == 0 and "listen_hits20" in capsys.readouterr().out
    m = json.loads((run / "metrics.json").read_text())
    hits = [json.loads(line)["listen_hit"] for line in (run / "samples.jsonl").read_text().splitlines()]
    assert m["rougeL"] == 1.0 and m["ref_listen_hits20"] == 1.0                  # the references name their topic
    assert all(h == 1.0 for h in hits[1::2]) and all(h < 0.5 for h in hits[::2])  # copies found; "ok." ties with "ok."s
    assert m["listen_hits20"] == sum(hits) / len(hits)
    fails(capsys, ["judge", str(tmp_path / "nowhere")], "nowhere")



def test_judge_fluency_scores_replies_with_one_cached_judge_and_files_its_planted_tests(tmp_path, monkeypatch, capsys):
    "`chatbert judge --fluency FOLDER`: a judge of the folder's training conversations adds fluency, the grammar proxies and each reply's score."
    monkeypatch.setenv("CHATBERT_RESULTS", str(tmp_path / "results")); monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    refs = ["i would like to open an account .", "is there a bank near here ?", "how much is the rent ?", "that is fine with me ."] * 6
    replies = ["yes, i's here. here here here.", "ok ok.", "i would like a room .", "fine ."] * 6
    run = tmp_path / "run"; run.mkdir()
    save_config(load_config("smoke"), run)
    (run / "samples.jsonl").write_text("".join(json.dumps({"conv_id": f"c{i}", "context": [f"turn {i}"], "reference": r, "reply": y}) + "\n"
                                               for i, (r, y) in enumerate(zip(refs, replies))))
    (run / "metrics.json").write_text(json.dumps({"n": len(refs)}))
    assert main(["judge", "--fluency", str(run)]) == 0 and "planted-test accuracy" in capsys.readouterr().out
    m = json.loads((run / "metrics.json").read_text())
    per_reply = [json.loads(line)["fluency"] for line in (run / "samples.jsonl").read_text().splitlines()]
    assert m["doubled_word"] == 0.5 and m["broken_contraction"] == 0.25 and m["ref_doubled_word"] == m["ref_broken_contraction"] == 0
    assert m["fluency"] == pytest.approx(sum(per_reply) / len(per_reply)) and m["fluency_ratio"] == pytest.approx(math.exp(m["fluency"] - m["ref_fluency"]))
    check = json.loads((tmp_path / "results" / "judges" / "fluency_ccc.json").read_text())
    tests = {"shuffled", "doubled", "dropped_function_word", "content_word_to_the"}
    assert check["score"] == "half_slor" and all(set(check[s]) == tests for s in ("lm_per_token", "half_slor", "slor"))
    assert check["n_references"] == len(refs) and set(check["validation_turns"]["half_slor"]) == tests   # where the score was chosen
    assert check["corpus"]["source"] == "ccc" and check["training"]["train_tokens"] > 0
    assert main(["judge", "--fluency", str(run)]) == 0                              # the cached judge: the same scores
    assert json.loads((run / "metrics.json").read_text())["fluency"] == m["fluency"]
    (run / "config.yaml").unlink(); capsys.readouterr()
    fails(capsys, ["judge", "--fluency", str(run)], "config.yaml")

def test_a_trained_run_scores_another_sources_test_split(tmp_path, monkeypatch):
    "`chatbert evaluate RUN eval.test_source=jsonl eval.test_path=DIR`: the run's model on another test set, recorded as such."
    monkeypatch.setenv("CHATBERT_RESULTS", str(tmp_path / "results")); monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "mine"; other.mkdir()
    conv = lambda i: json.dumps({"turns": [f"hello number {i}", "hi, how are you?", f"fine, thanks {i}", "good to hear."]}) + "\n"
    for split, n in (("train", 3), ("validation", 2), ("test", 3)):
        (other / f"{split}.jsonl").write_text("".join(conv(i) for i in range(n)))
    assert main(["train", "smoke", "eval.bertscore=false", "train.max_eval_examples=100", "--name", "r"]) == 0
    assert main(["evaluate", "r", "eval.test_source=jsonl", f"eval.test_path={other}", "--tag", "mine"]) == 0
    out = tmp_path / "results" / "runs" / "r" / "eval" / "mine"
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 * 3 and all("hello number" in " ".join(s["context"]) or "thanks" in s["reference"] or
                                         "how are you" in s["reference"] or "good to hear" in s["reference"] for s in samples)
    assert yaml.safe_load((out / "config.yaml").read_text())["eval"]["test_source"] == "jsonl"
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["source"] == "ccc"   # the model's own data, as trained


# --- reliability (issue 25, item 6) -------------------------------------------------------------------------------

def test_a_tag_or_run_name_with_a_path_in_it_is_refused(scratch, capsys, model_folder):
    "`--tag ../../OTHER --force` moved another finished run aside and replaced it; a tag is a plain name, like a run name."
    other = scratch / "results" / "runs" / "other"
    other.mkdir(parents=True); (other / "metrics.json").write_text('{"bleu4": 1.0}')
    fails(capsys, ["evaluate", str(other), "--tag", "../../other", "--force"], "--tag '../../other'")
    fails(capsys, ["evaluate", str(other), "--tag", "a/b"], "--tag 'a/b'")
    fails(capsys, ["train", "smoke", "--name", "../other", "--force"], "'../other'")
    assert json.loads((other / "metrics.json").read_text()) == {"bleu4": 1.0} and not (other / "eval").exists()


def test_a_second_train_of_a_run_refuses_while_another_process_holds_its_lock(scratch, capsys):
    "Two `chatbert train` of one run: the second refuses at once, naming the run and the other process; a dead one's lock is taken over."
    out = scratch / "results" / "runs" / "smoke"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from chatbert.experiments.runs import folder_lock\n"
                               "with folder_lock(sys.argv[1]): print('locked', flush=True); time.sleep(120)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        fails(capsys, ["train", "smoke"], "results/runs/smoke is being written by another process", f"pid {holder.pid}")
    finally:
        holder.kill(); holder.wait()
    assert (out.parent / ".smoke.lock").is_file()              # killed: its lock file is left, but nobody holds it
    with runs.folder_lock(out) as lock: assert lock.read_text() == str(os.getpid())
    assert not lock.exists()


def test_paths_are_printed_absolute_when_working_outside_the_repository(tmp_path, monkeypatch, capsys):
    "Run from elsewhere, the results go into the repository: printed relative to it, the path would read as one under the working folder."
    root = tmp_path / "root"; root.mkdir()
    (root / "settings.ini").write_text((REPO / "settings.ini").read_text()); (root / "configs").symlink_to(REPO / "configs")
    monkeypatch.setenv("CHATBERT_ROOT", str(root)); monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CHATBERT_RESULTS", raising=False)
    def fake_notebook(name, out, params):
        Path(params["out_dir"]).mkdir(parents=True, exist_ok=True); Path(params["out_dir"], "metrics.json").write_text('{"bleu4": 1.0}')
    monkeypatch.setattr(execute, "run_notebook", fake_notebook)
    (tmp_path / "elsewhere").mkdir(); monkeypatch.chdir(tmp_path / "elsewhere")
    data = write_jsonl(tmp_path / "x.jsonl", [{"turns": [f"hello {i}", f"hi there {i}", f"how are you {i}"]} for i in range(60)])
    assert main(["train", "smoke", "data.source=jsonl", f"data.path={data}", "--name", "mine"]) == 0
    said = capsys.readouterr().out
    assert f"run folder: {root / 'results' / 'runs' / 'mine'}\n" in said and f"-> {root / 'results' / 'runs' / 'mine'}/" in said
    assert (root / "results" / "runs" / "mine" / "metrics.json").is_file()


def test_a_batch_larger_than_the_training_examples_is_refused_before_a_kernel(scratch, capsys):
    err = fails(capsys, ["train", "smoke", "train.batch_size=100000"], "train.batch_size 100000", "training examples")
    assert re.search(r"than the \d+ training examples", err), err


def test_choose_needs_at_least_one_context_and_creates_nothing(scratch, capsys, model_folder):
    for n in ("-5", "0"): fails(capsys, ["evaluate", str(model_folder), "--choose", n], "--choose", f"got {n}")
    assert not (model_folder / "eval").exists()


def test_a_full_disk_is_one_line_naming_the_path(capsys):
    import errno
    def full(): raise OSError(errno.ENOSPC, "No space left on device", "/some/path/model.safetensors")
    code = execute.report_errors("chatbert train", full)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "disk is full" in err and "/some/path/model.safetensors" in err, err


def test_version_prints_the_package_version():
    import chatbert
    res = subprocess.run([str(BIN / "chatbert"), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == f"chatbert {chatbert.__version__}\n", (res.returncode, res.stdout, res.stderr)


def test_only_the_newest_incomplete_checkpoint_is_kept(scratch):
    "A run cut short again and again left one incomplete-* folder, as large as a checkpoint, each time."
    cfg, out = load_config("smoke"), scratch / "results" / "runs" / "smoke"
    ck = runs.claim_checkpoints(cfg, out)
    for name in ("incomplete-checkpoint-5", "incomplete-checkpoint-10", "checkpoint-20", "checkpoint-30"): (ck / name).mkdir()
    (ck / "checkpoint-20" / "trainer_state.json").write_text("{}")
    runs.claim_checkpoints(cfg, out)
    assert sorted(p.name for p in ck.iterdir() if p.is_dir()) == ["checkpoint-20", "incomplete-checkpoint-30"]
