/* The index of video that umgclipindex writes and `umgclip search` reads: frame embeddings with
 * their stream, pts and wall time (and a thumbnail on request), and the embeddings, boxes and
 * tags of tagged regions. In a SQLite file (WAL, several writers at once) or in PostgreSQL with
 * pgvector, chosen by the location. Its own library (libumgclipstore): the model runtime needs
 * neither database. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _UmgClipStore UmgClipStore;

/* location: a file path (or sqlite:PATH) for SQLite, postgresql://... or postgres://... (libpq
 * connection URIs) for PostgreSQL. create: make the file or schema when missing; otherwise a
 * missing index is an error. Errors name the location. */
UmgClipStore *umgclip_store_open (const gchar *location, gboolean create, GError **error);
void umgclip_store_close (UmgClipStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (UmgClipStore, umgclip_store_close)

/* The kind of store: "sqlite" or "postgresql". */
const gchar *umgclip_store_kind (UmgClipStore *store);

/* Records the model the index is built with (an empty index), or checks that it is the one an
 * index was built with: the same embedding size, else UMGCLIP_ERROR_MODEL naming both. */
gboolean umgclip_store_bind_model (UmgClipStore *store, const gchar *model_id,
                                   const gchar *model_dir, guint dim, GError **error);
/* The model of an index: its id, the directory it was loaded from, its embedding size. FALSE
 * (UMGCLIP_ERROR_FORMAT) for an index that has none (nothing was ever indexed). */
gboolean umgclip_store_get_model (UmgClipStore *store, gchar **model_id, gchar **model_dir,
                                  guint *dim, GError **error);

typedef struct
{
  gint x, y, w, h;         /* frame pixels */
  const gchar *label;      /* best tag, may be NULL */
  gdouble score;           /* its confidence */
  const gchar *tags_json;  /* ranked tags with scores, JSON; may be NULL */
  const gfloat *embedding; /* dim floats, L2-normalised */
} UmgClipStoreRegion;

typedef struct
{
  const gchar *stream;
  gint64 pts;              /* nanoseconds, -1 when unknown */
  gint64 wall_us;          /* microseconds since the epoch, -1 when unknown */
  const gfloat *embedding; /* dim floats, L2-normalised */
  GBytes *thumbnail;       /* JPEG, or NULL */
  const UmgClipStoreRegion *regions;
  guint n_regions;
} UmgClipStoreFrame;

/* Adds a frame and its regions to the current transaction (opened as needed). */
gboolean umgclip_store_add (UmgClipStore *store, const UmgClipStoreFrame *frame, GError **error);
/* Commits the current transaction: what a crash loses is at most what was added since. */
gboolean umgclip_store_commit (UmgClipStore *store, GError **error);

typedef struct
{
  const gchar *stream;       /* only this stream, or NULL */
  gint64 since_us, until_us; /* wall-time window, G_MININT64 / G_MAXINT64 for none */
  guint top_k;
  gboolean regions; /* search regions instead of frames */
  /* frames: score each by the best of its own cosine and its regions' (a frame that holds the
   * object scores as its region does); FALSE: by the frame embedding alone */
  gboolean frames_by_regions;
} UmgClipStoreQuery;

typedef struct
{
  gint64 frame_id;
  gchar *stream;
  gint64 pts, wall_us;
  gdouble score;   /* cosine with the query */
  gboolean region; /* the fields below are set */
  gint x, y, w, h;
  gchar *label;
  gchar *tags_json;
} UmgClipStoreHit;

/* The top_k frames (or regions) by cosine with query (dim floats, L2-normalised), best first;
 * equal scores in insertion order. With frames_by_regions a frame whose best region scores
 * above the frame itself is that region's hit (region TRUE, its box and tags), so every frame
 * is there at most once. SQLite: exact, every stored vector scored; PostgreSQL:
 * pgvector's cosine distance (exact on tables small enough for the planner to scan, its index
 * otherwise). Returns a GArray of UmgClipStoreHit that clears its hits. */
GArray *umgclip_store_search (UmgClipStore *store, const gfloat *query, guint dim,
                              const UmgClipStoreQuery *what, GError **error);

/* The thumbnail of a frame (NULL without one). */
GBytes *umgclip_store_get_thumbnail (UmgClipStore *store, gint64 frame_id, GError **error);

G_END_DECLS
