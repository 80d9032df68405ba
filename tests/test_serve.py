"The demo from outside: gradio_client against the app launched in-process on smoke models, and headless Chromium."
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from chatbert.config import load_config
from chatbert.experiments.experiment import chat_class

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client                     # noqa: E402
from gradio_client.exceptions import AppError         # noqa: E402

from chatbert.app.browser import browser_check  # noqa: E402
from chatbert.app.serve import MAX_CHARS, ServeError, build_app, check_message, launch, load_systems  # noqa: E402

LIMIT = 200   # the app under test accepts messages up to this many characters
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    "Tiny models run faster on one thread, above all on a busy machine."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A throwaway project root holding an IMR run folder laid out as `chatbert train` writes one (config.yaml, metrics.json,
    env.json naming its model folder) and an ED model folder."""
    from chatbert.config import save_config
    root = tmp_path_factory.mktemp("serve")
    cfg = load_config("imr_smoke")
    model = chat_class("imr").from_config(cfg).save(root/".cache"/"checkpoints"/"imr_smoke"/"final")
    run = root/"results"/"runs"/"imr_smoke"; run.mkdir(parents=True)
    save_config(cfg, run)
    (run/"env.json").write_text(json.dumps({"model_dir": str(model)}))
    (run/"metrics.json").write_text("{}")
    ed = chat_class("ed").from_config(load_config("smoke")).save(root/"models"/"ed_smoke")
    (root/"settings.ini").write_text("[DEFAULT]\n"); (root/"configs").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATBERT_ROOT", str(root))            # run folders resolve their model inside this root
        yield [run, ed]


@pytest.fixture(scope="module")
def url(runs):
    "The demo on 127.0.0.1, two replies decoding at once at most."
    app = launch(build_app(load_systems(runs), max_chars=LIMIT), port=None, concurrency=2, block=False)
    yield app.local_url
    app.close()


def chat(client, message, system="imr_smoke", pinned="", delay=0.0, **kw):
    "Submit a chat request; the job (outputs: conversation, message box, canvas, replay slider, status)."
    return client.submit(message, system, pinned, 4, "cosine", "end", 1.0, False, True, delay, api_name="/chat", **kw)


def text(msg: dict) -> str:
    "A chatbot message's text (gradio_client gives content as a string or as a list of parts)."
    content = msg["content"]
    return content if isinstance(content, str) else " ".join(c.get("text", "") for c in content)


def last_reply(conversation) -> str:
    assert conversation[-1]["role"] == "assistant"
    return text(conversation[-1])


def test_message_limits():
    assert check_message(" hi\n there ") == "hi there"
    for bad, says in [("", "empty"), (" \t\n", "empty"), ("x" * (MAX_CHARS + 1), f"the limit is {MAX_CHARS} characters")]:
        with pytest.raises(ValueError, match=says): check_message(bad)


def test_run_folders_load_and_bad_ones_are_named(runs, tmp_path, capsys):
    systems = load_systems(runs)
    assert [(s.name, s.variant) for s in systems] == [("imr_smoke", "imr"), ("ed_smoke", "ed")]
    moved = tmp_path/"moved_run"; shutil.copytree(runs[0], moved)
    (moved/"env.json").write_text(json.dumps({"model_dir": str(tmp_path/"not_here")}))
    with pytest.raises(ServeError) as e: load_systems([runs[1], tmp_path/"missing", moved])
    assert "missing" in str(e.value) and "moved_run" in str(e.value) and "ed_smoke" not in str(e.value)
    from chatbert.app.cli import main                          # the CLI stops before any server starts, exit code 2
    with pytest.raises(SystemExit) as ex: main(["serve", str(tmp_path/"missing"), "--check"])
    assert ex.value.code == 2 and "missing" in capsys.readouterr().err
    assert main(["serve", str(runs[0]), "--check"]) == 0


def test_reply_arrives_and_imr_streams_its_canvas(url):
    job = chat(Client(url, verbose=False), "hi! how are you today?")
    final = job.result(timeout=120)
    assert last_reply(final[0]).strip() not in ("", "…")
    assert "replied in" in final[4] and "4 steps" in final[4]
    canvases = [o[2] for o in job.outputs() if isinstance(o[2], str) and "decoding" in o[2]]
    assert len(set(canvases)) > 1                                 # several intermediate canvases streamed
    assert "step 0 / 4" in canvases[0] and "step 4 / 4" in final[2]
    assert final[3]["maximum"] == 4 and final[3]["visible"]       # the replay slider covers every step


def test_history_is_kept_and_reset(url):
    client = Client(url, verbose=False)
    chat(client, "hello").result(timeout=120)
    conv = chat(client, "what do you do?").result(timeout=120)[0]
    assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant"]
    replay = client.predict(2, api_name="/replay")
    assert "step 2 / 4" in replay and "replay" in replay
    conv, canvas, *_ = client.predict(api_name="/reset")
    assert conv == [] and "new conversation" in canvas


@pytest.mark.parametrize("message, says", [("", "empty or whitespace-only"), ("   \n  ", "empty or whitespace-only"),
                                           ("x" * (LIMIT + 1), f"{LIMIT + 1} characters long; the limit is {LIMIT}")])
def test_bad_input_gets_a_message(url, message, says):
    with pytest.raises(AppError, match=says): chat(Client(url, verbose=False), message).result(timeout=60)


def test_pinned_words(url):
    out = chat(Client(url, verbose=False), "what do you like?", pinned="i _ _ pizza _").result(timeout=120)
    assert "pizza" in last_reply(out[0]) and '<span class="tok pinned"' in out[2] and ">pizza<" in out[2]
    with pytest.raises(AppError, match="no slot"):
        chat(Client(url, verbose=False), "hi", pinned="i like pizza").result(timeout=60)
    with pytest.raises(AppError, match="need an IMR run"):
        chat(Client(url, verbose=False), "hi", system="ed_smoke", pinned="i _ _").result(timeout=60)


def test_side_by_side(url):
    imr, ed, timings, box = Client(url, verbose=False).predict("hi! how are you today?", api_name="/compare")
    assert last_reply(imr) and last_reply(ed) and box == ""
    assert "| imr_smoke |" in timings and "| ed_smoke |" in timings


def test_eight_concurrent_requests(url):
    t0 = time.perf_counter()
    jobs = [chat(Client(url, verbose=False), f"message number {i}", system=("imr_smoke", "ed_smoke")[i % 2]) for i in range(8)]
    finals = [j.result(timeout=180) for j in jobs]
    assert all(last_reply(f[0]).strip() not in ("", "…") and "replied in" in f[4] for f in finals)
    assert sorted(text(f[0][-2]) for f in finals) == sorted(f"message number {i}" for i in range(8))
    assert time.perf_counter() - t0 < 180


def test_a_slow_reply_does_not_block_the_page(url):
    slow = chat(Client(url, verbose=False), "take your time", delay=2.0)   # 4 live frames 2 s apart: over 6 s
    time.sleep(0.5)
    other = Client(url, verbose=False)
    t0 = time.perf_counter(); other.predict(api_name="/reset"); reset_s = time.perf_counter() - t0
    t0 = time.perf_counter(); chat(other, "quick one", system="ed_smoke").result(timeout=60); ed_s = time.perf_counter() - t0
    assert not slow.done() and reset_s < 2 and ed_s < 3.5     # the page answered while the slow reply was still going
    assert "replied in" in slow.result(timeout=60)[4]


def test_browser_sends_a_message_and_sees_reply_and_steps(url):
    "Debian's Chromium, headless: type, send, see the reply and the step view; the screenshot goes to build/demo/."
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        if os.environ.get("CI"): pytest.fail("CI must install chromium and chromium-driver (Debian) for the browser test")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    out = Path(os.environ.get("CHATBERT_DEMO_SCREENSHOT", ROOT/"build"/"demo"/"demo.png"))
    out.unlink(missing_ok=True)
    seen = browser_check(url, "hi! how are you today?", out=out, timeout=90)
    assert seen["user"] == "hi! how are you today?"
    assert seen["reply"].strip() not in ("", "…") and "replied in" in seen["status"]
    assert "step 4 / 4" in seen["canvas"] and seen["tokens"] > 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_a_port_in_use_is_one_line_before_anything_loads_or_is_announced(capsys):
    "`chatbert serve` on a busy port printed 'demo on http://...' first; now the port is tried before the runs load."
    import socket
    from chatbert.app.cli import main
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0)); busy.listen(); port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as ex: main(["serve", "no/such/run", "--port", str(port)])
    said = capsys.readouterr()
    assert ex.value.code == 2 and said.err.count("\n") == 1 and said.err.startswith("chatbert serve: error: "), said.err
    assert f"127.0.0.1:{port}" in said.err and "--port" in said.err and "demo on" not in said.out
