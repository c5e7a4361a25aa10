package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"text/tabwriter"
)

// checkImages is check's default: every valid test image of the k6 set (JPEG,
// progressive, EXIF-rotated, greyscale, 12 MP, PNG with and without alpha,
// lossy and lossless WebP) and the three preprocessing benchmark photos.
var checkImages = "loadtest/k6/images/fish_640x480.jpg,loadtest/k6/images/fish_1024x768_progressive.jpg," +
	"loadtest/k6/images/fish_480x640_exif6.jpg,loadtest/k6/images/fish_640x480_grey.jpg," +
	"loadtest/k6/images/fish_4032x3024.jpg,loadtest/k6/images/fish_800x600.png," +
	"loadtest/k6/images/fish_400x300_rgba.png,loadtest/k6/images/fish_640x480.webp," +
	"loadtest/k6/images/fish_256x256_lossless.webp,preprocess/testdata/bench"

// check sends every image once to every target and compares their top-1
// predictions with the first target's: same label, confidences within
// -tolerance. Both gateways claim Pillow's preprocessing, so they must agree.
func check(o *options, imgs []image, stdout io.Writer) error {
	client := &http.Client{Timeout: o.load.timeout}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "image")
	for _, t := range o.targets {
		fmt.Fprintf(tw, "\t%s top-1", t.Name)
	}
	fmt.Fprintln(tw, "\tmax |Δ confidence|\tagree")
	bad := 0
	for _, img := range imgs {
		body, ct := multipartBody("file", img)
		var first []prediction
		worst, agree := 0.0, true
		fmt.Fprint(tw, img.name)
		for i, t := range o.targets {
			preds, err := predictOnce(client, t.URL, body, ct)
			if err != nil {
				fmt.Fprintf(tw, "\t%v", err)
				agree = false
				continue
			}
			fmt.Fprintf(tw, "\t%s %.5f", preds[0].Label, preds[0].Confidence)
			if i == 0 {
				first = preds
				continue
			}
			if first == nil || preds[0].Label != first[0].Label {
				agree = false
				continue
			}
			worst = max(worst, maxConfidenceDiff(first, preds))
		}
		if worst > o.tolerance {
			agree = false
		}
		if !agree {
			bad++
		}
		fmt.Fprintf(tw, "\t%.2g\t%v\n", worst, agree)
	}
	_ = tw.Flush()
	if bad > 0 {
		return fmt.Errorf("%d of %d images: the targets disagree (or failed)", bad, len(imgs))
	}
	fmt.Fprintf(stdout, "all %d images: same top-1 on every target, confidences within %g\n", len(imgs), o.tolerance)
	return nil
}

func predictOnce(client *http.Client, url string, body []byte, ct string) ([]prediction, error) {
	resp, err := client.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil || len(a.Predictions) == 0 {
		return nil, fmt.Errorf("answer without predictions")
	}
	return a.Predictions, nil
}

// maxConfidenceDiff compares the confidences of the labels both answers list.
func maxConfidenceDiff(a, b []prediction) float64 {
	conf := map[string]float64{}
	for _, p := range a {
		conf[p.Label] = p.Confidence
	}
	worst := 0.0
	for _, p := range b {
		if c, ok := conf[p.Label]; ok {
			worst = max(worst, math.Abs(c-p.Confidence))
		}
	}
	return worst
}
