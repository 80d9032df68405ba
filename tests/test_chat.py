"Every variant checks its histories with the one `chat.check_histories`: the same bad input fails alike, in the same words."
import ast
from pathlib import Path

import pytest

from chatbert.models.chat import check_histories
from chatbert.config import load_config

from seq2seq_helpers import SMALL_ED

VARIANTS = ("ed", "baseline", "imr", "ra", "fib")
REPLIES = ["ok", "yes i love chess", "i like coffee"]   # RA's pool: nothing is ever retrieved from it here

BAD = {  # what a caller may get wrong -> (histories, error, its message)
    "a string": ("hi", TypeError, "histories must be a list of conversations (lists of turns), got str"),
    "one conversation": (["hi"], ValueError, "histories[0] must be a non-empty list of turns, got 'hi'"),
    "a None turn": ([["hello", None]], ValueError, "histories[0][1] must be a string (a turn's text), got None"),
    "a blank turn": ([["hello", "  "]], ValueError,
                     "histories[0]: the last turn (the message to answer) is empty or whitespace"),
}


@pytest.fixture(scope="module")
def cfg():
    return load_config("smoke", {"ed": SMALL_ED})


def build(variant, cfg, tok):
    "A fresh, untrained model of `variant` on the tiny backbone; RA and FIB on a three-reply pool, never encoded."
    if variant == "ed":
        from chatbert.models.ed import EDChat
        return EDChat.from_config(cfg, tok)
    if variant == "baseline":
        from chatbert.models.baseline import BaselineChat
        return BaselineChat.from_config(cfg, tok)
    from chatbert.models.imr.chat import IMRChat
    if variant == "imr": return IMRChat.from_config(cfg, tok)
    from chatbert.models.ra import RAChat, bi_encoder, build_pool
    ra = RAChat(bi_encoder("tiny", cfg.data.max_context_len + 2, device="cpu"), build_pool(REPLIES), cfg)
    if variant == "ra": return ra
    from chatbert.models.fib import FIBChat, Idf
    return FIBChat(ra, IMRChat.from_config(cfg, tok), Idf({}, len(REPLIES)), cfg)


@pytest.fixture(scope="module", params=VARIANTS)
def chat(request, cfg, tok):
    return build(request.param, cfg, tok)


@pytest.mark.parametrize("case", list(BAD))
def test_check_histories_says_what_is_wrong(case):
    histories, error, message = BAD[case]
    with pytest.raises(error) as e: check_histories(histories)
    assert str(e.value) == message


def test_check_histories_accepts_conversations_and_returns_lists():
    assert check_histories((("hi", "hello"),)) == [["hi", "hello"]]
    assert check_histories([["", "hi"]]) == [["", "hi"]]          # only the last turn must have text
    assert check_histories(iter([["hi"]])) == [["hi"]]            # any iterable of conversations (a dataset column)


@pytest.mark.parametrize("case", list(BAD))
def test_generate_rejects_bad_histories_alike_in_every_variant(chat, case):
    histories, error, message = BAD[case]
    with pytest.raises(error) as e: chat.generate(histories)
    assert str(e.value) == message


@pytest.mark.parametrize("case", list(BAD))
def test_likelihood_rejects_bad_histories_alike(chat, case):
    if not hasattr(chat, "likelihood"): pytest.skip(f"{type(chat).__name__} has no likelihood")
    histories, error, message = BAD[case]
    with pytest.raises(error) as e: chat.likelihood(histories, ["ok"])
    assert str(e.value) == message


def test_imr_infill_checks_its_histories(cfg, tok):
    from chatbert.models.imr.chat import IMRChat
    imr = IMRChat.from_config(cfg, tok)
    with pytest.raises(TypeError, match="list of conversations"): imr.infill("hi", [[None, None]])
    with pytest.raises(ValueError, match=r"histories\[0\]\[1\] must be a string"): imr.infill([["hello", None]], [[None]])


@pytest.mark.parametrize("module", ["ed", "baseline", "imr.model", "imr.decode", "imr.chat", "ra", "fib"])
def test_no_variant_keeps_its_own_check(module):
    import importlib
    mod = importlib.import_module(f"chatbert.models.{module}")
    assert getattr(mod, "check_histories", check_histories) is check_histories


def test_chat_imports_no_variant():
    "chat.py is what every variant imports, so it imports none of them (no cycles)."
    tree = ast.parse((Path(__file__).resolve().parent.parent / "chatbert" / "models" / "chat.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    variants = {f"{p}{v}" for v in ("ed", "baseline", "imr", "imr.model", "imr.decode", "imr.chat", "ra", "fib")
                for p in ("", "chatbert.models.")}
    assert not imported & variants, imported & variants


BAD_DECODING = {"schedule": "foo", "steps": 0, "num_beams": 0, "max_new_tokens": "5", "top_p": 1.5}


@pytest.mark.parametrize("key", list(BAD_DECODING))
def test_generate_checks_decoding_alike_in_every_variant(chat, key):
    "A bad decoding option fails before any work, with the one message `config.validate_decoding` writes."
    from chatbert.config import ConfigError
    with pytest.raises(ConfigError, match=rf"^Config key 'decode\.{key}' must be "):
        chat.generate([["hello", "how are you?"]], **{key: BAD_DECODING[key]})
