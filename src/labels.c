/* Label lists as users write them: one splitter for labels, templates, files and filters, and
 * one rule for which labels are stuff, shared by the command line and the elements. */
#include "umgclip.h"

#include <string.h>

GStrv
umgclip_split_list (const gchar *text, const gchar *separators)
{
  GPtrArray *items = g_ptr_array_new ();
  g_auto (GStrv) parts = g_strsplit_set (text != NULL ? text : "", separators, -1);

  for (guint i = 0; parts[i] != NULL; i++)
    {
      gchar *item = g_strstrip (parts[i]);
      /* GLib's UTF-8 functions (casefold, the JSON writer) read past the end of invalid text */
      if (*item != '\0')
        g_ptr_array_add (items, g_utf8_make_valid (item, -1));
    }
  g_ptr_array_add (items, NULL);
  return (GStrv) g_ptr_array_free (items, FALSE);
}

gboolean
umgclip_check_utf8 (const gchar *what, const gchar *text, GError **error)
{
  const gchar *end;
  if (text == NULL || g_utf8_validate (text, -1, &end))
    return TRUE;
  g_set_error (error, G_CONVERT_ERROR, G_CONVERT_ERROR_ILLEGAL_SEQUENCE,
               "%s is not UTF-8 text: byte 0x%02x at offset %" G_GSIZE_FORMAT, what,
               (guint) (guchar) *end, (gsize) (end - text));
  return FALSE;
}

gboolean *
umgclip_things_from_stuff (const gchar *const *labels, guint n_labels, const gchar *stuff)
{
  g_auto (GStrv) names = umgclip_split_list (stuff, ",");
  gboolean *is_thing = g_new (gboolean, MAX (n_labels, 1));

  for (guint i = 0; names[i] != NULL; i++)
    {
      gchar *folded = g_utf8_casefold (names[i], -1);
      g_free (names[i]);
      names[i] = folded;
    }
  for (guint l = 0; l < n_labels; l++)
    {
      g_autofree gchar *stripped = g_strstrip (g_strdup (labels[l]));
      g_autofree gchar *label = g_utf8_casefold (stripped, -1);
      is_thing[l] = !g_strv_contains ((const gchar *const *) names, label);
    }
  return is_thing;
}

/* OpenAI's 80 prompts for zero-shot ImageNet (the CLIP paper's prompt ensembling), in their
 * order. */
static const gchar *const imagenet_templates[] = {
  "a bad photo of a {}.",
  "a photo of many {}.",
  "a sculpture of a {}.",
  "a photo of the hard to see {}.",
  "a low resolution photo of the {}.",
  "a rendering of a {}.",
  "graffiti of a {}.",
  "a bad photo of the {}.",
  "a cropped photo of the {}.",
  "a tattoo of a {}.",
  "the embroidered {}.",
  "a photo of a hard to see {}.",
  "a bright photo of a {}.",
  "a photo of a clean {}.",
  "a photo of a dirty {}.",
  "a dark photo of the {}.",
  "a drawing of a {}.",
  "a photo of my {}.",
  "the plastic {}.",
  "a photo of the cool {}.",
  "a close-up photo of a {}.",
  "a black and white photo of the {}.",
  "a painting of the {}.",
  "a painting of a {}.",
  "a pixelated photo of the {}.",
  "a sculpture of the {}.",
  "a bright photo of the {}.",
  "a cropped photo of a {}.",
  "a plastic {}.",
  "a photo of the dirty {}.",
  "a jpeg corrupted photo of a {}.",
  "a blurry photo of the {}.",
  "a photo of the {}.",
  "a good photo of the {}.",
  "a rendering of the {}.",
  "a {} in a video game.",
  "a photo of one {}.",
  "a doodle of a {}.",
  "a close-up photo of the {}.",
  "a photo of a {}.",
  "the origami {}.",
  "the {} in a video game.",
  "a sketch of a {}.",
  "a doodle of the {}.",
  "a origami {}.",
  "a low resolution photo of a {}.",
  "the toy {}.",
  "a rendition of the {}.",
  "a photo of the clean {}.",
  "a photo of a large {}.",
  "a rendition of a {}.",
  "a photo of a nice {}.",
  "a photo of a weird {}.",
  "a blurry photo of a {}.",
  "a cartoon {}.",
  "art of a {}.",
  "a sketch of the {}.",
  "a embroidered {}.",
  "a pixelated photo of a {}.",
  "itap of the {}.",
  "a jpeg corrupted photo of the {}.",
  "a good photo of a {}.",
  "a plushie {}.",
  "a photo of the nice {}.",
  "a photo of the small {}.",
  "a photo of the weird {}.",
  "the cartoon {}.",
  "art of the {}.",
  "a drawing of the {}.",
  "a photo of the large {}.",
  "a black and white photo of a {}.",
  "the plushie {}.",
  "a dark photo of a {}.",
  "itap of a {}.",
  "graffiti of the {}.",
  "a toy {}.",
  "itap of my {}.",
  "a photo of a cool {}.",
  "a photo of a small {}.",
  "a tattoo of the {}.",
  NULL,
};

G_STATIC_ASSERT (G_N_ELEMENTS (imagenet_templates) == 80 + 1);

GStrv
umgclip_prompt_templates (const gchar *text)
{
  g_autofree gchar *stripped = g_strstrip (g_strdup (text != NULL ? text : ""));
  if (g_ascii_strcasecmp (stripped, "imagenet") == 0)
    return g_strdupv ((gchar **) imagenet_templates);
  return umgclip_split_list (text, ";");
}
