/* Bad model directories give an error that names the file, tensor or value at fault, and
 * never crash. Each case is a copy of a small test model with one thing broken.
 * usage: test_model_errors MODEL_DIR (a HuggingFace-layout model) */
#include "umgclip.h"

#include <glib/gstdio.h>
#include <string.h>

static const gchar *source_dir;
static const gchar *openclip_dir; /* an OpenCLIP-layout model, for the OpenCLIP cases */

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

/* data: NULL for the HuggingFace model, "openclip" for the OpenCLIP one */
static void
fixture_set_up (Fixture *fixture, gconstpointer data)
{
  static const gchar *const hf_files[]
      = { "config.json", "model.safetensors", "vocab.json", "merges.txt", NULL };
  static const gchar *const openclip_files[]
      = { "open_clip_config.json", "open_clip_model.safetensors", NULL };
  const gboolean openclip = data != NULL;
  const gchar *const *files = openclip ? openclip_files : hf_files;
  g_autoptr (GError) error = NULL;
  fixture->dir = g_dir_make_tmp ("umgclip-model-XXXXXX", &error);
  g_assert_no_error (error);
  for (guint i = 0; files[i] != NULL; i++)
    copy_file (openclip ? openclip_dir : source_dir, fixture->dir, files[i]);
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

/* A safetensors file of the given JSON header followed by n_data zero bytes; header_size is the
 * size field, or 0 for the header's real size. */
static void
write_safetensors (Fixture *fixture, const gchar *name, const gchar *header, guint64 header_size,
                   gsize n_data)
{
  g_autoptr (GString) file = g_string_new (NULL);
  guint64 size = header_size ? header_size : strlen (header);
  for (guint i = 0; i < 8; i++)
    g_string_append_c (file, (gchar) ((size >> (8 * i)) & 0xff));
  g_string_append (file, header);
  for (gsize i = 0; i < n_data; i++)
    g_string_append_c (file, 0);
  write_file (fixture, name, file->str, file->len);
}

static void
test_unsupported_dtype (Fixture *fixture, gconstpointer data)
{
  write_safetensors (
      fixture, "model.safetensors",
      "{\"logit_scale\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [0, 8]}}", 0, 8);
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

/* ---- absurd sizes: each fails at load, before any large allocation, naming the file ---- */

static void
test_header_longer_than_file (Fixture *fixture, gconstpointer data)
{
  write_safetensors (fixture, "model.safetensors", "{}", G_GUINT64_CONSTANT (1) << 40, 0);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "1099511627776",
          "exceeds the file size");
}

static void
test_shape_of_2_60_elements (Fixture *fixture, gconstpointer data)
{
  /* [2^30, 2^30] F32 in no bytes; [2^30, 2^30, 16] F32 wrapped to 0 bytes and was accepted */
  write_safetensors (fixture, "model.safetensors",
                     "{\"big\": {\"dtype\": \"F32\", \"shape\": [1073741824, 1073741824], "
                     "\"data_offsets\": [0, 0]}}",
                     0, 0);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "'big'", "more elements");
  write_safetensors (fixture, "model.safetensors",
                     "{\"wraps\": {\"dtype\": \"F32\", \"shape\": [1073741824, 1073741824, 16], "
                     "\"data_offsets\": [0, 0]}}",
                     0, 16);
  EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "'wraps'", "more elements");
}

static void
test_header_of_wrong_types (Fixture *fixture, gconstpointer data)
{
  /* these once raised a GLib critical before the error (the test runs with fatal criticals) */
  static const gchar *const entries[] = {
    "{\"t\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}",
    "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": {\"a\": 0}}}",
    "{\"t\": {\"dtype\": [\"F32\"], \"shape\": [4], \"data_offsets\": [0, 16]}}",
    "{\"t\": {\"dtype\": \"F32\", \"shape\": [[4]], \"data_offsets\": [0, 16]}}",
    "{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [[0], 16]}}",
  };
  for (guint i = 0; i < G_N_ELEMENTS (entries); i++)
    {
      write_safetensors (fixture, "model.safetensors", entries[i], 0, 16);
      EXPECT (fixture->dir, UMGCLIP_ERROR_FORMAT, "model.safetensors", "'t'");
    }
}

static void
test_million_layers (Fixture *fixture, gconstpointer data)
{
  /* 16777215 layers once allocated 805 MB before the first tensor was compared */
  edit_file (fixture, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1000000");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "1000000", "model.safetensors",
          "tensors");
  edit_file (fixture, "config.json", "1000000", "16777215");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "16777215", "tensors");
}

static void
test_wide_text_tower (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "\"hidden_size\": 32", "\"hidden_size\": 1099511627776");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "text_config", "hidden_size");
  /* below the integer bound: the first text tensor is compared before anything is allocated */
  edit_file (fixture, "config.json", "1099511627776", "16777200");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "model.safetensors", "token_embedding",
          "[49408, 16777200]");
}

static void
test_huge_image_size (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "\"image_size\": 32", "\"image_size\": 1048576");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "model.safetensors", "position_embedding",
          "[17179869185, 64]");
}

static void
test_negative_patch_size (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "config.json", "\"patch_size\": 8", "\"patch_size\": -16");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "config.json", "vision_config", "patch_size");
}

static void
test_openclip_loads (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  /* wrong types where a value or an array is read are ignored or refused, never a critical */
  edit_file (fixture, "open_clip_config.json", "\"quick_gelu\": false", "\"quick_gelu\": [1]");
  edit_file (fixture, "open_clip_config.json", "\"mean\": [", "\"mean\": {\"a\": [");
  edit_file (fixture, "open_clip_config.json", "],\n    \"std\"", "]},\n    \"std\"");
  ctx = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (umgclip_context_get_info (ctx)->vision_layers, ==, 2);
}

static void
test_openclip_image_size_wraps (Fixture *fixture, gconstpointer data)
{
  /* narrowed to gint this was -4: a grid of -2 whose square wrapped to the right size */
  edit_file (fixture, "open_clip_config.json", "\"image_size\": 48",
             "\"image_size\": [4294967292, 4294967292]");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "open_clip_config.json", "vision_cfg", "image_size",
          "4294967292");
  edit_file (fixture, "open_clip_config.json", "[4294967292, 4294967292]", "[48, {}]");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "open_clip_config.json", "image_size");
}

static void
test_openclip_mlp_ratio (Fixture *fixture, gconstpointer data)
{
  edit_file (fixture, "open_clip_config.json", "\"mlp_ratio\": 4", "\"mlp_ratio\": 1e300");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "open_clip_config.json", "vision_cfg", "mlp_ratio",
          "1e+300");
  /* an MLP width of 0 once loaded */
  edit_file (fixture, "open_clip_config.json", "1e300", "0.001");
  EXPECT (fixture->dir, UMGCLIP_ERROR_MODEL, "open_clip_config.json", "mlp_ratio", "0.001");
}

/* ---- total memory against the device's, with the limit forced through UMGCLIP_MEMORY_LIMIT ----
 */

static void
assert_message (const GError *error, const gchar *const *fragments)
{
  g_test_message ("%s", error->message);
  for (guint i = 0; fragments[i] != NULL; i++)
    if (strstr (error->message, fragments[i]) == NULL)
      g_error ("message \"%s\" lacks \"%s\"", error->message, fragments[i]);
}

#define ASSERT_MESSAGE(error, ...)                                                                 \
  assert_message (error, (const gchar *const[]){ __VA_ARGS__, NULL })

static void
test_memory_limit (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  g_autofree gfloat *pixels = g_new0 (gfloat, 3 * 1024 * 1024);
  gfloat embedding[64];
  UmgClipImageRequest request = { .embedding = embedding };

  /* the weights alone (3.4 MB of F16) do not fit 1 MiB */
  g_setenv ("UMGCLIP_MEMORY_LIMIT", "1M", TRUE);
  EXPECT (fixture->dir, UMGCLIP_ERROR_DEVICE, fixture->dir, "the model", "MiB of weights",
          "1.0 MiB of UMGCLIP_MEMORY_LIMIT");

  g_setenv ("UMGCLIP_MEMORY_LIMIT", "lots", TRUE);
  EXPECT (fixture->dir, UMGCLIP_ERROR_ARGUMENT, "UMGCLIP_MEMORY_LIMIT", "'lots'");

  /* 8 MiB hold the model and its own 32x32 input, not a 1024x1024 one */
  g_setenv ("UMGCLIP_MEMORY_LIMIT", "8M", TRUE);
  ctx = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_no_error (error);
  g_assert_true (umgclip_context_check_input_size (ctx, 32, 32, &error));
  g_assert_no_error (error);
  g_assert_false (umgclip_context_check_input_size (ctx, 1024, 1024, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE);
  ASSERT_MESSAGE (error, fixture->dir, "1024x1024", "activations",
                  "8.0 MiB of UMGCLIP_MEMORY_LIMIT");
  g_clear_error (&error);
  /* a pass at that size fails the same way before the backend allocates */
  g_assert_false (umgclip_encode_image (ctx, pixels, 1024, 1024, &request, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE);
  ASSERT_MESSAGE (error, "1024x1024", "UMGCLIP_MEMORY_LIMIT");
  g_clear_error (&error);
  /* the built graph is checked too: 256x256 passes the first estimate, not the arena's size */
  g_assert_false (umgclip_context_check_input_size (ctx, 256, 256, &error));
  g_assert_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_DEVICE);
  ASSERT_MESSAGE (error, "256x256", "activations");
  g_clear_error (&error);
  g_assert_true (umgclip_encode_image (ctx, pixels, 32, 32, &request, &error));
  g_assert_no_error (error);
  g_unsetenv ("UMGCLIP_MEMORY_LIMIT");

  /* without the override, the device's figure (this machine's RAM) holds the model */
  g_clear_pointer (&ctx, umgclip_context_free);
  ctx = umgclip_context_new (fixture->dir, UMGCLIP_DEVICE_CPU, -1, &error);
  g_assert_no_error (error);
  g_assert_false (umgclip_context_check_input_size (ctx, 1 << 20, 1 << 20, &error));
  ASSERT_MESSAGE (error, "1048576x1048576", "cpu");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2)
    g_error ("usage: test_model_errors MODEL_DIR");
  source_dir = argv[1];
  openclip_dir = argc > 2 ? argv[2] : NULL;
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
  ADD (header_longer_than_file);
  ADD (shape_of_2_60_elements);
  ADD (header_of_wrong_types);
  ADD (million_layers);
  ADD (wide_text_tower);
  ADD (huge_image_size);
  ADD (negative_patch_size);
  ADD (memory_limit);
  if (openclip_dir != NULL)
    {
#define ADD_OPENCLIP(name)                                                                         \
  g_test_add ("/model-errors/" #name, Fixture, "openclip", fixture_set_up, test_##name,            \
              fixture_tear_down)
      ADD_OPENCLIP (openclip_loads);
      ADD_OPENCLIP (openclip_image_size_wraps);
      ADD_OPENCLIP (openclip_mlp_ratio);
    }
  return g_test_run ();
}
