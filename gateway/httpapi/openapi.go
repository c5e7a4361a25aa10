package httpapi

import (
	"encoding/json"
	"fmt"
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

// errorStatuses names the component of each error response, by status.
var errorStatuses = map[int]string{
	http.StatusBadRequest:            "BadRequest",
	http.StatusRequestEntityTooLarge: "TooLarge",
	http.StatusUnsupportedMediaType:  "UnsupportedMediaType",
	http.StatusUnprocessableEntity:   "UnprocessableImage",
	http.StatusTooManyRequests:       "Overloaded",
	http.StatusInternalServerError:   "Internal",
	http.StatusBadGateway:            "BadGateway",
	http.StatusServiceUnavailable:    "Unavailable",
	http.StatusGatewayTimeout:        "DeadlineExceeded",
}

// openAPIDocument describes the routes New registers, in OpenAPI 3.0; a test
// checks that its paths and methods are exactly the app's routes.
func openAPIDocument(cfg Config) object {
	withErrors := func(ok object, statuses ...int) object {
		responses := object{"200": ok}
		for _, st := range statuses {
			responses[strconv.Itoa(st)] = ref("responses", errorStatuses[st])
		}
		return responses
	}
	okJSON := func(description, schema string) object {
		return object{
			"description": description,
			"headers":     object{"X-Request-ID": ref("headers", "RequestID")},
			"content":     jsonContent(schema),
		}
	}
	binary := object{"type": "string", "format": "binary"}
	requestParams := []any{ref("parameters", "TopK"), ref("parameters", "RequestID")}

	errorResponse := func(description string, retry bool) object {
		headers := object{"X-Request-ID": ref("headers", "RequestID")}
		if retry {
			headers["Retry-After"] = ref("headers", "RetryAfter")
		}
		return object{"description": description, "headers": headers, "content": jsonContent("Error")}
	}
	var codes []string
	for _, k := range gateway.Kinds() {
		codes = append(codes, k.String())
	}
	codes = append(codes, "not_found", "method_not_allowed", "request_timeout", "headers_too_large")

	str := object{"type": "string"}
	num := object{"type": "number"}
	integer := object{"type": "integer"}
	ms := object{"type": "number", "description": "milliseconds"}
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

	return object{
		"openapi": "3.0.3",
		"info": object{
			"title":       "Fish classifier gateway",
			"version":     "1.0.0",
			"description": "Image classification of fish species: bytes in, species out, every step measured.",
		},
		"paths": withDocsPaths(object{
			"/predict": object{"post": object{
				"operationId": "predict",
				"summary":     "Classify one image",
				"description": "The image comes as the multipart field `file` (or `image`), or as the raw body with an image/* or application/octet-stream Content-Type. Compressed bodies (Content-Encoding) are refused with 415.",
				"parameters":  requestParams,
				"requestBody": object{
					"required": true,
					"content": object{
						"multipart/form-data":      object{"schema": obj(nil, object{"file": binary, "image": binary})},
						"image/*":                  object{"schema": binary},
						"application/octet-stream": object{"schema": binary},
					},
				},
				"responses": withErrors(okJSON("The top-k predictions, highest first.", "PredictResponse"),
					400, 413, 415, 422, 429, 500, 502, 503, 504),
			}},
			"/predict/batch": object{"post": object{
				"operationId": "predictBatch",
				"summary":     "Classify several images in one request",
				"description": fmt.Sprintf("Every part named files, file, images or image is one image, in order; at most %d. Each item gets predictions or its own error; when every item failed with the same server-side error, the request answers that error's status.", cfg.MaxBatchItems),
				"parameters":  requestParams,
				"requestBody": object{
					"required": true,
					"content": object{"multipart/form-data": object{"schema": obj(nil, object{
						"files": object{"type": "array", "items": binary, "maxItems": cfg.MaxBatchItems},
					})}},
				},
				"responses": withErrors(okJSON("One result per image, in order.", "BatchResponse"),
					400, 413, 415, 429, 500, 502, 503, 504),
			}},
			"/health": object{"get": object{
				"operationId": "health",
				"summary":     "Liveness: the process serves",
				"responses":   object{"200": okJSON("Alive.", "Health")},
			}},
			"/ready": object{"get": object{
				"operationId": "ready",
				"summary":     "Readiness: the backend is live, the model ready, the breaker closed",
				"responses": object{
					"200": okJSON("Ready to classify.", "Ready"),
					"503": object{
						"description": "Not ready, with the reason.",
						"headers":     object{"X-Request-ID": ref("headers", "RequestID"), "Retry-After": ref("headers", "RetryAfter")},
						"content":     jsonContent("NotReady"),
					},
				},
			}},
			"/model": object{"get": object{
				"operationId": "model",
				"summary":     "The model served and the preprocessing in force",
				"responses":   object{"200": okJSON("The model.", "Model")},
			}},
			"/metrics": object{"get": object{
				"operationId": "metrics",
				"summary":     "Prometheus metrics",
				"responses": object{"200": object{
					"description": "Prometheus text exposition format.",
					"content":     object{"text/plain": object{"schema": str}},
				}},
			}},
			"/openapi.json": object{"get": object{
				"operationId": "openapi",
				"summary":     "This document",
				"responses": object{"200": object{
					"description": "OpenAPI 3.0 document.",
					"content":     object{"application/json": object{"schema": object{"type": "object"}}},
				}},
			}},
		}),
		"components": object{
			"parameters": object{
				"TopK": object{
					"name": "top_k", "in": "query", "required": false,
					"description": "How many predictions to return; clamped to the number of classes.",
					"schema":      object{"type": "integer", "minimum": 1, "default": cfg.DefaultTopK},
				},
				"RequestID": object{
					"name": "X-Request-ID", "in": "header", "required": false,
					"description": "Echoed when acceptable, else generated.",
					"schema":      object{"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
				},
			},
			"headers": object{
				"RequestID": object{"description": "The request's id, as in the body and the logs.", "schema": str},
				"RetryAfter": object{
					"description": "Seconds to wait before retrying.",
					"schema":      object{"type": "integer", "minimum": 1},
				},
			},
			"responses": object{
				"BadRequest":           errorResponse("Malformed request: bad top_k, missing image, malformed multipart body.", false),
				"TooLarge":             errorResponse(fmt.Sprintf("Body over %d bytes, image over the byte limit, or more than %d batch items.", cfg.BodyLimit, cfg.MaxBatchItems), false),
				"UnsupportedMediaType": errorResponse("Not a supported image format (sniffed from the bytes), a Content-Type not accepted, or a compressed body.", false),
				"UnprocessableImage":   errorResponse("A corrupt image, too many pixels, or too small.", false),
				"Overloaded":           errorResponse("Too many requests in flight; shed.", true),
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
					"index":      integer,
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
					"predictions": object{"type": "array", "items": ref("schemas", "Prediction")},
					"timings_ms":  ref("schemas", "StageTimings"),
				}),
				"ItemError": obj([]string{"code", "message"}, object{"code": str, "message": str}),
				"BatchItem": obj([]string{"index", "filename"}, object{
					"index":       integer,
					"filename":    str,
					"predictions": object{"type": "array", "items": ref("schemas", "Prediction")},
					"backend":     str,
					"error":       ref("schemas", "ItemError"),
				}),
				"BatchResponse": obj([]string{"model", "version", "request_id", "results", "timings_ms"}, object{
					"model":      str,
					"version":    str,
					"request_id": str,
					"results":    object{"type": "array", "items": ref("schemas", "BatchItem")},
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
				}),
			},
		},
	}
}

// marshalOpenAPI renders the document once, at start.
func marshalOpenAPI(cfg Config) ([]byte, error) {
	return json.Marshal(openAPIDocument(cfg))
}
