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

/* Moves hit into hits: its strings are the copy's now (hit keeps its other fields). */
static void
take_hit (GArray *hits, UmgClipStoreHit *hit)
{
  g_array_append_vals (hits, hit, 1);
  hit->stream = hit->label = hit->tags_json = NULL;
}

/* Frames by the best of their own and their regions' cosines. The frames' top_k and the best
 * regions of at least top_k distinct frames hold every frame of the answer: a frame left out
 * of both would score below top_k frames that are in them. */
static GArray *
search_frames_by_regions (UmgClipStore *store, const gfloat *query, guint dim,
                          const UmgClipStoreQuery *what, GError **error)
{
  UmgClipStoreQuery of_regions = *what;
  g_autoptr (GArray) frames = NULL, regions = NULL;
  g_autoptr (GHashTable) seen = g_hash_table_new (g_int64_hash, g_int64_equal);
  GArray *hits;

  if ((frames = store->klass->search (store, query, dim, what, error)) == NULL)
    return NULL;
  of_regions.regions = TRUE;
  of_regions.top_k = what->top_k;
  for (;;)
    {
      g_clear_pointer (&regions, g_array_unref);
      of_regions.top_k = MIN (of_regions.top_k, G_MAXUINT / 4) * 4;
      if ((regions = store->klass->search (store, query, dim, &of_regions, error)) == NULL)
        return NULL;
      g_hash_table_remove_all (seen);
      for (guint i = 0; i < regions->len; i++)
        g_hash_table_add (seen, &g_array_index (regions, UmgClipStoreHit, i).frame_id);
      if (g_hash_table_size (seen) >= what->top_k || regions->len < of_regions.top_k)
        break;
    }

  /* each frame once: the frame's hit, or its best region's where that scores higher */
  hits = umg_store_hits_new ();
  g_hash_table_remove_all (seen);
  for (guint i = 0; i < regions->len; i++)
    {
      UmgClipStoreHit *region = &g_array_index (regions, UmgClipStoreHit, i);
      UmgClipStoreHit *frame = NULL;
      if (!g_hash_table_add (seen, &region->frame_id))
        continue; /* regions come best first: this frame's best was looked at */
      for (guint j = 0; j < frames->len && frame == NULL; j++)
        if (g_array_index (frames, UmgClipStoreHit, j).frame_id == region->frame_id)
          frame = &g_array_index (frames, UmgClipStoreHit, j);
      if (frame != NULL && frame->score >= region->score)
        continue; /* the frame's own hit goes in below */
      if (frame != NULL)
        frame->frame_id = -1; /* replaced by its region */
      take_hit (hits, region);
    }
  for (guint j = 0; j < frames->len; j++)
    if (g_array_index (frames, UmgClipStoreHit, j).frame_id >= 0)
      take_hit (hits, &g_array_index (frames, UmgClipStoreHit, j));
  g_array_sort (hits, umg_store_hit_compare);
  if (hits->len > what->top_k)
    g_array_set_size (hits, what->top_k);
  return hits;
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
  if (what->regions || !what->frames_by_regions)
    return store->klass->search (store, query, dim, what, error);
  return search_frames_by_regions (store, query, dim, what, error);
}

GBytes *
umgclip_store_get_thumbnail (UmgClipStore *store, gint64 frame_id, GError **error)
{
  return store->klass->get_thumbnail (store, frame_id, error);
}
