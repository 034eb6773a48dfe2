/* Backend helpers shared by every backend. */
#include "backend.h"

void
umg_backend_free (UmgBackend *backend)
{
  if (backend != NULL)
    backend->klass->free (backend);
}
