"""The pretrained model does not depend on what ran in the process before the model was built (the first run of a
fresh clone builds the demo corpus there, which draws random numbers)."""

from __future__ import annotations

import importlib

import torch

from memobert.data.synthetic import write_random_corpus
from memobert.training import PretrainArguments, pretrain

pretrain_module = importlib.import_module("memobert.training.pretrain")  # the module (the package exports the loop)


def test_random_draws_while_the_corpus_loads_do_not_change_the_model(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    write_random_corpus(corpus, 16, seed=2, visual_dim=6, acoustic_dim=5)

    def run(name: str) -> list[float]:
        args = PretrainArguments(
            model_name_or_path="none", tokenizer_name="minilm", hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, corpus=str(corpus), output_dir=str(tmp_path / name),
            max_steps=1, per_device_train_batch_size=4, eval_steps=0, save_steps=0, warmup_steps=0,
            report_to="none", progress_bar=False,
        )
        return pretrain(args)["parameter_fingerprints"]

    quiet = run("quiet")
    loader = pretrain_module.load_pretrain_corpus

    def drawing_loader(*args, **kwargs):  # as building a corpus in this process would
        torch.rand(1000)
        return loader(*args, **kwargs)

    monkeypatch.setattr(pretrain_module, "load_pretrain_corpus", drawing_loader)
    assert run("after_draws") == quiet
