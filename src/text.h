/* The text tower as a graph: token and position embeddings, causal transformer, final layer
 * norm at each sequence's end token, projection. */
#pragma once

#include "graph.h"
#include "model.h"

G_BEGIN_DECLS

/* Graph inputs: 0 token ids [n_seq, context_length] (i32); 1 the arena row of each sequence's
 * end token, seq × context_length + position [n_seq] (i32). Output: 0 [n_seq, embed_dim]. */
UmgGraph *umg_text_graph_new (const UmgModel *model, gint n_seq);

G_END_DECLS
