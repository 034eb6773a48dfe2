/* Fuzzes the .npy reader (encode-image --tensor): magic, version, header length and the
 * header's descr, fortran_order and shape against the data bytes. */
#include "fuzz_util.h"
#include "npy.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const gchar *path = fuzz_write ("x.npy", data, size);
  g_autoptr (GError) error = NULL;
  UmgArray array;

  if (umg_npy_load (path, &array, &error))
    {
      gsize elements = 1;
      for (guint i = 0; i < array.n_dims; i++)
        elements *= array.shape[i];
      /* an accepted array holds what its shape says: touch the last element */
      g_assert (elements == array.n_elements);
      if (array.n_elements > 0)
        {
          volatile gfloat last = array.data[array.n_elements - 1];
          (void) last;
        }
      umg_array_clear (&array);
    }
  else
    g_assert (error != NULL);
  return 0;
}
