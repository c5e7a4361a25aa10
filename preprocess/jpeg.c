//go:build cgo

// The libjpeg-turbo side of package preprocess's JPEG decoder: see jpeg_cgo.go.

#include <stdlib.h>
#include <string.h>
#include <jerror.h>

#include "jpeg.h"

// fc_fail records why the decode stops and jumps back to the fc_jpeg_* function Go
// called. It is only ever called from C code running inside one of them.
__attribute__((noreturn))
static void fc_fail(j_common_ptr cinfo, int status, const char *msg) {
	fc_error_mgr *err = (fc_error_mgr *)cinfo->err;
	err->status = status;
	snprintf(err->res->msg, sizeof err->res->msg, "%s", msg);
	longjmp(err->jump, 1);
}

// fc_unsupported tells the JPEG variants libjpeg cannot decode from damage.
static int fc_unsupported(int code) {
	switch (code) {
	case JERR_BAD_PRECISION:         // 12- and 16-bit samples
	case JERR_SOF_UNSUPPORTED:       // lossless and hierarchical processes
	case JERR_ARITH_NOTIMPL:         // arithmetic coding, where not compiled in
	case JERR_NOT_COMPILED:
	case JERR_CONVERSION_NOTIMPL:
	case JERR_CCIR601_NOTIMPL:
	case JERR_FRACT_SAMPLE_NOTIMPL:  // non-integral sampling factor ratios
		return 1;
	}
	return 0;
}

static void fc_error_exit(j_common_ptr cinfo) {
	char buf[JMSG_LENGTH_MAX];
	(*cinfo->err->format_message)(cinfo, buf);
	fc_fail(cinfo, fc_unsupported(cinfo->err->msg_code) ? FC_UNSUPPORTED : FC_CORRUPT, buf);
}

// fc_emit_message replaces libjpeg's, which prints warnings to stderr. Trace
// messages (msg_level >= 0) are dropped. Warnings are corrupt data libjpeg knows
// how to get past: tolerated, as Pillow does, and counted. A premature end of
// file is the exception: libjpeg would pad the picture with grey, Pillow raises
// "image file is truncated", and so do we.
static void fc_emit_message(j_common_ptr cinfo, int msg_level) {
	fc_error_mgr *err = (fc_error_mgr *)cinfo->err;
	char buf[JMSG_LENGTH_MAX], msg[sizeof err->res->msg];
	if (msg_level >= 0)
		return;
	err->pub.num_warnings++;
	if (err->pub.msg_code == JWRN_JPEG_EOF) {
		(*cinfo->err->format_message)(cinfo, buf);
		snprintf(msg, sizeof msg, "truncated: %s", buf);
		fc_fail(cinfo, FC_CORRUPT, msg);
	}
	if (err->pub.num_warnings > err->max_warnings) {
		(*cinfo->err->format_message)(cinfo, buf);
		snprintf(msg, sizeof msg, "more than %d warnings of corrupt data, the last: %s",
			err->max_warnings, buf);
		fc_fail(cinfo, FC_CORRUPT, msg);
	}
}

static void fc_output_message(j_common_ptr cinfo) { (void)cinfo; }

// fc_progress_monitor bounds the number of scans. Every scan of a progressive or
// multi-scan file makes libjpeg pass over all the blocks of its components, so a
// small file of thousands of tiny scans costs thousands of passes over the picture.
static void fc_progress_monitor(j_common_ptr cinfo) {
	fc_progress_mgr *prog = (fc_progress_mgr *)cinfo->progress;
	fc_error_mgr *err = (fc_error_mgr *)cinfo->err;
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	char msg[sizeof err->res->msg];
	if (d->input_scan_number > prog->max_scans) {
		snprintf(msg, sizeof msg,
			"more than %d scans (a progressive JPEG with too many scans takes too long to decode)",
			prog->max_scans);
		fc_fail(cinfo, FC_CORRUPT, msg);
	}
}

// fc_muldiv255 is Pillow's MULDIV255: a*b/255, rounded.
static inline int fc_muldiv255(int a, int b) {
	int t = a * b + 128;
	return ((t >> 8) + t) >> 8;
}

// fc_cmyk_row converts one row of libjpeg's CMYK output to RGB as Pillow does:
// Pillow reads every 4-component JPEG with the "CMYK;I" raw mode (Adobe's
// inverted polarity, with or without an Adobe marker), so its C, M, Y, K are 255
// minus libjpeg's samples, then convert("RGB") computes, per channel,
// nk = 255 - K and nk - MULDIV255(C, nk). With v the libjpeg samples that is
// nk = v[3] and v[3] - MULDIV255(255 - v[c], v[3]).
static void fc_cmyk_row(const JSAMPLE *in, unsigned char *out, JDIMENSION w) {
	for (JDIMENSION x = 0; x < w; x++, in += 4, out += 3) {
		int nk = in[3];
		for (int c = 0; c < 3; c++) {
			int v = nk - fc_muldiv255(255 - in[c], nk);
			out[c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
}

#define FC_ROWS 16


fc_jpeg *fc_jpeg_new(void) { return calloc(1, sizeof(fc_jpeg)); }

void fc_jpeg_free(fc_jpeg *j) {
	if (j->created)
		jpeg_destroy_decompress(&j->cinfo);
	free(j);
}

// fc_jpeg_open reads the header of data (size bytes, which must stay valid and
// unmoved until fc_jpeg_free), checks it against what the caller read before,
// and starts a decode at a scale of num/8 with Pillow's parameters.
//
// When crop_x1 > crop_x0, only the output columns [crop_x0, crop_x1) and rows
// [crop_y0, crop_y1) are wanted: libjpeg-turbo then skips the inverse DCT, the
// upsampling and the colour conversion of the rest (jpeg_crop_scanline widens the
// columns to whole iMCUs: res.out_x0 and res.out_cw say which it decodes). The
// rows above are skipped here, those below by fc_jpeg_finish; skipped rows are
// still entropy-decoded, so corrupt or truncated data is found as in a full decode.
int fc_jpeg_open(fc_jpeg *j, const unsigned char *data, unsigned long size,
		int want_w, int want_h, int num, int crop_x0, int crop_y0, int crop_x1, int crop_y1,
		int max_scans, int max_warnings) {
	j_decompress_ptr cinfo = &j->cinfo;
	char msg[sizeof j->res.msg];
	j->err.res = &j->res;
	j->err.max_warnings = max_warnings;
	j->err.status = FC_CORRUPT;
	if (setjmp(j->err.jump))
		return j->err.status;
	cinfo->err = jpeg_std_error(&j->err.pub);
	j->err.pub.error_exit = fc_error_exit;
	j->err.pub.emit_message = fc_emit_message;
	j->err.pub.output_message = fc_output_message;
	j->created = 1; // jpeg_destroy_decompress copes with a half-created decompressor
	jpeg_create_decompress(cinfo);
	j->prog.pub.progress_monitor = fc_progress_monitor;
	j->prog.max_scans = max_scans;
	cinfo->progress = &j->prog.pub;
	jpeg_mem_src(cinfo, data, size);

	jpeg_read_header(cinfo, TRUE);
	if (cinfo->image_width != (JDIMENSION)want_w || cinfo->image_height != (JDIMENSION)want_h) {
		snprintf(msg, sizeof msg, "the frame is %u×%u, the header read before declared %d×%d",
			cinfo->image_width, cinfo->image_height, want_w, want_h);
		fc_fail((j_common_ptr)cinfo, FC_CORRUPT, msg);
	}
	switch (cinfo->jpeg_color_space) {
	case JCS_GRAYSCALE:
	case JCS_YCbCr:
	case JCS_RGB:
		cinfo->out_color_space = JCS_RGB;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		cinfo->out_color_space = JCS_CMYK;
		break;
	default:
		snprintf(msg, sizeof msg, "unsupported %d-component colour space", cinfo->num_components);
		fc_fail((j_common_ptr)cinfo, FC_UNSUPPORTED, msg);
	}
	// Pillow's parameters: libjpeg's defaults (accurate integer IDCT, fancy
	// upsampling); its draft() sets only the scale.
	cinfo->dct_method = JDCT_ISLOW;
	cinfo->do_fancy_upsampling = TRUE;
	cinfo->scale_num = (unsigned int)num;
	cinfo->scale_denom = 8;
	jpeg_calc_output_dimensions(cinfo);
	j->res.out_w = (int)cinfo->output_width;
	j->res.out_h = (int)cinfo->output_height;
	if (cinfo->output_width != (JDIMENSION)((want_w * num + 7) / 8) ||
			cinfo->output_height != (JDIMENSION)((want_h * num + 7) / 8)) {
		snprintf(msg, sizeof msg, "%d/8 scale gives %u×%u, not the size expected", num,
			cinfo->output_width, cinfo->output_height);
		fc_fail((j_common_ptr)cinfo, FC_CORRUPT, msg);
	}

	jpeg_start_decompress(cinfo);
	j->cmyk = cinfo->out_color_space == JCS_CMYK;
	if (cinfo->output_components != (j->cmyk ? 4 : 3) ||
			cinfo->output_width != (JDIMENSION)j->res.out_w || cinfo->output_height != (JDIMENSION)j->res.out_h) {
		snprintf(msg, sizeof msg, "unexpected %d-component %u×%u output",
			cinfo->output_components, cinfo->output_width, cinfo->output_height);
		fc_fail((j_common_ptr)cinfo, FC_CORRUPT, msg);
	}
	j->xoff = 0;
	j->y_end = cinfo->output_height;
	if (crop_x1 > crop_x0) {
		if (crop_x0 < 0 || crop_y0 < 0 || crop_x1 > j->res.out_w || crop_y1 > j->res.out_h || crop_y1 <= crop_y0)
			fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "crop window outside the picture");
		JDIMENSION cw = (JDIMENSION)(crop_x1 - crop_x0);
		j->xoff = (JDIMENSION)crop_x0;
		if (cw < cinfo->output_width)
			jpeg_crop_scanline(cinfo, &j->xoff, &cw); // output_width becomes cw
		else
			j->xoff = 0;
		if (crop_y0 > 0 && jpeg_skip_scanlines(cinfo, (JDIMENSION)crop_y0) != (JDIMENSION)crop_y0)
			fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "fewer scanlines than the header declares");
		j->y_end = (JDIMENSION)crop_y1;
	}
	j->res.out_x0 = (int)j->xoff;
	j->res.out_cw = (int)cinfo->output_width;
	j->res.out_y0 = (int)cinfo->output_scanline;
	j->res.out_y1 = (int)j->y_end;
	if (j->cmyk) // a one-row CMYK buffer from libjpeg's pool, freed by jpeg_destroy
		j->cmyk_row = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE, cinfo->output_width * 4, 1);
	return FC_OK;
}

// fc_jpeg_read decodes the next rows, at most n and none past y_end, as packed RGB
// into out, row i at out + i*stride (res.out_cw pixels each), and sets *got.
int fc_jpeg_read(fc_jpeg *j, unsigned char *out, size_t stride, int n, int *got) {
	j_decompress_ptr cinfo = &j->cinfo;
	*got = 0;
	if (setjmp(j->err.jump))
		return j->err.status;
	JDIMENSION first = cinfo->output_scanline;
	JDIMENSION end = first + (JDIMENSION)n;
	if (end > j->y_end)
		end = j->y_end;
	if (!j->cmyk) {
		JSAMPROW rows[FC_ROWS];
		while (cinfo->output_scanline < end) {
			JDIMENSION k = end - cinfo->output_scanline;
			if (k > FC_ROWS)
				k = FC_ROWS;
			for (JDIMENSION i = 0; i < k; i++)
				rows[i] = out + (size_t)(cinfo->output_scanline - first + i) * stride;
			if (jpeg_read_scanlines(cinfo, rows, k) == 0)
				fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "no scanline decoded");
		}
	} else {
		while (cinfo->output_scanline < end) {
			JDIMENSION y = cinfo->output_scanline;
			if (jpeg_read_scanlines(cinfo, j->cmyk_row, 1) != 1)
				fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "no scanline decoded");
			fc_cmyk_row(j->cmyk_row[0], out + (size_t)(y - first) * stride, cinfo->output_width);
		}
	}
	*got = (int)(end - first);
	return FC_OK;
}

// fc_jpeg_finish skips the rows below y_end and reads the file up to its end.
int fc_jpeg_finish(fc_jpeg *j) {
	j_decompress_ptr cinfo = &j->cinfo;
	JDIMENSION height = cinfo->output_height;
	if (setjmp(j->err.jump))
		return j->err.status;
	if (cinfo->output_scanline < height) {
		// Skipping to the very end would not decode the rest of the file (libjpeg-turbo
		// just stops), so corrupt or truncated data there would go unnoticed: skip all
		// but the last row, which entropy-decodes them, and decode the last one.
		JDIMENSION skip = height - 1 - cinfo->output_scanline;
		if (skip > 0 && jpeg_skip_scanlines(cinfo, skip) != skip)
			fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "fewer scanlines than the header declares");
		JSAMPARRAY last = (*cinfo->mem->alloc_sarray)((j_common_ptr)cinfo, JPOOL_IMAGE,
			cinfo->output_width * (JDIMENSION)cinfo->output_components, 1);
		if (jpeg_read_scanlines(cinfo, last, 1) != 1)
			fc_fail((j_common_ptr)cinfo, FC_CORRUPT, "no scanline decoded");
	}
	// Reads up to EOI: a file cut just before it is truncated (Pillow agrees).
	jpeg_finish_decompress(cinfo);
	return FC_OK;
}
