"The report turns a results tree into the paper's tables, numbers and figures; a changed result changes the paper."
import json
import re
import shutil
from pathlib import Path

import pytest

from chatbert.paper.report import write_report
from chatbert.paper.results import collect_runs

ENV = {"git": {"commit": "abcdef0123456789", "dirty": False}, "device": "cuda", "device_name": "NVIDIA H100"}


def metrics(variant, bleu2, ms, bert=10.0, **kw):
    return {"n": 3, "bleu4": bleu2 / 2, "bleu2": bleu2, "rougeL": 8.0, "bertscore_f1": bert, "distinct1": 0.2,
            "distinct2": 0.5, "ref_distinct1": 0.6, "ref_distinct2": 0.95, "len_mean": 8.0, "ref_len_mean": 11.0,
            "repetition_rate": 0.1, "seconds_per_reply": ms / 1000, "variant": variant,
            "bleu4_signature": "nrefs:1|case:mixed|tok:13a", **kw}


def write(path: Path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


SAMPLES = "".join(json.dumps({"conv_id": "c", "context": ["hi"], "reference": r, "reply": h}) + "\n"
                  for h, r in [("hello there", "hi , how are you ?"), ("fine", "good and you"), ("yes", "sure thing")])


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    "Two suites partly run: quick (ED, RA, IMR with two seeds) and small (ED only); plus every other kind of result."
    root = tmp_path_factory.mktemp("tree") / "results"
    write(root / "runs/quick_ed/metrics.json", metrics("ed", 3.0, 80.0, ppl_word=120.0, likelihood="teacher-forced NLL (exact)"))
    write(root / "runs/quick_ed/env.json", ENV)
    write(root / "runs/quick_ed/samples.jsonl", SAMPLES)
    write(root / "runs/quick_ra/metrics.json", metrics("ra", 1.0, 12.0, **{"hits@1/20": 0.4, "hits@1/100": 0.2, "mrr": 0.3}))
    for seed, b in [(0, 2.0), (1, 4.0)]:   # ROUGE-L 7 and 9: the ablation deltas are against their mean, 8
        write(root / f"runs/quick_imr/seed{seed}/metrics.json", metrics("imr", b, 40.0, ppl_word_bound=300.0, rougeL=5.0 + b))
        write(root / f"runs/quick_imr/seed{seed}/samples.jsonl", SAMPLES)
    write(root / "runs/ed_small/metrics.json", metrics("ed", 6.5, 20.0))
    write(root / "runs/imr_quick_noremask/metrics.json", metrics("imr", 2.5, 40.0, rougeL=7.5))
    write(root / "ablations/imr_quick.json", {"suite": "imr_quick", "base": "quick_imr", "runs": [
        {"config": "quick_imr", "status": "ok", "run_dir": "/other/machine/results/runs/quick_imr", "changed": {}, "error": None},
        {"config": "imr_quick_noremask", "status": "ok", "run_dir": "/other/machine/results/runs/imr_quick_noremask",
         "changed": {"decode.remask": False}, "error": None},
        {"config": "imr_quick_elbo", "status": "failed", "run_dir": "/x/results/runs/imr_quick_elbo",
         "changed": {"imr.elbo_weight": True}, "error": "RuntimeError: loss is NaN at step 7"}]})
    steps = [{"step": 0, "tokens": ["ok", "[MASK]", "[SEP]"], "committed": [0, 2], "remasked": [], "confidence": [0.8, 0.0, 0.9]},
             {"step": 1, "tokens": ["ok", "then", "[SEP]"], "committed": [1], "remasked": [], "confidence": [0.8, 0.4, 0.9]}]
    write(root / "imr/quick_imr/trace.json", {"run": "quick_imr", "config": "quick_imr",
                                              "examples": [{"context": ["hey"], "reference": "ok", "reply": "ok then", "steps": steps}]})
    rows = [(f"steps={s}", s, "cosine", True) for s in (2, 4, 8)] + \
           [(f"schedule={sc} remask={rm}", 8, sc, rm) for sc in ("linear", "threshold") for rm in (True, False)]
    write(root / "imr/quick_imr/sweep.csv", "setting,steps,schedule,remask,length,n,bleu2,bertscore_f1,distinct2\n" +
          "".join(f"{name},{s},{sc},{rm},end,3,{s / 4},{s},{0.05 * s}\n" for name, s, sc, rm in rows))
    write(root / "bench/decode_cuda.json", {"config": "quick", "rows": [
        {"system": "imr", "batch": 1, "steps": 8, "tokens": 32, "median_s": 0.05, "ms_per_reply": 50.0},
        {"system": "ed", "batch": 1, "steps": 32, "tokens": 32, "median_s": 0.02, "ms_per_reply": 20.0}]})
    write(root / "data/stats.csv", "source,split,conversations,examples,context_len_p50,context_len_p90,context_len_p99,"
          "reply_len_p50,reply_len_p90,reply_len_p99\nccc,test,198,7494,70,136,231,15,40,84\n")
    return root


@pytest.fixture(scope="module")
def generated(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    write_report(results, out)
    return out


def cbset(numbers: str) -> dict:
    return dict(re.findall(r"^\\cbset\{(.+?)\}\{(.*)\}$", numbers, flags=re.M))


def test_collect_runs_finds_seeds_and_suites(results):
    runs = collect_runs(results).set_index("key")
    assert set(runs.index) == {"quick_ed", "quick_ra", "quick_imr/seed0", "quick_imr/seed1", "ed_small", "imr_quick_noremask"}
    assert runs.loc["quick_imr/seed1", "seed"] == 1 and runs.loc["quick_imr/seed1", "config"] == "quick_imr"
    assert runs.loc["ed_small", "suite"] == "small" and runs.loc["quick_ed", "commit"] == "abcdef0"
    assert runs.loc["quick_ed", "ms_per_reply"] == pytest.approx(80.0)


def test_numbers_tex_holds_every_metric_with_provenance(generated):
    nums = cbset((generated / "numbers.tex").read_text())
    assert nums["quick_ed/bleu2"] == "3.00" and nums["ed_small/bleu2"] == "6.50"
    assert nums["quick_ra/hits@1/20"] == "0.400" and nums["quick_ed/commit"] == "abcdef0" and nums["quick_ed/device"] == "cuda"
    assert nums["quick_imr/seed1/bleu2"] == "4.00" and nums["quick_imr/bleu2"] == "3.00" and nums["quick_imr/bleu2_std"] == "1.41"
    assert nums["data/ccc/test/examples"] == "7,494" and nums["bench/cuda/imr/b1/s8/ms"] == "50.0"
    assert nums["imr/quick_imr/steps=4/bleu2"] == "1.00" and nums["suite/quick/count"] == "3" and nums["runs/count"] == "6"
    assert nums["quick_ed/bleu4_signature"] == r"nrefs:1\textbar{}case:mixed\textbar{}tok:13a"   # strings too, escaped
    assert nums["ablation/imr_quick/failed"] == "1"
    assert nums["ablation/imr_quick/imr_quick_noremask/delta_rougeL"] == r"\ensuremath{-}0.50"
    assert "analyze\\_imr.ipynb" in nums["fig/imr_trace/source"] and "quick\\_imr" in nums["fig/imr_trace/source"]
    assert all(k in nums for k in (f"fig/{f}/source" for f in ("imr_steps", "imr_schedules", "lengths", "ablations", "quality_latency")))


def test_main_table_marks_the_best_in_the_right_direction_and_seeds_as_mean_pm_std(generated):
    tex = (generated / "tab_main_quick.tex").read_text()
    ed, imr, ra = (next(l for l in tex.splitlines() if l.startswith(name)) for name in ("ChatBERT-ED", "ChatBERT-IMR", "ChatBERT-RA"))
    assert r"\textbf{3.00}" in ed and r"\textbf{3.00}" in imr          # BLEU-2: ED 3.00 ties IMR's mean (2 and 4): both bold
    assert r"\textbf{3.00}\,{\scriptsize\ensuremath{\pm}1.41}" in imr and "2 seeds" in imr
    assert r"\textbf{12}" in ra and r"\textbf{80}" not in ed            # ms/reply: lower is better
    assert r"\textbf{1.00}" not in ra                                   # RA's BLEU-2 is the worst
    assert "not run yet" in tex and "References" in tex and tex.count(r"\toprule") == 1
    assert r"\begin{tabular}" in tex and r"\bottomrule" in tex


def test_likelihood_and_ranking_tables(generated):
    lik = (generated / "tab_likelihood_quick.tex").read_text()
    assert r"$\leq$\,300.0" in lik and "120.0" in lik and "RA" not in lik
    rank = (generated / "tab_ranking_quick.tex").read_text()
    assert "0.400" in rank and "MRR" in rank
    assert not (generated / "tab_ranking_small.tex").exists()                  # no runs: no table (nothing empty in the paper)


def test_failed_ablation_is_reported_and_deltas_are_against_the_seed_mean(generated):
    tex = (generated / "tab_ablation_imr_quick.tex").read_text()
    assert r"failed: RuntimeError: loss is NaN at step 7" in tex and "imr.elbo\\_weight=True" in tex
    assert r"7.50 (\ensuremath{-}0.50)" in tex and "base: quick\\_imr" in tex
    assert not (generated / "tab_ablation_ed_dd.tex").exists()


def test_figures_are_pdfs(generated):
    names = ["imr_trace", "imr_steps", "imr_schedules", "lengths", "ablations", "quality_latency"]
    for n in names:
        pdf = (generated / f"fig_{n}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(pdf) > 1000 and b"CreationDate" not in pdf


def test_changing_a_metric_changes_numbers_tables_and_figures(results, tmp_path):
    "Acceptance: a number changed in a metrics.json changes what the paper is built from; the same inputs, the same bytes."
    tree = tmp_path / "results"
    shutil.copytree(results, tree)
    first, again, changed = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_report(tree, first); write_report(tree, again)
    for p in first.iterdir(): assert p.read_bytes() == (again / p.name).read_bytes(), p.name
    m = json.loads((tree / "runs/quick_ed/metrics.json").read_text())
    m |= {"bleu2": 9.87, "bertscore_f1": 15.5}
    write(tree / "runs/quick_ed/metrics.json", m)
    write_report(tree, changed)
    assert r"\cbset{quick_ed/bleu2}{9.87}" in (changed / "numbers.tex").read_text()
    assert r"\textbf{9.87}" in (changed / "tab_main_quick.tex").read_text()
    assert (first / "tab_main_quick.tex").read_text() != (changed / "tab_main_quick.tex").read_text()
    assert (first / "fig_quality_latency.pdf").read_bytes() != (changed / "fig_quality_latency.pdf").read_bytes()


def test_empty_results_give_no_tables_but_still_build(tmp_path, generated):
    "Nothing to show, nothing written: no table of a suite without runs, so the paper holds nothing empty; numbers.tex always."
    out = tmp_path / "gen"
    files = write_report(tmp_path / "no-results", out)
    assert not [p for p in files if p.name.startswith("tab_")] and not list(out.glob("tab_*.tex"))
    assert {"tab_main_quick.tex", "tab_ablation_imr_quick.tex"} <= {p.name for p in generated.iterdir()}
    assert (out / "fig_lengths.pdf").read_bytes().startswith(b"%PDF")
    assert "runs/count}{0}" in (out / "numbers.tex").read_text()


def test_cli_report_prints_the_files(results, tmp_path, capsys):
    from chatbert.app.cli import main
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "g")]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "g" / "numbers.tex") in printed and (tmp_path / "g" / "tab_main_quick.tex").is_file()
