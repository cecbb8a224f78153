"""Text stage: utterance texts -> word pieces (no special tokens) with the index of the word each piece belongs to.

The word ids come from the fast tokenizer's pre-tokenizer (`BatchEncoding.word_ids`), so whole-word masking masks
exactly the pieces of one pre-tokenized word (BERT splits punctuation into its own words).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase


def tokenize_words(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, batch_size: int = 1024
) -> list[tuple[list[int], list[int]]]:
    """`texts` -> one `(input_ids, word_ids)` per text: word pieces without [CLS]/[SEP] and their 0-based word index.

    The tokenizer must be a fast (Rust) tokenizer, e.g. `BertTokenizerFast` / `AutoTokenizer(..., use_fast=True)`.
    Empty or whitespace-only texts give `([], [])`. Texts are tokenized in batches of `batch_size`.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            f"{type(tokenizer).__name__} is not a fast tokenizer, so it has no word ids; load it with "
            "AutoTokenizer.from_pretrained(..., use_fast=True) or BertTokenizerFast."
        )
    if isinstance(texts, str):
        raise TypeError("tokenize_words takes a list of texts; wrap a single text in a list.")
    out: list[tuple[list[int], list[int]]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        for i, text in enumerate(chunk):
            if not isinstance(text, str):
                raise TypeError(f"Text {start + i} is a {type(text).__name__}, not a str: {text!r}.")
        encoding = tokenizer(chunk, add_special_tokens=False, truncation=False, return_attention_mask=False,
                             return_token_type_ids=False)
        for i in range(len(chunk)):
            ids = [int(t) for t in encoding["input_ids"][i]]
            words = encoding.word_ids(i)
            if any(w is None for w in words):
                raise ValueError(f"Text {start + i} produced pieces without a word id: {chunk[i]!r}.")
            out.append((ids, [int(w) for w in words]))
    return out
