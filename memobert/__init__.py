"""memobert: multimodal emotion recognition with MEmoBERT, in Hugging Face conventions."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_memobert import MEmoBertConfig
from .modeling_memobert import (
    MEmoBertForPreTraining,
    MEmoBertForPrompt,
    MEmoBertForSequenceClassification,
    MEmoBertModel,
    MEmoBertPreTrainedModel,
)
from .processing_memobert import MEmoBertProcessor
from . import objectives  # noqa: E402,F401  (registers the pretraining tasks' heads with MEmoBertForPreTraining)

__version__ = "0.1.0"

AutoConfig.register("memobert", MEmoBertConfig, exist_ok=True)
AutoModel.register(MEmoBertConfig, MEmoBertModel, exist_ok=True)
AutoModelForPreTraining.register(MEmoBertConfig, MEmoBertForPreTraining, exist_ok=True)
AutoModelForSequenceClassification.register(MEmoBertConfig, MEmoBertForSequenceClassification, exist_ok=True)

__all__ = [
    "MEmoBertConfig",
    "MEmoBertModel",
    "MEmoBertPreTrainedModel",
    "MEmoBertForPreTraining",
    "MEmoBertForPrompt",
    "MEmoBertForSequenceClassification",
    "MEmoBertProcessor",
    "EmotionRecognizer",
    "UtteranceEmotion",
    "VideoEmotions",
]

# The inference API needs the preprocessing stack (media, detectors, extractors): imported on first use, so that
# `import memobert` stays the model alone.
_INFERENCE = ("EmotionRecognizer", "UtteranceEmotion", "VideoEmotions")


def __getattr__(name: str):
    if name in _INFERENCE:
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
