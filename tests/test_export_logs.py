"""``flowcore.cli._guard.framework_logs``: what ``flowcore export`` shows of the frameworks' output.

Real log records, warnings and writes to the process's stderr descriptor go through the holder:
on success without ``--quiet`` the real ones are replayed and the noise is not (empty records,
``torch.__trace``, deprecation notices raised from the frameworks' own files, blank lines); with
``--quiet`` nothing is written anywhere; on an error nothing is replayed.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import warnings

import pytest

from flowcore.cli._guard import framework_logs


def _emit():
    logging.getLogger("torch.__trace").warning("")  # what torch.export emits, 46 times per export
    logging.getLogger("torch.export").warning("   ")
    logging.getLogger("torch.onnx").warning("a real exporter warning")
    warnings.warn("a real user warning", UserWarning)
    # a deprecation notice attributed to a framework's own file (its stacklevel points there)
    warnings.warn_explicit("torch calls a deprecated torch API", FutureWarning,
                           os.path.join(sys.prefix, "lib", "site-packages", "torch", "export", "x.py"), 1)
    warnings.warn_explicit("your code calls a deprecated API", FutureWarning, "/home/user/train.py", 7)
    print("printed by a framework")
    os.write(2, b"\nI0000 native C++ log line\n\n")  # TensorFlow's C++ log writes to the descriptor


def test_success_replays_real_lines_only(capfd):
    err = io.StringIO()
    with framework_logs(err, quiet=False):
        _emit()
    text = err.getvalue()
    assert "torch.onnx: a real exporter warning" in text
    assert "a real user warning" in text and "your code calls a deprecated API" in text
    assert "I0000 native C++ log line" in text and "printed by a framework" in text
    assert "torch.__trace" not in text and "torch.export:" not in text
    assert "torch calls a deprecated torch API" not in text
    assert all(line.strip() for line in text.splitlines()), text
    out, native = capfd.readouterr()
    assert out == "" and native == ""  # everything went through the holder


def test_quiet_writes_nothing_anywhere(capfd):
    err = io.StringIO()
    with framework_logs(err, quiet=True):
        _emit()
    assert err.getvalue() == ""
    assert capfd.readouterr() == ("", "")


def test_error_drops_everything(capfd):
    err = io.StringIO()
    with pytest.raises(RuntimeError), framework_logs(err, quiet=False):
        _emit()
        raise RuntimeError("the export failed")
    assert err.getvalue() == ""
    assert capfd.readouterr() == ("", "")
    os.write(2, b"after\n")  # the descriptor is back
    assert capfd.readouterr().err == "after\n"
