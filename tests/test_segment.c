/* umgclip_segment and umgclip_rank_labels on hand-built dense maps whose answer is known, and
 * against the NumPy reference (tests/reference/segment_ref.py) goldens.
 * usage: test_segment GOLDEN_DIR (tests/data/segment) */
#include "npy.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>

static const gchar *golden_dir;

/* Label l's embedding is the unit vector along axis l. */
static gfloat *
axis_labels (guint n_labels, gint dim)
{
  gfloat *labels = g_new0 (gfloat, (gsize) n_labels * dim);
  for (guint l = 0; l < n_labels; l++)
    labels[l * dim + l] = 1;
  return labels;
}

/* A dense map whose cell (x, y) points along the axis of owner[y * grid_w + x], with a length
 * that varies by cell: segmentation must not depend on the (unnormalised) length. */
static gfloat *
dense_from_owners (const guint *owner, gint grid_w, gint grid_h, gint dim)
{
  gfloat *dense = g_new0 (gfloat, (gsize) grid_w * grid_h * dim);
  for (gint cell = 0; cell < grid_w * grid_h; cell++)
    dense[cell * dim + owner[cell]] = 0.5f + cell % 3;
  return dense;
}

/* Left half label 0, right half label 1: after 2× upsampling the boundary is exactly at the
 * middle, since the pixel centres next to it sit a quarter cell from the cell boundary. */
static void
test_semantic_split (void)
{
  const guint owner[16] = { 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1 };
  g_autofree gfloat *labels = axis_labels (2, 4);
  g_autofree gfloat *dense = dense_from_owners (owner, 4, 4, 4);
  g_auto (UmgClipSegmentation) seg = { 0 };
  g_autoptr (GError) error = NULL;

  g_assert_true (umgclip_segment (dense, 4, 4, 4, labels, 2, NULL, 50, 8, 8, 0.5f, 0, 2.0f, FALSE,
                                  &seg, &error));
  g_assert_no_error (error);
  g_assert_cmpint (seg.width, ==, 8);
  g_assert_cmpint (seg.height, ==, 8);
  for (gint y = 0; y < 8; y++)
    for (gint x = 0; x < 8; x++)
      {
        g_assert_cmpuint (seg.class_map[y * 8 + x], ==, x < 4 ? 0 : 1);
        g_assert_cmpuint (seg.instance_map[y * 8 + x], ==, x < 4 ? 1 : 2);
        g_assert_cmpfloat (seg.score_map[y * 8 + x], >, 0.5f);
      }
  /* pixels whose four cells all agree: probability of logits (50, 0) */
  g_assert_cmpfloat_with_epsilon (seg.score_map[0], 1.0 / (1.0 + exp (-50.0)), 1e-6);
  /* column 3 reads cells 1 and 2 three to one: logits (25, 25)·(3/4, 1/4) → (37.5, 12.5) */
  g_assert_cmpfloat_with_epsilon (seg.score_map[3], 1.0 / (1.0 + exp (-25.0)), 1e-6);
  g_assert_cmpuint (seg.n_segments, ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      const UmgClipSegment *segment = &seg.segments[i];
      g_assert_cmpuint (segment->id, ==, i + 1);
      g_assert_cmpuint (segment->label_id, ==, i);
      g_assert_false (segment->is_thing);
      g_assert_cmpint (segment->x, ==, 4 * i);
      g_assert_cmpint (segment->y, ==, 0);
      g_assert_cmpint (segment->w, ==, 4);
      g_assert_cmpint (segment->h, ==, 8);
      g_assert_cmpuint (segment->area, ==, 32);
      g_assert_cmpfloat (segment->score, >, 0.99f);
    }
}

/* 6 × 6 grid, mask of the same size (cells map one to one onto pixels):
 *   0 0 0 0 0 2      label 0: stuff background
 *   0 1 1 0 0 0      label 1: thing; the top-left blob (3 pixels) is one instance, the two
 *   0 1 0 0 0 0           diagonal pixels at the bottom right another (8-connectivity)
 *   0 0 0 0 0 0      label 2: stuff in two far corners, merged into one segment
 *   0 0 0 0 1 0
 *   2 0 0 0 0 1 */
static const guint scene_owner[36] = {
  0, 0, 0, 0, 0, 2, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 1,
};
static const gboolean scene_is_thing[3] = { FALSE, TRUE, FALSE };

static void
segment_scene (gboolean panoptic, guint min_area, UmgClipSegmentation *seg)
{
  g_autofree gfloat *labels = axis_labels (3, 5);
  g_autofree gfloat *dense = dense_from_owners (scene_owner, 6, 6, 5);
  g_autoptr (GError) error = NULL;
  g_assert_true (umgclip_segment (dense, 6, 6, 5, labels, 3, scene_is_thing, 100, 6, 6, 0.5f,
                                  min_area, 2.0f, panoptic, seg, &error));
  g_assert_no_error (error);
  for (gint pixel = 0; pixel < 36; pixel++)
    if (seg->instance_map[pixel] != 0)
      g_assert_cmpuint (seg->class_map[pixel], ==, scene_owner[pixel]);
}

static void
assert_segment (const UmgClipSegment *segment, guint id, guint label_id, gboolean is_thing, gint x,
                gint y, gint w, gint h, guint area)
{
  g_assert_cmpuint (segment->id, ==, id);
  g_assert_cmpuint (segment->label_id, ==, label_id);
  g_assert_cmpint (segment->is_thing, ==, is_thing);
  g_assert_cmpint (segment->x, ==, x);
  g_assert_cmpint (segment->y, ==, y);
  g_assert_cmpint (segment->w, ==, w);
  g_assert_cmpint (segment->h, ==, h);
  g_assert_cmpuint (segment->area, ==, area);
  g_assert_cmpfloat_with_epsilon (segment->score, 1.0, 1e-5);
}

/* thing-affinity on a 6 × 6 grid (mask the same size), labels along axes 0-3, 0 stuff:
 *   . . . . . .     a b: one object, cells near axes 1 and 2 (cosine 0.98), so three pixels
 *   . a a . . .          argmax to label 1 and one (b) to label 2
 *   . a b c c .     c: another object touching it, along axis 3 (cosine 0 with a and b)
 *   . . . c c .
 *   . . . . . .
 *   . . . . . . */
static void
segment_affinity (gfloat affinity, guint min_area, UmgClipSegmentation *seg)
{
  const gint size = 6, dim = 4;
  const gboolean is_thing[4] = { FALSE, TRUE, TRUE, TRUE };
  g_autofree gfloat *labels = axis_labels (4, dim);
  g_autofree gfloat *dense = g_new0 (gfloat, size * size * dim);
  g_autoptr (GError) error = NULL;
  for (gint cell = 0; cell < size * size; cell++)
    dense[cell * dim] = 1;
  for (gint cell = 0; cell < size * size; cell++)
    {
      const gint x = cell % size, y = cell / size;
      gfloat *feature = dense + cell * dim;
      const gboolean a = (y == 1 && (x == 1 || x == 2)) || (y == 2 && x == 1);
      const gboolean b = y == 2 && x == 2;
      const gboolean c = (y == 2 || y == 3) && (x == 3 || x == 4);
      if (a || b || c)
        feature[0] = 0;
      if (a || b)
        {
          feature[1] = a ? 1.0f : 0.8f;
          feature[2] = a ? 0.8f : 1.0f;
        }
      if (c)
        feature[3] = 1;
    }
  g_assert_true (umgclip_segment (dense, size, size, dim, labels, 4, is_thing, 100, size, size,
                                  0.5f, min_area, affinity, TRUE, seg, &error));
  g_assert_no_error (error);
}

static void
test_thing_affinity (void)
{
  {
    /* off: the label split makes a and b two instances */
    g_auto (UmgClipSegmentation) seg = { 0 };
    segment_affinity (2.0f, 0, &seg);
    g_assert_cmpuint (seg.n_segments, ==, 4);
    assert_segment (&seg.segments[1], 2, 1, TRUE, 1, 1, 2, 2, 3);
    assert_segment (&seg.segments[2], 3, 2, TRUE, 2, 2, 1, 1, 1);
    assert_segment (&seg.segments[3], 4, 3, TRUE, 3, 2, 2, 2, 4);
  }
  {
    /* 0.5: a and b are one thing with a's label (3 of its 4 pixels); c stays apart */
    g_auto (UmgClipSegmentation) seg = { 0 };
    segment_affinity (0.5f, 0, &seg);
    g_assert_cmpuint (seg.n_segments, ==, 3);
    g_assert_cmpuint (seg.segments[0].label_id, ==, 0);
    g_assert_false (seg.segments[0].is_thing);
    g_assert_cmpuint (seg.segments[0].area, ==, 28);
    assert_segment (&seg.segments[1], 2, 1, TRUE, 1, 1, 2, 2, 4);
    assert_segment (&seg.segments[2], 3, 3, TRUE, 3, 2, 2, 2, 4);
    g_assert_cmpuint (seg.class_map[2 * 6 + 2], ==, 1);
    g_assert_cmpuint (seg.instance_map[2 * 6 + 2], ==, 2);
    g_assert_cmpuint (seg.instance_map[1 * 6 + 1], ==, 2);
    g_assert_cmpuint (seg.instance_map[2 * 6 + 3], ==, 3);
  }
  {
    /* -1: every touching thing joins; c's 4 pixels outweigh a's 3 */
    g_auto (UmgClipSegmentation) seg = { 0 };
    segment_affinity (-1.0f, 0, &seg);
    g_assert_cmpuint (seg.n_segments, ==, 2);
    assert_segment (&seg.segments[1], 2, 3, TRUE, 1, 1, 4, 3, 8);
    for (gint pixel = 0; pixel < 36; pixel++)
      g_assert_cmpuint (seg.class_map[pixel], ==, seg.instance_map[pixel] == 2 ? 3 : 0);
  }
  {
    /* min_area counts the joined thing: b alone (1 pixel) would be dropped */
    g_auto (UmgClipSegmentation) off = { 0 };
    g_auto (UmgClipSegmentation) on = { 0 };
    segment_affinity (2.0f, 2, &off);
    segment_affinity (0.5f, 2, &on);
    g_assert_cmpuint (off.n_segments, ==, 3);
    g_assert_cmpuint (off.instance_map[2 * 6 + 2], ==, 0);
    g_assert_cmpuint (off.class_map[2 * 6 + 2], ==, UMGCLIP_CLASS_NONE);
    g_assert_cmpuint (on.n_segments, ==, 3);
    g_assert_cmpuint (on.segments[1].area, ==, 4);
    g_assert_cmpuint (on.instance_map[2 * 6 + 2], ==, 2);
  }
}

static void
test_panoptic_instances (void)
{
  g_auto (UmgClipSegmentation) seg = { 0 };
  segment_scene (TRUE, 0, &seg);

  /* numbered by first pixel in raster order: background (0,0), corner (5,0), blob (1,1),
   * diagonal pair (4,4) */
  g_assert_cmpuint (seg.n_segments, ==, 4);
  assert_segment (&seg.segments[0], 1, 0, FALSE, 0, 0, 6, 6, 29);
  assert_segment (&seg.segments[1], 2, 2, FALSE, 0, 0, 6, 6, 2);
  assert_segment (&seg.segments[2], 3, 1, TRUE, 1, 1, 2, 2, 3);
  assert_segment (&seg.segments[3], 4, 1, TRUE, 4, 4, 2, 2, 2);
  g_assert_cmpuint (seg.instance_map[5], ==, 2);
  g_assert_cmpuint (seg.instance_map[30], ==, 2);
  g_assert_cmpuint (seg.instance_map[1 * 6 + 2], ==, 3);
  g_assert_cmpuint (seg.instance_map[2 * 6 + 1], ==, 3);
  g_assert_cmpuint (seg.instance_map[5 * 6 + 5], ==, 4);
  g_assert_cmpuint (seg.instance_map[3 * 6 + 3], ==, 1);
}

/* Without panoptic the thing label is one segment too. */
static void
test_semantic_merges_things (void)
{
  g_auto (UmgClipSegmentation) seg = { 0 };
  segment_scene (FALSE, 0, &seg);
  g_assert_cmpuint (seg.n_segments, ==, 3);
  assert_segment (&seg.segments[0], 1, 0, FALSE, 0, 0, 6, 6, 29);
  assert_segment (&seg.segments[1], 2, 2, FALSE, 0, 0, 6, 6, 2);
  assert_segment (&seg.segments[2], 3, 1, FALSE, 1, 1, 5, 5, 5);
}

/* min_area 3 drops the diagonal pair and the scattered stuff (2 pixels each); survivors are
 * renumbered in order and dropped pixels become none in both maps. */
static void
test_min_area (void)
{
  g_auto (UmgClipSegmentation) seg = { 0 };
  segment_scene (TRUE, 3, &seg);
  g_assert_cmpuint (seg.n_segments, ==, 2);
  assert_segment (&seg.segments[0], 1, 0, FALSE, 0, 0, 6, 6, 29);
  assert_segment (&seg.segments[1], 2, 1, TRUE, 1, 1, 2, 2, 3);
  for (gint pixel = 0; pixel < 36; pixel++)
    {
      gboolean dropped = scene_owner[pixel] == 2 || pixel == 4 * 6 + 4 || pixel == 5 * 6 + 5;
      g_assert_cmpuint (seg.class_map[pixel], ==,
                        dropped ? UMGCLIP_CLASS_NONE : scene_owner[pixel]);
      g_assert_cmpuint (seg.instance_map[pixel], ==,
                        dropped ? 0 : (scene_owner[pixel] == 1 ? 2 : 1));
    }
}

/* Cells half way between two labels have probability 0.5 at any scale; clear cells have
 * 1 / (1 + e^-s). A threshold between the two removes exactly the undecided cells. */
static void
test_threshold (void)
{
  const gint dim = 2;
  const gfloat dense[3 * 2] = { 1, 0, 1, 1, 0, 3 };
  g_autofree gfloat *labels = axis_labels (2, dim);
  const gfloat logit_scale = 2;
  const gdouble clear = 1.0 / (1.0 + exp (-logit_scale));
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < 2; i++)
    {
      g_auto (UmgClipSegmentation) seg = { 0 };
      const gfloat threshold = i == 0 ? 0.6f : 0.95f;
      g_assert_true (umgclip_segment (dense, 3, 1, dim, labels, 2, NULL, logit_scale, 3, 1,
                                      threshold, 0, 2.0f, TRUE, &seg, &error));
      g_assert_no_error (error);
      g_assert_cmpfloat_with_epsilon (seg.score_map[0], clear, 1e-6);
      g_assert_cmpfloat_with_epsilon (seg.score_map[1], 0.5, 1e-6);
      g_assert_cmpfloat_with_epsilon (seg.score_map[2], clear, 1e-6);
      g_assert_cmpuint (seg.class_map[1], ==, UMGCLIP_CLASS_NONE);
      g_assert_cmpuint (seg.instance_map[1], ==, 0);
      if (i == 0)
        {
          g_assert_cmpuint (seg.class_map[0], ==, 0);
          g_assert_cmpuint (seg.class_map[2], ==, 1);
          g_assert_cmpuint (seg.n_segments, ==, 2);
        }
      else
        {
          g_assert_cmpuint (seg.class_map[0], ==, UMGCLIP_CLASS_NONE);
          g_assert_cmpuint (seg.class_map[2], ==, UMGCLIP_CLASS_NONE);
          g_assert_cmpuint (seg.n_segments, ==, 0);
        }
    }
}

static gfloat *
load_golden (const gchar *name, gsize expected_elements)
{
  g_autofree gchar *path = g_build_filename (golden_dir, name, NULL);
  g_autoptr (GError) error = NULL;
  UmgArray array = { 0 };
  g_assert_true (umg_npy_load (path, &array, &error));
  g_assert_no_error (error);
  if (expected_elements != 0)
    g_assert_cmpuint (array.n_elements, ==, expected_elements);
  return array.data;
}

static void
test_reference (gconstpointer data)
{
  const gchar *name = data;
  UmgArray dense = { 0 };
  g_autofree gchar *dense_path = g_build_filename (golden_dir, "seg_dense.npy", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_true (umg_npy_load (dense_path, &dense, &error));
  g_assert_no_error (error);
  const gint grid_h = dense.shape[0], grid_w = dense.shape[1], dim = dense.shape[2];
  g_autofree gfloat *thing_flags = load_golden ("seg_is_thing.npy", 0);
  const guint n_labels = 5;
  g_autofree gfloat *labels = load_golden ("seg_labels.npy", n_labels * dim);
  g_autofree gfloat *params = load_golden ("seg_params.npy", 3);
  const gint mask_w = params[1], mask_h = params[2];
  const gsize n_pixels = (gsize) mask_w * mask_h;
  g_autofree gchar *options_name = g_strdup_printf ("seg_%s_options.npy", name);
  /* panoptic, threshold, min_area, thing_affinity */
  g_autofree gfloat *options = load_golden (options_name, 4);
  g_autofree gchar *class_name = g_strdup_printf ("seg_%s_class_map.npy", name);
  g_autofree gfloat *class_map = load_golden (class_name, n_pixels);
  g_autofree gchar *score_name = g_strdup_printf ("seg_%s_score_map.npy", name);
  g_autofree gfloat *score_map = load_golden (score_name, n_pixels);
  g_autofree gchar *instance_name = g_strdup_printf ("seg_%s_instance_map.npy", name);
  g_autofree gfloat *instance_map = load_golden (instance_name, n_pixels);
  g_autofree gchar *segments_name = g_strdup_printf ("seg_%s_segments.npy", name);
  g_autofree gchar *segments_path = g_build_filename (golden_dir, segments_name, NULL);
  UmgArray segments = { 0 };
  g_assert_true (umg_npy_load (segments_path, &segments, &error));
  g_assert_no_error (error);

  gboolean is_thing[5];
  for (guint l = 0; l < n_labels; l++)
    is_thing[l] = thing_flags[l] != 0;
  g_auto (UmgClipSegmentation) seg = { 0 };
  g_assert_true (umgclip_segment (dense.data, grid_w, grid_h, dim, labels, n_labels, is_thing,
                                  params[0], mask_w, mask_h, options[1], (guint) options[2],
                                  options[3], options[0] != 0, &seg, &error));
  g_assert_no_error (error);

  gdouble max_score_error = 0;
  for (gsize pixel = 0; pixel < n_pixels; pixel++)
    {
      g_assert_cmpuint (seg.class_map[pixel], ==, (guint) class_map[pixel]);
      g_assert_cmpuint (seg.instance_map[pixel], ==, (guint) instance_map[pixel]);
      max_score_error = MAX (max_score_error, fabs (seg.score_map[pixel] - score_map[pixel]));
    }
  g_test_message ("%s: %u segments, max score error %.3g", name, seg.n_segments, max_score_error);
  g_assert_cmpfloat (max_score_error, <, 1e-5);

  g_assert_cmpuint (seg.n_segments, ==, segments.shape[0]);
  g_assert_cmpuint (seg.n_segments, >=, 3);
  for (guint i = 0; i < seg.n_segments; i++)
    {
      const gfloat *row = segments.data + i * 9;
      const UmgClipSegment *segment = &seg.segments[i];
      g_assert_cmpuint (segment->id, ==, (guint) row[0]);
      g_assert_cmpuint (segment->label_id, ==, (guint) row[1]);
      g_assert_cmpfloat_with_epsilon (segment->score, row[2], 1e-5);
      g_assert_cmpint (segment->is_thing, ==, row[3] != 0);
      g_assert_cmpint (segment->x, ==, (gint) row[4]);
      g_assert_cmpint (segment->y, ==, (gint) row[5]);
      g_assert_cmpint (segment->w, ==, (gint) row[6]);
      g_assert_cmpint (segment->h, ==, (gint) row[7]);
      g_assert_cmpuint (segment->area, ==, (guint) row[8]);
    }
  umg_array_clear (&segments);
  umg_array_clear (&dense);
}

static void
expect_error (const gchar *mentions, const gfloat *dense, gint grid_w, gint grid_h,
              const gfloat *labels, guint n_labels, gint mask_w, gint mask_h, gfloat threshold)
{
  g_auto (UmgClipSegmentation) seg = { 0 };
  g_autoptr (GError) error = NULL;
  g_assert_false (umgclip_segment (dense, grid_w, grid_h, 2, labels, n_labels, NULL, 10, mask_w,
                                   mask_h, threshold, 0, 2.0f, TRUE, &seg, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  if (strstr (error->message, mentions) == NULL)
    g_error ("\"%s\" does not mention \"%s\"", error->message, mentions);
  g_assert_null (seg.class_map);
  g_assert_cmpuint (seg.n_segments, ==, 0);
}

static void
test_errors (void)
{
  const gfloat dense[8] = { 1, 0, 0, 1, 1, 0, 0, 1 };
  const gfloat labels[4] = { 1, 0, 0, 1 };

  expect_error ("n_labels 0", dense, 2, 2, labels, 0, 4, 4, 0.5f);
  /* the count is checked before any label is read */
  expect_error ("n_labels 65535", dense, 2, 2, labels, 65535, 4, 4, 0.5f);
  expect_error ("0×2", dense, 0, 2, labels, 2, 4, 4, 0.5f);
  expect_error ("4×-1", dense, 2, 2, labels, 2, 4, -1, 0.5f);
  expect_error ("threshold 1.5", dense, 2, 2, labels, 2, 4, 4, 1.5f);
}

/* Isolated thing pixels on every other row and column: 256² instances cannot be numbered in
 * 16 bits, and the error says so instead of wrapping around. */
static void
test_too_many_segments (void)
{
  const gint size = 512;
  g_autofree gfloat *dense = g_new0 (gfloat, (gsize) size * size * 2);
  const gfloat labels[4] = { 1, 0, 0, 1 };
  const gboolean is_thing[2] = { FALSE, TRUE };
  g_auto (UmgClipSegmentation) seg = { 0 };
  g_autoptr (GError) error = NULL;

  for (gint y = 0; y < size; y++)
    for (gint x = 0; x < size; x++)
      dense[((gsize) y * size + x) * 2 + (x % 2 == 0 && y % 2 == 0)] = 1;
  g_assert_false (umgclip_segment (dense, size, size, 2, labels, 2, is_thing, 100, size, size, 0.5f,
                                   0, 2.0f, TRUE, &seg, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "65537 segments"));
  g_clear_error (&error);

  /* dropping the single-pixel instances leaves only the background */
  g_assert_true (umgclip_segment (dense, size, size, 2, labels, 2, is_thing, 100, size, size, 0.5f,
                                  2, 2.0f, TRUE, &seg, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (seg.n_segments, ==, 1);
  g_assert_cmpuint (seg.segments[0].area, ==, size * size - 256 * 256);
}

static void
test_rank_labels (void)
{
  const gint dim = 4;
  g_autofree gfloat *labels = axis_labels (3, dim);
  /* region 0 leans on label 1, then 0, then 2; region 1 ties labels 0 and 2 */
  const gfloat regions[2 * 4] = { 1, 2, 0.5f, 0, 3, 0, 3, 1 };
  const gfloat logit_scale = 5;
  guint ids[2 * 3];
  gfloat scores[2 * 3];
  g_autoptr (GError) error = NULL;

  g_assert_true (
      umgclip_rank_labels (regions, 2, dim, labels, 3, logit_scale, 3, ids, scores, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (ids[0], ==, 1);
  g_assert_cmpuint (ids[1], ==, 0);
  g_assert_cmpuint (ids[2], ==, 2);
  g_assert_cmpuint (ids[3], ==, 0);
  g_assert_cmpuint (ids[4], ==, 2);
  g_assert_cmpuint (ids[5], ==, 1);
  for (guint r = 0; r < 2; r++)
    {
      const gfloat *region = regions + r * dim;
      gdouble norm = 0, total = 0, expected[3];
      for (gint i = 0; i < dim; i++)
        norm += region[i] * region[i];
      for (guint l = 0; l < 3; l++)
        total += expected[l] = exp (logit_scale * region[l] / sqrt (norm));
      for (guint k = 0; k < 3; k++)
        g_assert_cmpfloat_with_epsilon (scores[r * 3 + k], expected[ids[r * 3 + k]] / total, 1e-6);
      g_assert_cmpfloat_with_epsilon (scores[r * 3] + scores[r * 3 + 1] + scores[r * 3 + 2], 1.0,
                                      1e-6);
    }

  /* top_k 1 gives the best of the same full softmax */
  guint best_id;
  gfloat best_score;
  g_assert_true (umgclip_rank_labels (regions, 1, dim, labels, 3, logit_scale, 1, &best_id,
                                      &best_score, &error));
  g_assert_cmpuint (best_id, ==, 1);
  g_assert_cmpfloat (best_score, ==, scores[0]);

  g_assert_false (
      umgclip_rank_labels (regions, 2, dim, labels, 3, logit_scale, 4, ids, scores, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "top_k 4"));
  g_clear_error (&error);
  g_assert_false (
      umgclip_rank_labels (regions, 2, dim, labels, 0, logit_scale, 1, ids, scores, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc != 2)
    {
      g_printerr ("usage: %s GOLDEN_DIR\n", argv[0]);
      return 2;
    }
  golden_dir = argv[1];
  g_test_add_func ("/segment/semantic-split", test_semantic_split);
  g_test_add_func ("/segment/panoptic-instances", test_panoptic_instances);
  g_test_add_func ("/segment/thing-affinity", test_thing_affinity);
  g_test_add_func ("/segment/semantic-merges-things", test_semantic_merges_things);
  g_test_add_func ("/segment/min-area", test_min_area);
  g_test_add_func ("/segment/threshold", test_threshold);
  g_test_add_data_func ("/segment/reference-panoptic", "panoptic", test_reference);
  g_test_add_data_func ("/segment/reference-semantic", "semantic", test_reference);
  g_test_add_data_func ("/segment/reference-joined", "joined", test_reference);
  g_test_add_func ("/segment/errors", test_errors);
  g_test_add_func ("/segment/too-many-segments", test_too_many_segments);
  g_test_add_func ("/segment/rank-labels", test_rank_labels);
  return g_test_run ();
}
