/* umgclip_frame_to_tensor: every pixel format on small odd-sized frames with padded strides,
 * the bilinear resize by hand and against PyTorch's F.interpolate, and bad arguments.
 * usage: test_frame GOLDEN_DIR MODEL_DIR (tests/data/segment, a HuggingFace-layout model) */
#include "npy.h"
#include "umgclip.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

/* umgclip_frame_to_tensor on a frame described by its parts (BT.601, limited range). */
static gboolean
convert (UmgClipPixelFormat format, const guint8 *const planes[3], const gint strides[3],
         gint width, gint height, gint out_w, gint out_h, const gfloat mean[3], const gfloat std[3],
         gfloat *out, GError **error)
{
  UmgClipFrame frame = { .format = format, .width = width, .height = height };
  for (gint i = 0; i < 3; i++)
    {
      frame.planes[i] = planes != NULL ? planes[i] : NULL;
      frame.strides[i] = strides != NULL ? strides[i] : 0;
    }
  return umgclip_frame_to_tensor (&frame, out_w, out_h, mean, std, out, error);
}

static const gchar *golden_dir, *model_dir;

enum
{
  WIDTH = 7,
  HEIGHT = 5,
  PADDING = 5, /* odd stride padding, filled with junk that must never be read */
};

static const gfloat zero_mean[3] = { 0, 0, 0 };
static const gfloat unit_std[3] = { 1, 1, 1 };

/* A colour per pixel that differs between channels, rows and columns. */
static void
test_rgb_of (gint x, gint y, guint8 rgb[3])
{
  rgb[0] = (guint8) (x * 37 + y * 11 + 3);
  rgb[1] = (guint8) (x * 5 + y * 53 + 200);
  rgb[2] = (guint8) (x * 91 + y * 29 + 17);
}

static void
check_packed (UmgClipPixelFormat format, gint bytes_per_pixel, const gint channel_offset[3])
{
  const gint stride = WIDTH * bytes_per_pixel + PADDING;
  g_autofree guint8 *data = g_malloc (stride * HEIGHT);
  gfloat out[3 * WIDTH * HEIGHT];
  g_autoptr (GError) error = NULL;

  memset (data, 0xA5, stride * HEIGHT);
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        guint8 rgb[3];
        test_rgb_of (x, y, rgb);
        for (gint c = 0; c < 3; c++)
          data[y * stride + x * bytes_per_pixel + channel_offset[c]] = rgb[c];
      }

  const guint8 *planes[3] = { data, NULL, NULL };
  const gint strides[3] = { stride, 0, 0 };
  /* same size: every tap lands on a pixel centre, so values come through exactly */
  g_assert_true (convert (format, planes, strides, WIDTH, HEIGHT, WIDTH, HEIGHT, zero_mean,
                          unit_std, out, &error));
  g_assert_no_error (error);
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        guint8 rgb[3];
        test_rgb_of (x, y, rgb);
        for (gint c = 0; c < 3; c++)
          g_assert_cmpfloat_with_epsilon (out[c * WIDTH * HEIGHT + y * WIDTH + x], rgb[c] / 255.0,
                                          1e-6);
      }
}

static void
test_packed_formats (void)
{
  check_packed (UMGCLIP_FORMAT_RGB, 3, (const gint[]){ 0, 1, 2 });
  check_packed (UMGCLIP_FORMAT_RGBA, 4, (const gint[]){ 0, 1, 2 });
  check_packed (UMGCLIP_FORMAT_RGBX, 4, (const gint[]){ 0, 1, 2 });
  check_packed (UMGCLIP_FORMAT_BGRX, 4, (const gint[]){ 2, 1, 0 });
  check_packed (UMGCLIP_FORMAT_BGRA, 4, (const gint[]){ 2, 1, 0 });
}

/* Y, Cb, Cr of the test frame: spans the whole byte range so clamping is exercised. */
static guint8
luma_of (gint x, gint y)
{
  return (guint8) (x * 41 + y * 59);
}

static void
chroma_of (gint cx, gint cy, guint8 *cb, guint8 *cr)
{
  *cb = (guint8) (cx * 83 + cy * 31 + 10);
  *cr = (guint8) (250 - cx * 67 - cy * 47);
}

static gdouble
clamp_byte (gdouble v)
{
  return CLAMP (v, 0.0, 255.0);
}

/* BT.601 limited range, written out independently of frame.c's derivation. */
static void
expected_yuv (gint x, gint y, gdouble rgb[3])
{
  guint8 cb, cr;
  chroma_of (x / 2, y / 2, &cb, &cr);
  gdouble luma = 1.164383 * (luma_of (x, y) - 16.0);
  rgb[0] = clamp_byte (luma + 1.596027 * (cr - 128.0));
  rgb[1] = clamp_byte (luma - 0.391762 * (cb - 128.0) - 0.812968 * (cr - 128.0));
  rgb[2] = clamp_byte (luma + 2.017232 * (cb - 128.0));
}

static void
check_yuv_output (const gfloat *out)
{
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      {
        gdouble rgb[3];
        expected_yuv (x, y, rgb);
        for (gint c = 0; c < 3; c++)
          g_assert_cmpfloat_with_epsilon (out[c * WIDTH * HEIGHT + y * WIDTH + x], rgb[c] / 255.0,
                                          2e-5);
      }
}

static void
test_yuv_formats (void)
{
  const gint chroma_w = (WIDTH + 1) / 2, chroma_h = (HEIGHT + 1) / 2;
  const gint luma_stride = WIDTH + PADDING, nv12_stride = 2 * chroma_w + PADDING,
             i420_stride = chroma_w + PADDING;
  guint8 luma[(WIDTH + PADDING) * HEIGHT], interleaved[(2 * 4 + PADDING) * 3],
      cb_plane[(4 + PADDING) * 3], cr_plane[(4 + PADDING) * 3];
  gfloat out_nv12[3 * WIDTH * HEIGHT], out_i420[3 * WIDTH * HEIGHT];
  g_autoptr (GError) error = NULL;

  memset (luma, 0x5A, sizeof luma);
  memset (interleaved, 0x5A, sizeof interleaved);
  memset (cb_plane, 0x5A, sizeof cb_plane);
  memset (cr_plane, 0x5A, sizeof cr_plane);
  for (gint y = 0; y < HEIGHT; y++)
    for (gint x = 0; x < WIDTH; x++)
      luma[y * luma_stride + x] = luma_of (x, y);
  for (gint cy = 0; cy < chroma_h; cy++)
    for (gint cx = 0; cx < chroma_w; cx++)
      {
        guint8 cb, cr;
        chroma_of (cx, cy, &cb, &cr);
        interleaved[cy * nv12_stride + 2 * cx] = cb;
        interleaved[cy * nv12_stride + 2 * cx + 1] = cr;
        cb_plane[cy * i420_stride + cx] = cb;
        cr_plane[cy * i420_stride + cx] = cr;
      }

  const guint8 *nv12_planes[3] = { luma, interleaved, NULL };
  const gint nv12_strides[3] = { luma_stride, nv12_stride, 0 };
  g_assert_true (convert (UMGCLIP_FORMAT_NV12, nv12_planes, nv12_strides, WIDTH, HEIGHT, WIDTH,
                          HEIGHT, zero_mean, unit_std, out_nv12, &error));
  g_assert_no_error (error);
  check_yuv_output (out_nv12);

  const guint8 *i420_planes[3] = { luma, cb_plane, cr_plane };
  const gint i420_strides[3] = { luma_stride, i420_stride, i420_stride };
  g_assert_true (convert (UMGCLIP_FORMAT_I420, i420_planes, i420_strides, WIDTH, HEIGHT, WIDTH,
                          HEIGHT, zero_mean, unit_std, out_i420, &error));
  g_assert_no_error (error);
  check_yuv_output (out_i420);
  g_assert_cmpmem (out_nv12, sizeof out_nv12, out_i420, sizeof out_i420);
}

/* A 2 × 1 frame (black, white) stretched to 4 × 1: half-pixel centres put the outer samples on
 * the clamped edges and the inner ones a quarter of the way in; then mean / std apply. */
static void
test_resize_by_hand (void)
{
  const guint8 pixels[6] = { 0, 0, 0, 255, 255, 255 };
  const guint8 *planes[3] = { pixels, NULL, NULL };
  const gint strides[3] = { 6, 0, 0 };
  const gfloat mean[3] = { 0.5f, 0.25f, 0 }, std[3] = { 0.5f, 0.25f, 2 };
  const gdouble expected_ramp[4] = { 0, 0.25, 0.75, 1 };
  gfloat out[3 * 4];
  g_autoptr (GError) error = NULL;

  g_assert_true (convert (UMGCLIP_FORMAT_RGB, planes, strides, 2, 1, 4, 1, mean, std, out, &error));
  g_assert_no_error (error);
  for (gint c = 0; c < 3; c++)
    for (gint x = 0; x < 4; x++)
      g_assert_cmpfloat_with_epsilon (out[c * 4 + x], (expected_ramp[x] - mean[c]) / std[c], 1e-6);
}

/* Against F.interpolate (bilinear, align_corners=False) with CLIP's statistics, from an RGBx
 * frame with a padded stride, shrinking and enlarging by uneven factors. */
static void
test_resize_golden (void)
{
  const gfloat mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
  const gfloat std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
  g_autoptr (GError) error = NULL;
  g_autofree gchar *frame_path = g_build_filename (golden_dir, "frame_rgb.npy", NULL);
  UmgArray frame = { 0 };

  g_assert_true (umg_npy_load (frame_path, &frame, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (frame.n_dims, ==, 3);
  const gint height = frame.shape[0], width = frame.shape[1];
  const gint stride = 4 * width + 3;
  g_autofree guint8 *rgbx = g_malloc0 (stride * height);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      for (gint c = 0; c < 3; c++)
        rgbx[y * stride + 4 * x + c] = (guint8) frame.data[(y * width + x) * 3 + c];

  for (guint i = 0; i < 2; i++)
    {
      const gchar *name = i == 0 ? "frame_down.npy" : "frame_up.npy";
      g_autofree gchar *path = g_build_filename (golden_dir, name, NULL);
      UmgArray expected = { 0 };
      g_assert_true (umg_npy_load (path, &expected, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (expected.n_dims, ==, 3);
      const gint out_h = expected.shape[1], out_w = expected.shape[2];
      g_autofree gfloat *out = g_new (gfloat, expected.n_elements);
      const guint8 *planes[3] = { rgbx, NULL, NULL };
      const gint strides[3] = { stride, 0, 0 };
      g_assert_true (convert (UMGCLIP_FORMAT_RGBX, planes, strides, width, height, out_w, out_h,
                              mean, std, out, &error));
      g_assert_no_error (error);
      gdouble max_error = 0;
      for (gsize j = 0; j < expected.n_elements; j++)
        max_error = MAX (max_error, fabs (out[j] - expected.data[j]));
      g_test_message ("%s: %d×%d -> %d×%d, max abs error %.3g", name, width, height, out_w, out_h,
                      max_error);
      g_assert_cmpfloat (max_error, <, 2e-5);
      umg_array_clear (&expected);
    }
  umg_array_clear (&frame);
}

static void
expect_argument_error (UmgClipPixelFormat format, const guint8 *const planes[3],
                       const gint strides[3], gint width, gint height, gint out_w, gint out_h,
                       const gfloat std[3], const gchar *mentions)
{
  gfloat out[64];
  g_autoptr (GError) error = NULL;
  g_assert_false (
      convert (format, planes, strides, width, height, out_w, out_h, zero_mean, std, out, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  if (strstr (error->message, mentions) == NULL)
    g_error ("\"%s\" does not mention \"%s\"", error->message, mentions);
}

static void
test_errors (void)
{
  static guint8 pixels[256];
  const guint8 *packed[3] = { pixels, NULL, NULL };
  const guint8 *nv12_missing_chroma[3] = { pixels, NULL, NULL };
  const gint strides[3] = { 16, 16, 16 };
  const gfloat zero_std[3] = { 1, 0, 1 };

  expect_argument_error (UMGCLIP_FORMAT_RGB, packed, strides, 0, 4, 2, 2, unit_std, "0×4");
  expect_argument_error (UMGCLIP_FORMAT_RGB, packed, strides, 4, -3, 2, 2, unit_std, "4×-3");
  expect_argument_error (UMGCLIP_FORMAT_RGB, packed, strides, 4, 4, 2, 0, unit_std, "2×0");
  /* 5 RGBA pixels need 20 bytes a row */
  expect_argument_error (UMGCLIP_FORMAT_RGBA, packed, strides, 5, 4, 2, 2, unit_std, "16");
  expect_argument_error (UMGCLIP_FORMAT_NV12, nv12_missing_chroma, strides, 4, 4, 2, 2, unit_std,
                         "plane 1");
  expect_argument_error (UMGCLIP_FORMAT_RGB, packed, strides, 4, 4, 2, 2, zero_std, "channel 1");
  expect_argument_error ((UmgClipPixelFormat) 42, packed, strides, 4, 4, 2, 2, unit_std, "42");
}

static void
test_format_names (void)
{
  const gchar *names[] = { "RGB", "RGBA", "RGBx", "BGRx", "BGRA", "NV12", "I420" };
  g_autoptr (GError) error = NULL;
  UmgClipPixelFormat format;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (umgclip_pixel_format_parse (names[i], &format, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (umgclip_pixel_format_name (format), ==, names[i]);
    }
  g_assert_false (umgclip_pixel_format_parse ("YUY2", &format, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "YUY2"));
}

/* A BT.709 full-range I420 frame of one colour, against the matrix written out in doubles. */
static void
test_colorimetry (void)
{
  const guint8 luma[4] = { 200, 200, 200, 200 }, cb[1] = { 100 }, cr[1] = { 160 };
  const gdouble kr = 0.2126, kb = 0.0722, kg = 1 - kr - kb;
  const gdouble expected[3] = {
    200 + 2 * (1 - kr) * 32,
    200 - 2 * kb * (1 - kb) / kg * -28 - 2 * kr * (1 - kr) / kg * 32,
    200 + 2 * (1 - kb) * -28,
  };
  const gfloat zero[3] = { 0, 0, 0 }, unit[3] = { 1, 1, 1 };
  UmgClipFrame frame = {
    .format = UMGCLIP_FORMAT_I420,
    .width = 2,
    .height = 2,
    .planes = { luma, cb, cr },
    .strides = { 2, 1, 1 },
    .kr = kr,
    .kb = kb,
    .full_range = TRUE,
  };
  gfloat out[3];
  g_autoptr (GError) error = NULL;

  g_assert_true (umgclip_frame_to_tensor (&frame, 1, 1, zero, unit, out, &error));
  g_assert_no_error (error);
  for (gint c = 0; c < 3; c++)
    g_assert_cmpfloat_with_epsilon (out[c] * 255.0, CLAMP (expected[c], 0, 255), 1e-3);
  /* the same bytes read as BT.601 limited range give other colours */
  frame.kr = frame.kb = 0;
  frame.full_range = FALSE;
  g_assert_true (umgclip_frame_to_tensor (&frame, 1, 1, zero, unit, out, &error));
  g_assert_cmpfloat (fabs (out[0] * 255.0 - expected[0]), >, 1);
}

/* The model's own statistics reach the caller: a copy of the test model with a
 * preprocessor_config.json of unusual values. */
static void
test_pixel_stats (void)
{
  static const gchar *const files[]
      = { "config.json", "model.safetensors", "vocab.json", "merges.txt" };
  const gchar *preprocessor
      = "{\"image_mean\": [0.5, 0.25, 0.125], \"image_std\": [0.1, 0.2, 0.3]}";
  const gfloat expected_mean[3] = { 0.5f, 0.25f, 0.125f }, expected_std[3] = { 0.1f, 0.2f, 0.3f };
  g_autoptr (GError) error = NULL;
  g_autofree gchar *dir = g_dir_make_tmp ("umgclip-frame-XXXXXX", &error);
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree gchar *from = g_build_filename (model_dir, files[i], NULL);
      g_autofree gchar *to = g_build_filename (dir, files[i], NULL);
      g_autofree gchar *contents = NULL;
      gsize length;
      g_assert_true (g_file_get_contents (from, &contents, &length, NULL));
      g_assert_true (g_file_set_contents (to, contents, length, NULL));
    }
  g_autofree gchar *pre_path = g_build_filename (dir, "preprocessor_config.json", NULL);
  g_assert_true (g_file_set_contents (pre_path, preprocessor, -1, NULL));

  UmgClipContext *ctx = umgclip_context_new (dir, UMGCLIP_DEVICE_CPU, 0, &error);
  g_assert_no_error (error);
  gfloat mean[3], std[3];
  umgclip_get_pixel_stats (ctx, mean, std);
  umgclip_context_free (ctx);
  for (gint c = 0; c < 3; c++)
    {
      g_assert_cmpfloat (mean[c], ==, expected_mean[c]);
      g_assert_cmpfloat (std[c], ==, expected_std[c]);
    }

  g_unlink (pre_path);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree gchar *path = g_build_filename (dir, files[i], NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc != 3)
    {
      g_printerr ("usage: %s GOLDEN_DIR MODEL_DIR\n", argv[0]);
      return 2;
    }
  golden_dir = argv[1];
  model_dir = argv[2];
  g_test_add_func ("/frame/packed-formats", test_packed_formats);
  g_test_add_func ("/frame/yuv-formats", test_yuv_formats);
  g_test_add_func ("/frame/resize-by-hand", test_resize_by_hand);
  g_test_add_func ("/frame/resize-golden", test_resize_golden);
  g_test_add_func ("/frame/errors", test_errors);
  g_test_add_func ("/frame/format-names", test_format_names);
  g_test_add_func ("/frame/colorimetry", test_colorimetry);
  g_test_add_func ("/frame/pixel-stats", test_pixel_stats);
  return g_test_run ();
}
