#!/usr/bin/env python3
"""Side-by-side benchmark of image preprocessing: lean Pillow + numpy, Pillow-SIMD
+ numpy and the Go package `preprocess`, on one CPU core.

The task is the served model's contract (triton-models/fish_classifier/config.pbtxt)
on each benchmark photo of preprocess/testdata/bench/ (photo_640x480.jpg,
photo_1024x768.jpg, photo_4032x3024.jpg; JPEG q90 4:2:0): decode the JPEG, resize
the shorter side to 256 (bilinear) and centre-crop 224x224, resampling only that
window, then (x - 127) / 128, FP32 NCHW, contiguous. The Python side is the
peers' own code (loadtest/pygateway/preprocessing.py: EXIF orientation and
convert("RGB") only when needed, Image.resize with box=, normalised in place
into the output), so this times what the Python gateways run.

Two paths, each compared only with its counterpart:

  exact  full-size decode (the Go gateway's default, the peers' only path).
  fast   Pillow: img.draft("RGB", Resize(256) size) right after open, which lets
         libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale; Go: Spec.AllowDCTScaling,
         any n/8 scale. The two may pick different scales (the table shows the
         decoded sizes): each side's fast path against the other's.

Three steps for each size and path:

  whole   the task above, file bytes to tensor.
  decode  the decode alone: Pillow's open (+ draft) + load, upright RGB; Go's
          JPEG decoder alone (BenchmarkDecodeJPEGPhoto).
  resize  the resample alone: the decoded RGB picture's 224x224 window
          (Pillow: Image.resize(box=...); Go: the resampler, BenchmarkResizeWindow).

and the floor, decode alone + resize alone: what the whole task cannot go below
with that decoder and that resampler; whole / floor is what everything else
(normalising, copies, EXIF, buffers) adds.

Pillow is the stock build in the interpreter running this script (make
bench-pillow: .venv). Pillow-SIMD (loadtest/pygateway/install.sh simd:
.bench-simd-venv) runs the same code in a subprocess of its own interpreter, since
one process cannot import two PILs; it is skipped, with a message, when its
environment is missing (--install-simd builds it first; --no-simd skips it).

The file bytes are read once and decoded from memory (io.BytesIO), so the disk is
not timed. Each Python process first runs every file through every step once, so
that the measurements see the steady state of a server rather than the allocator's
first large mappings (glibc's mmap threshold rises only after large frees). The
three sides run in turn, --repeat times (default 3): Pillow, then Pillow-SIMD, then
Go, again and again, so that a slow drift of a shared machine hits all three alike.
Each Python measurement is warmed up, then timed for N rounds (N picked so that it
runs for about --seconds, or fixed with --rounds); its figure is the median over the
repeats of each repeat's median (min, max and the repeats' medians in --json).
The Go side runs, once per repeat,

    go test -run '^$' -bench '^Benchmark(Preprocess|DecodeJPEGPhoto|ResizeWindow)$' \\
        -benchmem -count 1 -cpu 1 ./preprocess/

except that the test binary is built once with `go test -c` on all cores and then
run pinned to the same core as the Python timings. ns/op, B/op and allocs/op are
the medians over all runs. Ratios are Python ms / Go ms: 1.0 or more means Go is
at least as fast.

Why one core: a model server runs many requests in parallel, so per-core cost is
what matters, and Pillow/numpy may otherwise use extra threads the Go side lacks.
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to 1 before numpy is imported.

Usage (from the repository root):

    .venv/bin/python preprocess/bench/compare_pillow.py [--repeat R] [--rounds N] [--seconds S]
        [--count N] [--benchtime D] [--go-only | --pillow-only] [--json] [--cpu N] [--go-output FILE]
        [--simd-python PYTHON | --install-simd | --no-simd]

Exits non-zero when a benchmark input is missing, when the Go benchmarks fail or a
sub-benchmark is missing from their output, or when the Pillow-SIMD run fails.
Needs no network (but --install-simd does).
"""

from __future__ import annotations

import os

# Before numpy is imported: no hidden worker threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from PIL import features  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "loadtest" / "pygateway"))
import preprocessing as pp  # noqa: E402

PACKAGE_DIR = REPO / "preprocess"
BENCH_DIR = PACKAGE_DIR / "testdata" / "bench"
SIMD_PYTHON = REPO / ".bench-simd-venv" / "bin" / "python"
SIZES = ["640x480", "1024x768", "4032x3024"]
PATHS = ["exact", "fast"]
STEPS = ["whole", "decode", "resize"]
GO_BENCH = {"whole": "BenchmarkPreprocess", "decode": "BenchmarkDecodeJPEGPhoto", "resize": "BenchmarkResizeWindow"}
SIDES = ["pillow", "simd", "go"]
SIDE_NAMES = {"pillow": "Pillow", "simd": "Pillow-SIMD", "go": "Go"}
TASK = ("decode JPEG -> shorter side 256 bilinear + centre crop 224 (only the window resampled) "
        "-> (x - 127) / 128, FP32 NCHW")


class BenchError(Exception):
    """A failure to report to the user (printed without a traceback, exit 1)."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def go_version(go: str | None) -> str | None:
    if not go:
        return None
    try:
        return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def pillow_info() -> dict:
    """This interpreter's Pillow and numpy."""
    return {
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
    }


# ---------------------------------------------------------------------------
# Python side (stock Pillow here, Pillow-SIMD in a subprocess running --worker)
# ---------------------------------------------------------------------------


def time_rounds(fn, rounds: int | None, seconds: float) -> dict:
    """Warm up, choose the number of rounds (unless given), time each round."""
    fn()
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    n = rounds if rounds else int(min(2000, max(5, seconds / max(warm, 1e-6))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "rounds": n}


def bench_files() -> dict[str, Path]:
    files = {size: BENCH_DIR / f"photo_{size}.jpg" for size in SIZES}
    missing = [str(p.relative_to(REPO)) for p in files.values() if not p.exists()]
    if missing:
        raise BenchError(
            "benchmark inputs missing: " + ", ".join(missing) + " (run `make fixtures`, that is "
            "`.venv/bin/python preprocess/testdata/gen/generate.py`)"
        )
    return files


def python_steps(data: bytes, draft: bool) -> tuple[dict, tuple[int, int]]:
    """The three steps' callables for one file and path, and the decoded size."""
    out = pp.preprocess(data, draft)
    if out.shape != (1, 3, pp.CROP, pp.CROP) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise BenchError(f"preprocess produced {out.shape} {out.dtype}, not a contiguous FP32 NCHW tensor")
    decoded = pp.open_upright(data, draft)
    return {
        "whole": lambda: pp.preprocess(data, draft),
        "decode": lambda: pp.open_upright(data, draft),
        "resize": lambda: pp.resize_window(decoded),
    }, decoded.size


def run_python(cpu: int, rounds: int | None, seconds: float, label: str) -> dict:
    """This interpreter's Pillow timings per size, path and step, pinned to `cpu`:
    {size: {path: {step: timing, "decoded": [w, h]}}}."""
    files = bench_files()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        # Steady state first, as in a server that has seen a few images: every file
        # through every step once. glibc maps large blocks afresh until frees of
        # large blocks have raised its mmap threshold; without this, whichever
        # measurement comes first in the process pays for it (measured: ~550 page
        # faults and +1.3 ms per 640x480 image).
        for data in (p.read_bytes() for p in files.values()):
            for draft in (False, True):
                pp.preprocess(data, draft)
                pp.resize_window(pp.open_upright(data, draft))
        results: dict = {}
        for size, path in files.items():
            data = path.read_bytes()
            for p in PATHS:
                fns, decoded = python_steps(data, p == "fast")
                entry = results.setdefault(size, {}).setdefault(p, {"decoded": list(decoded)})
                for step in STEPS:
                    log(f"{label} {p:5s} {size} {step} ...")
                    entry[step] = time_rounds(fns[step], rounds, seconds)
        return results
    finally:
        os.sched_setaffinity(0, before)


def merge_repeats(repeats: list[dict]) -> dict:
    """One result from several repeats of run_python: per measurement the median of
    the repeats' medians, the overall min and max, the rounds added up."""
    out: dict = {}
    for size in repeats[0]:
        for path, entry in repeats[0][size].items():
            merged = out.setdefault(size, {}).setdefault(path, {"decoded": entry["decoded"]})
            for step in STEPS:
                ts = [r[size][path][step] for r in repeats]
                merged[step] = {
                    "median_ms": statistics.median(t["median_ms"] for t in ts),
                    "min_ms": min(t["min_ms"] for t in ts),
                    "max_ms": max(t["max_ms"] for t in ts),
                    "rounds": sum(t["rounds"] for t in ts),
                    "repeat_medians_ms": [t["median_ms"] for t in ts],
                }
    return out


def install_simd() -> Path:
    """Builds .bench-simd-venv if needed (loadtest/pygateway/install.sh simd); its python."""
    log("Pillow-SIMD: loadtest/pygateway/install.sh simd ...")
    run = subprocess.run([str(REPO / "loadtest" / "pygateway" / "install.sh"), "simd"], stdout=subprocess.PIPE,
                         text=True)
    if run.returncode != 0:
        raise BenchError("loadtest/pygateway/install.sh simd failed (its messages are above)")
    return Path(run.stdout.strip().splitlines()[-1])


def run_simd(python: Path, cpu: int, rounds: int | None, seconds: float) -> tuple[dict, dict]:
    """The Pillow-SIMD timings, from this script's --worker mode under `python`."""
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", "--cpu", str(cpu), "--seconds", str(seconds)]
    if rounds:
        cmd += ["--rounds", str(rounds)]
    log(f"Pillow-SIMD: timing under {python} ...")
    run = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    if run.returncode != 0:
        raise BenchError(f"the Pillow-SIMD run under {python} failed (exit {run.returncode}; its messages are above)")
    out = json.loads(run.stdout)
    if not re.search(r"\.post\d+$", out["info"]["pillow"]):
        raise BenchError(f"{python} has Pillow {out['info']['pillow']}, not Pillow-SIMD (a version ending in .postN)")
    return out["info"], out["results"]


# ---------------------------------------------------------------------------
# Go side
# ---------------------------------------------------------------------------

_BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.*)$")


def parse_go_bench(output: str) -> dict:
    """Parse `go test -bench` output into {step: {size: {path: {ns_op, b_op, allocs_op,
    decoded, runs}}}}, medians over the -count repetitions. Lines other than
    <GO_BENCH[step]>/<path>/<size> are ignored; metric pairs may come in any order
    (MB/s and custom metrics such as decoded-w allowed)."""
    by_name = {name: step for step, name in GO_BENCH.items()}
    samples: dict = {}
    for line in output.splitlines():
        m = _BENCH_LINE.match(line.strip())
        if not m:
            continue
        parts = m.group(1).split("/")
        if len(parts) != 3 or parts[0] not in by_name:
            continue
        _, path, size = parts
        fields = m.group(4).split()
        try:
            metrics = {unit: float(value) for value, unit in zip(fields[0::2], fields[1::2], strict=False)}
        except ValueError:
            continue
        if "ns/op" not in metrics:
            continue
        samples.setdefault(by_name[parts[0]], {}).setdefault(size, {}).setdefault(path, []).append(metrics)

    def median_of(runs: list[dict], unit: str) -> float | None:
        vals = [r[unit] for r in runs if unit in r]
        return statistics.median(vals) if vals else None

    result: dict = {}
    for step, sizes in samples.items():
        for size, paths in sizes.items():
            for path, runs in paths.items():
                w, h = median_of(runs, "decoded-w"), median_of(runs, "decoded-h")
                result.setdefault(step, {}).setdefault(size, {})[path] = {
                    "ns_op": median_of(runs, "ns/op"),
                    "b_op": median_of(runs, "B/op"),
                    "allocs_op": median_of(runs, "allocs/op"),
                    "decoded": [int(w), int(h)] if w and h else None,
                    "runs": len(runs),
                }
    return result


def find_go() -> str:
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)
    if not go:
        raise BenchError("the `go` command was not found on PATH")
    return go


class GoBench:
    """The preprocess test binary, built once (all cores) into a temporary directory,
    run pinned to one core: the three benchmarks, their raw output kept."""

    def __init__(self, go: str, cpu: int, count: int, benchtime: str):
        self.cpu, self.count, self.benchtime = cpu, count, benchtime
        self.pattern = "^(" + "|".join(GO_BENCH.values()) + ")$"
        self.tmp = tempfile.TemporaryDirectory(prefix="preprocess-bench-")
        self.binary = Path(self.tmp.name) / "preprocess.test"
        self.output = ""
        log("go: building the preprocess test binary ...")
        build = subprocess.run([go, "test", "-c", "-o", str(self.binary), "./preprocess/"], cwd=REPO,
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise BenchError("`go test -c ./preprocess/` failed:\n" + (build.stdout + build.stderr)[-4000:])
        if not self.binary.exists():
            raise BenchError("./preprocess has no test files, so there are no benchmarks to run")

    def run(self) -> None:
        cmd = [str(self.binary), "-test.run", "^$", "-test.bench", self.pattern, "-test.benchmem",
               "-test.count", str(self.count), "-test.cpu", "1", "-test.benchtime", self.benchtime,
               "-test.timeout", "60m"]
        log(f"go: running {self.pattern} pinned to cpu {self.cpu} ...")
        run = subprocess.run(cmd, cwd=PACKAGE_DIR, capture_output=True, text=True,
                             preexec_fn=lambda: os.sched_setaffinity(0, {self.cpu}))
        output = run.stdout + run.stderr
        if run.returncode != 0:
            raise BenchError(f"the Go benchmarks failed (exit {run.returncode}):\n" + output[-4000:])
        self.output += output

    def close(self) -> None:
        self.tmp.cleanup()


def missing_go(go_results: dict) -> list[str]:
    """The sub-benchmarks that are expected but absent."""
    return [f"{GO_BENCH[st]}/{p}/{s}" for st in STEPS for s in SIZES for p in PATHS
            if p not in go_results.get(st, {}).get(s, {})]


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _ms(side: str, step: str, size: str, path: str, pillow: dict, simd: dict, go_results: dict) -> float | None:
    if side == "go":
        g = go_results.get(step, {}).get(size, {}).get(path)
        return g["ns_op"] / 1e6 if g and g["ns_op"] else None
    src = pillow if side == "pillow" else simd
    t = (src or {}).get(size, {}).get(path, {}).get(step)
    return t["median_ms"] if t else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def rows(pillow: dict, simd: dict | None, go_results: dict) -> list[dict]:
    """One row per size, path and step: each side's ms, and Python ms / Go ms."""
    out = []
    for size in SIZES:
        for path in PATHS:
            for step in STEPS:
                ms = {side: _ms(side, step, size, path, pillow, simd, go_results) for side in SIDES}
                g = go_results.get(step, {}).get(size, {}).get(path) or {}
                out.append({
                    "size": size, "path": path, "step": step,
                    "pillow_ms": ms["pillow"], "simd_ms": ms["simd"], "go_ms": ms["go"],
                    "pillow_ratio": _ratio(ms["pillow"], ms["go"]),
                    "simd_ratio": _ratio(ms["simd"], ms["go"]),
                    "go_b_op": g.get("b_op"), "go_allocs_op": g.get("allocs_op"),
                })
    return out


def floors(pillow: dict, simd: dict | None, go_results: dict) -> list[dict]:
    """Per size and path, each side's floor (its decode alone + its resize alone) and
    whole / floor, and the decoded sizes."""
    out = []
    for size in SIZES:
        for path in PATHS:
            row: dict = {"size": size, "path": path}
            for side in SIDES:
                d, r, w = (_ms(side, st, size, path, pillow, simd, go_results) for st in ("decode", "resize", "whole"))
                floor = d + r if d is not None and r is not None else None
                row[f"{side}_floor_ms"] = floor
                row[f"{side}_whole_over_floor"] = _ratio(w, floor)
                if side == "go":
                    g = go_results.get("decode", {}).get(size, {}).get(path) or {}
                    row["go_decoded"] = g.get("decoded")
                else:
                    row[f"{side}_decoded"] = ((pillow if side == "pillow" else simd) or {}).get(size, {}).get(
                        path, {}).get("decoded")
            out.append(row)
    return out


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _size(wh) -> str:
    return "-" if not wh else f"{wh[0]}x{wh[1]}"


def print_table(info: dict, table: list[dict], floor_rows: list[dict]) -> None:
    p, s = info["pillow"], info.get("pillow_simd")
    print(f"machine:  {info['nproc']} CPUs, {info['cpu_model']}; pinned to cpu {info['pinned_cpu']}")
    print(f"Pillow:   Pillow {p['pillow']} (libjpeg-turbo {p['libjpeg_turbo']}), numpy {p['numpy']}, "
          f"Python {p['python']}")
    if s:
        print(f"SIMD:     Pillow-SIMD {s['pillow']} (libjpeg-turbo {s['libjpeg_turbo']}), numpy {s['numpy']}, "
              f"Python {s['python']} ({info['simd_python']})")
    else:
        print(f"SIMD:     not measured ({info.get('simd_skipped') or 'skipped'})")
    print(f"Go:       {info['go'] or 'n/a'}")
    print(f"task:     {TASK}")
    print()
    header = (f"{'size':>10} {'path':>5} {'step':>6} {'Pillow ms':>10} {'SIMD ms':>9} {'Go ms':>8} "
              f"{'Pillow/Go':>10} {'SIMD/Go':>8} {'Go B/op':>10} {'allocs':>6}")
    print(header)
    print("-" * len(header))
    for r in table:
        print(f"{r['size']:>10} {r['path']:>5} {r['step']:>6} {_f(r['pillow_ms'], '.3f'):>10} "
              f"{_f(r['simd_ms'], '.3f'):>9} {_f(r['go_ms'], '.3f'):>8} {_f(r['pillow_ratio'], '.2f'):>10} "
              f"{_f(r['simd_ratio'], '.2f'):>8} {_f(r['go_b_op'], '.0f'):>10} {_f(r['go_allocs_op'], '.0f'):>6}")
    print()
    print("floor = decode alone + resize alone, each side its own; whole/floor: what the rest adds")
    header = (f"{'size':>10} {'path':>5} {'Pillow floor':>13} {'whole/fl':>8} {'SIMD floor':>11} {'whole/fl':>8} "
              f"{'Go floor':>9} {'whole/fl':>8}   decoded: Pillow / Go")
    print(header)
    print("-" * len(header))
    for r in floor_rows:
        print(f"{r['size']:>10} {r['path']:>5} {_f(r['pillow_floor_ms'], '.3f'):>13} "
              f"{_f(r['pillow_whole_over_floor'], '.2f'):>8} {_f(r['simd_floor_ms'], '.3f'):>11} "
              f"{_f(r['simd_whole_over_floor'], '.2f'):>8} {_f(r['go_floor_ms'], '.3f'):>9} "
              f"{_f(r['go_whole_over_floor'], '.2f'):>8}   {_size(r['pillow_decoded'])} / {_size(r['go_decoded'])}")
    print()
    print("ratio = Python ms / Go ms (>= 1.0: Go at least as fast), exact against exact and fast against fast. "
          "Python: median of the rounds; Go: median ns/op of the -count runs.")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for what is measured.")
    ap.add_argument("--rounds", type=int, default=None,
                    help="timed rounds per measurement (default: enough for about --seconds each)")
    ap.add_argument("--seconds", type=float, default=1.0,
                    help="target time per Python measurement and repeat (default 1)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="run every side this many times, in turn (default 3); the figures are medians over them")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--go-only", action="store_true", help="run only the Go benchmarks")
    only.add_argument("--pillow-only", action="store_true", help="run only the Python timings")
    simd = ap.add_mutually_exclusive_group()
    simd.add_argument("--simd-python", type=Path, default=None,
                      help=f"Pillow-SIMD's interpreter (default {SIMD_PYTHON.relative_to(REPO)} when it exists)")
    simd.add_argument("--install-simd", action="store_true",
                      help="build .bench-simd-venv first if needed (loadtest/pygateway/install.sh simd)")
    simd.add_argument("--no-simd", action="store_true", help="leave Pillow-SIMD out")
    ap.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the tables")
    ap.add_argument("--cpu", type=int, default=None,
                    help="core to pin to (default: the highest-numbered core this process may use)")
    ap.add_argument("--count", type=int, default=1, help="go test -count per repeat (default 1)")
    ap.add_argument("--benchtime", default="1s", help="go test -benchtime (default 1s)")
    ap.add_argument("--go-output", type=Path, default=None,
                    help="parse this saved `go test -bench` output instead of running Go")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # the Pillow-SIMD subprocess
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.repeat < 1 or args.count < 1:
        ap.error("--repeat and --count must be at least 1")
    return args


def choose_simd(args) -> tuple[Path | None, str | None]:
    """Pillow-SIMD's interpreter, or None and why it is not measured."""
    if args.no_simd or args.go_only:
        return None, "--no-simd" if args.no_simd else "--go-only"
    if args.install_simd:
        return install_simd(), None
    python = args.simd_python or SIMD_PYTHON
    if not python.exists():
        if args.simd_python:
            raise BenchError(f"--simd-python {python}: no such interpreter")
        msg = (f"no {SIMD_PYTHON.relative_to(REPO)}: build it with loadtest/pygateway/install.sh simd "
               f"(or run this with --install-simd)")
        log(f"compare_pillow: Pillow-SIMD skipped: {msg}")
        return None, msg
    return python, None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if args.cpu is None else args.cpu
    if cpu not in allowed:
        raise BenchError(f"--cpu {cpu} is not one of the cores this process may use: {allowed}")
    if args.worker:
        json.dump({"info": pillow_info(), "results": run_python(cpu, args.rounds, args.seconds, "pillow-simd")},
                  sys.stdout)
        return 0

    run_go_side = not args.pillow_only
    go = find_go() if run_go_side and args.go_output is None else shutil.which("go")
    simd_python, simd_skipped = choose_simd(args)
    info = {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "pinned_cpu": cpu, "pillow": pillow_info(),
            "pillow_simd": None, "simd_python": str(simd_python) if simd_python else None,
            "simd_skipped": simd_skipped, "go": go_version(go)}

    # Every side once per repeat, in turn: slow drifts of the machine (other
    # processes on the core) hit all three alike instead of one.
    gobench = GoBench(go, cpu, args.count, args.benchtime) if run_go_side and args.go_output is None else None
    pillow_runs, simd_runs = [], []
    try:
        for r in range(args.repeat):
            if args.repeat > 1:
                log(f"repeat {r + 1} of {args.repeat}")
            if not args.go_only:
                pillow_runs.append(run_python(cpu, args.rounds, args.seconds, "pillow"))
            if simd_python:
                info["pillow_simd"], res = run_simd(simd_python, cpu, args.rounds, args.seconds)
                simd_runs.append(res)
            if gobench:
                gobench.run()
        go_raw = args.go_output.read_text() if args.go_output is not None else (gobench.output if gobench else None)
    finally:
        if gobench:
            gobench.close()
    pillow = merge_repeats(pillow_runs) if pillow_runs else {}
    simd = merge_repeats(simd_runs) if simd_runs else None
    go_results = parse_go_bench(go_raw) if go_raw is not None else {}

    missing = missing_go(go_results) if run_go_side else []
    if len(missing) == len(STEPS) * len(SIZES) * len(PATHS):
        raise BenchError("none of the Go benchmarks " + ", ".join(GO_BENCH.values()) +
                         " (sub-benchmarks <exact|fast>/<WxH>) is in the Go output\n" + (go_raw or "")[-2000:])

    table, floor_rows = rows(pillow, simd, go_results), floors(pillow, simd, go_results)
    if args.json:
        json.dump({"machine": info, "task": TASK, "rows": table, "floors": floor_rows, "pillow": pillow,
                   "pillow_simd": simd, "go": go_results}, sys.stdout, indent=2)
        print()
    else:
        print_table(info, table, floor_rows)

    if missing:
        raise BenchError("missing Go sub-benchmarks: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"compare_pillow: {e}")
        sys.exit(1)
