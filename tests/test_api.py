"""The Python API: lazy top-level exports, the README's example, ``Prediction.to_dict``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The Python code block of the README's *Python API* section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_bodyshape_is_light_and_exports_the_api():
    code = ("import sys, bodyshape; "
            "assert not {'torch', 'cv2', 'scipy'} & set(sys.modules); "
            "from bodyshape import Predictor, Prediction; "
            "assert Predictor.__module__ == 'bodyshape.predict'; "
            "assert Prediction.__name__ == 'Prediction'")
    subprocess.run([sys.executable, "-c", code], check=True)
    import bodyshape

    assert {"Predictor", "Prediction", "write_prediction", "load_chart", "recommend"} \
        <= set(dir(bodyshape))
    with pytest.raises(AttributeError):
        bodyshape.nothing_here  # noqa: B018


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mediapipe")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert re.search(r"chest \d+\.\d cm", out)
    assert "'chest_in'" in out and "womens_tops" in out
    assert (tmp_path / "prediction-api" / "measurements.json").is_file()


def test_predictor_is_a_context_manager(monkeypatch):
    from bodyshape.predict import Predictor

    closed = []
    p = Predictor.__new__(Predictor)
    monkeypatch.setattr(p, "close", lambda: closed.append(True), raising=False)
    with p as entered:
        assert entered is p
    assert closed == [True]
