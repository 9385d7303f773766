"""The lighter install: prediction and the web app never import the build extra (anny,
warp, scikit-learn), and a build command without it fails with one line naming the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bodyshape.cli import main

ROOT = Path(__file__).resolve().parents[1]
BUILD_ONLY = ("anny", "warp", "sklearn", "roma")


def test_predict_and_serve_do_not_import_the_build_extra(tmp_path):
    code = f"""
import sys
from click.testing import CliRunner
from fastapi.testclient import TestClient
from bodyshape.cli import main
r = CliRunner().invoke(main, ["predict", "--front", r"{ROOT}/examples/front.jpg", "--side",
    r"{ROOT}/examples/side.jpg", "--height-cm", "171.3", "--fit-pose", "--size-chart",
    "womens_tops", "--out", r"{tmp_path}/p"])
assert r.exit_code == 0, r.output
from bodyshape.web import create_app
with TestClient(create_app(results_dir=r"{tmp_path}/results")) as c:
    assert c.get("/api/v1/health").status_code == 200
loaded = {{m.split(".")[0] for m in sys.modules}} & set({BUILD_ONLY!r})
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


def test_missing_extra_is_one_line(monkeypatch, tmp_path):
    import pytest

    from bodyshape.extras import MissingExtra, require_extra
    from bodyshape.shape import folders

    monkeypatch.setitem(sys.modules, "anny", None)  # import anny -> ImportError
    with pytest.raises(MissingExtra) as err:
        require_extra("anny")
    message = "anny is not installed; this needs the 'build' extra: pip install 'bodyshape[build]'"
    assert str(err.value) == message

    def needs_anny(*args, local_scale=1.0, **kwargs):  # the CLI reads local_scale's default
        require_extra("anny")

    monkeypatch.setattr(folders, "write_anny_bodies", needs_anny)
    r = CliRunner().invoke(main, ["bodies", "--n", "1", "--out", str(tmp_path / "b")])
    assert (r.exit_code, r.output) == (2, f"error: {message}\n")


def test_setup_installs_the_build_extra_for_the_tests():
    assert '".[build,test]"' in (ROOT / "scripts/setup.sh").read_text()
