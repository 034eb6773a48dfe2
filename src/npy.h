/* NumPy .npy files of float32, the exchange format for tensors between the runtime, its
 * command-line tool and the reference scripts. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  guint n_dims;
  gsize shape[8];
  gsize n_elements;
  gfloat *data;
} UmgArray;

void umg_array_clear (UmgArray *array);

/* Reads little-endian float32 ('<f4') or int32 ('<i4', converted to float), C order. Errors name
 * the file and what is wrong. */
gboolean umg_npy_load (const gchar *path, UmgArray *array, GError **error);
gboolean umg_npy_save (const gchar *path, const gfloat *data, guint n_dims, const gsize *shape,
                       GError **error);

G_END_DECLS
