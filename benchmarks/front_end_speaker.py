"""Active speaker per rule on two-speaker composites of real talking faces: lip synchrony (landmarks) vs pixel motion.

A composite puts two real talking faces side by side (two 240 x 240 panels, 480 x 240 like the pipeline's 480 px
frames) with the audio of only one of them, so both mouths move and only synchrony tells them apart:
- target (the one heard): each CREMA-D clip with its own audio (`<data>/cremad/*.flv`, actor 1001, "Don't forget a
  jacket" in six emotions; the frame's centre square, around the face);
- distractor (seen, not heard): every other CREMA-D clip (the same actor saying the same sentence with other timing:
  the hardest case) and every MEAD clip (`<data>/mead/*.mp4`, three other speakers, video only) from 0 s and from 1.5 s;
- both sides: the target on the left and on the right.
So 6 targets x (5 + 12 x 2) distractors x 2 sides = 348 composites (`--quick`: 6 x (5 + 6) x 2 = 132). Frames are
sampled at the pipeline's 10 fps over the target's audio; faces are detected once per panel clip (the default
detector, "auto") and placed at the panel's position; the VAD is the default one; the rule runs on the composite
frames through `find_active_speaker` with the detections, the speech mask and (except where said) the audio.

Reported per rule: per utterance, the fraction of composites whose chosen face is the target (no speaker counts
wrong); per frame, the fraction of the composites' speech frames on which the chosen face's box is the target's; the
count of "no speaker" answers and the median score of the answers. Rows: "landmarks" (FaceMesh lip opening against
the speech-band energy envelope), the same against the VAD mask only (no audio), the same with the audio 100 ms late
(an A/V offset the lag search must absorb), "pixels" (mouth-region motion, the fallback rule) and "auto" (what the
pipeline's default does here: two faces, so landmarks). The landmark cost is CPU milliseconds per frame and face
(FaceMesh on a crop, tracking mode, one thread).

Without `--data` (or without CREMA-D clips) the composites cannot be built, and the report says so; the rules are then
compared on the demo media (two copies of scikit-image's astronaut photo, the speaker's mouth drawn open with the
voice, the listener still).

    .venv/bin/python benchmarks/front_end_speaker.py --data ../shared/real
    .venv/bin/python benchmarks/front_end_speaker.py --data ../shared/real --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FPS = 10.0
SAMPLE_RATE = 16000
PANEL = 240  # px, each half of the 480 x 240 composite
MEAD_OFFSETS = (0.0, 1.5)  # s: two stretches of each (longer) MEAD clip as distractors
RULES = (  # (label, ActiveSpeakerConfig.rule, pass the audio, audio delay in s)
    ("landmarks", "landmarks", True, 0.0),
    ("landmarks, VAD mask only (no audio)", "landmarks", False, 0.0),
    ("landmarks, audio 100 ms late", "landmarks", True, 0.1),
    ("pixels", "pixels", True, 0.0),
    ("auto (the default)", "auto", True, 0.0),
)

VOICED_RULES = {"landmarks": "landmarks", "pixels": "pixels"}  # label: rule, on the windows cut to the voice


@dataclass
class Clip:
    """A decoded clip: frame times and RGB frames (a panel), mono 16 kHz audio (None: video only)."""

    name: str
    kind: str  # "CREMA-D" or "MEAD"
    times: np.ndarray
    frames: list[np.ndarray]
    audio: np.ndarray | None
    duration: float
    detections: dict[float, list] = field(default_factory=dict)  # per sampling offset: faces per sampled frame


def _decode(path: Path, kind: str) -> Clip:
    """Every frame (cut to the centre square for CREMA-D, resized to the panel) and the audio, decoded in order."""
    import av
    import cv2

    times, frames = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            h, w = image.shape[:2]
            side = min(h, w)
            x0, y0 = (w - side) // 2, (h - side) // 2
            square = image[y0 : y0 + side, x0 : x0 + side]
            frames.append(np.ascontiguousarray(cv2.resize(square, (PANEL, PANEL), interpolation=cv2.INTER_AREA)))
            times.append(float(frame.time or 0.0))
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = [o.to_ndarray().reshape(-1) for f in container.decode(audio=0) for o in resampler.resample(f)]
            chunks += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
            audio = np.concatenate(chunks).astype(np.float32)
    duration = len(audio) / SAMPLE_RATE if audio is not None else times[-1] + 1.0 / 25
    return Clip(path.stem, kind, np.asarray(times), frames, audio, duration)


def _sampled(clip: Clip, offset: float, count: int) -> list[int]:
    """Indices of the frames shown at offset + k / FPS (the last frame at or before; held at the ends)."""
    wanted = offset + np.arange(count) / FPS
    return np.clip(np.searchsorted(clip.times, wanted + 1e-6) - 1, 0, len(clip.frames) - 1).tolist()


def _detections(clip: Clip, offset: float, count: int, detector) -> list:
    """Faces on the sampled panel frames (cached per clip and offset)."""
    if offset not in clip.detections or len(clip.detections[offset]) < count:
        clip.detections[offset] = [detector.detect(clip.frames[i]) for i in _sampled(clip, offset, count)]
    return clip.detections[offset][:count]


def _shifted(faces: list, dx: float) -> list:
    from memobert.preprocessing.faces import FaceBox

    return [FaceBox(f.x1 + dx, f.y1, f.x2 + dx, f.y2, f.confidence,
                    None if f.landmarks is None else np.asarray(f.landmarks) + (dx, 0.0)) for f in faces]


class _MemoLandmarker:
    """The landmark backend with its lip openings remembered per composite (the rules share them) and timed."""

    def __init__(self, landmarker):
        self.inner = landmarker
        self.name = landmarker.name
        self.memo: dict[bytes, np.ndarray] = {}
        self.cpu = 0.0
        self.face_frames = 0

    def lip_opening(self, frames, boxes):
        key = np.nan_to_num(np.round(np.asarray(boxes), 1), nan=-1.0).tobytes()
        if key not in self.memo:
            start = time.process_time()
            self.memo[key] = self.inner.lip_opening(frames, boxes)
            self.cpu += time.process_time() - start
            self.face_frames += int((~np.isnan(np.asarray(boxes)[:, 0])).sum())
        return self.memo[key]


def _side(result, width: int) -> str | None:
    if not result.found:
        return None
    centre = np.nanmean((result.boxes[:, 0] + result.boxes[:, 2]) / 2.0)
    return "left" if centre < width / 2 else "right"


def _frames_right(result, speech: np.ndarray, target_side: str, width: int) -> int:
    """Speech frames on which the chosen face's box is on the target's side."""
    if not result.found:
        return 0
    centre = (result.boxes[:, 0] + result.boxes[:, 2]) / 2.0
    on_side = (centre < width / 2) if target_side == "left" else (centre >= width / 2)
    return int((speech & np.nan_to_num(on_side, nan=0).astype(bool)).sum())


def _vad():
    from memobert.preprocessing.vad import make_vad

    vad = make_vad("auto")
    return vad, getattr(vad, "name", type(vad).__name__)


def _composites(data: Path, quick: bool):
    """Decoded clips and the (target, distractor, distractor offset, target side) list."""
    cremad = [_decode(p, "CREMA-D") for p in sorted(Path(data).glob("cremad/*.flv"))]
    cremad = [c for c in cremad if c.audio is not None]
    mead = [_decode(p, "MEAD") for p in sorted(Path(data).glob("mead/*.mp4"))]
    if quick:
        mead = mead[::2]
    offsets = MEAD_OFFSETS[:1] if quick else MEAD_OFFSETS
    plan = []
    for target in cremad:
        distractors = [(c, 0.0) for c in cremad if c is not target] + [(m, o) for m in mead for o in offsets]
        for distractor, offset in distractors:
            for side in ("left", "right"):
                plan.append((target, distractor, offset, side))
    return cremad, mead, plan


def _table(tallies: dict, kinds: list[str]) -> list[str]:
    head = ("| rule | utterances right | " + " | ".join(f"utterances right, {k} distractor" for k in kinds)
            + " | speech frames right | no speaker | median score |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, t in tallies.items():
        n = sum(t["n"].values())
        row = [label, f"{sum(t['right'].values()) / max(n, 1):.1%} ({sum(t['right'].values())}/{n})"]
        row += [f"{t['right'][k] / max(t['n'][k], 1):.1%} ({t['right'][k]}/{t['n'][k]})" for k in kinds]
        row += [f"{t['frames_right'] / max(t['frames'], 1):.1%}", str(t["none"]),
                f"{np.median(t['scores']):.2f}" if t["scores"] else "-"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _real_composites(data: Path, quick: bool, detector, landmarker) -> list[str]:
    from memobert.preprocessing.active_speaker import (
        ActiveSpeakerConfig,
        find_active_speaker,
    )

    started = time.perf_counter()
    cremad, mead, plan = _composites(data, quick)
    if not cremad:
        return [f"No CREMA-D clip with audio under {data}/cremad: the composites cannot be built.", ""]
    vad, vad_name = _vad()
    memo = _MemoLandmarker(landmarker)
    kinds = ["CREMA-D", "MEAD"] if mead else ["CREMA-D"]
    new_tally = lambda: {"n": dict.fromkeys(kinds, 0), "right": dict.fromkeys(kinds, 0), "frames": 0,
                         "frames_right": 0, "none": 0, "scores": [], "rules": {}}
    tallies = {label: new_tally() for label, *_ in RULES}
    voiced = {label: new_tally() for label in VOICED_RULES}  # windows cut to the target's voice
    pixel_cpu = [0.0, 0]

    def judge(tally, rule, frames, speech, detections, audio, side, kind):
        start = time.process_time()
        result = find_active_speaker(frames, speech, config=ActiveSpeakerConfig(rule=rule), detections=detections,
                                     landmarker=memo, **audio)
        if rule == "pixels":
            pixel_cpu[0] += time.process_time() - start
            pixel_cpu[1] += len(frames)
        tally["n"][kind] += 1
        chosen = _side(result, 2 * PANEL)
        tally["right"][kind] += chosen == side
        tally["none"] += chosen is None
        tally["frames"] += int(speech.sum())
        tally["frames_right"] += _frames_right(result, speech, side, 2 * PANEL)
        tally["rules"][result.rule] = tally["rules"].get(result.rule, 0) + 1
        if result.found:
            tally["scores"].append(result.score)

    spans = []
    for index, (target, distractor, offset, side) in enumerate(plan):
        count = int(np.floor(target.duration * FPS - 1e-9)) + 1
        times = np.arange(count) / FPS
        left, right = (target, distractor) if side == "left" else (distractor, target)
        left_offset, right_offset = (0.0, offset) if side == "left" else (offset, 0.0)
        li, ri = _sampled(left, left_offset, count), _sampled(right, right_offset, count)
        frames = np.stack([np.concatenate([left.frames[a], right.frames[b]], axis=1) for a, b in zip(li, ri)])
        faces_left = _detections(left, left_offset, count, detector)
        faces_right = _detections(right, right_offset, count, detector)
        detections = [fl + _shifted(fr, PANEL) for fl, fr in zip(faces_left, faces_right)]
        voice = vad.speech_mask(target.audio, SAMPLE_RATE, start=0.0)
        memo.memo.clear()
        for label, rule, with_audio, delay in RULES:
            voice.start = delay
            audio = ({"audio": target.audio, "sample_rate": SAMPLE_RATE, "frame_times": times, "audio_start": delay}
                     if with_audio else {})
            judge(tallies[label], rule, frames, voice.at(times, 1.0 / FPS), detections, audio, side, distractor.kind)
        # The same composite cut to the target's voice (first to last speech frame): no silence left to compare.
        voice.start = 0.0
        speech = voice.at(times, 1.0 / FPS)
        if speech.any():
            a, b = np.flatnonzero(speech)[0], np.flatnonzero(speech)[-1] + 1
            spans.append(b - a)
            audio = {"audio": target.audio, "sample_rate": SAMPLE_RATE, "frame_times": times[a:b]}
            for label, rule in VOICED_RULES.items():
                judge(voiced[label], rule, frames[a:b], speech[a:b], detections[a:b], audio, side, distractor.kind)
        if (index + 1) % 25 == 0 or index + 1 == len(plan):
            right = tallies["landmarks"]["right"]
            print(f"  {index + 1}/{len(plan)} composites, landmarks right on {sum(right.values())}, "
                  f"pixels right on {sum(tallies['pixels']['right'].values())}", flush=True)
    elapsed = time.perf_counter() - started
    landmark_ms = 1000 * memo.cpu / max(memo.face_frames, 1)
    rules_auto = ", ".join(f"{k}: {v}" for k, v in tallies["auto (the default)"]["rules"].items())
    lines = [(f"{len(plan)} composites ({len(cremad)} CREMA-D targets with their audio x "
              f"{len(cremad) - 1} CREMA-D + {len(mead)} MEAD clips{' from 0 s' if quick else ' from 0 s and 1.5 s'} "
              f"as distractors x 2 sides), {tallies['pixels']['frames']} speech frames at "
              f"{FPS:.0f} fps; detector `{detector.name}`, VAD `{vad_name}`, landmarks `{landmarker.name}`."), ""]
    lines += _table(tallies, kinds)
    lines += ["", (f"The same composites cut to the target's voice (its first to last VAD speech frame, "
                   f"{np.mean(spans) / FPS:.1f} s on average): no silence is left, so the pixel rule's silent frames "
                   "and the lips' opening at the voice's onset and end are gone, and synchrony has ~"
                   f"{np.mean(spans):.0f} frames to go on."), ""]
    lines += _table(voiced, kinds)
    lines += ["", (f"Landmark cost: {landmark_ms:.1f} ms CPU per frame and face ({memo.face_frames} face-frames, "
                   f"FaceMesh on a crop, tracking mode, one thread); the pixel rule: "
                   f"{1000 * pixel_cpu[0] / max(pixel_cpu[1], 1):.1f} ms CPU per frame for both faces. "
                   f"Rule that decided under \"auto\": {rules_auto}. ({elapsed:.0f} s)"), ""]
    return lines


def _demo_media(landmarker) -> list[str]:
    """Both rules on the demo media's utterances (pip-shipped photo, synthetic voice, the listener still)."""
    from memobert.demo.media import make_demo_media
    from memobert.preprocessing.active_speaker import (
        ActiveSpeakerConfig,
        find_active_speaker,
    )
    from memobert.preprocessing.decode import MediaReader
    from memobert.preprocessing.faces import detect_faces, make_face_detector

    detector = make_face_detector("auto")
    tallies = {label: [0, 0, 0] for label, *_ in RULES}  # right, total, no speaker
    with tempfile.TemporaryDirectory() as folder:
        clips = make_demo_media(Path(folder), 3, 0, utterances_per_clip=(3, 3), utterance_duration=(1.2, 1.5),
                                pause=(0.5, 0.7))
        for clip in clips:
            with MediaReader(clip.video, fps=FPS) as reader:
                for u in clip.utterances:
                    w = reader.window(u.start, u.end)
                    detections = detect_faces(w.frames, detector)
                    for label, rule, with_audio, delay in RULES:
                        heard = w.frame_times - delay
                        speech = (heard >= u.voice_start) & (heard < u.voice_end)
                        audio = ({"audio": w.audio, "sample_rate": w.sample_rate, "frame_times": w.frame_times,
                                  "audio_start": w.start + delay} if with_audio else {})
                        r = find_active_speaker(w.frames, speech, config=ActiveSpeakerConfig(rule=rule),
                                                detections=detections, landmarker=landmarker, **audio)
                        tallies[label][0] += _side(r, clip.width) == u.speaker_side
                        tallies[label][1] += 1
                        tallies[label][2] += not r.found
    lines = [(f"Demo media (memobert.demo: scikit-image's astronaut photo twice, the speaker's mouth drawn open "
              f"with a synthetic voice, the listener still; detector `{detector.name}`; speech mask: the generator's "
              "voice spans)."), "",
             "| rule | utterances right | no speaker |", "|---|---|---|"]
    lines += [f"| {label} | {right / max(total, 1):.0%} ({right}/{total}) | {none} |"
              for label, (right, total, none) in tallies.items()]
    return lines + [""]


def run(data: Path | None, quick: bool = False) -> str:
    """Markdown tables of active-speaker accuracy per rule (see the module docstring)."""
    import cv2
    import torch

    from memobert.preprocessing.faces import make_face_detector
    from memobert.preprocessing.landmarks import make_landmarker

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    lines = ["## Active speaker: lip synchrony vs pixel motion", ""]
    landmarker = make_landmarker("auto")
    if landmarker.name == "none":
        lines += ["No landmark backend is installed (MediaPipe): the landmark rows fall back to pixels.", ""]
    if data is not None and any(Path(data).glob("cremad/*.flv")):
        detector = make_face_detector("auto")
        lines += _real_composites(Path(data), quick, detector, landmarker)
    else:
        missing = "no --data given" if data is None else f"no cremad/*.flv under {data}"
        lines += [(f"No real talking-face clips ({missing}): the two-speaker composites need them; only the demo "
                   "media are measured."), ""]
    lines += _demo_media(landmarker)
    return "\n".join(lines)


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the real recordings (e.g. ../shared/real); absent: the demo media only")
    parser.add_argument("--quick", action="store_true", help="half the MEAD clips, from 0 s only (132 composites)")
    args = parser.parse_args()
    print(run(args.data, quick=args.quick))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
