"""Tests of compare_pillow.py's parsing and reporting (no timing is run).

    cd preprocess/bench && ../../.venv/bin/python -m unittest --quiet
"""

from __future__ import annotations

import contextlib
import io
import unittest
from pathlib import Path
from types import SimpleNamespace

import compare_pillow as cp

GO_OUTPUT = """goos: linux
goarch: amd64
pkg: github.com/fish-classifier/fish-classifier/preprocess
BenchmarkPreprocess/exact/640x480	87	2000000 ns/op	30.82 MB/s	16320 B/op	1 allocs/op
BenchmarkPreprocess/exact/640x480 87 4000000 ns/op 30.82 MB/s 16320 B/op 1 allocs/op
BenchmarkPreprocess/exact/640x480 87 3000000 ns/op 30.82 MB/s 16320 B/op 1 allocs/op
BenchmarkDecodeJPEGPhoto/fast/640x480 151 1500000 ns/op 54.14 MB/s 300.0 decoded-h 400.0 decoded-w 352 B/op 1 allocs/op
BenchmarkDecodeJPEGPhoto/exact/640x480-8 237 1000000 ns/op 480.0 decoded-h 640.0 decoded-w 352 B/op 1 allocs/op
BenchmarkResizeWindow/exact/640x480 182 1250000 ns/op 480.0 decoded-h 640.0 decoded-w 1689 B/op 0 allocs/op
BenchmarkResize/640x480/bilinear 100 9999999 ns/op
BenchmarkPreprocess/exact 100 9999999 ns/op
PASS
"""


def timing(ms: float) -> dict:
    return {"median_ms": ms, "min_ms": ms, "max_ms": ms, "rounds": 1}


class ParseGoBench(unittest.TestCase):
    def test_steps_medians_and_metrics(self):
        got = cp.parse_go_bench(GO_OUTPUT)
        self.assertEqual(set(got), {"whole", "decode", "resize"})  # BenchmarkResize and malformed names ignored
        whole = got["whole"]["640x480"]["exact"]
        self.assertEqual((whole["ns_op"], whole["runs"], whole["b_op"], whole["allocs_op"]), (3e6, 3, 16320, 1))
        self.assertIsNone(whole["decoded"])
        self.assertEqual(got["decode"]["640x480"]["fast"]["decoded"], [400, 300])
        self.assertEqual(got["decode"]["640x480"]["exact"]["ns_op"], 1e6)  # the -8 GOMAXPROCS suffix
        self.assertEqual(got["resize"]["640x480"]["exact"]["b_op"], 1689)

    def test_missing(self):
        missing = cp.missing_go(cp.parse_go_bench(GO_OUTPUT))
        self.assertIn("BenchmarkPreprocess/fast/640x480", missing)
        self.assertIn("BenchmarkResizeWindow/exact/4032x3024", missing)
        self.assertNotIn("BenchmarkPreprocess/exact/640x480", missing)
        self.assertEqual(len(missing), 3 * 3 * 2 - 4)
        self.assertEqual(len(cp.missing_go({})), 18)


class Report(unittest.TestCase):
    def setUp(self):
        self.go = cp.parse_go_bench(GO_OUTPUT)
        self.pillow = {"640x480": {"exact": {"decoded": [640, 480], "whole": timing(6.0), "decode": timing(2.0),
                                             "resize": timing(3.0)}}}
        self.simd = {"640x480": {"exact": {"decoded": [640, 480], "whole": timing(3.0), "decode": timing(2.0),
                                           "resize": timing(0.5)}}}

    def test_rows_ratios(self):
        table = {(r["size"], r["path"], r["step"]): r for r in cp.rows(self.pillow, self.simd, self.go)}
        self.assertEqual(len(table), 18)
        whole = table[("640x480", "exact", "whole")]
        self.assertEqual((whole["pillow_ms"], whole["simd_ms"], whole["go_ms"]), (6.0, 3.0, 3.0))
        self.assertEqual((whole["pillow_ratio"], whole["simd_ratio"]), (2.0, 1.0))
        self.assertEqual(table[("640x480", "exact", "resize")]["simd_ratio"], 0.4)
        self.assertIsNone(table[("640x480", "fast", "whole")]["pillow_ratio"])  # not measured

    def test_floors(self):
        fl = {(r["size"], r["path"]): r for r in cp.floors(self.pillow, self.simd, self.go)}
        r = fl[("640x480", "exact")]
        self.assertEqual((r["go_floor_ms"], r["go_whole_over_floor"]), (2.25, 3.0 / 2.25))
        self.assertEqual((r["pillow_floor_ms"], r["pillow_whole_over_floor"]), (5.0, 1.2))
        self.assertEqual((r["simd_floor_ms"], r["simd_whole_over_floor"]), (2.5, 1.2))
        self.assertEqual((r["pillow_decoded"], r["go_decoded"]), ([640, 480], [640, 480]))
        self.assertIsNone(fl[("640x480", "fast")]["go_floor_ms"])  # no resize timing for it

    def test_without_simd(self):
        r = [r for r in cp.rows(self.pillow, None, self.go) if r["step"] == "whole"][0]
        self.assertIsNone(r["simd_ms"])
        self.assertIsNone(r["simd_ratio"])
        self.assertEqual(r["pillow_ratio"], 2.0)

    def test_table_prints_both_blocks(self):
        info = {"nproc": 2, "cpu_model": "x", "pinned_cpu": 1, "go": "go1",
                "pillow": {"pillow": "13.0.0", "libjpeg_turbo": "3.2.0", "numpy": "2", "python": "3.11"},
                "pillow_simd": None, "simd_skipped": "--no-simd"}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            cp.print_table(info, cp.rows(self.pillow, None, self.go), cp.floors(self.pillow, None, self.go))
        text = out.getvalue()
        self.assertIn("not measured (--no-simd)", text)
        self.assertRegex(text, r"640x480 exact  whole\s+6\.000\s+-\s+3\.000\s+2\.00\s+-")
        self.assertRegex(text, r"640x480 exact\s+5\.000\s+1\.20\s+-\s+-\s+2\.250\s+1\.33\s+640x480 / 640x480")


class MergeRepeats(unittest.TestCase):
    def test_median_of_medians(self):
        def run(whole, lo, hi):
            t = {"median_ms": whole, "min_ms": lo, "max_ms": hi, "rounds": 10}
            return {"640x480": {"exact": {"decoded": [640, 480], "whole": t, "decode": t, "resize": t}}}

        got = cp.merge_repeats([run(3.0, 2.5, 9.0), run(1.0, 0.9, 1.2), run(2.0, 1.8, 2.4)])
        whole = got["640x480"]["exact"]["whole"]
        self.assertEqual((whole["median_ms"], whole["min_ms"], whole["max_ms"], whole["rounds"]), (2.0, 0.9, 9.0, 30))
        self.assertEqual(whole["repeat_medians_ms"], [3.0, 1.0, 2.0])
        self.assertEqual(got["640x480"]["exact"]["decoded"], [640, 480])


class ChooseSimd(unittest.TestCase):
    def args(self, **kw):
        base = {"no_simd": False, "go_only": False, "install_simd": False, "simd_python": None}
        base.update(kw)
        return SimpleNamespace(**base)

    def test_skips(self):
        self.assertEqual(cp.choose_simd(self.args(no_simd=True)), (None, "--no-simd"))
        self.assertEqual(cp.choose_simd(self.args(go_only=True)), (None, "--go-only"))

    def test_missing_default_venv_is_skipped_with_a_message(self):
        saved = cp.SIMD_PYTHON
        cp.SIMD_PYTHON = cp.REPO / ".no-such-venv" / "bin" / "python"
        try:
            with contextlib.redirect_stderr(io.StringIO()) as err:
                python, why = cp.choose_simd(self.args())
        finally:
            cp.SIMD_PYTHON = saved
        self.assertIsNone(python)
        self.assertIn("install.sh simd", why)
        self.assertIn("Pillow-SIMD skipped", err.getvalue())

    def test_named_interpreter_must_exist(self):
        with self.assertRaises(cp.BenchError):
            cp.choose_simd(self.args(simd_python=Path("/no/such/python")))


if __name__ == "__main__":
    unittest.main()
