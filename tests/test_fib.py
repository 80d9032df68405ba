import dataclasses
import itertools
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset, DatasetDict

from chatbert.config import Config, DataConfig, FIBConfig, ModelConfig, TrainConfig
from chatbert.data import make_conversation, make_examples
from chatbert.models.fib import FIBChat, Filled, Idf, Skeleton, fib_stats, layouts, make_skeleton
from chatbert.models.imr.chat import IMRChat
from chatbert.models.ra import RAChat, bi_encoder

TOPICS = ["pizza", "soccer", "physics", "guitar", "hiking", "coffee", "movies", "chess", "zanzibar", "dogs"]


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cfg():
    return Config(data=DataConfig(context_turns=3, max_context_len=64, max_reply_len=24),
                  model=ModelConfig(variant="fib", backbone="tiny"), train=TrainConfig(device="cpu", eval_batch_size=16),
                  fib=FIBConfig(idf_threshold=2.0, max_slot_len=3))


@pytest.fixture(scope="module")
def examples(tok, cfg):
    convs = [make_conversation(f"c{i}", [f"hi, do you like {t}?", f"yes i really like {t} and {TOPICS[(i + 3) % 10]}",
                                         "ok", "why though?", f"because {t} is fun, you know"])
             for i, t in enumerate(TOPICS * 3)]
    return DatasetDict({s: Dataset.from_dict(make_examples(c, tok, cfg.data)) for s, c in
                        (("train", convs[:24]), ("validation", convs[24:26]), ("test", convs[26:]))})


@pytest.fixture(scope="module")
def fib(cfg, examples, tok, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:                 # keep RA's embedding cache out of the project
        mp.setenv("CHATBERT_CACHE", str(tmp_path_factory.mktemp("cache")))
        ra = RAChat.from_config(cfg, examples=examples, encoder=bi_encoder("tiny", cfg.data.max_context_len + 2, device="cpu"))
        ra.embeddings
    return FIBChat.from_config(cfg, tok, imr=IMRChat.from_config(cfg, tok), ra=ra, examples=examples)


HIST = [["hi, do you like chess?"], ["so", "tell me about your weekend"], ["ok", "why though?"], ["what about coffee?"]]


def test_fib_needs_an_imr_model(cfg, examples):
    with pytest.raises(ValueError, match="no other filler"):
        FIBChat.from_config(cfg, examples=examples)


def test_skeleton_slots_rare_words_not_in_the_context(tok, cfg):
    idf = Idf({"i": 90, "love": 40, "in": 50, ",": 60, "you": 80, "?": 70, "utah": 30}, 100)
    sk = make_skeleton("I love snowboarding in Zanzibar city, you?", ["do you like sports?"], tok, idf, cfg)
    toks = tok.convert_ids_to_tokens(sk.tokens)
    # "snowboarding" alone; "zanzibar city" adjacent, one slot; common words and punctuation kept
    assert ["".join(t.removeprefix("##") for t in toks[s:e]) for s, e in sk.slots] == ["snowboarding", "zanzibarcity"]
    assert sk.words_kept == 4 and sk.usable(4) and not sk.usable(1)
    kept = make_skeleton("I love snowboarding", ["snowboarding, you?"], tok, idf, cfg)
    assert kept.slots == [] and not kept.usable(4)                       # in the context: on topic, kept
    free = make_skeleton("I love snowboarding", ["snowboarding?"], tok, idf,
                         dataclasses.replace(cfg, fib=dataclasses.replace(cfg.fib, keep_context_words=False)))
    assert len(free.slots) == 1
    assert not make_skeleton("Snowboarding!", ["hi"], tok, idf, cfg).usable(4)   # nothing kept but punctuation


def test_templates_and_layouts():
    sk = Skeleton("r", [1, 2, 3, 4, 5, 6], [(1, 3), (4, 5)], 3)
    assert sk.template((1, 2)) == [1, None, 4, None, None, 6] and sk.own_lengths == (2, 1)
    assert layouts(sk, 3) == [(2, 1), (1, 1), (2, 2), (3, 3)]
    assert sorted(layouts(sk, 3, "product")) == sorted((a, b) for a in (1, 2, 3) for b in (1, 2, 3))
    with pytest.raises(ValueError):
        sk.template((1,))


def test_output_keeps_every_fixed_token_and_fills_every_slot(fib, tok):
    filled = fib.fill(HIST, steps=3)
    banned = {tok.mask_token_id, tok.sep_token_id, tok.cls_token_id, tok.pad_token_id}
    assert any(r.layout is not None for r in filled)
    for r in filled:
        if r.layout is None:
            assert r.reply == r.skeleton.reply and not r.skeleton.usable(fib.cfg.fib.max_slots)
            continue
        t = r.skeleton.template(r.layout)
        assert len(r.tokens) == len(t) and r.kept == [x is not None for x in t]
        assert all(a == b for a, b in zip(r.tokens, t) if b is not None)           # every fixed token, in place
        assert all(a not in banned for a, b in zip(r.tokens, t) if b is None)       # every slot filled
        assert r.layout in layouts(r.skeleton, 3)


def test_layout_with_best_score_wins(fib):
    "The filler's mean log-probability picks the slot lengths: a filler that prefers 2-token slots gets them."
    def runs(t):                                        # lengths of the slots (runs of None) of a template
        return [len(list(g)) for is_slot, g in itertools.groupby(t, lambda x: x is None) if is_slot]

    class Filler:
        tokenizer, canvas_len = fib.imr.tokenizer, fib.imr.canvas_len
        def infill(self, histories, templates, **kw):
            toks = [[999 if x is None else x for x in t] for t in templates]
            return SimpleNamespace(tokens=toks, score=torch.tensor([-sum(abs(n - 2) for n in runs(t)) for t in templates],
                                                                   dtype=torch.float))
    two = FIBChat(fib.ra, Filler(), fib.idf, fib.cfg)
    filled = two.fill(HIST)
    assert any(r.layout is not None for r in filled)
    for r in filled:
        if r.layout is not None: assert r.layout == (2,) * len(r.layout), r.layout


def test_same_interface_as_every_variant(fib, tmp_path):
    out = fib.generate(HIST, steps=2)
    assert isinstance(out, list) and len(out) == len(HIST) and all(isinstance(r, str) and r for r in out)
    assert fib.generate(HIST[:2], steps=2) == out[:2]                               # batching changes nothing
    with pytest.raises(TypeError, match="Unknown decoding option"):
        fib.generate(HIST, beams=2)
    with pytest.raises(ValueError, match="empty or whitespace"):
        fib.generate([["hi", " "]])
    h3 = ["so", "ok", "why though?"]                                               # context_turns = 3
    said = fib.skeletons([h3])[0].reply                                             # RA's blocking reaches FIB
    assert fib.skeletons([[said, *h3]])[0].reply != said and fib.skeletons([[said, *h3]], block_repeats=False)[0].reply == said
    assert set(fib.last_stats) >= {"coverage", "copy_rate"}
    again = FIBChat.load(fib.save(tmp_path / "fib"))
    assert again.generate(HIST, steps=2) == out


def test_coverage_and_copy_rate():
    sk = Skeleton("a b c", [1, 2, 3], [(1, 2)], 2)
    rows = [Filled("x", [1, 7, 8, 3], sk, (2,), -1.0, [True, False, False, True]),
            Filled("a b c", [1, 2, 3], Skeleton("a b c", [1, 2, 3], [], 3), None, None, [True] * 3)]
    s = fib_stats(rows)
    assert s["coverage"] == 0.5 and s["copy_rate"] == 0.5 and s["slot_tokens_mean"] == 2 and s["own_layout_rate"] == 0
