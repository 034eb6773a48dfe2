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

/* Union-find over segment ids (1-based; parent[0] unused), with path halving. */
static guint32
find_root (guint32 *parent, guint32 id)
{
  while (parent[id] != id)
    {
      parent[id] = parent[parent[id]];
      id = parent[id];
    }
  return id;
}

/* Each thing segment's mean dense feature (cells L2-normalised, nearest cell per pixel, as the
 * cells cover the mask) less the frame's mean cell, normalised: n_builders × dim, zero rows for
 * stuff. Taking the frame's mean away leaves what sets a segment apart from the rest of the
 * frame, whatever part all of its cells share. */
static gfloat *
thing_features (const UmgClipSegmentation *out, const guint32 *segment_of, const GArray *builders,
                const gfloat *dense, gint grid_w, gint grid_h, gint dim)
{
  const gint width = out->width, height = out->height;
  const gsize n_cells = (gsize) grid_w * grid_h;
  g_autofree gdouble *sums = g_new0 (gdouble, (gsize) builders->len * dim);
  g_autofree gfloat *cells = g_new (gfloat, n_cells * dim);
  g_autofree gdouble *frame_mean = g_new0 (gdouble, dim);
  gfloat *features = g_new0 (gfloat, (gsize) builders->len * dim);

  memcpy (cells, dense, sizeof (gfloat) * n_cells * dim);
  for (gsize c = 0; c < n_cells; c++)
    {
      umgclip_l2_normalize (cells + c * dim, dim);
      for (gint i = 0; i < dim; i++)
        frame_mean[i] += cells[c * dim + i] / (gdouble) n_cells;
    }
  for (gint y = 0; y < height; y++)
    {
      const gint cell_y = (gint) ((gint64) y * grid_h / height);
      for (gint x = 0; x < width; x++)
        {
          const guint32 segment = segment_of[(gsize) y * width + x];
          const gfloat *cell
              = cells + ((gsize) cell_y * grid_w + (gint64) x * grid_w / width) * dim;
          gdouble *sum = sums + (gsize) (segment - 1) * dim;
          if (segment == 0 || !g_array_index (builders, SegmentBuilder, segment - 1).is_thing)
            continue;
          for (gint i = 0; i < dim; i++)
            sum[i] += cell[i];
        }
    }
  for (guint b = 0; b < builders->len; b++)
    {
      const SegmentBuilder *builder = &g_array_index (builders, SegmentBuilder, b);
      gdouble *sum = sums + (gsize) b * dim;
      gdouble norm = 0;
      if (!builder->is_thing || builder->area == 0)
        continue;
      for (gint i = 0; i < dim; i++)
        {
          sum[i] = sum[i] / builder->area - frame_mean[i];
          norm += sum[i] * sum[i];
        }
      if (norm > 0)
        for (gint i = 0; i < dim; i++)
          features[(gsize) b * dim + i] = (gfloat) (sum[i] / sqrt (norm));
    }
  return features;
}

/* Joins thing segments that touch (8-connected), or face each other across a gap of unlabelled
 * pixels up to half a grid cell wide, and whose centred features (thing_features) have a cosine
 * of at least affinity (single linkage, union-find). Every segment joined into another is
 * emptied into it (area 0, dead, so that renumbering drops it) and its root marked joined, for
 * label_joined; segment_of then holds each pixel's root. */
static void
merge_things (UmgClipSegmentation *out, guint32 *segment_of, GArray *builders, const gfloat *dense,
              gint grid_w, gint grid_h, gint dim, gfloat affinity, gboolean *dead, gboolean *joined)
{
  const gint width = out->width, height = out->height;
  const guint n = builders->len;
  g_autofree guint32 *parent = g_new (guint32, n + 1);
  g_autofree gfloat *features = NULL;
  gboolean any = FALSE;
  /* half a grid cell: the width of the gaps that thresholding the upsampled map leaves */
  const gint gap = MAX (1, (gint) lround (0.5 * width / grid_w));

  for (guint32 id = 0; id <= n; id++)
    parent[id] = id;
  if (affinity > -1.0f)
    features = thing_features (out, segment_of, builders, dense, grid_w, grid_h, dim);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      {
        const guint32 a = segment_of[(gsize) y * width + x];
        gboolean by_gap = FALSE;
        gint reach = 1;
        if (a == 0 || !g_array_index (builders, SegmentBuilder, a - 1).is_thing)
          continue;
        /* next to a pixel that no label reached (the threshold): look across the gap */
        for (gint ny = MAX (y - 1, 0); ny <= MIN (y + 1, height - 1) && !by_gap; ny++)
          for (gint nx = MAX (x - 1, 0); nx <= MIN (x + 1, width - 1) && !by_gap; nx++)
            by_gap = segment_of[(gsize) ny * width + nx] == 0;
        if (by_gap)
          reach = gap;
        for (gint ny = MAX (y - reach, 0); ny <= MIN (y + reach, height - 1); ny++)
          for (gint nx = MAX (x - reach, 0); nx <= MIN (x + reach, width - 1); nx++)
            {
              const guint32 b = segment_of[(gsize) ny * width + nx];
              guint32 root_a, root_b;
              /* each pair from the side of its lower id */
              if (b == 0 || b <= a || !g_array_index (builders, SegmentBuilder, b - 1).is_thing)
                continue;
              root_a = find_root (parent, a);
              root_b = find_root (parent, b);
              if (root_a == root_b)
                continue;
              if (features != NULL)
                {
                  const gfloat *fa = features + (gsize) (a - 1) * dim;
                  const gfloat *fb = features + (gsize) (b - 1) * dim;
                  gdouble dot = 0;
                  for (gint i = 0; i < dim; i++)
                    dot += (gdouble) fa[i] * fb[i];
                  if (dot < affinity)
                    continue;
                }
              parent[MAX (root_a, root_b)] = MIN (root_a, root_b);
              any = TRUE;
            }
      }
  if (!any)
    return;

  for (guint32 id = 1; id <= n; id++)
    {
      const guint32 root = find_root (parent, id);
      SegmentBuilder *builder = &g_array_index (builders, SegmentBuilder, id - 1);
      SegmentBuilder *target = &g_array_index (builders, SegmentBuilder, root - 1);
      if (root == id)
        continue;
      target->x_min = MIN (target->x_min, builder->x_min);
      target->y_min = MIN (target->y_min, builder->y_min);
      target->x_max = MAX (target->x_max, builder->x_max);
      target->y_max = MAX (target->y_max, builder->y_max);
      target->area += builder->area;
      target->score_sum += builder->score_sum;
      builder->area = 0;
      dead[id] = TRUE;
      joined[root] = TRUE;
    }
  for (gsize pixel = 0; pixel < (gsize) width * height; pixel++)
    if (segment_of[pixel] != 0)
      segment_of[pixel] = find_root (parent, segment_of[pixel]);
}

/* A joined thing is labelled as umgcliptag would tag it: the thing label nearest to the mask
 * average of the dense map over its pixels (umgclip_mask_pool); its pixels take that label. */
static void
label_joined (UmgClipSegmentation *out, const gboolean *joined, const gfloat *dense, gint grid_w,
              gint grid_h, gint dim, const gfloat *label_embeddings, guint n_labels,
              const gboolean *is_thing)
{
  const gsize n_pixels = (gsize) out->width * out->height;
  g_autofree guint *ids = g_new (guint, MAX (out->n_segments, 1));
  g_autofree guint8 *map = NULL;
  g_autofree gfloat *pooled = NULL;
  g_autofree gfloat *cosines = NULL;
  g_autofree guint *new_label = g_new0 (guint, out->n_segments + 1);
  guint n = 0;

  for (guint i = 0; i < out->n_segments; i++)
    if (joined[out->segments[i].id])
      ids[n++] = out->segments[i].id;
  if (n == 0)
    return;
  /* umgclip_mask_pool reads 16-bit maps little-endian */
  map = g_new (guint8, 2 * n_pixels);
  for (gsize pixel = 0; pixel < n_pixels; pixel++)
    {
      map[2 * pixel] = (guint8) (out->instance_map[pixel] & 0xFF);
      map[2 * pixel + 1] = (guint8) (out->instance_map[pixel] >> 8);
    }
  pooled = g_new (gfloat, (gsize) n * dim);
  umgclip_mask_pool (dense, grid_w, grid_h, dim, map, TRUE, out->width, out->height, ids, n,
                     pooled);
  cosines = g_new (gfloat, n_labels);
  for (guint r = 0; r < n; r++)
    {
      UmgClipSegment *segment = &out->segments[ids[r] - 1];
      gfloat best = -G_MAXFLOAT;
      umg_label_logits (pooled + (gsize) r * dim, dim, label_embeddings, n_labels, 1.0f, cosines);
      for (guint l = 0; l < n_labels; l++)
        if (is_thing[l] && cosines[l] > best)
          {
            best = cosines[l];
            segment->label_id = l;
          }
      new_label[ids[r]] = segment->label_id + 1;
    }
  for (gsize pixel = 0; pixel < n_pixels; pixel++)
    if (new_label[out->instance_map[pixel]] != 0)
      out->class_map[pixel] = (guint16) (new_label[out->instance_map[pixel]] - 1);
}

static gboolean
build_segments (UmgClipSegmentation *out, const gfloat *label_embeddings, guint n_labels,
                const gboolean *is_thing, gboolean panoptic, guint min_area, const gfloat *dense,
                gint grid_w, gint grid_h, gint dim, gfloat thing_affinity, GError **error)
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

  g_autofree gboolean *dead = g_new0 (gboolean, builders->len + 1);
  g_autofree gboolean *joined = g_new0 (gboolean, builders->len + 1);
  if (panoptic && is_thing != NULL && thing_affinity <= 1.0f)
    merge_things (out, segment_of, builders, dense, grid_w, grid_h, dim, thing_affinity, dead,
                  joined);

  /* renumber the survivors of min_area, keeping their order */
  g_autofree guint32 *final_id = g_new0 (guint32, builders->len + 1);
  guint n_kept = 0;
  for (guint i = 0; i < builders->len; i++)
    if (!dead[i + 1] && g_array_index (builders, SegmentBuilder, i).area >= min_area)
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
  {
    g_autofree gboolean *joined_final = g_new0 (gboolean, n_kept + 1);
    for (guint i = 0; i < builders->len; i++)
      if (final_id[i + 1] != 0 && joined[i + 1])
        joined_final[final_id[i + 1]] = TRUE;
    label_joined (out, joined_final, dense, grid_w, grid_h, dim, label_embeddings, n_labels,
                  is_thing);
  }
  return TRUE;
}

gboolean
umgclip_segment (const gfloat *dense, gint grid_w, gint grid_h, gint dim,
                 const gfloat *label_embeddings, guint n_labels, const gboolean *is_thing,
                 gfloat logit_scale, gint mask_w, gint mask_h, gfloat threshold, guint min_area,
                 gfloat thing_affinity, gboolean panoptic, UmgClipSegmentation *out, GError **error)
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
  if (!build_segments (out, label_embeddings, n_labels, is_thing, panoptic, min_area, dense, grid_w,
                       grid_h, dim, thing_affinity, error))
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
