"Notebooks are really executed by nbdev_test, test flags really gate cells, and chatbert/ is what the notebooks export."
import ast
import filecmp
import json
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
    def tree(root): return sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    exported = tree(tmp_path / "chatbert")
    assert exported == tree(REPO / "chatbert"), "a module without a notebook (stale?) or a notebook without its module"
    stale = [n for n in exported if not filecmp.cmp(tmp_path / "chatbert" / n, REPO / "chatbert" / n, shallow=False)]
    assert not stale, f"chatbert/ differs from nbs/ in {stale}: run nbdev_export"


# The layers, lowest first: a module imports its own layer and lower ones only (docs: README, "Code organization").
LAYERS = ("foundations", "training", "models", "evaluation", "experiments", "paper", "app")
FOUNDATIONS = {"core", "suites", "config", "backbone", "data", "text"}   # the top-level modules


def modules(pkg: Path) -> dict[str, Path]:
    "Dotted name (chatbert.models.imr.chat) -> file, for every module but __init__ and _modidx."
    return {".".join(("chatbert", *p.relative_to(pkg).with_suffix("").parts)): p
            for p in sorted(pkg.rglob("*.py")) if not p.name.startswith("_") and "__pycache__" not in p.parts}


def layer(mod: str) -> int:
    part = mod.split(".")[1]
    if part in FOUNDATIONS: return 0
    assert part in LAYERS, f"{mod} is in no layer: a top-level module must be a foundation ({sorted(FOUNDATIONS)})"
    return LAYERS.index(part)


def chatbert_imports(mod: str, path: Path, mods) -> set[str]:
    "The chatbert modules `mod` imports anywhere in its file (top level, functions, `from chatbert import x`, relative)."
    import ast
    pkg = mod.split(".")[:-1]
    out = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.Import): names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = ".".join((pkg[:len(pkg) - n.level + 1] if n.level else []) + ([n.module] if n.module else []))
            names = [base] + [f"{base}.{a.name}" for a in n.names]      # `from chatbert.x import y`: y may be a module
        else: continue
        for name in names:
            while name and name not in mods and name.startswith("chatbert."): name = name.rpartition(".")[0]
            if name in mods: out.add(name)
    return out - {mod}


def check_layers(pkg: Path) -> None:
    mods = modules(pkg)
    deps = {m: chatbert_imports(m, p, mods) for m, p in mods.items()}
    up = [f"{m} ({LAYERS[layer(m)]}) imports {d} ({LAYERS[layer(d)]})" for m in deps for d in sorted(deps[m]) if layer(d) > layer(m)]
    assert not up, "imports against the layers:\n" + "\n".join(up)
    seen, done = set(), set()
    def visit(m, path):
        assert m not in seen or m in done, f"import cycle: {' -> '.join(path + [m])}"
        if m in done: return
        seen.add(m)
        for d in sorted(deps[m]): visit(d, path + [m])
        done.add(m)
    for m in mods: visit(m, [])


def test_no_module_over_400_lines():
    "One concept per module: a module that grows past ~400 lines has two."
    sizes = {m: len(p.read_text().splitlines()) for m, p in modules(REPO / "chatbert").items()}
    assert max(sizes.values()) <= 410, {m: n for m, n in sizes.items() if n > 410}   # the "~400"


def test_only_foundations_at_top_level_and_every_subpackage_has_its_init():
    pkg = REPO / "chatbert"
    assert {p.stem for p in pkg.glob("*.py")} == FOUNDATIONS | {"__init__", "_modidx"}
    for d in (p for p in pkg.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        assert (d / "__init__.py").is_file(), f"{d} has no __init__.py"


def test_modules_import_their_own_layer_or_lower_and_no_cycle():
    "foundations < training < models < evaluation < experiments < paper < app; lazy imports in functions count."
    check_layers(REPO / "chatbert")


@pytest.mark.parametrize("plant", ["from chatbert.evaluation.metrics import normalize",          # models -> evaluation
                                   "from ..experiments import runs",                              # relative, up two layers
                                   "def f():\n    import chatbert.app.cli",                        # a lazy import
                                   "from .fib import FIBChat"])                                   # ra <-> fib: a cycle
def test_the_layer_check_fails_on_a_planted_import(tmp_path, plant):
    pkg = tmp_path / "chatbert"
    shutil.copytree(REPO / "chatbert", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    check_layers(pkg)
    ra = pkg / "models" / "ra.py"
    ra.write_text(ra.read_text(encoding="utf-8") + "\n" + plant + "\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="against the layers|import cycle"): check_layers(pkg)


def test_module_docstrings_are_whole_sentences():
    "nbdev takes a module's docstring from the first `> ` line of its notebook: a summary wrapped over lines gets cut."
    import ast
    bad = {}
    for p in sorted((REPO / "chatbert").rglob("*.py")):
        if p.name in ("__init__.py", "_modidx.py") or "__pycache__" in p.parts: continue
        doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
        if not doc or not doc.strip().endswith((".", "?", "!", ")")): bad[str(p.relative_to(REPO))] = doc
    assert not bad, f"module docstrings missing or cut mid-sentence (join the notebook's `> ` summary into one line): {bad}"


def shows_something(source: str) -> bool:
    "Is a test cell written to show something: its last statement an expression (not a docstring), or a print/display?"
    lines = [l for l in source.splitlines() if not l.startswith(("#|", "%", "!"))]
    try: body = ast.parse("\n".join(lines)).body
    except SyntaxError: return False
    if not body: return False
    last = body[-1]
    return (isinstance(last, ast.Expr) and not isinstance(last.value, ast.Constant)) or "print(" in source or "display(" in source


def test_notebooks_show_what_their_cells_are_written_to_show():
    "Notebooks as documents (make nbs): at least 90% of the cells written to show something show it, and no output names this machine."
    assert shows_something("x = 1\nx") and shows_something("print(1)") and not shows_something("x = 1") and not shows_something('"doc"')
    show = shown = 0
    leaks = []
    for p in sorted((REPO / "nbs").glob("*.ipynb")):
        for c in json.loads(p.read_text(encoding="utf-8"))["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] != "code" or src.startswith("#| export") or not shows_something(src): continue
            show += 1; shown += bool(c.get("outputs"))
            text = json.dumps(c.get("outputs", []))
            leaks += [p.name for bad in (str(REPO), "/tmp/", "/home/") if bad in text]
    assert shown >= 0.9 * show, f"{shown} of {show} cells written to show something show it: run make nbs"
    assert leaks == [], leaks
