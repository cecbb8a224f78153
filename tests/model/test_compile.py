"""`torch.compile` of the model (the pretraining loop's `--torch_compile`): same losses and gradients as eager."""

import pytest
import torch

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.data.synthetic import random_corpus_rows
from memobert.objectives import PretrainingCollator, SpecialTokenIds
from memobert.training.pretrain import MODALITIES, masking_generator

SPECIAL = SpecialTokenIds(pad_token_id=0, cls_token_id=1, sep_token_id=2, mask_token_id=3, never_mask_ids=(),
                          vocab_size=64)


@pytest.mark.parametrize("task", ["wwmlm"])
def test_compiled_model_matches_eager(task):
    torch.manual_seed(0)
    # One layer, hidden 16: the compile time is the graphs' (each op a kernel to generate and build), not the sizes'.
    config = MEmoBertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, visual_dim=6, acoustic_dim=5, mask_token_id=3,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    eager = MEmoBertForPreTraining(config).train()
    compiled = MEmoBertForPreTraining(config).train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile(dynamic=True)
    collator = PretrainingCollator(SPECIAL, config, seed=0)
    for seed in (1, 2):  # two different padded shapes: the dynamic graph serves both
        rows = random_corpus_rows(4, seed=seed, visual_dim=6, acoustic_dim=5, text_pieces=(3, 10),
                                  visual_frames=(2, 8), acoustic_frames=(3, 9), token_range=(5, 60))
        padded = collator.pad(rows, include=MODALITIES, face_soft_labels=True)
        batch = collator.task(task).build_batch(padded, SPECIAL, masking_generator(0, seed, 0, 0))
        losses = []
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
            loss = model(**batch).loss
            loss.backward()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
        for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
            if a.grad is None:
                assert b.grad is None or not b.grad.any(), name
            else:
                torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
