/* Semantic and panoptic segmentation of a dense text-aligned feature map, and top-k region
 * tags: everything between the vision tower's output and the labels a user reads. */
#include "segment.h"

#include "frame.h"
#include "umgclip.h"

#include <math.h>
#include <string.h>

#define MAX_IDS 65534 /* guint16 maps: 0xFFFF means no class, 0 no segment */

void
umg_label_logits (const gfloat *embedding, gint dim, const gfloat *label_embeddings, guint n_labels,
                  gfloat logit_scale, gfloat *logits)
{
  gdouble norm = 0;
  for (gint i = 0; i < dim; i++)
    norm += (gdouble) embedding[i] * embedding[i];
  /* a zero vector has no direction: it should favour no label rather than produce NaNs */
  const gdouble inverse_norm = norm > 0 ? 1.0 / sqrt (norm) : 0.0;
  for (guint l = 0; l < n_labels; l++)
    {
      const gfloat *label = label_embeddings + (gsize) l * dim;
      gdouble dot = 0;
      for (gint i = 0; i < dim; i++)
        dot += (gdouble) embedding[i] * label[i];
      logits[l] = (gfloat) (logit_scale * dot * inverse_norm);
    }
}

guint
umg_softmax (gfloat *values, guint n)
{
  guint best = 0;
  gdouble total = 0;
  for (guint i = 1; i < n; i++)
    if (values[i] > values[best])
      best = i;
  const gfloat max = values[best];
  for (guint i = 0; i < n; i++)
    {
      values[i] = expf (values[i] - max);
      total += values[i];
    }
  for (guint i = 0; i < n; i++)
    values[i] = (gfloat) (values[i] / total);
  return best;
}

void
umgclip_segmentation_clear (UmgClipSegmentation *seg)
{
  g_clear_pointer (&seg->class_map, g_free);
  g_clear_pointer (&seg->score_map, g_free);
  g_clear_pointer (&seg->instance_map, g_free);
  g_clear_pointer (&seg->segments, g_free);
  memset (seg, 0, sizeof *seg);
}

static gboolean
check_labels (const gfloat *label_embeddings, guint n_labels, gint dim, gfloat logit_scale,
              GError **error)
{
  if (n_labels == 0 || n_labels > MAX_IDS)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "n_labels %u is out of range (1..%d)", n_labels, MAX_IDS);
      return FALSE;
    }
  if (dim <= 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "embedding dimension %d is not positive", dim);
      return FALSE;
    }
  if (label_embeddings == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "label embeddings are NULL");
      return FALSE;
    }
  if (!isfinite (logit_scale) || logit_scale <= 0)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "logit scale %g is not a positive number", logit_scale);
      return FALSE;
    }
  return TRUE;
}

/* Per pixel: class id, best probability. */
static void
classify_pixels (const gfloat *dense, gint grid_w, gint grid_h, gint dim,
                 const gfloat *label_embeddings, guint n_labels, gfloat logit_scale,
                 gfloat threshold, UmgClipSegmentation *out)
{
  const gint width = out->width, height = out->height;
  /* cell-major so that a pixel's four neighbouring cells each give one contiguous row */
  g_autofree gfloat *cell_logits = g_new (gfloat, (gsize) grid_w * grid_h * n_labels);
  g_autofree gfloat *pixel_logits = g_new (gfloat, n_labels);
  g_autofree UmgBilinearTap *taps_x = g_new (UmgBilinearTap, width);
  g_autofree UmgBilinearTap *taps_y = g_new (UmgBilinearTap, height);

  for (gsize cell = 0; cell < (gsize) grid_w * grid_h; cell++)
    umg_label_logits (dense + cell * dim, dim, label_embeddings, n_labels, logit_scale,
                      cell_logits + cell * n_labels);
  umg_bilinear_taps (grid_w, width, taps_x);
  umg_bilinear_taps (grid_h, height, taps_y);

  for (gint y = 0; y < height; y++)
    {
      const UmgBilinearTap ty = taps_y[y];
      for (gint x = 0; x < width; x++)
        {
          const UmgBilinearTap tx = taps_x[x];
          const gfloat *top_left = cell_logits + ((gsize) ty.lo * grid_w + tx.lo) * n_labels;
          const gfloat *top_right = cell_logits + ((gsize) ty.lo * grid_w + tx.hi) * n_labels;
          const gfloat *bottom_left = cell_logits + ((gsize) ty.hi * grid_w + tx.lo) * n_labels;
          const gfloat *bottom_right = cell_logits + ((gsize) ty.hi * grid_w + tx.hi) * n_labels;
          for (guint l = 0; l < n_labels; l++)
            {
              gfloat top = (1.0f - tx.frac) * top_left[l] + tx.frac * top_right[l];
              gfloat bottom = (1.0f - tx.frac) * bottom_left[l] + tx.frac * bottom_right[l];
              pixel_logits[l] = (1.0f - ty.frac) * top + ty.frac * bottom;
            }
          guint best = umg_softmax (pixel_logits, n_labels);
          gsize pixel = (gsize) y * width + x;
          out->score_map[pixel] = pixel_logits[best];
          out->class_map[pixel] = pixel_logits[best] >= threshold ? best : UMGCLIP_CLASS_NONE;
        }
    }
}

typedef struct
{
  guint label_id;
  gboolean is_thing;
  gint x_min, y_min, x_max, y_max;
  guint area;
  gdouble score_sum;
} SegmentBuilder;

static guint32
new_segment (GArray *builders, guint label_id, gboolean is_thing)
{
  SegmentBuilder builder = { label_id, is_thing, G_MAXINT, G_MAXINT, -1, -1, 0, 0 };
  g_array_append_val (builders, builder);
  return builders->len; /* ids start at 1: 0 marks unassigned pixels */
}

static void
add_pixel (GArray *builders, guint32 segment, gint x, gint y, gfloat score)
{
  SegmentBuilder *builder = &g_array_index (builders, SegmentBuilder, segment - 1);
  builder->x_min = MIN (builder->x_min, x);
  builder->y_min = MIN (builder->y_min, y);
  builder->x_max = MAX (builder->x_max, x);
  builder->y_max = MAX (builder->y_max, y);
  builder->area++;
  builder->score_sum += score;
}

/* Gives every pixel of the 8-connected component of start's class the segment id. stack has
 * room for every pixel: each is pushed at most once, since it is labelled when pushed. */
static void
flood_fill (const UmgClipSegmentation *out, guint32 *segment_of, gsize *stack, gsize start,
            guint32 segment, GArray *builders)
{
  const gint width = out->width, height = out->height;
  const guint16 label = out->class_map[start];
  gsize depth = 0;

  segment_of[start] = segment;
  stack[depth++] = start;
  while (depth > 0)
    {
      const gsize pixel = stack[--depth];
      const gint x = pixel % width, y = pixel / width;
      add_pixel (builders, segment, x, y, out->score_map[pixel]);
      for (gint ny = MAX (y - 1, 0); ny <= MIN (y + 1, height - 1); ny++)
        for (gint nx = MAX (x - 1, 0); nx <= MIN (x + 1, width - 1); nx++)
          {
            const gsize neighbour = (gsize) ny * width + nx;
            if (segment_of[neighbour] == 0 && out->class_map[neighbour] == label)
              {
                segment_of[neighbour] = segment;
                stack[depth++] = neighbour;
              }
          }
    }
}

static gboolean
build_segments (UmgClipSegmentation *out, guint n_labels, const gboolean *is_thing,
                gboolean panoptic, guint min_area, GError **error)
{
  const gsize n_pixels = (gsize) out->width * out->height;
  g_autofree guint32 *segment_of = g_new0 (guint32, n_pixels);
  g_autofree guint32 *stuff_segment = g_new0 (guint32, n_labels);
  g_autofree gsize *stack = NULL;
  g_autoptr (GArray) builders = g_array_new (FALSE, FALSE, sizeof (SegmentBuilder));

  /* scanning in raster order numbers segments by their first pixel */
  for (gsize pixel = 0; pixel < n_pixels; pixel++)
    {
      const guint16 label = out->class_map[pixel];
      if (label == UMGCLIP_CLASS_NONE || segment_of[pixel] != 0)
        continue;
      if (panoptic && is_thing != NULL && is_thing[label])
        {
          if (stack == NULL)
            stack = g_new (gsize, n_pixels);
          flood_fill (out, segment_of, stack, pixel, new_segment (builders, label, TRUE), builders);
          continue;
        }
      if (stuff_segment[label] == 0)
        stuff_segment[label] = new_segment (builders, label, FALSE);
      segment_of[pixel] = stuff_segment[label];
      add_pixel (builders, segment_of[pixel], pixel % out->width, pixel / out->width,
                 out->score_map[pixel]);
    }

  /* renumber the survivors of min_area, keeping their order */
  g_autofree guint32 *final_id = g_new0 (guint32, builders->len + 1);
  guint n_kept = 0;
  for (guint i = 0; i < builders->len; i++)
    if (g_array_index (builders, SegmentBuilder, i).area >= min_area)
      final_id[i + 1] = ++n_kept;
  if (n_kept > MAX_IDS)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "%u segments exceed the %d a 16-bit instance map can hold (raise min_area "
                   "or the threshold)",
                   n_kept, MAX_IDS);
      return FALSE;
    }

  out->segments = g_new0 (UmgClipSegment, MAX (n_kept, 1));
  out->n_segments = n_kept;
  for (guint i = 0; i < builders->len; i++)
    {
      const SegmentBuilder *builder = &g_array_index (builders, SegmentBuilder, i);
      if (final_id[i + 1] == 0)
        continue;
      out->segments[final_id[i + 1] - 1] = (UmgClipSegment){
        .id = final_id[i + 1],
        .label_id = builder->label_id,
        .score = (gfloat) (builder->score_sum / builder->area),
        .is_thing = builder->is_thing,
        .x = builder->x_min,
        .y = builder->y_min,
        .w = builder->x_max - builder->x_min + 1,
        .h = builder->y_max - builder->y_min + 1,
        .area = builder->area,
      };
    }
  for (gsize pixel = 0; pixel < n_pixels; pixel++)
    {
      out->instance_map[pixel] = final_id[segment_of[pixel]];
      if (out->instance_map[pixel] == 0)
        out->class_map[pixel] = UMGCLIP_CLASS_NONE;
    }
  return TRUE;
}

gboolean
umgclip_segment (const gfloat *dense, gint grid_w, gint grid_h, gint dim,
                 const gfloat *label_embeddings, guint n_labels, const gboolean *is_thing,
                 gfloat logit_scale, gint mask_w, gint mask_h, gfloat threshold, guint min_area,
                 gboolean panoptic, UmgClipSegmentation *out, GError **error)
{
  memset (out, 0, sizeof *out);
  if (!check_labels (label_embeddings, n_labels, dim, logit_scale, error))
    return FALSE;
  if (dense == NULL || grid_w <= 0 || grid_h <= 0 || grid_w > G_MAXINT / grid_h)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "dense map grid %d×%d is empty, too large or NULL", grid_w, grid_h);
      return FALSE;
    }
  /* segment ids are guint32 while building and pixel indices gint in the flood fill */
  if (mask_w <= 0 || mask_h <= 0 || mask_w > G_MAXINT / mask_h)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "mask size %d×%d is not positive or too large", mask_w, mask_h);
      return FALSE;
    }
  if (!(threshold >= 0.0f && threshold <= 1.0f))
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "threshold %g is outside 0..1",
                   threshold);
      return FALSE;
    }

  const gsize n_pixels = (gsize) mask_w * mask_h;
  out->width = mask_w;
  out->height = mask_h;
  out->class_map = g_new (guint16, n_pixels);
  out->score_map = g_new (gfloat, n_pixels);
  out->instance_map = g_new (guint16, n_pixels);
  classify_pixels (dense, grid_w, grid_h, dim, label_embeddings, n_labels, logit_scale, threshold,
                   out);
  if (!build_segments (out, n_labels, is_thing, panoptic, min_area, error))
    {
      umgclip_segmentation_clear (out);
      return FALSE;
    }
  return TRUE;
}

gboolean
umgclip_rank_labels (const gfloat *embeddings, guint n, gint dim, const gfloat *label_embeddings,
                     guint n_labels, gfloat logit_scale, guint top_k, guint *ids_out,
                     gfloat *scores_out, GError **error)
{
  if (!check_labels (label_embeddings, n_labels, dim, logit_scale, error))
    return FALSE;
  if (top_k == 0 || top_k > n_labels)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT,
                   "top_k %u is out of range (1..n_labels = %u)", top_k, n_labels);
      return FALSE;
    }
  if (n > 0 && embeddings == NULL)
    {
      g_set_error (error, UMGCLIP_ERROR, UMGCLIP_ERROR_ARGUMENT, "%u embeddings but NULL data", n);
      return FALSE;
    }

  g_autofree gfloat *probabilities = g_new (gfloat, n_labels);
  g_autofree guint *order = g_new (guint, n_labels);
  for (guint i = 0; i < n; i++)
    {
      umg_label_logits (embeddings + (gsize) i * dim, dim, label_embeddings, n_labels, logit_scale,
                        probabilities);
      umg_softmax (probabilities, n_labels);
      for (guint l = 0; l < n_labels; l++)
        order[l] = l;
      /* partial selection sort: top_k is small, and the label order breaks ties */
      for (guint k = 0; k < top_k; k++)
        {
          guint best = k;
          for (guint j = k + 1; j < n_labels; j++)
            if (probabilities[order[j]] > probabilities[order[best]]
                || (probabilities[order[j]] == probabilities[order[best]]
                    && order[j] < order[best]))
              best = j;
          guint swap = order[k];
          order[k] = order[best];
          order[best] = swap;
          ids_out[(gsize) i * top_k + k] = order[k];
          scores_out[(gsize) i * top_k + k] = probabilities[order[k]];
        }
    }
  return TRUE;
}
