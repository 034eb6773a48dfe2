/* safetensors reader: an 8-byte little-endian header size, a JSON header naming every tensor's
 * dtype, shape and byte range, then the raw data. The data stays mapped; nothing is copied. */
#include "safetensors.h"

#include "umgclip.h"

#include <json-glib/json-glib.h>
#include <string.h>

struct _UmgSafetensors
{
  gchar *path;
  GMappedFile *mapping;
  GHashTable *tensors; /* name -> UmgStTensor * */
  gsize data_size;     /* bytes after the header */
};

static void
st_tensor_free (gpointer data)
{
  UmgStTensor *tensor = data;
  g_free (tensor->name);
  g_free (tensor);
}

const gchar *
umg_st_dtype_name (UmgStDtype dtype)
{
  switch (dtype)
    {
    case UMG_ST_F16:
      return "F16";
    case UMG_ST_BF16:
      return "BF16";
    case UMG_ST_F32:
    default:
      return "F32";
    }
}

static gboolean
parse_dtype (const gchar *text, UmgStDtype *dtype)
{
  if (g_strcmp0 (text, "F32") == 0)
    *dtype = UMG_ST_F32;
  else if (g_strcmp0 (text, "F16") == 0)
    *dtype = UMG_ST_F16;
  else if (g_strcmp0 (text, "BF16") == 0)
    *dtype = UMG_ST_BF16;
  else
    return FALSE;
  return TRUE;
}

static gboolean
parse_entry (UmgSafetensors *file, const gchar *name, JsonNode *node, const guint8 *data,
             gsize data_size, GError **error)
{
  JsonObject *entry;
  JsonArray *shape, *offsets;
  const gchar *dtype_text;
  g_autofree UmgStTensor *tensor = g_new0 (UmgStTensor, 1);
  gint64 begin, end;
  gsize element_size;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    goto bad_entry;
  entry = json_node_get_object (node);
  if (!json_object_has_member (entry, "dtype") || !json_object_has_member (entry, "shape")
      || !json_object_has_member (entry, "data_offsets"))
    goto bad_entry;
  dtype_text = JSON_NODE_HOLDS_VALUE (json_object_get_member (entry, "dtype"))
                   ? json_object_get_string_member_with_default (entry, "dtype", NULL)
                   : NULL;
  if (dtype_text == NULL || !parse_dtype (dtype_text, &tensor->dtype))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: tensor '%s' has dtype %s; supported are F32, F16 and BF16", file->path,
                   name, dtype_text ? dtype_text : "(not a string)");
      return FALSE;
    }
  /* json-glib warns (a critical) when asked for an array that is something else */
  if (!JSON_NODE_HOLDS_ARRAY (json_object_get_member (entry, "shape"))
      || !JSON_NODE_HOLDS_ARRAY (json_object_get_member (entry, "data_offsets")))
    goto bad_entry;
  shape = json_object_get_array_member (entry, "shape");
  offsets = json_object_get_array_member (entry, "data_offsets");
  if (shape == NULL || offsets == NULL || json_array_get_length (offsets) != 2
      || json_array_get_length (shape) > G_N_ELEMENTS (tensor->shape))
    goto bad_entry;

  tensor->n_dims = json_array_get_length (shape);
  tensor->n_elements = 1;
  for (guint i = 0; i < tensor->n_dims; i++)
    {
      JsonNode *dim = json_array_get_element (shape, i);
      gint64 value;
      if (!JSON_NODE_HOLDS_VALUE (dim) || json_node_get_value_type (dim) != G_TYPE_INT64)
        goto bad_entry;
      value = json_node_get_int (dim);
      if (value < 0 || value > G_MAXINT32)
        goto bad_entry;
      tensor->shape[i] = value;
    }
  /* The data bytes bound the product; a count that wrapped would pass the byte check below. */
  for (guint i = 0; i < tensor->n_dims && tensor->n_elements != 0; i++)
    if (tensor->shape[i] == 0)
      tensor->n_elements = 0;
  for (guint i = 0; i < tensor->n_dims && tensor->n_elements != 0; i++)
    if (!g_size_checked_mul (&tensor->n_elements, tensor->n_elements, tensor->shape[i])
        || tensor->n_elements > data_size)
      {
        g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                     "%s: tensor '%s' has a shape with more elements than the %" G_GSIZE_FORMAT
                     " data bytes hold",
                     file->path, name, data_size);
        return FALSE;
      }
  if (!JSON_NODE_HOLDS_VALUE (json_array_get_element (offsets, 0))
      || !JSON_NODE_HOLDS_VALUE (json_array_get_element (offsets, 1))
      || json_node_get_value_type (json_array_get_element (offsets, 0)) != G_TYPE_INT64
      || json_node_get_value_type (json_array_get_element (offsets, 1)) != G_TYPE_INT64)
    goto bad_entry;
  begin = json_array_get_int_element (offsets, 0);
  end = json_array_get_int_element (offsets, 1);
  element_size = tensor->dtype == UMG_ST_F32 ? 4 : 2;
  if (begin < 0 || end < begin || (guint64) end > data_size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: tensor '%s' has data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                   "] outside the %" G_GSIZE_FORMAT " data bytes (file truncated?)",
                   file->path, name, begin, end, data_size);
      return FALSE;
    }
  if ((gsize) (end - begin) != tensor->n_elements * element_size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: tensor '%s' holds %" G_GINT64_FORMAT " bytes but its shape and dtype %s "
                   "need %" G_GSIZE_FORMAT,
                   file->path, name, end - begin, dtype_text, tensor->n_elements * element_size);
      return FALSE;
    }
  tensor->name = g_strdup (name);
  tensor->data = data + begin;
  tensor->n_bytes = end - begin;
  name = tensor->name;
  g_hash_table_insert (file->tensors, (gpointer) name, g_steal_pointer (&tensor));
  return TRUE;

bad_entry:
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
               "%s: header entry for tensor '%s' is malformed (needs dtype, shape of "
               "non-negative integers and data_offsets [begin, end])",
               file->path, name);
  return FALSE;
}

UmgSafetensors *
umg_safetensors_open (const gchar *path, GError **error)
{
  g_autoptr (UmgSafetensors) file = g_new0 (UmgSafetensors, 1);
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local_error = NULL;
  JsonNode *root;
  JsonObjectIter iter;
  const gchar *name;
  JsonNode *node;
  const guint8 *bytes;
  gsize size;
  guint64 header_size = 0;

  file->path = g_strdup (path);
  file->tensors = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, st_tensor_free);
  file->mapping = g_mapped_file_new (path, FALSE, &local_error);
  if (file->mapping == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "%s: cannot open: %s", path,
                   local_error->message);
      return NULL;
    }
  bytes = (const guint8 *) g_mapped_file_get_contents (file->mapping);
  size = g_mapped_file_get_length (file->mapping);
  if (size < 8)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: %" G_GSIZE_FORMAT " bytes is too short for a safetensors file", path, size);
      return NULL;
    }
  for (gint i = 7; i >= 0; i--)
    header_size = (header_size << 8) | bytes[i];
  if (header_size > size - 8)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "%s: header size %" G_GUINT64_FORMAT " exceeds the file size %" G_GSIZE_FORMAT
                   " (truncated or not a safetensors file)",
                   path, header_size, size);
      return NULL;
    }

  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, (const gchar *) bytes + 8, header_size, &local_error))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: header is not valid JSON: %s",
                   path, local_error->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: header is not a JSON object",
                   path);
      return NULL;
    }
  file->data_size = size - 8 - header_size;
  json_object_iter_init (&iter, json_node_get_object (root));
  while (json_object_iter_next (&iter, &name, &node))
    {
      if (g_strcmp0 (name, "__metadata__") == 0)
        continue;
      if (!parse_entry (file, name, node, bytes + 8 + header_size, size - 8 - header_size, error))
        return NULL;
    }
  return g_steal_pointer (&file);
}

void
umg_safetensors_free (UmgSafetensors *file)
{
  if (file == NULL)
    return;
  g_clear_pointer (&file->tensors, g_hash_table_unref);
  g_clear_pointer (&file->mapping, g_mapped_file_unref);
  g_free (file->path);
  g_free (file);
}

guint
umg_safetensors_n_tensors (UmgSafetensors *file)
{
  return g_hash_table_size (file->tensors);
}

gsize
umg_safetensors_data_size (UmgSafetensors *file)
{
  return file->data_size;
}

const gchar *
umg_safetensors_path (UmgSafetensors *file)
{
  return file->path;
}

const UmgStTensor *
umg_safetensors_get (UmgSafetensors *file, const gchar *name)
{
  return g_hash_table_lookup (file->tensors, name);
}

UmgStDtype
umg_safetensors_main_dtype (UmgSafetensors *file)
{
  gsize counts[3] = { 0 };
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, file->tensors);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    counts[((UmgStTensor *) value)->dtype] += ((UmgStTensor *) value)->n_bytes;
  if (counts[UMG_ST_F16] > counts[UMG_ST_F32] && counts[UMG_ST_F16] >= counts[UMG_ST_BF16])
    return UMG_ST_F16;
  if (counts[UMG_ST_BF16] > counts[UMG_ST_F32])
    return UMG_ST_BF16;
  return UMG_ST_F32;
}
