/* The store (store.h): the location picks SQLite or PostgreSQL; the calls go to that one. */
#include "store_backend.h"

#include "umgclip.h"

#include <string.h>

static void
hit_clear (gpointer data)
{
  UmgClipStoreHit *hit = data;
  g_free (hit->stream);
  g_free (hit->label);
  g_free (hit->tags_json);
}

gint
umg_store_hit_compare (gconstpointer a, gconstpointer b)
{
  const UmgClipStoreHit *x = a, *y = b;
  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return (x->frame_id > y->frame_id) - (x->frame_id < y->frame_id);
}

GArray *
umg_store_hits_new (void)
{
  GArray *hits = g_array_new (FALSE, TRUE, sizeof (UmgClipStoreHit));
  g_array_set_clear_func (hits, hit_clear);
  return hits;
}

/* location without a password, for messages */
static gchar *
printable_location (const gchar *location)
{
  g_autoptr (GRegex) password = g_regex_new ("(://[^:/@]*:)[^@/]*@", 0, 0, NULL);
  return g_regex_replace (password, location, -1, 0, "\\1***@", 0, NULL);
}

UmgClipStore *
umgclip_store_open (const gchar *location, gboolean create, GError **error)
{
  g_autofree gchar *printable = NULL;

  if (location == NULL || *location == '\0')
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "no index location: a SQLite file, or postgresql://HOST[:PORT]/DB");
      return NULL;
    }
  printable = printable_location (location);
  if (g_str_has_prefix (location, "postgresql://") || g_str_has_prefix (location, "postgres://"))
    return umg_store_postgres_open (location, printable, create, error);
  if (g_str_has_prefix (location, "sqlite:"))
    return umg_store_sqlite_open (location + strlen ("sqlite:"), printable, create, error);
  if (strstr (location, "://") != NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "index location '%s': unknown scheme (a SQLite file path, sqlite:PATH, or "
                   "postgresql://HOST[:PORT]/DB)",
                   printable);
      return NULL;
    }
  return umg_store_sqlite_open (location, printable, create, error);
}

void
umgclip_store_close (UmgClipStore *store)
{
  gchar *location;
  if (store == NULL)
    return;
  location = store->location;
  store->klass->close (store);
  g_free (location);
}

const gchar *
umgclip_store_kind (UmgClipStore *store)
{
  return store->klass->kind;
}

gboolean
umgclip_store_bind_model (UmgClipStore *store, const gchar *model_id, const gchar *model_dir,
                          guint dim, GError **error)
{
  if (dim == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "index %s: an embedding size of 0",
                   store->location);
      return FALSE;
    }
  if (!store->klass->bind_model (store, model_id, model_dir, dim, error))
    return FALSE;
  store->dim = dim;
  return TRUE;
}

gboolean
umgclip_store_get_model (UmgClipStore *store, gchar **model_id, gchar **model_dir, guint *dim,
                         GError **error)
{
  return store->klass->get_model (store, model_id, model_dir, dim, error);
}

gboolean
umgclip_store_add (UmgClipStore *store, const UmgClipStoreFrame *frame, GError **error)
{
  if (store->dim == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "index %s: no model bound before adding frames", store->location);
      return FALSE;
    }
  return store->klass->add (store, frame, error);
}

gboolean
umgclip_store_commit (UmgClipStore *store, GError **error)
{
  return store->klass->commit (store, error);
}

GArray *
umgclip_store_search (UmgClipStore *store, const gfloat *query, guint dim,
                      const UmgClipStoreQuery *what, GError **error)
{
  guint stored_dim = 0;
  g_autofree gchar *model_id = NULL, *model_dir = NULL;

  if (!umgclip_store_get_model (store, &model_id, &model_dir, &stored_dim, error))
    return NULL;
  if (dim != stored_dim)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "index %s holds %u-wide embeddings (model %s); the query has %u",
                   store->location, stored_dim, model_id, dim);
      return NULL;
    }
  if (what->top_k == 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "a search for 0 hits");
      return NULL;
    }
  return store->klass->search (store, query, dim, what, error);
}

GBytes *
umgclip_store_get_thumbnail (UmgClipStore *store, gint64 frame_id, GError **error)
{
  return store->klass->get_thumbnail (store, frame_id, error);
}
