/* Fuzzes the HuggingFace and OpenCLIP configurations: the first byte picks the layout, the rest
 * is config.json (with preprocessor_config.json after a FUZZ_SPLIT line) or
 * open_clip_config.json; the weights are the matching test model's, so that a configuration
 * that parses goes on to be checked against real tensors. */
#include "fuzz_util.h"
#include "model.h"

#include <glib/gstdio.h>

static gchar *
link_weights (const gchar *model, const gchar *name)
{
  g_autofree gchar *source = g_build_filename (fuzz_models_dir (), model, name, NULL);
  const gchar *target = fuzz_path (name);
  if (!g_file_test (target, G_FILE_TEST_EXISTS) && symlink (source, target) != 0)
    g_error ("cannot link %s", target);
  return g_path_get_dirname (target);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree gchar *dir = NULL;
  g_autoptr (GError) error = NULL;
  const uint8_t *parts[2];
  gsize lengths[2];
  UmgModel *model;
  gboolean openclip;

  if (size < 1)
    return 0;
  openclip = data[0] & 1;
  dir = link_weights ("tiny-hf-f16", "model.safetensors");
  g_free (dir);
  dir = link_weights ("tiny-openclip-bf16", "open_clip_model.safetensors");
  fuzz_remove ("config.json");
  fuzz_remove ("open_clip_config.json");
  fuzz_remove ("preprocessor_config.json");
  if (openclip)
    fuzz_write ("open_clip_config.json", data + 1, size - 1);
  else
    {
      guint n = fuzz_split (data + 1, size - 1, 2, parts, lengths);
      fuzz_write ("config.json", parts[0], lengths[0]);
      if (n > 1)
        fuzz_write ("preprocessor_config.json", parts[1], lengths[1]);
    }
  model = umg_model_load (dir, &error);
  if (model != NULL)
    {
      /* an accepted model is consistent: its grid covers the image */
      g_assert (model->vision.grid > 0
                && model->vision.grid * model->vision.patch_size == model->vision.image_size);
      g_assert (model->vision.tower.mlp_width > 0 && model->text.tower.mlp_width > 0);
      umg_model_free (model);
    }
  else
    g_assert (error != NULL);
  if (error != NULL && g_getenv ("FUZZ_VERBOSE") != NULL)
    g_printerr ("%s\n", error->message);
  return 0;
}
