"""``bodyshape predict`` fed random image bytes (Hypothesis): one ``error:`` line, exit status
3 (input refused), never a traceback, and no output files, partial or temporary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodyshape.cli import main
from bodyshape.cli.common import EXIT_REJECTED

ROOT = Path(__file__).resolve().parents[1]
SIDE = ROOT / "examples/side.jpg"
MAGIC = st.sampled_from([b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
                         b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a"])


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(magic=MAGIC, body=st.binary(max_size=2048), suffix=st.sampled_from([".jpg", ".png", ""]))
def test_random_bytes_are_refused_cleanly(tmp_path_factory, magic, body, suffix):
    work = tmp_path_factory.mktemp("fuzz")
    photo = work / f"photo{suffix}"
    photo.write_bytes(magic + body)
    res = CliRunner().invoke(main, ["predict", "--front", str(photo), "--side", str(SIDE),
                                    "--height-cm", "171", "--out", str(work / "out")])
    assert res.exit_code == EXIT_REJECTED, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    assert sorted(p.name for p in work.iterdir()) == [photo.name]  # nothing written


def test_a_real_process_prints_one_line(tmp_path):
    """Through a real process (real stderr: native log lines, tracebacks would show)."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    r = subprocess.run([sys.executable, "-m", "bodyshape.cli", "predict", "--front", str(bad),
                        "--side", str(SIDE), "--height-cm", "171", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == EXIT_REJECTED
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert r.stdout == "" and not (tmp_path / "out").exists()


def test_example_prediction_console_is_quiet(tmp_path):
    """No MediaPipe/TensorFlow log lines on the console by default; -v shows them."""
    pytest.importorskip("mediapipe")
    args = [sys.executable, "-m", "bodyshape.cli", "predict", "--front",
            str(ROOT / "examples/front.jpg"), "--side", str(SIDE), "--height-cm", "171.3",
            "--out", str(tmp_path / "out")]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "chest:" in quiet.stdout and "W0000" not in quiet.stdout
    loud = subprocess.run([*args[:3], "-v", *args[3:]], capture_output=True, text=True,
                          timeout=300)
    assert loud.returncode == 0
    assert "bodyshape.native" in loud.stderr and "TensorFlow Lite" in loud.stderr
