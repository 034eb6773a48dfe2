/* .npy reader and writer (format version 1.0 and 2.0; float32, and int32 read as float). */
#include "npy.h"

#include "umgclip.h"

#include <string.h>

static const gchar npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

void
umg_array_clear (UmgArray *array)
{
  g_clear_pointer (&array->data, g_free);
  array->n_elements = 0;
  array->n_dims = 0;
}

/* The value text after 'key': in the header dict. */
static const gchar *
header_value (const gchar *header, const gchar *key)
{
  g_autofree gchar *quoted = g_strdup_printf ("'%s'", key);
  const gchar *at = strstr (header, quoted);
  if (at == NULL)
    return NULL;
  at = strchr (at + strlen (quoted), ':');
  if (at == NULL)
    return NULL;
  at++;
  while (*at == ' ')
    at++;
  return at;
}

/* data_size bounds the element count, so that the product is checked before it can wrap. */
static gboolean
parse_header (const gchar *path, const gchar *header, gsize data_size, UmgArray *array,
              gboolean *is_int32, GError **error)
{
  const gchar *descr = header_value (header, "descr");
  const gchar *order = header_value (header, "fortran_order");
  const gchar *shape = header_value (header, "shape");
  const gchar *cursor;

  if (descr == NULL || order == NULL || shape == NULL || *shape != '(')
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: malformed .npy header", path);
      return FALSE;
    }
  if (g_str_has_prefix (descr, "'<i4'"))
    *is_int32 = TRUE;
  else if (g_str_has_prefix (descr, "'<f4'"))
    *is_int32 = FALSE;
  else
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: array type is %.6s, expected float32 ('<f4') or int32 ('<i4')", path,
                   descr);
      return FALSE;
    }
  if (!g_str_has_prefix (order, "False"))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: Fortran-ordered arrays are not supported", path);
      return FALSE;
    }
  array->n_dims = 0;
  array->n_elements = 1;
  cursor = shape + 1;
  while (TRUE)
    {
      gchar *end;
      guint64 value;
      while (*cursor == ' ' || *cursor == ',')
        cursor++;
      if (*cursor == ')')
        break;
      value = g_ascii_strtoull (cursor, &end, 10);
      if (end == cursor || array->n_dims == G_N_ELEMENTS (array->shape) || value > G_MAXINT32)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: bad shape in header", path);
          return FALSE;
        }
      array->shape[array->n_dims++] = value;
      cursor = end;
    }
  for (guint i = 0; i < array->n_dims; i++)
    if (array->shape[i] == 0)
      array->n_elements = 0;
  for (guint i = 0; i < array->n_dims && array->n_elements != 0; i++)
    if (!g_size_checked_mul (&array->n_elements, array->n_elements, array->shape[i])
        || array->n_elements > data_size / 4)
      {
        g_autofree gchar *shown = g_strndup (shape, strcspn (shape, ")") + 1);
        g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                     "%s: shape %.80s has more elements than the %" G_GSIZE_FORMAT
                     " data bytes hold",
                     path, shown, data_size);
        array->n_elements = 0;
        array->n_dims = 0;
        return FALSE;
      }
  return TRUE;
}

gboolean
umg_npy_load (const gchar *path, UmgArray *array, GError **error)
{
  g_autofree gchar *contents = NULL;
  g_autofree gchar *header = NULL;
  g_autoptr (GError) local_error = NULL;
  gsize size, header_len, data_start;
  gboolean is_int32;

  memset (array, 0, sizeof *array);
  if (!g_file_get_contents (path, &contents, &size, &local_error))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "%s: %s", path, local_error->message);
      return FALSE;
    }
  if (size < 10 || memcmp (contents, npy_magic, 6) != 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: not a .npy file", path);
      return FALSE;
    }
  if (contents[6] == 1)
    {
      header_len = (guint8) contents[8] | ((gsize) (guint8) contents[9] << 8);
      data_start = 10 + header_len;
    }
  else
    {
      if (size < 12)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: truncated header", path);
          return FALSE;
        }
      header_len = 0;
      for (gint i = 11; i >= 8; i--)
        header_len = (header_len << 8) | (guint8) contents[i];
      data_start = 12 + header_len;
    }
  if (data_start > size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: truncated header", path);
      return FALSE;
    }
  header = g_strndup (contents + data_start - header_len, header_len);
  if (!parse_header (path, header, size - data_start, array, &is_int32, error))
    return FALSE;
  if (size - data_start != array->n_elements * 4)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: holds %" G_GSIZE_FORMAT " data bytes, its shape needs %" G_GSIZE_FORMAT,
                   path, size - data_start, array->n_elements * 4);
      return FALSE;
    }
  array->data = g_new (gfloat, MAX (array->n_elements, 1));
  memcpy (array->data, contents + data_start, array->n_elements * 4);
  if (is_int32)
    for (gsize i = 0; i < array->n_elements; i++)
      {
        gint32 value;
        memcpy (&value, array->data + i, 4);
        array->data[i] = value;
      }
  return TRUE;
}

gboolean
umg_npy_save (const gchar *path, const gfloat *data, guint n_dims, const gsize *shape,
              GError **error)
{
  g_autoptr (GString) header = g_string_new ("{'descr': '<f4', 'fortran_order': False, 'shape': (");
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  g_autoptr (GError) local_error = NULL;
  gsize n_elements = 1;
  guint8 prefix[10];

  for (guint i = 0; i < n_dims; i++)
    {
      g_string_append_printf (header, "%" G_GSIZE_FORMAT "%s", shape[i],
                              n_dims == 1 || i + 1 < n_dims ? ", " : "");
      n_elements *= shape[i];
    }
  g_string_append (header, "), }");
  /* pad with spaces so the data starts on a 64-byte boundary; the header ends in a newline */
  while ((10 + header->len + 1) % 64 != 0)
    g_string_append_c (header, ' ');
  g_string_append_c (header, '\n');

  memcpy (prefix, npy_magic, 6);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix[8] = header->len & 0xff;
  prefix[9] = header->len >> 8;
  g_byte_array_append (bytes, prefix, sizeof prefix);
  g_byte_array_append (bytes, (const guint8 *) header->str, header->len);
  g_byte_array_append (bytes, (const guint8 *) data, n_elements * 4);
  if (!g_file_set_contents (path, (const gchar *) bytes->data, bytes->len, &local_error))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "%s: %s", path, local_error->message);
      return FALSE;
    }
  return TRUE;
}
