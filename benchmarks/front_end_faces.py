"""Face detection per backend: recall and time per frame on real face videos and real photos.

On every frame of the real talking-face videos (`<data>/cremad/*.flv`, 480x360, and `<data>/mead/*.mp4`, 256x256:
each always shows one face), decoded with PyAV and scaled like the pipeline (longer side at most 480 px), every
installed backend reports
- recall: the fraction of frames with at least one face (the clips always show one), and the fraction with more than
  one (a false detection, since there is one face);
- wall and CPU milliseconds per frame on one torch / OpenCV thread (CPU time counts every thread of the process, so
  it is the per-core cost even where MediaPipe runs threads of its own), and what that leaves of the pipeline's
  budget: at 10 frames a second, detection alone runs at 100 / CPU ms times real time per core;
- on two-face composites (two different clips' frames side by side, scaled to 480 px wide, so the faces are smaller:
  the layout of the active-speaker benchmark) the fraction of frames where both faces are found, one per half.
On the photos scikit-image ships: the face in `astronaut()` (frontal) and `camera()` (three-quarter view, gray), and
false detections on its face-free photos.

Without `--data` (or when it has no videos) only the photos are measured, and the report says so.

    .venv/bin/python benchmarks/front_end_faces.py --data ../shared/real
    .venv/bin/python benchmarks/front_end_faces.py --data ../shared/real --quick     # every 5th frame
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

MAX_SIDE = 480  # the pipeline's frame_max_size
# (label, registry name, keyword arguments): every backend, the MTCNN also with a larger smallest face (faster).
VARIANTS = (
    ("blazeface (combined)", "blazeface", {}),
    ("blazeface short", "blazeface_short", {}),
    ("blazeface full", "blazeface_full", {}),
    ("mtcnn", "mtcnn", {}),
    ("mtcnn min_face 40", "mtcnn", {"min_face_size": 40}),
    ("haar", "haar", {}),
)
FACE_FREE = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "coins", "page")


def _detectors() -> tuple[dict[str, object], list[str]]:
    from memobert.backends import MissingBackendError
    from memobert.preprocessing.faces import make_face_detector

    built, missing = {}, []
    for label, name, kwargs in VARIANTS:
        try:
            built[label] = make_face_detector(name, **kwargs)
        except MissingBackendError as error:
            missing.append(f"{label}: {error}")
    return built, missing


def _scaled(frame, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PyAV frame as RGB uint8, scaled like `MediaReader(max_size=max_side)` does."""
    if max(frame.width, frame.height) > max_side:
        scale = max_side / max(frame.width, frame.height)
        w, h = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
        return frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
    return frame.to_ndarray(format="rgb24")


def _frames(path: Path, step: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [_scaled(f) for i, f in enumerate(container.decode(video=0)) if i % step == 0]


def _timed(detector, frames) -> tuple[list[int], float, float]:
    """Faces per frame, wall and CPU seconds."""
    counts, wall, cpu = [], 0.0, 0.0
    for frame in frames:
        w0, c0 = time.perf_counter(), time.process_time()
        faces = detector.detect(frame)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        counts.append(len(faces))
    return counts, wall, cpu


def _both_halves(faces, width: int) -> bool:
    sides = {("left" if f.center[0] < width / 2 else "right") for f in faces}
    return sides == {"left", "right"}


def _composite(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import cv2

    h = min(a.shape[0], b.shape[0])
    fit = [cv2.resize(x, (round(x.shape[1] * h / x.shape[0]), h), interpolation=cv2.INTER_AREA) for x in (a, b)]
    pair = np.concatenate(fit, axis=1)
    scale = MAX_SIDE / max(pair.shape[:2])
    if scale < 1:
        pair = cv2.resize(pair, (round(pair.shape[1] * scale), round(pair.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pair)


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    photos = {"astronaut": data.astronaut(), "camera": data.camera()}
    for name in FACE_FREE:
        img = getattr(data, name)()
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        photos[name] = np.ascontiguousarray(img.astype(np.uint8))
    return {k: _scaled_array(v) for k, v in photos.items()}


def _scaled_array(img: np.ndarray) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return img
    s = MAX_SIDE / max(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def run(data: Path | None, quick: bool = False) -> str:
    """Markdown tables of face detection recall and cost per backend (see the module docstring)."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    detectors, missing = _detectors()
    step = 5 if quick else 1
    lines = ["## Face detection", ""]
    if missing:
        lines += [f"Not installed (not measured): {'; '.join(missing)}", ""]

    videos = {}
    if data is not None and Path(data).is_dir():
        videos = {"CREMA-D": sorted(Path(data).glob("cremad/*.flv")), "MEAD": sorted(Path(data).glob("mead/*.mp4"))}
        videos = {k: v for k, v in videos.items() if v}
    if not videos:
        lines += [(f"No real face videos ({'no --data given' if data is None else f'none under {data}'}): only the "
                  "photos scikit-image ships are measured."), ""]
    else:
        stats = {label: {set_: [0, 0, 0] for set_ in videos} for label in detectors}  # frames, >=1, >1
        cost = {label: [0.0, 0.0, 0] for label in detectors}  # wall, cpu, frames
        pairs = {label: {set_: [0, 0] for set_ in videos} for label in detectors}  # composites, both found
        total_frames = 0
        for set_, paths in videos.items():
            clips = []
            for path in paths:
                frames = _frames(path, step)
                clips.append(frames)
                total_frames += len(frames)
                for label, det in detectors.items():
                    counts, wall, cpu = _timed(det, frames)
                    s = stats[label][set_]
                    s[0] += len(counts)
                    s[1] += sum(c >= 1 for c in counts)
                    s[2] += sum(c > 1 for c in counts)
                    cost[label][0] += wall
                    cost[label][1] += cpu
                    cost[label][2] += len(counts)
                print(f"  {set_} {path.name}: {len(frames)} frames", flush=True)
            # Composites: clip i beside clip i+1 (another emotion or speaker), every 5th frame (quick: 15th).
            for a, b in zip(clips, clips[1:] + clips[:1]):
                for k in range(0, min(len(a), len(b)), 3 if quick else 5):
                    pair = _composite(a[k], b[k])
                    for label, det in detectors.items():
                        pairs[label][set_][0] += 1
                        pairs[label][set_][1] += _both_halves(det.detect(pair), pair.shape[1])
        sets = list(videos)
        head = ("| backend | " + " | ".join(f"recall {s}" for s in sets)
                + " | recall, all | frames with > 1 face | ms/frame wall | ms/frame CPU | x real time at 10 fps"
                " per core (detection only) | " + " | ".join(f"both faces, {s} pairs" for s in sets) + " |")
        lines += [(f"Every {'5th ' if quick else ''}frame of {total_frames} real video frames "
                  f"({', '.join(f'{len(v)} {k} clips' for k, v in videos.items())}), scaled to <= {MAX_SIDE} px; "
                  "one torch/OpenCV thread."), "", head, "|" + "---|" * (head.count("|") - 1)]
        for label in detectors:
            st = stats[label]
            n_all = sum(st[s][0] for s in sets)
            found_all = sum(st[s][1] for s in sets)
            extra = sum(st[s][2] for s in sets)
            wall, cpu, n = cost[label]
            cpu_ms = 1000 * cpu / max(n, 1)
            row = [label] + [f"{st[s][1] / max(st[s][0], 1):.1%}" for s in sets]
            row += [f"{found_all / max(n_all, 1):.1%}", f"{extra / max(n_all, 1):.1%}",
                    f"{1000 * wall / max(n, 1):.1f}", f"{cpu_ms:.1f}", f"{100 / max(cpu_ms, 1e-6):.0f}x"]
            row += [f"{pairs[label][s][1] / max(pairs[label][s][0], 1):.1%} of {pairs[label][s][0]}" for s in sets]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", ("Recall: frames with at least one face (each clip shows one). Both faces: two clips' frames side by "
                  f"side (every {3 if quick else 5}th frame), scaled to {MAX_SIDE} px wide, one face found in each half. "
                  "blazeface (combined): the full-range model, the short-range one where it finds no face."), ""]

    photos = _photos()
    head = "| backend | astronaut (frontal) | camera (three-quarter, gray) | false faces on " + \
        f"{len(FACE_FREE)} face-free photos | ms/photo CPU |"
    lines += ["Photos shipped by scikit-image (faces found; face-free: " + ", ".join(FACE_FREE) + ").", "", head,
              "|" + "---|" * (head.count("|") - 1)]
    for label, det in detectors.items():
        found, cpu = {}, 0.0
        for name, img in photos.items():
            c0 = time.process_time()
            found[name] = len(det.detect(img))
            cpu += time.process_time() - c0
        false = sum(found[n] for n in FACE_FREE)
        lines.append(f"| {label} | {found['astronaut']} | {found['camera']} | {false} | "
                     f"{1000 * cpu / len(photos):.1f} |")
    from memobert.backends import default_backend

    lines += ["", (f"\"auto\" picks `{default_backend('face_detector')}` here (the installed backend of highest "
              "priority: blazeface > mtcnn > haar).")]
    for det in detectors.values():
        if hasattr(det, "close"):
            det.close()
    return "\n".join(lines)


def main() -> None:
    from memobert.command_line import CommandLineParser

    parser = CommandLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of the real recordings (e.g. ../shared/real); absent: the photos only")
    parser.add_argument("--quick", action="store_true", help="every 5th video frame")
    args = parser.parse_args()
    print(run(args.data, quick=args.quick))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
