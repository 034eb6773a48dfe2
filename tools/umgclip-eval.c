/* umgclip-eval: how well a model does on an annotated scene set, measured through the
 * runtime. The set is a directory as training/scenes.py writes it: PNGs and an
 * annotations.json holding, per scene, a caption, thing boxes with tags and masks, and stuff
 * masks, plus the label vocabulary (thing_tags, stuff_names). Prints one JSON object:
 *
 *   zero_shot_top1  the best of the thing tags for the image embedding is a thing in the scene
 *   retrieval_r1    text-to-image: the image nearest each caption has that caption
 *   per dense mode:
 *     region_top1   the best thing tag of each ground-truth box (RoI-Align) is its tag
 *     miou          semantic segmentation over all labels, mean IoU of the labels that
 *                   occur in the ground truth or the prediction
 *     pq, pq_things, pq_stuff
 *                   panoptic quality: things split into connected instances, stuff merged;
 *                   segments match when IoU > 0.5; mean over the labels with any segment
 *     pq_things_any_label
 *                   panoptic quality of things as one class: a predicted thing segment
 *                   matches a true thing of any thing label. What grouping alone gives,
 *                   against pq_things, which needs the label right too
 *
 * Pixels that no ground-truth segment covers are void, as in COCO panoptic: a prediction
 * there is not scored, and a predicted segment lying mostly in void is no false positive.
 * Scenes of training/scenes.py have none; tests/independent_scenes.py leaves its
 * backgrounds void.
 */
#include "umgclip.h"

#include "image.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_TEMPLATE "a photo of a {}."
#define DEFAULT_MIN_AREA 8
#define DEFAULT_THING_AFFINITY UMGCLIP_DEFAULT_THING_AFFINITY

typedef struct
{
  guint label;  /* index into the label list: thing tags first, then stuff names */
  guint8 *mask; /* size × size, 1 inside */
} GtSegment;

typedef struct
{
  gchar *file;
  gchar *caption;
  GArray *boxes;    /* gfloat x, y, w, h per thing */
  GArray *segments; /* GtSegment: the things (in box order), then the stuff */
  guint n_things;
} Scene;

typedef struct
{
  gchar *dir;
  gint size;         /* scenes are size × size */
  GPtrArray *labels; /* gchar *: thing tags, then stuff names */
  guint n_thing_labels;
  GPtrArray *scenes; /* Scene * */
} Dataset;

typedef struct
{
  const gchar *model;
  const gchar *data;
  const gchar *device;
  GArray *modes; /* UmgClipDenseMode */
  GPtrArray *templates;
  gint min_area;
  gdouble thing_affinity;
} Args;

/* Sums over all scenes for one dense mode. */
typedef struct
{
  guint regions, regions_right;
  guint64 *inter, *gt, *pred; /* semantic pixels per label */
  guint *tp, *fp, *fn;        /* panoptic segments per label */
  gdouble *iou_sum;
  guint any_tp, any_fp, any_fn; /* thing segments matched whatever their thing labels */
  gdouble any_iou_sum;
} Tally;

static void
scene_free (gpointer data)
{
  Scene *scene = data;
  for (guint i = 0; scene->segments != NULL && i < scene->segments->len; i++)
    g_free (g_array_index (scene->segments, GtSegment, i).mask);
  g_clear_pointer (&scene->segments, g_array_unref);
  g_clear_pointer (&scene->boxes, g_array_unref);
  g_free (scene->file);
  g_free (scene->caption);
  g_free (scene);
}

static void
dataset_clear (Dataset *data)
{
  g_clear_pointer (&data->dir, g_free);
  g_clear_pointer (&data->labels, g_ptr_array_unref);
  g_clear_pointer (&data->scenes, g_ptr_array_unref);
}

static gboolean
fail (GError **error, const gchar *path, const gchar *what)
{
  g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: %s", path, what);
  return FALSE;
}

/* A mask from runs of alternating background and foreground in raster order, background
 * first, which must add up to size × size pixels. */
static guint8 *
decode_rle (JsonArray *runs, gint size)
{
  gsize total = (gsize) size * size, at = 0;
  guint8 *mask = g_malloc0 (total);
  for (guint i = 0; i < json_array_get_length (runs); i++)
    {
      gint64 run = json_array_get_int_element (runs, i);
      if (run < 0 || (gsize) run > total - at)
        break;
      if (i % 2 == 1)
        memset (mask + at, 1, run);
      at += run;
    }
  if (at != total)
    g_clear_pointer (&mask, g_free);
  return mask;
}

static gboolean
read_label_list (JsonObject *root, const gchar *member, GPtrArray *labels, GHashTable *ids)
{
  JsonArray *names;
  if (!json_object_has_member (root, member)
      || JSON_NODE_TYPE (json_object_get_member (root, member)) != JSON_NODE_ARRAY)
    return FALSE;
  names = json_object_get_array_member (root, member);
  for (guint i = 0; i < json_array_get_length (names); i++)
    {
      const gchar *name = json_array_get_string_element (names, i);
      if (name == NULL || g_hash_table_contains (ids, name))
        return FALSE;
      g_hash_table_insert (ids, g_strdup (name), GUINT_TO_POINTER (labels->len));
      g_ptr_array_add (labels, g_strdup (name));
    }
  return json_array_get_length (names) > 0;
}

/* One segment of a scene record: member name_key names its label, mask_rle its mask. */
static gboolean
read_segment (JsonObject *item, const gchar *name_key, GHashTable *ids, gint size, Scene *scene,
              const gchar **problem)
{
  const gchar *name = json_object_get_string_member_with_default (item, name_key, NULL);
  gpointer id;
  GtSegment segment;

  if (name == NULL || !g_hash_table_lookup_extended (ids, name, NULL, &id))
    {
      *problem = "a segment names no label of the vocabulary";
      return FALSE;
    }
  if (!json_object_has_member (item, "mask_rle")
      || (segment.mask = decode_rle (json_object_get_array_member (item, "mask_rle"), size))
             == NULL)
    {
      *problem = "a mask_rle is missing or does not cover the image exactly";
      return FALSE;
    }
  segment.label = GPOINTER_TO_UINT (id);
  g_array_append_val (scene->segments, segment);
  return TRUE;
}

static Scene *
read_scene (JsonObject *record, GHashTable *ids, gint size, const gchar **problem)
{
  Scene *scene = g_new0 (Scene, 1);
  JsonArray *things, *stuff;

  scene->boxes = g_array_new (FALSE, FALSE, sizeof (gfloat));
  scene->segments = g_array_new (FALSE, FALSE, sizeof (GtSegment));
  scene->file = g_strdup (json_object_get_string_member_with_default (record, "file", NULL));
  scene->caption = g_strdup (json_object_get_string_member_with_default (record, "caption", NULL));
  if (scene->file == NULL || scene->caption == NULL || !json_object_has_member (record, "things")
      || !json_object_has_member (record, "stuff"))
    {
      *problem = "a scene lacks file, caption, things or stuff";
      scene_free (scene);
      return NULL;
    }
  things = json_object_get_array_member (record, "things");
  stuff = json_object_get_array_member (record, "stuff");
  for (guint i = 0; things != NULL && i < json_array_get_length (things); i++)
    {
      JsonObject *thing = json_array_get_object_element (things, i);
      JsonArray *box = thing != NULL && json_object_has_member (thing, "box")
                           ? json_object_get_array_member (thing, "box")
                           : NULL;
      if (box == NULL || json_array_get_length (box) != 4)
        {
          *problem = "a thing has no box [x, y, w, h]";
          scene_free (scene);
          return NULL;
        }
      for (guint k = 0; k < 4; k++)
        {
          gfloat v = json_array_get_double_element (box, k);
          g_array_append_val (scene->boxes, v);
        }
      if (!read_segment (thing, "tag", ids, size, scene, problem))
        {
          scene_free (scene);
          return NULL;
        }
      scene->n_things++;
    }
  for (guint i = 0; stuff != NULL && i < json_array_get_length (stuff); i++)
    {
      JsonObject *item = json_array_get_object_element (stuff, i);
      if (item == NULL || !read_segment (item, "name", ids, size, scene, problem))
        {
          *problem = item == NULL ? "a stuff entry is not an object" : *problem;
          scene_free (scene);
          return NULL;
        }
    }
  return scene;
}

static gboolean
dataset_load (const gchar *dir, Dataset *data, GError **error)
{
  g_autofree gchar *path = g_build_filename (dir, "annotations.json", NULL);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GHashTable) ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  JsonObject *root;
  JsonArray *records;

  if (!json_parser_load_from_file (parser, path, error))
    {
      g_prefix_error (error, "%s: ", path);
      return FALSE;
    }
  if (JSON_NODE_TYPE (json_parser_get_root (parser)) != JSON_NODE_OBJECT)
    return fail (error, path, "not a JSON object");
  root = json_node_get_object (json_parser_get_root (parser));
  data->dir = g_strdup (dir);
  data->size = json_object_get_int_member_with_default (root, "size", 0);
  data->labels = g_ptr_array_new_with_free_func (g_free);
  data->scenes = g_ptr_array_new_with_free_func (scene_free);
  if (data->size <= 0 || data->size > 4096)
    return fail (error, path, "size is missing or not 1..4096");
  if (!read_label_list (root, "thing_tags", data->labels, ids))
    return fail (error, path, "thing_tags is missing, empty or repeats a name");
  data->n_thing_labels = data->labels->len;
  if (!read_label_list (root, "stuff_names", data->labels, ids))
    return fail (error, path, "stuff_names is missing, empty or repeats a name");
  if (!json_object_has_member (root, "scenes")
      || (records = json_object_get_array_member (root, "scenes")) == NULL
      || json_array_get_length (records) == 0)
    return fail (error, path, "scenes is missing or empty");
  for (guint i = 0; i < json_array_get_length (records); i++)
    {
      const gchar *problem = NULL;
      JsonObject *record = json_array_get_object_element (records, i);
      Scene *scene = record != NULL ? read_scene (record, ids, data->size, &problem) : NULL;
      if (scene == NULL)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: scene %u: %s", path, i,
                       problem != NULL ? problem : "not an object");
          return FALSE;
        }
      g_ptr_array_add (data->scenes, scene);
    }
  return TRUE;
}

static gfloat *
load_scene_pixels (UmgClipContext *ctx, const Dataset *data, const Scene *scene, GError **error)
{
  g_autofree gchar *path = g_build_filename (data->dir, scene->file, NULL);
  g_autoptr (GdkPixbuf) rgb = umgclip_tool_load_rgb (path, error);

  if (rgb == NULL)
    return NULL;
  if (gdk_pixbuf_get_width (rgb) != data->size || gdk_pixbuf_get_height (rgb) != data->size)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_FORMAT, "%s: %dx%d, annotations say %dx%d",
                   path, gdk_pixbuf_get_width (rgb), gdk_pixbuf_get_height (rgb), data->size,
                   data->size);
      return NULL;
    }
  return umgclip_tool_preprocess (ctx, rgb, umgclip_context_get_info (ctx)->image_size);
}

/* ---- metrics ---------------------------------------------------------------------------- */

static Tally *
tally_new (guint n_labels)
{
  Tally *t = g_new0 (Tally, 1);
  t->inter = g_new0 (guint64, n_labels);
  t->gt = g_new0 (guint64, n_labels);
  t->pred = g_new0 (guint64, n_labels);
  t->tp = g_new0 (guint, n_labels);
  t->fp = g_new0 (guint, n_labels);
  t->fn = g_new0 (guint, n_labels);
  t->iou_sum = g_new0 (gdouble, n_labels);
  return t;
}

static void
tally_free (Tally *t)
{
  g_free (t->inter);
  g_free (t->gt);
  g_free (t->pred);
  g_free (t->tp);
  g_free (t->fp);
  g_free (t->fn);
  g_free (t->iou_sum);
  g_free (t);
}

/* 1 where some ground-truth segment covers the pixel, 0 where it is void. */
static guint8 *
covered_pixels (const Scene *scene, gsize n_pixels)
{
  guint8 *covered = g_new0 (guint8, n_pixels);
  for (guint s = 0; s < scene->segments->len; s++)
    {
      const GtSegment *gt = &g_array_index (scene->segments, GtSegment, s);
      for (gsize p = 0; p < n_pixels; p++)
        covered[p] |= gt->mask[p];
    }
  return covered;
}

static void
add_semantic (Tally *t, const Scene *scene, const guint8 *covered, const guint16 *class_map,
              gsize n_pixels)
{
  for (guint s = 0; s < scene->segments->len; s++)
    {
      const GtSegment *gt = &g_array_index (scene->segments, GtSegment, s);
      for (gsize p = 0; p < n_pixels; p++)
        if (gt->mask[p])
          {
            t->gt[gt->label]++;
            t->inter[gt->label] += class_map[p] == gt->label;
          }
    }
  for (gsize p = 0; p < n_pixels; p++)
    if (covered[p] && class_map[p] != UMGCLIP_CLASS_NONE)
      t->pred[class_map[p]]++;
}

/* Matches ground-truth and predicted segments of one scene: same label and IoU > 0.5; and
 * thing segments of any thing labels likewise (labels below n_thing_labels are things). */
static void
add_panoptic (Tally *t, const Scene *scene, const guint8 *covered, const UmgClipSegmentation *seg,
              guint n_thing_labels)
{
  guint n_gt = scene->segments->len, n_pred = seg->n_segments;
  gsize n_pixels = (gsize) seg->width * seg->height;
  g_autofree guint *inter = g_new0 (guint, (gsize) n_gt * (n_pred + 1));
  g_autofree guint *gt_area = g_new0 (guint, n_gt);
  g_autofree guint *pred_void = g_new0 (guint, n_pred + 1);
  g_autofree gboolean *pred_matched = g_new0 (gboolean, n_pred + 1);

  for (gsize p = 0; p < n_pixels; p++)
    pred_void[seg->instance_map[p]] += !covered[p];
  for (guint g = 0; g < n_gt; g++)
    {
      const GtSegment *gt = &g_array_index (scene->segments, GtSegment, g);
      for (gsize p = 0; p < n_pixels; p++)
        if (gt->mask[p])
          {
            gt_area[g]++;
            inter[(gsize) g * (n_pred + 1) + seg->instance_map[p]]++;
          }
    }
  for (guint g = 0; g < n_gt; g++)
    {
      guint label = g_array_index (scene->segments, GtSegment, g).label;
      gboolean matched = FALSE;
      for (guint id = 1; id <= n_pred && !matched; id++)
        {
          const UmgClipSegment *pred = &seg->segments[id - 1];
          guint i = inter[(gsize) g * (n_pred + 1) + id];
          gdouble iou = (gdouble) i / (gt_area[g] + pred->area - i);
          if (pred->label_id == label && !pred_matched[id] && iou > 0.5)
            {
              matched = pred_matched[id] = TRUE;
              t->tp[label]++;
              t->iou_sum[label] += iou;
            }
        }
      if (!matched)
        t->fn[label]++;
    }
  for (guint id = 1; id <= n_pred; id++)
    if (!pred_matched[id] && 2 * pred_void[id] <= seg->segments[id - 1].area)
      t->fp[seg->segments[id - 1].label_id]++;

  /* things as one class: IoU > 0.5 makes each match unique, whatever the order */
  memset (pred_matched, 0, (n_pred + 1) * sizeof *pred_matched);
  for (guint g = 0; g < n_gt; g++)
    {
      gboolean matched = FALSE;
      if (g_array_index (scene->segments, GtSegment, g).label >= n_thing_labels)
        continue;
      for (guint id = 1; id <= n_pred && !matched; id++)
        {
          const UmgClipSegment *pred = &seg->segments[id - 1];
          guint i = inter[(gsize) g * (n_pred + 1) + id];
          gdouble iou = (gdouble) i / (gt_area[g] + pred->area - i);
          if (pred->label_id < n_thing_labels && !pred_matched[id] && iou > 0.5)
            {
              matched = pred_matched[id] = TRUE;
              t->any_tp++;
              t->any_iou_sum += iou;
            }
        }
      t->any_fn += !matched;
    }
  for (guint id = 1; id <= n_pred; id++)
    if (seg->segments[id - 1].label_id < n_thing_labels && !pred_matched[id]
        && 2 * pred_void[id] <= seg->segments[id - 1].area)
      t->any_fp++;
}

static gdouble
mean_iou (const Tally *t, guint n_labels)
{
  gdouble sum = 0.0;
  guint n = 0;
  for (guint c = 0; c < n_labels; c++)
    if (t->gt[c] + t->pred[c] > 0)
      {
        sum += (gdouble) t->inter[c] / (t->gt[c] + t->pred[c] - t->inter[c]);
        n++;
      }
  return n > 0 ? sum / n : 0.0;
}

static gdouble
panoptic_quality (const Tally *t, guint first, guint last)
{
  gdouble sum = 0.0;
  guint n = 0;
  for (guint c = first; c < last; c++)
    if (t->tp[c] + t->fp[c] + t->fn[c] > 0)
      {
        sum += t->iou_sum[c] / (t->tp[c] + 0.5 * t->fp[c] + 0.5 * t->fn[c]);
        n++;
      }
  return n > 0 ? sum / n : 0.0;
}

/* ---- running the model ------------------------------------------------------------------ */

typedef struct
{
  UmgClipContext *ctx;
  const Dataset *data;
  const Args *args;
  gint dim, grid;
  gfloat logit_scale;
  gfloat *label_embeddings; /* n_labels × dim, normalised */
  gboolean *is_thing;
  gfloat *image_embeddings; /* n_scenes × dim, normalised */
  Tally **tallies;          /* per mode */
} Eval;

static gboolean
eval_scene (Eval *ev, guint index, GError **error)
{
  const Dataset *data = ev->data;
  const Scene *scene = g_ptr_array_index (data->scenes, index);
  gint size = umgclip_context_get_info (ev->ctx)->image_size;
  gfloat box_scale = (gfloat) size / data->size;
  g_autofree gfloat *pixels = load_scene_pixels (ev->ctx, data, scene, error);
  g_autofree gfloat *dense = g_new (gfloat, (gsize) ev->grid * ev->grid * ev->dim);
  g_autofree gfloat *boxes = g_new (gfloat, scene->boxes->len + 1);
  g_autofree gfloat *regions = g_new (gfloat, (gsize) (scene->n_things + 1) * ev->dim);
  g_autofree guint *best = g_new (guint, scene->n_things + 1);
  g_autofree guint8 *covered = covered_pixels (scene, (gsize) data->size * data->size);
  g_autofree gfloat *best_score = g_new (gfloat, scene->n_things + 1);
  guint n_labels = data->labels->len;

  if (pixels == NULL)
    return FALSE;
  for (guint i = 0; i < scene->boxes->len; i++)
    boxes[i] = g_array_index (scene->boxes, gfloat, i) * box_scale;
  for (guint m = 0; m < ev->args->modes->len; m++)
    {
      UmgClipImageRequest request = {
        .dense_mode = g_array_index (ev->args->modes, UmgClipDenseMode, m),
        .embedding = m == 0 ? ev->image_embeddings + (gsize) index * ev->dim : NULL,
        .dense = dense,
        .boxes = boxes,
        .n_boxes = scene->n_things,
        .regions = regions,
      };
      Tally *t = ev->tallies[m];
      g_auto (UmgClipSegmentation) semantic = { 0 };
      g_auto (UmgClipSegmentation) panoptic = { 0 };

      if (!umgclip_encode_image (ev->ctx, pixels, size, size, &request, error))
        return FALSE;
      if (scene->n_things > 0
          && !umgclip_rank_labels (regions, scene->n_things, ev->dim, ev->label_embeddings,
                                   data->n_thing_labels, ev->logit_scale, 1, best, best_score,
                                   error))
        return FALSE;
      for (guint i = 0; i < scene->n_things; i++)
        {
          t->regions++;
          t->regions_right += best[i] == g_array_index (scene->segments, GtSegment, i).label;
        }
      if (!umgclip_segment (dense, ev->grid, ev->grid, ev->dim, ev->label_embeddings, n_labels,
                            NULL, ev->logit_scale, data->size, data->size, 0.0f, 0, 2.0f, FALSE,
                            &semantic, error)
          || !umgclip_segment (dense, ev->grid, ev->grid, ev->dim, ev->label_embeddings, n_labels,
                               ev->is_thing, ev->logit_scale, data->size, data->size, 0.0f,
                               ev->args->min_area, (gfloat) ev->args->thing_affinity, TRUE,
                               &panoptic, error))
        return FALSE;
      add_semantic (t, scene, covered, semantic.class_map, (gsize) data->size * data->size);
      add_panoptic (t, scene, covered, &panoptic, data->n_thing_labels);
    }
  umgclip_l2_normalize (ev->image_embeddings + (gsize) index * ev->dim, ev->dim);
  return TRUE;
}

/* Zero-shot: the best thing tag for the whole image is one of its things. */
static gboolean
zero_shot_top1 (Eval *ev, gdouble *out, GError **error)
{
  guint n = ev->data->scenes->len, right = 0, counted = 0;
  g_autofree guint *best = g_new (guint, n);
  g_autofree gfloat *score = g_new (gfloat, n);

  if (!umgclip_rank_labels (ev->image_embeddings, n, ev->dim, ev->label_embeddings,
                            ev->data->n_thing_labels, ev->logit_scale, 1, best, score, error))
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      const Scene *scene = g_ptr_array_index (ev->data->scenes, i);
      counted += scene->n_things > 0;
      for (guint k = 0; k < scene->n_things; k++)
        if (g_array_index (scene->segments, GtSegment, k).label == best[i])
          {
            right++;
            break;
          }
    }
  *out = counted > 0 ? (gdouble) right / counted : 0.0;
  return TRUE;
}

/* Text-to-image R@1: the image nearest each caption carries that same caption. */
static gboolean
retrieval_r1 (Eval *ev, gdouble *out, GError **error)
{
  guint n = ev->data->scenes->len, right = 0;
  g_autofree const gchar **captions = g_new (const gchar *, n);
  g_autofree gfloat *texts = g_new (gfloat, (gsize) n * ev->dim);
  g_autofree guint *nearest = g_new (guint, n);
  g_autofree gfloat *score = g_new (gfloat, n);

  for (guint i = 0; i < n; i++)
    captions[i] = ((Scene *) g_ptr_array_index (ev->data->scenes, i))->caption;
  /* each caption ranks the images as if they were its labels */
  if (!umgclip_encode_text (ev->ctx, captions, n, texts, error)
      || !umgclip_rank_labels (texts, n, ev->dim, ev->image_embeddings, n, ev->logit_scale, 1,
                               nearest, score, error))
    return FALSE;
  for (guint i = 0; i < n; i++)
    right += g_strcmp0 (captions[nearest[i]], captions[i]) == 0;
  *out = (gdouble) right / n;
  return TRUE;
}

/* text as a JSON string literal, quoted and escaped */
static gchar *
json_quote (const gchar *text)
{
  g_autoptr (JsonNode) node = json_node_init_string (json_node_alloc (), text);
  return json_to_string (node, FALSE);
}

static gboolean
evaluate (UmgClipContext *ctx, const Dataset *data, const Args *args, GString *out, GError **error)
{
  const UmgClipInfo *info = umgclip_context_get_info (ctx);
  guint n_labels = data->labels->len, n_scenes = data->scenes->len;
  g_autofree gfloat *label_embeddings = g_new (gfloat, (gsize) n_labels * info->embed_dim);
  g_autofree gboolean *is_thing = g_new0 (gboolean, n_labels);
  g_autofree gfloat *image_embeddings = g_new (gfloat, (gsize) n_scenes * info->embed_dim);
  g_autofree Tally **tallies = g_new0 (Tally *, args->modes->len);
  Eval ev = { ctx,
              data,
              args,
              info->embed_dim,
              info->image_size / info->patch_size,
              info->logit_scale,
              label_embeddings,
              is_thing,
              image_embeddings,
              tallies };
  gdouble zero_shot = 0.0, retrieval = 0.0;
  gboolean ok = TRUE;

  for (guint c = 0; c < data->n_thing_labels; c++)
    is_thing[c] = TRUE;
  for (guint m = 0; m < args->modes->len; m++)
    tallies[m] = tally_new (n_labels);
  ok = umgclip_encode_labels (ctx, (const gchar *const *) data->labels->pdata, n_labels,
                              (const gchar *const *) args->templates->pdata, args->templates->len,
                              label_embeddings, error);
  for (guint i = 0; ok && i < n_scenes; i++)
    ok = eval_scene (&ev, i, error);
  ok = ok && zero_shot_top1 (&ev, &zero_shot, error) && retrieval_r1 (&ev, &retrieval, error);
  if (ok)
    {
      g_autofree gchar *model = json_quote (args->model);
      g_autofree gchar *backend = json_quote (info->backend);
      g_string_append_printf (out,
                              "{\"model\": %s, \"device\": %s, \"scenes\": %u, \"labels\": %u, "
                              "\"zero_shot_top1\": %.4f, \"retrieval_r1\": %.4f, \"modes\": {",
                              model, backend, n_scenes, n_labels, zero_shot, retrieval);
      for (guint m = 0; m < args->modes->len; m++)
        {
          const Tally *t = tallies[m];
          g_string_append_printf (
              out,
              "%s\"%s\": {\"region_top1\": %.4f, \"miou\": %.4f, \"pq\": %.4f, "
              "\"pq_things\": %.4f, \"pq_stuff\": %.4f, \"pq_things_any_label\": %.4f}",
              m > 0 ? ", " : "",
              umgclip_dense_mode_name (g_array_index (args->modes, UmgClipDenseMode, m)),
              t->regions > 0 ? (gdouble) t->regions_right / t->regions : 0.0,
              mean_iou (t, n_labels), panoptic_quality (t, 0, n_labels),
              panoptic_quality (t, 0, data->n_thing_labels),
              panoptic_quality (t, data->n_thing_labels, n_labels),
              t->any_tp + t->any_fp + t->any_fn > 0
                  ? t->any_iou_sum / (t->any_tp + 0.5 * t->any_fp + 0.5 * t->any_fn)
                  : 0.0);
        }
      g_string_append (out, "}}\n");
    }
  for (guint m = 0; m < args->modes->len; m++)
    tally_free (tallies[m]);
  return ok;
}

/* ---- command line ----------------------------------------------------------------------- */

static void
usage (FILE *stream)
{
  fputs (
      "usage: umgclip-eval MODEL DATA_DIR [--device D] [--dense-mode M]... [--min-area N]\n"
      "                    [--thing-affinity A] [--template T]...\n"
      "  DATA_DIR   scenes and annotations.json as training/scenes.py writes them\n"
      "  --device   auto|cpu|vulkan|vulkan:N (default auto)\n"
      "  --dense-mode  naclip|clearclip|sclip|maskclip, repeatable (default: all four)\n"
      "  --min-area    panoptic segments under this many pixels are dropped (default 8)\n"
      "  --thing-affinity  touching thing instances whose features have this cosine are one\n"
      "                instance (-1: every touching pair, above 1: none; default as umgclipseg)\n"
      "  --template    prompt template for labels, repeatable (default \"" DEFAULT_TEMPLATE "\")\n",
      stream);
}

static gboolean
parse_args (gint argc, gchar **argv, Args *args, GError **error)
{
  args->modes = g_array_new (FALSE, FALSE, sizeof (UmgClipDenseMode));
  args->templates = g_ptr_array_new ();
  args->min_area = DEFAULT_MIN_AREA;
  args->thing_affinity = DEFAULT_THING_AFFINITY;
  for (gint i = 1; i < argc; i++)
    {
      const gchar *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
      if (!g_str_has_prefix (arg, "--"))
        {
          if (args->model == NULL)
            args->model = arg;
          else if (args->data == NULL)
            args->data = arg;
          else
            {
              g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unexpected '%s'", arg);
              return FALSE;
            }
          continue;
        }
      if (value == NULL)
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%s needs a value", arg);
          return FALSE;
        }
      i++;
      if (g_strcmp0 (arg, "--device") == 0)
        args->device = value;
      else if (g_strcmp0 (arg, "--template") == 0)
        g_ptr_array_add (args->templates, (gpointer) value);
      else if (g_strcmp0 (arg, "--dense-mode") == 0)
        {
          UmgClipDenseMode mode;
          if (!umgclip_parse_dense_mode (value, &mode, error))
            return FALSE;
          g_array_append_val (args->modes, mode);
        }
      else if (g_strcmp0 (arg, "--min-area") == 0)
        {
          guint64 v;
          if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXINT, &v, NULL))
            {
              g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                           "--min-area: '%s' is not a whole number", value);
              return FALSE;
            }
          args->min_area = v;
        }
      else if (g_strcmp0 (arg, "--thing-affinity") == 0)
        {
          gchar *end = NULL;
          args->thing_affinity = g_ascii_strtod (value, &end);
          if (end == value || *end != '\0' || !(args->thing_affinity >= -1.0))
            {
              g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                           "--thing-affinity: '%s' is not a number of at least -1", value);
              return FALSE;
            }
        }
      else
        {
          g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "unknown option %s", arg);
          return FALSE;
        }
    }
  if (args->model == NULL || args->data == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "a MODEL and a DATA_DIR are needed");
      return FALSE;
    }
  if (args->modes->len == 0)
    for (UmgClipDenseMode mode = UMGCLIP_DENSE_NACLIP; mode <= UMGCLIP_DENSE_MASKCLIP; mode++)
      g_array_append_val (args->modes, mode);
  if (args->templates->len == 0)
    g_ptr_array_add (args->templates, DEFAULT_TEMPLATE);
  return TRUE;
}

int
main (int argc, char **argv)
{
  Args args = { 0 };
  Dataset data = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (UmgClipContext) ctx = NULL;
  g_autoptr (GString) out = g_string_new (NULL);
  UmgClipDeviceKind device;
  gint device_index, status = 1;

  if (argc == 2 && (g_strcmp0 (argv[1], "--help") == 0 || g_strcmp0 (argv[1], "-h") == 0))
    {
      usage (stdout);
      return 0;
    }
  if (!parse_args (argc, argv, &args, &error))
    usage (stderr);
  else if (umgclip_parse_device (args.device, &device, &device_index, &error)
           && dataset_load (args.data, &data, &error)
           && (ctx = umgclip_context_new (args.model, device, device_index, &error)) != NULL
           && evaluate (ctx, &data, &args, out, &error))
    {
      fputs (out->str, stdout);
      status = 0;
    }
  if (error != NULL)
    g_printerr ("umgclip-eval: %s\n", error->message);
  dataset_clear (&data);
  g_clear_pointer (&args.modes, g_array_unref);
  g_clear_pointer (&args.templates, g_ptr_array_unref);
  return status;
}
