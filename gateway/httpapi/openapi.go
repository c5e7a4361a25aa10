package httpapi

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// object is a JSON object of the OpenAPI document.
type object = map[string]any

// ref points at a component of the document.
func ref(kind, name string) object { return object{"$ref": "#/components/" + kind + "/" + name} }

// jsonContent is a JSON body of the named schema.
func jsonContent(schema string) object {
	return object{"application/json": object{"schema": ref("schemas", schema)}}
}

// errorResponses names the component of each error response, by status. Every
// one carries the JSON error body and X-Request-ID; 429 and 503 also carry
// Retry-After.
var errorResponses = map[int]string{
	http.StatusBadRequest:                  "BadRequest",
	http.StatusRequestTimeout:              "RequestTimeout",
	http.StatusRequestEntityTooLarge:       "TooLarge",
	http.StatusUnsupportedMediaType:        "UnsupportedMediaType",
	http.StatusUnprocessableEntity:         "UnprocessableImage",
	http.StatusTooManyRequests:             "Overloaded",
	http.StatusRequestHeaderFieldsTooLarge: "HeadersTooLarge",
	StatusClientClosedRequest:              "ClientClosedRequest",
	http.StatusInternalServerError:         "Internal",
	http.StatusBadGateway:                  "BadGateway",
	http.StatusServiceUnavailable:          "Unavailable",
	http.StatusGatewayTimeout:              "DeadlineExceeded",
}

// The error statuses each kind of route can answer. Any request can be refused
// while it is read (malformed, too slow, headers too large: before routing),
// and any handler can fail with a bug (500). A body sent to a route that takes
// none is refused unread (413, framing.go). An upload can also be refused
// for its content, shed, cancelled by its client going away (499, which nobody
// reads) and fail in the backend; readiness waits on the backend too (499).
var (
	getErrors     = []int{400, 408, 413, 431, 500}
	readyErrors   = []int{400, 408, 413, 431, StatusClientClosedRequest, 500}
	predictErrors = []int{400, 408, 413, 415, 422, 429, 431, StatusClientClosedRequest, 500, 502, 503, 504}
	// A batch answers the problems of single images (415, 422) per item, in
	// its 200; as a whole it fails only for what concerns every item.
	batchErrors = []int{400, 408, 413, 415, 429, 431, StatusClientClosedRequest, 500, 502, 503, 504}
)

// openAPIDocument describes the routes New registers, in OpenAPI 3.0, with
// every status each can answer; a test checks that its paths and methods are
// exactly the app's routes, and the contract test (schemathesis, in
// gateway/cmd/gateway) that the server keeps to it.
func openAPIDocument(cfg Config) object {
	requestID := object{"X-Request-ID": ref("headers", "RequestID")}
	withErrors := func(ok object, statuses ...int) object {
		responses := object{"200": ok}
		for _, st := range statuses {
			responses[strconv.Itoa(st)] = ref("responses", errorResponses[st])
		}
		return responses
	}
	okJSON := func(description, schema string) object {
		return object{"description": description, "headers": requestID, "content": jsonContent(schema)}
	}
	// A non-empty body of any bytes: what makes it an image the schema cannot
	// say; the server sniffs and decodes it (415, 422).
	binary := object{"type": "string", "format": "binary", "minLength": 1}
	requestParams := []any{ref("parameters", "TopK"), ref("parameters", "RequestID")}

	errorResponse := func(description string, retry bool) object {
		headers := object{"X-Request-ID": ref("headers", "RequestID")}
		if retry {
			headers["Retry-After"] = ref("headers", "RetryAfter")
		}
		return object{"description": description, "headers": headers, "content": jsonContent("Error")}
	}
	var kinds, codes []string
	for _, k := range gateway.Kinds() {
		kinds = append(kinds, k.String())
	}
	codes = append(append(codes, kinds...), "not_found", "method_not_allowed", "request_timeout", "headers_too_large", "too_many_connections")

	str := object{"type": "string"}
	num := object{"type": "number"}
	integer := object{"type": "integer"}
	ms := object{"type": "number", "minimum": 0, "description": "milliseconds"}
	triple := func(item object) object {
		return object{"type": "array", "items": item, "minItems": 3, "maxItems": 3}
	}
	obj := func(required []string, props object) object {
		o := object{"type": "object", "properties": props}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	// imageParts is a multipart body of the parts named in fields, at least
	// one of them. The server skips parts of other names; they are left out of
	// the contract (additionalProperties false) because they are no use, and a
	// part name must still be a well-formed MIME parameter, which a schema
	// cannot say.
	imageParts := func(part object, fields ...string) object {
		props := object{}
		var alternatives []any
		for _, f := range fields {
			props[f] = part
			alternatives = append(alternatives, object{"required": []string{f}})
		}
		body := obj(nil, props)
		body["additionalProperties"] = false
		body["anyOf"] = alternatives
		return body
	}
	singleBody := imageParts(binary, "file", "image")
	batchBody := imageParts(object{"type": "array", "items": binary, "minItems": 1, "maxItems": cfg.MaxBatchItems},
		"files", "file", "images", "image")

	index := object{"type": "integer", "minimum": 0}
	predictions := object{"type": "array", "items": ref("schemas", "Prediction"), "minItems": 1}
	// A batch item has predictions (and the backend that made them) or an
	// error, never both.
	batchItem := obj([]string{"index", "filename"}, object{
		"index":       index,
		"filename":    str,
		"predictions": predictions,
		"backend":     str,
		"error":       ref("schemas", "ItemError"),
	})
	batchItem["oneOf"] = []any{
		object{"required": []string{"predictions", "backend"}},
		object{"required": []string{"error"}},
	}

	return object{
		"openapi": "3.0.3",
		"info": object{
			"title":   "Fish classifier gateway",
			"version": "1.0.0",
			"description": "Image classification of fish species: bytes in, species out, every step measured. " +
				"Every answer carries X-Request-ID, and every error the JSON body of the Error schema. " +
				"A path not listed here answers 404 (not_found); a method not listed for a path answers 405 (method_not_allowed) with Allow, " +
				"except HEAD, which every GET route answers.",
		},
		"paths": withDocsPaths(requestID, withErrors, object{
			"/predict": object{"post": object{
				"operationId": "predict",
				"summary":     "Classify one image",
				"description": "The image comes as the multipart field `file` (or `image`; the first such part counts, other parts are skipped), " +
					"or as the raw body with an image/* or application/octet-stream Content-Type. " +
					"It must be a JPEG, PNG or WebP (sniffed from the bytes, else 415) that decodes, with at least 8 pixels a side (else 422). " +
					"Compressed bodies (a Content-Encoding other than identity) are refused with 415.",
				"parameters": requestParams,
				"requestBody": object{
					"required": true,
					"content": object{
						"multipart/form-data":      object{"schema": singleBody},
						"image/*":                  object{"schema": binary},
						"application/octet-stream": object{"schema": binary},
					},
				},
				"responses": withErrors(okJSON("The top-k predictions, highest first.", "PredictResponse"), predictErrors...),
			}},
			"/predict/batch": object{"post": object{
				"operationId": "predictBatch",
				"summary":     "Classify several images in one request",
				"description": fmt.Sprintf("Every part named files, file, images or image is one image, in order (other parts are skipped); "+
					"at least one, and at most %d in all (else 413). "+
					"Each item gets predictions or its own error (an image that is not one, or does not decode, is an item error); "+
					"when every item failed with the same server-side error, the request answers that error's status. "+
					"Compressed bodies (a Content-Encoding other than identity) are refused with 415.", cfg.MaxBatchItems),
				"parameters": requestParams,
				"requestBody": object{
					"required": true,
					"content":  object{"multipart/form-data": object{"schema": batchBody}},
				},
				"responses": withErrors(okJSON("One result per image, in order.", "BatchResponse"), batchErrors...),
			}},
			"/health": object{"get": object{
				"operationId": "health",
				"summary":     "Liveness: the process serves",
				"responses":   withErrors(okJSON("Alive.", "Health"), getErrors...),
			}},
			"/ready": object{"get": object{
				"operationId": "ready",
				"summary":     "Readiness: the backend is live, the model ready, the breaker closed",
				"responses": func() object {
					r := withErrors(okJSON("Ready to classify.", "Ready"), readyErrors...)
					r["503"] = object{
						"description": "Not ready, with the reason.",
						"headers":     object{"X-Request-ID": ref("headers", "RequestID"), "Retry-After": ref("headers", "RetryAfter")},
						"content":     jsonContent("NotReady"),
					}
					return r
				}(),
			}},
			"/model": object{"get": object{
				"operationId": "model",
				"summary":     "The model served and the preprocessing in force",
				"responses":   withErrors(okJSON("The model.", "Model"), getErrors...),
			}},
			"/metrics": object{"get": object{
				"operationId": "metrics",
				"summary":     "Prometheus metrics",
				"responses": func() object {
					r := withErrors(object{
						"description": "Prometheus text exposition format.",
						"headers":     requestID,
						"content":     object{"text/plain": object{"schema": str}},
					}, getErrors...)
					r["500"] = object{
						"description": "Gathering the metrics failed (plain text, from the Prometheus handler), or a bug (the JSON error).",
						"headers":     requestID,
						"content": object{
							"application/json": object{"schema": ref("schemas", "Error")},
							"text/plain":       object{"schema": str},
						},
					}
					return r
				}(),
			}},
			"/openapi.json": object{"get": object{
				"operationId": "openapi",
				"summary":     "This document",
				"responses": withErrors(object{
					"description": "OpenAPI 3.0 document.",
					"headers":     requestID,
					"content":     object{"application/json": object{"schema": object{"type": "object"}}},
				}, getErrors...),
			}},
		}),
		"components": object{
			"parameters": object{
				// top_k is parsed as an int: a larger number is not one (400).
				"TopK": object{
					"name": "top_k", "in": "query", "required": false,
					"description": "How many predictions to return, a decimal integer of at least 1 (else 400); clamped to the number of classes.",
					"schema":      object{"type": "integer", "format": "int64", "minimum": 1, "maximum": math.MaxInt, "default": cfg.DefaultTopK},
				},
				"RequestID": object{
					"name": "X-Request-ID", "in": "header", "required": false,
					"description": "The request's id, echoed when it is 1-128 characters of [A-Za-z0-9._:-]; any other value is replaced by a generated id, not refused.",
					"schema":      str,
				},
			},
			"headers": object{
				"RequestID": object{"description": "The request's id, as in the body and the logs.", "required": true, "schema": object{"type": "string", "minLength": 1}},
				"RetryAfter": object{
					"description": "Seconds to wait before retrying.",
					"required":    true,
					"schema":      object{"type": "integer", "minimum": 1},
				},
			},
			"responses": object{
				"BadRequest": errorResponse("Malformed request: a request the HTTP parser refuses; on the predict routes also a bad top_k, "+
					"no image part, an empty body, a multipart body without a boundary or malformed.", false),
				"RequestTimeout": errorResponse("The request was not read within the read timeout.", false),
				"TooLarge": errorResponse(fmt.Sprintf("Body over %d bytes, an image over the byte limit, or more than %d batch items.",
					cfg.BodyLimit, cfg.MaxBatchItems), false),
				"UnsupportedMediaType": errorResponse("Not a supported image format (sniffed from the bytes), a Content-Type not accepted, or a compressed body.", false),
				"UnprocessableImage":   errorResponse("A corrupt image, too many pixels, or too small.", false),
				"Overloaded":           errorResponse("Too many requests in flight; shed.", true),
				"HeadersTooLarge":      errorResponse("The request's headers exceed the server's buffer.", false),
				"ClientClosedRequest":  errorResponse("The client closed its connection while the request ran: cancelled, and nobody reads this answer.", false),
				"Internal":             errorResponse("A bug; the details are in the log.", false),
				"BadGateway":           errorResponse("The inference backend answered something unusable.", false),
				"Unavailable":          errorResponse("Circuit breaker open or model not ready.", true),
				"DeadlineExceeded":     errorResponse("The request's deadline passed.", false),
			},
			"schemas": object{
				"Error": obj([]string{"error"}, object{"error": obj([]string{"code", "message", "request_id"}, object{
					"code":       object{"type": "string", "enum": codes},
					"message":    str,
					"request_id": str,
				})}),
				"Prediction": obj([]string{"label", "index", "confidence"}, object{
					"label":      str,
					"index":      index,
					"confidence": object{"type": "number", "minimum": 0, "maximum": 1},
				}),
				"StageTimings": obj([]string{"decode", "resize", "normalize", "inference", "postprocess", "total"}, object{
					"decode": ms, "resize": ms, "normalize": ms, "inference": ms, "postprocess": ms, "total": ms,
				}),
				"PredictResponse": obj([]string{"model", "version", "backend", "request_id", "predictions", "timings_ms"}, object{
					"model":       str,
					"version":     str,
					"backend":     object{"type": "string", "description": "the backend that answered: triton, or onnxruntime (also when it stood in for Triton)"},
					"request_id":  str,
					"predictions": predictions,
					"timings_ms":  ref("schemas", "StageTimings"),
				}),
				"ItemError": obj([]string{"code", "message"}, object{"code": object{"type": "string", "enum": kinds}, "message": str}),
				"BatchItem": batchItem,
				"BatchResponse": obj([]string{"model", "version", "request_id", "results", "timings_ms"}, object{
					"model":      str,
					"version":    str,
					"request_id": str,
					"results":    object{"type": "array", "items": ref("schemas", "BatchItem"), "minItems": 1, "maxItems": cfg.MaxBatchItems},
					"timings_ms": obj([]string{"total"}, object{"total": ms}),
				}),
				"Health": obj([]string{"status"}, object{"status": object{"type": "string", "enum": []string{"ok"}}}),
				"Ready": obj([]string{"status", "model", "version"}, object{
					"status": object{"type": "string", "enum": []string{"ready"}}, "model": str, "version": str,
				}),
				"NotReady": obj([]string{"status", "reason"}, object{
					"status": object{"type": "string", "enum": []string{"not_ready"}}, "reason": str,
				}),
				"Tensor": obj([]string{"name", "datatype", "shape"}, object{
					"name":     str,
					"datatype": object{"type": "string", "description": "KServe v2 datatype, e.g. FP32"},
					"shape":    object{"type": "array", "items": integer, "nullable": true},
				}),
				"Preprocess": obj(nil, object{
					"width":         integer,
					"height":        integer,
					"resize":        object{"type": "string", "enum": []string{"stretch", "shorter_crop", "letterbox"}},
					"shorter_side":  integer,
					"filter":        object{"type": "string", "enum": []string{"nearest", "bilinear", "bicubic"}},
					"fill":          triple(integer),
					"scale":         num,
					"mean":          triple(num),
					"std":           triple(num),
					"channel_order": object{"type": "string", "enum": []string{"rgb", "bgr"}},
					"layout":        object{"type": "string", "enum": []string{"nchw", "nhwc"}},
					"datatype":      object{"type": "string", "enum": []string{"FP32", "FP16", "UINT8"}},
					"dct_scaling":   object{"type": "boolean"},
				}),
				"Model": obj([]string{"name", "version", "backend", "labels", "preprocess"}, object{
					"name":             str,
					"version":          str,
					"backend":          str,
					"platform":         str,
					"max_batch_size":   integer,
					"input":            ref("schemas", "Tensor"),
					"output":           ref("schemas", "Tensor"),
					"labels":           object{"type": "array", "items": str},
					"output_is_logits": object{"type": "boolean"},
					"preprocess":       ref("schemas", "Preprocess"),
					"provenance": obj(nil, object{
						"sha256":  object{"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "sha256 of the model file (config.pbtxt model_sha256)"},
						"source":  object{"type": "string", "description": "where the weights were obtained (model_source)"},
						"license": object{"type": "string", "description": "the weights' licence (model_license)"},
						"mlflow_run_id": object{"type": "string", "pattern": "^[0-9a-f]{32}$",
							"description": "the MLflow run that logged the weights (mlflow_run_id, written by make publish-model)"},
						"mlflow_model_version": object{"type": "string", "pattern": "^[1-9][0-9]*$",
							"description": "the version of MLflow's registered model they were published as (mlflow_model_version)"},
					}),
				}),
			},
		},
	}
}

// marshalOpenAPI renders the document once, at start.
func marshalOpenAPI(cfg Config) ([]byte, error) {
	return json.Marshal(openAPIDocument(cfg))
}
