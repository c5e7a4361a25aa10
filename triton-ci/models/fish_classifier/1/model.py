"""CI-only Triton Python-backend model: the fish classifier's ONNX file run by
onnxruntime on the CPU.

Triton's Python backend loads this file in a stub process
(triton_python_backend_stub, which embeds libpython3.x) and calls
TritonPythonModel.initialize once, execute for each batch of requests the
dynamic batcher forms, and finalize at unload. Triton itself checks every
request against config.pbtxt (tensor names, datatypes, shapes, batch size)
before it reaches execute, so this file only runs the model.

The model file is model.onnx next to this file; scripts/triton-ci.sh copies
it from triton-models/fish_classifier/1/ when it assembles the repository.
TRITON_CI_ORT_THREADS sets onnxruntime's intra-op threads (default 1: CI
machines are small and shared).
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        out_cfg = pb_utils.get_output_config_by_name(config, OUTPUT_NAME)
        if out_cfg is None:
            raise pb_utils.TritonModelException(f"config.pbtxt has no output {OUTPUT_NAME!r}")
        self.out_dtype = pb_utils.triton_string_to_numpy(out_cfg["data_type"])

        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("TRITON_CI_ORT_THREADS", "1"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in names[0] or OUTPUT_NAME not in names[1]:
            raise pb_utils.TritonModelException(
                f"{path}: inputs {names[0]}, outputs {names[1]}; want {INPUT_NAME!r} -> {OUTPUT_NAME!r}"
            )
        pb_utils.Logger.log_info(
            f"fish_classifier: onnxruntime {ort.__version__} loaded {path} "
            f"(intra-op threads {opts.intra_op_num_threads})"
        )

    def execute(self, requests):
        # One onnxruntime run for everything the dynamic batcher handed over,
        # then the rows go back to their requests in order.
        arrays = [pb_utils.get_input_tensor_by_name(r, INPUT_NAME).as_numpy() for r in requests]
        try:
            batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
            logits = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].astype(self.out_dtype, copy=False)
        except Exception as exc:  # noqa: BLE001 - every request gets the error
            err = pb_utils.TritonError(f"onnxruntime: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=err) for _ in requests]

        responses, start = [], 0
        for a in arrays:
            n = a.shape[0]
            out = pb_utils.Tensor(OUTPUT_NAME, np.ascontiguousarray(logits[start : start + n]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += n
        return responses

    def finalize(self):
        self.session = None
