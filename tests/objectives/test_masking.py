"""Property tests of the maskers: whole-word masking of text and span masking of frames."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memobert.objectives import SpanMasking, SpecialTokenIds, WholeWordMasking

SETTINGS = settings(max_examples=40, deadline=None)

# Special ids of a small made-up vocabulary: pad 0, cls 1, sep 2, mask 3, unk 4; words use ids >= 5.
SPECIALS = SpecialTokenIds(
    cls_token_id=1, sep_token_id=2, pad_token_id=0, mask_token_id=3, vocab_size=60, never_mask_ids=(4,)
)


def text_batch(word_lengths: list[list[int]], seed: int = 0):
    """`[CLS] pieces [SEP]` rows right-padded, word ids -1 at specials/padding, ids drawn from 5..59."""
    rng = np.random.default_rng(seed)
    rows = []
    for lengths in word_lengths:
        words = [w for w, n in enumerate(lengths) for _ in range(n)]
        ids = rng.integers(5, 60, size=len(words)).tolist()
        rows.append(([1] + ids + [2], [-1] + words + [-1]) if words else ([], []))
    length = max(1, max(len(ids) for ids, _ in rows))
    input_ids = torch.zeros(len(rows), length, dtype=torch.long)
    word_ids = torch.full_like(input_ids, -1)
    for r, (ids, words) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        word_ids[r, : len(words)] = torch.tensor(words, dtype=torch.long)
    return input_ids, word_ids


word_lengths_strategy = st.lists(
    st.lists(st.integers(1, 4), min_size=0, max_size=12), min_size=1, max_size=6
)


# ----------------------------------------------------------------------------------------------------------------------
# Whole-word masking
# ----------------------------------------------------------------------------------------------------------------------


@SETTINGS
@given(word_lengths=word_lengths_strategy, seed=st.integers(0, 2**31 - 1), probability=st.sampled_from([0.15, 0.5]))
def test_whole_word_masking_properties(word_lengths, seed, probability):
    input_ids, word_ids = text_batch(word_lengths, seed)
    out = WholeWordMasking(probability=probability)(
        input_ids, word_ids, SPECIALS, torch.Generator().manual_seed(seed)
    )
    sel = out.selected
    # Targets only at selected pieces, and there they are the original ids.
    assert torch.equal(out.labels == -100, ~sel)
    assert torch.equal(out.labels[sel], input_ids[sel])
    # Never special tokens or padding.
    assert not sel[word_ids < 0].any()
    assert not sel[torch.isin(input_ids, SPECIALS.excluded_ids)].any()
    # Unselected inputs unchanged; selected pieces are [MASK] / a random ordinary token / kept, as flagged.
    assert torch.equal(out.input_ids[~sel], input_ids[~sel])
    assert (out.input_ids[out.replaced_by_mask] == SPECIALS.mask_token_id).all()
    kept = sel & ~out.replaced_by_mask & ~out.replaced_by_random
    assert torch.equal(out.input_ids[kept], input_ids[kept])
    randoms = out.input_ids[out.replaced_by_random]
    assert not torch.isin(randoms, SPECIALS.excluded_ids).any() and (randoms < SPECIALS.vocab_size).all()
    for row, lengths in enumerate(word_lengths):
        # At least one word in every row that has words; whole words share selection and fate.
        assert bool(sel[row].any()) == bool(lengths)
        for word in range(len(lengths)):
            pieces = word_ids[row] == word
            for flags in (sel, out.replaced_by_mask, out.replaced_by_random):
                assert flags[row][pieces].all() or not flags[row][pieces].any()


def test_whole_word_masking_rate_and_replacement_shares():
    """Over many rows: the word rate is p plus the at-least-one correction, and the 80/10/10 split holds."""
    rng = np.random.default_rng(0)
    word_lengths = [rng.integers(1, 4, size=rng.integers(1, 29)).tolist() for _ in range(3000)]
    input_ids, word_ids = text_batch(word_lengths)
    p = 0.15
    out = WholeWordMasking(probability=p)(input_ids, word_ids, SPECIALS, torch.Generator().manual_seed(1))
    starts = out.selected & (word_ids != torch.nn.functional.pad(word_ids, (1, 0), value=-2)[:, :-1])
    chosen_words = starts.sum(dim=1).double()
    num_words = torch.tensor([len(w) for w in word_lengths], dtype=torch.double)
    expected = (num_words * p + (1 - p) ** num_words).sum()
    std = (num_words * p * (1 - p)).sum().sqrt()
    assert abs(chosen_words.sum() - expected) < 4 * std
    long_rows = num_words >= 20  # where the at-least-one rule hardly matters, the rate is p itself
    assert abs(chosen_words[long_rows].sum() / num_words[long_rows].sum() - p) < 0.015
    mask_words = (starts & out.replaced_by_mask).sum().item()
    random_words = (starts & out.replaced_by_random).sum().item()
    total = starts.sum().item()
    assert abs(mask_words / total - 0.8) < 0.03
    assert abs(random_words / total - 0.1) < 0.02


def test_word_ids_are_runs_not_global_numbers():
    """Word ids need only mark runs: the same word numbered 7 in one row and reused per row still masks whole words."""
    input_ids = torch.tensor([[1, 10, 11, 12, 13, 2]])
    word_ids = torch.tensor([[-1, 7, 7, 9, 9, -1]])
    out = WholeWordMasking(probability=1.0)(input_ids, word_ids, SPECIALS, torch.Generator().manual_seed(0))
    assert out.selected.tolist() == [[False, True, True, True, True, False]]


def test_whole_word_masking_without_any_word_changes_nothing():
    input_ids, word_ids = text_batch([[], []])
    out = WholeWordMasking()(input_ids, word_ids, SPECIALS)
    assert torch.equal(out.input_ids, input_ids) and (out.labels == -100).all()


def test_special_token_ids_check_their_vocabulary(tokenizer):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        SpecialTokenIds(cls_token_id=1, sep_token_id=2, pad_token_id=0, mask_token_id=103, vocab_size=100)
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    assert (ids.cls_token_id, ids.sep_token_id, ids.pad_token_id, ids.mask_token_id) == (101, 102, 0, 103)
    assert tokenizer.unk_token_id in ids.never_mask_ids
    assert not torch.isin(ids.random_token_candidates, torch.tensor(tokenizer.all_special_ids)).any()
    with pytest.raises(ValueError, match="exceeds 1"):
        WholeWordMasking(mask_replace_prob=0.9, random_replace_prob=0.2)


# ----------------------------------------------------------------------------------------------------------------------
# Span masking
# ----------------------------------------------------------------------------------------------------------------------


def frame_batch(lengths: list[int], dim: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    length = max(1, max(lengths))
    feats = torch.randn(len(lengths), length, dim, generator=g)
    mask = torch.arange(length) < torch.tensor(lengths)[:, None]
    feats[~mask] = 0.0
    return feats, mask.long()


@SETTINGS
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    ratio=st.sampled_from([0.15, 0.2, 0.5]),
    span_length=st.integers(1, 4),
    allow_overlap=st.booleans(),
    replacement=st.sampled_from(["mask_vector", "mockingjay"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_span_masking_properties(lengths, ratio, span_length, allow_overlap, replacement, seed):
    feats, mask = frame_batch(lengths, seed=seed)
    masker = SpanMasking(ratio=ratio, span_length=span_length, allow_overlap=allow_overlap, replacement=replacement)
    out = masker(feats, mask, torch.Generator().manual_seed(seed))
    target = out.target_pos
    for row, n in enumerate(lengths):
        expected_spans = max(1, int(n * ratio // span_length)) if n else 0
        starts = out.span_starts[row][out.span_starts[row] >= 0].tolist()
        assert len(starts) == expected_spans
        # Spans are contiguous runs of span_length frames inside the real frames (clipped only when n < span_length).
        union = torch.zeros(mask.shape[1], dtype=torch.bool)
        for start in starts:
            assert 0 <= start and (start + span_length <= n or (n < span_length and start == 0))
            union[start : min(start + span_length, n)] = True
        assert torch.equal(target[row], union)
        count = int(target[row].sum())
        if not allow_overlap:
            ends = [s + span_length for s in sorted(starts)]
            assert all(e <= s for e, s in zip(ends, sorted(starts)[1:])), "spans overlap"
            assert count == min(n, expected_spans * span_length)
        else:
            assert len(set(starts)) == len(starts)
            assert min(n, span_length) <= count <= expected_spans * span_length or n == 0
        assert count >= min(n, 1)  # at least one frame per sample with frames
    # Padding never masked; mask-vector frames are zeroed; frames never predicted are unchanged.
    assert not target[mask == 0].any()
    assert not (out.bool_masked_pos & ~target).any()
    assert (out.feats[out.bool_masked_pos] == 0).all()
    assert torch.equal(out.feats[~target], feats[~target])
    if replacement == "mask_vector":
        assert torch.equal(out.bool_masked_pos, target)
    else:
        real_frames = feats[mask.bool()]
        for frame in out.feats[target & ~out.bool_masked_pos]:
            assert (real_frames == frame).all(dim=1).any(), "a swapped frame must be a real frame of the batch"


def test_span_masking_zeroes_exactly_the_masked_frames_and_targets_keep_exactly_the_predicted_ones():
    from memobert.objectives.base import zero_outside

    generator = torch.Generator().manual_seed(3)
    feats = torch.randn(4, 20, 7, generator=generator)
    mask = (torch.arange(20) < torch.tensor([20, 13, 3, 0])[:, None]).long()
    out = SpanMasking(ratio=0.3)(feats, mask, generator)
    expected = torch.where(out.bool_masked_pos[..., None], torch.zeros(()), feats)
    assert torch.equal(out.feats.view(torch.int32), expected.view(torch.int32))  # +0.0, bit for bit
    targets = zero_outside(feats, out.target_pos)
    assert torch.equal(targets.view(torch.int32), torch.where(out.target_pos[..., None], feats, 0.0).view(torch.int32))


def test_span_masking_can_mask_the_last_frames():
    """The original never masked the last frames; here every frame of a 10-frame sample gets masked sometimes."""
    feats, mask = frame_batch([10] * 200)
    for allow_overlap in (False, True):
        out = SpanMasking(ratio=0.3, allow_overlap=allow_overlap)(feats, mask, torch.Generator().manual_seed(0))
        assert out.target_pos.any(dim=0).all()


def test_expected_masked_frame_counts():
    """36 faces at ratio 0.2 -> 2 spans -> 6 frames; 64 acoustic frames at 0.15 -> 3 spans -> 9 frames; 2 frames -> 2."""
    feats, mask = frame_batch([36, 64, 2, 0])
    visual = SpanMasking(ratio=0.2)(feats, mask, torch.Generator().manual_seed(0))
    acoustic = SpanMasking(ratio=0.15)(feats, mask, torch.Generator().manual_seed(0))
    assert visual.target_pos.sum(dim=1).tolist() == [6, 12, 2, 0]
    assert acoustic.target_pos.sum(dim=1).tolist() == [3, 9, 2, 0]
    # Without overlap, ratio 1 tiles every frame and ratio 0.5 masks exactly 3 * int(n * 0.5 // 3) in every sample.
    lengths = list(range(3, 43)) * 5
    feats, mask = frame_batch(lengths)
    full = SpanMasking(ratio=1.0)(feats, mask, torch.Generator().manual_seed(0))
    assert full.target_pos.sum(dim=1).tolist() == [3 * (n // 3) for n in lengths]
    half = SpanMasking(ratio=0.5)(feats, mask, torch.Generator().manual_seed(0))
    assert half.target_pos.sum(dim=1).tolist() == [3 * max(1, int(n * 0.5 // 3)) for n in lengths]


def test_mockingjay_replacement_shares():
    feats, mask = frame_batch([40] * 500, seed=3)
    out = SpanMasking(ratio=0.5, replacement="mockingjay")(feats, mask, torch.Generator().manual_seed(0))
    target = out.target_pos
    total = target.sum().item()
    by_mask = out.bool_masked_pos.sum().item()
    kept = (target & ~out.bool_masked_pos & (out.feats == feats).all(dim=-1)).sum().item()
    assert abs(by_mask / total - 0.8) < 0.02
    assert abs(kept / total - 0.1) < 0.02  # a random frame equal to the original is vanishingly unlikely


def test_span_masking_checks_its_options():
    with pytest.raises(ValueError, match="ratio"):
        SpanMasking(ratio=0.0)
    with pytest.raises(ValueError, match="replacement"):
        SpanMasking(ratio=0.2, replacement="zeros")
    feats, mask = frame_batch([3, 5])
    mask[0] = torch.tensor([1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="right-padded"):
        SpanMasking(ratio=0.2)(feats, mask)
