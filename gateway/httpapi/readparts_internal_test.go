package httpapi

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/textproto"
	"testing"
	"unsafe"

	"github.com/fish-classifier/fish-classifier/internal/formdata"
)

// multipartOf builds a body with one part per content, named "files"; qp
// marks parts sent quoted-printable (their bytes do not stand in the body).
func multipartOf(t *testing.T, contents [][]byte, qp map[int]bool) ([]byte, string) {
	t.Helper()
	parts := make([]formdata.Part, len(contents))
	for i, c := range contents {
		parts[i] = formdata.File("files", fmt.Sprintf("f%d", i), c)
		if qp[i] {
			parts[i].Header = textproto.MIMEHeader{"Content-Transfer-Encoding": {"quoted-printable"}}
			parts[i].Data = []byte("=" + fmt.Sprintf("%02X", c[0]) + string(c[1:]))
		}
	}
	body, contentType, err := formdata.Encode(parts...)
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	return body, params["boundary"]
}

// inside reports whether b's bytes lie in body's memory.
func inside(b, body []byte) bool {
	if len(b) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&body[0]))
	return p >= lo && p < lo+uintptr(len(body))
}

func TestReadPartsSlicesTheBodyAndStaysExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	big := random(200 << 10) // several 32 KiB chunks
	tests := []struct {
		name      string
		contents  [][]byte
		qp        map[int]bool
		wantAlias []bool
	}{
		{"one small part", [][]byte{random(100)}, nil, []bool{true}},
		{"one part over several chunks", [][]byte{big}, nil, []bool{true}},
		{"three parts", [][]byte{random(10), big, random(5000)}, nil, []bool{true, true, true}},
		{"identical parts", [][]byte{[]byte("same bytes"), []byte("same bytes")}, nil, []bool{true, true}},
		{"content that also appears in the headers", [][]byte{[]byte("form-data")}, nil, []bool{true}},
		{"empty part", [][]byte{{}, random(20)}, nil, []bool{false, true}},
		{"quoted-printable part is copied", [][]byte{[]byte("xhello"), random(50)}, map[int]bool{0: true}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, boundary := multipartOf(t, tt.contents, tt.qp)
			parts, total, err := readParts(body, boundary, map[string]bool{"files": true}, 100)
			if err != nil {
				t.Fatal(err)
			}
			if total != len(tt.contents) || len(parts) != len(tt.contents) {
				t.Fatalf("total %d, %d parts; want %d", total, len(parts), len(tt.contents))
			}
			for i, p := range parts {
				if !bytes.Equal(p.data, tt.contents[i]) {
					t.Errorf("part %d: %d bytes differ from the %d sent", i, len(p.data), len(tt.contents[i]))
				}
				if got := inside(p.data, body); got != tt.wantAlias[i] {
					t.Errorf("part %d: a slice of the body = %v, want %v", i, got, tt.wantAlias[i])
				}
				if inside(p.data, body) && cap(p.data) != len(p.data) {
					t.Errorf("part %d: cap %d > len %d: an append would write into the body", i, cap(p.data), len(p.data))
				}
			}
		})
	}
}

func TestReadPartsRefusesATruncatedPart(t *testing.T) {
	body := []byte("--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + string(bytes.Repeat([]byte("a"), 70000)))
	if _, _, err := readParts(body, "xyz", map[string]bool{"file": true}, 1); err == nil {
		t.Fatal("a part without its closing boundary was accepted")
	}
}
