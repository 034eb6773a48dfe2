/* Fuzzes tokenizing arbitrary bytes with CLIP's vocabulary: cleaning (HTML entities, quotes,
 * whitespace), the piece pattern and BPE. The first byte sets the context length. */
#include "fuzz_util.h"
#include "tokenizer.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  UmgTokenizer *tok = fuzz_clip_tokenizer ();
  g_autofree gchar *text = NULL;
  gint32 tokens[258];
  gint context, count;

  if (size < 1)
    return 0;
  context = 2 + data[0];
  text = fuzz_string (data + 1, size - 1);
  count = umg_tokenizer_encode (tok, text, tokens, context);
  g_assert (count >= 2 && count <= context);
  g_assert (tokens[0] == umg_tokenizer_start_id (tok));
  g_assert (tokens[count - 1] == umg_tokenizer_end_id (tok));
  for (gint i = 0; i < context; i++)
    g_assert (tokens[i] >= 0 && (guint) tokens[i] < umg_tokenizer_vocab_size (tok));
  return 0;
}
