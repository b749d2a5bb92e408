"""What every scenario shares: results and targets, the table, the machine, a ``relay serve``
to measure, memory sampling of a process tree, and the baseline tools (installed on demand).

A result's ratio is always ``relay / baseline`` of the two figures in its row, so a figure that
is better when higher (msg/s, MB/s, media seconds per CPU second) wants a ratio of at least its
target, and a time wants at most.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.server is shared with the end-to-end tests
    sys.path.insert(0, str(ROOT))

from tests.server import RelayServer  # noqa: E402

MB = 1 << 20
GB = 1 << 30


class Unavailable(Exception):  # noqa: N818 - reads as a state, like StopIteration
    """A scenario cannot run here (a tool or module missing); its rows say why."""


# --- results ---------------------------------------------------------------------------------


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}
_SHOWN = {">=": "≥", "<=": "≤", "<": "<"}


@dataclass(frozen=True, slots=True)
class Target:
    op: str
    value: float
    on: str = "ratio"
    """``ratio`` (relay / baseline) or ``relay`` (the relay's figure alone)."""
    unit: str = "×"

    def check(self, result: Result) -> bool | None:
        value = result.ratio if self.on == "ratio" else result.relay
        return None if value is None else _OPS[self.op](value, self.value)

    def __str__(self) -> str:
        unit = self.unit if self.unit == "×" else f" {self.unit}"
        return f"{_SHOWN[self.op]} {self.value:g}{unit}"


@dataclass(slots=True)
class Result:
    scenario: str
    unit: str
    relay: float | None = None
    baseline: float | None = None
    target: Target | None = None
    memory_mb: float | None = None
    memory_kind: str = "growth"
    """``growth`` of the relay's process tree over idle, or ``peak`` RSS of the worker."""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.relay is None or self.baseline is None or self.baseline <= 0:
            return None
        return self.relay / self.baseline

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.check(self)


def unavailable(names: list[tuple[str, str]], reason: str) -> list[Result]:
    return [Result(name, unit, note=f"not available: {reason}") for name, unit in names]


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
    return f"{value:,.{digits}f} {unit}"


def _memory(result: Result) -> str:
    if result.memory_mb is None:
        return "—"
    if result.memory_kind == "peak":
        return f"{result.memory_mb:.0f} MB peak"
    return f"{result.memory_mb:+.0f} MB"


COLUMNS = ("scenario", "relay", "baseline", "ratio", "target", "pass", "peak memory", "notes")


def table(results: list[Result]) -> str:
    rows = [COLUMNS, tuple("---" for _ in COLUMNS)]
    for r in results:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        passed = {True: "pass", False: "FAIL", None: "—"}[r.passed]
        rows.append(
            (
                r.scenario,
                _figure(r.relay, r.unit),
                _figure(r.baseline, r.unit),
                ratio,
                str(r.target) if r.target else "—",
                passed,
                _memory(r),
                r.note.replace("|", "/") or "",
            )
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def as_json(results: list[Result], machine: dict[str, str]) -> dict[str, object]:
    rows = [
        {
            "scenario": r.scenario,
            "unit": r.unit,
            "relay": r.relay,
            "baseline": r.baseline,
            "ratio": r.ratio,
            "target": str(r.target) if r.target else None,
            "passed": r.passed,
            "memory_mb": r.memory_mb,
            "memory_kind": r.memory_kind,
            "note": r.note,
        }
        for r in results
    ]
    return {"machine": machine, "results": rows}


# --- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    return "unknown"


def fsync_latency_ms(directory: Path, count: int = 50) -> float:
    """Median time of one 4 KiB write + fsync: what every durable answer pays at least once."""
    path = directory / ".fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return statistics.median(samples) * 1000


def machine(workdir: Path) -> dict[str, str]:
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "load average": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        "disk": f"fsync of 4 KiB in {fsync_latency_ms(workdir):.1f} ms (median), under {workdir}",
    }


# --- memory of a process tree ----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(p) for p in text.split())
    return found


def tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue and len(pids) < 256:  # bounded, in case /proc changes under us
        current = queue.pop()
        pids.append(current)
        queue.extend(_children(current))
    return pids


def status_kb(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (its threads included)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far."""
    return sum(cpu_seconds(p) for p in tree(pid))


def tree_rss_mb(pid: int) -> float:
    return sum(status_kb(p, "VmRSS") for p in tree(pid)) / 1024


class MemorySampler:
    """Samples VmRSS of a process and its descendants on a thread; ``growth_mb`` is the peak
    over the idle figure taken when sampling started."""

    def __init__(self, pid: int, interval: float = 0.05, idle_seconds: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.idle_mb = self._idle(idle_seconds)
        self.peak_mb = self.idle_mb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _idle(self, seconds: float) -> float:
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(tree_rss_mb(self.pid))
            time.sleep(self.interval)
        return statistics.median(samples) if samples else tree_rss_mb(self.pid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.idle_mb


# --- the relay under test --------------------------------------------------------------------


PROFILE: dict[str, object] = {"dir": None, "format": "flamegraph"}
"""Set by ``--profile DIR``: every ``relay serve`` of the run is sampled by py-spy into DIR."""


@contextlib.contextmanager
def _profiled(pid: int, name: str) -> Iterator[None]:
    folder = PROFILE["dir"]
    if folder is None:
        yield
        return
    assert isinstance(folder, Path)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise Unavailable("py-spy is not installed (pip install py-spy)")
    folder.mkdir(parents=True, exist_ok=True)
    fmt = str(PROFILE["format"])
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[fmt]
    output = folder / f"{name}.{suffix}"
    process = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--threads", "--rate", "250",
         "--format", fmt, "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)  # attached before the load starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def relay_serve(data_dir: Path, **env: str) -> Iterator[RelayServer]:
    """A ``relay serve`` on free 127.0.0.1 ports, logging warnings only. Intake scenarios pass
    ``RELAY_WORKERS=0``: they measure what the doors accept, not what the pipeline does later."""
    settings = {"RELAY_LOG_LEVEL": "WARNING", **env}
    server = RelayServer(data_dir, **settings)
    server.start()
    try:
        with _profiled(relay_pid(server), data_dir.name):
            yield server
    finally:
        server.stop()


def bench_user(server: RelayServer) -> dict[str, str]:
    """The ``Authorization`` header of a new user of ``server``, for the upload doors."""
    return {"Authorization": f"Bearer {server.add_user('bench')['token']}"}


def relay_pid(server: RelayServer) -> int:
    assert server.process is not None
    return server.process.pid


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Context:
    quick: bool
    workdir: Path
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    photos: int | None = None
    """``--photos N``: how many photos every ``photos-*`` scenario sends (by default 200 in
    ``photos-mail`` and ``photos-http``, 100 in those that compare two relays)."""

    @property
    def rounds(self) -> int:
        """Throughput scenarios alternate baseline and relay this many times and keep each
        one's best: others' processes on a shared machine only ever make a run slower."""
        return 1 if self.quick else 2

    @property
    def cache(self) -> Path:
        """Inputs worth keeping between runs (generated video clips), beside the run folders."""
        return self.workdir.parent / "cache"

    def scratch(self, name: str) -> Path:
        """An empty folder for one scenario (on the same disk as every other scenario's)."""
        path = self.workdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def drop(self, path: Path) -> None:
        """Remove a scenario's files and let the disk finish writing them back, so the next
        measurement starts from the same state."""
        shutil.rmtree(path, ignore_errors=True)
        os.sync()


def make_workdir() -> Path:
    # /var/tmp, not /tmp: /tmp may be a tmpfs, where fsync costs nothing and proves nothing.
    base = Path(os.environ.get("BENCH_WORKDIR") or "/var/tmp/relay-bench")
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="run-", dir=base))


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- baseline tools --------------------------------------------------------------------------

SMTP_SOURCE = Path("/usr/sbin/smtp-source")
SMTP_SINK = Path("/usr/sbin/smtp-sink")
_POLICY = Path("/usr/sbin/policy-rc.d")


def _apt_install(*packages: str, preseed: str = "") -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"{' '.join(packages)} missing and apt-get is not usable here")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if preseed and shutil.which("debconf-set-selections"):
        subprocess.run(["debconf-set-selections"], input=preseed, text=True, check=False, env=env)
    # policy-rc.d answering 101 tells maintainer scripts not to start any service: we want
    # Postfix's test programs, never a mail server listening on this machine.
    made_policy = not _POLICY.exists()
    if made_policy:
        _POLICY.write_text("#!/bin/sh\nexit 101\n")
        _POLICY.chmod(0o755)
    try:
        command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:  # a stale package list: refresh once and try again
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise Unavailable(f"apt-get install {' '.join(packages)}: {done.stderr[-300:]}")
    finally:
        if made_policy:
            _POLICY.unlink(missing_ok=True)


def ensure_postfix_tools() -> None:
    if SMTP_SOURCE.exists() and SMTP_SINK.exists():
        return
    _apt_install("postfix", preseed="postfix postfix/main_mailer_type select No configuration\n")
    if not (SMTP_SOURCE.exists() and SMTP_SINK.exists()):
        raise Unavailable("postfix installed but smtp-source/smtp-sink are missing")


VIPS_VENV = "vips-venv"
_VIPS_PROBE = (
    "import pyvips, _libvips; pyvips.Image.black(1, 1); "
    "print(pyvips.version(0), pyvips.version(1), pyvips.version(2))"
)


def ensure_pyvips(cache: Path) -> tuple[str, str]:
    """The Python of the image baseline's own environment (made under ``cache`` on first use:
    pyvips on the ``pyvips-binary`` wheel, the libvips the relay also uses, never a system
    one), and the libvips version it loads."""
    venv = cache / VIPS_VENV
    python = venv / "bin" / "python"
    probe = [str(python), "-c", _VIPS_PROBE]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True)
        if done.returncode == 0:
            return str(python), ".".join(done.stdout.split())
    cache.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True
    )
    if made.returncode != 0:
        raise Unavailable(f"python -m venv: {made.stderr[-300:]}")
    pip = [str(python), "-m", "pip", "install", "-q", "pyvips[binary]>=3.0", "pyvips-binary>=8.15"]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise Unavailable(f"pip install pyvips[binary]: {done.stderr[-300:]}")
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"pyvips-binary installed but does not load: {done.stderr[-300:]}")
    return str(python), ".".join(done.stdout.split())


@contextlib.contextmanager
def baseline_http(data_dir: Path) -> Iterator[tuple[int, int]]:
    """The bare aiohttp server (``bench.baseline_http``) on a free port: (port, pid)."""
    import httpx

    from tests.server import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline_http", "--port", str(port), "--dir", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError("the baseline HTTP server exited at start")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the baseline HTTP server did not come up")
            time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
