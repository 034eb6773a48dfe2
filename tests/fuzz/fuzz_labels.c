/* Fuzzes the label inputs of the elements and the CLI: a labels list (commas), a labels-file
 * (lines), prompt templates (semicolons, or "imagenet") and the stuff list, separated by
 * FUZZ_SPLIT lines; then each label in each template is tokenized as umgclip_encode_labels
 * builds the prompts. */
#include "fuzz_util.h"
#include "tokenizer.h"
#include "umgclip.h"

#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  UmgTokenizer *tok = fuzz_clip_tokenizer ();
  const uint8_t *parts[4] = { NULL };
  gsize lengths[4] = { 0 };
  g_autofree gchar *labels_text = NULL, *file_text = NULL, *template_text = NULL;
  g_autofree gchar *stuff_text = NULL;
  g_auto (GStrv) labels = NULL, file_labels = NULL, templates = NULL;
  g_autofree gboolean *is_thing = NULL;
  guint n, n_labels, n_prompts = 0;

  n = fuzz_split (data, size, 4, parts, lengths);
  labels_text = fuzz_string (parts[0], lengths[0]);
  file_text = n > 1 ? fuzz_string (parts[1], lengths[1]) : NULL;
  template_text = n > 2 ? fuzz_string (parts[2], lengths[2]) : NULL;
  stuff_text = n > 3 ? fuzz_string (parts[3], lengths[3]) : NULL;

  labels = umgclip_split_list (labels_text, ",");
  file_labels = umgclip_split_list (file_text, "\n");
  templates = umgclip_prompt_templates (template_text);
  n_labels = g_strv_length (labels);
  for (guint i = 0; labels[i] != NULL; i++)
    g_assert (*labels[i] != '\0' && !g_ascii_isspace (*labels[i]));
  is_thing = umgclip_things_from_stuff ((const gchar *const *) labels, n_labels, stuff_text);
  (void) is_thing;

  for (guint l = 0; labels[l] != NULL && n_prompts < 256; l++)
    for (guint t = 0; templates[t] != NULL && n_prompts < 256; t++, n_prompts++)
      {
        g_auto (GStrv) halves = g_strsplit (templates[t], "{}", 2);
        g_autofree gchar *prompt = halves[1] != NULL
                                       ? g_strconcat (halves[0], labels[l], halves[1], NULL)
                                       : g_strdup_printf ("%s %s", templates[t], labels[l]);
        gint32 tokens[77];
        gint count = umg_tokenizer_encode (tok, prompt, tokens, 77);
        g_assert (count >= 2 && count <= 77);
      }
  for (guint l = 0; file_labels[l] != NULL && l < 256; l++)
    {
      gint32 tokens[77];
      g_assert (umg_tokenizer_encode (tok, file_labels[l], tokens, 77) >= 2);
    }
  return 0;
}
