"""The server process as config/asgi.py sets it up (run in a fresh interpreter,
as daphne would import it)."""

import os
import subprocess

import pytest

from tests.live import PYTHON, ROOT

SHOW = "import sys, config.asgi; print(sys.getswitchinterval())"


def interpreter(tmp_path, **env):
    return subprocess.run(
        [PYTHON, "-c", SHOW],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("value", "seconds"), [(None, 0.005), ("3", 0.003)])
def test_the_gil_switch_interval_is_the_setting(tmp_path, value, seconds):
    env = {} if value is None else {"WHITEBOARD_SWITCH_INTERVAL_MS": value}
    env.setdefault("WHITEBOARD_SWITCH_INTERVAL_MS", "")
    result = interpreter(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(seconds)


def test_a_switch_interval_below_one_ms_is_refused_at_start(tmp_path):
    result = interpreter(tmp_path, WHITEBOARD_SWITCH_INTERVAL_MS="0")
    assert result.returncode != 0
    assert "WHITEBOARD_SWITCH_INTERVAL_MS must be at least 1" in result.stderr
