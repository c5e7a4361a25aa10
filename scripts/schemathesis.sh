#!/usr/bin/env bash
# schemathesis, the checker of the OpenAPI contract test
# (gateway/cmd/gateway/contract_e2e_test.go, `make contract`), in .schemathesis-venv/,
# pinned by hash (scripts/schemathesis-requirements.txt):
#
#   scripts/schemathesis.sh install|path|lock
#
# is scripts/pinned-venv.sh for schemathesis: see it for the commands and the
# environment (SCHEMATHESIS_VENV, SCHEMATHESIS_PYTHON, SCHEMATHESIS_INSTALL_TIMEOUT).
exec "$(dirname "${BASH_SOURCE[0]}")/pinned-venv.sh" schemathesis "$@"
