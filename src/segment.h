/* Scoring embeddings against label embeddings: the math shared by semantic / panoptic
 * segmentation and region tags (segment.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* logits[l] = logit_scale · cos (embedding, label l) for label embeddings that are already
 * L2-normalised; embedding need not be (a zero vector gives zero logits). */
void umg_label_logits (const gfloat *embedding, gint dim, const gfloat *label_embeddings,
                       guint n_labels, gfloat logit_scale, gfloat *logits);

/* Softmax of values[n] in place; returns the index of the largest (the first on ties). */
guint umg_softmax (gfloat *values, guint n);

G_END_DECLS
