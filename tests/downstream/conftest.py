"""The downstream tests' corpus: a labelled corpus, a tiny pretrained MEmoBERT and a tiny text BERT, written once per
session (read-only: a test that changes the corpus writes its own, see `write_corpus`)."""

import pytest
import torch

from tests.support.corpora import corpus_rows, write_corpus
from tests.support.models import tiny_config_kwargs


@pytest.fixture(scope="session")
def downstream(tmp_path_factory, tokenizer) -> dict:
    """{"root", "rows", "corpus", "pretrained", "bert"}: the corpus rows and folders `tiny_args` points a run at."""
    from transformers import BertConfig, BertForPreTraining

    from memobert import MEmoBertConfig
    from memobert.modeling_memobert import MEmoBertForPreTraining
    from memobert.processing_memobert import MEmoBertProcessor

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
