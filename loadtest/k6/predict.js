// Load test of POST /predict: one image per request, multipart field "file".
//
//   scripts/k6.sh run loadtest/k6/predict.js                       # smoke
//   scripts/k6.sh run -e SCENARIO=load -e RATE=50 -e DURATION=10m loadtest/k6/predict.js
//
// SCENARIO picks the load shape (smoke, load, stress, spike, soak); every knob
// is an environment variable, listed in loadtest/README.md. The run fails
// (exit code 99) when an SLO threshold fails: 5xx ratio < 5%, p95 < 500 ms.

import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";

import { loadConfig, stressRateAt } from "./lib/config.js";
import { ImageSet, MANIFEST, MULTIPART_CONTENT_TYPE, isValid, multipartBody } from "./lib/images.js";
import { hasTimings, isErrorBody, jsonObject, waitForGateway, wellFormedPredictions } from "./lib/gateway.js";
import {
    ENDPOINT,
    SLO,
    countAnswer,
    imagesClassified,
    imagesRefused,
    recordServerTimings,
    stressRateAtFailure,
    testOptions,
} from "./lib/slo.js";
import { summaryOutputs } from "./lib/summary.js";

const config = loadConfig("predict", {
    rate: 20,
    stressStart: 5,
    stressMax: 300,
    spikeRate: 150,
    smokeIterations: 2 * MANIFEST.length,
    vus: 10,
    maxVUs: 200,
});
config.env.done();

const images = new ImageSet("file", config.images, config.invalidRatio);
const url = `${config.baseURL}/predict?top_k=${config.topK}`;
const STAGES = ["decode", "resize", "normalize", "inference", "postprocess", "total"];

// Each upload's expected status is the only one that is not a failed request
// (http_req_failed): an invalid image's 4xx is the right answer.
/** @type {Map<number, ReturnType<typeof http.expectedStatuses>>} */
const expected = new Map(images.all.map((u) => [u.spec.expect.status, http.expectedStatuses(u.spec.expect.status)]));

export const options = testOptions(config, ENDPOINT.predict, SLO.p95PredictMs);

/** @returns {{model: import("./lib/gateway.js").ModelInfo}} */
export function setup() {
    return { model: waitForGateway(config.baseURL, config.readySeconds) };
}

/** @param {{model: import("./lib/gateway.js").ModelInfo}} data */
export default function (data) {
    const upload = config.scenario === "smoke" ? images.nth(exec.scenario.iterationInTest) : images.pick();
    const spec = upload.spec;
    const tags = { endpoint: ENDPOINT.predict, image: spec.name };
    const res = http.post(url, multipartBody([upload.part]), {
        headers: { "Content-Type": MULTIPART_CONTENT_TYPE },
        tags: { ...tags, name: `${config.baseURL}/predict` },
        timeout: config.timeout,
        responseCallback: expected.get(spec.expect.status),
    });
    countAnswer(res, spec.expect.status, tags);
    const body = jsonObject(res);

    if (isValid(spec)) {
        check(
            res,
            {
                "predict: valid image answered 200": (r) => r.status === 200,
                "predict: top_k predictions, known labels, confidences in order": () =>
                    wellFormedPredictions(body?.predictions, data.model, config.topK),
                "predict: model, backend and request_id answered": () =>
                    body?.model === data.model.name &&
                    typeof body?.backend === "string" &&
                    typeof body?.request_id === "string" &&
                    body.request_id === res.headers["X-Request-Id"],
                "predict: every stage timing reported": () => hasTimings(body?.timings_ms, STAGES),
            },
            tags,
        );
        if (res.status === 200 && body !== undefined) {
            imagesClassified.add(1, tags);
            recordServerTimings(body.timings_ms ?? {}, res.timings.duration, tags);
        }
    } else {
        check(
            res,
            {
                "predict: invalid image refused with its 4xx": (r) => r.status === spec.expect.status,
                "predict: error body has the code, a message and the request_id": () =>
                    isErrorBody(body, spec.expect.code) && body?.error.request_id === res.headers["X-Request-Id"],
            },
            tags,
        );
        if (res.status === spec.expect.status) imagesRefused.add(1, tags);
    }

    if (config.stress !== undefined && res.status !== spec.expect.status) {
        stressRateAtFailure.add(stressRateAt(config.stress, (Date.now() - exec.scenario.startTime) / 1000), tags);
    }
}

/** @param {import("./lib/summary.js").SummaryData} data */
export function handleSummary(data) {
    return summaryOutputs(data, { config, endpoint: ENDPOINT.predict, route: "/predict", p95Ms: SLO.p95PredictMs });
}
