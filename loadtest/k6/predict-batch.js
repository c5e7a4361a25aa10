// Load test of POST /predict/batch: BATCH_SIZE images per request, each a
// multipart part named "files"; the gateway answers 200 with one result per
// image, in order: predictions, or the image's own error.
//
//   scripts/k6.sh run loadtest/k6/predict-batch.js                 # smoke
//   scripts/k6.sh run -e SCENARIO=load -e RATE=5 -e BATCH_SIZE=16 loadtest/k6/predict-batch.js
//
// SCENARIO picks the load shape (smoke, load, stress, spike, soak); RATE and
// the other rates count requests (batches) per second. The run fails (exit
// code 99) when an SLO threshold fails: 5xx ratio < 5%, p95 < 2500 ms.

import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";

import { loadConfig, stressRateAt } from "./lib/config.js";
import { ImageSet, MULTIPART_CONTENT_TYPE, isValid, multipartBody } from "./lib/images.js";
import { hasTimings, jsonObject, waitForGateway, wellFormedPredictions } from "./lib/gateway.js";
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

const config = loadConfig("predict-batch", {
    rate: 2,
    stressStart: 1,
    stressMax: 40,
    spikeRate: 15,
    smokeIterations: 6,
    vus: 5,
    maxVUs: 100,
});
// Images per request; the gateway takes up to MAX_BATCH_ITEMS (32 by default).
const batchSize = config.env.int("BATCH_SIZE", 8, 1, 4096);
config.env.done();

const images = new ImageSet("files", config.images, config.invalidRatio);
const url = `${config.baseURL}/predict/batch?top_k=${config.topK}`;

export const options = testOptions(config, ENDPOINT.batch, SLO.p95BatchMs);

/** @returns {{model: import("./lib/gateway.js").ModelInfo}} */
export function setup() {
    return { model: waitForGateway(config.baseURL, config.readySeconds) };
}

/**
 * One result of a batch answer, as far as the checks look at it.
 * @typedef {{index?: unknown, filename?: unknown, predictions?: unknown, error?: {code?: unknown}}} BatchItem
 */

/** @param {{model: import("./lib/gateway.js").ModelInfo}} data */
export default function (data) {
    // Smoke: consecutive slices of the walk through every image, invalid ones
    // included; otherwise each image is drawn on its own (invalid at INVALID_RATIO).
    const first = exec.scenario.iterationInTest * batchSize;
    const uploads = Array.from({ length: batchSize }, (_, j) =>
        config.scenario === "smoke" ? images.nth(first + j) : images.pick(),
    );
    const tags = { endpoint: ENDPOINT.batch };
    const res = http.post(url, multipartBody(uploads.map((u) => u.part)), {
        headers: { "Content-Type": MULTIPART_CONTENT_TYPE },
        tags: { ...tags, name: `${config.baseURL}/predict/batch` },
        timeout: config.timeout,
        // Invalid images are refused item by item inside a 200.
        responseCallback: http.expectedStatuses(200),
    });
    countAnswer(res, 200, tags);
    const body = jsonObject(res);
    /** @type {BatchItem[]} */
    const results = Array.isArray(body?.results) ? body.results : [];

    check(
        res,
        {
            "batch: answered 200": (r) => r.status === 200,
            "batch: one result per image, in order": () =>
                results.length === uploads.length &&
                results.every((it, i) => it !== null && it.index === i && it.filename === uploads[i].spec.name),
            "batch: valid images classified (top_k, known labels, confidences in order)": () =>
                results.length === uploads.length &&
                uploads.every(
                    (u, i) =>
                        !isValid(u.spec) ||
                        (results[i].error === undefined && wellFormedPredictions(results[i].predictions, data.model, config.topK)),
                ),
            "batch: invalid images refused with their codes": () =>
                results.length === uploads.length &&
                uploads.every(
                    (u, i) => isValid(u.spec) || (results[i].predictions === undefined && results[i].error?.code === u.spec.expect.code),
                ),
            "batch: model, request_id and total time answered": () =>
                body?.model === data.model.name &&
                typeof body?.request_id === "string" &&
                body.request_id === res.headers["X-Request-Id"] &&
                hasTimings(body?.timings_ms, ["total"]),
        },
        tags,
    );

    if (res.status === 200 && body !== undefined) {
        for (const it of results) {
            if (Array.isArray(it?.predictions)) imagesClassified.add(1, tags);
            else if (it?.error !== undefined) imagesRefused.add(1, tags);
        }
        recordServerTimings(body.timings_ms ?? {}, res.timings.duration, tags);
    }
    if (config.stress !== undefined && res.status !== 200) {
        stressRateAtFailure.add(stressRateAt(config.stress, (Date.now() - exec.scenario.startTime) / 1000), tags);
    }
}

/** @param {import("./lib/summary.js").SummaryData} data */
export function handleSummary(data) {
    return summaryOutputs(data, { config, endpoint: ENDPOINT.batch, route: "/predict/batch", p95Ms: SLO.p95BatchMs });
}
