#!/usr/bin/env python3
"""Side-by-side benchmark of image preprocessing: Pillow + numpy against the Go
package `preprocess`, on one CPU core.

What is measured, for each benchmark photo in preprocess/testdata/bench/
(photo_640x480.jpg, photo_1024x768.jpg, photo_4032x3024.jpg; JPEG q90 4:2:0):

  exact  Image.open + convert("RGB") + resize((224, 224), BILINEAR) + numpy
         normalisation ((x/255 - mean)/std, ImageNet mean/std, float32, HWC -> CHW
         contiguous). This is what a Python model server typically does, and what
         the Go package must match pixel for pixel.
  fast   the same with img.draft("RGB", (224, 224)) right after open, which lets
         libjpeg-turbo decode at 1/2, 1/4 or 1/8 scale (the Go side's
         AllowDCTScaling). Faster, but no longer bit-comparable with "exact".

The file bytes are read once and decoded from memory (io.BytesIO), so the disk is
not timed. Each path is warmed up, then timed for N rounds (N picked so that each
size runs for about --seconds, or fixed with --rounds); the median, min and max are
reported.

The Go side runs BenchmarkPreprocess (sub-benchmarks exact/WxH and fast/WxH,
written in the preprocess package's tests) like

    go test -run '^$' -bench '^BenchmarkPreprocess$' -benchmem -count 3 -cpu 1 ./preprocess/

except that the test binary is built first with `go test -c` on all cores and then
run pinned to the same core as the Pillow timings (which is what `go test` does,
without compiling on one core). ns/op, B/op and allocs/op are the medians of the
-count runs. The ratio is Pillow time / Go time: 1.0 or more means Go is at least
as fast.

Why one core: a model server runs many requests in parallel, so per-core cost is
what matters, and Pillow/numpy may otherwise use extra threads the Go side lacks.
OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set to 1 before numpy is imported.

Usage (from the repository root):

    .venv/bin/python preprocess/bench/compare_pillow.py [--rounds N] [--go-only |
        --pillow-only] [--json] [--cpu N] [--go-output FILE]

Exits non-zero when a benchmark input is missing, when the Go benchmark fails or
does not exist yet, or when a sub-benchmark is missing from its output. Needs no
network.
"""

from __future__ import annotations

import os

# Before numpy is imported: no hidden worker threads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
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
from PIL import Image, features  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "preprocess"
BENCH_DIR = PACKAGE_DIR / "testdata" / "bench"
SIZES = ["640x480", "1024x768", "4032x3024"]
PATHS = ["exact", "fast"]
TARGET = (224, 224)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GO_BENCH = "BenchmarkPreprocess"


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


def machine_info(cpu: int, go: str | None) -> dict:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "pinned_cpu": cpu,
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "go": go_version(go),
    }


# ---------------------------------------------------------------------------
# Pillow side
# ---------------------------------------------------------------------------


def normalise(img: Image.Image) -> np.ndarray:
    """(x/255 - mean)/std per channel, float32, HWC -> CHW, contiguous."""
    x = np.asarray(img, dtype=np.float32)
    x = (x / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def pillow_exact(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGB")
    img = img.resize(TARGET, Image.Resampling.BILINEAR)
    return normalise(img)


def pillow_fast(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", TARGET)  # let libjpeg-turbo decode at a reduced DCT scale
    img = img.convert("RGB")
    img = img.resize(TARGET, Image.Resampling.BILINEAR)
    return normalise(img)


PILLOW_PATHS = {"exact": pillow_exact, "fast": pillow_fast}


def time_rounds(fn, data: bytes, rounds: int | None, seconds: float) -> dict:
    """Warm up, choose the number of rounds (unless given), time each round."""
    out = fn(data)
    if out.shape != (3, TARGET[1], TARGET[0]) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise BenchError(f"{fn.__name__} produced {out.shape} {out.dtype}, not a contiguous float32 CHW tensor")
    t0 = time.perf_counter()
    fn(data)
    warm = time.perf_counter() - t0
    n = rounds if rounds else int(min(2000, max(5, seconds / max(warm, 1e-6))))
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn(data)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "rounds": n,
    }


def bench_files() -> dict[str, Path]:
    files = {size: BENCH_DIR / f"photo_{size}.jpg" for size in SIZES}
    missing = [str(p.relative_to(REPO)) for p in files.values() if not p.exists()]
    if missing:
        raise BenchError(
            "benchmark inputs missing: " + ", ".join(missing) + " (run `make fixtures`, that is "
            "`.venv/bin/python preprocess/testdata/gen/generate.py`)"
        )
    return files


def run_pillow(cpu: int, rounds: int | None, seconds: float) -> dict:
    """Pillow timings per size and path, with this process pinned to `cpu`."""
    files = bench_files()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        results: dict = {}
        for size, path in files.items():
            data = path.read_bytes()
            for name, fn in PILLOW_PATHS.items():
                log(f"pillow {name:5s} {size} ...")
                results.setdefault(size, {})[name] = time_rounds(fn, data, rounds, seconds)
        return results
    finally:
        os.sched_setaffinity(0, before)


# ---------------------------------------------------------------------------
# Go side
# ---------------------------------------------------------------------------

_BENCH_LINE = re.compile(r"^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.*)$")


def parse_go_bench(output: str) -> dict:
    """Parse `go test -bench` output into {size: {path: {ns_op, b_op, allocs_op, runs}}},
    medians over the -count repetitions. Lines other than BenchmarkPreprocess/<path>/<size>
    are ignored; metric pairs may come in any order (MB/s and custom metrics allowed)."""
    samples: dict = {}
    for line in output.splitlines():
        m = _BENCH_LINE.match(line.strip())
        if not m:
            continue
        parts = m.group(1).split("/")
        if len(parts) != 3 or parts[0] != GO_BENCH:
            continue
        _, path, size = parts
        fields = m.group(4).split()
        metrics = {unit: float(value) for value, unit in zip(fields[0::2], fields[1::2], strict=False)}
        if "ns/op" not in metrics:
            continue
        samples.setdefault(size, {}).setdefault(path, []).append(metrics)
    def median_of(runs: list[dict], unit: str) -> float | None:
        vals = [r[unit] for r in runs if unit in r]
        return statistics.median(vals) if vals else None

    result: dict = {}
    for size, paths in samples.items():
        for path, runs in paths.items():
            result.setdefault(size, {})[path] = {
                "ns_op": median_of(runs, "ns/op"),
                "b_op": median_of(runs, "B/op"),
                "allocs_op": median_of(runs, "allocs/op"),
                "runs": len(runs),
            }
    return result


def find_go() -> str:
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)
    if not go:
        raise BenchError("the `go` command was not found on PATH")
    return go


def run_go(go: str, cpu: int, count: int, benchtime: str) -> tuple[dict, str]:
    """Build the preprocess test binary (all cores), run BenchmarkPreprocess pinned to
    `cpu` in the package directory, and return (parsed results, raw output)."""
    with tempfile.TemporaryDirectory(prefix="preprocess-bench-") as tmp:
        binary = Path(tmp) / "preprocess.test"
        log("go: building the preprocess test binary ...")
        build = subprocess.run([go, "test", "-c", "-o", str(binary), "./preprocess/"], cwd=REPO,
                               capture_output=True, text=True)
        if build.returncode != 0:
            raise BenchError("`go test -c ./preprocess/` failed:\n" + (build.stdout + build.stderr)[-4000:])
        if not binary.exists():
            raise BenchError(f"./preprocess has no test files, so there is no {GO_BENCH} to run")
        cmd = [str(binary), "-test.run", "^$", "-test.bench", f"^{GO_BENCH}$", "-test.benchmem",
               "-test.count", str(count), "-test.cpu", "1", "-test.benchtime", benchtime, "-test.timeout", "60m"]
        log(f"go: running {GO_BENCH} pinned to cpu {cpu} ...")
        run = subprocess.run(cmd, cwd=PACKAGE_DIR, capture_output=True, text=True,
                             preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    output = run.stdout + run.stderr
    if run.returncode != 0:
        raise BenchError(f"{GO_BENCH} failed (exit {run.returncode}):\n" + output[-4000:])
    return parse_go_bench(output), output


def check_go_results(go_results: dict) -> list[str]:
    """The sub-benchmarks that are expected but absent."""
    return [f"{GO_BENCH}/{p}/{s}" for s in SIZES for p in PATHS if p not in go_results.get(s, {})]


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def rows(pillow: dict, go_results: dict) -> list[dict]:
    out = []
    for size in SIZES:
        for path in PATHS:
            p = pillow.get(size, {}).get(path)
            g = go_results.get(size, {}).get(path)
            go_ms = g["ns_op"] / 1e6 if g else None
            out.append({
                "size": size,
                "path": path,
                "pillow_ms": p["median_ms"] if p else None,
                "pillow_min_ms": p["min_ms"] if p else None,
                "pillow_max_ms": p["max_ms"] if p else None,
                "pillow_rounds": p["rounds"] if p else None,
                "go_ms": go_ms,
                "ratio": (p["median_ms"] / go_ms) if p and go_ms else None,
                "go_b_op": g["b_op"] if g else None,
                "go_allocs_op": g["allocs_op"] if g else None,
            })
    return out


def print_table(info: dict, table: list[dict]) -> None:
    print(f"machine:  {info['nproc']} CPUs, {info['cpu_model']}; pinned to cpu {info['pinned_cpu']}")
    print(f"versions: Python {info['python']}, Pillow {info['pillow']}, numpy {info['numpy']}, "
          f"libjpeg-turbo {info['libjpeg_turbo']}, {info['go'] or 'go: n/a'}")
    print("task:     decode JPEG -> RGB -> resize 224x224 bilinear -> normalise, float32 CHW")
    print()

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    header = (f"{'size':>10} {'path':>5} {'Pillow ms':>10} {'(min-max)':>17} {'Go ms':>9} {'ratio':>7} "
              f"{'Go B/op':>11} {'allocs/op':>9}")
    print(header)
    print("-" * len(header))
    for r in table:
        spread = "-" if r["pillow_min_ms"] is None else f"({r['pillow_min_ms']:.2f}-{r['pillow_max_ms']:.2f})"
        print(f"{r['size']:>10} {r['path']:>5} {f(r['pillow_ms'], '.2f'):>10} {spread:>17} "
              f"{f(r['go_ms'], '.2f'):>9} {f(r['ratio'], '.2f'):>7} {f(r['go_b_op'], '.0f'):>11} "
              f"{f(r['go_allocs_op'], '.0f'):>9}")
    print()
    print("ratio = Pillow ms / Go ms (>= 1.0: Go at least as fast). Pillow: median of the rounds; "
          "Go: median ns/op of the -count runs.")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for what is measured.")
    ap.add_argument("--rounds", type=int, default=None,
                    help="timed rounds per size and path (default: enough for about --seconds each)")
    ap.add_argument("--seconds", type=float, default=3.0, help="target time per size and path (default 3)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--go-only", action="store_true", help="run only the Go benchmark")
    only.add_argument("--pillow-only", action="store_true", help="run only the Pillow timings")
    ap.add_argument("--json", action="store_true", help="print machine-readable JSON instead of the table")
    ap.add_argument("--cpu", type=int, default=None,
                    help="core to pin to (default: the highest-numbered core this process may use)")
    ap.add_argument("--count", type=int, default=3, help="go test -count (default 3)")
    ap.add_argument("--benchtime", default="1s", help="go test -benchtime (default 1s)")
    ap.add_argument("--go-output", type=Path, default=None,
                    help="parse this saved `go test -bench` output instead of running Go")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    cpu = allowed[-1] if args.cpu is None else args.cpu
    if cpu not in allowed:
        raise BenchError(f"--cpu {cpu} is not one of the cores this process may use: {allowed}")
    run_go_side = not args.pillow_only
    go = find_go() if run_go_side and args.go_output is None else shutil.which("go")
    info = machine_info(cpu, go)

    pillow = {} if args.go_only else run_pillow(cpu, args.rounds, args.seconds)
    go_results: dict = {}
    go_raw = None
    if run_go_side:
        if args.go_output is not None:
            go_raw = args.go_output.read_text()
            go_results = parse_go_bench(go_raw)
        else:
            go_results, go_raw = run_go(go, cpu, args.count, args.benchtime)

    missing = check_go_results(go_results) if run_go_side else []
    if len(missing) == len(SIZES) * len(PATHS):
        raise BenchError(
            f"no {GO_BENCH}/<exact|fast>/<WxH> results in the Go output: is {GO_BENCH} written yet "
            f"(sub-benchmarks {', '.join(f'{p}/{s}' for p in PATHS for s in SIZES)})?\n"
            + (go_raw or "")[-2000:])

    table = rows(pillow, go_results)
    if args.json:
        json.dump({"machine": info, "target": list(TARGET), "rows": table, "pillow": pillow, "go": go_results},
                  sys.stdout, indent=2)
        print()
    else:
        print_table(info, table)

    if missing:
        raise BenchError("missing Go sub-benchmarks: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"compare_pillow: {e}")
        sys.exit(1)
