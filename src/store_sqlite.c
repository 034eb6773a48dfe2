/* The index in a SQLite file: WAL journal (several pipelines write one file at once, readers
 * never block writers, a killed writer loses only its open transaction), embeddings as
 * little-endian float32 blobs, exact search by BLAS over blocks of rows (search.c). */
#include "store_backend.h"

#include "umgclip.h"

#include <sqlite3.h>
#include <string.h>

/* Rows scored at once in a search. */
#define SEARCH_BLOCK 4096

typedef struct
{
  UmgClipStore parent;
  sqlite3 *db;
  sqlite3_stmt *insert_frame, *insert_region;
  gboolean in_transaction;
} SqliteStore;

static gboolean
fail (SqliteStore *self, GError **error, const gchar *what)
{
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "index %s: %s: %s", self->parent.location,
               what, self->db != NULL ? sqlite3_errmsg (self->db) : "");
  return FALSE;
}

static gboolean
exec (SqliteStore *self, const gchar *sql, GError **error)
{
  return sqlite3_exec (self->db, sql, NULL, NULL, NULL) == SQLITE_OK || fail (self, error, sql);
}

static sqlite3_stmt *
prepare (SqliteStore *self, const gchar *sql, GError **error)
{
  sqlite3_stmt *stmt = NULL;
  if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
    {
      fail (self, error, "preparing a statement");
      return NULL;
    }
  return stmt;
}

static const gchar *const schema
    = "CREATE TABLE IF NOT EXISTS umgclip_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY, stream TEXT NOT NULL,"
      " pts INTEGER NOT NULL, wall INTEGER NOT NULL, embedding BLOB NOT NULL, thumbnail BLOB);"
      "CREATE INDEX IF NOT EXISTS frames_stream_wall ON frames (stream, wall);"
      "CREATE TABLE IF NOT EXISTS regions (id INTEGER PRIMARY KEY,"
      " frame_id INTEGER NOT NULL REFERENCES frames (id), x INTEGER NOT NULL,"
      " y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL, label TEXT, score REAL,"
      " tags TEXT, embedding BLOB NOT NULL);"
      "CREATE INDEX IF NOT EXISTS regions_frame ON regions (frame_id);";

static gchar *
meta_value (SqliteStore *self, const gchar *key, GError **error)
{
  g_autoptr (GError) local = NULL;
  sqlite3_stmt *stmt = prepare (self, "SELECT value FROM umgclip_meta WHERE key = ?1", &local);
  gchar *value = NULL;
  gint rc;

  if (stmt == NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  rc = sqlite3_step (stmt);
  if (rc == SQLITE_ROW)
    value = g_strdup ((const gchar *) sqlite3_column_text (stmt, 0));
  else if (rc != SQLITE_DONE)
    fail (self, error, "reading the index's model");
  sqlite3_finalize (stmt);
  return value;
}

static gboolean
set_meta (SqliteStore *self, const gchar *key, const gchar *value, GError **error)
{
  sqlite3_stmt *stmt = prepare (self, "INSERT OR REPLACE INTO umgclip_meta VALUES (?1, ?2)", error);
  gboolean ok;
  if (stmt == NULL)
    return FALSE;
  sqlite3_bind_text (stmt, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, value, -1, SQLITE_STATIC);
  ok = sqlite3_step (stmt) == SQLITE_DONE || fail (self, error, "recording the model");
  sqlite3_finalize (stmt);
  return ok;
}

static gboolean
sqlite_get_model (UmgClipStore *store, gchar **model_id, gchar **model_dir, guint *dim,
                  GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  g_autoptr (GError) local = NULL;
  g_autofree gchar *id = meta_value (self, "model-id", &local);
  g_autofree gchar *dir = NULL, *size = NULL;
  guint64 parsed = 0;

  if (local == NULL)
    dir = meta_value (self, "model-dir", &local);
  if (local == NULL)
    size = meta_value (self, "dim", &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (id == NULL || size == NULL || !g_ascii_string_to_unsigned (size, 10, 1, 65536, &parsed, NULL))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                   "index %s records no model: nothing has been indexed into it", store->location);
      return FALSE;
    }
  *model_id = g_steal_pointer (&id);
  *model_dir = g_steal_pointer (&dir);
  *dim = (guint) parsed;
  return TRUE;
}

static gboolean
sqlite_bind_model (UmgClipStore *store, const gchar *model_id, const gchar *model_dir, guint dim,
                   GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  g_autofree gchar *stored_id = NULL, *stored_dir = NULL, *size = g_strdup_printf ("%u", dim);
  g_autoptr (GError) missing = NULL;
  guint stored_dim = 0;
  gboolean ok;

  /* one writer decides: a second pipeline starting at the same time reads what it wrote */
  if (!exec (self, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (sqlite_get_model (store, &stored_id, &stored_dir, &stored_dim, &missing))
    {
      exec (self, "ROLLBACK", NULL);
      if (stored_dim != dim || g_strcmp0 (stored_id, model_id) != 0)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                       "index %s was built with model %s (%u-wide embeddings); this is model %s "
                       "(%u-wide): use another index or that model",
                       store->location, stored_id, stored_dim, model_id, dim);
          return FALSE;
        }
      return TRUE;
    }
  if (!g_error_matches (missing, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT))
    {
      exec (self, "ROLLBACK", NULL);
      g_propagate_error (error, g_steal_pointer (&missing));
      return FALSE;
    }
  ok = set_meta (self, "model-id", model_id, error)
       && set_meta (self, "model-dir", model_dir != NULL ? model_dir : "", error)
       && set_meta (self, "dim", size, error) && exec (self, "COMMIT", error);
  if (!ok)
    exec (self, "ROLLBACK", NULL);
  return ok;
}

static gboolean
sqlite_add (UmgClipStore *store, const UmgClipStoreFrame *frame, GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  const gsize bytes = (gsize) store->dim * sizeof (gfloat);
  sqlite3_int64 frame_id;

  if (!self->in_transaction)
    {
      if (!exec (self, "BEGIN", error))
        return FALSE;
      self->in_transaction = TRUE;
    }
  sqlite3_reset (self->insert_frame);
  sqlite3_bind_text (self->insert_frame, 1, frame->stream, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (self->insert_frame, 2, frame->pts);
  sqlite3_bind_int64 (self->insert_frame, 3, frame->wall_us);
  sqlite3_bind_blob (self->insert_frame, 4, frame->embedding, (gint) bytes, SQLITE_STATIC);
  if (frame->thumbnail != NULL)
    sqlite3_bind_blob (self->insert_frame, 5, g_bytes_get_data (frame->thumbnail, NULL),
                       (gint) g_bytes_get_size (frame->thumbnail), SQLITE_STATIC);
  else
    sqlite3_bind_null (self->insert_frame, 5);
  if (sqlite3_step (self->insert_frame) != SQLITE_DONE)
    return fail (self, error, "adding a frame");
  frame_id = sqlite3_last_insert_rowid (self->db);
  for (guint i = 0; i < frame->n_regions; i++)
    {
      const UmgClipStoreRegion *region = &frame->regions[i];
      sqlite3_stmt *stmt = self->insert_region;
      sqlite3_reset (stmt);
      sqlite3_bind_int64 (stmt, 1, frame_id);
      sqlite3_bind_int (stmt, 2, region->x);
      sqlite3_bind_int (stmt, 3, region->y);
      sqlite3_bind_int (stmt, 4, region->w);
      sqlite3_bind_int (stmt, 5, region->h);
      sqlite3_bind_text (stmt, 6, region->label, -1, SQLITE_STATIC);
      sqlite3_bind_double (stmt, 7, region->score);
      sqlite3_bind_text (stmt, 8, region->tags_json, -1, SQLITE_STATIC);
      sqlite3_bind_blob (stmt, 9, region->embedding, (gint) bytes, SQLITE_STATIC);
      if (sqlite3_step (stmt) != SQLITE_DONE)
        return fail (self, error, "adding a region");
    }
  return TRUE;
}

static gboolean
sqlite_commit (UmgClipStore *store, GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  if (!self->in_transaction)
    return TRUE;
  self->in_transaction = FALSE;
  return exec (self, "COMMIT", error);
}

/* Fills hit from its row: frames (stream, pts, wall) or regions joined with their frame. */
static gboolean
read_hit (SqliteStore *self, sqlite3_stmt *details, gint64 id, gboolean region,
          UmgClipStoreHit *hit, GError **error)
{
  sqlite3_reset (details);
  sqlite3_bind_int64 (details, 1, id);
  if (sqlite3_step (details) != SQLITE_ROW)
    return fail (self, error, "reading a hit");
  hit->frame_id = sqlite3_column_int64 (details, 0);
  hit->stream = g_strdup ((const gchar *) sqlite3_column_text (details, 1));
  hit->pts = sqlite3_column_int64 (details, 2);
  hit->wall_us = sqlite3_column_int64 (details, 3);
  hit->region = region;
  if (region)
    {
      hit->x = sqlite3_column_int (details, 4);
      hit->y = sqlite3_column_int (details, 5);
      hit->w = sqlite3_column_int (details, 6);
      hit->h = sqlite3_column_int (details, 7);
      hit->label = g_strdup ((const gchar *) sqlite3_column_text (details, 8));
      hit->tags_json = g_strdup ((const gchar *) sqlite3_column_text (details, 9));
    }
  return TRUE;
}

static GArray *
sqlite_search (UmgClipStore *store, const gfloat *query, guint dim, const UmgClipStoreQuery *what,
               GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  const gchar *filter = " (?1 IS NULL OR f.stream = ?1) AND f.wall >= ?2 AND f.wall <= ?3";
  g_autofree gchar *scan_sql = g_strdup_printf (
      what->regions
          ? "SELECT r.id, r.embedding FROM regions r JOIN frames f ON f.id = r.frame_id WHERE %s"
          : "SELECT f.id, f.embedding FROM frames f WHERE %s",
      filter);
  const gchar *details_sql
      = what->regions ? "SELECT f.id, f.stream, f.pts, f.wall, r.x, r.y, r.w, r.h, r.label, r.tags"
                        " FROM regions r JOIN frames f ON f.id = r.frame_id WHERE r.id = ?1"
                      : "SELECT f.id, f.stream, f.pts, f.wall FROM frames f WHERE f.id = ?1";
  g_autoptr (UmgClipTopK) top = umgclip_top_k_new (what->top_k);
  g_autofree gfloat *block = g_new (gfloat, (gsize) SEARCH_BLOCK * dim);
  g_autofree gint64 *ids = g_new (gint64, SEARCH_BLOCK);
  sqlite3_stmt *scan = prepare (self, scan_sql, error), *details = NULL;
  GArray *hits = NULL;
  const UmgClipScored *best;
  guint n_block = 0, n_best;
  gint rc;

  if (scan == NULL)
    return NULL;
  if (what->stream != NULL)
    sqlite3_bind_text (scan, 1, what->stream, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (scan, 2, what->since_us);
  sqlite3_bind_int64 (scan, 3, what->until_us);
  while ((rc = sqlite3_step (scan)) == SQLITE_ROW)
    {
      if (sqlite3_column_bytes (scan, 1) != (gint) (dim * sizeof (gfloat)))
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                       "index %s: row %" G_GINT64_FORMAT " holds a %d-byte embedding, %u "
                       "expected",
                       store->location, (gint64) sqlite3_column_int64 (scan, 0),
                       sqlite3_column_bytes (scan, 1), (guint) (dim * sizeof (gfloat)));
          goto out;
        }
      ids[n_block] = sqlite3_column_int64 (scan, 0);
      memcpy (block + (gsize) n_block * dim, sqlite3_column_blob (scan, 1), dim * sizeof (gfloat));
      if (++n_block == SEARCH_BLOCK)
        {
          umgclip_top_k_score (top, block, ids, n_block, dim, query);
          n_block = 0;
        }
    }
  if (rc != SQLITE_DONE)
    {
      fail (self, error, "searching");
      goto out;
    }
  umgclip_top_k_score (top, block, ids, n_block, dim, query);

  details = prepare (self, details_sql, error);
  if (details == NULL)
    goto out;
  hits = umg_store_hits_new ();
  best = umgclip_top_k_finish (top, &n_best);
  for (guint i = 0; i < n_best; i++)
    {
      UmgClipStoreHit hit = { .score = best[i].score };
      if (!read_hit (self, details, best[i].id, what->regions, &hit, error))
        {
          g_clear_pointer (&hits, g_array_unref);
          goto out;
        }
      g_array_append_val (hits, hit);
    }
out:
  sqlite3_finalize (scan);
  sqlite3_finalize (details);
  return hits;
}

static GBytes *
sqlite_get_thumbnail (UmgClipStore *store, gint64 frame_id, GError **error)
{
  SqliteStore *self = (SqliteStore *) store;
  sqlite3_stmt *stmt = prepare (self, "SELECT thumbnail FROM frames WHERE id = ?1", error);
  GBytes *bytes = NULL;

  if (stmt == NULL)
    return NULL;
  sqlite3_bind_int64 (stmt, 1, frame_id);
  if (sqlite3_step (stmt) == SQLITE_ROW && sqlite3_column_type (stmt, 0) == SQLITE_BLOB)
    bytes = g_bytes_new (sqlite3_column_blob (stmt, 0), sqlite3_column_bytes (stmt, 0));
  sqlite3_finalize (stmt);
  return bytes;
}

static void
sqlite_close (UmgClipStore *store)
{
  SqliteStore *self = (SqliteStore *) store;
  if (self->in_transaction)
    sqlite_commit (store, NULL);
  sqlite3_finalize (self->insert_frame);
  sqlite3_finalize (self->insert_region);
  sqlite3_close (self->db);
  g_free (self);
}

static const UmgClipStoreClass sqlite_class = {
  .kind = "sqlite",
  .bind_model = sqlite_bind_model,
  .get_model = sqlite_get_model,
  .add = sqlite_add,
  .commit = sqlite_commit,
  .search = sqlite_search,
  .get_thumbnail = sqlite_get_thumbnail,
  .close = sqlite_close,
};

UmgClipStore *
umg_store_sqlite_open (const gchar *path, const gchar *location, gboolean create, GError **error)
{
  SqliteStore *self = g_new0 (SqliteStore, 1);
  gint flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);

  self->parent.klass = &sqlite_class;
  self->parent.location = g_strdup (location);
  if (!create && !g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "index %s: no such file", location);
      umgclip_store_close (&self->parent);
      return NULL;
    }
  if (sqlite3_open_v2 (path, &self->db, flags, NULL) != SQLITE_OK
      /* a writer waits for another writer's transaction rather than failing */
      || sqlite3_busy_timeout (self->db, 30000) != SQLITE_OK
      || !exec (self, "PRAGMA journal_mode = WAL", error)
      || !exec (self, "PRAGMA synchronous = NORMAL", error)
      || !exec (self, "PRAGMA foreign_keys = ON", error)
      /* a reader (umgclip search) never writes an index that is not there */
      || (create && !exec (self, schema, error)))
    {
      if (error != NULL && *error == NULL)
        fail (self, error, "opening");
      umgclip_store_close (&self->parent);
      return NULL;
    }
  self->insert_frame = prepare (
      self,
      "INSERT INTO frames (stream, pts, wall, embedding, thumbnail) VALUES (?1, ?2, ?3, ?4, ?5)",
      error);
  self->insert_region
      = self->insert_frame == NULL
            ? NULL
            : prepare (self,
                       "INSERT INTO regions (frame_id, x, y, w, h, label, score, tags, embedding)"
                       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                       error);
  if (self->insert_region == NULL)
    {
      umgclip_store_close (&self->parent);
      return NULL;
    }
  return &self->parent;
}
