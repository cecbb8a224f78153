"""The downstream runner: four settings end to end, honest selection, label mapping, training fraction, outputs,
configs, two processes (on the `downstream` fixture of conftest.py)."""

import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from memobert.cli import downstream_main
from memobert.data import schema
from memobert.data.labels import EmotionLabels
from memobert.modeling_memobert import MEmoBertForPrompt
from memobert.processing_memobert import MEmoBertProcessor
from memobert.data.folds import subsample_per_class
from memobert.downstream import (
    MODALITY_CASES,
    downstream_argument_parser,
    load_downstream_corpus,
    parse_downstream_arguments,
    run_downstream,
)
from memobert.training import ConfigError
from tests.support import REPO
from tests.support.corpora import (
    CLASSES,
    DEMO_LABELS,
    ROWS_PER_SPEAKER,
    corpus_rows,
    only_run,
    read_csv,
    tiny_args,
    write_corpus,
)


# -- the four settings end to end -------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["direct", "bert_direct", "finetune", "prompt"])
def test_every_setting_runs_end_to_end_and_tests_the_seven_modality_cases(downstream, tmp_path, setting):
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting=setting, save_models=setting == "prompt"))

    run = only_run(out, setting)
    assert list(run["test"]) == list(MODALITY_CASES)
    for case, metrics in run["test"].items():
        assert {"wa", "uar", "wf1", "f1", "confusion"} <= set(metrics)
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert [p["step"] for p in run["validation_curve"]] == [0, 2, 4, 6]
    assert run["selected_step"] in {0, 2, 4, 6}
    if setting == "finetune":
        assert run["init"]["new_parameters"] and all(k.startswith("classifier.") for k in run["init"]["new_parameters"])
    if setting == "direct":
        assert run["init"]["init"].startswith("random")

    predictions = read_csv(out / setting / "predictions.csv")
    assert len(predictions) == len(MODALITY_CASES) * run["rows"]["test"]
    assert Counter(p["case"] for p in predictions) == {c: run["rows"]["test"] for c in MODALITY_CASES}
    # The probabilities are over the classes only (for the prompt: the label words only), and sum to 1.
    assert [c for c in predictions[0] if c.startswith("p_")] == [f"p_{c}" for c in CLASSES]
    for p in predictions:
        assert abs(sum(float(p[f"p_{c}"]) for c in CLASSES) - 1) < 1e-4
        assert p["prediction"] == max(CLASSES, key=lambda c: float(p[f"p_{c}"]))
    test_speakers = set(run["speakers"]["test"])
    assert {p["utterance_id"].split("_")[0] for p in predictions} == test_speakers
    assert (out / setting / "confusion_LVA.png").stat().st_size > 1000
    assert f"| {setting} | LVA | 1 |" in (out / "results.md").read_text()


def test_the_prompt_head_scores_only_the_label_words(downstream, tmp_path):
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="prompt", save_models=True, modality_cases=["LVA", "V"]))
    run = only_run(out, "prompt")
    folder = out / "prompt" / "models" / f"{run['fold']}_seed1"
    model = MEmoBertForPrompt.from_pretrained(folder).eval()
    processor = MEmoBertProcessor.from_pretrained(str(folder))
    assert model.config.label_words == ["anger", "happy", "neutral", "sad"]

    predictions = [p for p in read_csv(out / "prompt" / "predictions.csv") if p["case"] == "LVA"]
    by_id = {r[schema.UTTERANCE_ID]: r for r in downstream["rows"]}
    rows = [by_id[p["utterance_id"]] for p in predictions]
    batch = processor(
        text=[r[schema.TEXT] for r in rows], visual=[r[schema.VISUAL_FEATS] for r in rows],
        acoustic=[r[schema.ACOUSTIC_FEATS] for r in rows], prompt=True,
    )
    with torch.no_grad():
        out_prompt = model(**batch)
        encoded = model.memobert(**batch)
    # The logits are the vocabulary scores of the 4 label words at [MASK], nothing else.
    mask_at = (batch["input_ids"] == processor.tokenizer.mask_token_id).int().argmax(dim=1)
    vocabulary = model.cls(encoded.text_hidden_state[torch.arange(len(rows)), mask_at])
    label_ids = processor.tokenizer.convert_tokens_to_ids(["anger", "happy", "neutral", "sad"])
    torch.testing.assert_close(out_prompt.logits, vocabulary[:, label_ids], atol=1e-5, rtol=1e-5)
    probabilities = torch.tensor([[float(p[f"p_{c}"]) for c in CLASSES] for p in predictions])
    torch.testing.assert_close(probabilities, out_prompt.logits.softmax(-1), atol=1e-5, rtol=1e-4)

    # Without text the prompt keeps its template: "[CLS] i am [MASK] . [SEP]".
    template = processor(visual=[rows[0][schema.VISUAL_FEATS]], prompt=True)
    assert processor.tokenizer.decode(template["input_ids"][0]) == "[CLS] i am [MASK]. [SEP]"


# -- honest protocol -------------------------------------------------------------------------------------------------


def test_the_test_fold_never_influences_selection(downstream, tmp_path, tokenizer):
    args = dict(setting="finetune", max_steps=16, eval_steps=4, modality_cases=["LVA"])
    run_downstream(tiny_args(downstream, tmp_path / "a", **args))
    first = only_run(tmp_path / "a", "finetune")

    # The same corpus with only the test speakers' labels changed (each moved to the next class).
    test_speakers = set(first["speakers"]["test"])
    rows = [dict(r) for r in downstream["rows"]]
    for row in rows:
        if row[schema.SPEAKER] in test_speakers:
            row[schema.LABEL] = DEMO_LABELS[(DEMO_LABELS.index(row[schema.LABEL]) + 1) % 4]
    perturbed = write_corpus(tmp_path / "perturbed", rows)
    run_downstream(tiny_args(downstream, tmp_path / "b", corpus=str(perturbed), **args))
    second = only_run(tmp_path / "b", "finetune")

    assert second["speakers"] == first["speakers"]
    assert second["validation_curve"] == first["validation_curve"]  # every step, loss and metric identical
    assert second["selected_step"] == first["selected_step"] > 0  # the tiny model learned, and the same step won
    assert len({p["validation"]["uar"] for p in first["validation_curve"]}) > 1  # the curve did move
    # The same selected model: the same test predictions; only the labels they are scored against changed.
    before, after = (read_csv(tmp_path / name / "finetune" / "predictions.csv") for name in ("a", "b"))
    assert [(p["utterance_id"], p["prediction"], p["p_anger"]) for p in before] == [
        (p["utterance_id"], p["prediction"], p["p_anger"]) for p in after]
    assert all(p["label"] != q["label"] for p, q in zip(before, after))
    assert second["test"]["LVA"]["confusion"] != first["test"]["LVA"]["confusion"]


def test_early_stopping_counts_validation_evaluations(downstream, tmp_path):
    run_downstream(tiny_args(downstream, tmp_path, setting="direct", max_steps=40, eval_steps=1, learning_rate=1e-6,
                             early_stopping_patience=2, modality_cases=["LVA"]))
    run = only_run(tmp_path, "direct")
    curve = run["validation_curve"]
    uars = [p["validation"]["uar"] for p in curve]
    best = int(np.argmax(uars))
    assert run["stopped_early"] and run["steps_trained"] < 40
    assert len(curve) == best + 3  # stopped after 2 evaluations without a better UAR
    assert run["selected_step"] == curve[best]["step"]


# -- folds, labels, training fraction -----------------------------------------------------------------------------


def test_corpus_labels_map_to_the_classes(tmp_path, tokenizer):
    labels = EmotionLabels.create(CLASSES)
    assert [labels.class_of_label(x) for x in ["happy", "happiness", "exc", "excited", "H", "ang", "Sad", "neu"]] == [
        "happiness", "happiness", "happiness", "happiness", "happiness", "anger", "sadness", "neutral"]
    assert [labels.class_of_label(x) for x in ["", "fru", "xxx", "X", "frustration", "oth", "bored"]] == [None] * 7
    no_merge = EmotionLabels.create(CLASSES, merge_excited=False)
    assert no_merge.class_of_label("excited") is None

    speakers = ["Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"]
    names = ["anger", "happiness", "excited", "frustration", "neutral", "sadness", "xxx", ""]
    rows = corpus_rows(tokenizer, speakers=speakers, label_names=names, sessions={s: s[4] for s in speakers})
    corpus = load_downstream_corpus(write_corpus(tmp_path, rows), labels)
    raw = Counter(r[schema.LABEL] for r in rows)
    assert corpus.dropped == {"": raw[""], "frustration": raw["frustration"], "xxx": raw["xxx"]}
    assert len(corpus) == len(rows) - sum(corpus.dropped.values())
    assert np.bincount(corpus.labels).tolist() == [raw["anger"], raw["happiness"] + raw["excited"], raw["neutral"],
                                                   raw["sadness"]]
    assert corpus.sessions[:ROWS_PER_SPEAKER] == ["1"] * ROWS_PER_SPEAKER
    assert len(corpus.folds("iemocap_loso_speaker")) == 6


def test_train_fraction_samples_per_class_and_results_show_mean_and_std(downstream, tmp_path):
    labels = np.repeat(np.arange(4), [40, 20, 10, 2])
    rows = np.arange(len(labels))
    kept = subsample_per_class(rows, labels, 0.1, seed=3)
    assert np.bincount(labels[kept]).tolist() == [4, 2, 1, 1]  # a tenth of each class, at least one
    assert kept.tolist() == subsample_per_class(rows, labels, 0.1, seed=3).tolist()
    assert kept.tolist() != subsample_per_class(rows, labels, 0.1, seed=4).tolist()

    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="direct", train_fraction=0.25, only_folds=[1, 2], seeds=[1, 2],
                             max_steps=2, eval_steps=1, modality_cases=["LVA", "A"]))
    runs = [json.loads(p.read_text()) for p in sorted((out / "direct-25pct" / "runs").glob("*.json"))]
    assert len(runs) == 4
    for run in runs:
        full = run["rows"]["train_available"] // 4  # the fixture's training speakers hold 2 rows of each class
        assert run["rows"]["train"] == sum(run["train_class_counts"].values()) < run["rows"]["train_available"]
        assert all(count == round(0.25 * full) for count in run["train_class_counts"].values())
    table = (out / "results.md").read_text()
    assert "| Setting | Modalities | n | WA | UAR | WF1 | F1 |" in table
    assert "| direct-25pct | LVA | 4 |" in table and "±" in table
    summary = json.loads((out / "results.json").read_text())
    assert summary["runs"] == {"direct-25pct": 4}


# -- configuration ---------------------------------------------------------------------------------------------------


def test_a_bad_config_fails_fast_naming_each_problem(downstream, tmp_path):
    with pytest.raises(ConfigError) as error:
        parse_downstream_arguments([
            "--setting", "promt", "--folds", "speaker_kfold:2", "--modality_cases", "L", "LX",
            "--train_fraction", "0", "--classes", "anger", "joy", "--corpus", str(tmp_path / "nope"),
        ])
    message = str(error.value)
    for expected in ("setting 'promt' is unknown", "speaker_kfold needs K >= 3", "modality case 'LX'",
                     "train_fraction must be in (0, 1]", "'joy'", "does not exist"):
        assert expected in message
    with pytest.raises(ConfigError, match="setting prompt needs pretrained_model"):
        parse_downstream_arguments(["--setting", "prompt"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting: finetune\nlerning_rate: 3e-5\n")
    with pytest.raises(ConfigError, match="lerning_rate"):
        parse_downstream_arguments(["--config", str(bad)])
    with pytest.raises(SystemExit, match=r"error: Invalid downstream config: seeds \[1, 1\] repeat a seed"):
        downstream_main(["--setting", "direct", "--seeds", "1", "1"])
    # Problems only the tokenizer can see fail before any training, naming the word.
    with pytest.raises(ConfigError, match="sorrowful"):
        run_downstream(tiny_args(downstream, tmp_path / "out", label_words=["anger", "happy", "neutral", "sorrowful"]))


def test_the_config_files_parse_and_help_explains_every_option(downstream):
    parser = downstream_argument_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help and action.help != "==SUPPRESS=="
    for name in ("--setting", "--pretrained_model", "--folds", "--train_fraction", "--modality_cases", "--seeds"):
        assert name in text
    for config in ("iemocap.yaml", "demo.yaml"):
        args = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning" / "configs" / config),
                                           "--pretrained_model", str(downstream["pretrained"])])
        assert args.modality_cases == list(MODALITY_CASES)
    iemocap = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning/configs/iemocap.yaml"),
                                          "--pretrained_model", str(downstream["pretrained"]), "--setting", "prompt"])
    assert iemocap.resolved_learning_rate == 3e-5 and iemocap.resolved_max_steps == 3000
    assert (iemocap.per_device_train_batch_size, iemocap.warmup_steps) == (32, 100)
    assert iemocap.folds == "iemocap_loso_speaker"
    finetune = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning/configs/iemocap.yaml"),
                                           "--pretrained_model", str(downstream["pretrained"]),
                                           "--setting", "finetune"])
    assert finetune.resolved_learning_rate == 5e-5 and 1500 <= finetune.resolved_max_steps <= 2000


# -- several processes ---------------------------------------------------------------------------------------------


def test_two_processes_predict_every_test_utterance_once(downstream, tmp_path):
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "prompt_tuning" / "run.py"), "--setting", "prompt",
        "--pretrained_model", str(downstream["pretrained"]),
        "--corpus", str(downstream["corpus"]), "--folds", "speaker_kfold:3", "--only_folds", "1", "--seeds", "1",
        "--max_steps", "4", "--eval_steps", "2", "--learning_rate", "1e-3", "--warmup_steps", "1",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "5", "--modality_cases", "LVA", "L",
        "--output_dir", str(tmp_path), "--no_progress_bar",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(tmp_path, "prompt")
    predictions = read_csv(tmp_path / "prompt" / "predictions.csv")
    for case in ("LVA", "L"):
        ids = [p["utterance_id"] for p in predictions if p["case"] == case]
        # 24 test rows in batches of 5 over 2 processes: the padding gather_for_metrics adds is dropped again.
        assert len(ids) == len(set(ids)) == run["rows"]["test"] == 24
