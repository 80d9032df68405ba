"Notebooks are really executed by nbdev_test, test flags really gate cells, and chatbert/ is what the notebooks export."
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def make_project(tmp_path, cells):
    shutil.copy(REPO / "settings.ini", tmp_path / "settings.ini")
    (tmp_path / "nbs").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, tmp_path / "nbs" / "canary.ipynb")
    return tmp_path


def nbdev_test(project, *flags):
    return subprocess.run([str(BIN / "nbdev_test"), "--path", "nbs/canary.ipynb", *flags], cwd=project,
                          capture_output=True, text=True, timeout=120)


def test_slow_canary_runs_only_with_the_slow_flag(tmp_path):
    project = make_project(tmp_path, ["x = 1", "#| slow\nraise RuntimeError('slow canary ran')"])
    plain = nbdev_test(project)
    assert plain.returncode == 0, plain.stderr
    slow = nbdev_test(project, "--flags", "slow")
    assert slow.returncode != 0 and "slow canary ran" in slow.stderr + slow.stdout


def test_a_failing_plain_cell_fails_nbdev_test(tmp_path):
    project = make_project(tmp_path, ["assert 1 + 1 == 3, 'plain canary ran'"])
    res = nbdev_test(project)
    assert res.returncode != 0 and "plain canary ran" in res.stderr + res.stdout


def test_library_is_in_sync_with_notebooks(tmp_path):
    shutil.copy(REPO / "settings.ini", tmp_path / "settings.ini")
    shutil.copytree(REPO / "nbs", tmp_path / "nbs")
    res = subprocess.run([str(BIN / "nbdev_export")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    exported = sorted(p.name for p in (tmp_path / "chatbert").glob("*.py"))
    assert exported == sorted(p.name for p in (REPO / "chatbert").glob("*.py"))
    stale = [n for n in exported if not filecmp.cmp(tmp_path / "chatbert" / n, REPO / "chatbert" / n, shallow=False)]
    assert not stale, f"chatbert/ differs from nbs/ in {stale}: run nbdev_export"


def test_no_module_over_400_lines_and_no_import_cycle():
    "One concept per module: a module that grows past ~400 lines has two; modules import downwards only."
    import ast
    pkg = Path(__file__).parents[1]/"chatbert"
    mods = {p.stem: p for p in pkg.glob("*.py") if not p.name.startswith("_")}
    sizes = {m: len(p.read_text().splitlines()) for m, p in mods.items()}
    assert max(sizes.values()) <= 410, {m: n for m, n in sizes.items() if n > 410}   # the "~400"
    deps = {m: {n.module for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) and n.level == 1
                and n.module in mods} for m, p in mods.items()}   # nbdev exports `from .x import`; lazy imports use chatbert.x
    seen, done = set(), set()
    def visit(m, path):
        assert m not in seen or m in done, f"import cycle: {' -> '.join(path + [m])}"
        if m in done: return
        seen.add(m)
        for d in deps[m]: visit(d, path + [m])
        done.add(m)
    for m in mods: visit(m, [])
