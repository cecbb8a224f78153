"""The downstream runner: four settings end to end, honest selection, folds, label mapping, outputs, configs."""

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from memobert import MEmoBertConfig
from memobert.cli import downstream_main
from memobert.data import schema
from memobert.data.labels import EmotionLabels
from memobert.modeling_memobert import MEmoBertForPreTraining, MEmoBertForPrompt
from memobert.processing_memobert import MEmoBertProcessor
from memobert.training import ConfigError
from memobert.training.downstream import (
    MODALITY_CASES,
    DownstreamArguments,
    corpus_class,
    downstream_argument_parser,
    load_downstream_corpus,
    make_folds,
    parse_downstream_arguments,
    run_downstream,
    sample_train_fraction,
)

from .conftest import tiny_config_kwargs

torch.set_num_threads(1)  # a shared machine: one thread is faster than two contended ones for these tiny models

REPO = Path(__file__).resolve().parents[1]
DEMO_LABELS = ["anger", "happy", "neutral", "sad"]  # the demo corpus' label strings (label words)
CLASSES = ["anger", "happiness", "neutral", "sadness"]
SPEAKERS = [f"spk{i:02d}" for i in range(9)]
ROWS_PER_SPEAKER = 8


def corpus_rows(tokenizer, speakers=SPEAKERS, label_names=DEMO_LABELS, seed=0) -> list[dict]:
    """Rows in the corpus schema whose label is learnable a little: a label-dependent shift in both frame features,
    and the label word in the text of half the rows. Some rows have no face."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, speaker in enumerate(speakers):
        for j in range(ROWS_PER_SPEAKER):
            label = (s + j) % len(label_names)
            num_visual = 0 if rng.random() < 0.15 else int(rng.integers(3, 14))
            num_acoustic = int(rng.integers(3, 18))
            visual = rng.standard_normal((num_visual, 6))
            visual[:, label % 4] += 3.0
            acoustic = rng.standard_normal((num_acoustic, 5))
            acoustic[:, label % 4] += 3.0
            text = f"well it was {['a long', 'an odd', 'a quiet'][j % 3]} day"
            if rng.random() < 0.5:
                text += f" and i feel {DEMO_LABELS[label % 4]}"
            encoding = tokenizer(text, add_special_tokens=False)
            rows.append({
                schema.UTTERANCE_ID: f"{speaker}_{j:02d}",
                schema.SOURCE: f"video_{speaker}",
                schema.START: float(j),
                schema.END: float(j) + 1.5,
                schema.TEXT: text,
                schema.INPUT_IDS: encoding["input_ids"],
                schema.WORD_IDS: encoding.word_ids(),
                schema.VISUAL_FEATS: visual.astype(np.float16),
                schema.FACE_SOFT_LABELS: np.full((num_visual, 8), 1 / 8, dtype=np.float16),
                schema.ACOUSTIC_FEATS: acoustic.astype(np.float16),
                schema.SPEAKER_SCORE: 0.5,
                schema.SPEAKER: speaker,
                schema.LABEL: label_names[label],
            })
    return rows


def write_corpus(folder: Path, rows: list[dict]) -> Path:
    schema.write_shard(rows, folder / "shard-00000.parquet", schema.corpus_features(6, 5, 8))
    return folder


@pytest.fixture(scope="module")
def fixture(tmp_path_factory, tokenizer) -> dict:
    """A labelled corpus, a tiny pretrained MEmoBERT folder (model + tokenizer) and a tiny text BERT folder."""
    from transformers import BertConfig, BertForPreTraining

    root = tmp_path_factory.mktemp("downstream")
    rows = corpus_rows(tokenizer)
    write_corpus(root / "corpus", rows)
    torch.manual_seed(0)
    pretrained = root / "pretrained"
    MEmoBertForPreTraining(MEmoBertConfig(**tiny_config_kwargs())).save_pretrained(pretrained)
    MEmoBertProcessor(tokenizer).save_pretrained(str(pretrained))
    bert = root / "bert"
    BertForPreTraining(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
                       ).save_pretrained(bert)
    tokenizer.save_pretrained(str(bert))
    return {"root": root, "rows": rows, "corpus": root / "corpus", "pretrained": pretrained, "bert": bert}


def tiny_args(fixture, output_dir: Path, **overrides) -> DownstreamArguments:
    values = dict(
        setting="prompt",
        pretrained_model=str(fixture["pretrained"]),
        bert=str(fixture["bert"]),
        corpus=str(fixture["corpus"]),
        folds="speaker_kfold:3",
        only_folds=[1],
        seeds=[1],
        max_steps=6,
        eval_steps=2,
        learning_rate=1e-2,
        warmup_steps=1,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        early_stopping_patience=0,
        output_dir=str(output_dir),
        progress_bar=False,
    )
    values.update(overrides)
    return DownstreamArguments(**values)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def only_run(output_dir: Path, name: str) -> dict:
    (path,) = sorted((output_dir / name / "runs").glob("*.json"))
    return json.loads(path.read_text())


# -- the four settings end to end -------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["direct", "bert_direct", "finetune", "prompt"])
def test_every_setting_runs_end_to_end_and_tests_the_seven_modality_cases(fixture, tmp_path, setting):
    out = tmp_path / "out"
    run_downstream(tiny_args(fixture, out, setting=setting, save_models=setting == "prompt"))

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


def test_the_prompt_head_scores_only_the_label_words(fixture, tmp_path):
    out = tmp_path / "out"
    run_downstream(tiny_args(fixture, out, setting="prompt", save_models=True, modality_cases=["LVA", "V"]))
    run = only_run(out, "prompt")
    folder = out / "prompt" / "models" / f"{run['fold']}_seed1"
    model = MEmoBertForPrompt.from_pretrained(folder).eval()
    processor = MEmoBertProcessor.from_pretrained(str(folder))
    assert model.config.label_words == ["anger", "happy", "neutral", "sad"]

    predictions = [p for p in read_csv(out / "prompt" / "predictions.csv") if p["case"] == "LVA"]
    by_id = {r[schema.UTTERANCE_ID]: r for r in fixture["rows"]}
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


def test_the_test_fold_never_influences_selection(fixture, tmp_path, tokenizer):
    args = dict(setting="finetune", max_steps=16, eval_steps=4, modality_cases=["LVA"])
    run_downstream(tiny_args(fixture, tmp_path / "a", **args))
    first = only_run(tmp_path / "a", "finetune")

    # The same corpus with only the test speakers' labels changed (each moved to the next class).
    test_speakers = set(first["speakers"]["test"])
    rows = [dict(r) for r in fixture["rows"]]
    for row in rows:
        if row[schema.SPEAKER] in test_speakers:
            row[schema.LABEL] = DEMO_LABELS[(DEMO_LABELS.index(row[schema.LABEL]) + 1) % 4]
    perturbed = write_corpus(tmp_path / "perturbed", rows)
    run_downstream(tiny_args(fixture, tmp_path / "b", corpus=str(perturbed), **args))
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


def test_early_stopping_counts_validation_evaluations(fixture, tmp_path):
    run_downstream(tiny_args(fixture, tmp_path, setting="direct", max_steps=40, eval_steps=1, learning_rate=1e-6,
                             early_stopping_patience=2, modality_cases=["LVA"]))
    run = only_run(tmp_path, "direct")
    curve = run["validation_curve"]
    uars = [p["validation"]["uar"] for p in curve]
    best = int(np.argmax(uars))
    assert run["stopped_early"] and run["steps_trained"] < 40
    assert len(curve) == best + 3  # stopped after 2 evaluations without a better UAR
    assert run["selected_step"] == curve[best]["step"]


# -- folds, labels, training fraction -----------------------------------------------------------------------------


def assert_disjoint(folds, speakers):
    for fold in folds:
        train, validation, test = (fold.speakers(s) for s in ("train", "validation", "test"))
        assert not (train & validation or train & test or validation & test)
        assert train | validation | test == set(speakers)
        for split in ("train", "validation", "test"):
            assert {speakers[i] for i in fold.indices(split)} == fold.speakers(split)


def test_folds_are_speaker_disjoint():
    demo = [f"demo_{i // 2:03d}_{'AB'[i % 2]}" for i in range(20) for _ in range(1 + i % 3)]
    folds = make_folds(demo, "speaker_kfold:5")
    assert len(folds) == 5
    assert_disjoint(folds, demo)
    assert [f.validation_speakers for f in folds] == [folds[(k + 1) % 5].test_speakers for k in range(5)]
    assert sorted(s for f in folds for s in f.test_speakers) == sorted(set(demo))  # each speaker tested once
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 3  # balanced by utterances

    iemocap = [f"Ses{s:02d}{g}" for s in range(1, 6) for g in "FM" for _ in range(3)]
    by_speaker = make_folds(iemocap, "iemocap_loso_speaker")
    assert len(by_speaker) == 10
    assert_disjoint(by_speaker, iemocap)
    assert by_speaker[0].test_speakers == {"Ses01F"} and by_speaker[0].validation_speakers == {"Ses01M"}
    by_session = make_folds(iemocap, "iemocap_loso_session")
    assert len(by_session) == 5 and by_session[0].test_speakers == {"Ses01F", "Ses01M"}
    assert_disjoint(by_session, iemocap)
    msp = [f"{g}{s:02d}" for s in range(1, 7) for g in "FM" for _ in range(2)]
    assert len(make_folds(msp, "msp_improv")) == 12

    with pytest.raises(ConfigError, match="speaker_kfold"):
        make_folds(["Ses01F", "demo_1"], "iemocap_loso_speaker")
    with pytest.raises(ConfigError, match="no speaker"):
        make_folds(["a", "", "b"], "speaker_kfold:3")


def test_corpus_labels_map_to_the_classes(tmp_path, tokenizer):
    labels = EmotionLabels.create(CLASSES)
    assert [corpus_class(x, labels) for x in ["happy", "happiness", "exc", "excited", "H", "ang", "Sad", "neu"]] == [
        "happiness", "happiness", "happiness", "happiness", "happiness", "anger", "sadness", "neutral"]
    assert [corpus_class(x, labels) for x in ["", "fru", "xxx", "X", "frustration", "oth", "bored"]] == [None] * 7
    no_merge = EmotionLabels.create(CLASSES, merge_excited=False)
    assert corpus_class("excited", no_merge) is None

    speakers = ["Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"]
    names = ["anger", "happiness", "excited", "frustration", "neutral", "sadness", "xxx", ""]
    rows = corpus_rows(tokenizer, speakers=speakers, label_names=names)
    corpus = load_downstream_corpus(write_corpus(tmp_path, rows), labels)
    raw = Counter(r[schema.LABEL] for r in rows)
    assert corpus.dropped == {"": raw[""], "frustration": raw["frustration"], "xxx": raw["xxx"]}
    assert len(corpus) == len(rows) - sum(corpus.dropped.values())
    assert np.bincount(corpus.labels).tolist() == [raw["anger"], raw["happiness"] + raw["excited"], raw["neutral"],
                                                   raw["sadness"]]
    assert len(make_folds(corpus.speakers, "iemocap_loso_speaker")) == 6


def test_train_fraction_samples_per_class_and_results_show_mean_and_std(fixture, tmp_path):
    labels = np.repeat(np.arange(4), [40, 20, 10, 2])
    rows = np.arange(len(labels))
    kept = sample_train_fraction(rows, labels, 0.1, seed=3)
    assert np.bincount(labels[kept]).tolist() == [4, 2, 1, 1]  # a tenth of each class, at least one
    assert kept.tolist() == sample_train_fraction(rows, labels, 0.1, seed=3).tolist()
    assert kept.tolist() != sample_train_fraction(rows, labels, 0.1, seed=4).tolist()

    out = tmp_path / "out"
    run_downstream(tiny_args(fixture, out, setting="direct", train_fraction=0.25, only_folds=[1, 2], seeds=[1, 2],
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


def test_a_bad_config_fails_fast_naming_each_problem(fixture, tmp_path):
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
        run_downstream(tiny_args(fixture, tmp_path / "out", label_words=["anger", "happy", "neutral", "sorrowful"]))


def test_the_config_files_parse_and_help_explains_every_option(fixture):
    parser = downstream_argument_parser()
    text = parser.format_help()
    for action in parser._actions:
        assert action.help and action.help != "==SUPPRESS=="
    for name in ("--setting", "--pretrained_model", "--folds", "--train_fraction", "--modality_cases", "--seeds"):
        assert name in text
    for config in ("iemocap.yaml", "demo.yaml"):
        args = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning" / "configs" / config),
                                           "--pretrained_model", str(fixture["pretrained"])])
        assert args.modality_cases == list(MODALITY_CASES)
    iemocap = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning/configs/iemocap.yaml"),
                                          "--pretrained_model", str(fixture["pretrained"]), "--setting", "prompt"])
    assert iemocap.resolved_learning_rate == 3e-5 and iemocap.resolved_max_steps == 3000
    assert (iemocap.per_device_train_batch_size, iemocap.warmup_steps) == (32, 100)
    assert iemocap.folds == "iemocap_loso_speaker"
    finetune = parse_downstream_arguments(["--config", str(REPO / "prompt_tuning/configs/iemocap.yaml"),
                                           "--pretrained_model", str(fixture["pretrained"]), "--setting", "finetune"])
    assert finetune.resolved_learning_rate == 5e-5 and 1500 <= finetune.resolved_max_steps <= 2000


# -- several processes ---------------------------------------------------------------------------------------------


def test_two_processes_predict_every_test_utterance_once(fixture, tmp_path):
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "prompt_tuning" / "run.py"), "--setting", "prompt", "--pretrained_model", str(fixture["pretrained"]),
        "--corpus", str(fixture["corpus"]), "--folds", "speaker_kfold:3", "--only_folds", "1", "--seeds", "1",
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
