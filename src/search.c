/* The exact nearest vectors of a query: cosine by BLAS over blocks of stored vectors, the best
 * k kept in a min-heap, so that a million vectors need one block of memory at a time. */
#include "umgclip.h"

#include <cblas.h>

struct _UmgClipTopK
{
  guint k, n;
  UmgClipScored *heap; /* n of k items; the worst kept at the root */
  gfloat *scores;      /* a block's scores */
  gsize scores_size;
};

/* a worse than b: a lower score, or an equal score inserted later */
static gboolean
worse (const UmgClipScored *a, const UmgClipScored *b)
{
  return a->score < b->score || (a->score == b->score && a->id > b->id);
}

static void
sift_down (UmgClipScored *heap, guint n, guint i)
{
  for (;;)
    {
      guint worst = i, left = 2 * i + 1, right = 2 * i + 2;
      UmgClipScored swap;
      if (left < n && worse (&heap[left], &heap[worst]))
        worst = left;
      if (right < n && worse (&heap[right], &heap[worst]))
        worst = right;
      if (worst == i)
        return;
      swap = heap[i];
      heap[i] = heap[worst];
      heap[worst] = swap;
      i = worst;
    }
}

static void
sift_up (UmgClipScored *heap, guint i)
{
  while (i > 0)
    {
      guint parent = (i - 1) / 2;
      UmgClipScored swap;
      if (!worse (&heap[i], &heap[parent]))
        return;
      swap = heap[i];
      heap[i] = heap[parent];
      heap[parent] = swap;
      i = parent;
    }
}

UmgClipTopK *
umgclip_top_k_new (guint k)
{
  UmgClipTopK *top = g_new0 (UmgClipTopK, 1);
  top->k = MAX (k, 1);
  top->heap = g_new (UmgClipScored, top->k);
  return top;
}

void
umgclip_top_k_push (UmgClipTopK *top, gint64 id, gfloat score)
{
  UmgClipScored item = { id, score };
  if (top->n < top->k)
    {
      top->heap[top->n] = item;
      sift_up (top->heap, top->n++);
    }
  else if (worse (&top->heap[0], &item))
    {
      top->heap[0] = item;
      sift_down (top->heap, top->n, 0);
    }
}

void
umgclip_top_k_score (UmgClipTopK *top, const gfloat *vectors, const gint64 *ids, gsize n, gint dim,
                     const gfloat *query)
{
  if (n == 0)
    return;
  if (top->scores_size < n)
    {
      g_free (top->scores);
      top->scores = g_new (gfloat, n);
      top->scores_size = n;
    }
  /* every stored vector is L2-normalised: the dot product is the cosine */
  cblas_sgemv (CblasRowMajor, CblasNoTrans, (gint) n, dim, 1.0f, vectors, dim, query, 1, 0.0f,
               top->scores, 1);
  for (gsize i = 0; i < n; i++)
    umgclip_top_k_push (top, ids[i], top->scores[i]);
}

static gint
compare_best_first (gconstpointer a, gconstpointer b)
{
  return worse (a, b) ? 1 : worse (b, a) ? -1 : 0;
}

const UmgClipScored *
umgclip_top_k_finish (UmgClipTopK *top, guint *n)
{
  qsort (top->heap, top->n, sizeof (UmgClipScored), compare_best_first);
  *n = top->n;
  return top->heap;
}

void
umgclip_top_k_free (UmgClipTopK *top)
{
  if (top == NULL)
    return;
  g_free (top->heap);
  g_free (top->scores);
  g_free (top);
}
