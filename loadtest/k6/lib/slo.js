// The service level objectives, the custom metrics that measure them, and the
// thresholds that turn them into a pass or a fail.
//
// The thresholds are the alerts' own numbers: a load test fails exactly when,
// at that load, an alert would fire (over the whole run rather than the
// alerts' 5-minute windows).
//   5xx ratio         < 5%      of all predict requests (an invalid image's 4xx is the client's fault, not an error)
//   p95 /predict      < 500 ms
//   p95 /predict/batch < 2500 ms

import { Counter, Rate, Trend } from "k6/metrics";

/** The numbers the alerts use. */
export const SLO = Object.freeze({
    errorRatio: 0.05,
    p95PredictMs: 500,
    p95BatchMs: 2500,
});

/** The `endpoint` tag of each route's requests (thresholds select on it). */
export const ENDPOINT = Object.freeze({
    predict: "predict",
    batch: "predict_batch",
    setup: "setup",
});

/**
 * 5xx answers, and requests that got no answer at all (connection refused or
 * reset, timeout), out of all predict requests.
 */
export const serverErrors = new Rate("http_5xx");
/**
 * Answers other than the one the upload called for (200, or an invalid
 * image's own 4xx): 429 shedding, 5xx, timeouts, wrong statuses.
 */
export const unexpectedAnswers = new Rate("answers_unexpected");
/** Answers by class; 429s (load shed) are counted in 4xx and on their own. */
export const answers2xx = new Counter("answers_2xx");
export const answers4xx = new Counter("answers_4xx");
export const answers429 = new Counter("answers_429");
export const answers5xx = new Counter("answers_5xx");
export const noAnswer = new Counter("answers_none");
/** Images the gateway classified (200 items), and images it refused as expected. */
export const imagesClassified = new Counter("images_classified");
export const imagesRefused = new Counter("images_refused");

/** The stage timings the gateway reports in `timings_ms`, in milliseconds. */
export const server = Object.freeze({
    decode: new Trend("server_decode", true),
    resize: new Trend("server_resize", true),
    normalize: new Trend("server_normalize", true),
    inference: new Trend("server_inference", true),
    postprocess: new Trend("server_postprocess", true),
    total: new Trend("server_total", true),
});
/** What the client waited beyond the server's total: network, queueing, body transfer. */
export const transport = new Trend("transport_overhead", true);
/**
 * Stress runs: the target arrival rate (requests/s) at each unexpected answer
 * (5xx, 429, timeout); its minimum is where the gateway first gave way.
 */
export const stressRateAtFailure = new Trend("stress_target_rate_at_failure");

/**
 * Counts one answer of a predict route.
 * @param {import("k6/http").RefinedResponse<any>} res
 * @param {number} expectedStatus
 * @param {Record<string, string>} tags
 */
export function countAnswer(res, expectedStatus, tags) {
    const s = res.status;
    serverErrors.add(s === 0 || s >= 500, tags);
    unexpectedAnswers.add(s !== expectedStatus, tags);
    if (s === 0) noAnswer.add(1, tags);
    else if (s < 300) answers2xx.add(1, tags);
    else if (s >= 400 && s < 500) {
        answers4xx.add(1, tags);
        if (s === 429) answers429.add(1, tags);
    } else if (s >= 500) answers5xx.add(1, tags);
}

/**
 * Records the gateway's `timings_ms` of a 200 answer, and the transport
 * overhead measured against its total.
 * @param {Record<string, unknown>} timings
 * @param {number} clientMs  what k6 measured for the request (http_req_duration)
 * @param {Record<string, string>} tags
 */
export function recordServerTimings(timings, clientMs, tags) {
    for (const [stage, trend] of Object.entries(server)) {
        const v = timings[stage];
        if (typeof v === "number") trend.add(v, tags);
    }
    if (typeof timings.total === "number") transport.add(Math.max(0, clientMs - timings.total), tags);
}

/**
 * The thresholds of a run of one route. `abort` stops the run as soon as one
 * fails (stress runs: the ramp ends where the SLOs break). A smoke run also
 * requires every check to pass: it is a functional test first.
 * @param {string} endpoint   ENDPOINT.predict or ENDPOINT.batch
 * @param {number} p95Ms
 * @param {{abort: boolean, smoke: boolean, maxFailedRatio?: number}} how
 * @returns {Record<string, import("k6/options").Threshold[]>}
 */
export function thresholds(endpoint, p95Ms, how) {
    /** @param {string} expr @returns {import("k6/options").Threshold} */
    const t = (expr) => (how.abort ? { threshold: expr, abortOnFail: true, delayAbortEval: "10s" } : expr);
    /** @type {Record<string, import("k6/options").Threshold[]>} */
    const out = {
        http_5xx: [t(`rate<${SLO.errorRatio}`)],
        [`http_req_duration{endpoint:${endpoint}}`]: [t(`p(95)<${p95Ms}`)],
    };
    if (how.maxFailedRatio !== undefined) {
        // Stress: shed requests (429) and timeouts are errors appearing too,
        // though the 5xx SLO does not count them.
        out.answers_unexpected = [t(`rate<${how.maxFailedRatio}`)];
    }
    if (how.smoke) out.checks = ["rate==1"];
    return out;
}

/** Trend statistics shown in the summaries. */
export const SUMMARY_TREND_STATS = ["avg", "min", "med", "p(90)", "p(95)", "p(99)", "max", "count"];

/**
 * The k6 options of a run of one route: the scenario SCENARIO chose, named
 * after it, and the SLO thresholds.
 * @param {import("./config.js").RunConfig} config
 * @param {string} endpoint
 * @param {number} p95Ms
 * @returns {import("k6/options").Options}
 */
export function testOptions(config, endpoint, p95Ms) {
    const stress = config.scenario === "stress";
    return {
        scenarios: { [config.scenario]: config.shape },
        thresholds: thresholds(endpoint, p95Ms, {
            abort: stress,
            smoke: config.scenario === "smoke",
            maxFailedRatio: stress ? config.stressMaxFailed : undefined,
        }),
        summaryTrendStats: SUMMARY_TREND_STATS,
        // setup() waits for /ready for up to READY_TIMEOUT.
        setupTimeout: `${Math.ceil(config.readySeconds) + 30}s`,
        userAgent: "fish-classifier-loadtest (k6)",
    };
}
