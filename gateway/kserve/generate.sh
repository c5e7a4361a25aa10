#!/usr/bin/env bash
# Regenerates the Go stubs of the KServe v2 protocol (*.pb.go, *_grpc.pb.go)
# from the .proto files beside this script. The output must be byte-identical
# on every machine, so every generator is pinned:
#   - protoc: Debian 12's protobuf-compiler (3.21.12), checked below;
#   - protoc-gen-go and protoc-gen-go-grpc: the versions in go.mod's tool block.
# Runs from any working directory: `bash gateway/kserve/generate.sh`,
# `go generate ./gateway/kserve` or `make generate`.
set -euo pipefail

want_protoc="libprotoc 3.21.12"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v protoc >/dev/null 2>&1; then
	echo "generate.sh: protoc not found; install it with: apt-get install -y protobuf-compiler (Debian 12 ships $want_protoc)" >&2
	exit 1
fi
got_protoc="$(protoc --version)"
if [ "$got_protoc" != "$want_protoc" ]; then
	echo "generate.sh: need protoc '$want_protoc' (Debian 12's protobuf-compiler), found '$got_protoc'." >&2
	echo "generate.sh: the version is recorded in the generated files, so another protoc would change them." >&2
	exit 1
fi

# Build the plugins at the versions pinned in go.mod's tool block into a
# private directory, and put it first on PATH so protoc finds exactly them.
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

rm -f ./*.pb.go
PATH="$bin:$PATH" protoc \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	model_config.proto grpc_service.proto
