"""Checks of the model configurations against Triton's own ModelConfig schema.

The gateway parses config.pbtxt into a subset of ModelConfig and skips what it does
not use (optimization, model_warmup, instance_group...), so a typo there would only
show when Triton loads the model on a GPU. This test parses production's and CI's
config.pbtxt strictly with the complete ModelConfig of tritonclient (unknown fields
and wrong types fail), checks the GPU settings production promises in
triton-models/README.md, and that CI's configuration is production's with only its
documented differences (triton-ci/README.md).

Run by `make test` with the real Triton's environment, which has tritonclient:

    .triton-venv/bin/python -m unittest discover -s triton-models -p 'test_*.py'
"""

from __future__ import annotations

import re
import unittest
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = REPO / "triton-models" / "fish_classifier" / "config.pbtxt"
CI = REPO / "triton-ci" / "models" / "fish_classifier" / "config.pbtxt"
COMPOSE = REPO / "docker-compose.yml"


def parse(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


class ProductionConfigTest(unittest.TestCase):
    def setUp(self) -> None:
        self.cfg = parse(PRODUCTION)

    def test_runs_on_gpu_instances(self) -> None:
        kinds = [g.kind for g in self.cfg.instance_group]
        self.assertEqual(kinds, [mc.ModelInstanceGroup.KIND_GPU])

    def test_tensorrt_fp16_with_engine_cache(self) -> None:
        accels = self.cfg.optimization.execution_accelerators
        self.assertEqual(len(accels.cpu_execution_accelerator), 0)
        self.assertEqual([a.name for a in accels.gpu_execution_accelerator], ["tensorrt"])
        params = dict(accels.gpu_execution_accelerator[0].parameters)
        self.assertEqual(params.get("precision_mode"), "FP16")
        self.assertEqual(params.get("trt_engine_cache_enable"), "1")
        self.assertGreaterEqual(int(params["max_workspace_size_bytes"]), 1 << 28)
        # The cache lives on compose's triton_trt_cache volume, or it is lost on restart.
        cache = params.get("trt_engine_cache_path", "")
        self.assertTrue(cache.startswith("/"), cache)
        self.assertRegex(COMPOSE.read_text(), re.compile(r"^\s*- triton_trt_cache:" + re.escape(cache) + r"\s*$", re.M))

    def test_warmup_spans_every_batch_size(self) -> None:
        sizes = sorted(w.batch_size for w in self.cfg.model_warmup)
        self.assertEqual(sizes[0], 1)
        self.assertEqual(sizes[-1], self.cfg.max_batch_size)
        for w in self.cfg.model_warmup:
            self.assertEqual(list(w.inputs), [i.name for i in self.cfg.input])
            self.assertTrue(w.inputs["input"].zero_data)
            self.assertEqual(list(w.inputs["input"].dims), list(self.cfg.input[0].dims))

    def test_preferred_batch_sizes(self) -> None:
        sizes = list(self.cfg.dynamic_batching.preferred_batch_size)
        self.assertTrue(sizes, "no preferred batch sizes")
        self.assertEqual(sizes, sorted(set(sizes)))
        self.assertLessEqual(sizes[-1], self.cfg.max_batch_size)
        self.assertIn(self.cfg.max_batch_size, sizes)
        self.assertLessEqual(self.cfg.dynamic_batching.max_queue_delay_microseconds, 1000)


class CIConfigTest(unittest.TestCase):
    def test_only_documented_differences(self) -> None:
        prod, ci = parse(PRODUCTION), parse(CI)
        self.assertEqual((prod.platform, prod.backend), ("onnxruntime_onnx", "onnxruntime"))
        self.assertEqual((ci.platform, ci.backend), ("", "python"))
        self.assertEqual([g.kind for g in ci.instance_group], [mc.ModelInstanceGroup.KIND_CPU])
        self.assertFalse(ci.HasField("optimization"))
        for cfg in (prod, ci):
            cfg.ClearField("platform")
            cfg.ClearField("backend")
            cfg.ClearField("instance_group")
            cfg.ClearField("optimization")
        self.assertEqual(text_format.MessageToString(ci), text_format.MessageToString(prod))


if __name__ == "__main__":
    unittest.main()
