// Package httpapi is the gateway's HTTP API on fiber: the routes of the
// README's API section (predict, batch predict, health, readiness, model,
// metrics, OpenAPI) and the interactive API page on the OpenAPI document (docs.go,
// GET /docs), request parsing, the body, time and concurrency limits, request ids,
// the access log, request metrics, the one error handler that turns an
// error's kind into a status and a JSON body, and the cancellation of a request
// whose client closed its connection (disconnect.go).
//
// It imports the root package gateway and nothing of its siblings; main builds a
// *gateway.Classifier and hands it to New.
package httpapi
