/* Fuzzes the safetensors reader: the 8-byte header size, the JSON header and every tensor's
 * dtype, shape and data_offsets against the bytes that follow. */
#include "fuzz_util.h"
#include "safetensors.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const gchar *path = fuzz_write ("model.safetensors", data, size);
  g_autoptr (GError) error = NULL;
  UmgSafetensors *file = umg_safetensors_open (path, &error);

  if (file != NULL)
    {
      /* what the loader reads from an accepted file: the main dtype */
      (void) umg_safetensors_main_dtype (file);
      umg_safetensors_free (file);
    }
  else
    g_assert (error != NULL && error->message != NULL);
  return 0;
}
