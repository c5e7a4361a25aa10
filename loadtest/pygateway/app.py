"""Reference Python gateway: a BENCHMARK BASELINE, not part of the product.

It does the gateway's job (multipart upload -> Pillow + numpy preprocessing ->
Triton gRPC ModelInfer -> softmax -> top-5 labels as JSON) the way a competent
Python team would write it: FastAPI on uvicorn (uvloop + httptools), Pillow for
the image, numpy for the tensor, tritonclient's asyncio gRPC client for Triton.
It is meant to be fair: nothing is crippled (one worker process per core,
waiting on Triton never blocks the event loop, the gRPC channel is reused, the
tensor travels as raw bytes) and the preprocessing does no needless work
(preprocessing.py: EXIF orientation and convert("RGB") only when needed, only
the 224x224 crop window resampled, normalised in place into the NCHW output).
It does not change the job: full-size decoding (no draft(), as the Go gateway's
exact path), no batching across requests. Where two usual ways exist, the
faster one on the benchmark machine was kept (see README.md: preprocessing
inline rather than in the thread pool).

The same code serves on stock Pillow (.bench-venv) and on Pillow-SIMD
(.bench-simd-venv): the virtual environment that runs it decides
(loadtest/pygateway/install.sh [simd]).

Run it (see README.md):

    WORKERS=2 TRITON_URL=127.0.0.1:8001 .bench-venv/bin/python loadtest/pygateway/app.py
    WORKERS=2 TRITON_URL=127.0.0.1:8001 .bench-simd-venv/bin/python loadtest/pygateway/app.py

Environment:
    TRITON_URL   Triton's gRPC address (default localhost:8001)
    MODEL_NAME   the model in Triton's repository (default fish_classifier)
    WORKERS      uvicorn worker processes (default 2: one per core)
    HOST, PORT   where to listen (default 127.0.0.1:8010)
    LABELS_FILE  one label per line, class i on line i+1
                 (default <repo>/triton-models/<MODEL_NAME>/labels.txt)
    LOG_LEVEL    uvicorn's log level (default info: one access-log line per request)
    PREPROCESS_THREADPOOL  1: decode and resize in Starlette's thread pool instead
                 of on the event loop (the other usual way; slower here, see README.md)
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import tritonclient.grpc.aio as grpcclient
import uvicorn
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from PIL import Image, UnidentifiedImageError
from preprocessing import preprocess

REPO = Path(__file__).resolve().parents[2]

TRITON_URL = os.environ.get("TRITON_URL", "localhost:8001")
MODEL_NAME = os.environ.get("MODEL_NAME", "fish_classifier")
LABELS_FILE = Path(os.environ.get("LABELS_FILE", REPO / "triton-models" / MODEL_NAME / "labels.txt"))
TOP_K = 5
PREPROCESS_THREADPOOL = os.environ.get("PREPROCESS_THREADPOOL", "0") == "1"

LABELS = [line.strip() for line in LABELS_FILE.read_text().splitlines() if line.strip()]


def top_k(logits: np.ndarray, k: int) -> list[dict]:
    z = logits.astype(np.float64)
    e = np.exp(z - z.max())
    p = e / e.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"label": LABELS[i], "index": int(i), "confidence": float(p[i])} for i in order]


@asynccontextmanager
async def lifespan(app: FastAPI):
    # One channel per worker process, opened inside its event loop.
    client = grpcclient.InferenceServerClient(url=TRITON_URL)
    app.state.triton = client
    try:
        yield
    finally:
        await client.close()


app = FastAPI(title="fish-classifier reference Python gateway (baseline)", lifespan=lifespan)


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.get("/ready")
async def ready() -> dict:
    client: grpcclient.InferenceServerClient = app.state.triton
    try:
        ok = await client.is_model_ready(MODEL_NAME)
    except Exception as exc:  # unreachable server
        raise HTTPException(status_code=503, detail=f"triton: {exc}") from None
    if not ok:
        raise HTTPException(status_code=503, detail=f"model {MODEL_NAME} not ready")
    return {"status": "ready", "model": MODEL_NAME}


@app.post("/predict")
async def predict(file: Annotated[UploadFile, File()]) -> dict:
    data = await file.read()
    if not data:
        raise HTTPException(status_code=400, detail="empty upload")
    # Decoding and resizing are CPU-bound. With one worker process per core the
    # process is the unit of parallelism, and running them right here was faster
    # (throughput and p99) than handing them to the thread pool, which only adds
    # a thread hop and GIL contention when no core is idle (README.md).
    try:
        if PREPROCESS_THREADPOOL:
            tensor = await run_in_threadpool(preprocess, data)
        else:
            tensor = preprocess(data)
    except UnidentifiedImageError:
        raise HTTPException(status_code=415, detail="not a supported image") from None
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise HTTPException(status_code=422, detail=f"cannot decode the image: {exc}") from None

    client: grpcclient.InferenceServerClient = app.state.triton
    inp = grpcclient.InferInput("input", list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor)  # sent as raw_input_contents
    out = grpcclient.InferRequestedOutput("logits")
    try:
        result = await client.infer(MODEL_NAME, [inp], outputs=[out])
    except Exception as exc:  # tritonclient raises InferenceServerException
        raise HTTPException(status_code=503, detail=f"inference failed: {exc}") from None
    logits = result.as_numpy("logits")[0]
    return {"model": MODEL_NAME, "predictions": top_k(logits, TOP_K)}


def main() -> None:
    uvicorn.run(
        "app:app",
        app_dir=str(Path(__file__).resolve().parent),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8010")),
        workers=int(os.environ.get("WORKERS", "2")),
        log_level=os.environ.get("LOG_LEVEL", "info"),
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
