// Configuration of a load test run: every knob is an environment variable
// (`k6 run -e NAME=value` or the process environment), read once in the init
// context. Invalid values stop the run before any request is sent, with one
// message naming every bad variable.

/** The load shapes a run can take, chosen by SCENARIO. */
export const SCENARIOS = /** @type {const} */ (["smoke", "load", "stress", "spike", "soak"]);

/** @typedef {typeof SCENARIOS[number]} ScenarioName */

/**
 * Reads environment variables, collecting every problem so that a run with
 * several mistakes names them all at once (see {@link Env.done}).
 */
export class Env {
    constructor() {
        /** @type {string[]} */
        this.problems = [];
    }

    /**
     * @param {string} name
     * @returns {string | undefined} the variable, or undefined when unset or empty
     */
    raw(name) {
        const v = __ENV[name];
        return v === undefined || v.trim() === "" ? undefined : v.trim();
    }

    /**
     * @param {string} name
     * @param {string} def
     */
    string(name, def) {
        return this.raw(name) ?? def;
    }

    /**
     * @template {string} T
     * @param {string} name
     * @param {T} def
     * @param {readonly T[]} allowed
     * @returns {T}
     */
    oneOf(name, def, allowed) {
        const v = this.raw(name);
        if (v === undefined) return def;
        const found = allowed.find((a) => a === v);
        if (found === undefined) {
            this.problems.push(`${name}=${v}: want one of ${allowed.join(", ")}`);
            return def;
        }
        return found;
    }

    /**
     * A number within [min, max]; integer when `integer` is set.
     * @param {string} name
     * @param {number} def
     * @param {number} min
     * @param {number} max
     * @param {boolean} [integer]
     */
    number(name, def, min, max, integer = false) {
        const v = this.raw(name);
        if (v === undefined) return def;
        const n = Number(v);
        if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
            this.problems.push(`${name}=${v}: want ${integer ? "an integer" : "a number"} from ${min} to ${max}`);
            return def;
        }
        return n;
    }

    /**
     * @param {string} name
     * @param {number} def
     * @param {number} min
     * @param {number} max
     */
    int(name, def, min, max) {
        return this.number(name, def, min, max, true);
    }

    /**
     * A duration as k6 writes them ("90s", "5m", "1h30m", "250ms"), returned
     * unchanged with its length in seconds.
     * @param {string} name
     * @param {string} def
     * @returns {{text: string, seconds: number}}
     */
    duration(name, def) {
        const v = this.raw(name) ?? def;
        const seconds = parseDuration(v);
        if (seconds === undefined || seconds <= 0) {
            this.problems.push(`${name}=${v}: want a positive duration such as 30s, 5m or 1h30m`);
            return { text: def, seconds: parseDuration(def) ?? 0 };
        }
        return { text: v, seconds };
    }

    /**
     * A URL without its trailing slashes.
     * @param {string} name
     * @param {string} def
     */
    url(name, def) {
        const v = this.string(name, def).replace(/\/+$/, "");
        if (!/^https?:\/\/[^/\s]+(\/\S*)?$/.test(v)) {
            this.problems.push(`${name}=${v}: want an http:// or https:// URL such as http://localhost:8000`);
        }
        return v;
    }

    /** Throws once, naming every invalid variable, when any was. */
    done() {
        if (this.problems.length > 0) {
            throw new Error(`invalid configuration:\n  ${this.problems.join("\n  ")}`);
        }
    }
}

const UNIT_SECONDS = /** @type {Record<string, number>} */ ({ ms: 0.001, s: 1, m: 60, h: 3600 });

/**
 * Parses a k6 duration ("1h2m3s", "500ms", "2.5m"); a bare number is seconds.
 * @param {string} text
 * @returns {number | undefined} seconds, or undefined when it is not a duration
 */
export function parseDuration(text) {
    if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
    const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
    let seconds = 0;
    let end = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        seconds += Number(m[1]) * UNIT_SECONDS[m[2]];
        end = re.lastIndex;
    }
    return end === text.length && end > 0 ? seconds : undefined;
}

/**
 * The defaults one script gives the load shapes: a single-image test offers
 * more requests per second than a batch test, whose requests carry several
 * images each.
 * @typedef {object} ShapeDefaults
 * @property {number} rate           requests/s of load and soak, and the base of spike
 * @property {number} stressStart    requests/s where stress starts
 * @property {number} stressMax      requests/s where stress would end
 * @property {number} spikeRate      requests/s at the top of a spike
 * @property {number} smokeIterations requests of a smoke run
 * @property {number} vus            VUs allocated up front for arrival-rate shapes
 * @property {number} maxVUs         VUs an arrival-rate shape may grow to
 */

/**
 * Everything a run reads from its environment.
 * @typedef {object} RunConfig
 * @property {string} script            the script's name, for the summary files
 * @property {ScenarioName} scenario
 * @property {string} baseURL
 * @property {string} summaryDir
 * @property {number} topK
 * @property {number} invalidRatio      share of uploads that are invalid images
 * @property {string[] | undefined} images  IMAGES: only these image files
 * @property {string} timeout           per-request timeout
 * @property {number} readySeconds      how long setup waits for /ready
 * @property {import("k6/options").Scenario} shape  the k6 scenario of SCENARIO
 * @property {Stress | undefined} stress  the ramp, when SCENARIO=stress
 * @property {number} stressMaxFailed   stress: share of unexpected answers (429, 5xx, timeouts) that ends the ramp
 * @property {Env} env                  for script-specific variables
 */

/**
 * The ramp of a stress run: the target rate grows linearly from start to max
 * over `seconds`.
 * @typedef {object} Stress
 * @property {number} start
 * @property {number} max
 * @property {number} seconds
 */

/**
 * Reads the variables every script shares and builds the k6 scenario that
 * SCENARIO names. The caller reads its own variables from `env` and then calls
 * `env.done()`.
 * @param {string} script
 * @param {ShapeDefaults} d
 * @returns {RunConfig}
 */
export function loadConfig(script, d) {
    const env = new Env();
    const scenario = env.oneOf("SCENARIO", /** @type {ScenarioName} */ ("smoke"), SCENARIOS);
    const baseURL = env.url("BASE_URL", "http://localhost:8000");
    const summaryDir = env.string("SUMMARY_DIR", ".").replace(/\/+$/, "") || "/";
    const topK = env.int("TOP_K", 3, 1, 1000);
    const invalidRatio = env.number("INVALID_RATIO", 0.05, 0, 1);
    const imagesRaw = env.raw("IMAGES");
    const images = imagesRaw === undefined ? undefined : imagesRaw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const timeout = env.duration("TIMEOUT", "30s").text;
    const readySeconds = env.duration("READY_TIMEOUT", "60s").seconds;
    const vus = env.int("VUS", d.vus, 1, 100000);
    const maxVUs = Math.max(vus, env.int("MAX_VUS", d.maxVUs, 1, 100000));
    const stressMaxFailed = env.number("STRESS_MAX_FAILED", 0.01, 0, 1);
    const rate = env.number("RATE", d.rate, 0.01, 1e6);

    /** @type {import("k6/options").Scenario} */
    let shape;
    /** @type {Stress | undefined} */
    let stress;
    switch (scenario) {
        case "smoke":
            // One VU walks through every image in order (see images.js), so
            // each valid and invalid upload is sent at least once.
            shape = {
                executor: "shared-iterations",
                vus: 1,
                iterations: env.int("ITERATIONS", d.smokeIterations, 1, 1000000),
                maxDuration: env.duration("DURATION", "2m").text,
            };
            break;
        case "load":
        case "soak": {
            // Open model: requests arrive at RATE whatever the latency, as
            // users' requests do; a slow gateway cannot slow the test down.
            const u = perTimeUnit([rate]);
            shape = {
                executor: "constant-arrival-rate",
                rate: u.rates[0],
                timeUnit: u.timeUnit,
                duration: env.duration("DURATION", scenario === "load" ? "5m" : "1h").text,
                preAllocatedVUs: vus,
                maxVUs,
            };
            break;
        }
        case "stress": {
            const start = env.number("START_RATE", d.stressStart, 0, 1e6);
            const max = env.number("MAX_RATE", d.stressMax, 0.01, 1e6);
            const ramp = env.duration("DURATION", "10m");
            stress = { start, max, seconds: ramp.seconds };
            const u = perTimeUnit([start, max]);
            shape = {
                executor: "ramping-arrival-rate",
                startRate: u.rates[0],
                timeUnit: u.timeUnit,
                stages: [{ target: u.rates[1], duration: ramp.text }],
                preAllocatedVUs: vus,
                maxVUs,
            };
            break;
        }
        case "spike": {
            const base = rate;
            const top = env.number("SPIKE_RATE", d.spikeRate, 0.01, 1e6);
            const calm = env.duration("DURATION", "1m").text; // before and after the spike
            const held = env.duration("SPIKE_DURATION", "1m").text;
            const u = perTimeUnit([base, top]);
            const [low, high] = u.rates;
            shape = {
                executor: "ramping-arrival-rate",
                startRate: low,
                timeUnit: u.timeUnit,
                stages: [
                    { target: low, duration: calm },
                    { target: high, duration: "10s" },
                    { target: high, duration: held },
                    { target: low, duration: "10s" },
                    { target: low, duration: calm },
                ],
                preAllocatedVUs: vus,
                maxVUs,
            };
            break;
        }
    }
    return {
        script,
        scenario,
        baseURL,
        summaryDir,
        topK,
        invalidRatio,
        images,
        timeout,
        readySeconds,
        shape,
        stress,
        stressMaxFailed,
        env,
    };
}

/**
 * Arrival rates as k6 takes them: whole iterations per time unit. Whole
 * requests/s stay per second; fractional ones (RATE=0.5) are counted per
 * minute instead.
 * @param {number[]} perSecond
 * @returns {{rates: number[], timeUnit: string}}
 */
function perTimeUnit(perSecond) {
    if (perSecond.every(Number.isInteger)) return { rates: perSecond, timeUnit: "1s" };
    return { rates: perSecond.map((r) => Math.round(r * 60)), timeUnit: "1m" };
}

/**
 * The target arrival rate of a stress run `elapsedSeconds` into it.
 * @param {Stress} s
 * @param {number} elapsedSeconds
 */
export function stressRateAt(s, elapsedSeconds) {
    const f = Math.min(1, Math.max(0, elapsedSeconds / s.seconds));
    return s.start + (s.max - s.start) * f;
}
