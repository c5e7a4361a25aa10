// The libjpeg-turbo decoder of package preprocess (jpeg.c), called from
// jpeg_cgo.go. See jpeg_cgo.go for why the API has this shape.
#ifndef FC_JPEG_H
#define FC_JPEG_H

#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <jpeglib.h>

enum { FC_OK = 0, FC_CORRUPT = 1, FC_UNSUPPORTED = 2 };

typedef struct {
	int  out_w, out_h;                // the output size libjpeg computed
	int  out_x0, out_cw;              // the columns decoded: [out_x0, out_x0+out_cw)
	int  out_y0, out_y1;              // the rows fc_jpeg_read returns: [out_y0, out_y1)
	char msg[JMSG_LENGTH_MAX + 128];  // why the decode failed
} fc_result;

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	fc_result *res;
	int max_warnings;
	int status;
} fc_error_mgr;

typedef struct {
	struct jpeg_progress_mgr pub;
	int max_scans;
} fc_progress_mgr;

// fc_jpeg is one decode in progress, in C memory (libjpeg keeps pointers into it).
// Every function below arms err.jump on entry, so any libjpeg error lands back in
// the function Go called, which returns the failure status (res.msg says why);
// after a failure only fc_jpeg_free may be called.
typedef struct {
	struct jpeg_decompress_struct cinfo;
	fc_error_mgr err;
	fc_progress_mgr prog;
	fc_result res;
	int created;
	int cmyk;
	JSAMPARRAY cmyk_row;   // libjpeg's CMYK output row, converted into the caller's
	JDIMENSION xoff;       // the first output column decoded
	JDIMENSION y_end;      // rows [output_scanline, y_end) are read by fc_jpeg_read
} fc_jpeg;

fc_jpeg *fc_jpeg_new(void);
void fc_jpeg_free(fc_jpeg *j);
int fc_jpeg_open(fc_jpeg *j, const unsigned char *data, unsigned long size,
		int want_w, int want_h, int num, int crop_x0, int crop_y0, int crop_x1, int crop_y1,
		int max_scans, int max_warnings);
int fc_jpeg_read(fc_jpeg *j, unsigned char *out, size_t stride, int n, int *got);
int fc_jpeg_finish(fc_jpeg *j);

#endif
