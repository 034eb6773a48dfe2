/* `umgclip search`: the query encoded by the model the index records (or --model, checked
 * against it), the store searched (store.h), the hits printed as JSON and, on request, their
 * thumbnails written out. */
#include "search.h"

#include "store.h"
#include "umgclip.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <string.h>

/* A time bound: ISO 8601 (local time unless it names a zone) or seconds since the epoch. */
static gboolean
parse_time (const gchar *option, const gchar *text, gint64 *us, GError **error)
{
  gchar *end = NULL;
  gdouble seconds;
  g_autoptr (GTimeZone) local = NULL;
  g_autoptr (GDateTime) time = NULL;

  if (text == NULL)
    return TRUE;
  seconds = g_ascii_strtod (text, &end);
  if (end != text && *end == '\0')
    {
      *us = (gint64) (seconds * G_USEC_PER_SEC);
      return TRUE;
    }
  local = g_time_zone_new_local ();
  time = g_date_time_new_from_iso8601 (text, local);
  if (time == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%s: '%s' is neither an ISO 8601 time (2026-12-01T08:30:00Z) nor seconds "
                   "since the epoch",
                   option, text);
      return FALSE;
    }
  *us = g_date_time_to_unix (time) * G_USEC_PER_SEC + g_date_time_get_microsecond (time);
  return TRUE;
}

static gchar *
format_wall (gint64 us)
{
  g_autoptr (GDateTime) seconds = g_date_time_new_from_unix_utc (us / G_USEC_PER_SEC);
  g_autoptr (GDateTime) time
      = seconds != NULL ? g_date_time_add (seconds, us % G_USEC_PER_SEC) : NULL;
  return time != NULL ? g_date_time_format_iso8601 (time) : NULL;
}

/* The model to encode the query with: --model, or the one the index records. */
static gchar *
pick_model (UmgClipStore *store, const UmgClipSearchOptions *options, GError **error)
{
  g_autofree gchar *model_id = NULL, *model_dir = NULL, *given_id = NULL;
  guint dim;

  if (!umgclip_store_get_model (store, &model_id, &model_dir, &dim, error))
    return NULL;
  if (options->model != NULL)
    {
      given_id = g_path_get_basename (options->model);
      if (g_strcmp0 (given_id, model_id) != 0)
        g_printerr ("umgclip: warning: index %s was built with model '%s'; searching with '%s'\n",
                    options->db, model_id, given_id);
      return g_strdup (options->model);
    }
  if (model_dir == NULL || !g_file_test (model_dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_MODEL,
                   "index %s was built with model '%s' from %s, which is not here; name its "
                   "directory with --model",
                   options->db, model_id, model_dir != NULL ? model_dir : "an unrecorded place");
      return NULL;
    }
  return g_steal_pointer (&model_dir);
}

static gboolean
write_thumbnail (UmgClipStore *store, const UmgClipStoreHit *hit, guint rank,
                 const UmgClipSearchOptions *options, JsonBuilder *json, GError **error)
{
  g_autoptr (GBytes) jpeg = umgclip_store_get_thumbnail (store, hit->frame_id, error);
  g_autofree gchar *name = NULL, *path = NULL;

  json_builder_set_member_name (json, "thumbnail");
  if (jpeg == NULL)
    {
      if (error != NULL && *error != NULL)
        return FALSE;
      g_printerr ("umgclip: warning: index %s holds no thumbnail of hit %u (frame %" G_GINT64_FORMAT
                  "); index with thumbnails=true\n",
                  options->db, rank + 1, hit->frame_id);
      json_builder_add_null_value (json);
      return TRUE;
    }
  name = g_strdup_printf ("hit-%02u-frame-%" G_GINT64_FORMAT ".jpg", rank + 1, hit->frame_id);
  path = g_build_filename (options->thumbnails, name, NULL);
  if (!g_file_set_contents (path, g_bytes_get_data (jpeg, NULL), g_bytes_get_size (jpeg), error))
    return FALSE;
  json_builder_add_string_value (json, path);
  return TRUE;
}

static void
add_hit (JsonBuilder *json, const UmgClipStoreHit *hit)
{
  g_autofree gchar *wall = hit->wall_us >= 0 ? format_wall (hit->wall_us) : NULL;

  json_builder_set_member_name (json, "stream");
  json_builder_add_string_value (json, hit->stream);
  json_builder_set_member_name (json, "pts");
  if (hit->pts >= 0)
    json_builder_add_int_value (json, hit->pts);
  else
    json_builder_add_null_value (json);
  json_builder_set_member_name (json, "wall_time");
  if (wall != NULL)
    json_builder_add_string_value (json, wall);
  else
    json_builder_add_null_value (json);
  json_builder_set_member_name (json, "score");
  json_builder_add_double_value (json, hit->score);
  json_builder_set_member_name (json, "frame_id");
  json_builder_add_int_value (json, hit->frame_id);
  /* what scored: the frame's embedding, or one of its regions' */
  json_builder_set_member_name (json, "match");
  json_builder_add_string_value (json, hit->region ? "region" : "frame");
  if (!hit->region)
    return;
  json_builder_set_member_name (json, "box");
  json_builder_begin_array (json);
  json_builder_add_int_value (json, hit->x);
  json_builder_add_int_value (json, hit->y);
  json_builder_add_int_value (json, hit->w);
  json_builder_add_int_value (json, hit->h);
  json_builder_end_array (json);
  json_builder_set_member_name (json, "label");
  if (hit->label != NULL)
    json_builder_add_string_value (json, hit->label);
  else
    json_builder_add_null_value (json);
  json_builder_set_member_name (json, "tags");
  {
    g_autoptr (JsonNode) tags
        = hit->tags_json != NULL ? json_from_string (hit->tags_json, NULL) : NULL;
    if (tags != NULL)
      json_builder_add_value (json, g_steal_pointer (&tags));
    else
      json_builder_add_null_value (json);
  }
}

gboolean
umgclip_tool_search (const UmgClipSearchOptions *options, GString *out, GError **error)
{
  g_autoptr (UmgClipStore) store = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  g_autoptr (GArray) hits = NULL;
  g_autoptr (JsonBuilder) json = NULL;
  g_autoptr (JsonGenerator) generator = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *model = NULL, *query = NULL, *text = NULL;
  g_autofree gfloat *embedding = NULL;
  UmgClipStoreQuery what = { .stream = options->stream,
                             .since_us = G_MININT64,
                             .until_us = G_MAXINT64,
                             .top_k = options->top_k,
                             .regions = options->regions,
                             .frames_by_regions = !options->frames_only };
  UmgClipDeviceKind device;
  gint device_index;
  gint64 started;
  gdouble took_ms;

  if (options->db == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "search needs --db LOCATION (a SQLite file or postgresql://...)");
      return FALSE;
    }
  if (options->regions && options->frames_only)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "search: --regions and --frames-only together; --regions gives regions, "
                   "--frames-only frames by their own embedding");
      return FALSE;
    }
  query = g_strstrip (g_strdup (options->query != NULL ? options->query : ""));
  if (*query == '\0')
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "search: the query is empty; give the text to look for");
      return FALSE;
    }
  if (!parse_time ("--since", options->since, &what.since_us, error)
      || !parse_time ("--until", options->until, &what.until_us, error))
    return FALSE;
  if (what.since_us > what.until_us)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "--since %s is after --until %s",
                   options->since, options->until);
      return FALSE;
    }
  if (options->thumbnails != NULL && g_mkdir_with_parents (options->thumbnails, 0755) != 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FILE, "--thumbnails %s: %s",
                   options->thumbnails, g_strerror (errno));
      return FALSE;
    }
  if ((store = umgclip_store_open (options->db, FALSE, error)) == NULL
      || (model = pick_model (store, options, error)) == NULL
      || !umgclip_parse_device (options->device, &device, &device_index, error)
      || (ctx = umgclip_context_new (model, device, device_index, error)) == NULL)
    return FALSE;
  embedding = g_new (gfloat, umgclip_context_get_info (ctx)->embed_dim);
  {
    const gchar *labels[] = { query };
    if (!umgclip_encode_labels (ctx, labels, 1, options->templates,
                                g_strv_length ((gchar **) options->templates), embedding, error))
      return FALSE;
  }
  started = g_get_monotonic_time ();
  hits = umgclip_store_search (store, embedding, umgclip_context_get_info (ctx)->embed_dim, &what,
                               error);
  if (hits == NULL)
    return FALSE;
  took_ms = (g_get_monotonic_time () - started) / 1000.0;

  json = json_builder_new ();
  json_builder_begin_object (json);
  json_builder_set_member_name (json, "query");
  json_builder_add_string_value (json, query);
  json_builder_set_member_name (json, "store");
  json_builder_add_string_value (json, umgclip_store_kind (store));
  json_builder_set_member_name (json, "model");
  {
    g_autofree gchar *id = g_path_get_basename (model);
    json_builder_add_string_value (json, id);
  }
  /* the store's search alone, without loading the model or encoding the text */
  json_builder_set_member_name (json, "took_ms");
  json_builder_add_double_value (json, took_ms);
  json_builder_set_member_name (json, "hits");
  json_builder_begin_array (json);
  for (guint i = 0; i < hits->len; i++)
    {
      const UmgClipStoreHit *hit = &g_array_index (hits, UmgClipStoreHit, i);
      json_builder_begin_object (json);
      add_hit (json, hit);
      if (options->thumbnails != NULL && !write_thumbnail (store, hit, i, options, json, error))
        return FALSE;
      json_builder_end_object (json);
    }
  json_builder_end_array (json);
  json_builder_end_object (json);

  root = json_builder_get_root (json);
  generator = json_generator_new ();
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);
  g_string_append (out, text);
  g_string_append_c (out, '\n');
  return TRUE;
}
