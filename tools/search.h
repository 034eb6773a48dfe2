/* `umgclip search`: text against an index that umgclipindex wrote. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  const gchar *db;               /* the index location */
  const gchar *query;            /* the text */
  const gchar *const *templates; /* prompt templates, averaged */
  const gchar *model;            /* NULL: the model the index records */
  const gchar *device;           /* auto, cpu, vulkan, vulkan:N */
  guint top_k;
  gboolean regions;        /* regions instead of frames */
  gboolean frames_only;    /* frames by their own embedding alone, not also their regions' */
  const gchar *stream;     /* only this stream, or NULL */
  const gchar *since;      /* ISO 8601 or seconds since the epoch, or NULL */
  const gchar *until;      /* likewise */
  const gchar *thumbnails; /* a directory for the hits' thumbnails, or NULL */
} UmgClipSearchOptions;

/* Appends the hits to out as one JSON object; errors name the location, model or value. */
gboolean umgclip_tool_search (const UmgClipSearchOptions *options, GString *out, GError **error);

G_END_DECLS
