import numpy as np
import pytest
from rouge_score import rouge_scorer, scoring

from chatbert.config import load_config
from chatbert.data import detokenize, load_examples
from chatbert.evaluation.metrics import BertScore, bleu, distinct, diversity, generation_metrics, mean_and_spread, rouge
from chatbert.text import normalize


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


def test_an_empty_reply_scores_raw_zero_and_does_not_stop_the_evaluation(bertscore):
    both = bertscore(["", "i like tea"], ["see you later", "i like tea"])
    alone = bertscore(["i like tea"], ["i like tea"])
    assert both["bertscore_f1_raw"] == pytest.approx(alone["bertscore_f1_raw"] / 2, abs=1e-4)
    assert bertscore([""], ["i like tea"])["bertscore_f1"] == pytest.approx(
        100 * -bertscore.baseline / (1 - bertscore.baseline), abs=1e-4)
    m = generation_metrics(["", "i like tea"], ["see you later", "i like tea"], bertscore=bertscore, sample_size=2)
    assert m["empty_rate"] == 0.5 and "bertscore_f1" in m


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
    assert agg["sig"] == "x"


# -- one normalisation for generated and human text --

REPLIES = ["I'm going to see the time.", "It's a well-known shop, open 24/7!", "Don\u2019t worry , it ' s *really* fine .",
           "E-mail me at 10:30, ok?", "I'm sorry. I'm a great cook -- honestly!", "\u201cNo,\u201d she said (twice)."]


def test_a_reply_equal_to_its_reference_scores_100_from_the_tokenizer_or_raw_text(tok):
    generated = [detokenize(tok, tok(r, add_special_tokens=False)["input_ids"]) for r in REPLIES]   # a perfect generator
    for hyps in (generated, REPLIES):                                                               # and RA's human text
        m = generation_metrics(hyps, REPLIES, sample_size=10)
        assert m["bleu4"] == pytest.approx(100, abs=1e-9) and m["bleu2"] == pytest.approx(100, abs=1e-9)
        assert m["rougeL"] == 100 and m["rouge1"] == 100
        assert (m["distinct1"], m["distinct2"], m["len_mean"]) == (m["ref_distinct1"], m["ref_distinct2"], m["ref_len_mean"])
    assert [normalize(g) for g in generated] == [normalize(r) for r in REPLIES]
    assert "well-known" in normalize(REPLIES[1]).split() and "24/7" in normalize(REPLIES[1]).split()


def test_generated_text_is_readable():
    from chatbert.text import metric_tokenizer
    tok = metric_tokenizer()
    assert detokenize(tok, tok("I'm going to see the time.", add_special_tokens=False)["input_ids"]) == "i'm going to see the time."


# -- smaller defects --

def test_rouge_reports_the_mean_not_the_bootstrap_median():
    hyps = ["the cat sat on the mat", "a dog", "hello there my friend", "no", "yes it is"]
    refs = ["the cat sat on the mat", "a big dog barked", "hello friend", "maybe", "it is yes indeed"]
    r = rouge(hyps, refs, n_samples=7, seed=3)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    per = [scorer.score(normalize(b), normalize(a)) for a, b in zip(hyps, refs)]
    for k in ("rouge1", "rouge2", "rougeL"):
        assert r[k] == pytest.approx(100 * np.mean([p[k].fmeasure for p in per]), abs=1e-9)
    agg = scoring.BootstrapAggregator(n_samples=7)
    for p in per: agg.add_scores(p)
    np.random.seed(3)
    assert abs(100 * agg.aggregate()["rouge1"].mid.fmeasure - r["rouge1"]) > 0.1     # what was reported before


def test_bleu_signatures_name_their_order():
    b = bleu(["a b c d"], ["a b c d"])
    assert b["bleu4_signature"] != b["bleu2_signature"]
    assert b["bleu4_signature"].endswith("|order:4") and b["bleu2_signature"].endswith("|order:2")


def test_sampled_decoding_keeps_signatures_settings_and_variant_statistics(tok):
    "evaluate_chat over sampling seeds: the mean and spread, and every non-numeric setting, as with greedy decoding."
    from chatbert.experiments.experiment import evaluate_chat
    cfg = load_config("smoke")
    dd = load_examples(cfg.data, tok)

    class Echo:
        "A chat that answers with a seed-dependent piece of the reference and reports a statistic."
        def generate(self, histories, seed=0, **decoding):
            self.last_stats = {"remask_per_reply": float(seed)}
            return [" ".join(h[-1].split()[: 2 + seed]) for h in histories]

    greedy, _ = evaluate_chat(Echo(), cfg, dd)
    sampled, _ = evaluate_chat(Echo(), cfg, dd, do_sample=True)
    assert sampled["bleu4_signature"] == greedy["bleu4_signature"] and sampled["bleu2_signature"] != greedy["bleu4_signature"]
    assert sampled["seeds"] == len(cfg.eval.sample_seeds) and sampled["remask_per_reply"] == pytest.approx(1.0)
    assert sampled["bleu4_std"] >= 0 and "remask_per_reply_std" in sampled
    with pytest.raises(ValueError, match="differ"):
        mean_and_spread([{"bleu4": 1.0, "bertscore_settings": "L6"}, {"bleu4": 2.0, "bertscore_settings": "L4"}])


def test_bertscore_settings_survive_sampled_decoding(bertscore):
    runs = [generation_metrics(["i like tea"], ["i like tea"], bertscore, sample_size=1)] * 2
    agg = mean_and_spread(runs)
    assert agg["bertscore_settings"] == runs[0]["bertscore_settings"] and agg["bertscore_f1"] == runs[0]["bertscore_f1"]
