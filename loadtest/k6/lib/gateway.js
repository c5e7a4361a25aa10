// What the scripts know of the gateway's HTTP API: waiting for it to be ready,
// the model it serves, and what a correct answer looks like.

import http from "k6/http";
import { sleep } from "k6";
import { ENDPOINT } from "./slo.js";

/**
 * The model as GET /model describes it; setup() hands it to every VU.
 * @typedef {object} ModelInfo
 * @property {string} name
 * @property {string} version
 * @property {string[]} labels
 */

/**
 * Waits until GET /ready answers 200 (a gateway just started may still be
 * loading its model), then reads GET /model. Throws, which ends the run before
 * any load, when the gateway does not become ready in time.
 * @param {string} baseURL
 * @param {number} readySeconds
 * @returns {ModelInfo}
 */
export function waitForGateway(baseURL, readySeconds) {
    /** @type {import("k6/http").Params} */
    const params = {
        tags: { endpoint: ENDPOINT.setup },
        timeout: "5s",
        // Not ready yet (503) or not listening yet (0) are what is waited out.
        responseCallback: http.expectedStatuses(200, 503),
    };
    const deadline = Date.now() + readySeconds * 1000;
    let last = "";
    for (;;) {
        const res = http.get(`${baseURL}/ready`, params);
        if (res.status === 200) break;
        last = res.status === 0 ? String(res.error) : `${res.status} ${String(res.body).slice(0, 200)}`;
        if (Date.now() >= deadline) {
            throw new Error(`${baseURL}/ready did not answer 200 within ${readySeconds}s; last answer: ${last}`);
        }
        sleep(1);
    }
    const res = http.get(`${baseURL}/model`, { tags: { endpoint: ENDPOINT.setup }, timeout: "5s" });
    if (res.status !== 200) throw new Error(`${baseURL}/model answered ${res.status}: ${String(res.body).slice(0, 200)}`);
    const m = /** @type {Record<string, unknown>} */ (res.json());
    if (typeof m.name !== "string" || !Array.isArray(m.labels) || m.labels.length === 0) {
        throw new Error(`${baseURL}/model: no name or labels in ${String(res.body).slice(0, 200)}`);
    }
    return { name: m.name, version: String(m.version ?? ""), labels: m.labels.map(String) };
}

/**
 * Parses a JSON body; undefined when it is not a JSON object.
 * @param {import("k6/http").RefinedResponse<any>} res
 * @returns {Record<string, any> | undefined}
 */
export function jsonObject(res) {
    if (typeof res.body !== "string" || res.body === "") return undefined;
    try {
        const v = JSON.parse(res.body);
        return v !== null && typeof v === "object" && !Array.isArray(v) ? v : undefined;
    } catch (_) {
        return undefined;
    }
}

/**
 * Whether a predictions array is what the model must give for top_k: the
 * right length, known labels with their indices, confidences in [0, 1] in
 * descending order, summing to at most 1.
 * @param {unknown} predictions
 * @param {ModelInfo} model
 * @param {number} topK
 */
export function wellFormedPredictions(predictions, model, topK) {
    if (!Array.isArray(predictions) || predictions.length !== Math.min(topK, model.labels.length)) return false;
    let previous = Infinity;
    let sum = 0;
    for (const p of predictions) {
        if (p === null || typeof p !== "object") return false;
        const { label, index, confidence } = /** @type {Record<string, unknown>} */ (p);
        if (typeof index !== "number" || model.labels[index] !== label) return false;
        if (typeof confidence !== "number" || !(confidence >= 0 && confidence <= 1) || confidence > previous) return false;
        previous = confidence;
        sum += confidence;
    }
    return sum <= 1 + 1e-6;
}

/**
 * Whether an error body is the gateway's {"error": {code, message,
 * request_id}} with the expected code.
 * @param {Record<string, any> | undefined} body
 * @param {string | undefined} code
 */
export function isErrorBody(body, code) {
    const e = body?.error;
    return (
        e !== null &&
        typeof e === "object" &&
        typeof e.message === "string" &&
        e.message !== "" &&
        typeof e.request_id === "string" &&
        e.request_id !== "" &&
        (code === undefined || e.code === code)
    );
}

/**
 * Whether timings_ms holds the named stages as non-negative numbers.
 * @param {unknown} timings
 * @param {readonly string[]} stages
 */
export function hasTimings(timings, stages) {
    if (timings === null || typeof timings !== "object") return false;
    const t = /** @type {Record<string, unknown>} */ (timings);
    return stages.every((s) => typeof t[s] === "number" && /** @type {number} */ (t[s]) >= 0);
}
