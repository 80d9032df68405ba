import pytest

from chatbert.evaluate import (BertScore, bleu, distinct, diversity, generation_metrics, mean_and_spread, normalize,
                               rouge)


def test_normalisation_makes_wordpiece_and_dailydialog_text_agree(tok):
    decoded = tok.decode(tok("I'm fine, thanks! Don't worry.", add_special_tokens=False)["input_ids"])
    dailydialog = "I ' m fine , thanks ! Don \u2019 t worry ."
    assert normalize(decoded) == normalize(dailydialog) == "i'm fine , thanks ! don't worry ."


def test_bleu_bounds_and_signature():
    refs = ["the weather is nice today", "i would like a cup of coffee please"]
    assert bleu(refs, refs)["bleu4"] == pytest.approx(100)
    assert bleu(["zebra quantum", "purple lamp"], refs)["bleu2"] < 5
    assert "nrefs:1" in bleu(refs, refs)["bleu2_signature"]


def test_rouge_uses_the_stemmer_and_an_interval():
    r = rouge(["the cats were running"], ["the cat was running"], n_samples=50)
    assert r["rouge1"] == pytest.approx(75.0)  # the, cat(s), running match; were/was do not
    assert r["rouge1_low"] <= r["rouge1"] <= r["rouge1_high"]


@pytest.fixture(scope="module")
def bertscore():
    train = ["hello there", "how are you doing", "i am fine thanks", "see you later", "what do you do for work",
             "i like hiking in the mountains", "my cat is asleep", "do you want some tea"]
    return BertScore(train, baseline_pairs=64)


def test_bertscore_rescaled_by_a_train_baseline(bertscore):
    same = bertscore(["i like tea"], ["i like tea"])
    assert same["bertscore_f1_raw"] == pytest.approx(100, abs=0.5) and same["bertscore_f1"] == pytest.approx(100, abs=1)
    assert 0.0 < bertscore.baseline < 1.0
    close = bertscore(["i love tea"], ["i like tea"])["bertscore_f1"]
    far = bertscore(["the stock market crashed"], ["i like tea"])["bertscore_f1"]
    assert close > far


def test_distinct_uses_a_fixed_sample():
    texts = [f"reply number {i}" for i in range(100)] + ["same same"] * 100
    assert distinct(texts, 1, sample_size=50, seed=1) == distinct(texts, 1, sample_size=50, seed=1)
    assert distinct(["a b", "a b"], 1) == 0.5 and distinct(["a b", "c d"], 2) == 1.0


def test_diversity_counts_repeats_and_empties():
    d = diversity(["", "yes yes", "no"], ["a", "b", "c"])
    assert d["empty_rate"] == pytest.approx(1 / 3) and d["repetition_rate"] == pytest.approx(1 / 3)


def test_metrics_refuse_mismatched_inputs():
    with pytest.raises(ValueError, match="as many replies"):
        generation_metrics(["a"], ["a", "b"])


def test_mean_and_spread_over_seeds():
    agg = mean_and_spread([{"bleu4": 1.0, "sig": "x"}, {"bleu4": 3.0, "sig": "x"}])
    assert agg["bleu4"] == 2.0 and agg["bleu4_std"] == pytest.approx(1.4142, abs=1e-3) and agg["seeds"] == 2
