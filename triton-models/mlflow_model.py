#!/usr/bin/env python3
"""The served model's lifecycle in MLflow: log and register a build, publish a
registered version into a Triton model repository on S3 (MinIO).

    mlflow_model.py metrics   how the built model.onnx answers under ONNX Runtime
                              against reference.json, as JSON on stdout; runs in
                              the converter's environment (.venv with
                              onnxruntime: make model-efficientnet's packages).
    mlflow_model.py log --metrics FILE
                              log the model `make model` built as an MLflow run
                              (parameters, FILE's metrics, the model
                              repository's files as artifacts) and register it
                              as a new version of the registered model
                              fish_classifier; prints the version. Runs in
                              .mlflow-venv (scripts/mlflow.sh). `make model`
                              runs both when MLFLOW_TRACKING_URI is set, with
                              --skip-registered: weights a version already
                              holds are not logged again.
    mlflow_model.py publish   copy a registered version (--version, default the
                              newest) into the Triton model repository at
                              --repository (s3://BUCKET[/PREFIX], default
                              $PUBLISH_REPOSITORY) as fish_classifier/<version>/,
                              with the run id and the version written into
                              config.pbtxt's parameters (mlflow_run_id,
                              mlflow_model_version), which the gateway shows in
                              GET /model and model_info. `make publish-model`.

The tracking server is MLFLOW_TRACKING_URI's. The S3 endpoint and credentials are
boto3's usual variables: AWS_ENDPOINT_URL (MinIO's URL), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY. --layout ci publishes the CI Triton's variant of the model
(triton-ci/: the Python backend running model.onnx), which the tests serve.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
MODEL = "fish_classifier"
MODEL_DIR = os.path.join(HERE, MODEL)
CI_MODEL_DIR = os.path.join(REPO_ROOT, "triton-ci", "models", MODEL)
# Where a run keeps the model repository's files, under its artifacts.
ARTIFACT_PATH = "triton"
# The fish head (build_model.py), as a parameter of the run.
HEAD = "16 ImageNet fish classes and 'not a fish' (log-sum-exp of the other 984 logits)"


def say(msg: str) -> None:
    print(f"mlflow_model: {msg}", file=sys.stderr)


def parameters(config_text: str) -> dict[str, str]:
    """The string parameters of a config.pbtxt's top-level parameters block."""
    return dict(re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}', config_text))


def with_parameters(config_text: str, extra: dict[str, str]) -> str:
    """config_text with extra added to (or replacing in) its top-level
    parameters block, which opens with a line "parameters [" and closes with a
    line "]"."""
    lines = config_text.splitlines()
    try:
        start = lines.index("parameters [")
        end = lines.index("]", start)
    except ValueError:
        raise SystemExit("mlflow_model: config.pbtxt has no top-level 'parameters [ ... ]' block") from None
    block = "\n".join(lines[start + 1:end])
    for key in extra:
        # Drop an entry this publication rewrites (a config published before).
        block = re.sub(r',?\s*\{\s*key:\s*"' + re.escape(key) + r'"\s*value:\s*\{[^}]*\}\s*\}', "", block)
    entries = [f'  {{\n    key: "{k}"\n    value: {{ string_value: "{v}" }}\n  }}' for k, v in extra.items()]
    block = block.rstrip()
    body = (block + ",\n" if block.strip() else "") + ",\n".join(entries)
    out = lines[:start + 1] + ["  # Published from MLflow's registry (triton-models/mlflow_model.py publish)."] + [body] + lines[end:]
    return "\n".join(out) + "\n"


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def metrics() -> dict[str, float]:
    """How the built model.onnx answers, under ONNX Runtime, against
    reference.json (the converter's float64 forward): the largest logit error on
    the fixed input, and the share of the committed check photos whose top-1
    agrees."""
    import numpy as np
    import onnxruntime as ort

    sys.path.insert(0, HERE)
    import build_model  # the input recipe, the fish head, Pillow's preprocessing

    with open(os.path.join(MODEL_DIR, "reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    session = ort.InferenceSession(os.path.join(MODEL_DIR, "1", "model.onnx"), providers=["CPUExecutionProvider"])
    x = build_model.convert.hash_input(build_model.INPUT_SHAPE).astype(np.float32)
    logits = session.run(["logits"], {"input": x})[0]
    error = float(np.abs(logits.astype(np.float64) - np.array(ref["logits"], dtype=np.float64)).max())
    checks = [ref["pillow_image"]] + ref["photos"]
    agree = 0
    for photo in checks:
        got = session.run(["logits"], {"input": build_model.pillow_input(os.path.join(REPO_ROOT, photo["path"]))})[0]
        agree += int(int(got.argmax()) == photo["top1"])
    return {
        "numerics_max_abs_error": error,
        "numerics_tolerance": float(ref["tolerance"]),
        "check_photos": float(len(checks)),
        "check_photos_top1_agreement": agree / len(checks),
    }


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def log(args: argparse.Namespace) -> int:
    import mlflow
    from mlflow import MlflowClient

    model_path = os.path.join(MODEL_DIR, "1", "model.onnx")
    with open(os.path.join(MODEL_DIR, "config.pbtxt"), encoding="utf-8") as f:
        params = parameters(f.read())
    declared = params.get("model_sha256", "")
    if not os.path.exists(model_path) or sha256(model_path) != declared:
        raise SystemExit("mlflow_model: triton-models/fish_classifier/1/model.onnx is missing or does not match "
                         "config.pbtxt's model_sha256: run `make model` first")
    with open(args.metrics, encoding="utf-8") as f:
        m = {k: float(v) for k, v in json.load(f).items()}
    if m["numerics_max_abs_error"] > m["numerics_tolerance"]:
        raise SystemExit(f"mlflow_model: ONNX Runtime's logits are {m['numerics_max_abs_error']:.3g} from the "
                         f"reference, more than its tolerance {m['numerics_tolerance']}: not logging a broken model")

    client = MlflowClient()
    if args.skip_registered:
        try:
            known = client.search_model_versions(f"name = '{args.name}'")
        except mlflow.exceptions.MlflowException:
            known = []
        for mv in known:
            if mv.tags.get("weights_sha256") == declared:
                say(f"{args.name} version {mv.version} (run {mv.run_id}) already holds these weights: not logged again")
                print(json.dumps({"run_id": mv.run_id, "name": args.name, "version": int(mv.version)}))
                return 0

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=f"{MODEL} {declared[:12]}") as run:
        mlflow.log_params({
            "source": params.get("model_source", ""),
            "license": params.get("model_license", ""),
            "weights_sha256": declared,
            "head": HEAD,
            "labels": sum(1 for _ in open(os.path.join(MODEL_DIR, "labels.txt"), encoding="utf-8")),
            **{k: v for k, v in params.items() if k.startswith("preprocess_") or k == "output_kind"},
        })
        mlflow.log_metrics(m)
        if commit := git_commit():
            mlflow.set_tag("git_commit", commit)
        with tempfile.TemporaryDirectory() as tmp:
            repo = os.path.join(tmp, MODEL)
            os.makedirs(os.path.join(repo, "1"))
            for name in ("config.pbtxt", "labels.txt"):
                shutil.copy(os.path.join(MODEL_DIR, name), os.path.join(repo, name))
            shutil.copy(model_path, os.path.join(repo, "1", "model.onnx"))
            mlflow.log_artifacts(repo, artifact_path=ARTIFACT_PATH)
        run_id = run.info.run_id

    try:
        client.get_registered_model(args.name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(args.name, description="The gateway's fish classifier: "
                                       "EfficientNet-Lite0 with a fish head, as a Triton model repository entry.")
    version = client.create_model_version(args.name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id,
                                          tags={"weights_sha256": declared},
                                          description=f"weights sha256 {declared}")
    say(f"logged run {run_id} (numerics error {m['numerics_max_abs_error']:.2g}, check photos' top-1 agreement "
        f"{m['check_photos_top1_agreement']:.0%}) and registered {args.name} version {version.version}")
    print(json.dumps({"run_id": run_id, "name": args.name, "version": int(version.version)}))
    return 0


def split_s3(url: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?", url or "")
    if not m:
        raise SystemExit(f"mlflow_model: --repository {url!r} is not s3://BUCKET[/PREFIX]")
    return m.group(1), (m.group(2) or "").strip("/")


def publish(args: argparse.Namespace) -> int:
    import boto3
    from mlflow import MlflowClient

    bucket, prefix = split_s3(args.repository)
    client = MlflowClient()
    if args.version:
        mv = client.get_model_version(args.name, str(args.version))
    else:
        versions = client.search_model_versions(f"name = '{args.name}'")
        if not versions:
            raise SystemExit(f"mlflow_model: the registry has no version of {args.name}: run `make model` with "
                             "MLFLOW_TRACKING_URI set first")
        mv = max(versions, key=lambda v: int(v.version))
    version, run_id = int(mv.version), mv.run_id

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, ARTIFACT_PATH, tmp)
        model_path = os.path.join(local, "1", "model.onnx")
        with open(os.path.join(local, "config.pbtxt"), encoding="utf-8") as f:
            logged = f.read()
        declared = parameters(logged).get("model_sha256", "")
        if sha256(model_path) != declared:
            raise SystemExit(f"mlflow_model: version {version}'s model.onnx does not match its config.pbtxt's "
                             "model_sha256: refusing to publish it")
        if args.layout == "ci":
            with open(os.path.join(CI_MODEL_DIR, "config.pbtxt"), encoding="utf-8") as f:
                config = f.read()
            if parameters(config).get("model_sha256") != declared:
                raise SystemExit("mlflow_model: triton-ci's config.pbtxt declares other weights than the version")
        else:
            config = logged
        config = with_parameters(config, {"mlflow_run_id": run_id, "mlflow_model_version": str(version)})

        files = {f"{version}/model.onnx": model_path}
        if args.layout == "ci":
            files[f"{version}/model.py"] = os.path.join(CI_MODEL_DIR, "1", "model.py")
        config_path = os.path.join(tmp, "config.pbtxt")
        with open(config_path, "w", encoding="utf-8", newline="\n") as f:
            f.write(config)
        # The version's files first, the configuration last: a poll between
        # the two finds a complete version under the previous configuration.
        files["labels.txt"] = os.path.join(local, "labels.txt")
        files["config.pbtxt"] = config_path

        s3 = boto3.client("s3")
        base = "/".join(p for p in (prefix, MODEL) if p)
        for key, path in files.items():
            s3.upload_file(path, bucket, f"{base}/{key}")
    say(f"published {args.name} version {version} (run {run_id}) to s3://{bucket}/{base}/{version}/ "
        f"({args.layout} layout)")
    print(json.dumps({"run_id": run_id, "name": args.name, "version": version, "repository": f"s3://{bucket}/{prefix}"}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default=MODEL, help="the registered model (default %(default)s)")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("metrics", help="the built model's numerics and check photos under ONNX Runtime, as JSON")
    lg = sub.add_parser("log", help="log the built model as a run and register it")
    lg.add_argument("--metrics", required=True, help="the JSON the metrics command printed")
    lg.add_argument("--experiment", default=MODEL, help="the experiment of the run (default %(default)s)")
    lg.add_argument("--skip-registered", action="store_true",
                    help="do nothing when a registered version already holds these weights")
    pb = sub.add_parser("publish", help="copy a registered version into a Triton model repository on S3")
    pb.add_argument("--version", type=int, help="the registered version (default: the newest)")
    pb.add_argument("--repository", default=os.environ.get("PUBLISH_REPOSITORY", ""),
                    help="s3://BUCKET[/PREFIX] (default $PUBLISH_REPOSITORY)")
    pb.add_argument("--layout", choices=("production", "ci"), default="production",
                    help="production: the onnxruntime backend's config.pbtxt as logged; ci: triton-ci's "
                         "Python-backend variant, for the CI Triton")
    args = ap.parse_args()
    if args.command == "metrics":
        print(json.dumps(metrics()))
        return 0
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        raise SystemExit("mlflow_model: MLFLOW_TRACKING_URI is not set (the MLflow tracking server's URL)")
    return log(args) if args.command == "log" else publish(args)


if __name__ == "__main__":
    sys.exit(main())
