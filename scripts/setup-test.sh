#!/usr/bin/env bash
# Installs everything `make test` needs that a fresh Debian 12 machine with Go,
# gcc and git lacks, saying what, why and from where. Idempotent: each step checks
# first and does nothing when its part is already in place, so a second run costs
# about a second. `make test` runs it first; so does `make test-deps`.
#
#   1. Debian packages (scripts/install-test-deps.sh): libjpeg-turbo headers,
#      protoc, the real Prometheus and Alertmanager, Chromium for the /docs test,
#      MariaDB and prometheus-mysqld-exporter for the model-lifecycle tests.
#   2. ONNX Runtime's library (scripts/fetch-onnxruntime.sh): the embedded backend
#      the end-to-end tests serve with, from the pinned onnxruntime-node npm package.
#   3. The real NVIDIA Triton (scripts/triton-ci.sh install): the nvidia-pytriton
#      wheel from PyPI in .triton-venv/, started by monitoring/triton_e2e_test.go.
#   4. The contract checker (scripts/schemathesis.sh install): schemathesis from
#      PyPI in .schemathesis-venv/, run against /openapi.json by the httpapi tests.
#   5. The model build's Python environment (make venv): numpy, onnx and Pillow
#      from PyPI in .venv/, for the EfficientNet converter's tests.
#   6. The Helm chart's checkers (scripts/chart-tools.sh install): helm and
#      kubeconform built from the Go module proxy, the Kubernetes and CRD
#      schemas, in .chart-tools/, for deploy/helm's tests.
#   7. The trace backend (scripts/jaeger.sh install): Jaeger v2 built from the Go
#      module proxy into .jaeger/, which the tracing tests start
#      (internal/testenv's StartJaeger) to read back the spans exported to it.
#   8. The model-lifecycle servers: MinIO built from the Go module proxy into
#      .mlops/ (scripts/minio.sh install), the S3 store of MLflow's artifacts and
#      of the Triton model repository; MLflow from PyPI in .mlflow-venv/
#      (scripts/mlflow.sh install), the tracking server and registry. Started by
#      internal/testenv's StartMinIO and StartMLflow.
#   9. The arm64 tests (scripts/arm64.sh install): the cross compiler and
#      qemu-user from Debian, and Debian's arm64 libjpeg-turbo in .arm64/, to
#      build preprocess for arm64 and run its tests (the NEON resampler) emulated.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

say() { echo "setup-test: $*" >&2; }

say "1/9 Debian packages (libjpeg-turbo, protoc, prometheus, alertmanager, chromium, mariadb, mysqld-exporter)"
scripts/install-test-deps.sh
say "2/9 ONNX Runtime library for the embedded backend (npm onnxruntime-node, pinned)"
scripts/fetch-onnxruntime.sh >/dev/null
say "3/9 the real NVIDIA Triton for the end-to-end tests (PyPI nvidia-pytriton, pinned)"
scripts/triton-ci.sh install
say "4/9 schemathesis for the OpenAPI contract test (PyPI, pinned)"
scripts/schemathesis.sh install >/dev/null
say "5/9 the model build's Python environment, .venv (PyPI numpy, onnx, Pillow, pinned)"
make -s venv
say "6/9 helm, kubeconform and schemas for the Helm chart's tests (Go module proxy, PyPI; pinned)"
scripts/chart-tools.sh install >/dev/null
say "7/9 Jaeger v2, the tracing tests' trace backend (Go module proxy, pinned; a few minutes the first time)"
scripts/jaeger.sh install >/dev/null
say "8/9 MinIO (Go module proxy, pinned; a few minutes the first time) and MLflow (PyPI, pinned) for the model-lifecycle tests"
scripts/minio.sh install >/dev/null
scripts/mlflow.sh install >/dev/null
say "9/9 the arm64 tests: cross compiler and qemu-user (Debian), libjpeg-turbo for arm64 (Debian's archive) in .arm64/"
scripts/arm64.sh install
say "ready"
