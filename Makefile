# ChatBERT. `make install` then `make test`; `make help` lists the rest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)
# Nothing reaches the hub here; the code checks reachability itself, these keep libraries from trying.
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
DD ?= $(or $(CHATBERT_DAILYDIALOG),../shared/data/dailydialog)

.PHONY: curves-before bench-train readme help install test test-slow export nbs check-sync lock data-stats quickstart bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv with the exact pins of requirements.txt and chatbert (editable)

$(STAMP): requirements.txt setup.py settings.ini
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=24" "setuptools>=70" wheel
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

test: $(STAMP)  ## nbdev_test (every notebook) + pytest, offline, CPU
	HF_HUB_OFFLINE=1 $(BIN)/nbdev_test --n_workers 2 --timing
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

test-slow: $(STAMP)  ## also the cells flagged slow
	HF_HUB_OFFLINE=1 $(BIN)/nbdev_test --n_workers 2 --flags slow

export: $(STAMP)  ## notebooks -> chatbert/ and clean notebook metadata
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

nbs: $(STAMP)  ## execute every notebook as nbdev_test does and commit what its cells show, scrubbed of this machine (a few minutes)
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(BIN)/python -c "from chatbert.experiments.execute import refresh_outputs; refresh_outputs()"

check-sync: $(STAMP)  ## fail if chatbert/ or the notebooks differ from what nbdev_export/nbdev_clean make
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean
	git diff --exit-code -- chatbert nbs

lock:  ## re-resolve the stack in a scratch venv and rewrite requirements.txt
	rm -rf /tmp/chatbert-lock && $(PYTHON) -m venv /tmp/chatbert-lock
	/tmp/chatbert-lock/bin/pip install -r requirements.txt && /tmp/chatbert-lock/bin/pip check
	{ grep '^#' requirements.txt; /tmp/chatbert-lock/bin/pip freeze | sed 's/+cpu//'; } > requirements.txt.new && mv requirements.txt.new requirements.txt

data-stats: $(STAMP)  ## data statistics of ccc and DailyDialog ($(DD)) to results/data/
	$(BIN)/chatbert data-stats --source ccc
	$(BIN)/chatbert data-stats --source dailydialog --path $(DD)

quickstart: $(STAMP)  ## the main job, offline on a CPU: train ChatBERT-ED on Chit-Chat (~10 min on 2 cores), score it, talk to it
	HF_HUB_OFFLINE=1 $(BIN)/chatbert train quickstart --force
	HF_HUB_OFFLINE=1 $(BIN)/chatbert demo quickstart
	@echo "What you just saw: ChatBERT-ED after ten minutes of training on 2 CPU cores (17,920 Chit-Chat examples)."
	@echo "It writes English but does not yet listen: replies are sampled, and greedy decoding gives one reply to every message."
	@echo "The systems that chat are the *_cpu runs (results/runs/*_cpu, docs/results.md); train one with DailyDialog's files: chatbert train imr_cpu data.path=DIR"

bench: $(STAMP)  ## decoding latency of imr/ed/baseline_cpu (IMR 4/8/16 steps; batch 1 and 32) -> results/bench/decode_<device>.json (needs DailyDialog: $(DD))
	HF_HUB_OFFLINE=1 CHATBERT_DAILYDIALOG=$(DD) $(BIN)/chatbert bench

bench-train: $(STAMP)  ## training cost of IMR (1, 2, 4 canvases per context; the context without gradient)/ED/baseline, before and after the cost settings -> results/bench/train_<device>.json (needs DailyDialog: $(DD))
	HF_HUB_OFFLINE=1 CHATBERT_DAILYDIALOG=$(DD) $(BIN)/chatbert bench --train

curves-before: $(STAMP)  ## before curves: the first 20,480 examples of imr/ed/ed_random/baseline_cpu at the earlier settings (~70 min on 2 cores), then full vs cut output layer -> results/bench/cut_offset_<device>.json
	for c in imr_cpu_before ed_cpu_before baseline_cpu_before ed_cpu_random_before; do HF_HUB_OFFLINE=1 CHATBERT_DAILYDIALOG=$(DD) $(BIN)/chatbert train $$c || exit 1; done
	HF_HUB_OFFLINE=1 CHATBERT_DAILYDIALOG=$(DD) $(BIN)/chatbert bench --cut-offset

readme: $(STAMP)  ## redraw the README's results table and pictures from results/ (results/readme/)
	HF_HUB_OFFLINE=1 $(BIN)/python -c "from chatbert.paper.readme import write_readme_assets; write_readme_assets()"

# The web demo (chatbert serve, nbs/61_app.serve.ipynb) over trained runs; a run whose model is not on this machine is
# trained first, as in quickstart (about 9 minutes on a 2-core CPU). The browser test and the
# README's screenshot use Debian's chromium and chromium-driver (make browser-deps); nothing downloads a browser.
DEMO_RUNS ?= quickstart
DEMO_PORT ?= 7860
BROWSER_PACKAGES := chromium chromium-driver
DEMO_TRAIN = for r in $(DEMO_RUNS); do $(BIN)/chatbert serve results/runs/$$r --check >/dev/null 2>&1 || $(BIN)/chatbert train $$r --force || exit 1; done

.PHONY: demo demo-screenshot browser-deps

demo: $(STAMP)  ## web demo (Gradio) of DEMO_RUNS (quickstart) on 127.0.0.1:7860: IMR's unmasking live
	@export HF_HUB_OFFLINE=1; $(DEMO_TRAIN)
	HF_HUB_OFFLINE=1 $(BIN)/chatbert serve $(addprefix results/runs/,$(DEMO_RUNS)) --port $(DEMO_PORT)

demo-screenshot: $(STAMP)  ## results/demo/demo.png: headless Chromium talks to the demo of DEMO_RUNS
	@export HF_HUB_OFFLINE=1; $(DEMO_TRAIN)
	HF_HUB_OFFLINE=1 $(BIN)/chatbert serve $(addprefix results/runs/,$(DEMO_RUNS)) --screenshot results/demo/demo.png

browser-deps:  ## install Debian's chromium and chromium-driver (the demo's browser test; apt-get, sudo when not root)
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BROWSER_PACKAGES)

# The documentation site (nbs/64_app.docs.ipynb): nbdev processes the notebooks (show_doc for what each module exports,
# the outputs the cells show) and Quarto renders them into _docs/; README.md is never rewritten (no nbdev_readme).
# Quarto comes from pip's quarto-cli (make docs-deps, not make install), whose build downloads the Quarto release from
# GitHub; where that cannot be reached, make docs renders the same notebooks with nbconvert and says so.
QUARTO_VERSION ?= 1.11.9

.PHONY: docs docs-deps docs-check

docs-deps: $(STAMP)  ## install Quarto for make docs: pip's quarto-cli into .venv (its build downloads Quarto from GitHub)
	$(BIN)/python -m pip install --no-deps "quarto-cli==$(QUARTO_VERSION)"
	$(BIN)/quarto --version

docs: $(STAMP)  ## the documentation site in _docs/ (open _docs/index.html): Quarto if make docs-deps installed it, else nbconvert
	HF_HUB_OFFLINE=1 $(BIN)/python -c "from chatbert.app.docs import build_docs; build_docs()"

docs-check: $(STAMP)  ## headless Chromium opens the built site's IMR page and finds the unmasking trace figure (make browser-deps)
	$(BIN)/python -c "import sys; from chatbert.app.browser import docs_check; seen = docs_check('_docs'); print(seen); sys.exit(not seen['found'])"

# The GPU suite (docs/compute.md, "More compute"): every *_dd system and ablation, one run after another (each under torchrun
# with NPROC processes when NPROC > 1); a failed run is recorded in results/reproduce/dd.json and the suite goes on;
# then the report. reproduce-gpu-dry runs the same suite at smoke scale on CPU in a scratch folder (tests/test_run.py).
NPROC ?= 1

.PHONY: reproduce-gpu reproduce-gpu-dry reproduce-gpu-estimate

reproduce-gpu: $(STAMP)  ## the GPU suite (*_dd: 5 systems + ED/IMR ablations; NPROC GPUs per run), then chatbert report
	HF_HUB_OFFLINE=1 $(BIN)/chatbert reproduce dd --nproc $(NPROC); status=$$?; \
	HF_HUB_OFFLINE=1 $(BIN)/chatbert report; exit $$status

reproduce-gpu-dry: $(STAMP)  ## the same suite at smoke scale on CPU, in a scratch folder (a check of every code path)
	HF_HUB_OFFLINE=1 $(BIN)/chatbert reproduce dd --smoke

reproduce-gpu-estimate: $(STAMP)  ## the GPU suite's time on one H100/H200, estimated from FLOPs (runs nothing)
	$(BIN)/chatbert reproduce dd --estimate

# The paper: `chatbert report` turns results/ into paper/generated/, latexmk builds paper/chatbert.pdf.
# Debian's TeX packages (checked with main.tex): latexmk; texlive-latex-base (natbib, hyperref, graphicx, geometry,
# amsmath, Times); texlive-latex-recommended (booktabs, microtype, xcolor, caption); texlive-fonts-recommended (the
# Type 1 Times and Courier fonts).
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended
LATEXMK := latexmk -pdf -interaction=nonstopmode -halt-on-error -jobname=chatbert

.PHONY: paper paper-deps paper-clean

paper: $(STAMP)  ## results/ -> paper/generated/ (chatbert report) -> paper/chatbert.pdf (latexmk); no GPU, no training
	@command -v latexmk >/dev/null 2>&1 || { echo "make paper needs latexmk and TeX Live: make paper-deps" \
	  "(or: sudo apt-get install --no-install-recommends $(TEX_PACKAGES))" >&2; exit 1; }
	HF_HUB_OFFLINE=1 $(BIN)/chatbert report --results results --out paper/generated
	cd paper && $(LATEXMK) -g main.tex
	@echo "wrote paper/chatbert.pdf"

paper-deps:  ## install the Debian TeX packages make paper needs (apt-get; sudo when not root)
	$(if $(filter 0,$(shell id -u)),,sudo) apt-get update
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(TEX_PACKAGES)

paper-clean:  ## remove paper/generated/ and the LaTeX build outputs (paper/chatbert.pdf included)
	cd paper && { command -v latexmk >/dev/null 2>&1 && latexmk -C -jobname=chatbert main.tex || true; }
	rm -rf paper/generated
	rm -f $(addprefix paper/chatbert.,aux log out bbl blg fls fdb_latexmk pdf)
