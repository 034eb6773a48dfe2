/* Fuzzes the tokenizer files. The first byte picks the form: vocab.json and merges.txt
 * (separated by a FUZZ_SPLIT line), the bytes as bpe_simple_vocab_16e6.txt.gz, or the bytes
 * gzip-compressed here first, so that the merge lines behind the gzip layer are reached too.
 * A tokenizer that loads then encodes a fixed text. */
#include "fuzz_util.h"
#include "tokenizer.h"

#include <gio/gio.h>

static gchar *
gzip (const uint8_t *data, gsize size, gsize *out_size)
{
  g_autoptr (GZlibCompressor) compressor = g_zlib_compressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP, 1);
  g_autoptr (GOutputStream) sink = g_memory_output_stream_new_resizable ();
  g_autoptr (GOutputStream) gz = g_converter_output_stream_new (sink, G_CONVERTER (compressor));
  gsize written;
  if (!g_output_stream_write_all (gz, data, size, &written, NULL, NULL)
      || !g_output_stream_close (gz, NULL, NULL))
    g_error ("gzip failed");
  *out_size = g_memory_output_stream_get_data_size (G_MEMORY_OUTPUT_STREAM (sink));
  return g_memory_output_stream_steal_data (G_MEMORY_OUTPUT_STREAM (sink));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  UmgTokenizer *tok = NULL;
  const uint8_t *parts[2];
  gsize lengths[2];

  if (size < 1)
    return 0;
  switch (data[0] % 3)
    {
    case 0:
      if (fuzz_split (data + 1, size - 1, 2, parts, lengths) < 2)
        return 0;
      tok = umg_tokenizer_new_from_files (fuzz_write ("vocab.json", parts[0], lengths[0]),
                                          fuzz_write ("merges.txt", parts[1], lengths[1]), &error);
      break;
    case 1:
      tok = umg_tokenizer_new_from_bpe_gz (fuzz_write ("bpe.txt.gz", data + 1, size - 1), &error);
      break;
    default:
      {
        gsize gz_size;
        g_autofree gchar *gz = gzip (data + 1, size - 1, &gz_size);
        tok = umg_tokenizer_new_from_bpe_gz (fuzz_write ("bpe.txt.gz", gz, gz_size), &error);
      }
      break;
    }
  if (tok != NULL)
    {
      gint32 tokens[77];
      gint count = umg_tokenizer_encode (tok, "a photo of a cat, <|endoftext|> 42", tokens, 77);
      g_assert (count >= 2 && count <= 77);
      for (gint i = 0; i < count; i++)
        g_assert (tokens[i] >= 0 && (guint) tokens[i] < umg_tokenizer_vocab_size (tok));
      umg_tokenizer_free (tok);
    }
  else
    g_assert (error != NULL);
  return 0;
}
