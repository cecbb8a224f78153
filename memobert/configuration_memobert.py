"""MEmoBERT model configuration (part of the model layer: imports nothing of memobert)."""

from dataclasses import field

from transformers import PreTrainedConfig

# The paper's verbalizer: one word piece per class of anger, happiness, neutral, sadness (bert-base-uncased).
DEFAULT_LABEL_WORDS = ["anger", "happy", "neutral", "sad"]
# The pretraining heads of the paper's recipe, in the order MEmoBertForPreTraining builds them.
DEFAULT_PRETRAINING_TASKS = ["wwmlm", "span_mvfr", "span_mafr", "span_mvfc_kl"]


class MEmoBertConfig(PreTrainedConfig):
    r"""
    Configuration of a MEmoBERT model: a BERT backbone over `[CLS] text [SEP] visual acoustic`.

    The BERT fields (`vocab_size` ... `pad_token_id`) mean what they mean in `BertConfig`; `MEmoBertModel.from_bert`
    copies them from a BERT checkpoint. The rest:

    Args:
        visual_dim (`int`, defaults to 342): size of one face frame's feature (DenseNet-BC-100 FER+ pooled feature).
        acoustic_dim (`int`, defaults to 768): size of one acoustic frame's feature (wav2vec2-base hidden size).
        max_text_length (`int`, defaults to 30): text tokens (with [CLS] and [SEP]) kept in pretraining.
        max_prompt_text_length (`int`, defaults to 120): text tokens kept downstream (prompt included).
        max_visual_length (`int`, defaults to 36): face frames; also the size of the visual position table.
        max_acoustic_length (`int`, defaults to 64): pooled acoustic frames; also the acoustic position table size.
        num_face_classes (`int`, defaults to 8): classes of the face-expression soft labels (FER+ has 8).
        face_class_names (`list[str]`, *optional*): the names of those classes, in order (pretraining copies them
            from the corpus' `corpus.json`).
        pretraining_tasks (`list[str]`): the tasks whose heads `MEmoBertForPreTraining` holds (`heads[name]`), each
            a head registered by `memobert.objectives`; defaults to WWMLM, SpanMVFR, SpanMAFR, SpanMVFC-KL.
        prompt_template (`str`): the downstream prompt; `{text}` is the utterance and `{mask}` the mask token.
        label_words (`list[str]`): one verbalizer word per emotion class, in class order.
        label_token_ids (`list[int]`, *optional*): the vocabulary ids of `label_words`, filled from a tokenizer by
            `MEmoBertForPrompt.set_label_words` (or `from_bert`).
        prompt_loss (`str`, defaults to `"label_words"`): `"label_words"` trains cross-entropy over the label words'
            logits only; `"vocabulary"` trains the [MASK] over the whole vocabulary, as the paper's code did.
        mask_token_id (`int`, defaults to 103): id of `[MASK]` (bert-base-uncased's).
        classifier_dropout (`float`, *optional*): dropout of the classification head (defaults to hidden dropout).
        classifier_pooling (`str`, defaults to `"cls"`): what the pooler reads: `"cls"` the [CLS] state (BERT's), or
            `"mean"` the mean of the last hidden states over every real position of every modality (as speech
            classifiers pool frames: the mean of the frames' own states reaches the head directly).
        dropout_implementation (`str`, defaults to `"auto"`): `"auto"` draws dropout masks on the CPU from 16-bit
            uniforms (about 3x cheaper than torch's per-element draws; see `memobert.kernels.cpu_keep_mask`) and uses
            torch's dropout elsewhere; `"torch"` uses `torch.nn.functional.dropout` everywhere.
    """

    model_type = "memobert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    tie_word_embeddings: bool = True

    visual_dim: int = 342
    acoustic_dim: int = 768
    max_text_length: int = 30
    max_prompt_text_length: int = 120
    max_visual_length: int = 36
    max_acoustic_length: int = 64
    num_face_classes: int = 8
    face_class_names: list[str] | None = None
    pretraining_tasks: list[str] = field(default_factory=lambda: list(DEFAULT_PRETRAINING_TASKS))
    prompt_template: str = "{text} i am {mask} ."
    label_words: list[str] = field(default_factory=lambda: list(DEFAULT_LABEL_WORDS))
    label_token_ids: list[int] | None = None
    prompt_loss: str = "label_words"
    mask_token_id: int = 103
    classifier_dropout: float | None = None
    classifier_pooling: str = "cls"
    dropout_implementation: str = "auto"

    def __post_init__(self, **kwargs):
        if self.id2label is None and "num_labels" not in kwargs:
            # The emotion classes are the label words' classes unless the user says otherwise.
            self.id2label = dict(enumerate(self.label_words))
            self.label2id = {word: i for i, word in self.id2label.items()}
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads ({self.num_attention_heads})."
            )
        if self.face_class_names is not None and len(self.face_class_names) != self.num_face_classes:
            raise ValueError(
                f"face_class_names has {len(self.face_class_names)} names but num_face_classes is "
                f"{self.num_face_classes}: give one name per class."
            )
        if "{text}" not in self.prompt_template or "{mask}" not in self.prompt_template:
            raise ValueError(
                f"prompt_template {self.prompt_template!r} must contain '{{text}}' and '{{mask}}', "
                "e.g. '{text} i am {mask} .'."
            )
        if self.classifier_pooling not in ("cls", "mean"):
            raise ValueError(f"classifier_pooling must be 'cls' or 'mean', got {self.classifier_pooling!r}.")
        if self.prompt_loss not in ("label_words", "vocabulary"):
            raise ValueError(f"prompt_loss must be 'label_words' or 'vocabulary', got {self.prompt_loss!r}.")
        if self.dropout_implementation not in ("auto", "torch"):
            raise ValueError(f"dropout_implementation must be 'auto' or 'torch', got {self.dropout_implementation!r}.")
        if self.label_token_ids is not None and len(self.label_token_ids) != len(self.label_words):
            raise ValueError(
                f"label_token_ids has {len(self.label_token_ids)} ids for {len(self.label_words)} label_words; "
                "set both with MEmoBertForPrompt.set_label_words(words, tokenizer)."
            )
        if len(set(self.pretraining_tasks)) != len(self.pretraining_tasks):
            raise ValueError(f"pretraining_tasks {self.pretraining_tasks} names a task twice.")


def verbalizer_token_ids(label_words: list[str], tokenizer) -> list[int]:
    """Vocabulary id of each label word; a word that is not exactly one word piece is an error that names it."""
    ids = []
    for word in label_words:
        pieces = tokenizer.tokenize(word)
        if len(pieces) != 1:
            raise ValueError(
                f"Label word {word!r} is {len(pieces)} word pieces {pieces} in this tokenizer, and the verbalizer scores "
                "one [MASK] token per class. Choose a label word that is a single word piece (e.g. 'anger', 'happy', "
                "'neutral', 'sad' in bert-base-uncased)."
            )
        ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
    return ids


__all__ = ["MEmoBertConfig", "DEFAULT_LABEL_WORDS", "DEFAULT_PRETRAINING_TASKS", "verbalizer_token_ids"]
