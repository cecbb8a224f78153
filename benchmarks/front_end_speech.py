"""Speech front end on real recordings: VAD frame precision/recall (silero vs webrtc at aggressiveness 0-3) against
known speech regions, and ASR word error rate and speed (faster-whisper, the offline tiny.en) on known transcripts.

VAD: every clip (EmoDB wavs, CREMA-D audio, the English speech shipped in the moonshine-voice wheel) is resampled to
16 kHz, padded with 1-3 s of quiet before and after, and scored on 10 ms frames under several conditions: silence
(a -70 dBFS dither), white noise at 20/10/0 dB SNR and babble-like noise (ten other clips, time-reversed and summed)
at 10/0 dB SNR, the noise covering the whole padded clip, its level set against the power of the speech region. The
true speech region is the clip with its own leading and trailing silence trimmed by an energy threshold (from the
first to the last 50 ms run of 10 ms frames within 30 dB of its loudest frame and 10 dB above its noise floor): the
padding is silence for certain, the region holds the clip's inner pauses too (recall is a lower bound where they are
long). 0.1 s on each side of the region's edges is not scored (a collar, as in NIST's VAD scoring). Reported:
precision and recall on the region, the share of the padding called speech (false alarms) and the recall of the loud
frames (within 20 dB of the clip's peak, speech for certain), F1, and the real-time factor (seconds per second of
audio) on one core.

ASR: word error rate (word-level edit distance / reference words, after lower-casing, dropping punctuation and
spelling out numbers) on `beckett.wav` and `two_cities.wav` (moonshine-voice; their texts: Beckett's "Worstward Ho"
lines and the opening paragraph of "A Tale of Two Cities") and the CREMA-D clips (12 fixed sentences, the code in
the file name); EmoDB is German and is left out. Configurations: int8 vs float32 weights, beam 5 vs 1, one thread.

    .venv/bin/python benchmarks/front_end_speech.py --data ../shared/real
    .venv/bin/python benchmarks/front_end_speech.py --quick          # moonshine clips only, a quick look
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
FRAME = 0.01  # scoring frame (s)
COLLAR = 0.1  # seconds around each true boundary left out of the scores
REFERENCES = {
    "beckett.wav": "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
    "two_cities.wav": (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was "
        "the season of Darkness, it was the spring of hope, it was the winter of despair, we had everything before "
        "us, we had nothing before us, we were all going direct to Heaven, we were all going direct the other way - "
        "in short, the period was so far like the present period, that some of its noisiest authorities insisted on "
        "its being received, for good or for evil, in the superlative degree of comparison only."
    ),
}
CREMAD_SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened", "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about", "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before", "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
SHIPPED_VAD_CLIPS = ("beckett.wav", "two_cities.wav", "clone-test.wav", "endgame_nagg_nell.wav")
VAD_SETTINGS = (("silero", {}),) + tuple(("webrtc", {"aggressiveness": a}) for a in range(4))
CONDITIONS = (("silence", None, None), ("white 20 dB", "white", 20), ("white 10 dB", "white", 10),
              ("white 0 dB", "white", 0), ("babble 10 dB", "babble", 10), ("babble 0 dB", "babble", 0))
ASR_CONFIGS = (("int8, beam 5 (default)", {"compute_type": "int8", "beam_size": 5}),
               ("int8, beam 1", {"compute_type": "int8", "beam_size": 1}),
               ("float32, beam 5", {"compute_type": "float32", "beam_size": 5}))


@dataclass
class Clip:
    name: str
    source: str  # "EmoDB", "CREMA-D", "moonshine"
    audio: np.ndarray  # 16 kHz mono float32
    reference: str | None = None  # the spoken text, when known (English only)


# -- media -------------------------------------------------------------------------------------------------------------


def moonshine_assets() -> Path | None:
    """The assets folder of the moonshine-voice wheel (found without importing the package), or None."""
    spec = importlib.util.find_spec("moonshine_voice")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return folder if folder.is_dir() else None


def load_audio(path: Path) -> np.ndarray:
    """The whole sound of a media file as 16 kHz mono float32 (PyAV, through memobert's decoder)."""
    from memobert.preprocessing.decode import MediaReader

    reader = MediaReader(path, sample_rate=RATE)
    return reader.audio(0.0, reader.info.duration)


def collect_clips(data: Path | None, quick: bool) -> tuple[list[Clip], list[str]]:
    """The clips to measure and notes on what is missing."""
    clips, notes = [], []
    assets = moonshine_assets()
    if assets is None:
        notes.append("moonshine-voice is not installed (`pip install --no-deps moonshine-voice==0.0.73`): no shipped "
                     "English speech.")
    else:
        for name in SHIPPED_VAD_CLIPS:
            if (assets / name).is_file():
                clips.append(Clip(name, "moonshine", load_audio(assets / name), REFERENCES.get(name)))
    if data is None or not Path(data).is_dir():
        notes.append("No --data folder: the EmoDB and CREMA-D rows are missing (pip-shipped speech only).")
        return clips, notes
    data = Path(data)
    cremad = sorted((data / "cremad").glob("*.flv")) + sorted((data / "cremad").glob("*.mp3"))
    for path in cremad:
        code = path.stem.split("_")[1] if path.stem.count("_") >= 2 else ""
        clips.append(Clip(path.name, "CREMA-D", load_audio(path), CREMAD_SENTENCES.get(code)))
    emodb = sorted((data / "emodb").glob("*.wav"))
    for path in emodb[: 24 if quick else None]:
        clips.append(Clip(path.name, "EmoDB", load_audio(path)))
    if not cremad or not emodb:
        notes.append(f"{data}: {len(cremad)} CREMA-D and {len(emodb)} EmoDB files found.")
    return clips, notes


# -- VAD ---------------------------------------------------------------------------------------------------------------


def frame_power(audio: np.ndarray) -> np.ndarray:
    """Mean power of each 10 ms frame (the trailing partial frame dropped)."""
    step = int(RATE * FRAME)
    n = len(audio) // step
    return np.square(audio[: n * step].reshape(n, step), dtype=np.float64).mean(axis=1)


def frame_db(audio: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.maximum(frame_power(audio), 1e-20))


def true_region(audio: np.ndarray, below_peak: float = 30.0, above_floor: float = 10.0,
                min_run: float = 0.05) -> np.ndarray:
    """The clip's speech region per 10 ms frame: from the first to the last run (>= 50 ms) of frames louder than both
    30 dB below its loudest frame and 10 dB above its noise floor (the 10th percentile of its frames that are not
    digital silence), i.e. the clip with its own leading and trailing silence trimmed (inner pauses included)."""
    from memobert.preprocessing.vad import mask_segments

    db = frame_db(audio)
    region = np.zeros(len(db), bool)
    if not len(db):
        return region
    sound = db[db > -100]
    floor = np.percentile(sound, 10) if len(sound) else -100.0
    runs = mask_segments(db > max(db.max() - below_peak, floor + above_floor), int(FRAME * 1000), min_speech=min_run)
    if runs:
        region[int(round(runs[0][0] / FRAME)) : int(round(runs[-1][1] / FRAME))] = True
    return region


def loud_frames(audio: np.ndarray, below_peak: float = 20.0) -> np.ndarray:
    """Frames within 20 dB of the clip's loudest frame: speech for certain (for the loud-frame recall)."""
    db = frame_db(audio)
    return db > db.max() - below_peak if len(db) else np.zeros(0, bool)


def noise_like(kind: str, length: int, rng: np.random.Generator, others: list[np.ndarray]) -> np.ndarray:
    """Unit-power white noise, or babble-like noise: ten other clips, time-reversed, summed and looped."""
    if kind == "white":
        return rng.standard_normal(length).astype(np.float32)
    babble = np.zeros(length, np.float64)
    for k in rng.choice(len(others), size=min(10, len(others)), replace=False):
        voice = others[k][::-1]
        voice = np.tile(voice, int(np.ceil(length / len(voice))))
        offset = int(rng.integers(len(others[k])))
        babble += np.roll(voice, offset)[:length] / (np.sqrt(np.mean(voice**2)) + 1e-12)
    return (babble / (np.sqrt(np.mean(babble**2)) + 1e-12)).astype(np.float32)


def padded_condition(clip: Clip, condition: tuple, rng: np.random.Generator, others: list[np.ndarray]):
    """(audio, true region, loud frames, padding) per 10 ms frame of `clip` padded with 1-3 s each side and noise as
    `condition` says."""
    _, kind, snr = condition
    step = int(RATE * FRAME)
    before, after = (int(rng.uniform(1.0, 3.0) / FRAME) for _ in range(2))
    clean = clip.audio[: len(clip.audio) // step * step]

    def pad(frames: np.ndarray, value: bool) -> np.ndarray:
        return np.concatenate([np.full(before, value), frames, np.full(after, value)])

    audio = np.concatenate([np.zeros(before * step, np.float32), clean, np.zeros(after * step, np.float32)])
    truth, loud = pad(true_region(clean), False), pad(loud_frames(clean), False)
    padding = pad(np.zeros(len(clean) // step, bool), True)
    speech_power = frame_power(audio)[truth].mean() if truth.any() else 1e-4
    if kind is None:
        noise, level = rng.standard_normal(len(audio)).astype(np.float32), 10 ** (-70 / 20)
    else:
        noise, level = noise_like(kind, len(audio), rng, others), np.sqrt(speech_power / 10 ** (snr / 10))
    return np.clip(audio + level * noise, -1.0, 1.0).astype(np.float32), truth, loud, padding


def scored_frames(truth: np.ndarray) -> np.ndarray:
    """Frames outside the collar around every true boundary."""
    change = np.flatnonzero(np.diff(truth.astype(np.int8)) != 0) + 1
    keep = np.ones(len(truth), bool)
    width = int(round(COLLAR / FRAME))
    for edge in change:
        keep[max(0, edge - width) : edge + width] = False
    return keep


def measure_vad(clips: list[Clip], quick: bool) -> str:
    from memobert.preprocessing.vad import make_vad

    detectors = [(name if name == "silero" else f"webrtc {opts['aggressiveness']}", make_vad(name, **opts))
                 for name, opts in VAD_SETTINGS]
    conditions = CONDITIONS[:1] + CONDITIONS[2:3] + CONDITIONS[4:5] if quick else CONDITIONS
    emodb = [c.audio for c in clips if c.source == "EmoDB"]
    others_all = [c.audio for c in clips]
    voices = min(10, (len(emodb) if len(emodb) >= 11 else len(others_all)) - 1)
    counts = {}  # (condition, detector) -> [tp, fp, fn, padding frames, padding false alarms]
    per_source = {}  # (source, detector) -> [tp, fp, fn] over silence and white noise

    seconds = {name: 0.0 for name, _ in detectors}
    audio_seconds = 0.0
    rng = np.random.default_rng(13)
    for condition in conditions:
        print(f"  VAD: {condition[0]} ({len(clips)} clips)", flush=True)
        for clip in clips:
            pool = emodb if len(emodb) >= 11 else others_all
            others = [a for a in pool if a is not clip.audio]
            audio, truth, loud, padding = padded_condition(clip, condition, rng, others)
            keep = scored_frames(truth)
            times = np.arange(len(truth)) * FRAME
            audio_seconds += len(audio) / RATE
            for name, detector in detectors:
                started = time.perf_counter()
                result = detector.speech_mask(audio, RATE)
                seconds[name] += time.perf_counter() - started
                said = result.at(times, FRAME)
                t, s, p, c = truth[keep], said[keep], padding[keep], loud[keep]
                hits = np.array([(t & s).sum(), (~t & s).sum(), (t & ~s).sum()], dtype=np.float64)
                counts.setdefault((condition[0], name), np.zeros(7))[:] += [*hits, p.sum(), (p & s).sum(), c.sum(),
                                                                           (c & s).sum()]
                if condition[1] != "babble":
                    per_source.setdefault((clip.source, name), np.zeros(3))[:] += hits
    names = [name for name, _ in detectors]
    lines = [
        "### VAD frame precision / recall against known speech regions (10 ms frames)",
        "",
        f"{len(clips)} clips ({_count_sources(clips)}), each padded with 1-3 s of quiet on both sides. True speech "
        "region: the clip with its own leading and trailing silence trimmed (from the first to the last 50 ms run "
        "of 10 ms frames within 30 dB of its peak and 10 dB above its noise floor); its inner pauses count as speech, "
        "so recall is a lower bound on readings with long pauses (beckett, two_cities, endgame). 0.1 s around the "
        "region's edges is not scored.",
        "",
        "Precision / recall:",
        "",
        "| condition | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for condition in conditions:
        cells = []
        for name in names:
            tp, fp, fn = counts[(condition[0], name)][:3]
            cells.append(f"{tp / max(tp + fp, 1):.3f} / {tp / max(tp + fn, 1):.3f}")
        lines.append(f"| {condition[0]} | " + " | ".join(cells) + " |")
    lines += ["", "Share of the padding called speech (false alarms) / recall of the loud frames (within 20 dB of the "
              "clip's peak: speech for certain):", "", "| condition | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for condition in conditions:
        cells = []
        for name in names:
            pad, fa, loud, found = counts[(condition[0], name)][3:]
            cells.append(f"{fa / max(pad, 1):.3f} / {found / max(loud, 1):.3f}")
        lines.append(f"| {condition[0]} | " + " | ".join(cells) + " |")
    total = {name: sum(counts[(c[0], name)] for c in conditions) for name in names}
    quiet = [c[0] for c in conditions if c[1] != "babble"]
    steady = {name: sum(counts[(c, name)] for c in quiet) for name in names}
    lines += ["", "| over the conditions | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines.append("| F1, silence and white noise | " + " | ".join(f"{_f1(*steady[n][:3]):.3f}" for n in names) + " |")
    lines.append("| F1, all (babble too) | " + " | ".join(f"{_f1(*total[n][:3]):.3f}" for n in names) + " |")
    lines.append("| RTF per core | " + " | ".join(f"{seconds[name] / audio_seconds:.4f}" for name in names) + " |")
    sources = sorted({c.source for c in clips})
    lines += ["", "F1 per source, silence and white noise:", "", "| source | " + " | ".join(names) + " |",
              "|---|" + "---|" * len(names)]
    for source in sources:
        lines.append(f"| {source} | " + " | ".join(f"{_f1(*per_source[(source, n)]):.3f}" for n in names) + " |")
    best = max(names[1:], key=lambda n: _f1(*steady[n][:3]))
    summary = (f"Silence and white noise: silero F1 {_f1(*steady['silero'][:3]):.3f} vs the best webrtc setting "
               f"({best}) {_f1(*steady[best][:3]):.3f}.")
    if ("white 10 dB", best) in counts:
        def false_alarms(name: str) -> float:
            return counts[("white 10 dB", name)][4] / max(counts[("white 10 dB", name)][3], 1)

        webrtc = [false_alarms(name) for name in names[1:]]
        summary += (f" At 10 dB SNR of white noise webrtc calls {min(webrtc):.0%}-{max(webrtc):.0%} of the padding "
                    f"speech (aggressiveness 3-0), silero {false_alarms('silero'):.0%}.")
    summary += (f" Babble ({voices} reversed voices) is voice-like: every detector calls much of it speech. Silero "
                f"takes {seconds['silero'] / max(seconds[best], 1e-9):.0f}x webrtc's time and runs "
                f"{audio_seconds / max(seconds['silero'], 1e-9):.0f}x faster than real time on one core.")
    lines += ["", summary]
    return "\n".join(lines)


def _f1(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _count_sources(clips: list[Clip]) -> str:
    sources = {}
    for clip in clips:
        sources[clip.source] = sources.get(clip.source, 0) + 1
    return ", ".join(f"{n} {source}" for source, n in sources.items())


# -- ASR ---------------------------------------------------------------------------------------------------------------

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number_words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    if number < 100:
        return _TENS[number // 10] + ("" if number % 10 == 0 else " " + _ONES[number % 10])
    return " ".join(_ONES[int(d)] for d in str(number))


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers spelled out, apostrophes dropped ("o'clock" -> "oclock")."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\d+", lambda m: " " + _number_words(int(m.group())) + " ", text)
    text = re.sub(r"[^a-z' ]+", " ", text.replace("-", " ")).replace("'", "")
    return text.split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int, list[str]]:
    """(word-level edit distance, reference words, the edits as "ref->hyp", "+hyp", "-ref") after `normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    cost = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(len(ref) + 1), np.arange(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    edits, i, j = [], len(ref), len(hyp)
    while i or j:
        if i and j and cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] != hyp[j - 1]:
                edits.append(f"{ref[i - 1]}->{hyp[j - 1]}")
            i, j = i - 1, j - 1
        elif i and cost[i, j] == cost[i - 1, j] + 1:
            edits.append(f"-{ref[i - 1]}")
            i -= 1
        else:
            edits.append(f"+{hyp[j - 1]}")
            j -= 1
    return int(cost[-1, -1]), len(ref), edits[::-1]


def measure_asr(clips: list[Clip], quick: bool) -> str:
    from memobert.preprocessing.asr import make_asr

    known = [c for c in clips if c.reference]
    if not known:
        return "### ASR\n\nNo speech with a known transcript (install moonshine-voice or pass --data)."
    groups = {"beckett.wav": "beckett.wav", "two_cities.wav": "two_cities.wav"}
    configs = ASR_CONFIGS[::2] if quick else ASR_CONFIGS
    results = {}  # (config, group) -> [errors, words]
    timing = {}  # config -> [seconds, audio seconds]
    examples = []
    for label, options in configs:
        print(f"  ASR: {label}", flush=True)
        asr = make_asr(model=None, cpu_threads=1, **options)
        asr.transcribe(known[0].audio[: RATE * 2], RATE)  # warm up
        for clip in known:
            started = time.perf_counter()
            text = " ".join(s.text for s in asr.transcribe(clip.audio, RATE))
            spent = time.perf_counter() - started
            errors, words, edits = word_errors(clip.reference, text)
            for group in (groups.get(clip.name, clip.source), "all"):
                results.setdefault((label, group), np.zeros(2))[:] += [errors, words]
            for group in (groups.get(clip.name, clip.source), "all"):
                timing.setdefault((label, group), np.zeros(2))[:] += [spent, len(clip.audio) / RATE]
            if label == configs[0][0] and edits:
                examples.append(f"{clip.name}: {' '.join(edits)}")
    group_names = [g for g in ("beckett.wav", "two_cities.wav", "CREMA-D") if (configs[0][0], g) in results]
    labels = [label for label, _ in configs]
    lines = [
        "### ASR word error rate (faster-whisper, Whisper tiny.en offline, one thread)",
        "",
        "| speech | clips | reference words | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for group in group_names + ["all"]:
        n = sum(1 for c in known if groups.get(c.name, c.source) == group) if group != "all" else len(known)
        words = int(results[(labels[0], group)][1])
        lines.append(f"| {group} | {n} | {words} | " + " | ".join(
            f"{results[(label, group)][0] / max(results[(label, group)][1], 1):.3f}" for label in labels) + " |")
    rtf = {key: seconds / audio for key, (seconds, audio) in timing.items()}
    for group in [g for g in ("two_cities.wav", "CREMA-D") if g in group_names] + ["all"]:
        lines.append(f"| RTF per core, {group} | | | " + " | ".join(f"{rtf[(label, group)]:.3f} "
                     f"({1 / rtf[(label, group)]:.0f}x real time)" for label in labels) + " |")
    float_label = next((label for label in labels if label.startswith("float32")), None)
    if float_label:
        lines += ["", f"int8 is {rtf[(float_label, 'all')] / rtf[(labels[0], 'all')]:.2f}x faster than float32 at "
                  "beam 5. Whisper reads 30 s windows, so a 2 s clip costs nearly as much as 30 s of speech: the long "
                  "reading shows the speed on a video's audio."]
    if examples:
        lines += ["", f"Errors of the default ({labels[0]}): " + "; ".join(examples[:8])]
    return "\n".join(lines)


def run(data: Path | None, quick: bool = False) -> str:
    """The speech part of the front-end report (Markdown)."""
    import torch

    torch.set_num_threads(1)
    clips, notes = collect_clips(data, quick)
    if not clips:
        return "## Speech: VAD and ASR\n\n" + " ".join(notes) + " Nothing to measure."
    sections = ["## Speech: VAD and ASR", ""] + ([" ".join(notes), ""] if notes else [])
    sections += [measure_vad(clips, quick), "", measure_asr(clips, quick)]
    return "\n".join(sections)


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the real recordings (e.g. ../shared/real: emodb/, cremad/); absent: the "
                             "speech shipped by moonshine-voice only")
    parser.add_argument("--quick", action="store_true", help="fewer clips, conditions and ASR configurations")
    args = parser.parse_args()
    print(run(args.data, quick=args.quick))


if __name__ == "__main__":
    main()
