"""The package as users install it: a wheel built from this tree holds the baselines' configs, and an installed copy
(outside the source tree) finds them by name."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import REPO


def test_the_wheel_ships_the_baseline_configs_and_an_installed_copy_resolves_them(tmp_path):
    source = tmp_path / "source"  # a copy of what the build reads: the build leaves build/ and *.egg-info there
    shutil.copytree(REPO / "memobert", source / "memobert", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("memobert-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"memobert/baselines/configs/mfn.yaml", "memobert/baselines/configs/offline/unimse_tiny.yaml"} <= names
    assert not any(name.startswith(("tests/", "benchmarks/")) for name in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, timeout=300, cwd=tmp_path)
    probe = (
        "import memobert.baselines as b\n"
        "print(b.__file__)\n"
        "print(b.baseline_config_path('mfn'))\n"
        "print(b.baseline_config_path('offline/unimse_tiny'))\n"
        "print(len(b.shipped_configs()))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={"PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    module, mfn, tiny, count = result.stdout.split()
    assert module.startswith(str(target)) and mfn.startswith(str(target)) and tiny.startswith(str(target))
    assert Path(mfn).read_text().startswith("#") and int(count) >= 10
