"""Text stage: word pieces with word ids from the real MiniLM (uncased WordPiece) fast tokenizer."""

import pytest

from memobert.preprocessing.text import tokenize_words


def test_word_pieces_and_word_ids(tokenizer):
    ((ids, words),) = tokenize_words(["Hello, this is unbelievably EMBARRASSING!"], tokenizer)
    assert len(ids) == len(words) and ids
    assert tokenizer.cls_token_id not in ids and tokenizer.sep_token_id not in ids
    pieces = tokenizer.convert_ids_to_tokens(ids)
    # Rebuild each word from its pieces: BERT splits punctuation into words of its own
    rebuilt = {}
    for piece, w in zip(pieces, words):
        rebuilt[w] = rebuilt.get(w, "") + piece.removeprefix("##")
    assert [rebuilt[w] for w in sorted(rebuilt)] == ["hello", ",", "this", "is", "unbelievably", "embarrassing", "!"]
    assert words == sorted(words) and words[0] == 0
    assert len(set(words)) < len(words)  # at least one word has several pieces
    assert ids == tokenizer("Hello, this is unbelievably EMBARRASSING!", add_special_tokens=False)["input_ids"]


def test_batch_equals_one_by_one_and_empty_texts(tokenizer):
    texts = ["I am so happy today.", "", "   ", "Why would you do that?!", "ok"]
    batched = tokenize_words(texts, tokenizer, batch_size=2)
    assert batched == [tokenize_words([t], tokenizer)[0] for t in texts]
    assert batched[1] == ([], []) and batched[2] == ([], [])
    assert tokenize_words([], tokenizer) == []


def test_errors(tokenizer):
    with pytest.raises(TypeError, match="list of texts"):
        tokenize_words("hello", tokenizer)
    with pytest.raises(TypeError, match="Text 1 is a NoneType"):
        tokenize_words(["fine", None], tokenizer)

    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="not a fast tokenizer"):
        tokenize_words(["x"], Slow())
