/* libjpeg-turbo's compressor behind one call that reports errors instead of exiting: libjpeg's default error
   handler calls exit(), and its documented alternative is a longjmp back to the caller, which Swift cannot do. */
#ifndef SKIPD_CJPEG_SHIM_H
#define SKIPD_CJPEG_SHIM_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct skipd_jpeg_error {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static inline void skipd_jpeg_error_exit(j_common_ptr info) {
    struct skipd_jpeg_error *error = (struct skipd_jpeg_error *)info->err;
    (*info->err->format_message)(info, error->message);
    longjmp(error->jump, 1);
}

/* Warnings would go to standard error; a compressor fed whole rows has none worth a log line. */
static inline void skipd_jpeg_silent(j_common_ptr info) { (void)info; }

/* Compresses `height` rows of `width` pixels, `stride` bytes apart, in `color_space` (a J_COLOR_SPACE with
   `components` bytes a pixel) at `quality` (1-100), without chroma subsampling (thin coloured lines keep their
   colour). On success returns 0 and a malloc'd JPEG in *out (*out_size bytes; free() it); on failure returns -1
   with libjpeg's message in `message`. */
static inline int skipd_jpeg_compress(const unsigned char *pixels, unsigned width, unsigned height, size_t stride,
                                      int color_space, int components, int quality, unsigned char **out,
                                      unsigned long *out_size, char message[JMSG_LENGTH_MAX]) {
    struct jpeg_compress_struct info;
    struct skipd_jpeg_error error;
    *out = NULL;
    *out_size = 0;
    /* Zeroed, so a failure inside jpeg_create_compress leaves nothing for jpeg_destroy_compress to misread. */
    memset(&info, 0, sizeof info);
    info.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = skipd_jpeg_error_exit;
    error.manager.output_message = skipd_jpeg_silent;
    error.message[0] = 0;
    if (setjmp(error.jump)) {
        jpeg_destroy_compress(&info);
        free(*out);
        *out = NULL;
        *out_size = 0;
        snprintf(message, JMSG_LENGTH_MAX, "%s", error.message);
        return -1;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, out, out_size);
    info.image_width = width;
    info.image_height = height;
    info.input_components = components;
    info.in_color_space = (J_COLOR_SPACE)color_space;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    info.comp_info[0].h_samp_factor = 1;
    info.comp_info[0].v_samp_factor = 1;
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * stride);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    return 0;
}

#endif
