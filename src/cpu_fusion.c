/* The CPU backend's fusion patterns: which consecutive ops it may run as one kernel. */
#include "cpu_fusion.h"

/* TRUE when two ranges of the arena share an element; refs elsewhere never do. */
gboolean
umg_cpu_overlaps (UmgRef a, gsize a_extent, UmgRef b, gsize b_extent)
{
  if (umg_ref_is_none (a) || umg_ref_is_none (b) || a.storage != UMG_STORAGE_ARENA
      || b.storage != UMG_STORAGE_ARENA)
    return FALSE;
  return a.offset < b.offset + b_extent && b.offset < a.offset + a_extent;
}

static gsize
a_extent (const UmgMatmulParams *mm)
{
  return umg_strided_extent (mm->batch, mm->stride_a, mm->m, mm->lda, mm->k);
}

static gsize
b_extent (const UmgMatmulParams *mm)
{
  return umg_strided_extent (mm->batch, mm->stride_b, mm->trans_b ? mm->n : mm->k, mm->ldb,
                             mm->trans_b ? mm->k : mm->n);
}

static gsize
c_extent (const UmgMatmulParams *mm)
{
  return umg_strided_extent (mm->batch, mm->stride_c, mm->m, mm->ldc, mm->n);
}

/* Each head can then run all three while its S stays in cache: no op reads S before the
 * second product, nothing the second product writes is read by the first two ops. */
gboolean
umg_cpu_is_attention (const UmgGraph *graph, guint first)
{
  const UmgOp *logits, *softmax, *mix;
  const UmgMatmulParams *l, *m;
  gsize scores_extent;

  if (first + 2 >= graph->ops->len)
    return FALSE;
  logits = &g_array_index (graph->ops, UmgOp, first);
  softmax = logits + 1;
  mix = logits + 2;
  if (logits->type != UMG_OP_MATMUL || softmax->type != UMG_OP_SOFTMAX
      || mix->type != UMG_OP_MATMUL)
    return FALSE;
  l = &logits->p.mm;
  m = &mix->p.mm;
  scores_extent = (gsize) l->batch * l->m * l->n;
  if (!umg_ref_is_none (logits->src[2]) || l->act != UMG_ACT_NONE || l->accumulate || l->ldc != l->n
      || l->stride_c != (gint64) l->m * l->n || logits->dst.storage != UMG_STORAGE_ARENA)
    return FALSE;
  if (softmax->dst.offset != logits->dst.offset || softmax->p.softmax.batch != l->batch
      || softmax->p.softmax.rows != l->m || softmax->p.softmax.cols != l->n)
    return FALSE;
  if (mix->src[0].storage != UMG_STORAGE_ARENA || mix->src[0].offset != logits->dst.offset
      || !umg_ref_is_none (mix->src[2]) || m->act != UMG_ACT_NONE || m->batch != l->batch
      || m->m != l->m || m->k != l->n || m->lda != l->n || m->stride_a != l->stride_c)
    return FALSE;
  return !umg_cpu_overlaps (logits->dst, scores_extent, logits->src[0], a_extent (l))
         && !umg_cpu_overlaps (logits->dst, scores_extent, logits->src[1], b_extent (l))
         && !umg_cpu_overlaps (logits->dst, scores_extent, mix->src[1], b_extent (m))
         && !umg_cpu_overlaps (logits->dst, scores_extent, softmax->src[0], (gsize) l->m * l->n)
         && !umg_cpu_overlaps (mix->dst, c_extent (m), logits->dst, scores_extent)
         && !umg_cpu_overlaps (mix->dst, c_extent (m), logits->src[0], a_extent (l))
         && !umg_cpu_overlaps (mix->dst, c_extent (m), logits->src[1], b_extent (l))
         && !umg_cpu_overlaps (mix->dst, c_extent (m), mix->src[1], b_extent (m));
}
