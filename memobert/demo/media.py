"""Demo media: small real mp4 files (H.264 + AAC, written with PyAV) of two faces talking in turn, with transcripts.

`make_demo_media(out_dir, num_clips, seed)` writes, per clip, `demo_XXX.mp4` and `demo_XXX.srt`, and for all clips a
CSV manifest `manifest.csv` (`video,start,end,text,speaker,label`: a valid input of the preprocessing pipeline) and
`demo_truth.json` (what the generator knows: who speaks, where the voice is, which cue each modality carries).

Each frame shows two faces made from a real photo (the astronaut of `skimage.data.astronaut()`, the second one
mirrored) side by side. During an utterance the speaking face's mouth opens with the speech envelope and the other face
is still; who speaks changes between utterances. The emotion label (anger, happy, neutral, sad) reaches each modality
only in part:
- text: an emotion word of the label appears in a fraction `text_cue_prob` of the utterances, neutral templates
  otherwise;
- audio: synthetic voiced speech (harmonics of a pitch contour through vowel formants, syllable-rate envelope) whose
  pitch level and movement, loudness and tempo follow an emotion that is the label with probability `audio_cue_prob`
  and another one otherwise;
- face: eyebrow slant, mouth shape (the photo's smile for happy; level, pressed or turned-down closed lips painted
  over it otherwise) and tint of the speaking face follow an emotion that is the label with probability
  `face_cue_prob` and another one otherwise. The listener shows the photo as it is.
So no single modality gives the answer. Everything is deterministic for a seed.

`scikit-image` (a dev extra) provides the photo.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from os import PathLike
from pathlib import Path

import av
import cv2
import numpy as np

from ..data.labels import DEFAULT_LABEL_WORDS
from ..preprocessing.transcripts import Utterance, write_csv_manifest, write_srt

__all__ = ["DEMO_LABELS", "DemoUtterance", "DemoClip", "make_demo_media", "write_media", "demo_face"]

DEMO_LABELS = DEFAULT_LABEL_WORDS  # the demo labels are the label words: anger, happy, neutral, sad

# Crop of the astronaut photo around the face and the features inside it (crop coordinates, x then y).
_CROP = (slice(26, 196), slice(142, 307))  # 170 x 165
_MOUTH = (78, 122)
_MOUTH_HALF_WIDTH = 15
_BROWS = ((48, 74), (90, 118))  # x ranges of the left and right eyebrow
_BROW_Y = 66
_MOUTH_CORNERS = (62, 95)

# Emotion words (text cue) and templates.
_EMOTION_WORDS = {
    "anger": ("angry", "furious", "annoyed", "mad"),
    "happy": ("happy", "glad", "delighted", "thrilled"),
    "neutral": ("fine", "calm", "okay", "indifferent"),
    "sad": ("sad", "unhappy", "miserable", "heartbroken"),
}
_WITH_WORD = (
    "i am {w} about the {noun}",
    "the {noun} made me {w} today",
    "honestly i feel {w} about the {noun}",
    "we were all {w} when the {noun} arrived",
    "you know i get {w} whenever the {noun} comes up",
)
_WITHOUT_WORD = (
    "the {noun} is on the table",
    "we talked about the {noun} yesterday",
    "did you see the {noun} this morning",
    "my brother bought the {noun} last week",
    "they moved the {noun} to the other room",
    "i will bring the {noun} tomorrow",
    "where did you put the {noun}",
)
_NOUNS = ("letter", "car", "project", "dinner", "phone", "meeting", "garden", "report", "house", "train", "dog")

# Prosody per emotion: pitch factor, pitch movement (semitones over the utterance), pitch jitter (semitones),
# loudness (peak amplitude) and syllable duration (s).
_PROSODY = {
    "anger": dict(pitch=1.25, slope=-1.0, jitter=2.5, loud=0.55, syllable=0.17),
    "happy": dict(pitch=1.35, slope=3.0, jitter=2.0, loud=0.42, syllable=0.19),
    "neutral": dict(pitch=1.0, slope=-0.5, jitter=0.6, loud=0.30, syllable=0.23),
    "sad": dict(pitch=0.85, slope=-3.0, jitter=0.4, loud=0.16, syllable=0.30),
}
# Vowel formants (Hz) and their bandwidths.
_VOWELS = ((700, 1220, 2600), (300, 2300, 3000), (300, 870, 2240), (500, 1900, 2500), (500, 900, 2400))
_BANDWIDTHS = (90.0, 110.0, 160.0)


@dataclass(frozen=True)
class DemoUtterance:
    """One generated utterance and what the generator knows about it."""

    video: str
    utterance_id: str
    index: int
    start: float  # transcript window (voice span padded by `pad`)
    end: float
    voice_start: float  # where the synthetic voice is
    voice_end: float
    text: str
    speaker: str
    label: str
    speaker_side: str  # "left" or "right": which face speaks
    text_cue: str  # the emotion word's label, "" when the text has none
    audio_cue: str  # the emotion the prosody follows
    face_cue: str  # the emotion the speaking face shows


@dataclass(frozen=True)
class DemoClip:
    """One generated clip: the video, its transcript and its utterances."""

    video: Path
    srt: Path
    duration: float
    fps: float
    sample_rate: int
    width: int
    height: int
    utterances: list[DemoUtterance] = field(default_factory=list)


# -- faces -----------------------------------------------------------------------------------------------------------


def _astronaut() -> np.ndarray:
    try:
        from skimage import data  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The demo media use the astronaut photo of scikit-image: `pip install scikit-image` "
            "(or `pip install memobert[dev]`)."
        ) from e
    return np.ascontiguousarray(data.astronaut()[_CROP])


def demo_face(emotion: str | None = None, mouth_open: float = 0.0, mirror: bool = False) -> np.ndarray:
    """The demo face (RGB uint8, 170 x 165) with an emotion cue (None: none) and the mouth opened 0..1."""
    face = _draw_mouth(_cue_face(_astronaut(), emotion), mouth_open, 1.0)
    return np.ascontiguousarray(face[:, ::-1]) if mirror else face


def _cue_face(face: np.ndarray, emotion: str | None) -> np.ndarray:
    """Eyebrows, mouth and tint that show `emotion` (crop coordinates); None: the photo as it is."""
    img = face.astype(np.float32)
    if emotion == "anger":
        img[..., 0] += 28
        img[..., 1] -= 6
        inner, outer = _BROW_Y + 5, _BROW_Y - 4
    elif emotion == "happy":
        img += 14
        img[..., 2] -= 8
        inner, outer = _BROW_Y - 4, _BROW_Y - 3
    elif emotion == "sad":
        img = img * 0.85
        img[..., 2] += 18
        inner, outer = _BROW_Y - 5, _BROW_Y + 4
    else:
        inner = outer = _BROW_Y
    img = np.clip(img, 0, 255).astype(np.uint8)
    if emotion is None:
        return img
    brow = (70, 48, 34)
    (l0, l1), (r0, r1) = _BROWS
    cv2.line(img, (l0, outer), (l1, inner), brow, 3, cv2.LINE_AA)
    cv2.line(img, (r0, inner), (r1, outer), brow, 3, cv2.LINE_AA)
    if emotion != "happy":
        # The photo smiles broadly: paint the smile out (inpainting from the skin around it) and draw closed lips,
        # level (neutral), pressed (anger) or turned down (sad), so that a face-expression model sees the cue too.
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.ellipse(mask, (_MOUTH[0], _MOUTH[1]), (24, 11), 0, 0, 360, 255, -1)
        img = cv2.inpaint(img, mask, 7, cv2.INPAINT_TELEA)
        x0, x1 = _MOUTH_CORNERS
        if emotion == "sad":
            cv2.ellipse(img, (_MOUTH[0], _MOUTH[1] + 8), (16, 7), 0, 200, 340, (150, 60, 65), 3, cv2.LINE_AA)
        elif emotion == "anger":
            cv2.line(img, (x0, _MOUTH[1] + 1), (x1 - 1, _MOUTH[1] + 1), (120, 45, 50), 3, cv2.LINE_AA)
        else:
            cv2.line(img, (x0, _MOUTH[1]), (x1 - 1, _MOUTH[1]), (150, 60, 65), 3, cv2.LINE_AA)
    return img


def _draw_mouth(face: np.ndarray, opening: float, scale: float) -> np.ndarray:
    """Draw an open mouth (a dark ellipse) whose height follows `opening` (0..1) on a face at `scale`."""
    if opening <= 0.02:
        return face
    out = face.copy()
    cx, cy = int(round(_MOUTH[0] * scale)), int(round((_MOUTH[1] + 1) * scale))
    ax = max(2, int(round(_MOUTH_HALF_WIDTH * scale * (0.8 + 0.2 * opening))))
    ay = max(1, int(round((1.0 + 9.0 * opening) * scale)))
    cv2.ellipse(out, (cx, cy), (ax, ay), 0, 0, 360, (60, 18, 24), -1, cv2.LINE_AA)
    return out


# -- audio -----------------------------------------------------------------------------------------------------------


def _synth_voice(
    rng: np.random.Generator, duration: float, emotion: str, base_pitch: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Voiced speech of about `duration` s with `emotion`'s prosody: (samples, amplitude envelope in 0..1)."""
    p = _PROSODY[emotion]
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    # Syllables: raised-cosine envelopes with short gaps, a longer gap between "words".
    env = np.zeros(n, np.float32)
    vowel_of = np.zeros(n, np.int64)
    pos = 0.0
    k = 0
    while pos < duration - 0.12:
        syl = p["syllable"] * rng.uniform(0.8, 1.25)
        syl = min(syl, duration - pos)
        a, b = int(pos * sample_rate), int(min(duration, pos + syl * 0.85) * sample_rate)
        if b - a > 8:
            w = np.sin(np.linspace(0.0, np.pi, b - a)) ** 2
            env[a:b] = np.maximum(env[a:b], w * rng.uniform(0.75, 1.0))
            vowel_of[a : int(min(duration, pos + syl) * sample_rate)] = rng.integers(len(_VOWELS))
        pos += syl
        k += 1
        if k % 4 == 0:
            pos += rng.uniform(0.03, 0.07)
    # Pitch contour: level, slope over the utterance, per-syllable jitter (smoothed), a little vibrato.
    f0_level = base_pitch * p["pitch"] * rng.uniform(0.95, 1.05)
    semis = p["slope"] * (t / max(duration, 1e-3) - 0.5)
    jitter = rng.normal(0.0, p["jitter"], size=max(2, int(duration / 0.15) + 2))
    semis += np.interp(t, np.linspace(0, duration, len(jitter)), jitter)
    semis += 0.3 * np.sin(2 * np.pi * 5.5 * t)
    f0 = f0_level * 2.0 ** (semis / 12.0)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    # Harmonics shaped by the formants of the current vowel (smoothed between syllables).
    formants = np.asarray(_VOWELS, np.float64)[vowel_of]  # (n, 3)
    kernel = np.hanning(max(3, int(0.02 * sample_rate)))
    kernel /= kernel.sum()
    for j in range(3):
        formants[:, j] = np.convolve(formants[:, j], kernel, mode="same")
    signal = np.zeros(n, np.float64)
    max_harmonic = int(min(4000.0, sample_rate / 2 - 200) / f0.max())
    for h in range(1, max(2, max_harmonic) + 1):
        fh = h * f0
        gain = sum(1.0 / (1.0 + ((fh - formants[:, j]) / _BANDWIDTHS[j]) ** 2) for j in range(3))
        signal += (gain / h**0.7) * np.sin(h * phase)
    signal /= np.abs(signal).max() + 1e-9
    signal = signal * env + 0.01 * rng.standard_normal(n) * env
    signal *= p["loud"] / (np.abs(signal).max() + 1e-9)
    return signal.astype(np.float32), env


# -- media writing ---------------------------------------------------------------------------------------------------

_ASS_HEADER = (
    b"[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n[V4+ Styles]\r\n"
    b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    b"Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    b"MarginR, MarginV, Encoding\r\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,"
    b"10,10,10,0\r\n\r\n[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\n"
)


def write_media(
    path: str | PathLike,
    *,
    frames: Iterable[np.ndarray] | None = None,
    fps: float = 15.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 24000,
    subtitles: Sequence[tuple[float, float, str]] | None = None,
    subtitle_tracks: Sequence[Sequence[tuple[float, float, str]]] = (),
    subtitle_codec: str | None = None,
    faststart: bool = False,
    crf: int = 20,
) -> Path:
    """Write a media file with PyAV: RGB frames -> H.264, mono float audio -> AAC (MPEG-2 video and MP2 audio for an
    MPEG program stream, .mpg/.mpeg, which cannot hold H.264), (start, end, text) cues -> a text subtitle stream
    (mov_text for .mp4, subrip otherwise, unless `subtitle_codec` says), `subtitle_tracks` -> more subtitle streams.
    Frames or audio may be None (audio-only or video-only files). `faststart` puts the index at the front of an
    mp4."""
    path = Path(path)
    options = {"movflags": "+faststart"} if faststart and path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=options) as container:
        frame_iter = iter(frames) if frames is not None else None
        first = next(frame_iter, None) if frame_iter is not None else None
        vstream = astream = None
        program_stream = path.suffix.lower() in (".mpg", ".mpeg")
        if first is not None:
            vstream = container.add_stream("mpeg2video" if program_stream else "libx264", rate=rate)
            vstream.width, vstream.height = first.shape[1], first.shape[0]
            vstream.pix_fmt = "yuv420p"
            if not program_stream:
                vstream.options = {"crf": str(crf), "preset": "veryfast", "g": str(max(1, int(round(2 * fps))))}
            vstream.codec_context.thread_count = 1  # byte-identical output for a seed
        if audio is not None:
            astream = container.add_stream("mp2" if program_stream else "aac", rate=sample_rate, layout="mono")
        tracks = ([list(subtitles)] if subtitles else []) + [list(t) for t in subtitle_tracks]
        codec = subtitle_codec or ("mov_text" if path.suffix.lower() in (".mp4", ".mov", ".m4v") else "subrip")
        sstreams = []
        for _ in tracks:
            sstream = container.add_stream(codec)
            sstream.codec_context.subtitle_header = _ASS_HEADER
            sstreams.append(sstream)
        if vstream is None and astream is None:
            raise ValueError(f"{path}: nothing to write (no frames and no audio)")
        container.start_encoding()
        audio = None if audio is None else np.asarray(audio, np.float32).reshape(-1)
        audio_pos = 0
        pending_subs = sorted((start, end, text, j) for j, track in enumerate(tracks) for start, end, text in track)

        def push_audio(until: float) -> None:
            nonlocal audio_pos
            stop = len(audio) if until == math.inf else min(len(audio), int(round(until * sample_rate)))
            while audio_pos < stop:
                chunk = audio[audio_pos : min(stop, audio_pos + 4096)]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                af.sample_rate = sample_rate
                af.pts = audio_pos
                af.time_base = Fraction(1, sample_rate)
                for packet in astream.encode(af):
                    container.mux(packet)
                audio_pos += len(chunk)

        def push_subtitles(until: float) -> None:
            while pending_subs and pending_subs[0][0] <= until:
                start, end, text, j = pending_subs.pop(0)
                sstream = sstreams[j]
                tb = sstream.time_base
                from av.subtitles.subtitle import SubtitleSet  # noqa: PLC0415

                dialogue = "0,0,Default,,0,0,0,," + text.replace("\n", "\\N")
                sub = SubtitleSet.create(
                    text=dialogue.encode("utf-8"), start=0, end=int((end - start) / tb), pts=int(start / tb)
                )
                packet = sstream.codec_context.encode_subtitle(sub)
                packet.stream = sstream
                packet.pts = packet.dts = int(start / tb)
                packet.duration = int((end - start) / tb)
                container.mux(packet)

        i = 0
        frame = first
        while frame is not None:
            t = i / fps
            if astream is not None:
                push_audio(t + 1.0 / fps)
            if sstreams:
                push_subtitles(t)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8), format="rgb24")
            vf.pts = i
            vf.time_base = 1 / rate
            for packet in vstream.encode(vf):
                container.mux(packet)
            i += 1
            frame = next(frame_iter, None)
        if astream is not None:
            push_audio(math.inf)
            for packet in astream.encode(None):
                container.mux(packet)
        if sstreams:
            push_subtitles(math.inf)
        if vstream is not None:
            for packet in vstream.encode(None):
                container.mux(packet)
    return path


# -- clips -----------------------------------------------------------------------------------------------------------


def _other(rng: np.random.Generator, label: str) -> str:
    return str(rng.choice([x for x in DEMO_LABELS if x != label]))


def _cue(rng: np.random.Generator, label: str, prob: float) -> str:
    return label if rng.random() < prob else _other(rng, label)


def _text(rng: np.random.Generator, label: str, with_word: bool) -> str:
    noun = str(rng.choice(_NOUNS))
    if with_word:
        template = str(rng.choice(_WITH_WORD))
        sentence = template.format(w=rng.choice(_EMOTION_WORDS[label]), noun=noun)
    else:
        sentence = str(rng.choice(_WITHOUT_WORD)).format(noun=noun)
    end = "?" if sentence.startswith(("did ", "where ")) else "."
    return sentence[0].upper() + sentence[1:] + end


def make_demo_media(
    out_dir: str | PathLike,
    num_clips: int = 4,
    seed: int = 0,
    *,
    utterances_per_clip: tuple[int, int] = (3, 5),
    utterance_duration: tuple[float, float] = (1.5, 4.0),
    pause: tuple[float, float] = (0.6, 1.2),
    pad: float = 0.1,
    width: int = 320,
    height: int = 240,
    fps: float = 15.0,
    sample_rate: int = 24000,
    text_cue_prob: float = 0.5,
    audio_cue_prob: float = 0.7,
    face_cue_prob: float = 0.7,
    embed_subtitles: bool = False,
) -> list[DemoClip]:
    """Write `num_clips` demo clips (mp4 + srt), `manifest.csv` and `demo_truth.json` into `out_dir`.

    Utterances last `utterance_duration` s (voice span; the transcript window adds `pad` s on each side) and are
    separated by `pause` s of silence; labels are balanced over the clips. `embed_subtitles` also puts the transcript
    into the mp4 as a mov_text stream. Returns the clips with their ground truth."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if width % 2 or height % 2 or width < 160 or height < 120:
        raise ValueError(f"width and height must be even and at least 160 x 120, got {width} x {height}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    # Two faces side by side: the photo scaled to the frame, the right one mirrored.
    base = _astronaut()
    scale = min(0.42 * width / base.shape[1], 0.75 * height / base.shape[0])
    fw, fh = int(base.shape[1] * scale), int(base.shape[0] * scale)
    top = (height - fh) // 2 + height // 24
    lefts = {"left": width // 4 - fw // 2, "right": 3 * width // 4 - fw // 2}
    faces: dict[tuple[str, str | None], np.ndarray] = {}
    for side in ("left", "right"):
        for emotion in (None, *DEMO_LABELS):
            img = cv2.resize(_cue_face(base, emotion), (fw, fh), interpolation=cv2.INTER_AREA)
            faces[side, emotion] = img[:, ::-1] if side == "right" else img
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([90 + 40 * yy / height, 100 + 30 * xx / width, 120 + 20 * yy / height], -1).astype(np.uint8)

    counts = [int(rng.integers(utterances_per_clip[0], utterances_per_clip[1] + 1)) for _ in range(num_clips)]
    labels = [DEMO_LABELS[i % len(DEMO_LABELS)] for i in range(sum(counts))]
    rng.shuffle(labels)

    clips: list[DemoClip] = []
    all_utterances: list[Utterance] = []
    truth = []
    label_pos = 0
    for c in range(num_clips):
        name = f"demo_{c:03d}"
        video_path, srt_path = out / f"{name}.mp4", out / f"{name}.srt"
        speakers = {"left": f"{name}_A", "right": f"{name}_B"}
        pitch = {"left": 190.0, "right": 115.0}
        # Timeline: lead silence, utterances separated by pauses, tail silence.
        t = float(rng.uniform(0.5, 0.8))
        side = str(rng.choice(["left", "right"]))
        spans = []
        for _ in range(counts[c]):
            label = labels[label_pos]
            label_pos += 1
            d = float(rng.uniform(*utterance_duration))
            spans.append((t, t + d, label, side))
            t += d + float(rng.uniform(*pause))
            side = side if rng.random() < 0.3 else ("right" if side == "left" else "left")
        duration = t + 0.3
        n_samples = int(math.ceil(duration * sample_rate))
        audio = (1e-4 * rng.standard_normal(n_samples)).astype(np.float32)  # a faint noise floor
        envelope = np.zeros(n_samples, np.float32)
        utterances: list[DemoUtterance] = []
        for i, (v0, v1, label, side) in enumerate(spans):
            text_cue = label if rng.random() < text_cue_prob else ""
            audio_cue = _cue(rng, label, audio_cue_prob)
            face_cue = _cue(rng, label, face_cue_prob)
            voice, env = _synth_voice(rng, v1 - v0, audio_cue, pitch[side], sample_rate)
            a = int(round(v0 * sample_rate))
            audio[a : a + len(voice)] += voice
            envelope[a : a + len(env)] = env
            nonzero = np.flatnonzero(env > 0.02)
            vs = v0 + nonzero[0] / sample_rate if len(nonzero) else v0
            ve = v0 + (nonzero[-1] + 1) / sample_rate if len(nonzero) else v1
            utterances.append(
                DemoUtterance(
                    video=str(video_path),
                    utterance_id=f"{name}_{i:04d}",
                    index=i,
                    start=round(max(0.0, v0 - pad), 3),
                    end=round(min(duration, v1 + pad), 3),
                    voice_start=round(vs, 4),
                    voice_end=round(ve, 4),
                    text=_text(rng, label, bool(text_cue)),
                    speaker=speakers[side],
                    label=label,
                    speaker_side=side,
                    text_cue=text_cue,
                    audio_cue=audio_cue,
                    face_cue=face_cue,
                )
            )

        def render(k: int, utterances=utterances, n_samples=n_samples, envelope=envelope) -> np.ndarray:
            tk = k / fps
            frame = background.copy()
            active = next((u for u in utterances if u.start <= tk < u.end), None)
            for s in ("left", "right"):
                if active is not None and active.speaker_side == s:
                    img = faces[s, active.face_cue]
                    idx = min(n_samples - 1, int(tk * sample_rate))
                    lo, hi = idx, min(n_samples, idx + int(sample_rate / fps))
                    opening = float(envelope[lo:hi].mean()) if hi > lo else 0.0
                    img = (
                        _draw_mouth(img[:, ::-1], opening, scale)[:, ::-1]
                        if s == "right"
                        else _draw_mouth(img, opening, scale)
                    )
                else:
                    img = faces[s, None]
                frame[top : top + fh, lefts[s] : lefts[s] + fw] = img
            return frame

        n_frames = int(math.ceil(duration * fps))
        utts = [
            Utterance(str(video_path), u.utterance_id, u.index, u.start, u.end, u.text, u.speaker, u.label)
            for u in utterances
        ]
        write_media(
            video_path,
            frames=(render(k) for k in range(n_frames)),
            fps=fps,
            audio=np.clip(audio, -1.0, 1.0),
            sample_rate=sample_rate,
            subtitles=[(u.start, u.end, u.text) for u in utts] if embed_subtitles else None,
        )
        write_srt(utts, srt_path)
        all_utterances.extend(utts)
        clips.append(DemoClip(video_path, srt_path, duration, fps, sample_rate, width, height, utterances))
        truth.extend({**asdict(u), "video": video_path.name} for u in utterances)

    write_csv_manifest(all_utterances, out / "manifest.csv")
    (out / "demo_truth.json").write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return clips
