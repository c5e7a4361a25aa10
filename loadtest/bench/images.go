package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fish-classifier/fish-classifier/gateway/modelconfig"
	"github.com/fish-classifier/fish-classifier/internal/formdata"
	"github.com/fish-classifier/fish-classifier/preprocess"
)

// defaultImages are photo-like JPEGs every gateway classifies (no 12 MP photo: at
// 200 connections its decoded pixels alone would be 7 GB, and one of them costs
// as much CPU as ~25 of these; add it with -images to measure it). Relative to
// the repository root.
var defaultImages = []string{
	"loadtest/k6/images/fish_640x480.jpg",
	"loadtest/k6/images/fish_1024x768_progressive.jpg",
	"loadtest/k6/images/fish_480x640_exif6.jpg",
	"preprocess/testdata/bench/photo_640x480.jpg",
	"preprocess/testdata/bench/photo_1024x768.jpg",
}

// image is one test image, read once.
type image struct {
	name string
	data []byte
}

// loadImages reads the comma-separated list (files, or directories whose
// .jpg/.jpeg/.png/.webp files are all taken), or the default set under root.
func loadImages(list, root string) ([]image, error) {
	var paths []string
	if strings.TrimSpace(list) == "" {
		for _, p := range defaultImages {
			paths = append(paths, filepath.Join(root, p))
		}
	} else {
		for _, p := range strings.Split(list, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			st, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			if !st.IsDir() {
				paths = append(paths, p)
				continue
			}
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".jpg", ".jpeg", ".png", ".webp":
					paths = append(paths, filepath.Join(p, e.Name()))
				}
			}
		}
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no images in %q", list)
	}
	imgs := make([]image, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("%s is empty", p)
		}
		imgs = append(imgs, image{name: filepath.Base(p), data: b})
	}
	return imgs, nil
}

// mediaType guesses a part's Content-Type from the file name, as a browser or
// curl would send it (the Go gateway sniffs the bytes anyway).
func mediaType(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".png":
		return "image/png"
	case ".webp":
		return "image/webp"
	}
	return "application/octet-stream"
}

// multipartBody builds one request body holding imgs, each in a part named
// field ("file" for POST /predict, "files" for POST /predict/batch).
func multipartBody(field string, imgs ...image) (body []byte, contentType string) {
	parts := make([]formdata.Part, len(imgs))
	for i, img := range imgs {
		parts[i] = formdata.Part{Field: field, Filename: img.name, ContentType: mediaType(img.name), Data: img.data}
	}
	body, contentType, _ = formdata.Encode(parts...) // into memory: cannot fail
	return body, contentType
}

// requestBodies returns, with their content types (each body has its own
// multipart boundary), one body per image for single-image requests (batch 0),
// or one body per image for batches of n starting at that image, so every
// target cycles through the same images in the same order.
func requestBodies(imgs []image, batch int) (bodies [][]byte, contentTypes []string) {
	for i := range imgs {
		var b []byte
		var ct string
		if batch <= 0 {
			b, ct = multipartBody("file", imgs[i])
		} else {
			group := make([]image, batch)
			for j := range group {
				group[j] = imgs[(i+j)%len(imgs)]
			}
			b, ct = multipartBody("files", group...)
		}
		bodies, contentTypes = append(bodies, b), append(contentTypes, ct)
	}
	return bodies, contentTypes
}

// tensors preprocesses every image as the model's configuration asks (the
// contract in triton-models/<model>/config.pbtxt, read as the gateway reads
// it): the exact bytes the gateway would send Triton, for direct calls.
func tensors(imgs []image, model string) ([][]byte, error) {
	mc, err := modelconfig.ReadFile(filepath.Join(repoRoot(), "triton-models", model, "config.pbtxt"))
	if err != nil {
		return nil, err
	}
	d, err := modelconfig.Describe(mc)
	if err != nil {
		return nil, fmt.Errorf("config.pbtxt: %w", err)
	}
	p, err := preprocess.New(d.Info.Preprocess, preprocess.DefaultLimits())
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(imgs))
	for i, img := range imgs {
		out[i] = make([]byte, p.TensorBytes())
		if _, err := p.Process(img.data, out[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", img.name, err)
		}
	}
	return out, nil
}
