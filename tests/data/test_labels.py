"""The emotion label definitions: classes, IEMOCAP codes, label words, and the model's defaults."""

import pytest

from memobert.configuration_memobert import DEFAULT_LABEL_WORDS as CONFIG_LABEL_WORDS
from memobert.data.labels import DEFAULT_LABEL_WORDS, EMOTION_CLASSES, IEMOCAP_CODES, EmotionLabels


def test_label_definitions_match_the_model_defaults():
    assert list(DEFAULT_LABEL_WORDS) == list(CONFIG_LABEL_WORDS)
    assert EMOTION_CLASSES == ("anger", "happiness", "neutral", "sadness")
    assert set(IEMOCAP_CODES) == set("neu hap exc ang sad fru sur fea dis oth xxx".split())
    labels = EmotionLabels()
    assert labels.class_of("excited") == "happiness"
    assert labels.class_of("frustration") is None
    assert EmotionLabels.create(merge_excited=False).class_of("excited") is None
    assert labels.index("sadness") == 3 and labels.id2label[1] == "happiness"
    five = EmotionLabels.create(("anger", "happiness", "neutral", "sadness", "frustration"))
    assert five.label_words[-1] == "frustrated"
    with pytest.raises(ValueError, match="both a class and merged"):
        EmotionLabels.create(("anger", "excited"), merge_excited=True)
    with pytest.raises(ValueError, match="Unknown emotion"):
        EmotionLabels.create(("anger", "joy"))
