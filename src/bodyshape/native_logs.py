"""Route the log lines that native libraries write straight to file descriptor 2 into
Python's logging.

MediaPipe's C++ graph and TensorFlow Lite print lines such as ``W0000 00:00:...
inference_feedback_manager.cc:114] ...`` and ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.`` with ``write(2, ...)`` from C++, so neither ``logging`` nor
``sys.stderr`` sees them, and environment variables (``GLOG_minloglevel``,
``TF_CPP_MIN_LOG_LEVEL``) do not silence mediapipe 0.10.21's absl logger. :func:`native_logs`
points fd 2 at a temporary file while native code runs; afterwards every line that looks
like a native log line goes to the ``bodyshape.native`` logger at INFO (shown by
``bodyshape -v``, hidden by default), and anything else is written back to stderr
unchanged, so no message of ours or of Python is lost. Hand-written because no library does
this fd-level capture (``contextlib.redirect_stderr`` only swaps ``sys.stderr``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

logger = logging.getLogger("bodyshape.native")

# absl/glog lines ("W0000 00:00:1795895268.07 840 file.cc:114] ..."), TensorFlow Lite's
# "INFO: ..." lines and absl's "WARNING: All log messages before absl::InitializeLog()".
NATIVE_LINE = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ [\w./-]+:\d+\]|INFO: |"
                         r"WARNING: All log messages before absl::InitializeLog)")
_lock = threading.Lock()
_depth = 0


@contextlib.contextmanager
def native_logs() -> Iterator[None]:
    """Capture fd 2 for the duration (re-entrant; module docs). Process-wide: another
    thread's stderr output meanwhile is held back and written out at the end."""
    global _depth
    with _lock:
        _depth += 1
        outer = _depth == 1
    if not outer:
        try:
            yield
        finally:
            with _lock:
                _depth -= 1
        return
    sys.stderr.flush()
    saved = os.dup(2)
    tmp = tempfile.TemporaryFile()
    os.dup2(tmp.fileno(), 2)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        with _lock:
            _depth -= 1
        tmp.seek(0)
        text = tmp.read().decode("utf-8", errors="replace")
        tmp.close()
        passed = []
        for line in text.splitlines():
            if NATIVE_LINE.match(line):
                logger.info("%s", line)
            else:
                passed.append(line)
        if passed:
            os.write(2, ("\n".join(passed) + "\n").encode())
