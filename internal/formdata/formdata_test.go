package formdata

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	parts := []Part{
		File("files", `a "quoted" name.jpg`, []byte("\xff\xd8jpeg")),
		{Field: "files", Filename: "b.png", ContentType: "image/png", Data: []byte("png")},
		{Field: "top_k", Data: []byte("3")},
		{Field: "files", Filename: "c", Header: textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}, Data: []byte("=41")},
	}
	body, ct, err := Encode(parts...)
	if err != nil {
		t.Fatal(err)
	}
	media, params, err := mime.ParseMediaType(ct)
	if err != nil || media != "multipart/form-data" {
		t.Fatalf("content type %q: %v", ct, err)
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	wantCT := []string{"application/octet-stream", "image/png", "", "application/octet-stream"}
	for i, want := range parts {
		p, err := r.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		data, _ := io.ReadAll(p)
		if p.FormName() != want.Field || p.FileName() != want.Filename || !bytes.Equal(data, want.Data) {
			t.Errorf("part %d: %q %q %q, want %q %q %q", i, p.FormName(), p.FileName(), data, want.Field, want.Filename, want.Data)
		}
		if got := p.Header.Get("Content-Type"); got != wantCT[i] {
			t.Errorf("part %d: Content-Type %q, want %q", i, got, wantCT[i])
		}
		if i == 3 && p.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
			t.Errorf("part %d: the extra header is missing", i)
		}
	}
	if _, err := r.NextPart(); err != io.EOF {
		t.Errorf("after the last part: %v, want EOF", err)
	}
}
