// The uploads of the load tests: the files in ../images (made by
// loadtest/make_images.py), what the gateway must answer for each, and the
// multipart bodies that carry them.
//
// Every file is read once per VU in the init context and turned into a
// ready-made multipart part, so an iteration only picks and concatenates.

/**
 * What the gateway must answer for an upload.
 * @typedef {object} Expectation
 * @property {number} status  HTTP status of POST /predict
 * @property {string} [code]  error code of the JSON error body (invalid uploads)
 */

/**
 * One upload of the test set.
 * @typedef {object} ImageSpec
 * @property {string} name         file name under ../images
 * @property {string} contentType  the part's Content-Type (the gateway sniffs the bytes anyway)
 * @property {number} weight       how often it is picked among the valid images
 * @property {Expectation} expect
 */

/** @type {readonly ImageSpec[]} */
export const MANIFEST = [
    // Valid photos. Weights: mostly camera-sized JPEGs, some PNG and WebP, the
    // odd full-resolution phone photo.
    { name: "fish_640x480.jpg", contentType: "image/jpeg", weight: 30, expect: { status: 200 } },
    { name: "fish_1024x768_progressive.jpg", contentType: "image/jpeg", weight: 20, expect: { status: 200 } },
    { name: "fish_480x640_exif6.jpg", contentType: "image/jpeg", weight: 10, expect: { status: 200 } },
    { name: "fish_640x480_grey.jpg", contentType: "image/jpeg", weight: 5, expect: { status: 200 } },
    { name: "fish_4032x3024.jpg", contentType: "image/jpeg", weight: 3, expect: { status: 200 } },
    { name: "fish_800x600.png", contentType: "image/png", weight: 10, expect: { status: 200 } },
    { name: "fish_400x300_rgba.png", contentType: "image/png", weight: 5, expect: { status: 200 } },
    { name: "fish_640x480.webp", contentType: "image/webp", weight: 10, expect: { status: 200 } },
    { name: "fish_256x256_lossless.webp", contentType: "image/webp", weight: 7, expect: { status: 200 } },
    // Invalid uploads: the client's fault, answered with a 4xx (picked at
    // INVALID_RATIO, uniformly among these).
    {
        name: "invalid_truncated.jpg",
        contentType: "image/jpeg",
        weight: 1,
        expect: { status: 422, code: "unprocessable_image" },
    },
    {
        name: "invalid_animation.gif",
        contentType: "image/gif",
        weight: 1,
        expect: { status: 415, code: "unsupported_media_type" },
    },
    {
        name: "invalid_notes.txt",
        contentType: "text/plain",
        weight: 1,
        expect: { status: 415, code: "unsupported_media_type" },
    },
    {
        name: "invalid_tiny_4x4.png",
        contentType: "image/png",
        weight: 1,
        expect: { status: 422, code: "unprocessable_image" },
    },
    {
        name: "invalid_bomb_60000x60000.jpg",
        contentType: "image/jpeg",
        weight: 1,
        expect: { status: 422, code: "unprocessable_image" },
    },
    { name: "invalid_empty.jpg", contentType: "image/jpeg", weight: 1, expect: { status: 400, code: "invalid_request" } },
];

/** @param {ImageSpec} spec */
export function isValid(spec) {
    return spec.expect.status === 200;
}

// A boundary that occurs in none of the images (checked when they are loaded).
const BOUNDARY = "fishClassifierK6-7b1f0c9e5d3a48e2a6c4";
export const MULTIPART_CONTENT_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;
const CLOSING = ascii(`--${BOUNDARY}--\r\n`);

/**
 * Encodes ASCII text (k6 has no TextEncoder).
 * @param {string} s
 * @returns {Uint8Array}
 */
function ascii(s) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7e) throw new Error(`not ASCII: ${JSON.stringify(s)}`);
        out[i] = c;
    }
    return out;
}

/**
 * @param {Uint8Array[]} chunks
 * @returns {Uint8Array}
 */
function concat(chunks) {
    let n = 0;
    for (const c of chunks) n += c.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
        out.set(c, at);
        at += c.length;
    }
    return out;
}

/**
 * @param {Uint8Array} haystack
 * @param {Uint8Array} needle
 */
function contains(haystack, needle) {
    const first = needle[0];
    outer: for (let i = haystack.indexOf(first); i !== -1 && i + needle.length <= haystack.length; i = haystack.indexOf(first, i + 1)) {
        for (let j = 1; j < needle.length; j++) {
            if (haystack[i + j] !== needle[j]) continue outer;
        }
        return true;
    }
    return false;
}

/**
 * One multipart/form-data file part, boundary line to closing CRLF.
 * @param {string} field
 * @param {ImageSpec} spec
 * @param {Uint8Array} bytes
 */
function filePart(field, spec, bytes) {
    const head = ascii(
        `--${BOUNDARY}\r\n` +
            `Content-Disposition: form-data; name="${field}"; filename="${spec.name}"\r\n` +
            `Content-Type: ${spec.contentType}\r\n\r\n`,
    );
    return concat([head, bytes, ascii("\r\n")]);
}

/**
 * A multipart body of the given parts, as k6 sends it.
 * @param {Uint8Array[]} parts
 * @returns {ArrayBuffer}
 */
export function multipartBody(parts) {
    const body = concat([...parts, CLOSING]);
    return /** @type {ArrayBuffer} */ (body.buffer);
}

/**
 * An upload ready to send.
 * @typedef {object} Upload
 * @property {ImageSpec} spec
 * @property {number} size   bytes of the file
 * @property {Uint8Array} part  its multipart part under the script's field name
 */

/**
 * The uploads of a run and how to pick them.
 */
export class ImageSet {
    /**
     * Reads the images; call from the init context only (k6's open()).
     * @param {string} field   multipart field name of each image part
     * @param {string[] | undefined} only  IMAGES: keep only these files
     * @param {number} invalidRatio  share of picks that are invalid uploads
     */
    constructor(field, only, invalidRatio) {
        let specs = MANIFEST;
        if (only !== undefined) {
            const unknown = only.filter((n) => !MANIFEST.some((s) => s.name === n));
            if (unknown.length > 0) {
                throw new Error(`IMAGES: no such image ${unknown.join(", ")}; known: ${MANIFEST.map((s) => s.name).join(", ")}`);
            }
            specs = MANIFEST.filter((s) => only.includes(s.name));
        }
        const boundary = ascii(BOUNDARY);
        /** @type {Upload[]} */
        this.all = specs.map((spec) => {
            const bytes = new Uint8Array(open(import.meta.resolve(`../images/${spec.name}`), "b"));
            if (bytes.length > 0 && contains(bytes, boundary)) {
                throw new Error(`${spec.name} contains the multipart boundary; change BOUNDARY in lib/images.js`);
            }
            return { spec, size: bytes.length, part: filePart(field, spec, bytes) };
        });
        /** @type {Upload[]} */
        this.valid = this.all.filter((u) => isValid(u.spec));
        /** @type {Upload[]} */
        this.invalid = this.all.filter((u) => !isValid(u.spec));
        if (this.valid.length === 0 && this.invalid.length === 0) throw new Error("IMAGES: no image left");
        this.invalidRatio = this.valid.length === 0 ? 1 : this.invalid.length === 0 ? 0 : invalidRatio;
        let total = 0;
        /** @type {number[]} cumulative weights of the valid images */
        this.cumulative = this.valid.map((u) => (total += u.spec.weight));
        this.totalWeight = total;
    }

    /**
     * A random upload: invalid at invalidRatio, else a valid one by weight.
     * @returns {Upload}
     */
    pick() {
        if (Math.random() < this.invalidRatio) {
            return this.invalid[Math.floor(Math.random() * this.invalid.length)];
        }
        const r = Math.random() * this.totalWeight;
        const i = this.cumulative.findIndex((c) => r < c);
        return this.valid[i === -1 ? this.valid.length - 1 : i];
    }

    /**
     * The n-th upload of a walk through every image in order (smoke runs).
     * @param {number} n
     * @returns {Upload}
     */
    nth(n) {
        return this.all[n % this.all.length];
    }
}
