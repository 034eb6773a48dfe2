/* umgclip_encode_frame (frame uploaded as captured, converted by the backend) against
 * umgclip_frame_to_tensor + umgclip_encode_image (converted on the host), for every pixel
 * format on the CPU and Vulkan backends.
 * usage: test_encode_frame MODEL_DIR */
#include "test_frame_util.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>

static const gchar *model_dir;

static gdouble
relative_error (const gfloat *got, const gfloat *want, gsize n)
{
  gdouble diff = 0, norm = 0;
  for (gsize i = 0; i < n; i++)
    {
      diff += ((gdouble) got[i] - want[i]) * ((gdouble) got[i] - want[i]);
      norm += (gdouble) want[i] * want[i];
    }
  g_assert_cmpfloat (norm, >, 0);
  return sqrt (diff / norm);
}

static void
test_device (gconstpointer data)
{
  const gchar *device_name = data;
  g_autoptr (GError) error = NULL;
  UmgClipDeviceKind device;
  gint index;
  g_autoptr (UmgClipContext) ctx = NULL;
  const UmgClipInfo *info;
  GRand *rand = g_rand_new_with_seed (7);
  gfloat mean[3], std[3];

  g_assert_true (umgclip_parse_device (device_name, &device, &index, NULL));
  ctx = umgclip_context_new (model_dir, device, index, &error);
  g_assert_no_error (error);
  info = umgclip_context_get_info (ctx);
  umgclip_get_pixel_stats (ctx, mean, std);

  for (gint format = UMGCLIP_FORMAT_RGB; format <= UMGCLIP_FORMAT_I420; format++)
    {
      const gint width = 45, height = 29, size = 2 * info->image_size;
      const gint cells = (size / info->patch_size) * (size / info->patch_size);
      const gsize embed = info->embed_dim;
      Frame frame;
      g_autofree gfloat *pixels = g_new (gfloat, 3 * (gsize) size * size);
      g_autofree gfloat *want = g_new (gfloat, embed), *got = g_new (gfloat, embed);
      g_autofree gfloat *want_dense = g_new (gfloat, cells * embed);
      g_autofree gfloat *got_dense = g_new (gfloat, cells * embed);
      UmgClipImageRequest host = { .embedding = want, .dense = want_dense };
      UmgClipImageRequest device_side = { .embedding = got, .dense = got_dense };
      gdouble error_embedding, error_dense;

      frame_fill (&frame, format, width, height, 5, rand);
      /* YUV frames alternate between BT.601 limited range and BT.709 full range */
      if (format == UMGCLIP_FORMAT_I420)
        {
          frame.layout.kr = 0.2126f;
          frame.layout.kb = 0.0722f;
          frame.layout.full_range = TRUE;
        }
      umgclip_frame_to_tensor (&frame.layout, size, size, mean, std, pixels, &error);
      g_assert_no_error (error);
      umgclip_encode_image (ctx, pixels, size, size, &host, &error);
      g_assert_no_error (error);
      /* twice: the second pass reuses the planned graph */
      for (gint pass = 0; pass < 2; pass++)
        {
          umgclip_encode_frame (ctx, &frame.layout, size, size, &device_side, &error);
          g_assert_no_error (error);
          error_embedding = relative_error (got, want, embed);
          error_dense = relative_error (got_dense, want_dense, cells * embed);
          g_print ("%-7s %-5s embedding rel %.2e  dense rel %.2e\n", device_name,
                   umgclip_pixel_format_name (format), error_embedding, error_dense);
          g_assert_cmpfloat (error_embedding, <=, 1e-5);
          g_assert_cmpfloat (error_dense, <=, 1e-5);
        }
      frame_clear (&frame);
    }

  /* a stride shorter than a row is refused before anything runs */
  {
    Frame frame;
    gfloat embedding[1024];
    UmgClipImageRequest request = { .embedding = embedding };
    frame_fill (&frame, UMGCLIP_FORMAT_RGBX, 16, 8, 5, rand);
    frame.layout.strides[0] = 10;
    g_assert_false (umgclip_encode_frame (ctx, &frame.layout, info->image_size, info->image_size,
                                          &request, &error));
    g_assert_nonnull (strstr (error->message, "stride"));
    g_clear_error (&error);
    frame_clear (&frame);
  }
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    g_error ("usage: test_encode_frame MODEL_DIR");
  model_dir = argv[1];
  g_test_add_data_func ("/encode-frame/cpu", "cpu", test_device);
  g_test_add_data_func ("/encode-frame/vulkan", "vulkan", test_device);
  return g_test_run ();
}
