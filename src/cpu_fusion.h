/* Which ops of a graph the CPU backend runs as one: the pattern checks behind its fused
 * kernels, kept apart so that tests can check them on graphs built as the towers build theirs. */
#pragma once

#include "graph.h"

G_BEGIN_DECLS

/* TRUE when two ranges (elements from ref) of the arena share an element; refs elsewhere never
 * do. */
gboolean umg_cpu_overlaps (UmgRef a, gsize a_extent, UmgRef b, gsize b_extent);

/* TRUE when ops first .. first + 2 are one attention (umg_push_attention): scores S =
 * alpha A·Bᵀ per head, softmax of S in place, C (+)= S·V, with no overlap that would make
 * computing all three for one head before the next differ from running the ops in order. */
gboolean umg_cpu_is_attention (const UmgGraph *graph, guint first);

G_END_DECLS
