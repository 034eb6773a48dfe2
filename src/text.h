/* The text tower as a graph: token and position embeddings, causal transformer, final layer
 * norm at each sequence's end token, projection. */
#pragma once

#include "graph.h"
#include "model.h"

G_BEGIN_DECLS

/* Sequences of length tokens (at most the context length): the causal mask makes the tokens
 * after the end token irrelevant to it, so a batch of short texts runs only as far as its
 * longest text. Graph inputs: 0 token ids [n_seq, length] (i32); 1 the arena row of each
 * sequence's end token, seq × length + position [n_seq] (i32). Output: 0 [n_seq, embed_dim]. */
UmgGraph *umg_text_graph_new (const UmgModel *model, gint n_seq, gint length);

G_END_DECLS
