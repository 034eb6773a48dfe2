/* safetensors files: memory-mapped, header parsed and every entry checked against the file. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  UMG_ST_F32,
  UMG_ST_F16,
  UMG_ST_BF16,
} UmgStDtype;

typedef struct
{
  gchar *name;
  UmgStDtype dtype;
  guint n_dims;
  gsize shape[8];
  gsize n_elements;
  const guint8 *data; /* inside the mapping, n_bytes long */
  gsize n_bytes;
} UmgStTensor;

typedef struct _UmgSafetensors UmgSafetensors;

UmgSafetensors *umg_safetensors_open (const gchar *path, GError **error);
void umg_safetensors_free (UmgSafetensors *file);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgSafetensors, umg_safetensors_free)

const gchar *umg_safetensors_path (UmgSafetensors *file);
guint umg_safetensors_n_tensors (UmgSafetensors *file);
gsize umg_safetensors_data_size (UmgSafetensors *file); /* bytes after the header */
/* NULL when the file has no tensor of that name. */
const UmgStTensor *umg_safetensors_get (UmgSafetensors *file, const gchar *name);
/* The dtype shared by most tensors, for display. */
UmgStDtype umg_safetensors_main_dtype (UmgSafetensors *file);
const gchar *umg_st_dtype_name (UmgStDtype dtype);

G_END_DECLS
