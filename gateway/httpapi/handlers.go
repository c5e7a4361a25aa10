package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fish-classifier/fish-classifier/gateway"
)

// Multipart field names that carry images: FastAPI's "file" first.
var (
	singleFields = map[string]bool{"file": true, "image": true}
	batchFields  = map[string]bool{"files": true, "file": true, "images": true, "image": true}
)

// predictResponse is the answer of POST /predict.
type predictResponse struct {
	Model       string               `json:"model"`
	Version     string               `json:"version"`
	Backend     string               `json:"backend"`
	RequestID   string               `json:"request_id"`
	Predictions []gateway.Prediction `json:"predictions"`
	Timings     stageTimings         `json:"timings_ms"`
}

// stageTimings are the milliseconds one image spent in each stage; Total is the
// whole request as the handler saw it.
type stageTimings struct {
	Decode      float64 `json:"decode"`
	Resize      float64 `json:"resize"`
	Normalize   float64 `json:"normalize"`
	Inference   float64 `json:"inference"`
	Postprocess float64 `json:"postprocess"`
	Total       float64 `json:"total"`
}

// batchResponse is the answer of POST /predict/batch.
type batchResponse struct {
	Model     string      `json:"model"`
	Version   string      `json:"version"`
	RequestID string      `json:"request_id"`
	Results   []batchItem `json:"results"`
	Timings   struct {
		Total float64 `json:"total"`
	} `json:"timings_ms"`
}

// batchItem is one image's outcome: predictions or an error, never both.
type batchItem struct {
	Index       int                  `json:"index"`
	Filename    string               `json:"filename"`
	Predictions []gateway.Prediction `json:"predictions,omitempty"`
	Backend     string               `json:"backend,omitempty"`
	Error       *itemError           `json:"error,omitempty"`
}

type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// predict answers POST /predict: one image, from a multipart field "file" or
// "image", or a raw image/* or application/octet-stream body.
func (s *Server) predict(c *fiber.Ctx, body []byte) error {
	start := time.Now()
	ctx, done := s.requestContext(c)
	defer done()
	k, err := s.topK(c)
	if err != nil {
		return err
	}
	image, err := singleImage(c, body)
	if err != nil {
		return err
	}
	res, err := s.cl.Classify(ctx, image, k)
	if err != nil {
		return fmt.Errorf("classify: %w", canceledByClient(ctx, err))
	}
	t := res.Timings
	return c.JSON(predictResponse{
		Model:       res.Model,
		Version:     res.Version,
		Backend:     res.Backend,
		RequestID:   stateOf(c).id,
		Predictions: res.Predictions,
		Timings: stageTimings{
			Decode:      milliseconds(t.Decode),
			Resize:      milliseconds(t.Resize),
			Normalize:   milliseconds(t.Normalize),
			Inference:   milliseconds(t.Inference),
			Postprocess: milliseconds(t.Postprocess),
			Total:       milliseconds(time.Since(start)),
		},
	})
}

// predictBatch answers POST /predict/batch: every image part of a multipart
// body, classified in one ClassifyBatch call, each with its result or error in
// order.
func (s *Server) predictBatch(c *fiber.Ctx, body []byte) error {
	start := time.Now()
	ctx, done := s.requestContext(c)
	defer done()
	k, err := s.topK(c)
	if err != nil {
		return err
	}
	boundary, err := multipartBoundary(c)
	if err != nil {
		return err
	}
	if boundary == "" {
		return gateway.Errorf(gateway.KindUnsupportedMedia,
			"a batch is a multipart/form-data body with one file part per image (fields files, file, images or image)")
	}
	parts, total, err := readParts(body, boundary, batchFields, s.cfg.MaxBatchItems)
	if err != nil {
		return err
	}
	if total > s.cfg.MaxBatchItems {
		return gateway.Errorf(gateway.KindTooLarge,
			"a batch carries at most %d images (MaxBatchItems); this one has %d", s.cfg.MaxBatchItems, total)
	}
	if len(parts) == 0 {
		return gateway.Errorf(gateway.KindInvalid,
			"no images: send one or more file parts named files, file, images or image")
	}
	s.metrics.batchItems.Observe(float64(len(parts)))

	images := make([][]byte, len(parts))
	for i, p := range parts {
		images[i] = p.data
	}
	results, errs := s.cl.ClassifyBatch(ctx, images, k)
	if len(results) != len(images) || len(errs) != len(images) {
		return fmt.Errorf("classify batch: %d results and %d errors for %d images", len(results), len(errs), len(images))
	}
	if clientGone(ctx) {
		// Items cancelled with the call would answer 200 with per-item
		// "canceled" errors, to nobody: the request as a whole is canceled.
		for _, err := range errs {
			if err != nil {
				return fmt.Errorf("classify batch: %w", canceledByClient(ctx, err))
			}
		}
	}
	if err := uniformServerFailure(errs); err != nil {
		return fmt.Errorf("classify batch: %w", err)
	}

	st := stateOf(c)
	resp := batchResponse{RequestID: st.id, Results: make([]batchItem, len(parts))}
	for i, p := range parts {
		item := batchItem{Index: i, Filename: p.filename}
		if err := errs[i]; err != nil {
			kind := gateway.KindOf(err)
			item.Error = &itemError{Code: kind.String(), Message: gateway.PublicMessage(err)}
			if serverSide(kind) {
				st.itemErrs = append(st.itemErrs, fmt.Sprintf("item %d: %v", i, err))
			}
		} else {
			item.Predictions = results[i].Predictions
			item.Backend = results[i].Backend
			if resp.Model == "" {
				resp.Model, resp.Version = results[i].Model, results[i].Version
			}
		}
		resp.Results[i] = item
	}
	if resp.Model == "" {
		m := s.cl.Model()
		resp.Model, resp.Version = m.Name, m.Version
	}
	resp.Timings.Total = milliseconds(time.Since(start))
	return c.JSON(resp)
}

// serverSide says whether a kind is the server's (or its backend's) failure
// rather than the client's.
func serverSide(k gateway.Kind) bool {
	switch k {
	case gateway.KindUnavailable, gateway.KindDeadline, gateway.KindBadGateway, gateway.KindInternal:
		return true
	}
	return false
}

// uniformServerFailure returns the first error when every item failed with
// the same server-side kind: the request as a whole then failed, and answers
// that error's status rather than 200.
func uniformServerFailure(errs []error) error {
	if len(errs) == 0 || errs[0] == nil {
		return nil
	}
	kind := gateway.KindOf(errs[0])
	if !serverSide(kind) {
		return nil
	}
	for _, err := range errs[1:] {
		if err == nil || gateway.KindOf(err) != kind {
			return nil
		}
	}
	return errs[0]
}

// topK reads the top_k query parameter: absent means DefaultTopK; anything but
// an integer ≥ 1 is a 400. Clamping to the number of classes is the
// classifier's.
func (s *Server) topK(c *fiber.Ctx) (int, error) {
	args := c.Request().URI().QueryArgs()
	if !args.Has("top_k") {
		return s.cfg.DefaultTopK, nil
	}
	raw := string(args.Peek("top_k"))
	k, err := strconv.Atoi(raw)
	if err != nil || k < 1 {
		return 0, gateway.Errorf(gateway.KindInvalid, "top_k %.32q is not an integer of at least 1", raw)
	}
	return k, nil
}

// singleImage returns the image of a /predict request whose body is body.
func singleImage(c *fiber.Ctx, body []byte) ([]byte, error) {
	boundary, err := multipartBoundary(c)
	if err != nil {
		return nil, err
	}
	if boundary != "" {
		parts, _, err := readParts(body, boundary, singleFields, 1)
		if err != nil {
			return nil, err
		}
		if len(parts) == 0 {
			return nil, gateway.Errorf(gateway.KindInvalid, `no image: the multipart body has no field "file" (or "image")`)
		}
		return parts[0].data, nil
	}
	mediaType, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if !strings.HasPrefix(mediaType, "image/") && mediaType != "application/octet-stream" {
		return nil, gateway.Errorf(gateway.KindUnsupportedMedia,
			"Content-Type %.64q is not accepted: send multipart/form-data with a field \"file\", or the image itself as image/* or application/octet-stream",
			c.Get(fiber.HeaderContentType))
	}
	if len(body) == 0 { // raw: Content-Encoding was refused already
		return nil, gateway.Errorf(gateway.KindInvalid, "empty body: send the image")
	}
	return body, nil
}

// multipartBoundary returns the boundary of a multipart/form-data request, ""
// for any other content type, or an error for a multipart one without a
// boundary.
func multipartBoundary(c *fiber.Ctx) (string, error) {
	mediaType, params, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	if err != nil || mediaType != "multipart/form-data" {
		return "", nil
	}
	if params["boundary"] == "" {
		return "", gateway.Errorf(gateway.KindInvalid, "multipart/form-data without a boundary")
	}
	return params["boundary"], nil
}

// upload is one image part of a multipart body.
type upload struct {
	filename string
	data     []byte
}

// readParts reads the parts of body named in fields, in order, at most limit of
// them; total counts all such parts, so the caller can name how many were sent.
// Other parts are skipped.
//
// A part's bytes are a slice of body, not a copy, whenever they stand in it as
// they are (no transfer encoding, which is every client's case): at 200
// uploads in flight, copies were a quarter of the gateway's heap. The body
// lives until the handler returns, as long as the parts are used.
func readParts(body []byte, boundary string, fields map[string]bool, limit int) (parts []upload, total int, err error) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	cursor := 0 // the parts' bytes are searched in body from here on
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts, total, nil
		}
		if err != nil {
			return nil, 0, gateway.Errorf(gateway.KindInvalid, "malformed multipart body: %v", err)
		}
		if !fields[p.FormName()] {
			continue
		}
		total++
		if total > limit {
			if limit == 1 {
				return parts, total, nil // /predict takes the first image
			}
			continue // count the rest without reading them
		}
		data, next, err := partBytes(p, body, cursor)
		if err != nil {
			return nil, 0, gateway.Errorf(gateway.KindInvalid, "malformed multipart body: part %d: %v", total-1, err)
		}
		cursor = next
		parts = append(parts, upload{filename: p.FileName(), data: data})
	}
}

// partBytes reads the part r to its end and returns its bytes: the slice of
// body, at or after cursor, that holds exactly them when there is one (the
// next cursor is then its end), else a copy. The first bytes locate the
// candidate; every later chunk read is compared with it, so a coincidental
// match falls back to the copy, never to wrong bytes.
func partBytes(r io.Reader, body []byte, cursor int) (data []byte, next int, err error) {
	var chunk [32 << 10]byte
	n, eof := 0, false
	for n < len(chunk) && !eof {
		m, err := r.Read(chunk[n:])
		n += m
		switch {
		case errors.Is(err, io.EOF):
			eof = true
		case err != nil:
			return nil, cursor, err
		}
	}
	head := chunk[:n]
	if n == 0 {
		return []byte{}, cursor, nil
	}
	start := -1
	if i := bytes.Index(body[cursor:], head[:min(n, 64)]); i >= 0 {
		start = cursor + i
	}
	// Compare what was read so far, then each further chunk, with body.
	end := start
	matches := func(b []byte) bool {
		if start < 0 || end+len(b) > len(body) || !bytes.Equal(body[end:end+len(b)], b) {
			return false
		}
		end += len(b)
		return true
	}
	if matches(head) && eof {
		return body[start:end:end], end, nil
	}
	if eof {
		return append([]byte(nil), head...), cursor, nil
	}
	// Longer than one chunk (or not found yet): keep reading and comparing;
	// on the first difference switch to copying.
	var copied []byte
	if start < 0 || end-start != n {
		copied = append([]byte(nil), head...)
	}
	for {
		m, err := r.Read(chunk[:])
		if m > 0 {
			switch {
			case copied != nil:
				copied = append(copied, chunk[:m]...)
			case !matches(chunk[:m]):
				copied = append(append([]byte(nil), body[start:end]...), chunk[:m]...)
			}
		}
		if errors.Is(err, io.EOF) {
			if copied != nil {
				return copied, cursor, nil
			}
			return body[start:end:end], end, nil
		}
		if err != nil {
			return nil, cursor, err
		}
	}
}

// health answers GET /health: the process serves.
func (s *Server) health(c *fiber.Ctx) error {
	return c.JSON(statusBody{Status: "ok"})
}

type statusBody struct {
	Status string `json:"status"`
}

type readyBody struct {
	Status  string `json:"status"`
	Model   string `json:"model"`
	Version string `json:"version"`
}

type notReadyBody struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// ready answers GET /ready: 200 when the classifier's backend can serve, else
// 503 with the reason and Retry-After.
func (s *Server) ready(c *fiber.Ctx) error {
	ctx, done := s.requestContext(c)
	defer done()
	if err := s.cl.Ready(ctx); err != nil {
		if clientGone(ctx) {
			return fmt.Errorf("ready: %w", canceledByClient(ctx, err))
		}
		st := stateOf(c)
		st.err, st.code = err, gateway.KindUnavailable.String()
		c.Set(fiber.HeaderRetryAfter, retryAfterSeconds(max(gateway.RetryAfter(err), time.Second)))
		return c.Status(fiber.StatusServiceUnavailable).JSON(notReadyBody{Status: "not_ready", Reason: gateway.PublicMessage(err)})
	}
	m := s.cl.Model()
	return c.JSON(readyBody{Status: "ready", Model: m.Name, Version: m.Version})
}

// modelBody is the answer of GET /model: the model and the preprocessing in
// force.
type modelBody struct {
	gateway.ModelInfo
	Preprocess preprocessBody `json:"preprocess"`
}

// preprocessBody spells out a preprocess.Spec with the enums' names.
type preprocessBody struct {
	Width        int        `json:"width"`
	Height       int        `json:"height"`
	Resize       string     `json:"resize"`
	ShorterSide  int        `json:"shorter_side"`
	Filter       string     `json:"filter"`
	Fill         [3]int     `json:"fill"`
	Scale        float32    `json:"scale"`
	Mean         [3]float32 `json:"mean"`
	Std          [3]float32 `json:"std"`
	ChannelOrder string     `json:"channel_order"`
	Layout       string     `json:"layout"`
	DataType     string     `json:"datatype"`
	DCTScaling   bool       `json:"dct_scaling"`
}

// model answers GET /model.
func (s *Server) model(c *fiber.Ctx) error {
	m := s.cl.Model()
	if m.Labels == nil {
		m.Labels = []string{}
	}
	p := m.Preprocess
	return c.JSON(modelBody{
		ModelInfo: m,
		Preprocess: preprocessBody{
			Width: p.Width, Height: p.Height,
			Resize: p.Resize.String(), ShorterSide: p.ShorterSide, Filter: p.Filter.String(),
			Fill:  [3]int{int(p.Fill[0]), int(p.Fill[1]), int(p.Fill[2])},
			Scale: p.Scale, Mean: p.Mean, Std: p.Std,
			ChannelOrder: p.Order.String(), Layout: p.Layout.String(), DataType: p.DataType.String(),
			DCTScaling: p.AllowDCTScaling,
		},
	})
}

// openAPIDocument answers GET /openapi.json.
func (s *Server) openAPIDocument(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(s.openAPI)
}
