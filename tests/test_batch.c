/* umgclip_encode_frames on the CPU and Vulkan backends: a batched pass gives every image the
 * bits a pass of its own gives it; crops of one frame equal the same crops handed over as frames
 * of their own; the plan cache stays bounded and crops of any size share one plan; host copies
 * are counted as the backends make them. With "faults", UMGCLIP_FAIL_RUNS (set by meson) fails
 * exactly the runs it names.
 * usage: test_batch MODEL_DIR [faults] */
#include "test_frame_util.h"
#include "umgclip.h"

#include <string.h>

static const gchar *model_dir;

/* What one image asks for, and where the answers land. */
typedef struct
{
  gfloat *embedding, *dense, *regions;
  gfloat boxes[3 * 4];
  UmgClipImageRequest request;
} Answer;

static void
answer_init (Answer *answer, const UmgClipInfo *info, gint size, gboolean dense)
{
  const gsize cells = (gsize) (size / info->patch_size) * (size / info->patch_size);
  const gfloat boxes[] = { 0, 0, 20, 20, 5, 9, 30, 12, 16, 3, 7, 25 };

  memset (answer, 0, sizeof *answer);
  answer->embedding = g_new0 (gfloat, info->embed_dim);
  memcpy (answer->boxes, boxes, sizeof boxes);
  answer->request.embedding = answer->embedding;
  answer->request.dense_mode = UMGCLIP_DENSE_NACLIP;
  if (dense)
    {
      answer->dense = g_new0 (gfloat, cells * info->embed_dim);
      answer->regions = g_new0 (gfloat, 3 * (gsize) info->embed_dim);
      answer->request.dense = answer->dense;
      answer->request.boxes = answer->boxes;
      answer->request.n_boxes = 3;
      answer->request.regions = answer->regions;
    }
}

static void
answer_clear (Answer *answer)
{
  g_free (answer->embedding);
  g_free (answer->dense);
  g_free (answer->regions);
}

static void
assert_same_answer (const Answer *a, const Answer *b, const UmgClipInfo *info, gint size,
                    const gchar *what)
{
  const gsize cells = (gsize) (size / info->patch_size) * (size / info->patch_size);
  gboolean same
      = memcmp (a->embedding, b->embedding, info->embed_dim * sizeof (gfloat)) == 0
        && (a->dense == NULL
            || (memcmp (a->dense, b->dense, cells * info->embed_dim * sizeof (gfloat)) == 0
                && memcmp (a->regions, b->regions, 3 * info->embed_dim * sizeof (gfloat)) == 0));
  if (!same)
    g_error ("%s: the batched pass differs from the single pass", what);
}

static UmgClipContext *
open_context (const gchar *device_name)
{
  g_autoptr (GError) error = NULL;
  UmgClipDeviceKind device;
  gint index;
  UmgClipContext *ctx;

  g_assert_true (umgclip_parse_device (device_name, &device, &index, NULL));
  ctx = umgclip_context_new (model_dir, device, index, &error);
  g_assert_no_error (error);
  return ctx;
}

/* n frames in one call (split into passes of UMGCLIP_MAX_BATCH) against one call each. */
static void
check_batch (UmgClipContext *ctx, UmgClipPixelFormat format, guint n, gboolean dense,
             const gchar *device_name, GRand *rand)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  const gint size = info->image_size;
  const gboolean copies = g_str_has_prefix (device_name, "vulkan");
  g_autofree Frame *frames = g_new0 (Frame, n);
  g_autofree UmgClipFrame *layouts = g_new0 (UmgClipFrame, n);
  g_autofree Answer *batched = g_new0 (Answer, n), *single = g_new0 (Answer, n);
  g_autofree UmgClipImageRequest *requests = g_new0 (UmgClipImageRequest, n);
  g_autoptr (GError) error = NULL;
  gdouble change = 0;

  for (guint i = 0; i < n; i++)
    {
      frame_fill (&frames[i], format, 53, 37, 3, rand);
      layouts[i] = frames[i].layout;
      answer_init (&batched[i], info, size, dense);
      answer_init (&single[i], info, size, dense);
      requests[i] = batched[i].request;
    }
  g_assert_true (umgclip_encode_frames (ctx, layouts, n, NULL, n, size, size, requests, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < n; i++)
    {
      g_autofree gchar *what = g_strdup_printf ("%s %s frame %u of %u%s", device_name,
                                                umgclip_pixel_format_name (format), i, n,
                                                dense ? " with dense map and boxes" : "");
      g_assert_true (
          umgclip_encode_frame (ctx, &layouts[i], size, size, &single[i].request, &error));
      g_assert_no_error (error);
      assert_same_answer (&batched[i], &single[i], info, size, what);
      /* the frame is copied to the device once, whether batched or not; read in place on
       * the CPU */
      g_assert_cmpuint (requests[i].host_copies, ==, copies ? 1 : 0);
      g_assert_cmpuint (single[i].request.host_copies, ==, copies ? 1 : 0);
    }
  /* different frames give different embeddings: equality above is not a constant output */
  for (guint c = 0; c < (guint) info->embed_dim; c++)
    change = MAX (change, ABS (batched[0].embedding[c] - batched[n - 1].embedding[c]));
  g_assert_cmpfloat (change, >, 1e-4);
  g_print ("%-7s %-5s batch of %2u%s: every image as in its own pass\n", device_name,
           umgclip_pixel_format_name (format), n, dense ? " (dense, boxes)" : "");
  for (guint i = 0; i < n; i++)
    {
      frame_clear (&frames[i]);
      answer_clear (&batched[i]);
      answer_clear (&single[i]);
    }
}

/* Crops of one frame in one call against the same rectangles given as frames of their own
 * (planes offset to the crop's corner), and a crop reaching past the frame against its
 * clamped rectangle. */
static void
check_crops (UmgClipContext *ctx, UmgClipPixelFormat format, const gchar *device_name, GRand *rand)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  const gint size = info->image_size;
  const gboolean yuv = format == UMGCLIP_FORMAT_NV12 || format == UMGCLIP_FORMAT_I420;
  static const gint bytes_per_pixel[] = { 3, 4, 4, 4, 4, 1, 1 };
  const UmgClipCrop crops[] = {
    { 0, 0, 64, 48 }, { 10, 6, 21, 17 },  { 32, 20, 32, 28 },
    { 2, 30, 9, 5 },  { 50, 40, 40, 40 }, /* reaches past the frame: clamped to 14 × 8 */
  };
  const UmgClipCrop clamped_last = { 50, 40, 14, 8 };
  const guint n = G_N_ELEMENTS (crops);
  UmgClipImageRequest requests[G_N_ELEMENTS (crops)];
  g_autofree gfloat *batched = g_new0 (gfloat, n * (gsize) info->embed_dim);
  g_autofree gfloat *alone = g_new0 (gfloat, info->embed_dim);
  g_autoptr (GError) error = NULL;
  guint plans_before, plans_after;
  Frame frame;

  frame_fill (&frame, format, 64, 48, 3, rand);
  memset (requests, 0, sizeof requests);
  for (guint i = 0; i < n; i++)
    requests[i].embedding = batched + (gsize) i * info->embed_dim;
  g_assert_true (
      umgclip_encode_frames (ctx, &frame.layout, 1, crops, n, size, size, requests, &error));
  g_assert_no_error (error);
  /* one frame, one pass: copied once */
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (requests[i].host_copies, ==,
                      i == 0 && g_str_has_prefix (device_name, "vulkan") ? 1 : 0);

  for (guint i = 0; i < n; i++)
    {
      const UmgClipCrop *crop = i == n - 1 ? &clamped_last : &crops[i];
      UmgClipFrame sub = frame.layout;
      UmgClipImageRequest request = { .embedding = alone };
      sub.width = crop->width;
      sub.height = crop->height;
      for (guint p = 0; p < 3; p++)
        if (frame.layout.planes[p] != NULL)
          {
            gint shift = p > 0 && yuv ? 1 : 0;
            gint pixel_bytes
                = p == 0 ? bytes_per_pixel[format] : (format == UMGCLIP_FORMAT_NV12 ? 2 : 1);
            sub.planes[p] = frame.layout.planes[p] + (gsize) (crop->y >> shift) * sub.strides[p]
                            + (gsize) (crop->x >> shift) * pixel_bytes;
          }
      g_assert_true (umgclip_encode_frame (ctx, &sub, size, size, &request, &error));
      g_assert_no_error (error);
      if (memcmp (alone, batched + (gsize) i * info->embed_dim, info->embed_dim * sizeof (gfloat))
          != 0)
        g_error ("%s %s crop %u: differs from the same rectangle as a frame", device_name,
                 umgclip_pixel_format_name (format), i);
    }

  /* crops of any size share the plan of their frame: at most one plan (for a pass of one
   * image, when the frames above did not make it already) for twelve box sizes */
  umgclip_context_get_plan_count (ctx, &plans_before);
  for (gint i = 0; i < 12; i++)
    {
      UmgClipCrop crop = { 2 * i, i, 5 + 3 * i, 4 + 2 * i };
      UmgClipImageRequest request = { .embedding = alone };
      g_assert_true (
          umgclip_encode_frames (ctx, &frame.layout, 1, &crop, 1, size, size, &request, &error));
    }
  umgclip_context_get_plan_count (ctx, &plans_after);
  g_assert_cmpuint (plans_after, <=, plans_before + 1);
  g_print ("%-7s %-5s %u crops of one frame as frames of their own; 12 sizes, 1 plan\n",
           device_name, umgclip_pixel_format_name (format), n);
  frame_clear (&frame);
}

/* Frames of more sizes than the cache holds: planned graphs stay at its size, and a size that
 * was evicted is planned again. */
static void
check_plan_cache (UmgClipContext *ctx, GRand *rand)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  g_autofree gfloat *embedding = g_new (gfloat, info->embed_dim);
  g_autoptr (GError) error = NULL;
  guint made_before, made, held;

  umgclip_context_get_plan_count (ctx, &made_before);
  for (guint i = 0; i <= UMGCLIP_PLAN_CACHE_SIZE + 3; i++)
    {
      Frame frame;
      UmgClipImageRequest request = { .embedding = embedding };
      frame_fill (&frame, UMGCLIP_FORMAT_RGBX, 20 + (gint) i, 16, 3, rand);
      g_assert_true (umgclip_encode_frame (ctx, &frame.layout, info->image_size, info->image_size,
                                           &request, &error));
      g_assert_no_error (error);
      frame_clear (&frame);
      held = umgclip_context_get_plan_count (ctx, &made);
      g_assert_cmpuint (held, <=, UMGCLIP_PLAN_CACHE_SIZE);
      g_assert_cmpuint (made, ==, made_before + i + 1);
    }
  g_assert_cmpuint (held, ==, UMGCLIP_PLAN_CACHE_SIZE);
}

static void
test_device (gconstpointer data)
{
  const gchar *device_name = data;
  g_autoptr (UmgClipContext) ctx = open_context (device_name);
  GRand *rand = g_rand_new_with_seed (11);

  check_batch (ctx, UMGCLIP_FORMAT_NV12, 4, TRUE, device_name, rand);
  check_batch (ctx, UMGCLIP_FORMAT_RGBX, 3, FALSE, device_name, rand);
  check_batch (ctx, UMGCLIP_FORMAT_I420, UMGCLIP_MAX_BATCH + 2, TRUE, device_name, rand);
  check_crops (ctx, UMGCLIP_FORMAT_I420, device_name, rand);
  check_crops (ctx, UMGCLIP_FORMAT_BGRX, device_name, rand);
  check_plan_cache (ctx, rand);
  g_rand_free (rand);
}

/* Bad calls fail with a message naming the fault, before anything runs. */
static void
test_errors (void)
{
  g_autoptr (UmgClipContext) ctx = open_context ("cpu");
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  GRand *rand = g_rand_new_with_seed (3);
  g_autofree gfloat *a = g_new (gfloat, info->embed_dim), *b = g_new (gfloat, info->embed_dim);
  UmgClipImageRequest requests[2] = { { .embedding = a }, { .embedding = b } };
  g_autoptr (GError) error = NULL;
  Frame frames[2];
  UmgClipFrame layouts[2];

  frame_fill (&frames[0], UMGCLIP_FORMAT_NV12, 32, 24, 3, rand);
  frame_fill (&frames[1], UMGCLIP_FORMAT_NV12, 34, 24, 3, rand);
  layouts[0] = frames[0].layout;
  layouts[1] = frames[1].layout;
  g_assert_false (umgclip_encode_frames (ctx, layouts, 2, NULL, 2, info->image_size,
                                         info->image_size, requests, &error));
  g_assert_nonnull (strstr (error->message, "frame 1 differs from frame 0"));
  g_clear_error (&error);
  g_assert_false (umgclip_encode_frames (ctx, layouts, 2, NULL, 3, info->image_size,
                                         info->image_size, requests, &error));
  g_assert_nonnull (strstr (error->message, "2 frames for 3 images"));
  g_clear_error (&error);
  requests[1].dense_mode = UMGCLIP_DENSE_MASKCLIP;
  layouts[1] = layouts[0];
  g_assert_false (umgclip_encode_frames (ctx, layouts, 2, NULL, 2, info->image_size,
                                         info->image_size, requests, &error));
  g_assert_nonnull (strstr (error->message, "one pass has one mode"));
  frame_clear (&frames[0]);
  frame_clear (&frames[1]);
  g_rand_free (rand);
}

/* UMGCLIP_FAIL_RUNS=3,5- (meson's environment): runs 3, 5, 6, ... fail as a lost device does,
 * the others succeed. */
static void
test_faults (void)
{
  g_autoptr (UmgClipContext) ctx = open_context ("cpu");
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  g_autofree gfloat *embedding = g_new (gfloat, info->embed_dim);
  GRand *rand = g_rand_new_with_seed (5);
  Frame frame;

  g_assert_cmpstr (g_getenv ("UMGCLIP_FAIL_RUNS"), ==, "3,5-");
  frame_fill (&frame, UMGCLIP_FORMAT_RGB, 16, 16, 3, rand);
  for (guint run = 1; run <= 7; run++)
    {
      g_autoptr (GError) error = NULL;
      UmgClipImageRequest request = { .embedding = embedding };
      gboolean ok = umgclip_encode_frame (ctx, &frame.layout, info->image_size, info->image_size,
                                          &request, &error);
      gboolean should_fail = run == 3 || run >= 5;
      g_print ("run %u: %s\n", run, ok ? "ok" : error->message);
      g_assert_true (ok == !should_fail);
      if (should_fail)
        {
          g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE);
          g_assert_nonnull (strstr (error->message, "UMGCLIP_FAIL_RUNS"));
        }
    }
  frame_clear (&frame);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    g_error ("usage: test_batch MODEL_DIR [faults]");
  model_dir = argv[1];
  if (argc > 2 && g_strcmp0 (argv[2], "faults") == 0)
    g_test_add_func ("/batch/faults", test_faults);
  else
    {
      g_test_add_data_func ("/batch/cpu", "cpu", test_device);
      g_test_add_data_func ("/batch/vulkan", "vulkan", test_device);
      g_test_add_func ("/batch/errors", test_errors);
    }
  return g_test_run ();
}
