// Package formdata builds multipart/form-data bodies, the upload format of the
// gateway's predict routes: the one builder of the tests and load tools.
package formdata

import (
	"bytes"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// quote escapes a parameter value as mime/multipart's CreateFormFile does.
var quote = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// Part is one field of a form.
type Part struct {
	// Field is the form field's name ("file", "files", "top_k"...).
	Field string
	// Filename makes the part a file upload; empty: a plain form field.
	Filename string
	// ContentType of a file part (default application/octet-stream, as a
	// browser sends a file of unknown type); a plain field has none unless set.
	ContentType string
	// Header holds extra part headers (e.g. Content-Transfer-Encoding).
	Header textproto.MIMEHeader
	Data   []byte
}

// File is a file part.
func File(field, filename string, data []byte) Part {
	return Part{Field: field, Filename: filename, Data: data}
}

// Encode returns the body holding parts, in order, and its Content-Type
// (multipart/form-data with the body's boundary).
func Encode(parts ...Part) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := `form-data; name="` + quote.Replace(p.Field) + `"`
		if p.Filename != "" {
			disp += `; filename="` + quote.Replace(p.Filename) + `"`
		}
		h.Set("Content-Disposition", disp)
		ct := p.ContentType
		if ct == "" && p.Filename != "" {
			ct = "application/octet-stream"
		}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		for k, vs := range p.Header {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := pw.Write(p.Data); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), w.FormDataContentType(), nil
}
