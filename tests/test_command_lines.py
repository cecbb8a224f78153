"""Every command and script: a mistyped option is one line naming it and pointing to --help (exit 2), never a
traceback or a usage dump."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

from memobert import cli
from tests.support import REPO

SCRIPTS = ["preprocessing/run.py", "pretrain/run.py", "prompt_tuning/run.py", "baselines/seed_iv.py",
           "examples/quickstart.py", *sorted(str(p.relative_to(REPO)) for p in (REPO / "benchmarks").glob("*.py"))]
SUBCOMMANDS = [["preprocess"], ["pretrain"], ["prepare"], ["prepare", "iemocap"], ["prepare", "msp_improv"],
               ["prepare", "ravdess"], ["prepare", "crema_d"], ["prepare", "meld"], ["prepare", "emodb"],
               ["downstream"], ["predict"], ["doctor"], ["export-onnx"], ["push"]]


def assert_one_line_about_the_flag(captured, status: int, prog: str) -> None:
    assert status == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines == [f"{prog}: unknown option --no-such-flag (see {prog} --help)"], captured.err
    assert "Traceback" not in captured.err and not captured.out


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_memobert_subcommand(words, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*words, "--no-such-flag", "1"])
    prog = "memobert " + " ".join(words)
    assert_one_line_about_the_flag(capsys.readouterr(), exit_.value.code, prog)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script(script, capsys, monkeypatch):
    path = REPO / script
    monkeypatch.syspath_prepend(str(path.parent))  # the benchmarks import each other as scripts do
    monkeypatch.setattr(sys, "argv", [script, "--no-such-flag"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(path), run_name="__main__")
    captured = capsys.readouterr()
    prog = captured.err.split(":", 1)[0]
    assert prog in (script, path.name)
    assert_one_line_about_the_flag(captured, exit_.value.code, prog)


def test_a_real_process_prints_the_one_line_too():
    result = subprocess.run([sys.executable, "-m", "memobert.cli", "downstream", "--setting", "prompt", "--no-such-flag"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "memobert downstream: unknown option --no-such-flag (see memobert downstream --help)"


def test_bad_values_are_one_line_as_well(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["preprocess", "--input", "x", "--output", "y", "--fps", "fast"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "memobert preprocess: argument --fps: invalid float value: 'fast' (see memobert preprocess --help)"
