// The end-of-test summary: k6 calls handleSummary(data) with every metric's
// aggregate; the scripts write it as JSON (the full data plus a digest) and as
// text (the digest, also printed), under SUMMARY_DIR as
// <script>-<scenario>-summary.{json,txt}.

import { SLO, SUMMARY_TREND_STATS } from "./slo.js";
import { stressRateAt } from "./config.js";

/**
 * One metric as handleSummary receives it.
 * @typedef {object} SummaryMetric
 * @property {"counter" | "gauge" | "rate" | "trend"} type
 * @property {"time" | "data" | "default"} contains
 * @property {Record<string, number>} values
 * @property {Record<string, {ok: boolean}>} [thresholds]
 */

/**
 * @typedef {object} SummaryCheck
 * @property {string} name
 * @property {number} passes
 * @property {number} fails
 */

/**
 * @typedef {object} SummaryGroup
 * @property {string} name
 * @property {SummaryGroup[]} groups
 * @property {SummaryCheck[]} checks
 */

/**
 * What k6 hands handleSummary.
 * @typedef {object} SummaryData
 * @property {Record<string, SummaryMetric>} metrics
 * @property {SummaryGroup} root_group
 * @property {{testRunDurationMs: number}} state
 */

/**
 * What the digest says of a script's run beyond the metrics.
 * @typedef {object} RunFacts
 * @property {import("./config.js").RunConfig} config
 * @property {string} endpoint      the endpoint tag of the script's requests
 * @property {string} route         e.g. "/predict"
 * @property {number} p95Ms         the latency SLO of the route
 */

/**
 * One threshold's outcome.
 * @typedef {object} ThresholdResult
 * @property {string} metric
 * @property {string} expression
 * @property {boolean} ok
 * @property {number | undefined} observed
 */

/**
 * The results a person (or a CI log) reads first.
 * @typedef {object} Digest
 * @property {string} script
 * @property {string} scenario
 * @property {string} base_url
 * @property {number} duration_s
 * @property {boolean} passed                  requests were answered and every threshold held
 * @property {ThresholdResult[]} thresholds
 * @property {{passes: number, fails: number, failing: SummaryCheck[]}} checks
 * @property {Record<string, number>} requests  counts by answer class, rate per second, dropped iterations
 * @property {Record<string, number>} images
 * @property {Record<string, Record<string, number>>} latency_ms    client-side, by metric
 * @property {Record<string, Record<string, number>>} server_ms     server-reported stages
 * @property {{first_failure_target_rate: number | undefined, stopped_at_target_rate: number} | undefined} stress
 * @property {{ratio_5xx_max: number, p95_ms_max: number}} slo
 */

/**
 * @param {SummaryData} data
 * @param {string} name
 * @param {string} stat
 * @returns {number | undefined}
 */
function value(data, name, stat) {
    return data.metrics[name]?.values[stat];
}

/**
 * The statistic a threshold expression tests: "p(95)<500" → "p(95)".
 * @param {string} expression
 */
function statOf(expression) {
    const m = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*[<>=!]/.exec(expression);
    return m === null ? "" : m[1];
}

/** @param {SummaryGroup} g @returns {SummaryCheck[]} */
function allChecks(g) {
    return [...g.checks, ...g.groups.flatMap(allChecks)];
}

/**
 * @param {SummaryData} data
 * @param {RunFacts} facts
 * @returns {Digest}
 */
export function digest(data, facts) {
    const { config } = facts;
    /** @type {ThresholdResult[]} */
    const results = [];
    for (const [metric, m] of Object.entries(data.metrics)) {
        for (const [expression, r] of Object.entries(m.thresholds ?? {})) {
            results.push({ metric, expression, ok: r.ok, observed: m.values[statOf(expression)] });
        }
    }
    results.sort((a, b) => a.metric.localeCompare(b.metric));
    const checks = allChecks(data.root_group);
    const count = (/** @type {string} */ name) => value(data, name, "count") ?? 0;
    const durationS = data.state.testRunDurationMs / 1000;
    /** @type {Record<string, Record<string, number>>} */
    const latency = {};
    for (const name of [`http_req_duration{endpoint:${facts.endpoint}}`, "transport_overhead"]) {
        if (data.metrics[name]) latency[name] = data.metrics[name].values;
    }
    /** @type {Record<string, Record<string, number>>} */
    const serverMs = {};
    for (const stage of ["decode", "resize", "normalize", "inference", "postprocess", "total"]) {
        const m = data.metrics[`server_${stage}`];
        if (m && (m.values.count ?? 0) > 0) serverMs[stage] = m.values;
    }
    const requests = count("answers_2xx") + count("answers_4xx") + count("answers_5xx") + count("answers_none");
    return {
        script: config.script,
        scenario: config.scenario,
        base_url: config.baseURL,
        duration_s: durationS,
        // A run that sent no request proved nothing.
        passed: requests > 0 && results.every((r) => r.ok),
        thresholds: results,
        checks: {
            passes: checks.reduce((n, c) => n + c.passes, 0),
            fails: checks.reduce((n, c) => n + c.fails, 0),
            failing: checks.filter((c) => c.fails > 0),
        },
        requests: {
            total: requests,
            per_second: durationS > 0 ? requests / durationS : 0,
            "2xx": count("answers_2xx"),
            "4xx": count("answers_4xx"),
            "429": count("answers_429"),
            "5xx": count("answers_5xx"),
            no_answer: count("answers_none"),
            ratio_5xx: value(data, "http_5xx", "rate") ?? 0,
            ratio_unexpected: value(data, "answers_unexpected", "rate") ?? 0,
            dropped_iterations: count("dropped_iterations"),
        },
        images: {
            classified: count("images_classified"),
            refused_as_expected: count("images_refused"),
            classified_per_second: durationS > 0 ? count("images_classified") / durationS : 0,
        },
        latency_ms: latency,
        server_ms: serverMs,
        stress:
            config.stress === undefined
                ? undefined
                : {
                      first_failure_target_rate: value(data, "stress_target_rate_at_failure", "min"),
                      stopped_at_target_rate: stressRateAt(config.stress, durationS),
                  },
        slo: { ratio_5xx_max: SLO.errorRatio, p95_ms_max: facts.p95Ms },
    };
}

/** @param {number | undefined} v @param {number} [digits] */
function fixed(v, digits = 1) {
    return v === undefined || !Number.isFinite(v) ? "-" : v.toFixed(digits);
}

/** @param {string} s @param {number} n */
function pad(s, n) {
    return s.length >= n ? s : s + " ".repeat(n - s.length);
}

/** @param {string} s @param {number} n */
function padLeft(s, n) {
    return s.length >= n ? s : " ".repeat(n - s.length) + s;
}

const STATS = SUMMARY_TREND_STATS.filter((s) => s !== "count");

/**
 * A table row of trend statistics in milliseconds.
 * @param {string} label
 * @param {Record<string, number>} values
 */
function trendRow(label, values) {
    return `  ${pad(label, 22)}${STATS.map((s) => padLeft(fixed(values[s], 2), 10)).join("")}${padLeft(String(values.count ?? ""), 9)}`;
}

/**
 * The digest as text, for people and CI logs.
 * @param {Digest} d
 * @param {RunFacts} facts
 */
export function text(d, facts) {
    const lines = [];
    const r = d.requests;
    lines.push(`${d.script} · scenario ${d.scenario} · ${d.base_url} · ${fixed(d.duration_s)} s`);
    const what = d.scenario === "smoke" ? "the alerts' SLOs, and every check in a smoke run" : "the alerts' SLOs";
    lines.push(`result: ${d.passed ? "PASSED" : "FAILED"}${r.total === 0 ? ": no request was answered" : ""} (thresholds: ${what})`);
    lines.push("");
    lines.push("thresholds");
    for (const t of d.thresholds) {
        const stat = statOf(t.expression);
        const shown = stat === "rate" ? `${fixed((t.observed ?? NaN) * 100, 2)}%` : stat.startsWith("p(") ? `${fixed(t.observed, 1)} ms` : fixed(t.observed, 3);
        lines.push(`  ${t.ok ? "ok  " : "FAIL"}  ${pad(t.metric, 40)} ${pad(t.expression, 14)} observed ${shown}`);
    }
    lines.push("");
    const checkTotal = d.checks.passes + d.checks.fails;
    lines.push(`checks: ${d.checks.passes}/${checkTotal} passed${checkTotal > 0 ? ` (${fixed((100 * d.checks.passes) / checkTotal, 2)}%)` : ""}`);
    for (const c of d.checks.failing) lines.push(`  FAIL  ${c.name}: ${c.fails} of ${c.passes + c.fails}`);
    lines.push("");
    lines.push(
        `requests: ${r.total} (${fixed(r.per_second)}/s) · 2xx ${r["2xx"]} · 4xx ${r["4xx"]} (429 shed: ${r["429"]}) · 5xx ${r["5xx"]} · no answer ${r.no_answer}`,
    );
    lines.push(`  5xx ratio ${fixed(r.ratio_5xx * 100, 2)}% (SLO < ${fixed(d.slo.ratio_5xx_max * 100, 0)}%) · unexpected statuses ${fixed(r.ratio_unexpected * 100, 2)}%`);
    if (r.dropped_iterations > 0) {
        lines.push(`  dropped iterations: ${r.dropped_iterations} (k6 ran out of VUs: raise VUS / MAX_VUS, or the gateway is too slow for the rate)`);
    }
    lines.push(
        `images: ${d.images.classified} classified (${fixed(d.images.classified_per_second)}/s) · ${d.images.refused_as_expected} invalid refused as expected`,
    );
    lines.push("");
    const header = `  ${pad("ms", 22)}${STATS.map((s) => padLeft(s, 10)).join("")}${padLeft("count", 9)}`;
    lines.push(`client latency (${facts.route}: p95 SLO < ${d.slo.p95_ms_max} ms)`);
    lines.push(header);
    for (const [name, values] of Object.entries(d.latency_ms)) {
        const label = name.startsWith("http_req_duration") ? facts.route : name;
        lines.push(trendRow(label, values));
    }
    if (Object.keys(d.server_ms).length > 0) {
        lines.push("");
        lines.push("server-reported timings_ms");
        lines.push(header);
        for (const [stage, values] of Object.entries(d.server_ms)) lines.push(trendRow(stage, values));
    }
    if (d.stress !== undefined) {
        lines.push("");
        const first = d.stress.first_failure_target_rate;
        lines.push(
            `stress: first unexpected answer at a target of ${first === undefined ? "- (none)" : `${fixed(first)} req/s`}; ` +
                `stopped at a target of ${fixed(d.stress.stopped_at_target_rate)} req/s`,
        );
    }
    return lines.join("\n") + "\n";
}

/**
 * The handleSummary result: the JSON and text files, and the text on stdout.
 * @param {SummaryData} data
 * @param {RunFacts} facts
 * @returns {Record<string, string>}
 */
export function summaryOutputs(data, facts) {
    const d = digest(data, facts);
    const t = text(d, facts);
    const base = `${facts.config.summaryDir}/${facts.config.script}-${facts.config.scenario}-summary`;
    return {
        stdout: "\n" + t,
        [`${base}.json`]: JSON.stringify({ digest: d, k6: data }, null, 2) + "\n",
        [`${base}.txt`]: t,
    };
}
