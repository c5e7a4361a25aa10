#!/usr/bin/env bash
# MLflow, the tracking server and model registry of the model-lifecycle tests
# (internal/testenv's StartMLflow) and the client of make model-log and make
# publish-model, in .mlflow-venv/, pinned by hash (scripts/mlflow-requirements.txt:
# mlflow, pymysql for the MariaDB backend store, boto3 for the S3 artifact store):
#
#   scripts/mlflow.sh install|path|lock
#
# is scripts/pinned-venv.sh for mlflow: see it for the commands and the
# environment (MLFLOW_VENV, MLFLOW_PYTHON, MLFLOW_INSTALL_TIMEOUT).
exec "$(dirname "${BASH_SOURCE[0]}")/pinned-venv.sh" mlflow "$@"
