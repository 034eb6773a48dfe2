/* Random frames of every pixel format with padded strides, shared by the tests that hand frames
 * to the backends (test_encode_frame.c, test_batch.c). */
#pragma once

#include "umgclip.h"

#include <string.h>

typedef struct
{
  guint8 *data[3];
  UmgClipFrame layout;
} Frame;

/* Every plane's rows are padding bytes longer than their pixels, and the last row ends right
 * after its pixels, as the API allows; every byte, padding included, is random. */
static inline void
frame_fill (Frame *frame, UmgClipPixelFormat format, gint width, gint height, gint padding,
            GRand *rand)
{
  static const gint bytes_per_pixel[] = { 3, 4, 4, 4, 4, 1, 1 };
  gint chroma_width = (width + 1) / 2, chroma_rows = (height + 1) / 2;
  gint n_planes = format == UMGCLIP_FORMAT_NV12 ? 2 : format == UMGCLIP_FORMAT_I420 ? 3 : 1;

  memset (frame, 0, sizeof *frame);
  frame->layout.format = format;
  frame->layout.width = width;
  frame->layout.height = height;
  for (gint i = 0; i < n_planes; i++)
    {
      gint row = i == 0 ? width * bytes_per_pixel[format]
                        : (format == UMGCLIP_FORMAT_NV12 ? 2 * chroma_width : chroma_width);
      gint rows = i == 0 ? height : chroma_rows;
      gsize size;
      frame->layout.strides[i] = row + padding;
      size = (gsize) (rows - 1) * frame->layout.strides[i] + row;
      frame->data[i] = g_malloc (size);
      for (gsize b = 0; b < size; b++)
        frame->data[i][b] = g_rand_int_range (rand, 0, 256);
      frame->layout.planes[i] = frame->data[i];
    }
}

static inline void
frame_clear (Frame *frame)
{
  for (gint i = 0; i < 3; i++)
    g_free (frame->data[i]);
}
