/* The runtime against committed reference outputs of the PyTorch reference
 * (tests/reference/make_goldens.py) for the small models in tests/models: image and text
 * embeddings, dense maps in every mode, regions, interpolated position embeddings.
 * usage: test_golden DEVICE GOLDEN_DIR MODELS_DIR MODEL... */
#include "npy.h"
#include "umgclip.h"

#include <json-glib/json-glib.h>
#include <math.h>

static const gchar *device_name, *golden_root, *models_root;

/* Limits from DESIGN.md for fp32 work: every output matches to 1e-4 relative error. */
#define MAX_RELATIVE_ERROR 1e-4
#define MIN_COSINE 0.9999

static void
compare (const gchar *what, const gfloat *got, const gfloat *expected, gsize n)
{
  gdouble diff = 0, norm = 0, dot = 0, got_norm = 0, relative, cosine;
  for (gsize i = 0; i < n; i++)
    {
      diff += ((gdouble) got[i] - expected[i]) * ((gdouble) got[i] - expected[i]);
      norm += (gdouble) expected[i] * expected[i];
      got_norm += (gdouble) got[i] * got[i];
      dot += (gdouble) got[i] * expected[i];
    }
  relative = sqrt (diff / norm);
  cosine = dot / sqrt (norm * got_norm);
  g_print ("%-48s %-7s rel %.2e  cos %.7f\n", what, device_name, relative, cosine);
  g_assert_cmpfloat (norm, >, 0);
  g_assert_cmpfloat (relative, <=, MAX_RELATIVE_ERROR);
  g_assert_cmpfloat (cosine, >=, MIN_COSINE);
}

static void
load_array (const gchar *dir, const gchar *name, UmgArray *array)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;
  umg_npy_load (path, array, &error);
  g_assert_no_error (error);
}

static void
run_case (UmgClipContext *ctx, const gchar *model, const gchar *dir, JsonObject *spec)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  const gchar *kind = json_object_get_string_member (spec, "kind");
  const gchar *mode = json_object_get_string_member_with_default (spec, "mode", "naclip");
  g_autoptr (GError) error = NULL;
  g_autofree gchar *what = NULL;
  UmgArray expected, input = { 0 };
  g_autofree gfloat *got = NULL;
  UmgClipImageRequest request = { 0 };
  gint width = json_object_get_int_member_with_default (spec, "width", 0);
  gint height = json_object_get_int_member_with_default (spec, "height", 0);

  load_array (dir, json_object_get_string_member (spec, "expected"), &expected);
  got = g_new0 (gfloat, expected.n_elements);
  what = g_strdup_printf ("%s %s %s %dx%d", model, kind,
                          g_strcmp0 (kind, "dense") == 0 || g_strcmp0 (kind, "regions") == 0 ? mode
                                                                                             : "",
                          width, height);

  if (g_strcmp0 (kind, "text") == 0)
    {
      JsonArray *texts = json_object_get_array_member (spec, "texts");
      guint n = json_array_get_length (texts);
      g_autofree const gchar **strings = g_new0 (const gchar *, n + 1);
      g_autofree gint32 *tokens = g_new (gint32, info->context_length);
      UmgArray expected_tokens;

      load_array (dir, json_object_get_string_member (spec, "tokens"), &expected_tokens);
      g_assert_cmpuint (expected_tokens.n_elements, ==, (gsize) n * info->context_length);
      for (guint i = 0; i < n; i++)
        {
          strings[i] = json_array_get_string_element (texts, i);
          g_assert_cmpint (umgclip_tokenize (ctx, strings[i], tokens, &error), >=, 2);
          g_assert_no_error (error);
          for (gint t = 0; t < info->context_length; t++)
            g_assert_cmpint (tokens[t], ==,
                             (gint) expected_tokens.data[(gsize) i * info->context_length + t]);
        }
      umg_array_clear (&expected_tokens);
      g_assert_cmpuint (expected.n_elements, ==, (gsize) n * info->embed_dim);
      umgclip_encode_text (ctx, strings, n, got, &error);
      g_assert_no_error (error);
      compare (what, got, expected.data, expected.n_elements);
      /* alone, a short text runs through a shorter graph: the answer must not change */
      for (guint i = 0; i < n; i++)
        {
          g_autofree gchar *alone = g_strdup_printf ("%s text %u alone", model, i);
          umgclip_encode_text (ctx, strings + i, 1, got, &error);
          g_assert_no_error (error);
          compare (alone, got, expected.data + (gsize) i * info->embed_dim, info->embed_dim);
        }
      umg_array_clear (&expected);
      return;
    }

  load_array (dir, json_object_get_string_member (spec, "input"), &input);
  g_assert_cmpuint (input.n_elements, ==, 3 * (gsize) width * height);
  g_assert_true (umgclip_parse_dense_mode (mode, &request.dense_mode, NULL));
  if (g_strcmp0 (kind, "image") == 0)
    request.embedding = got;
  else if (g_strcmp0 (kind, "dense") == 0)
    request.dense = got;
  else if (g_strcmp0 (kind, "regions") == 0)
    {
      JsonArray *boxes = json_object_get_array_member (spec, "boxes");
      gfloat *coords = g_new (gfloat, 4 * json_array_get_length (boxes));
      for (guint b = 0; b < json_array_get_length (boxes); b++)
        for (guint c = 0; c < 4; c++)
          coords[4 * b + c]
              = json_array_get_double_element (json_array_get_array_element (boxes, b), c);
      request.boxes = coords;
      request.n_boxes = json_array_get_length (boxes);
      request.regions = got;
    }
  else
    g_error ("unknown case kind %s", kind);
  umgclip_encode_image (ctx, input.data, width, height, &request, &error);
  g_assert_no_error (error);
  compare (what, got, expected.data, expected.n_elements);
  g_free ((gpointer) request.boxes);
  umg_array_clear (&input);
  umg_array_clear (&expected);
}

static void
test_model (gconstpointer data)
{
  const gchar *model = data;
  g_autofree gchar *dir = g_build_filename (golden_root, model, NULL);
  g_autofree gchar *model_dir = g_build_filename (models_root, model, NULL);
  g_autofree gchar *cases_path = g_build_filename (dir, "cases.json", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  UmgClipDeviceKind device;
  gint index;
  JsonArray *cases;

  json_parser_load_from_file (parser, cases_path, &error);
  g_assert_no_error (error);
  cases = json_node_get_array (json_parser_get_root (parser));
  g_assert_cmpuint (json_array_get_length (cases), >, 10);

  g_assert_true (umgclip_parse_device (device_name, &device, &index, NULL));
  ctx = umgclip_context_new (model_dir, device, index, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < json_array_get_length (cases); i++)
    run_case (ctx, model, dir, json_array_get_object_element (cases, i));
  /* a second pass through the cached plans must give the same answers */
  for (guint i = 0; i < json_array_get_length (cases); i++)
    run_case (ctx, model, dir, json_array_get_object_element (cases, i));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 5)
    g_error ("usage: test_golden DEVICE GOLDEN_DIR MODELS_DIR MODEL...");
  device_name = argv[1];
  golden_root = argv[2];
  models_root = argv[3];
  for (gint i = 4; i < argc; i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/golden/%s/%s", device_name, argv[i]);
      g_test_add_data_func (path, argv[i], test_model);
    }
  return g_test_run ();
}
