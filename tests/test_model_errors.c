/* Bad model directories give an error that names the file, tensor or value at fault, and
 * never crash. Each case is a copy of a small test model with one thing broken.
 * usage: test_model_errors MODEL_DIR (a HuggingFace-layout model) */
#include "umgclip.h"

#include <glib/gstdio.h>
#include <string.h>

static const gchar *source_dir;

typedef struct
{
  gchar *dir;
} Fixture;

static void
copy_file (const gchar *from_dir, const gchar *to_dir, const gchar *name)
{
  g_autofree gchar *from = g_build_filename (from_dir, name, NULL);
  g_autofree gchar *to = g_build_filename (to_dir, name, NULL);
  g_autofree gchar *contents = NULL;
  gsize length;
  g_assert_true (g_file_get_contents (from, &contents, &length, NULL));
  g_assert_true (g_file_set_contents (to, contents, length, NULL));
}

static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  static const gchar *const files[]
      = { "config.json", "model.safetensors", "vocab.json", "merges.txt" };
  g_autoptr (GError) error = NULL;
  fixture->dir = g_dir_make_tmp ("umgclip-model-XXXXXX", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    copy_file (source_dir, fixture->dir, files[i]);
}

static void
fixture_tear_down (Fixture *fixture, gconstpointer data)
{
  const gchar *name;
  GDir *dir = g_dir_open (fixture->dir, 0, NULL);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree gchar *path = g_build_filename (fixture->dir, name, NULL);
      g_unlink (path);
    }
  g_dir_close (dir);
  g_rmdir (fixture->dir);
  g_free (fixture->dir);
}

static void
write_file (Fixture *fixture, const gchar *name, const gchar *contents, gssize length)
{
  g_autofree gchar *path = g_build_filename (fixture->dir, name, NULL);
  g_assert_true (g_file_set_contents (path, contents, length, NULL));
}

/* Replace the first occurrence of from by to in a file of the fixture. */
static void
edit_file (Fixture *fixture, const gchar *name, const gchar *from, const gchar *to)
{
  g_autofree gchar *path = g_build_filename (fixture->dir, name, NULL);
  g_autofree gchar *contents = NULL;
  g_autoptr (GString) edited = NULL;
  gchar *at;
  g_assert_true (g_file_get_contents (path, &contents, NULL, NULL));
  at = strstr (contents, from);
  g_assert_nonnull (at);
  edited = g_string_new_len (contents, at - contents);
  g_string_append (edited, to);
  g_string_append (edited, at + strlen (from));
  write_file (fixture, name, edited->str, edited->len);
}

/* Loading fails with the given code and a message containing every fragment. */
static void
expect_load_error (const gchar *dir, gint code, const gchar *const *fragments)
{
  g_autoptr (GError) error = NULL;
  UmgClipContext *ctx = umgclip_context_new (dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_null (ctx);
  g_assert_error (error, UMGCLIP_ERROR, code);
  g_test_message ("%s", error->message);
  for (guint i = 0; fragments[i] != NULL; i++)
    if (strstr (error->message, fragments[i]) == NULL)
      g_error ("message \"%s\" lacks \"%s\"", error->message, fragments[i]);
}

#define EXPECT(dir, code, ...)                                                                     \
  expect_load_error (dir, code, (const gchar *const[]){ __VA_ARGS__, NULL })

static void
test_loads (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx
      = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (umgclip_context_get_info (ctx)->vision_layers, ==, 2);
}

static void
test_missing_directory (Fixture *fixture, gconstpointer data)
{
  g_autofree gchar *missing = g_build_filename (fixture->dir, "nowhere", NULL);
  EXPECT (missing, UMGCLIP_ERROR_FILE, "nowhere", "not found");
}

static void
test_missing_config (Fixture *fixture, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (fixture->dir, "config.json", NULL);
  g_unlink (path);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FILE, fixture->dir, "config.json", "open_clip_config.json");
}

static void
test_bad_json (Fixture *fixture, gconstpointer data)
{
  write_file (fixture, "config.json", "{\"projection_dim\": 32,", -1);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "config.json");
}

static void
test_unknown_activation (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "quick_gelu", "relu");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "hidden_act", "relu");
}

static void
test_bad_config_value (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "\"patch_size\": 8", "\"patch_size\": -8");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "patch_size");
}

static void
test_shape_mismatch (Fixture *fixture, gconstpointer data)
{
  /* a wider vision tower than the file holds: the first vision tensor is wrong */
  edit_file (fixture, "config.json", "\"hidden_size\": 64", "\"hidden_size\": 80");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "model.safetensors",
          "vision_model.embeddings.patch_embedding.weight", "[64, 3, 8, 8]", "[80, 3, 8, 8]");
}

static void
test_missing_tensor (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "model.safetensors", "layers.2.", "missing");
}

static void
test_truncated_weights (Fixture *fixture, gconstpointer data)
{
  g_autofree gchar *path = g_build_filename (fixture->dir, "model.safetensors", NULL);
  g_autofree gchar *contents = NULL;
  gsize length;
  g_assert_true (g_file_get_contents (path, &contents, &length, NULL));
  write_file (fixture, "model.safetensors", contents, length - 1000);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "truncated");
}

static void
test_garbage_weights (Fixture *fixture, gconstpointer data)
{
  write_file (fixture, "model.safetensors", "not a safetensors file at all", -1);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "header size");
}

static void
test_bad_header (Fixture *fixture, gconstpointer data)
{
  static const gchar file[] = "\x10\0\0\0\0\0\0\0{\"a\": [1, 2]}   ";
  write_file (fixture, "model.safetensors", file, sizeof file - 1);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "'a'", "malformed");
}

static void
test_unsupported_dtype (Fixture *fixture, gconstpointer data)
{
  static const gchar header[]
      = "{\"logit_scale\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}}";
  g_autoptr (GString) file = g_string_new (NULL);
  guint64 size = sizeof header - 1;
  for (guint i = 0; i < 8; i++)
    g_string_append_c (file, (gchar) ((size >> (8 * i)) & 0xff));
  g_string_append (file, header);
  g_string_append_len (file, "\0\0\0\0\0\0\0\0", 8);
  write_file (fixture, "model.safetensors", file->str, file->len);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "logit_scale", "I64");
}

static void
test_missing_tokenizer (Fixture *fixture, gconstpointer data)
{
  g_autofree gchar *vocab = g_build_filename (fixture->dir, "vocab.json", NULL);
  g_autofree gchar *merges = g_build_filename (fixture->dir, "merges.txt", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  const gchar *texts[] = { "a cat" };
  gfloat out[64];

  g_unlink (vocab);
  g_unlink (merges);
  /* images still work without tokenizer files; text names what is missing */
  ctx = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_no_error (error);
  g_assert_false (umgclip_encode_text (ctx, texts, 1, out, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "vocab.json"));
  g_assert_nonnull (strstr (error->message, "bpe_simple_vocab_16e6.txt.gz"));
}

static void
test_bad_arguments (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx
      = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  UmgClipDeviceKind kind;
  UmgClipDenseMode mode;
  gint index;
  gfloat pixels[3 * 4 * 4] = { 0 }, embedding[32];
  UmgClipImageRequest request = { .embedding = embedding };

  g_assert_no_error (error);
  /* an image smaller than one patch */
  g_assert_false (umgclip_encode_image (ctx, pixels, 4, 4, &request, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "4x4"));
  g_clear_error (&error);
  g_assert_false (umgclip_parse_device ("gpu7", &kind, &index, &error));
  g_assert_nonnull (strstr (error->message, "gpu7"));
  g_clear_error (&error);
  g_assert_false (umgclip_parse_dense_mode ("fancy", &mode, &error));
  g_assert_nonnull (strstr (error->message, "fancy"));
  g_clear_error (&error);
  g_assert_true (umgclip_parse_device ("vulkan:1", &kind, &index, &error));
  g_assert_cmpint (kind, ==, UMGCLIP_DEVICE_VULKAN);
  g_assert_cmpint (index, ==, 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    g_error ("usage: test_model_errors MODEL_DIR");
  source_dir = argv[1];
#define ADD(name)                                                                                  \
  g_test_add ("/model-errors/" #name, Fixture, NULL, fixture_set_up, test_##name, fixture_tear_down)
  ADD (loads);
  ADD (missing_directory);
  ADD (missing_config);
  ADD (bad_json);
  ADD (unknown_activation);
  ADD (bad_config_value);
  ADD (shape_mismatch);
  ADD (missing_tensor);
  ADD (truncated_weights);
  ADD (garbage_weights);
  ADD (bad_header);
  ADD (unsupported_dtype);
  ADD (missing_tokenizer);
  ADD (bad_arguments);
  return g_test_run ();
}
