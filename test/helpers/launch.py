"""Run a launch file the way a user does: ``ros2 launch timar_ros X.launch.xml args...`` with
the real ``ros2`` command line, in its own process group (a terminal's job), Ctrl-C as SIGINT to
that group, and a look at what is left running afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.ros import REPO, ros_env

KIT_HINT = (
    "`make test` installs it into the venv from ../shared/ros2-cli-kit (the folder is the "
    "Makefile's ROS2_CLI_KIT), or source a ROS 2 install that has it"
)


def ros2_executable() -> str | None:
    """The ``ros2`` command line: the venv's (from the kit), else a ROS 2 install's on PATH."""
    venv = Path(sys.executable).parent / "ros2"
    return str(venv) if venv.exists() else shutil.which("ros2")


def require_ros2() -> str:
    """The ``ros2`` executable; without one the test skips, saying why (fails in CI, where the
    kit is always beside the project)."""
    exe = ros2_executable()
    if exe is None:
        why = f"no `ros2` command line (launch, ros2cli): {KIT_HINT}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return exe


def ros2(*args: str, timeout: float = 60.0, check: bool = True) -> str:
    """Run ``ros2 ARGS`` as a user would in a shell; returns its output (stdout + stderr)."""
    done = subprocess.run(
        [require_ros2(), *args],
        env=ros_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check:
        assert done.returncode == 0, f"ros2 {' '.join(args)} -> {done.returncode}:\n{done.stdout}"
    return done.stdout


# `ros2 lifecycle` and `ros2 param` wait for ever for an answer that Fast DDS may drop right
# after discovery (see helpers.ros.call): each try gets ANSWER_S seconds.
ANSWER_S = 15.0
_GOAL = {"configure": "inactive", "cleanup": "unconfigured", "activate": "active"}
_GOAL.update({"deactivate": "inactive", "shutdown": "finalized"})


def ros2_answer(*args: str, tries: int = 3) -> str:
    """``ros2 ARGS`` for a request that is safe to repeat (``lifecycle get``, ``param set``),
    run again when no answer came within ANSWER_S seconds or the node was not found; the last
    try without the ros2 daemon (a daemon whose DDS deadlocked, Fast DDS#6502, keeps a stale
    graph)."""
    out = ""
    for i in range(tries):
        last = i == tries - 1
        try:
            out = ros2(*args, *(["--no-daemon"] if last else []), timeout=ANSWER_S, check=False)
        except subprocess.TimeoutExpired:
            if last:
                raise
            continue
        if "not found" not in out.lower():
            break
    return out


def lifecycle_set(node: str, transition: str, tries: int = 3) -> str:
    """``ros2 lifecycle set NODE TRANSITION`` as a user types it; its output. Unanswered, the
    node's state says whether it was done (the answer lost: 'Transitioning successful') or is
    asked for again."""
    start = lifecycle_get(node)
    for _ in range(tries):
        try:
            return ros2("lifecycle", "set", node, transition, timeout=ANSWER_S, check=False)
        except subprocess.TimeoutExpired:
            now = lifecycle_get(node)
            if now == _GOAL[transition]:
                return "Transitioning successful (the answer was lost; the state says so)"
            assert now == start, f"{node}: {start} -> {now} on {transition}"
    raise AssertionError(f"no answer from {node}/change_state ({transition})")


def lifecycle_get(node: str) -> str:
    """The state label `ros2 lifecycle get NODE` prints, e.g. 'active'."""
    out = ros2_answer("lifecycle", "get", node)
    return out.split()[0] if out.strip() else out


def installed_share() -> Path:
    """share/timar_ros of the install ``ros2 launch`` uses (the launch and config files)."""
    prefix = ros2("pkg", "prefix", "timar_ros").strip()
    return Path(prefix) / "share" / "timar_ros"


def stale_installed_files(share: Path) -> list[str]:
    """Checkout files under launch/ and config/ that differ from the installed copies."""
    stale = []
    for folder in ("launch", "config"):
        for f in sorted((REPO / folder).iterdir()):
            installed = share / folder / f.name
            if not installed.is_file() or installed.read_bytes() != f.read_bytes():
                stale.append(f"{folder}/{f.name}")
    return stale


def record_figures(launch_file: str, figures: dict) -> None:
    """Print what a launch test measured and append it, with the distribution, to
    build/launch-figures.jsonl (the start-up, rate and shutdown figures docs/launch.md quotes)."""
    row = {"launch": launch_file, "distro": os.environ.get("ROS_DISTRO", "?"), **figures}
    print(row)
    out = REPO / "build" / "launch-figures.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def _default_sigint() -> None:
    # A shell that is not interactive starts background jobs with SIGINT ignored, and an ignored
    # signal stays ignored across exec: launch would never see the Ctrl-C the test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# faulthandler's dump (run_node's teardown limit) of a process stuck in rclpy's DDS teardown
_TIMEOUT = re.compile(r"^\[([\w.-]+)\] Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!$", re.M)
_IN_RCLPY_TEARDOWN = r'File ".*/rclpy/[\w/]+\.py", line \d+ in (destroy\w*|try_shutdown|shutdown)'


def dds_teardown_hang(out: str) -> str | None:
    """The launch's name of a process that run_node's teardown limit ended while it was stuck in
    rclpy destroying its DDS entities (the Fast DDS deadlock), from the launch output; else
    None."""
    for m in _TIMEOUT.finditer(out):
        name = m.group(1)
        if re.search(rf"^\[{re.escape(name)}\] +{_IN_RCLPY_TEARDOWN}$", out, re.M):
            return name
    return None


class Launch:
    """``ros2 launch timar_ros FILE ARGS`` in its own process group, output to ``log``."""

    def __init__(self, file: str, *args: str, log: Path, env: dict | None = None):
        self.log = Path(log)
        self._out = open(self.log, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [require_ros2(), "launch", "timar_ros", file, *args],
            env={**ros_env(), **(env or {})},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
        self.pgid = self.proc.pid
        self.seen: dict[int, str] = {}  # pid -> command line of every process it started

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def _remember_children(self) -> None:
        import psutil

        try:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                self.seen.setdefault(child.pid, " ".join(child.cmdline()[:3]))
        except psutil.Error:
            pass

    def wait_until(self, predicate, timeout: float, spin=None) -> bool:
        """Until ``predicate()`` (spinning ``spin(0.1)`` between tries, else sleeping); False
        when the launch exits first or the time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._remember_children()
            if predicate():
                return True
            if self.proc.poll() is not None:
                return False
            if spin is not None:
                spin(0.1)
            else:
                time.sleep(0.1)
        return predicate()

    def still_running(self) -> list[str]:
        """The processes it started (or its group holds) that are alive: 'pid command'."""
        import psutil

        alive = []
        for pid, cmd in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {cmd}")
            except psutil.NoSuchProcess:
                pass
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getpgid(p.pid) == self.pgid and p.pid not in self.seen:
                    if p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{p.pid} {' '.join((p.info['cmdline'] or [])[:3])}")
            except (ProcessLookupError, psutil.Error):
                pass
        return alive

    def interrupt(self, timeout: float = 5.0) -> tuple[int | None, float]:
        """Ctrl-C: SIGINT to the whole group, as a terminal sends it. Returns (exit status of
        ``ros2 launch`` or None if it did not exit within ``timeout``, seconds until it and
        everything it started had ended)."""
        self._remember_children()
        t0 = time.monotonic()
        try:
            os.killpg(self.pgid, signal.SIGINT)
        except ProcessLookupError:
            pass
        rc = None
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None and not self.still_running():
                rc = self.proc.returncode
                break
            time.sleep(0.02)
        return rc, time.monotonic() - t0

    def ctrl_c_and_check(self) -> float:
        """Ctrl-C; asserts that everything ended within 5 s, exit 0, no traceback and no process
        that died; returns the seconds it took."""
        rc, down_s = self.interrupt(5.0)
        left = self.still_running()
        if left:
            self.dump_stacks([int(entry.split()[0]) for entry in left])
        out = self.output()
        hung = dds_teardown_hang(out)
        if hung:
            pytest.xfail(
                f"Fast DDS 3.2.3 deadlocked in the DDS teardown of {hung} "
                "(eProsima/Fast-DDS#6502; not this package's code): its teardown limit "
                f"(run_node) ended it within {down_s:.1f} s, exit 1, stacks in the output\n{out}"
            )
        assert rc == 0, f"exit {rc} after {down_s:.1f} s; still running: {left}\n{out}"
        assert "Traceback" not in out and "process has died" not in out, out
        assert not left, left
        return round(down_s, 2)

    def dump_stacks(self, pids: list[int]) -> None:
        """SIGABRT to ``pids`` (what :meth:`still_running` found alive): faulthandler
        (PYTHONFAULTHANDLER, ros_env) prints each thread's stack into the launch's output, so a
        hang says where it hung."""
        for pid in pids:
            try:
                os.kill(pid, signal.SIGABRT)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(1.0)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> list[str]:
        """End whatever is left (a failed test's clean-up); returns what had to be killed."""
        left = self.still_running()
        for pid in list(self.seen) + [self.pgid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
        self._out.close()
        return left
