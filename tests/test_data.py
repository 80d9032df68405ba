import json

import pytest

from chatbert.backbone import OTHER, SELF
from chatbert.config import DataConfig
from chatbert.data import (SPLITS, DataFormatError, cap_conversations, context_ids, data_stats, detokenize,
                           encode_history, example_keys, hash_split, load_ccc, load_conversations, load_dailydialog,
                           load_examples, load_personachat, make_conversation, make_examples, read_jsonl_file,
                           split_conversations)

DD_LINES = [
    "Say , Jim , how about going for a few beers after dinner ? __eou__ You know that is tempting but is really not good for our fitness . __eou__ What do you mean ? __eou__\n",
    "Can you do push-ups ? __eou__ Of course I can . __eou__\n",
]

PARLAI = """1 your persona: i like to ski .
2 your persona: i have a dog .
3 hi , how are you ?\tgood , just back from skiing .\t\tno|good , just back from skiing .
4 nice , where ?\tin the alps with my dog .\t\tyes|in the alps with my dog .
1 your persona: i am a chef .
2 hello !\thi , i cook for a living .\t\tx|hi , i cook for a living .
"""


def dd_dir(tmp_path, lines=DD_LINES, split="train"):
    d = tmp_path / "dd" / split
    d.mkdir(parents=True, exist_ok=True)
    (d / f"dialogues_{split}.txt").write_text("".join(lines))
    return tmp_path / "dd"


def test_dailydialog_official_format(tmp_path):
    root = dd_dir(tmp_path)
    convs = load_dailydialog(root)["train"]
    assert [len(c.turns) for c in convs] == [3, 2]
    assert convs[0].turns[2] == "What do you mean ?" and convs[0].speakers == [0, 1, 0]


def test_dailydialog_malformed_line_names_file_and_line(tmp_path):
    root = dd_dir(tmp_path, DD_LINES + ["no end of utterance marks here\n"])
    with pytest.raises(DataFormatError, match=r"dialogues_train\.txt:3:"):
        load_dailydialog(root)


def test_official_train_validation_become_train_validation_test(tmp_path):
    lines = [f"hello number {i} __eou__ reply {i} __eou__\n" for i in range(300)]
    root = dd_dir(tmp_path, lines, "train")
    dd_dir(tmp_path, [f"val {i} __eou__ ok {i} __eou__\n" for i in range(20)], "validation")
    cfg = DataConfig(source="dailydialog", path=str(root), val_percent=10)
    splits = load_conversations(cfg)
    assert len(splits["test"]) == 20 and all(c.turns[0].startswith("val") for c in splits["test"])
    assert 10 < len(splits["validation"]) < 60 and len(splits["train"]) + len(splits["validation"]) == 300
    assert not {c.id for c in splits["train"]} & {c.id for c in splits["validation"]}


def test_personachat_parlai_format_with_persona(tmp_path):
    (tmp_path / "train_self_original.txt").write_text(PARLAI)
    convs = load_personachat(tmp_path)["train"]
    assert len(convs) == 2
    first = convs[0]
    assert first.turns == ["hi , how are you ?", "good , just back from skiing .", "nice , where ?", "in the alps with my dog ."]
    assert first.persona == ["i like to ski .", "i have a dog ."] and first.speakers[first.persona_speaker::2] == [1, 1]


def test_personachat_malformed(tmp_path):
    (tmp_path / "valid_self_original.txt").write_text("1 hi\tthere\nnot numbered\n")
    with pytest.raises(DataFormatError, match=r"valid_self_original\.txt:2:"):
        load_personachat(tmp_path)


def test_jsonl_formats_and_bad_line(tmp_path):
    p = tmp_path / "mine.jsonl"
    recs = [{"id": "a", "turns": ["hi", "hello"]},
            {"id": "b", "turns": [{"speaker": "u", "text": "yo"}, {"speaker": "u", "text": "there?"}, {"speaker": "v", "text": "yes"}]},
            {"messages": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hey"}, {"role": "assistant", "content": "hi!"}]}]
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    convs = read_jsonl_file(p)
    assert [c.turns for c in convs] == [["hi", "hello"], ["yo there?", "yes"], ["hey", "hi!"]]
    assert convs[2].id == "mine-3"
    p.write_text(json.dumps(recs[0]) + "\n{not json\n")
    with pytest.raises(DataFormatError, match=r"mine\.jsonl:2:"):
        read_jsonl_file(p)


def test_ccc_real_package_is_cleaned():
    convs = load_ccc()
    assert 3000 < len(convs) < 7168  # one-participant conversations dropped
    assert all(len(set(c.speakers)) >= 2 and all(t.strip() for t in c.turns) for c in convs)
    assert all(a != b for c in convs for a, b in zip(c.speakers, c.speakers[1:]))  # one speaker's messages make one turn


def test_hash_split_is_stable_and_disjoint():
    # Pinned values: changing the hash would silently move conversations between splits.
    assert [hash_split(f"conv{i}") for i in range(8)] == [hash_split(f"conv{i}") for i in range(8)]
    assert hash_split("abc", 5, 5) == "train" and hash_split("conv1") == "train"
    splits = load_conversations(DataConfig(source="ccc"))
    ids = {s: {c.id for c in splits[s]} for s in SPLITS}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["validation"] and not ids["validation"] & ids["test"]
    again = load_conversations(DataConfig(source="ccc"))
    assert all([c.id for c in again[s]] == [c.id for c in splits[s]] for s in SPLITS)
    share = len(ids["test"]) / sum(map(len, ids.values()))
    assert 0.03 < share < 0.07


def test_duplicates_removed_and_no_leak_into_train():
    a, b = make_conversation("1", ["hi", "yo"]), make_conversation("2", ["hi", "yo"])
    c = make_conversation("3", ["other", "one"])
    out = split_conversations(DataConfig(val_percent=0), official={"train": [a, c, c], "test": [b]})
    assert [x.id for x in out["train"]] == ["3"] and [x.id for x in out["test"]] == ["2"]


def test_left_truncation_keeps_the_turn_being_answered(tok):
    long_old = " ".join(["word"] * 200)
    conv = make_conversation("t", [long_old, "the last question?", "an answer"])
    ex = make_examples([conv], tok, DataConfig(context_turns=4, max_context_len=20))
    ctx = ex["context_ids"][1]
    assert len(ctx) == 20
    last = [tok.convert_tokens_to_ids(OTHER)] + tok("the last question?", add_special_tokens=False)["input_ids"]
    assert ctx[-len(last):] == last
    assert ex["context_len"][1] > 200  # the untruncated length is kept for statistics


def test_speaker_marks_identical_in_training_and_inference(tok):
    turns = ["hello there", "hi! who is this?", "your neighbour", "oh, hi", "can I borrow sugar?"]
    conv = make_conversation("s", turns)
    cfg = DataConfig(context_turns=3)
    ex = make_examples([conv], tok, cfg)
    for i in range(1, len(turns)):
        assert ex["context_ids"][i - 1] == encode_history(turns[:i], tok, cfg)
    marks = [t for t in tok.convert_ids_to_tokens(ex["context_ids"][-1]) if t in (OTHER, SELF)]
    assert marks == [OTHER, SELF, OTHER]  # the turn being answered is always the other speaker's


def test_persona_survives_truncation(tok):
    ids = context_ids([[5] * 50], [False], tok, 20, persona_ids=[7, 7, 7])
    assert ids[:3] == [7, 7, 7] and len(ids) == 20


def test_cap_keeps_each_split_its_share():
    splits = {"train": list(range(900)), "validation": list(range(50)), "test": list(range(50))}
    capped = cap_conversations(splits, 100)
    assert {s: len(v) for s, v in capped.items()} == {"train": 90, "validation": 5, "test": 5}


def test_examples_are_cached(tok, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATBERT_CACHE", str(tmp_path))
    cfg = DataConfig(max_conversations=30)
    first = load_examples(cfg, tok)
    assert any((tmp_path / "examples").iterdir())
    second = load_examples(cfg, tok)
    assert second["train"]["reply_ids"] == first["train"]["reply_ids"]
    assert all(len(r) <= cfg.max_reply_len for r in first["train"]["reply_ids"])


# -- no test example in training --

def _pairs(convs, turns):
    return {k for c in convs for k in example_keys(c, turns)}


def test_no_test_pair_occurs_in_train_or_validation(tmp_path, tok):
    "DailyDialog-style files where train holds a near-copy of a test conversation and a shared 2-turn window."
    test = ["Hi , how are you ? __eou__ Fine , thanks . And you ? __eou__ Great ! __eou__\n",
            "Where is the station ? __eou__ Turn left at the bank . __eou__\n"]
    train = ["hi, how are you? __eou__ fine, thanks. and you? __eou__ Not bad . __eou__\n",        # shares 1 window
             "Good morning . __eou__ Where is the station ? __eou__ Turn left at the bank . __eou__\n",  # reply + window
             "Good morning . __eou__ Morning ! __eou__\n"] + [f"filler {i} __eou__ reply {i} __eou__\n" for i in range(40)]
    root = dd_dir(tmp_path, train, "train")
    dd_dir(tmp_path, test, "validation")                                   # the official validation file becomes test
    cfg = DataConfig(source="dailydialog", path=str(root), context_turns=1, val_percent=10, max_context_len=64)
    splits = load_conversations(cfg)
    kept = [c.turns for c in splits["train"] + splits["validation"]]
    assert ["Good morning .", "Morning !"] in kept and len(kept) == 41      # the near-copy and the shared window go
    assert not _pairs(splits["train"] + splits["validation"], 1) & _pairs(splits["test"], 1)
    assert splits.dropped["train"]["test_overlap"] + splits.dropped["validation"]["test_overlap"] == 2
    ex = load_examples(cfg, tok, cache=False)
    rows = data_stats(splits, ex, cfg)                                     # what results/data records
    assert sum(r["dropped_test_overlap"] for r in rows) == 2 and all("dropped_duplicates" in r for r in rows)
    key = lambda e: (tuple(t.lower().replace(" ", "") for t in e["context"]), e["reply"].lower().replace(" ", ""))
    assert not {key(e) for e in ex["test"]} & {key(e) for s in ("train", "validation") for e in ex[s]}


def test_ccc_test_pairs_never_occur_in_train():
    cfg = DataConfig(source="ccc")
    splits = load_conversations(cfg)
    assert not _pairs(splits["train"] + splits["validation"], cfg.context_turns) & _pairs(splits["test"], cfg.context_turns)


def test_a_long_turn_being_answered_keeps_its_mark_and_its_end(tok):
    other = tok.convert_tokens_to_ids(OTHER)
    long_last = " ".join(f"w{i}" for i in range(60)) + " so what do you think?"
    conv = make_conversation("t", ["an older turn", long_last, "an answer"])
    ctx = make_examples([conv], tok, DataConfig(context_turns=4, max_context_len=20))["context_ids"][1]
    end = tok("what do you think?", add_special_tokens=False)["input_ids"]
    assert len(ctx) == 20 and ctx[0] == other and ctx[-len(end):] == end            # the mark, then the turn's end
    assert tok.convert_tokens_to_ids(SELF) not in ctx                              # the older turn made room for it
    two = context_ids([[5] * 10, [6] * 3], [True, False], tok, 8)
    assert two == [tok.convert_tokens_to_ids(SELF), 5, 5, 5, other, 6, 6, 6]     # a cut older turn keeps its mark


def test_detokenize_returns_readable_text_that_tokenizes_back_to_the_same_ids(tok):
    cases = {"I'm going to see the time.": "i'm going to see the time.",
             "It's a well-known place, open 24/7!": "it's a well-known place, open 24/7!",
             'He said "no" (twice), then left at 10:30...': 'he said "no" (twice), then left at 10:30...',
             "I don't know, it costs $3.50 o'clock": "i don't know, it costs $3.50 o'clock"}
    for text, want in cases.items():
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert detokenize(tok, ids) == want
        assert tok(detokenize(tok, ids), add_special_tokens=False)["input_ids"] == ids
    assert detokenize(tok, [tok.cls_token_id, *tok("ok !", add_special_tokens=False)["input_ids"], tok.sep_token_id]) == "ok!"
