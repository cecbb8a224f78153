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
]
