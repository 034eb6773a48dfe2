/* Fuzzes a whole model directory as umgclip_context_new reads it on the CPU: the first byte
 * picks the layout (bit 0: OpenCLIP) and the tokenizer form (bit 1: bpe .gz); the rest holds
 * the configuration, the safetensors file and the tokenizer file(s), separated by FUZZ_SPLIT
 * lines. A context that loads encodes one text. */
#include "fuzz_util.h"
#include "umgclip.h"

#include <stdlib.h>

static const gchar *const all_files[] = { "config.json",
                                          "open_clip_config.json",
                                          "model.safetensors",
                                          "open_clip_model.safetensors",
                                          "vocab.json",
                                          "merges.txt",
                                          "bpe_simple_vocab_16e6.txt.gz",
                                          NULL };

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *dir = NULL;
  const uint8_t *parts[4] = { NULL };
  gsize lengths[4] = { 0 };
  gboolean openclip, bpe_gz;
  guint n;
  UmgClipContext *ctx;

  if (size < 1)
    return 0;
  g_setenv ("UMGCLIP_THREADS", "1", FALSE);
  openclip = data[0] & 1;
  bpe_gz = data[0] & 2;
  for (guint i = 0; all_files[i] != NULL; i++)
    fuzz_remove (all_files[i]);
  n = fuzz_split (data + 1, size - 1, 4, parts, lengths);
  fuzz_write (openclip ? "open_clip_config.json" : "config.json", parts[0], lengths[0]);
  if (n > 1)
    fuzz_write (openclip ? "open_clip_model.safetensors" : "model.safetensors", parts[1],
                lengths[1]);
  if (n > 2 && bpe_gz)
    fuzz_write ("bpe_simple_vocab_16e6.txt.gz", parts[2], lengths[2]);
  else if (n > 3)
    {
      fuzz_write ("vocab.json", parts[2], lengths[2]);
      fuzz_write ("merges.txt", parts[3], lengths[3]);
    }
  dir = g_path_get_dirname (fuzz_path ("config.json"));
  ctx = umgclip_context_new (dir, UMGCLIP_DEVICE_CPU, -1, &error);
  if (ctx != NULL)
    {
      const UmgClipInfo *info = umgclip_context_get_info (ctx);
      const gchar *texts[] = { "a photo of a cat" };
      g_autofree gfloat *embedding = g_new (gfloat, info->embed_dim);
      if (!umgclip_encode_text (ctx, texts, 1, embedding, &error))
        g_assert (error != NULL);
      umgclip_context_free (ctx);
    }
  else
    g_assert (error != NULL);
  if (error != NULL && g_getenv ("FUZZ_VERBOSE") != NULL)
    g_printerr ("%s\n", error->message);
  return 0;
}
