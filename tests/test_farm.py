"""A tuning farm: two virtual boards under one key at one tracker, candidates measured on both
at once, more candidates in flight than boards, and a board lost in the middle of a run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compile.build import BuildArgs, build
from tests.conftest import REPO, isolated_board, run_cli

pytestmark = pytest.mark.board
SIZE = "64x64"


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    with isolated_board(tmp_path_factory.mktemp("farm"), "farm", boards=2) as env:
        env["pids"] = json.loads((env["dir"] / "run" / "board.json").read_text())["server_pids"]
        yield env


def tune_cmd(farm, logs: Path, trials: int, parallel: int) -> list[str]:
    return ["-m", "compile", "tune", "--model", "xs", "--target", "rk3399", "--input-size", SIZE,
            "--trials", str(trials), "--trials-per-batch", "4", "--timeout", "120", "--quiet",
            "--parallel", str(parallel), "--tracker", f"127.0.0.1:{farm['port']}", "--key", "farm",
            "--tuning-logs", str(logs)]


def per_board(stdout: str) -> dict[str, tuple[int, int]]:
    """``boards     ADDR: N trials (F failed), ...`` -> {addr: (trials, failed)}."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("boards "))
    return {a: (int(n), int(f)) for a, n, f in re.findall(r"(\S+): (\d+) trials \((\d+) failed\)", line)}


def records(logs: Path) -> list[dict]:
    path = logs / "rk3399" / "xs-64x64" / "database_tuning_record.json"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_status_lists_both_boards(farm):
    res = run_cli("-m", "compile", "board", "status", env=farm["env"])
    assert res.returncode == 0 and "farm" in res.stdout and "free 2" in res.stdout
    assert "2 virtual board(s)" in res.stdout


def test_more_in_flight_than_boards_waits_and_uses_both(farm, tmp_path):
    """--parallel 3 on 2 boards: the third candidate waits for a free board (no failure), both
    boards measure, every record lands in the database, and the tuned build keeps parity."""
    res = run_cli(*tune_cmd(farm, tmp_path / "logs", 8, 3), env=farm["env"], timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    done = re.search(r"(\d+) trials, 0 failed", res.stdout)
    assert done and int(done.group(1)) >= 8, res.stdout
    boards = per_board(res.stdout)
    assert len(boards) == 2 and all(n >= 1 and f == 0 for n, f in boards.values()), boards
    assert sum(n for n, _ in boards.values()) == int(done.group(1))
    assert len(records(tmp_path / "logs")) == int(done.group(1))
    assert "candidates/min" in res.stdout
    out = tmp_path / "xs-rk3399"
    build(BuildArgs(model="xs", target="rk3399", output=out, input_size=SIZE,
                    tuning_logs=tmp_path / "logs"))
    dep = run_cli("-m", "compile", "deploy", "--model", "xs", "--target", "rk3399", "--artifact",
                  str(out), "--input-size", SIZE, "--repeat", "2", "--no-compare", "--tracker",
                  f"127.0.0.1:{farm['port']}", "--key", "farm", env=farm["env"])
    assert dep.returncode == 0 and "verdict     PASS" in dep.stdout, dep.stdout + dep.stderr
    assert "schedules   tuned for rk3399" in dep.stdout


def test_a_board_lost_mid_run_fails_only_its_trials(farm, tmp_path):
    """One board killed while both measure: the run finishes on the other, failures are the
    dead board's (or unknown), and the database holds every finished measurement."""
    logs = tmp_path / "logs"
    proc = subprocess.Popen([sys.executable, *tune_cmd(farm, logs, 16, 2)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **farm["env"]})
    db = logs / "rk3399" / "xs-64x64" / "database_tuning_record.json"
    deadline = time.monotonic() + 900
    while not (db.is_file() and len(db.read_text().splitlines()) >= 4):  # measuring on both
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.5)
    doomed = farm["pids"][0]
    port = re.search(r"bind to \S+:(\d+)", (farm["dir"] / "run" / "server-0.log").read_text())
    os.killpg(doomed, signal.SIGKILL)  # a board the tests started (its own process group)
    out, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-4000:]
    boards = per_board(out)
    survivor = {a: v for a, v in boards.items() if not (port and a.endswith(f":{port.group(1)}"))
                and a != "unknown"}
    assert len(survivor) == 1 and next(iter(survivor.values()))[1] == 0, boards  # no failure there
    done = re.search(r"(\d+) trials, (\d+) failed", out)
    trials, failed = int(done.group(1)), int(done.group(2))
    assert trials >= 16 and sum(n for n, _ in boards.values()) == trials
    ok = [r for r in records(logs) if min(r[1][1] or [1e10]) < 1e9]  # failures: 1e10 s
    assert len(ok) == trials - failed, (len(ok), trials, failed)
