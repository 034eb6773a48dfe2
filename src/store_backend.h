/* What the two stores (store_sqlite.c, store_postgres.c) implement behind store.h. */
#pragma once

#include "store.h"

G_BEGIN_DECLS

typedef struct
{
  const gchar *kind;
  gboolean (*bind_model) (UmgClipStore *store, const gchar *model_id, const gchar *model_dir,
                          guint dim, GError **error);
  gboolean (*get_model) (UmgClipStore *store, gchar **model_id, gchar **model_dir, guint *dim,
                         GError **error);
  gboolean (*add) (UmgClipStore *store, const UmgClipStoreFrame *frame, GError **error);
  gboolean (*commit) (UmgClipStore *store, GError **error);
  GArray *(*search) (UmgClipStore *store, const gfloat *query, guint dim,
                     const UmgClipStoreQuery *what, GError **error);
  GBytes *(*get_thumbnail) (UmgClipStore *store, gint64 frame_id, GError **error);
  void (*close) (UmgClipStore *store);
} UmgClipStoreClass;

struct _UmgClipStore
{
  const UmgClipStoreClass *klass;
  gchar *location; /* as given, for messages (passwords removed) */
  guint dim;       /* of the bound model, 0 before */
};

UmgClipStore *umg_store_sqlite_open (const gchar *path, const gchar *location, gboolean create,
                                     GError **error);
UmgClipStore *umg_store_postgres_open (const gchar *uri, const gchar *location, gboolean create,
                                       GError **error);

/* A GArray of UmgClipStoreHit that frees each hit's strings. */
GArray *umg_store_hits_new (void);
/* Best first: a higher score, then the lower frame id. */
gint umg_store_hit_compare (gconstpointer a, gconstpointer b);

G_END_DECLS
