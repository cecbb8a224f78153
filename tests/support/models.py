"""Tiny models for unit tests: MEmoBERT configs, a random wav2vec2 / HuBERT, a saved prompt model."""


def tiny_config_kwargs(**overrides) -> dict:
    """A MEmoBERT small enough for unit tests: the MiniLM vocabulary, 2 layers, hidden 32, no dropout."""
    kwargs = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        visual_dim=6,
        acoustic_dim=5,
        max_visual_length=12,
        max_acoustic_length=16,
        label_token_ids=[4963, 3407, 8699, 6517],  # anger happy neutral sad in the uncased WordPiece vocabulary
    )
    kwargs.update(overrides)
    return kwargs


# A wav2vec2 / HuBERT small enough for unit tests (hidden 32, 2 layers, a 7-layer conv stack of 16 channels).
TINY_SPEECH = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
                   num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)


def save_speech_model(model_cls, config, folder, attention_mask: bool) -> str:
    """A random speech model (seed 0) and its feature extractor saved like a hub checkpoint; returns the folder."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    torch.manual_seed(0)
    model_cls(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=attention_mask).save_pretrained(folder)
    return str(folder)


LABEL_WORDS = ["anger", "happy", "neutral", "sad"]  # the prompt's label words, in this order


def save_prompt_model(folder, tokenizer, **overrides):
    """A random 2-layer MEmoBertForPrompt (hidden 32) with the MiniLM vocabulary and the pipeline's feature sizes (128
    visual, 80 acoustic), saved with its processor; returns the folder."""
    from memobert import MEmoBertConfig, MEmoBertForPrompt, MEmoBertProcessor

    kwargs = tiny_config_kwargs(visual_dim=128, acoustic_dim=80, max_visual_length=36, max_acoustic_length=64,
                                label_token_ids=None)
    config = MEmoBertConfig(**{**kwargs, **overrides})
    model = MEmoBertForPrompt(config)
    model.set_label_words(LABEL_WORDS, tokenizer)
    model.save_pretrained(folder)
    MEmoBertProcessor(tokenizer, model.config).save_pretrained(str(folder))
    return folder


def objectives_config(**overrides):
    """The tiny MEmoBERT of the objective tests, with room for 36 visual and 64 acoustic frames."""
    from memobert import MEmoBertConfig

    return MEmoBertConfig(**tiny_config_kwargs(max_visual_length=36, max_acoustic_length=64, **overrides))
