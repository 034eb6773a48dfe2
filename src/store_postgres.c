/* The index in PostgreSQL with pgvector, for many cameras on many machines: the schema and an
 * HNSW index (cosine) made when missing, embeddings as vector(dim), searches with pgvector's
 * cosine distance. Talks to the server through libpq. */
#include "store_backend.h"

#include "umgclip.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

typedef struct
{
  UmgClipStore parent;
  PGconn *conn;
  gboolean in_transaction;
} PostgresStore;

static gboolean
fail (PostgresStore *self, GError **error, const gchar *what, PGresult *result)
{
  const gchar *message = result != NULL ? PQresultErrorMessage (result) : "";
  if (message == NULL || *message == '\0')
    message = PQerrorMessage (self->conn);
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "index %s: %s: %s", self->parent.location,
               what, g_strstrip (g_strdup (message)));
  return FALSE;
}

/* Runs sql with text parameters; returns the result (to PQclear) or NULL with error. */
static PGresult *
query (PostgresStore *self, const gchar *sql, gint n_params, const gchar *const *params,
       const gint *lengths, const gint *formats, const gchar *what, GError **error)
{
  PGresult *result = PQexecParams (self->conn, sql, n_params, NULL, params, lengths, formats, 0);
  ExecStatusType status = PQresultStatus (result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    {
      fail (self, error, what, result);
      PQclear (result);
      return NULL;
    }
  return result;
}

/* Runs sql without parameters: one or more statements. */
static gboolean
command (PostgresStore *self, const gchar *sql, const gchar *what, GError **error)
{
  PGresult *result = PQexec (self->conn, sql);
  ExecStatusType status = PQresultStatus (result);
  gboolean ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  if (!ok)
    fail (self, error, what, result);
  PQclear (result);
  return ok;
}

/* pgvector's text form of a vector: [v0,v1,...] */
static gchar *
vector_text (const gfloat *values, guint dim)
{
  GString *text = g_string_sized_new (dim * 12 + 2);
  gchar number[G_ASCII_DTOSTR_BUF_SIZE];
  g_string_append_c (text, '[');
  for (guint i = 0; i < dim; i++)
    {
      if (i > 0)
        g_string_append_c (text, ',');
      /* 9 significant digits: every float32 comes back to the same bits */
      g_string_append (text, g_ascii_formatd (number, sizeof number, "%.9g", values[i]));
    }
  g_string_append_c (text, ']');
  return g_string_free (text, FALSE);
}

static gboolean
postgres_get_model (UmgClipStore *store, gchar **model_id, gchar **model_dir, guint *dim,
                    GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  PGresult *result = query (self,
                            "SELECT (SELECT value FROM umgclip_meta WHERE key = 'model-id'),"
                            " (SELECT value FROM umgclip_meta WHERE key = 'model-dir'),"
                            " (SELECT value FROM umgclip_meta WHERE key = 'dim')",
                            0, NULL, NULL, NULL, "reading the index's model", error);
  guint64 parsed = 0;
  gboolean ok;

  if (result == NULL)
    return FALSE;
  ok = PQntuples (result) == 1 && !PQgetisnull (result, 0, 0) && !PQgetisnull (result, 0, 2)
       && g_ascii_string_to_unsigned (PQgetvalue (result, 0, 2), 10, 1, 65536, &parsed, NULL);
  if (ok)
    {
      *model_id = g_strdup (PQgetvalue (result, 0, 0));
      *model_dir = g_strdup (PQgetvalue (result, 0, 1));
      *dim = (guint) parsed;
    }
  else
    g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT,
                 "index %s records no model: nothing has been indexed into it", store->location);
  PQclear (result);
  return ok;
}

static gboolean
postgres_bind_model (UmgClipStore *store, const gchar *model_id, const gchar *model_dir, guint dim,
                     GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  g_autofree gchar *stored_id = NULL, *stored_dir = NULL, *size = g_strdup_printf ("%u", dim);
  g_autofree gchar *tables = NULL;
  g_autoptr (GError) missing = NULL;
  const gchar *params[3] = { model_id, model_dir != NULL ? model_dir : "", size };
  guint stored_dim = 0;
  PGresult *result;

  /* pipelines starting together: one makes the schema, the others wait and read it */
  if (!command (self, "BEGIN", "starting a transaction", error)
      || !command (self, "SELECT pg_advisory_xact_lock (7166307)", "locking the schema", error))
    return FALSE;
  if (postgres_get_model (store, &stored_id, &stored_dir, &stored_dim, &missing))
    {
      command (self, "ROLLBACK", "ending a transaction", NULL);
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
  tables = g_strdup_printf (
      "CREATE TABLE IF NOT EXISTS umgclip_frames (id bigserial PRIMARY KEY, stream text NOT NULL,"
      " pts bigint NOT NULL, wall bigint NOT NULL, embedding vector(%u) NOT NULL,"
      " thumbnail bytea);"
      "CREATE INDEX IF NOT EXISTS umgclip_frames_stream_wall ON umgclip_frames (stream, wall);"
      "CREATE INDEX IF NOT EXISTS umgclip_frames_embedding ON umgclip_frames"
      " USING hnsw (embedding vector_cosine_ops);"
      "CREATE TABLE IF NOT EXISTS umgclip_regions (id bigserial PRIMARY KEY,"
      " frame_id bigint NOT NULL REFERENCES umgclip_frames (id) ON DELETE CASCADE,"
      " x integer NOT NULL, y integer NOT NULL, w integer NOT NULL, h integer NOT NULL,"
      " label text, score double precision, tags text, embedding vector(%u) NOT NULL);"
      "CREATE INDEX IF NOT EXISTS umgclip_regions_frame ON umgclip_regions (frame_id);"
      "CREATE INDEX IF NOT EXISTS umgclip_regions_embedding ON umgclip_regions"
      " USING hnsw (embedding vector_cosine_ops);",
      dim, dim);
  result = NULL;
  if (command (self, tables, "making the schema", error))
    result = query (self,
                    "INSERT INTO umgclip_meta VALUES ('model-id', $1), ('model-dir', $2),"
                    " ('dim', $3)",
                    3, params, NULL, NULL, "recording the model", error);
  PQclear (result);
  if (result == NULL)
    {
      command (self, "ROLLBACK", "ending a transaction", NULL);
      return FALSE;
    }
  return command (self, "COMMIT", "making the schema", error);
}

static gboolean
postgres_add (UmgClipStore *store, const UmgClipStoreFrame *frame, GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  g_autofree gchar *pts = g_strdup_printf ("%" G_GINT64_FORMAT, frame->pts);
  g_autofree gchar *wall = g_strdup_printf ("%" G_GINT64_FORMAT, frame->wall_us);
  g_autofree gchar *embedding = vector_text (frame->embedding, store->dim);
  const gchar *params[5] = {
    frame->stream,
    pts,
    wall,
    embedding,
    frame->thumbnail != NULL ? g_bytes_get_data (frame->thumbnail, NULL) : NULL,
  };
  const gint lengths[5]
      = { 0, 0, 0, 0, frame->thumbnail != NULL ? (gint) g_bytes_get_size (frame->thumbnail) : 0 };
  const gint formats[5] = { 0, 0, 0, 0, 1 };
  g_autofree gchar *frame_id = NULL;
  PGresult *result;

  if (!self->in_transaction)
    {
      if (!command (self, "BEGIN", "starting a transaction", error))
        return FALSE;
      self->in_transaction = TRUE;
    }
  result = query (self,
                  "INSERT INTO umgclip_frames (stream, pts, wall, embedding, thumbnail)"
                  " VALUES ($1, $2, $3, $4::vector, $5) RETURNING id",
                  5, params, lengths, formats, "adding a frame", error);
  if (result == NULL)
    return FALSE;
  frame_id = g_strdup (PQgetvalue (result, 0, 0));
  PQclear (result);
  for (guint i = 0; i < frame->n_regions; i++)
    {
      const UmgClipStoreRegion *region = &frame->regions[i];
      g_autofree gchar *x = g_strdup_printf ("%d", region->x),
                       *y = g_strdup_printf ("%d", region->y);
      g_autofree gchar *w = g_strdup_printf ("%d", region->w),
                       *h = g_strdup_printf ("%d", region->h);
      g_autofree gchar *score = g_strdup_printf ("%.17g", region->score);
      g_autofree gchar *vector = vector_text (region->embedding, store->dim);
      const gchar *region_params[9]
          = { frame_id, x, y, w, h, region->label, score, region->tags_json, vector };
      result = query (self,
                      "INSERT INTO umgclip_regions (frame_id, x, y, w, h, label, score, tags,"
                      " embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::vector)",
                      9, region_params, NULL, NULL, "adding a region", error);
      if (result == NULL)
        return FALSE;
      PQclear (result);
    }
  return TRUE;
}

static gboolean
postgres_commit (UmgClipStore *store, GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  if (!self->in_transaction)
    return TRUE;
  self->in_transaction = FALSE;
  return command (self, "COMMIT", "committing", error);
}

static GArray *
postgres_search (UmgClipStore *store, const gfloat *query_vector, guint dim,
                 const UmgClipStoreQuery *what, GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  g_autofree gchar *vector = vector_text (query_vector, dim);
  g_autofree gchar *since = g_strdup_printf ("%" G_GINT64_FORMAT, what->since_us);
  g_autofree gchar *until = g_strdup_printf ("%" G_GINT64_FORMAT, what->until_us);
  g_autofree gchar *limit = g_strdup_printf ("%u", what->top_k);
  const gchar *params[5] = { vector, what->stream, since, until, limit };
  /* by distance alone, so that the HNSW index can answer (the planner's choice: on small
   * tables a scan is exact anyway); ties are put in insertion order below, as in SQLite */
  const gchar *sql
      = what->regions
            ? "SELECT f.id, f.stream, f.pts, f.wall, 1 - (r.embedding <=> $1::vector),"
              " r.x, r.y, r.w, r.h, r.label, r.tags FROM umgclip_regions r"
              " JOIN umgclip_frames f ON f.id = r.frame_id"
              " WHERE ($2::text IS NULL OR f.stream = $2) AND f.wall >= $3 AND f.wall <= $4"
              " ORDER BY r.embedding <=> $1::vector LIMIT $5"
            : "SELECT f.id, f.stream, f.pts, f.wall, 1 - (f.embedding <=> $1::vector)"
              " FROM umgclip_frames f"
              " WHERE ($2::text IS NULL OR f.stream = $2) AND f.wall >= $3 AND f.wall <= $4"
              " ORDER BY f.embedding <=> $1::vector LIMIT $5";
  /* HNSW's candidate list: 8 per hit wanted, at least 200 (pgvector's default of 40 found
   * 0.40 of the exact top 10 over 10^5 vectors in bench/bench_retrieval.py), within pgvector's
   * range of 1 to 1000 */
  g_autofree gchar *ef_search = g_strdup_printf (
      "SET hnsw.ef_search = %u", (guint) CLAMP ((guint64) what->top_k * 8, 200, 1000));
  PGresult *result;
  GArray *hits;

  /* HNSW finds at most ef_search rows; with a stream or time filter pgvector >= 0.8 scans on
   * until it has top_k that pass (older versions lack the setting: its failure is ignored) */
  if (!command (self, ef_search, "setting hnsw.ef_search", error))
    return NULL;
  PQclear (PQexec (self->conn, "SET hnsw.iterative_scan = relaxed_order"));
  result = query (self, sql, 5, params, NULL, NULL, "searching", error);
  if (result == NULL)
    return NULL;
  hits = umg_store_hits_new ();
  for (gint row = 0; row < PQntuples (result); row++)
    {
      UmgClipStoreHit hit = {
        .frame_id = g_ascii_strtoll (PQgetvalue (result, row, 0), NULL, 10),
        .stream = g_strdup (PQgetvalue (result, row, 1)),
        .pts = g_ascii_strtoll (PQgetvalue (result, row, 2), NULL, 10),
        .wall_us = g_ascii_strtoll (PQgetvalue (result, row, 3), NULL, 10),
        .score = g_ascii_strtod (PQgetvalue (result, row, 4), NULL),
        .region = what->regions,
      };
      if (what->regions)
        {
          hit.x = atoi (PQgetvalue (result, row, 5));
          hit.y = atoi (PQgetvalue (result, row, 6));
          hit.w = atoi (PQgetvalue (result, row, 7));
          hit.h = atoi (PQgetvalue (result, row, 8));
          hit.label = PQgetisnull (result, row, 9) ? NULL : g_strdup (PQgetvalue (result, row, 9));
          hit.tags_json
              = PQgetisnull (result, row, 10) ? NULL : g_strdup (PQgetvalue (result, row, 10));
        }
      g_array_append_val (hits, hit);
    }
  PQclear (result);
  g_array_sort (hits, umg_store_hit_compare);
  return hits;
}

static GBytes *
postgres_get_thumbnail (UmgClipStore *store, gint64 frame_id, GError **error)
{
  PostgresStore *self = (PostgresStore *) store;
  g_autofree gchar *id = g_strdup_printf ("%" G_GINT64_FORMAT, frame_id);
  const gchar *params[1] = { id };
  PGresult *result = PQexecParams (self->conn, "SELECT thumbnail FROM umgclip_frames WHERE id = $1",
                                   1, NULL, params, NULL, NULL, 1);
  GBytes *bytes = NULL;

  if (PQresultStatus (result) != PGRES_TUPLES_OK)
    fail (self, error, "reading a thumbnail", result);
  else if (PQntuples (result) == 1 && !PQgetisnull (result, 0, 0))
    bytes = g_bytes_new (PQgetvalue (result, 0, 0), PQgetlength (result, 0, 0));
  PQclear (result);
  return bytes;
}

static void
postgres_close (UmgClipStore *store)
{
  PostgresStore *self = (PostgresStore *) store;
  if (self->in_transaction)
    postgres_commit (store, NULL);
  PQfinish (self->conn);
  g_free (self);
}

/* Notices ("relation already exists, skipping") go to the debug log, not to stderr. */
static void
log_notice (void *data, const char *message)
{
  g_debug ("postgresql: %s", message);
}

static const UmgClipStoreClass postgres_class = {
  .kind = "postgresql",
  .bind_model = postgres_bind_model,
  .get_model = postgres_get_model,
  .add = postgres_add,
  .commit = postgres_commit,
  .search = postgres_search,
  .get_thumbnail = postgres_get_thumbnail,
  .close = postgres_close,
};

UmgClipStore *
umg_store_postgres_open (const gchar *uri, const gchar *location, gboolean create, GError **error)
{
  PostgresStore *self = g_new0 (PostgresStore, 1);
  /* an unreachable server fails in seconds, not after the system's TCP timeout; what the URI
   * says (it is expanded from dbname, after these) wins */
  const gchar *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
  const gchar *values[] = { "5", "umgclip", uri, NULL };
  gchar *parse_error = NULL;
  PQconninfoOption *options;

  self->parent.klass = &postgres_class;
  self->parent.location = g_strdup (location);
  options = PQconninfoParse (uri, &parse_error);
  if (options == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "index location '%s': %s",
                   location, parse_error != NULL ? g_strstrip (parse_error) : "malformed");
      PQfreemem (parse_error);
      umgclip_store_close (&self->parent);
      return NULL;
    }
  PQconninfoFree (options);
  self->conn = PQconnectdbParams (keys, values, 1);
  if (PQstatus (self->conn) != CONNECTION_OK)
    {
      fail (self, error, "cannot connect", NULL);
      umgclip_store_close (&self->parent);
      return NULL;
    }
  PQsetNoticeProcessor (self->conn, log_notice, NULL);
  if ((create
       && !command (self, "CREATE EXTENSION IF NOT EXISTS vector", "enabling pgvector", error))
      || (create
          && !command (self,
                       "CREATE TABLE IF NOT EXISTS umgclip_meta (key text PRIMARY KEY,"
                       " value text NOT NULL)",
                       "making the schema", error)))
    {
      umgclip_store_close (&self->parent);
      return NULL;
    }
  return &self->parent;
}
