"""Tests of mlflow_model.py's pure parts (the MLflow and S3 parts run against the
real servers in monitoring's TestModelLifecycle)."""

import os
import unittest

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

import mlflow_model

HERE = os.path.dirname(os.path.abspath(__file__))


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


class WithParameters(unittest.TestCase):
    def test_adds_and_replaces_in_both_layouts(self):
        for path in (os.path.join(HERE, "fish_classifier", "config.pbtxt"),
                     os.path.join(mlflow_model.CI_MODEL_DIR, "config.pbtxt")):
            with self.subTest(path=path):
                config = read(path)
                before = mlflow_model.parameters(config)
                once = mlflow_model.with_parameters(config, {"mlflow_run_id": "a" * 32, "mlflow_model_version": "3"})
                got = mlflow_model.parameters(once)
                self.assertEqual(got, {**before, "mlflow_run_id": "a" * 32, "mlflow_model_version": "3"})
                # Still a ModelConfig, parsed strictly as Triton does.
                parsed = text_format.Parse(once, mc.ModelConfig())
                self.assertEqual(parsed.parameters["mlflow_run_id"].string_value, "a" * 32)
                # Everything outside the parameters block is as it was.
                self.assertEqual(config.split("parameters [")[0], once.split("parameters [")[0])
                # Publishing again replaces, never repeats.
                twice = mlflow_model.with_parameters(once, {"mlflow_run_id": "b" * 32, "mlflow_model_version": "4"})
                self.assertEqual(mlflow_model.parameters(twice), {**before, "mlflow_run_id": "b" * 32,
                                                                  "mlflow_model_version": "4"})
                self.assertEqual(twice.count('key: "mlflow_run_id"'), 1)

    def test_refuses_a_config_without_parameters(self):
        with self.assertRaises(SystemExit):
            mlflow_model.with_parameters('name: "x"\n', {"mlflow_run_id": "a" * 32})


class SplitS3(unittest.TestCase):
    def test_urls(self):
        self.assertEqual(mlflow_model.split_s3("s3://triton-models"), ("triton-models", ""))
        self.assertEqual(mlflow_model.split_s3("s3://models/prod/eu/"), ("models", "prod/eu"))
        for bad in ("", "triton-models", "s3://", "http://minio:9000/models", "s3://Bad_Bucket"):
            with self.subTest(url=bad), self.assertRaises(SystemExit):
                mlflow_model.split_s3(bad)


if __name__ == "__main__":
    unittest.main()
