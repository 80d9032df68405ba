import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from datasets import Dataset, DatasetDict

from chatbert.config import Config, DataConfig, ModelConfig, RAConfig, TrainConfig
from chatbert.data import make_conversation, make_examples
from chatbert.text import normalize
from chatbert.models.ra import RAChat, bi_encoder, blocked_ids, build_pool, context_text, search, training_pairs
from chatbert.evaluation.ranking import candidate_sets, load_candidate_sets, rank_metrics, ranking_metrics

TEST_ONLY = "zanzibar has the best octopus curry in the world"


def _convs(prefix, n, extra=()):
    topics = ["pizza", "soccer", "physics", "guitar", "hiking", "coffee", "movies", "chess", "rain", "dogs", "python", "jazz"]
    convs = [make_conversation(f"{prefix}{i}", [f"hi, do you like {t}?", f"yes i love {t}, {i} times a day", "ok",
                                                f"why {t} though, {i}?", f"because {t} makes me happy number {i}"])
             for i, t in ((i, topics[i % len(topics)]) for i in range(n))]
    return convs + [make_conversation(f"{prefix}x{j}", turns) for j, turns in enumerate(extra)]


@pytest.fixture(scope="module")
def cfg():
    return Config(data=DataConfig(context_turns=3, max_context_len=64, max_reply_len=24),
                  model=ModelConfig(variant="ra", backbone="tiny"),
                  train=TrainConfig(device="cpu", batch_size=8, lr=1e-3, logging_steps=5, warmup_ratio=0.0),
                  ra=RAConfig(eval_contexts=10))


@pytest.fixture(scope="module")
def examples(tok, cfg):
    "Train replies include 'ok'; one test reply occurs only in test."
    train = _convs("tr", 36)
    test = _convs("te", 4, extra=[["where should i eat on holiday?", TEST_ONLY], ["hmm", "ok"]])
    return DatasetDict({s: Dataset.from_dict(make_examples(c, tok, cfg.data)) for s, c in
                        (("train", train), ("validation", train[:2]), ("test", test))})


@pytest.fixture(scope="module")
def encoder(cfg):
    return bi_encoder("tiny", cfg.data.max_context_len + 2, device="cpu")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    "Keep pool-embedding caches out of the project's .cache."
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def chat(cfg, examples, encoder):
    return RAChat.from_config(cfg, examples=examples, encoder=encoder)


def test_pool_holds_training_replies_only(chat, examples):
    train_keys = {normalize(r) for r in examples["train"]["reply"]}
    assert set(chat.pool.keys) == train_keys and len(chat.pool) == len(train_keys)
    assert TEST_ONLY in examples["test"]["reply"] and TEST_ONLY not in chat.pool
    assert "ok" in examples["test"]["reply"] and "OK" in chat.pool          # shared with train: legitimately in the pool
    assert chat.pool.counts[chat.pool.index["ok"]] == 36                     # de-duplicated, with its count
    replies = chat.generate([["where should i eat on holiday?"], ["hmm"]], block_repeats=False)
    assert all(r in chat.pool for r in replies) and TEST_ONLY not in replies


def test_pool_run_holds_only_the_runs_training_examples(cfg, examples, encoder):
    "ra.pool: run answers from the replies of the examples the generators learn from (train.max_train_examples), no more."
    import dataclasses
    from chatbert.data import run_examples
    small = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_train_examples=20), ra=dataclasses.replace(cfg.ra, pool="run"))
    seen = run_examples(examples["train"], small.train.seed, 20)
    pool = RAChat.from_config(small, examples=examples, encoder=encoder).pool
    assert len(seen) == 20 and pool == build_pool(seen["reply"]) and len(pool) < len(build_pool(examples["train"]["reply"]))
    split = dataclasses.replace(small, ra=dataclasses.replace(cfg.ra, pool="split"))   # the default: the whole split
    assert RAChat.from_config(split, examples=examples, encoder=encoder).pool == build_pool(examples["train"]["reply"])


def test_pool_cap_keeps_most_frequent():
    pool = build_pool(["a", "b", "b", "c", "c", "c", "d"], max_size=2)
    assert pool.keys == ["c", "b"] and pool.counts == [3, 2]


def test_planted_exact_pair_is_top1(chat):
    planted = "the moon is made of green cheese and tuesdays"
    query = chat.encode_replies([planted])
    pool = build_pool(list(chat.pool.texts) + [planted])
    emb = chat.encode_replies(pool.texts)
    (top, score), *_ = search(query, emb, 5)[0]
    assert pool.texts[top] == planted and score == pytest.approx(1.0, abs=1e-5)


def test_planted_pair_through_generate(cfg, examples, encoder):
    "A training reply identical to a history's query text is that history's reply."
    hist = ["tell me about your day"]
    query = context_text(hist, encoder.tokenizer, cfg)
    train = examples["train"].add_item({**examples["train"][0], "reply": query})
    chat = RAChat.from_config(cfg, examples=DatasetDict({**examples, "train": train}), encoder=encoder)
    assert chat.generate([hist], block_repeats=False) == [query]   # the planted reply normalises to the history turn itself, which repeat blocking would refuse


def test_repeat_blocking(chat):
    h = ["what now", "ok then", "do you like pizza?"]            # context_turns = 3: all of it is the context
    top = chat.generate([h])[0]
    said = [top.upper() + " ", *h]                              # said before, other spelling, same context
    assert normalize(chat.generate([said])[0]) != normalize(top)
    assert chat.generate([said], block_repeats=False) == [top]
    assert chat.pool.index[normalize(top)] in blocked_ids(chat.pool, said)


def test_frequency_penalty_demotes_generic_replies(chat):
    h = [["why pizza though, 0?"], ["ok"], ["do you like chess?"]]
    hits = chat.retrieve(h, k=len(chat.pool), frequency_penalty=10.0, block_repeats=False)
    assert all(chat.pool.counts[row[0][0]] == 1 for row in hits)
    assert "ok" not in map(normalize, chat.generate(h, frequency_penalty=10.0))


def test_generate_interface(chat):
    hist = [["hi, do you like jazz?"], ["hi", "yes", "why soccer though"], ["😀 ünïcödé?"]]
    out = chat.generate(hist)
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(r, str) and r for r in out)
    assert chat.generate(hist[:1]) == out[:1]                   # batching does not change a reply
    s1, s2 = chat.generate(hist, do_sample=True, seed=3), chat.generate(hist, do_sample=True, seed=3)
    assert s1 == s2
    long = [["blah " * 500 + "end", "do you like chess?"]]
    assert len(chat.tokenizer(chat.contexts(long)[0], add_special_tokens=False)["input_ids"]) <= 64
    with pytest.raises(ValueError, match="empty or whitespace"):
        chat.generate([["hi", "   "]])
    with pytest.raises(TypeError, match="Unknown decoding option"):
        chat.generate(hist, beams=3)


def test_cross_encoder_rerank_orders_by_its_scores(cfg, examples, encoder):
    c = dataclasses.replace(cfg, ra=dataclasses.replace(cfg.ra, cross_encoder="backbone", rerank_top_k=5))
    chat = RAChat.from_config(c, examples=examples, encoder=encoder)
    h = [["do you like coffee?"]]
    plain, reranked = chat.retrieve(h, rerank=False)[0], chat.retrieve(h)[0]
    assert sorted(i for i, _ in plain) == sorted(i for i, _ in reranked)
    ce = chat.cross.predict([(chat.contexts(h)[0], chat.pool.texts[i]) for i, _ in reranked]).tolist()
    assert ce == sorted(ce, reverse=True) and [s for _, s in reranked] == pytest.approx(ce, abs=1e-5)
    assert RAChat.from_config(cfg, examples=examples, encoder=encoder).cross is None     # off by default


def test_save_load_roundtrip(chat, tmp_path):
    hist = [["hi, do you like rain?"], ["why guitar though"]]
    again = RAChat.load(chat.save(tmp_path / "ra"))
    assert again.generate(hist) == chat.generate(hist) and torch.equal(again.embeddings, chat.embeddings)
    assert again.pool == chat.pool and again.cfg == chat.cfg
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        RAChat.load(tmp_path / "nothing")


def test_candidate_sets_identical_across_runs(cfg, examples, tmp_path):
    a = load_candidate_sets(cfg, examples, tmp_path / "a.json")
    assert load_candidate_sets(cfg, examples, tmp_path / "a.json") == a
    assert candidate_sets(examples["test"], 10, extra=examples["train"]["reply"]) == a
    assert len(a) == 10 and all(len(s["negatives"]) == 99 and normalize(s["reply"]) not in map(normalize, s["negatives"])
                                for s in a)
    # Another process with another hash seed writes the same bytes.
    code = ("import json,sys; from datasets import load_from_disk; from chatbert.evaluation.ranking import candidate_sets;"
            "d = load_from_disk(sys.argv[1]); print(json.dumps(candidate_sets(d['test'], 10, extra=d['train']['reply'])))")
    examples.save_to_disk(str(tmp_path / "ds"))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ds")], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert json.loads(out) == a
    fewer_turns = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, context_turns=2))
    assert load_candidate_sets(fewer_turns, examples, tmp_path / "a.json") == a                # k=3 contexts serve k=2
    for other in (dataclasses.replace(cfg.data, context_turns=4), dataclasses.replace(cfg.data, test_percent=10)):
        with pytest.raises(ValueError, match="other settings"):
            load_candidate_sets(dataclasses.replace(cfg, data=other), examples, tmp_path / "a.json")


def test_ranking_metrics_on_saved_sets(chat, examples, tmp_path):
    m = ranking_metrics(chat, examples, tmp_path / "c.json")
    assert set(m) >= {"hits@1/20", "hits@1/100", "mrr"} and m["ranking_n"] == 10 and 0 <= m["hits@1/100"] <= m["hits@1/20"]
    assert (tmp_path / "c.json").is_file() and ranking_metrics(chat, path=tmp_path / "c.json") == m    # reused, no data needed


def test_from_config_takes_the_backbone_tokenizer(cfg, examples, encoder, tok):
    "The run harness calls `from_config(cfg, tokenizer)`."
    assert RAChat.from_config(cfg, tok, examples=examples, encoder=encoder).pool == build_pool(examples["train"]["reply"])


def test_rank_metrics_count_ties_against_the_truth():
    m = rank_metrics([[1.0] + [0.0] * 99, [0.0] * 100, [0.5] + [0.9] + [0.0] * 98])
    assert m["hits@1/20"] == pytest.approx(1 / 3) and m["hits@1/100"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 100 + 1 / 2) / 3)


def test_finetuning_learns_planted_pairs(cfg, examples, tmp_path):
    "In-batch-negative fine-tuning makes each training context retrieve its own reply."
    enc = bi_encoder("tiny", cfg.data.max_context_len + 2, device="cpu")
    c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=4.0, lr=3e-3))
    chat = RAChat.from_config(c, examples=examples, encoder=enc)
    train = examples["train"].select(range(24))                                      # 6 conversations
    probe = train.filter(lambda e: e["turn"] == 4)                                     # "because <topic> ... number i"
    hist, gold = probe["context"], probe["reply"]

    def acc(): return sum(a == b for a, b in zip(chat.generate(hist, block_repeats=False), gold)) / len(gold)
    before = acc()
    trainer = chat.fit(train, examples["validation"], tmp_path / "ft")
    after, log = acc(), chat.fit_log
    assert trainer.state.log_history                                                   # what the run harness records
    assert log["train_pairs"] == len(training_pairs(train, chat.tokenizer)) == len(train)
    assert log["eval_loss_after"] < log["eval_loss_before"] and after > before and after >= 0.8
